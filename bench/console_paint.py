"""The console at city scale, in headless chromium (issue 11's targets).

A real API (``python -m api``) over a real InfluxDB, seeded with ``--devices``
devices (registry, status and meta with a position, spread over the wards) and
some active alerts, on Mosquitto and InfluxDB of the bench's own (bench/e2e/rig.py).
Playwright drives Debian's ``chromium``:

* first paint with the map: navigation start → the performance mark
  ``ds:map-drawn`` that map.js sets in the frame after the devices (clustered
  from 200) were added to the map; target ≤ 2 s;
* a 7-day chart of 1-minute data (10 080 points): chart.js's ``drawChart`` on
  that series in the console's page, timed by its ``ds:chart-draw`` measure (data
  preparation, uPlot's setup and first draw with the threshold lines); target
  ≤ 200 ms.

Also the bulk endpoints the map and the ward tiles are drawn from, timed with
httpx.  Each number is the median and the worst of ``--rounds`` fresh page loads.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from api.accounts import AccountStore
from api.deps import CSRF_HEADER
from bench.e2e.rig import Rig
from deltasense import schema
from deltasense.alerts import AlertEvent, Message
from deltasense.contract import Channel, Kind, Meta, Status, Topic
from deltasense.settings import Settings
from deltasense.wards import WARDS
from tools.devstack import ManagedProcess, free_port, http_ok, python_service
from tools.stack import settings_env

PAINT_TARGET_MS = 2000.0
CHART_TARGET_MS = 200.0
CHART_POINTS = 7 * 24 * 60  # one a minute for 7 days
SITE = "baclieu"
DB = "bench_console"
TOKEN = "bench-console-admin-token-0123456789abcdef"  # httpx, as an API client
OPERATOR = "bench-operator"  # the browser signs in as a console account
PASSWORD = "bench console password 2026"
KINDS = (Kind.WATER, Kind.WEATHER, Kind.LAMP, Kind.METER)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass(frozen=True)
class Config:
    devices: int
    alerts: int
    rounds: int


def parse(argv: Sequence[str]) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench.console_paint", description=__doc__)
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--alerts", type=int, default=200, help="active alerts among them")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    if a.devices < 1 or a.rounds < 1 or not 0 <= a.alerts <= a.devices:
        p.error("--devices and --rounds must be ≥ 1, --alerts within 0..devices")
    return Config(a.devices, a.alerts, a.rounds)


def seed_lines(n: int, now_ms: int, seed: int = 11) -> list[str]:
    """``n`` devices, each with its registry entry, an online/offline status and a meta
    point with a position within ~1.5 km of its ward's centre."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        ward = WARDS[i % len(WARDS)]
        kind = KINDS[i % len(KINDS)]
        device = f"{kind.value[:2]}-{i:05d}"

        def topic(channel: Channel, w: str = ward.id, k: Kind = kind, d: str = device) -> Topic:
            return Topic(SITE, w, k, d, channel)

        ts = now_ms - rng.randrange(60_000)
        state = "offline" if rng.random() < 0.03 else "online"
        meta = Meta(
            fw="1.0.0",
            lat=ward.lat + rng.uniform(-0.013, 0.013),
            lon=ward.lon + rng.uniform(-0.013, 0.013),
        )
        lines.append(schema.device_line(topic(Channel.TELE), ts, ts))
        lines.append(schema.status_line(topic(Channel.STATUS), Status(state=state), ts))  # type: ignore[arg-type]
        meta_line = schema.meta_line(topic(Channel.META), meta, ts)
        assert meta_line is not None
        lines.append(meta_line)
    return lines


