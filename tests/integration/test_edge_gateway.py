"""The edge gateway between two real brokers, with the real ingest and InfluxDB.

50 simulated nodes (the firmware's own code) publish to the ward's Mosquitto; the
gateway (``python -m edge``, a real process) spools and forwards to the platform's
Mosquitto, which is locked down with dynamic security as the stack runs it (the
gateway logs in as ``gw.phuong-1``); ingest stores into InfluxDB.  A TCP proxy on
the uplink cuts the link.  Counted: what the nodes published (the ward broker's
PUBACKs), what the platform received (and how often), what InfluxDB holds.

``make test`` cuts for CUT_S seconds; ``DELTASENSE_EDGE_CUT_S=120`` runs the
issue's full 120 s cut (docs/EDGE.md has the measured numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deltasense import schema
from deltasense.influx import InfluxClient, quote_ident
from deltasense.settings import Settings
from ingest.service import Ingest
from simulators.run import SimStats, simulate
from tests.integration.edge_support import (
    WARD,
    EdgeWorld,
    ReadingWatch,
    TcpProxy,
    edge_world,
    metric,
    stored,
    until,
)

CUT_S = float(os.environ.get("DELTASENSE_EDGE_CUT_S", "30"))
NODES = 50
RATE = 1.0  # readings/s per node: the ward's steady rate is 50/s
# The uplink: 4 Mbit/s, a modest 4G link.  Unpaced, loopback replayed a 30 s backlog
# in 0.10 s on a fast box: too short for a live reading (one every 20 ms, through a
# spool transaction) to show that it overtakes the backlog.
UPLINK_BYTES_PER_S = 512_000


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[EdgeWorld]:
    with edge_world(settings, tmp_path) as w:
        yield w


@pytest.mark.timeout(int(240 + 4 * CUT_S))
async def test_uplink_cut_and_gateway_kill_lose_nothing_and_live_goes_first(
    world: EdgeWorld, influx: InfluxClient
) -> None:
    platform = world.platform
    proxy = TcpProxy(platform.mqtt_port, UPLINK_BYTES_PER_S)
    await proxy.start()
    edge = world.edge_settings(proxy.port)
    gateway = world.gateway(edge)
    await asyncio.to_thread(gateway.start)

    ingest = Ingest(platform, influx)
    ingest_task = asyncio.create_task(ingest.run())
    ward_watch = ReadingWatch("127.0.0.1", world.ward_port, platform.site)
    cloud_watch = ReadingWatch(
        "127.0.0.1",
        platform.mqtt_port,
        platform.site,
        username=platform.mqtt_username,
        password=platform.mqtt_password,
    )
    await ward_watch.start()
    await cloud_watch.start()
    stats: list[SimStats] = []
    sim = asyncio.create_task(
        simulate(
            platform,
            devices=NODES,
            rate=RATE,
            duration=None,
            seed=7,
            districts=[WARD],
            edge={WARD: ("127.0.0.1", world.ward_port)},
            on_progress=lambda s: stats.append(s) if not stats else None,
        )
    )
    report: list[str] = []
    try:
        # Steady state: readings flow through the gateway.
        await until(lambda: _count(cloud_watch, NODES * 3), 60, "readings through the gateway")

        # --- 1. the uplink is cut ------------------------------------------------------
        await proxy.cut()
        cut_wall = time.time() * 1000
        await asyncio.sleep(CUT_S)
        backlog = metric(edge, "spool_records")
        assert backlog >= NODES * RATE * CUT_S * 0.8, backlog  # it all waited in the spool
        await proxy.restore()
        restored_at, restored_wall = time.monotonic(), time.time() * 1000

        # Live first: a reading taken after the gateway reconnected reaches InfluxDB
        # while the backlog is still being replayed.
        in_cut = [k for k, w in ward_watch.readings.items() if cut_wall < w.ts < restored_wall]
        await until(lambda: _arrived_after(cloud_watch, restored_at), 30, "the gateway reconnected")
        up_wall = min(w.wall_ms for w in cloud_watch.readings.values() if w.at > restored_at)
        first_live: float | None = None
        backlog_done: float | None = None
        while backlog_done is None or first_live is None:
            now = time.time() * 1000
            if first_live is None and await _count_stored(influx, platform.site, up_wall + 50, now):
                first_live = now - up_wall
            if backlog_done is None and await _count_stored(
                influx, platform.site, cut_wall, restored_wall
            ) >= len(in_cut):
                backlog_done = now - up_wall
            assert now - up_wall < 120_000, f"no drain: live {first_live}, backlog {backlog_done}"
            await asyncio.sleep(0.1)  # gentle on the CPU the gateway drains with
        records = metric(edge, "last_drain_records")
        drain_s = metric(edge, "last_drain_seconds")
        drain_rate = records / max(drain_s, 1e-3)
        report.append(
            f"cut {CUT_S:.0f} s: {backlog:.0f} records spooled; after the reconnect the first "
            f"live reading was in InfluxDB at {first_live:.0f} ms, the backlog at "
            f"{backlog_done:.0f} ms; gateway: {records:.0f} replayed in {drain_s:.2f} s "
            f"({drain_rate:.0f}/s = {drain_rate / (NODES * RATE):.1f}x the ward's rate)"
        )
        print(report[-1])
        # The order the platform received them in (exact, not polled).
        # The broker-side watcher may trail InfluxDB on a loaded box: wait for it.
        await until(
            lambda: _async(
                any(not w.hist and w.ts > up_wall + 50 for w in cloud_watch.readings.values())
            ),
            30,
            "a live reading after the reconnect at the platform broker",
        )
        replay = [cloud_watch.readings[k] for k in in_cut if k in cloud_watch.readings]
        fresh = [w for w in cloud_watch.readings.values() if not w.hist and w.ts > up_wall + 50]
        last_replay = max(w.at for w in replay)
        first_fresh = min(w.at for w in fresh)
        report.append(
            f"at the platform broker: first live reading {first_fresh - restored_at:.2f} s, "
            f"last replayed one {last_replay - restored_at:.2f} s after the restore"
        )
        print(report[-1])
        assert first_fresh < last_replay, report
        # InfluxDB is polled every ~0.1 s: a backlog that drains within one poll (8 000
        # records/s here) is seen complete in the same poll as the first live reading, so
        # the stored order is "not after"; the broker's order above is the exact one.
        assert first_live <= backlog_done, report
        assert drain_rate >= 10 * NODES * RATE, report

        # --- 2. kill -9 of the gateway in the middle of a replay ------------------------
        await proxy.cut()
        await asyncio.sleep(CUT_S)
        before = len([s for s in cloud_watch.readings.values() if s.hist])
        # The gateway dies as soon as the first replayed readings reach the platform.
        await proxy.restore()
        deadline = time.monotonic() + 60
        while len([s for s in cloud_watch.readings.values() if s.hist]) < before + 1:
            assert time.monotonic() < deadline, "the second replay did not start"
            await asyncio.sleep(0.005)
        gateway.proc.kill()  # type: ignore[union-attr]
        gateway.proc.wait(timeout=5)  # type: ignore[union-attr]
        left = _spool_records(edge)
        report.append(f"kill -9 mid-replay: {left} records still in the spool")
        assert left > 0, report  # the kill did land in the middle of the replay
        await asyncio.to_thread(gateway.start)

        # --- the end: stop the nodes, wait for the spool to empty -----------------------
        await asyncio.sleep(3)
        sim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim
        await until(lambda: _async(metric(edge, "spool_records") == 0), 60, "spool empty")
        await until(
            lambda: _stored_all(influx, platform.site, ward_watch), 30, "every reading stored"
        )
    finally:
        print(f"--- gateway log (last lines):\n{gateway.tail(30)}")
        sim.cancel()
        with contextlib.suppress(asyncio.CancelledError, BaseException):
            await sim
        await ward_watch.stop()
        await cloud_watch.stop()
        ingest_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest_task
        await proxy.close()

    published = stats[0].total
    rows = await stored(influx, platform.site)
    observed = ward_watch.readings
    lost = [k for k in observed if k not in rows]
    wrong_ts = [k for k, seen in observed.items() if k in rows and rows[k][0] != seen.ts]
    extra = [k for k in rows if k not in observed]
    during_cut = [k for k, s in observed.items() if cut_wall + 500 < s.ts < restored_wall - 500]
    report.append(
        f"published {published} (ward PUBACKs), seen on the ward {len(observed)}, stored "
        f"{len(rows)}, lost {len(lost)}, wrong ts {len(wrong_ts)}, unknown {len(extra)}; "
        f"delivered twice to the platform {cloud_watch.repeats} (stored once); "
        f"dropped {metric(edge, 'dropped_total'):.0f}"
    )
    print("\n".join(report))
    # Every acknowledged reading was seen; a few more may be, whose PUBACK reached the
    # node only after it stopped counting (the simulator's stop).
    assert published <= len(observed) <= published + NODES, report
    assert not lost and not wrong_ts and not extra, report
    assert all(rows[k][1] for k in during_cut), "readings replayed after the cut carry hist"
    assert metric(edge, "dropped_total") == 0


async def _arrived_after(watch: ReadingWatch, t: float) -> bool:
    return any(w.at > t for w in watch.readings.values())


async def _count_stored(influx: InfluxClient, site: str, after_ms: float, before_ms: float) -> int:
    """Readings of the site stored with a time in (after, before): cheap enough to poll."""
    kinds = ", ".join(quote_ident(k) for k in schema.READING_MEASUREMENTS)
    series = await influx.query(
        f"SELECT count({quote_ident(schema.SEQ)}) AS n FROM {kinds} "
        f"WHERE {quote_ident(schema.SITE)} = $site AND time > $a AND time < $b",
        params={"site": site, "a": int(after_ms) * 1_000_000, "b": int(before_ms) * 1_000_000},
    )
    return sum(int(row["n"]) for s in series for row in s.rows())


async def _async(value: bool) -> bool:
    return value


async def _count(watch: ReadingWatch, n: int) -> bool:
    return len(watch.readings) >= n


async def _stored_all(influx: InfluxClient, site: str, watch: ReadingWatch) -> bool:
    rows = await stored(influx, site)
    return all(k in rows for k in watch.readings)


def _spool_records(edge: object) -> int:
    import sqlite3

    from edge.settings import EdgeSettings

    assert isinstance(edge, EdgeSettings)
    db = sqlite3.connect(edge.spool_file)
    try:
        return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])
    finally:
        db.close()
