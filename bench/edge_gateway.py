"""The edge gateway's numbers (issue 13): spool write and drain rates, and a real
gateway process with a 200-node ward: its memory, and a replay after the platform
broker was stopped.

``python -m bench.edge_gateway [--nodes 200] [--rate 1] [--outage 30]``;
``--vs-bridge``: one platform broker, two wards, the same stop of the platform
broker: one ward behind a Mosquitto bridge (``cleansession false``, persistence
on), the other behind the gateway; published, arrived, lost, time to drain.  The
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

import aiomqtt

from deltasense.runtime import now_ms, payload_bytes
from deltasense.settings import Settings
from edge.settings import EdgeSettings
from edge.spool import Incoming, Spool
from simulators.run import simulate
from tools.devstack import (
    ManagedProcess,
    Stack,
    free_port,
    mosquitto_process,
    outside_ephemeral_port,
)
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
    platform_port, ward_port = outside_ephemeral_port(), free_port()
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
    parser.add_argument(
        "--vs-bridge", action="store_true", help="only the side by side with a Mosquitto bridge"
    )
    parser.add_argument(
        "--power-cut", action="store_true", help="with --vs-bridge: kill -9 the ward side too"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deltasense-bench-edge-") as name:
        tmp = Path(name)
        if args.vs_bridge:
            for line in asyncio.run(
                _side_by_side(tmp, args.nodes, args.rate, args.outage, args.power_cut)
            ):
                print(line, flush=True)
            return
        for line in spool_rates(tmp):
            print(line, flush=True)
        if not args.spool_only:
            for line in asyncio.run(_gateway_run(tmp, args.nodes, args.rate, args.outage)):
                print(line, flush=True)


# --- side by side: a Mosquitto bridge versus the gateway, one platform, one cut ---------
BRIDGED = "phuong-2"


def _bridge_broker(var: Path, *, port: int, platform_port: int, site: str) -> ManagedProcess:
    """A ward broker bridged to the platform as Mosquitto documents it for this:
    ``cleansession false``, persistence on, QoS 1 out."""
    proc = mosquitto_process(var, port=port, anonymous=True)
    proc.name = "mosquitto-bridge"
    conf = (var / "mosquitto" / "mosquitto.conf").resolve()
    bridge = (
        f"connection bridge-{BRIDGED}\n"
        f"address 127.0.0.1:{platform_port}\n"
        f"topic {site}/{BRIDGED}/# out 1\n"
        "cleansession false\n"
        f"remote_clientid bridge-{BRIDGED}\n"
        "bridge_protocol_version mqttv311\n"
        "restart_timeout 1 2\n"
        "keepalive_interval 5\n"
        "start_type automatic\n"
    )
    conf.write_text(conf.read_text() + bridge)
    return proc


class _Arrivals:
    """Distinct readings per ward at the platform, with when each first arrived."""

    def __init__(self, port: int, site: str) -> None:
        self.port, self.site = port, site
        self.first: dict[str, dict[tuple[str, int, int], tuple[float, int]]] = {}  # (at, ts)

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="bench-arrivals", clean_session=False
                ) as c:
                    await c.subscribe(f"{self.site}/+/+/+/tele", qos=1)
                    async for m in c.messages:
                        ward, device = m.topic.value.split("/")[1], m.topic.value.split("/")[3]
                        doc = json.loads(payload_bytes(m.payload))
                        seen = self.first.setdefault(ward, {})
                        for r in doc if isinstance(doc, list) else [doc]:
                            seen.setdefault(
                                (device, r["boot"], r["seq"]), (time.monotonic(), int(r["ts"]))
                            )
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


async def _side_by_side(
    tmp: Path, nodes: int, rate: float, outage_s: float, power_cut: bool
) -> list[str]:
    site = "bench"
    platform_port, bridge_port, ward_port = outside_ephemeral_port(), free_port(), free_port()
    platform_broker = mosquitto_process(tmp / "platform2", port=platform_port, anonymous=True)
    edge = EdgeSettings(
        site=site,
        district=WARD,
        var_dir=tmp / "edge2",
        local_port=ward_port,
        uplink_port=platform_port,
        uplink_username="bench",
        uplink_retry_max_s=1.0,
        metrics_port=free_port(),
    )
    gateway = gateway_process(edge)
    bridge = _bridge_broker(
        tmp / "bridge", port=bridge_port, platform_port=platform_port, site=site
    )
    ward = ward_broker(tmp / "ward2", port=ward_port)
    brokers = [platform_broker, bridge, ward]
    arrivals = _Arrivals(platform_port, site)
    with Stack(brokers):
        await asyncio.to_thread(gateway.start)
        watcher = asyncio.create_task(arrivals.run())
        cities = {
            ward: asyncio.create_task(
                simulate(
                    Settings(site=site, mqtt_port=port),
                    devices=nodes,
                    rate=rate,
                    duration=15 + outage_s + 20,
                    seed=5,
                    districts=[ward],
                    edge={ward: ("127.0.0.1", port)},
                )
            )
            for ward, port in ((BRIDGED, bridge_port), (WARD, ward_port))
        }
        try:
            await asyncio.sleep(15)
            await asyncio.to_thread(platform_broker.stop)
            if power_cut:
                # Half way through the outage the cabinet loses power: every process
                # on the ward side dies at once and comes back 2 s later.
                await asyncio.sleep(outage_s / 2)
                for proc in (bridge, ward, gateway):
                    assert proc.proc is not None
                    proc.proc.kill()
                    proc.proc.wait()
                await asyncio.sleep(2)
                for proc in (bridge, ward, gateway):
                    await asyncio.to_thread(proc.start)
                await asyncio.sleep(outage_s / 2 - 2)
            else:
                await asyncio.sleep(outage_s)
            await asyncio.to_thread(platform_broker.start)
            restarted, restarted_wall = time.monotonic(), time.time() * 1000
            published = {ward: (await task).total for ward, task in cities.items()}
            await asyncio.sleep(15)  # what is still on its way arrives
        finally:
            for task in cities.values():
                task.cancel()
            await asyncio.gather(*cities.values(), return_exceptions=True)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            gateway.stop()
    what = " with a power cut of the ward side half way" if power_cut else ""
    lines = [
        f"same {outage_s:g} s platform-broker stop{what}, {nodes} nodes at {rate:g}/s per ward:"
    ]
    for label, name in (("mosquitto bridge", BRIDGED), ("deltasense edge ", WARD)):
        got = arrivals.first.get(name, {})
        backlog = [at - restarted for at, ts in got.values() if ts < restarted_wall]
        drain = max(backlog) if backlog else 0.0
        live = [at - restarted for at, ts in got.values() if ts > restarted_wall + 100]
        lines.append(
            f"  {label}: published {published[name]}, at the platform {len(got)}, lost "
            f"{published[name] - len(got)}; first reading taken after the restart arrived "
            f"{min(live):.1f} s after it, the last taken before {drain:.1f} s"
        )
    return lines


if __name__ == "__main__":
    main()
