"""Issue 9, item 2: rotating a node's secret while it runs loses no reading.

The node is the firmware (ds.node under CPython, as the simulator runs it) on
the locked-down broker with its own identity; the real ingest stores what it
sends.  Rotation pushes the new secret in the node's retained cfg, waits for the
node's confirmation (a fresh meta), switches the broker's password (which
disconnects the node) and the node reconnects with the new secret, its spool
holding the readings taken meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from deltasense import dynsec, provisioning
from deltasense.access import Service
from deltasense.contract import Kind
from deltasense.influx import InfluxClient
from deltasense.settings import Settings
from simulators.city import DeviceSpec
from simulators.device import VirtualDevice
from tests.security.conftest import LockedBroker
from tests.security.probe import NOT_AUTHORIZED, Probe, Refused
from tests.security.running import running_ingest


async def until(pred: Callable[[], Any], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_rotated_node_keeps_publishing_and_no_reading_is_lost(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str, settings: Settings, influx: InfluxClient
) -> None:
    spec = DeviceSpec(id=f"{tag}-ws", kind=Kind.WEATHER, district="phuong-1", lat=9.29,
                      lon=105.72, seed=3)  # fmt: skip
    old = await provisioning.add_device(
        admin, site=locked.site, district=spec.district, kind=spec.kind, device=spec.id
    )
    dev = VirtualDevice(
        spec, boot=1, site=locked.site, port=locked.port, live=True, user=spec.id,
        password=old, interval_s=0.1, keepalive_s=5, backoff_cap_s=1.0, ack_timeout_s=2.0,
    )  # fmt: skip
    n = dev.node
    async with running_ingest(locked.settings(settings, Service.INGEST), influx):
        task = asyncio.create_task(n.run())
        try:
            await until(lambda: n.connects == 1 and n.sent >= 10)
            new = await provisioning.rotate_device(admin, locked.admin, spec.id, wait_s=10)
            assert new != old and n.client.password == new
            at_rotation = n.sent
            await until(lambda: n.connects == 2)  # disconnected by the switch, back at once
            await until(lambda: n.sent >= at_rotation + 20)
            with pytest.raises(Refused) as refused:  # the old secret is dead
                Probe(locked.port, spec.id, username=spec.id, password=old).connect()
            assert refused.value.code == NOT_AUTHORIZED
        finally:
            await n.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sent = n.sent
        stored: list[int] = []
        for _ in range(50):
            result = await influx.query(
                f'SELECT "seq" FROM "weather" WHERE "device" = \'{spec.id}\''
            )
            stored = sorted(int(r["seq"]) for s in result for r in s.rows())
            if len(stored) >= sent:
                break
            await asyncio.sleep(0.1)
    dev.close()
    print(f"rotation: {sent} readings confirmed by the broker, {len(stored)} stored, "
          f"{n.connects} connections, {n.errors} lost sessions")  # fmt: skip
    assert n.connects == 2
    assert len(stored) == sent and stored == list(range(stored[0], stored[0] + sent))
    # The secret is not left in the broker's retained cfg.
    with Probe(locked.port, f"{tag}-adm", locked.admin.username, locked.admin.password) as adm:
        adm.subscribe(f"{locked.site}/{spec.district}/{spec.kind}/{spec.id}/cfg")
        await asyncio.sleep(0.5)
        assert all(new.encode() not in p for _, p, _ in adm.messages)
