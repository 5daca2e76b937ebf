"""Which subscription an ingest worker holds, what a bug in its message callback does,
and the chaos verdict on a queue overflow."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import cast

import paho.mqtt.client as paho
import pytest

from deltasense.influx import InfluxClient
from deltasense.settings import Settings
from ingest.service import Ingest, filters, shared_filter
from tools.chaos import Outcome


def test_one_worker_keeps_the_plain_filter_several_share_one() -> None:
    # Mosquitto 2.0.11 does not restore a shared subscription after a restart.
    assert filters(Settings(site="baclieu")) == ("baclieu/#", "$share/ingest/baclieu/#")
    two = Settings(site="baclieu", ingest_workers=2, ingest_worker=1)
    assert filters(two) == ("$share/ingest/baclieu/#", "baclieu/#")
    assert shared_filter("x") == "$share/ingest/x/#"


OVERFLOW = Outcome(
    scenario="queue overflow", published=100, unconfirmed=0, stored=60, duplicates=0,
    lost=40, restart_s=1.0, recover_s=2.0, alert_ids=1, dropped=40, drop_alert=True,
    overflow=True,
)  # fmt: skip


def test_an_overflow_passes_only_when_every_loss_is_counted_and_alerted() -> None:
    assert OVERFLOW.ok
    assert not dataclasses.replace(OVERFLOW, dropped=39).ok  # one loss nobody counted
    assert not dataclasses.replace(OVERFLOW, drop_alert=False).ok  # counted, not alerted
    assert not dataclasses.replace(OVERFLOW, lost=0, stored=100).ok  # did not overflow
    assert not dataclasses.replace(OVERFLOW, duplicates=1).ok


def test_any_other_scenario_fails_on_a_drop_or_a_loss() -> None:
    calm = dataclasses.replace(OVERFLOW, overflow=False, lost=0, stored=100, dropped=0)
    assert calm.ok
    assert not dataclasses.replace(calm, dropped=5).ok  # a drop the scenario did not intend
    assert not dataclasses.replace(calm, lost=1).ok
    assert dataclasses.replace(calm, lost=50, allowed_loss=100).ok  # the broker window


def test_a_bug_in_paho_s_message_callback_ends_the_session_and_acks_nothing() -> None:
    """Messages are taken in paho's callback, where an exception would only be logged
    by the event loop; it must end the session (the broker then redelivers) instead."""

    async def scenario() -> None:
        ingest = Ingest(Settings(site="baclieu"), cast(InfluxClient, None))
        ingest._fault = asyncio.get_running_loop().create_future()

        def broken(*_: object) -> None:
            raise RuntimeError("a bug in the pipeline")

        ingest.pipeline.handle = broken  # type: ignore[method-assign]
        message = paho.MQTTMessage(mid=7, topic=b"baclieu/phuong-1/water/wl-001/tele")
        message.payload, message.qos = b'{"seq":1,"boot":1,"level_cm":1.0}', 1
        ingest._on_message(None, None, message)
        with pytest.raises(RuntimeError, match="a bug in the pipeline"):
            await asyncio.wait_for(ingest._fault, 1)
        assert ingest._batch.acks == []  # nothing is acknowledged for it

    asyncio.run(scenario())