def alert_lines(n_devices: int, n_alerts: int, now_ms: int) -> list[str]:
    out = []
    for j in range(n_alerts):
        i = j * (n_devices // max(n_alerts, 1)) // len(KINDS) * len(KINDS)  # water devices
        ward = WARDS[i % len(WARDS)]
        severity: Literal["critical", "warning"] = "critical" if j % 10 == 0 else "warning"
        event = AlertEvent(
            id=f"bench-{j:04d}",
            kind="flood",
            rule="street-flood",
            subject=f"wa-{i:05d}",
            district=ward.id,
            severity=severity,
            state="firing",
            risk_level=1,
            started=now_ms - 600_000,
            updated=now_ms - 300_000,
            message=Message(vi="Ngập đường", en="Street flood"),
        )
        out.append(schema.alert_line(event))
    return out


def write(rig: Rig, lines: list[str]) -> None:
    with httpx.Client(base_url=rig.influx.url, timeout=60) as c:
        for k in range(0, len(lines), 5000):
            body = "\n".join(lines[k : k + 5000]).encode()
            r = c.post("/write", params={"db": DB, "precision": "ms"}, content=body)
            r.raise_for_status()


def api_process(rig: Rig, var: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    settings = Settings(
        site=SITE,
        var_dir=var,
        mqtt_port=rig.mqtt_port,
        mqtt_tls=False,  # the bench's broker is plain (anonymous, bench only)
        influx_port=rig.influx_port,
        influx_rpc_port=rig.influx_rpc_port,
        influx_db=DB,
        api_port=port,
        admin_token=TOKEN,
    )
    base = f"http://127.0.0.1:{port}"
    AccountStore(var).add(OPERATOR, "operator", PASSWORD)
    proc = python_service(
        "api",
        "api",
        var,
        env=settings_env(settings),
        healthy=lambda: http_ok(f"{base}/readyz"),
        ports=[("127.0.0.1", port)],
    )
    return proc, base


def time_endpoint(base: str, path: str, rounds: int) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times, size = [], 0
    with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
        for _ in range(rounds):
            t0 = time.perf_counter()
            r = c.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            size = len(r.content)
    return times, size


_INIT = "localStorage.setItem('ds.lang', 'vi');"

_PAINT = """() => {
  const mark = performance.getEntriesByName('ds:map-drawn')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  const map = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/api/v1/map'));
  return { paint: mark.startTime, dcl: nav.domContentLoadedEventEnd,
           map_response: map ? map.responseEnd : null,
           markers: Number(document.querySelector('#map').dataset.markers),
           clustered: document.querySelector('#map').dataset.clustered,
           drawn: document.querySelectorAll('#map [data-cluster], #map path[data-device]').length };
}"""

# A 7-day series of 1-minute water levels (a slow tide and noise), drawn by the
# console's own chart.js into a card like the device page's, on the console's page.
_CHART = """async ([n, csrf]) => {
  const { drawChart } = await import('/static/chart.js');
  const config = await (await fetch('/api/v1/console/config', { headers: { [csrf]: '1' } })).json();
  const lines = config.lines.level_cm || [];
  const end = Date.now() - Date.now() % 60000;
  const points = [];
  for (let i = 0; i < n; i++) {
    const ts = end - (n - 1 - i) * 60000;
    points.push([ts, 6 + 4 * Math.sin(i / 700) + Math.random()]);
  }
  const holder = document.createElement('div');
  holder.className = 'plot';
  document.querySelector('#city').prepend(holder);
  performance.clearMeasures('ds:chart-draw');
  const plot = drawChart(holder, 'level_cm', { points }, lines);
  await new Promise((r) => requestAnimationFrame(() => r()));
  const m = performance.getEntriesByName('ds:chart-draw')[0];
  const out = { ms: m.duration, points: m.detail.points, drawn: plot.data[0].length };
  plot.destroy(); holder.remove();
  return out;
}"""


def browser_rounds(base: str, cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from playwright.sync_api import sync_playwright

    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    paints, charts = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(cfg.rounds):
                context = browser.new_context(
                    viewport={"width": 1280, "height": 900}, base_url=base
                )
                context.add_init_script(_INIT)
                # Signed in before the clock starts, as an operator who has the console
                # open in a tab: the first paint is the console's, not the login's.
                signed = context.request.post(
                    "/api/v1/session",
                    data={"username": OPERATOR, "password": PASSWORD},
                    headers={CSRF_HEADER: "1"},
                )
                assert signed.ok, signed.text()
                page = context.new_page()
                page.goto("/")
                page.wait_for_selector("#map[data-drawn='1']", timeout=60_000)
                paints.append(page.evaluate(_PAINT))
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                charts.append(page.evaluate(_CHART, [CHART_POINTS, CSRF_HEADER]))
                context.close()
        finally:
            browser.close()
    return paints, charts


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ms (worst {max(values):,.0f})"


@dataclass(frozen=True)
class Result:
    ok: bool  # both medians within their targets
    paint_ms: list[float]
    chart_ms: list[float]
    map_drawn: dict[str, Any]  # the last round's map: markers, clustered, things drawn


def run(cfg: Config, *, command: str) -> Result:
    root = Path(tempfile.mkdtemp(prefix="ds-bench-console-"))
    rig = Rig(root)
    try:
        rig.start()
        rig.influx.create(DB)
        now = int(time.time() * 1000)
        t0 = time.perf_counter()
        write(rig, seed_lines(cfg.devices, now) + alert_lines(cfg.devices, cfg.alerts, now))
        seeded_s = time.perf_counter() - t0
        api, base = api_process(rig, root / "var")
        api.start()
        try:
            map_t, map_size = time_endpoint(base, "/api/v1/map", cfg.rounds)
            wards_t, _ = time_endpoint(base, "/api/v1/wards", cfg.rounds)
            paints, charts = browser_rounds(base, cfg)
        finally:
            api.stop()
        assert all(p["markers"] == cfg.devices for p in paints), paints
        assert all(c["points"] == CHART_POINTS == c["drawn"] for c in charts), charts
        paint_ms = [p["paint"] for p in paints]
        chart_ms = [c["ms"] for c in charts]
        ok = bool(
            statistics.median(paint_ms) <= PAINT_TARGET_MS
            and statistics.median(chart_ms) <= CHART_TARGET_MS
        )
        print(f"\n## Console at city scale: {cfg.devices} devices, {cfg.alerts} active alerts")
        print(
            f"`{command}` — {platform.machine()}, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}, "
            f"real API over real InfluxDB (seeded in {seeded_s:.1f} s), "
            f"Debian chromium headless, {cfg.rounds} rounds"
        )
        print("| measure | median (worst) | target |")
        print("| --- | ---: | ---: |")
        print(f"| GET /api/v1/map ({map_size / 1e6:.1f} MB) | {_ms(map_t)} | |")
        print(f"| GET /api/v1/wards | {_ms(wards_t)} | |")
        print(f"| /map response end in the page | {_ms([p['map_response'] for p in paints])} | |")
        print(f"| first paint with the map (ds:map-drawn) | {_ms(paint_ms)} | ≤ 2,000 ms |")
        print(
            f"| 7-day chart, {CHART_POINTS} points (ds:chart-draw) | {_ms(chart_ms)} | ≤ 200 ms |"
        )
        drawn = paints[-1]
        print(
            f"\nmap: {drawn['markers']} markers, clustered={drawn['clustered']}, "
            f"{drawn['drawn']} clusters/markers drawn; "
            f"{'within' if ok else 'OVER'} the targets"
        )
    finally:
        rig.stop()
        shutil.rmtree(root, ignore_errors=True)
    return Result(ok, paint_ms, chart_ms, drawn)


def main(argv: Sequence[str] | None = None, *, command: str | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    cfg = parse(args)
    result = run(cfg, command=command or " ".join(["python -m bench.console_paint", *args]))
    if argv is None and not result.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
