"""Publish → alert on SSE under background load, and whether analytics keeps up.

One run starts its own Mosquitto and InfluxDB (bench/e2e/rig.py: free ports, a
temporary directory) and on them the platform's ingest, analytics and API
(``python -m ingest|analytics|api`` with the shipped settings, as
``tools/stack.py`` passes them).  Then QoS 1 publisher processes
(bench/e2e/load.py, ``--live``: readings stamped now, at a dry level) offer
``--rate`` messages/s of water readings in the background (one reading a
message, or ``--shape``'s batches), and street-flood
probes (bench/e2e/sse.py) are published one at a time, ``--spacing`` s apart:
each a reading that raises a critical street-flood alert, timed from its publish
to the alert event on the API's SSE stream.  Meanwhile analytics' consumer lag
(``deltasense_analytics_lag_seconds``) and ingest's (``deltasense_ingest_lag_seconds``)
are scraped from their metrics ports; at the end, how many readings analytics
took in against what the broker acknowledged.

``python -m bench.alert_e2e`` (full: 25 probes at 2 000 msg/s) or ``--quick``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from bench.e2e import measure, payloads
from bench.e2e.latency import percentile
from bench.e2e.rig import Rig, Target, temp_root
from bench.e2e.sse import GRACE_S, AlertProbes, AlertStream, LagWatch, sample
from bench.ingest_e2e import cpu_model
from tools.devstack import ManagedProcess, ServiceError, free_port, http_ok, python_service
from tools.stack import settings_env

TARGET_S = 1.0  # issue 10: publish → alert on SSE ≤ 1 s at 2 000 msg/s background
TOKEN = "bench-alert-e2e-admin-token-0123456789abcdef"  # bench-only, never a real one
ANALYTICS_LAG = "deltasense_analytics_lag_seconds"
INGEST_LAG = "deltasense_ingest_lag_seconds"
CATCH_UP_S = 30.0  # after the load, how long analytics may take to take in the rest


@dataclass(frozen=True)
class Config:
    rate: float = 2_000.0  # background messages/s, all publishers together
    shape: str = "single"  # readings per background message (bench/e2e/payloads.py)
    publishers: int = 2
    devices: int = 100  # per publisher
    probes: int = 25
    spacing_s: float = 3.0
    # A probe's drain is cleared once its alert is in, or after this long (its alert
    # still counts when it comes later); a crossing and a clearing reading this far
    # apart fall into different batches of analytics even when it is behind.
    timeout_s: float = 2.5
    steady_s: float = 5.0  # background load before the first probe


FULL = Config()
QUICK = Config(probes=8, spacing_s=1.5, timeout_s=1.2, steady_s=3.0)
# The quick mode at its smallest, run by the integration test.
SMOKE_ARGS = [
    *("--quick", "--probes", "3", "--spacing", "0.5", "--timeout", "10", "--steady", "1"),
    *("--rate", "200", "--publishers", "1"),
]


@dataclass(frozen=True)
class Result:
    config: Config
    warm_up_s: float  # the first alert, the path cold (not in the samples)
    samples: list[float]
    unseen: int
    stream_events: int
    sent: int  # background messages published …
    acked: int  # … and acknowledged by the broker
    sent_per_s: float
    probe_readings: int
    analytics_readings: int  # water readings analytics took in, probes included
    expected_readings: int  # what the broker acknowledged of both
    caught_up_s: float | None  # after the load's last PUBACK; None: not within CATCH_UP_S
    analytics_lag_max_s: float | None
    ingest_lag_max_s: float | None
    lag_scrapes: int
    load_avg: tuple[float, float, float]  # at the end

    def p(self, q: float) -> float:
        """Over every probe: an unseen one counts as slower than any seen (inf)."""
        return percentile(self.samples + [math.inf] * self.unseen, q)


@dataclass(frozen=True)
class Platform:
    ingest: ManagedProcess
    analytics: ManagedProcess
    api: ManagedProcess
    api_url: str
    ingest_metrics: str
    analytics_metrics: str


def platform_processes(rig: Rig, target: Target) -> Platform:
    """Ingest, analytics and the API on the rig's broker and database, one site."""
    ports = {name: free_port() for name in ("ingest", "analytics", "api")}
    settings = rig.settings(
        target,
        rig.root / "run" / f"var-{target.site}",
        ingest_metrics_port=ports["ingest"],
        analytics_metrics_port=ports["analytics"],
        api_port=ports["api"],
        admin_token=TOKEN,
    )
    env, var = settings_env(settings), settings.var_dir

    def metrics(service: str) -> str:
        return f"http://127.0.0.1:{ports[service]}/metrics"

    return Platform(
        ingest=python_service(
            "ingest", "ingest", var, env=env, healthy=lambda: http_ok(metrics("ingest"))
        ),
        analytics=python_service(
            "analytics", "analytics", var, env=env, healthy=lambda: http_ok(metrics("analytics"))
        ),
        api=python_service(
            "api",
            "api",
            var,
            env=env,
            healthy=lambda: http_ok(f"{settings.api_base_url}/readyz"),
            ports=[("127.0.0.1", ports["api"])],
        ),
        api_url=settings.api_base_url,
        ingest_metrics=metrics("ingest"),
        analytics_metrics=metrics("analytics"),
    )


