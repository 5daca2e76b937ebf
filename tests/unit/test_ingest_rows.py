"""Ingest's hot path (rows straight to line protocol) writes exactly the points of
the readings path (``Reading`` → ``out_of_range`` → ``reading_lines``).

The two share only the series head (``schema._series_head``), no field encoding
or QC code: ``schema.row_lines`` checks the QC ranges and formats fields in one
pass of its own, so this property is what keeps the
stored layout one layout.  Valid messages come from the hostile generator, so
they hold out-of-range values, zeros, tiny and huge floats, booleans, integer
health counters, ``hist`` and readings without ``ts``.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from deltasense import schema
from deltasense.contract import decode_rows, decode_tele, parse_topic, reading_of
from deltasense.qc import out_of_range
from ingest.pipeline import Pipeline
from tests.hostile import message

NOW = 1_780_000_000_000


@settings(max_examples=400, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_row_lines_are_the_reading_lines_of_the_same_message(rng: random.Random) -> None:
    msg = message("valid", rng, NOW)
    topic = parse_topic(
        f"baclieu/phuong-{rng.randint(1, 9)}/{msg.kind}/dev-{rng.randint(1, 99)}/tele"
    )
    readings = decode_tele(topic, msg.payload, NOW)
    expected = schema.reading_lines(
        readings, [out_of_range(r.kind, r.fields) for r in readings], ns=True
    )
    rows = decode_rows(topic, msg.payload, NOW)
    assert schema.row_lines(topic, rows, [r.ts_ms for r in readings]) == expected
    assert [reading_of(topic, row, NOW) for row in rows] == readings


def test_a_flagged_field_a_bool_and_a_stamped_hist_reading_in_one_batch() -> None:
    """The cases by hand, so a failure here reads without Hypothesis."""
    topic = parse_topic("baclieu/phuong-1/lamp/lp-001/tele")
    payload = (
        b'[{"seq":1,"boot":2,"ts":1779999990000,"on":true,"dim_pct":140.0,"heap_b":9000},'
        b'{"seq":2,"boot":2,"hist":true,"on":false,"power_w":-3.5,"rssi_dbm":-70}]'
    )
    out = Pipeline("baclieu").handle(str(topic), payload, NOW)
    assert out.deadletter is None and out.readings == 2
    head = "lamp,device=lp-001,district=phuong-1,site=baclieu "
    assert out.lines == [
        f'{head}on=true,dim_pct=140.0,heap_b=9000i,seq=1i,boot=2i,qc="dim_pct"'
        f" {1779999990000 * 1_000_000 + 1000 + 2}",
        f'{head}on=false,power_w=-3.5,rssi_dbm=-70.0,seq=2i,boot=2i,hist=true,ts_platform=true,qc="power_w"'
        f" {NOW * 1_000_000 + 2000 + 2}",
    ]
    # Only the live reading with its own ts counts towards ingest's lag.
    assert out.newest_ms == 1779999990000
