"""Property test: every hostile category gets its own verdict, valid readings always pass.

The generator (``tests/hostile.py``) hides exactly one fault in an otherwise
valid reading or batch; Hypothesis drives its random choices, so a failure
shrinks to a small payload.  Ingest decodes through ``decode_rows`` and
analytics through ``decode_tele`` (the same rows and checks, plus a Reading each);
ingest's pipeline turns the verdict into its dead letter.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.engine import Engine
from analytics.service import AnalyticsService
from deltasense.contract import ContractError, decode_tele, parse_topic
from deltasense.influx import InfluxClient
from deltasense.reasons import Reason
from deltasense.settings import Settings
from ingest.pipeline import Pipeline
from tests.hostile import CATEGORIES, FAULTS, message

NOW = 1_780_000_000_000


def _topic(kind: str) -> str:
    return f"baclieu/phuong-1/{kind}/dev-1/tele"


@pytest.mark.parametrize("category", list(FAULTS))
@settings(max_examples=60, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_hostile_category_gets_its_reason(category: str, rng: random.Random) -> None:
    msg = message(category, rng, NOW)
    with pytest.raises(ContractError) as info:
        decode_tele(parse_topic(_topic(msg.kind)), msg.payload, NOW)
    assert info.value.reason == msg.reason, msg.payload
    # Ingest stores nothing of it but its dead letter, under that reason.
    out = Pipeline("baclieu").handle(_topic(msg.kind), msg.payload, NOW)
    assert out.deadletter == msg.reason and out.readings == 0
    assert len(out.lines) == 1 and out.lines[0].startswith(f"deadletters,reason={msg.reason} ")


@settings(max_examples=200, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_valid_readings_always_pass_unchanged(rng: random.Random) -> None:
    msg = message("valid", rng, NOW)
    readings = decode_tele(parse_topic(_topic(msg.kind)), msg.payload, NOW)
    wire = json.loads(msg.payload)
    wires = wire if isinstance(wire, list) else [wire]
    assert len(readings) == len(wires) == msg.readings
    for reading, sent in zip(readings, wires, strict=True):
        assert (reading.seq, reading.boot) == (sent["seq"], sent["boot"])
        assert reading.ts_ms == sent.get("ts", NOW)
        for name, value in reading.fields.items():
            assert (value == sent[name] and type(value) is type(sent[name])) or (
                isinstance(sent[name], int) and value == float(sent[name])
            )
    out = Pipeline("baclieu").handle(_topic(msg.kind), msg.payload, NOW)
    assert out.deadletter is None and out.readings == msg.readings


def test_every_category_is_generated_and_every_device_reason_covered() -> None:
    """The generator covers each reason a reading's content can earn."""
    content = set(Reason) - {
        Reason.BAD_TOPIC,  # the topic, not the payload
        Reason.TOO_LARGE,
        Reason.NOT_JSON,
        Reason.EMPTY_BATCH,
        Reason.BATCH_TOO_LARGE,  # message shape: tests/unit/test_contract.py
        Reason.STORE_REJECTED,
        Reason.UNSTORABLE,  # storage side
    }
    assert {reason for reason, _ in FAULTS.values()} == content
    assert CATEGORIES[0] == "valid"


def test_analytics_skips_the_same_messages_for_the_same_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> None:
    """Analytics decodes with the same checks (decode_tele): it evaluates nothing ingest
    dead-letters, and counts it under the same reason."""
    monkeypatch.chdir(tmp_path)
    settings = Settings(site="baclieu", analytics_metrics_port=0)
    service = AnalyticsService(settings, make_engine(), cast(InfluxClient, None))
    seen: list[str] = []
    monkeypatch.setattr(service, "_bad", lambda reason, *_: seen.append(reason))
    rng = random.Random(4)
    sent: list[Reason] = []
    for category in FAULTS:
        for _ in range(25):
            msg = message(category, rng, NOW)
            assert msg.reason is not None
            monkeypatch.setattr("analytics.service.now_ms", lambda: NOW)
            assert service.handle(_topic(msg.kind), msg.payload) == 0
            sent.append(msg.reason)
    assert seen == sent
