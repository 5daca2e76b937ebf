"""The edge gateway's numbers (issue 13): spool write and drain rates, and a real
gateway process with a 200-node ward: its memory, and a replay after the platform
broker was stopped.

``python -m bench.edge_gateway [--nodes 200] [--rate 1] [--outage 30]``.  The
spool part uses the real SQLite file in a temporary directory on this disk; the
gateway part runs two Mosquittos (anonymous, bench only: the message path, not
access control, is measured), ``python -m edge`` and the simulated ward.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path

from deltasense.runtime import now_ms
from deltasense.settings import Settings
from edge.settings import EdgeSettings
from edge.spool import Incoming, Spool
from simulators.run import simulate
from tools.devstack import Stack, free_port, mosquitto_process
from tools.edgestack import gateway_process, ward_broker

WARD = "phuong-1"
PAYLOAD = json.dumps(
    {
        "ts": 1764600000000,
        "seq": 12345,
        "boot": 3,
        "on": True,
        "dim_pct": 100,
        "power_w": 58.2,
        "energy_wh_total": 123456.7,
        "lux": 3.1,
        "rssi_dbm": -67,
        "batt_v": 3.7,
        "heap_b": 120000,
        "up_s": 86400,
    },
    separators=(",", ":"),
).encode()
TOPIC = f"baclieu/{WARD}/lamp/lp-p1-001/tele"


def spool_rates(tmp: Path, n: int = 100_000) -> list[str]:
    spool = Spool(tmp / "bench.sqlite3", max_bytes=10**12, max_age_ms=10**12, clock=now_ms)
    lines = []
    for batch in (20, 500):
        count = n if batch == 500 else n // 5
        started = time.perf_counter()
        for _ in range(0, count, batch):
            spool.append([Incoming(TOPIC, PAYLOAD, False, now_ms()) for _ in range(batch)])
        took = time.perf_counter() - started
        lines.append(
            f"spool write, {batch} per commit (fsync each): {count / took:,.0f} readings/s "
            f"({took / (count / batch) * 1000:.2f} ms per commit)"
        )
    total = spool.stats().records
    started, cursor = time.perf_counter(), 0
    while records := spool.after(cursor, 1000):
        cursor = records[-1].id
        spool.delete([r.id for r in records])
    took = time.perf_counter() - started
    lines.append(f"spool drain (read 1000, delete after ack): {total / took:,.0f} readings/s")
    spool.close()
    return lines


def _rss_kb(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _metric(port: int, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(f"deltasense_edge_{name} "):
                return float(line.split()[-1])
    raise KeyError(name)


async def _gateway_run(tmp: Path, nodes: int, rate: float, outage_s: float) -> list[str]:
    platform_port, ward_port = free_port(), free_port()
    platform_broker = mosquitto_process(tmp / "platform", port=platform_port, anonymous=True)
    edge = EdgeSettings(
        site="bench",
        district=WARD,
        var_dir=tmp / "edge",
        local_port=ward_port,
        uplink_port=platform_port,
        uplink_username="bench",
        uplink_retry_max_s=1.0,
        metrics_port=free_port(),
    )
    gateway = gateway_process(edge)
    lines = []
    with Stack([platform_broker, ward_broker(tmp / "ward", port=ward_port)]):
        await asyncio.to_thread(gateway.start)
        assert gateway.proc is not None
        pid = gateway.proc.pid
        sim = asyncio.create_task(
            simulate(
                Settings(site="bench", mqtt_port=ward_port),
                devices=nodes,
                rate=rate,
                duration=None,
                districts=[WARD],
                edge={WARD: ("127.0.0.1", ward_port)},
            )
        )
        try:
            await asyncio.sleep(30)
            rss, peak = _rss_kb(pid)
            lines.append(
                f"gateway with {nodes} nodes at {rate:g} readings/s each, 30 s steady: "
                f"RSS {rss / 1024:.0f} MB (peak {peak / 1024:.0f} MB), spool "
                f"{_metric(edge.metrics_port, 'spool_records'):.0f} records"
            )
            await asyncio.to_thread(platform_broker.stop)
            await asyncio.sleep(outage_s)
            spooled = _metric(edge.metrics_port, "spool_records")
            await asyncio.to_thread(platform_broker.start)
            started = time.monotonic()
            while _metric(edge.metrics_port, "backlog_records") > 0 or (
                _metric(edge.metrics_port, "last_drain_records") == 0
            ):
                await asyncio.sleep(0.1)
                if time.monotonic() - started > 300:
                    raise TimeoutError("the backlog did not drain in 300 s")
            drained = _metric(edge.metrics_port, "last_drain_records")
            took = _metric(edge.metrics_port, "last_drain_seconds")
            rss, peak = _rss_kb(pid)
            lines.append(
                f"platform broker stopped {outage_s:g} s: {spooled:.0f} records spooled; "
                f"{drained:.0f} replayed in {took:.1f} s ({drained / took:,.0f}/s = "
                f"{drained / took / (nodes * rate):.0f}x the ward's rate); RSS "
                f"{rss / 1024:.0f} MB (peak {peak / 1024:.0f} MB)"
            )
        finally:
            sim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sim
            gateway.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.edge_gateway")
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--spool-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deltasense-bench-edge-") as name:
        tmp = Path(name)
        for line in spool_rates(tmp):
            print(line, flush=True)
        if not args.spool_only:
            for line in asyncio.run(_gateway_run(tmp, args.nodes, args.rate, args.outage)):
                print(line, flush=True)


if __name__ == "__main__":
    main()
