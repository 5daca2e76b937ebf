"""End-to-end ingest: MQTT → storage, DeltaSense side by side with its peers.

One run starts its own Mosquitto and InfluxDB (free ports, a temporary
directory) and measures, one peer at a time against a fresh database:

* **influxdb ceiling** — pre-built line-protocol batches written as fast as
  possible (points/s), the most any ingest could store;
* **subscriber** — the broker ceiling: a bare paho QoS 1 subscriber counting
  messages, storing nothing;
* **naive** — paho subscriber, one HTTP ``/write`` per message;
* **nodered** — Node-RED 5 with node-red-contrib-influxdb (bench/nodered/);
* **deltasense** — ``python -m ingest`` with its shipped settings.

QoS 1 publisher processes offer each rate for a fixed time and count PUBACKs;
``stored`` is what InfluxDB holds afterwards (the subscriber: what it received),
``lost`` = acknowledged − stored, and readings/s is sustained: stored readings
over first publish → last reading stored.  A latency phase measures
publish → queryable for probe readings under a single-reading background load.

``python -m bench.ingest_e2e`` (full) or ``--quick`` (small counts); ``--peers``,
``--shapes``, ``--rates`` narrow a run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.e2e import measure, nodered, payloads, report
from bench.e2e.rig import PEERS, STORING, Rig, temp_root
from tools.devstack import require_binary


@dataclass(frozen=True)
class Config:
    rates: dict[str, tuple[float, ...]]  # shape → offered messages/s
    peers: tuple[str, ...] = PEERS
    duration_s: float = 15.0
    publishers: int = 2
    devices: int = 100  # per publisher
    settle_s: float = 3.0  # the stored count stood still this long: done
    wait_max_s: float = 120.0  # after the load, wait at most this long for it
    ceiling_points: int = 1_000_000
    ceiling_batch: int = 5_000  # ingest's batch size
    ceiling_writers: tuple[int, ...] = (1, 2)
    latency_rate: float = report.LATENCY_BACKGROUND  # 0: no latency phase
    latency_s: float = 30.0
    probe_rate: float = 10.0


FULL = Config(
    rates={
        "single": (2_000, 5_000, 10_000),
        "batch20": (500, 1_500, 3_000),
        # 60 000 readings/s in 2.5× fewer messages than batch20's, and 75 000: stored/s
        # includes the store delay, so only an offer above the target can show it met.
        "batch50": (1_200, 1_500),
    }
)
QUICK = Config(
    rates={"single": (2_000,), "batch20": (500,), "batch50": (200,)},
    duration_s=3.0,
    settle_s=1.5,
    ceiling_points=100_000,
    latency_s=5.0,
)

# The quick mode's smallest configuration, run by the integration test.
SMOKE_ARGS = ["--quick", "--peers", "subscriber,deltasense", "--shapes", "single", "--no-latency"]


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def header(config: Config, command: str) -> str:
    load = os.getloadavg()
    red = nodered.version() if "nodered" in config.peers else "not run"
    return "\n".join(
        [
            "# End-to-end ingest: MQTT → InfluxDB, side by side",
            f"command: `{command}`",
            f"machine: {platform.machine()}, {cpu_model()}, "
            f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
            f"at start, {platform.system()} {platform.release()}, Python {sys.version.split()[0]}",
            f"broker: {_version([require_binary('mosquitto'), '-h'])} (anonymous, bench-only); "
            f"database: {_version([require_binary('influxd'), 'version'])}; Node-RED {red}",
            f"load: {config.publishers} QoS 1 paho publisher process(es), "
            f"{config.devices} devices each, {config.duration_s:g} s per rate; "
            f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        ]
    )


def run(config: Config, *, out: bool = True) -> report.Results:
    if "nodered" in config.peers:
        nodered.ensure_installed()
    results = report.Results()
    say = print if out else (lambda *_a, **_k: None)
    with temp_root() as tmp, Rig(Path(tmp)) as rig:
        for writers in config.ceiling_writers:
            results.ceilings.append(
                measure.ceiling(
                    rig,
                    points=config.ceiling_points,
                    batch=config.ceiling_batch,
                    writers=writers,
                    max_s=120,
                )
            )
        for shape_name, rates in config.rates.items():
            shape = payloads.SHAPES[shape_name]
            for rate in rates:
                for peer in config.peers:
                    load = measure.Load(
                        shape, rate, config.duration_s, config.publishers, config.devices
                    )
                    r = measure.throughput(rig, peer, load, config.settle_s, config.wait_max_s)
                    say(
                        f"  {shape_name} {rate:,.0f} msg/s {peer}: {r.stored:,}/"
                        f"{r.acked_readings:,} stored, {r.stored_per_s:,.0f} readings/s",
                        file=sys.stderr,
                    )
                    for line in r.errors:
                        say(f"    {peer} log: {line[:300]}", file=sys.stderr)
                    results.runs.append(r)
        if config.latency_rate:
            background = measure.Load(
                payloads.SINGLE,
                config.latency_rate,
                config.latency_s,
                config.publishers,
                config.devices,
            )
            for peer in (p for p in config.peers if p in STORING):
                results.latencies.append(measure.latency(rig, peer, background, config.probe_rate))
    return results


def parse(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m bench.ingest_e2e", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="small counts (about 2 min)")
    p.add_argument("--peers", help=f"comma-separated, of {','.join(PEERS)}")
    p.add_argument("--shapes", help=f"comma-separated, of {','.join(payloads.SHAPES)}")
    p.add_argument("--rates", help="comma-separated messages/s for every shape run")
    p.add_argument("--duration", type=float, help="seconds of load per rate")
    p.add_argument("--publishers", type=int, help="publisher processes")
    p.add_argument("--no-latency", action="store_true", help="skip the latency phase")
    args = p.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.peers:
        peers = tuple(args.peers.split(","))
        if unknown := set(peers) - set(PEERS):
            p.error(f"unknown peers: {', '.join(sorted(unknown))}")
        config = replace(config, peers=peers)
    rates = dict(config.rates)
    if args.shapes:
        shapes = args.shapes.split(",")
        if unknown := set(shapes) - set(payloads.SHAPES):
            p.error(f"unknown shapes: {', '.join(sorted(unknown))}")
        rates = {s: rates.get(s, QUICK.rates[s]) for s in shapes}
    if args.rates:
        given = tuple(float(r) for r in args.rates.split(","))
        rates = dict.fromkeys(rates, given)
    config = replace(config, rates=rates)
    if args.duration:
        config = replace(config, duration_s=args.duration)
    if args.publishers:
        config = replace(config, publishers=args.publishers)
    if args.no_latency:
        config = replace(config, latency_rate=0.0)
    return config


def main(argv: list[str] | None = None, *, command: str | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = parse(args)
    command = command or shlex.join(["python", "-m", "bench.ingest_e2e", *args])
    print(header(config, command), flush=True)
    results = run(config)
    print(report.render(results, list(config.rates)))


if __name__ == "__main__":
    main()