def wait_healthy(proc: ManagedProcess, within_s: float = 60.0) -> None:
    """A spawned process healthy within ``within_s`` (or ServiceError with its log)."""
    deadline = time.monotonic() + within_s
    while not proc.healthy():
        if not proc.alive() or time.monotonic() > deadline:
            raise ServiceError(f"{proc.name} did not start; last log lines:\n{proc.tail()}")
        time.sleep(0.1)


def _water_taken(url: str) -> int:
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return 0
    return int(sample(text, "deltasense_analytics_readings_total", {"kind": "water"}) or 0)


def _catch_up(url: str, expected: int, since: float) -> tuple[int, float | None]:
    """Poll analytics' readings counter until it holds ``expected`` (or CATCH_UP_S)."""
    deadline = time.time() + CATCH_UP_S
    taken = _water_taken(url)
    while taken < expected and time.time() < deadline:
        time.sleep(0.2)
        taken = _water_taken(url)
    return taken, (max(0.0, time.time() - since) if taken >= expected else None)


def run(config: Config, *, out: bool = True) -> Result:
    say = _stderr if out else _quiet
    with temp_root() as tmp, Rig(Path(tmp)) as rig:
        target = rig.new_target()
        rig.influx.create(target.db)
        services = platform_processes(rig, target)
        started: list[ManagedProcess] = []
        stream = AlertStream(services.api_url, TOKEN)
        try:
            for proc in (services.ingest, services.analytics, services.api):
                proc.spawn()  # together: their start-ups overlap
                started.append(proc)
            for proc in started:
                wait_healthy(proc)
            rig.wait_ready("deltasense", target)  # ingest stores
            stream.start()
            probes = AlertProbes(rig, target, stream)
            try:
                result = measured(config, rig, target, services, probes, say)
            finally:
                probes.close()
        finally:
            stream.close()
            for proc in reversed(started):
                proc.stop()
    if stream.error is not None:
        raise RuntimeError(f"the alert stream failed during the run: {stream.error}")
    return replace(result, stream_events=stream.events)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _quiet(_line: str) -> None:
    pass


def measured(
    config: Config,
    rig: Rig,
    target: Target,
    services: Platform,
    probes: AlertProbes,
    say: Callable[[str], None],
) -> Result:
    """The warm-up alert, then the background load and the probes."""
    warm_up_s = probes.warm_up()
    before = _water_taken(services.analytics_metrics)  # warm-up and readiness readings
    published_before = probes.published
    # At most this long: the publishers are stopped once the probes are done.
    duration = config.steady_s + config.probes * max(config.spacing_s, config.timeout_s) + 30
    shape = payloads.SHAPES[config.shape]
    load = measure.Load(shape, config.rate, duration, config.publishers, config.devices, live=True)
    analytics_lag = LagWatch(services.analytics_metrics, ANALYTICS_LAG)
    ingest_lag = LagWatch(services.ingest_metrics, INGEST_LAG)
    analytics_lag.start()
    ingest_lag.start()
    pubs = measure.start_publishers(rig, target, load)
    try:
        time.sleep(config.steady_s)
        probed = probes.run(
            config.probes,
            config.spacing_s,
            config.timeout_s,
            say=lambda line: say(f"{line}; analytics lag {_s(analytics_lag.last)}"),
        )
        loads = measure.finish_publishers(pubs, timeout_s=60, now=True)
        acked = int(sum(r["acked"] for r in loads))
        # Every water reading the broker took since: the load's and the probes'.
        expected = before + acked * shape.readings + probes.published - published_before
        last_ack = max(r["last_ack"] for r in loads)
        taken, caught_up = _catch_up(services.analytics_metrics, expected, last_ack)
    finally:
        analytics_lag.stop()
        ingest_lag.stop()
        for p in pubs:
            if p.poll() is None:
                p.kill()
    sent = int(sum(r["sent"] for r in loads))
    span = max(r["last_publish"] for r in loads) - min(r["first_publish"] for r in loads)
    return Result(
        config=config,
        warm_up_s=warm_up_s,
        samples=probed.samples,
        unseen=probed.unseen,
        stream_events=0,
        sent=sent,
        acked=acked,
        sent_per_s=sent / span if span > 0 else 0.0,
        probe_readings=probes.published - published_before,
        analytics_readings=taken - before,
        expected_readings=expected - before,
        caught_up_s=caught_up,
        analytics_lag_max_s=analytics_lag.worst,
        ingest_lag_max_s=ingest_lag.worst,
        lag_scrapes=analytics_lag.scrapes,
        load_avg=os.getloadavg(),
    )


def _s(value: float | None) -> str:
    if value is None:
        return "—"
    return "∞" if math.isinf(value) else f"{value:.2f} s"


def header(command: str) -> str:
    load = os.getloadavg()
    return "\n".join(
        [
            "## Publish → alert on SSE under background load",
            f"command: `{command}`",
            f"machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start, "
            f"{platform.system()} {platform.release()}, Python {sys.version.split()[0]}; "
            f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        ]
    )


def render(r: Result) -> str:
    c = r.config
    readings = payloads.SHAPES[c.shape].readings
    offered = f"{c.rate:,.0f} msg/s" + (
        f" ({c.rate * readings:,.0f} readings/s)" if readings > 1 else ""
    )
    seen = len(r.samples)
    verdict = "met" if r.unseen == 0 and r.p(99) <= TARGET_S else "NOT met"
    caught = (
        f"all {r.analytics_readings:,} in {r.caught_up_s:.1f} s after the load's last PUBACK"
        if r.caught_up_s is not None
        else f"{r.analytics_readings:,} of {r.expected_readings:,} "
        f"{CATCH_UP_S:.0f} s after the load's last PUBACK"
    )
    lines = [
        f"background: {c.publishers} QoS 1 publisher process(es), {c.devices} water devices "
        f"each, {c.shape} messages of {readings} live reading(s) (stamped now, dry); "
        f"probes: {c.probes} street-flood "
        f"crossings on fresh drains, {c.spacing_s:g} s apart, each cleared once its alert "
        f"was in (or after {c.timeout_s:g} s; a later alert still counts); unseen: no alert "
        f"on the stream {GRACE_S:g} s after the last probe; the first alert, path cold "
        f"and no load (not counted): {_s(r.warm_up_s)}",
        "",
        "| background offered | sent msg/s | acked | probes | seen | unseen "
        "| p50 | p99 | max | target |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| {offered} | {r.sent_per_s:,.0f} | {r.acked:,} | {c.probes} | {seen} "
        f"| {r.unseen} | {_s(r.p(50))} | {_s(r.p(99))} "
        f"| {_s(max(r.samples) if r.samples else None)} | p99 ≤ {TARGET_S:g} s: {verdict} |",
        "",
        f"analytics: consumer lag (`{ANALYTICS_LAG}`) at most {_s(r.analytics_lag_max_s)} "
        f"over {r.lag_scrapes} scrapes every 0.5 s; took in {caught} "
        f"(the load's {r.acked * readings:,} and the probes' {r.probe_readings}); "
        f"ingest lag (`{INGEST_LAG}`) at most {_s(r.ingest_lag_max_s)}; "
        f"{r.stream_events} alert events on the stream; "
        f"load average {r.load_avg[0]:.2f} {r.load_avg[1]:.2f} {r.load_avg[2]:.2f} at the end",
    ]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m bench.alert_e2e", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="fewer probes, closer together")
    p.add_argument("--rate", type=float, help="background messages/s")
    p.add_argument(
        "--shape",
        choices=sorted(payloads.SHAPES),
        help="readings per background message (default: single)",
    )
    p.add_argument("--publishers", type=int, help="background publisher processes")
    p.add_argument("--probes", type=int, help="street-flood probes")
    p.add_argument("--spacing", type=float, help="seconds between probes")
    p.add_argument("--timeout", type=float, help="seconds a probe's drain stays flooded at most")
    p.add_argument("--steady", type=float, help="seconds of background load before the probes")
    args = p.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.rate is not None:
        if not 0 < args.rate <= 100_000:
            p.error("--rate must be within (0, 100000]")
        config = replace(config, rate=args.rate)
    if args.shape is not None:
        config = replace(config, shape=args.shape)
    if args.publishers is not None:
        if not 1 <= args.publishers <= 16:
            p.error("--publishers must be within 1..16")
        config = replace(config, publishers=args.publishers)
    if args.probes is not None:
        if not 1 <= args.probes <= 1_000:
            p.error("--probes must be within 1..1000")
        config = replace(config, probes=args.probes)
    if args.spacing is not None:
        if not 0.1 <= args.spacing <= 60:
            p.error("--spacing must be within 0.1..60 s")
        config = replace(config, spacing_s=args.spacing)
    if args.timeout is not None:
        if not 0.1 <= args.timeout <= 60:
            p.error("--timeout must be within 0.1..60 s")
        config = replace(config, timeout_s=args.timeout)
    if args.steady is not None:
        if not 0 <= args.steady <= 600:
            p.error("--steady must be within 0..600 s")
        config = replace(config, steady_s=args.steady)
    return config


def main(argv: list[str] | None = None, *, command: str | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = parse(args)
    command = command or shlex.join(["python", "-m", "bench.alert_e2e", *args])
    print(header(command), flush=True)
    print(render(run(config)))


if __name__ == "__main__":
    main()
