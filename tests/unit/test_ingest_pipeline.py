"""The ingest pipeline as a pure function: message in, lines or a dead letter out."""

from __future__ import annotations

import json

from ingest.pipeline import Pipeline

NOW = 1_780_000_000_000


def test_reading_becomes_one_line_with_identity_and_flags() -> None:
    out = Pipeline("baclieu").handle(
        "baclieu/p1/weather/ws-1/tele",
        b'{"ts":%d,"seq":3,"boot":1,"t_c":70,"hist":true}' % NOW,
        NOW,
    )
    assert out.deadletter is None and out.readings == 1
    assert out.lines == [
        f'weather,device=ws-1,district=p1,site=baclieu t_c=70.0,seq=3i,boot=1i,hist=true,qc="t_c" {NOW}'
    ]


def test_other_sites_and_platform_subtrees_are_ignored() -> None:
    pipe = Pipeline("baclieu")
    assert pipe.handle("camau/p1/weather/ws-1/tele", b"{}", NOW).ignored
    assert pipe.handle("baclieu/_alerts/flood/street/d1", b"{}", NOW).ignored
    assert pipe.handle("baclieu/p1/lamp/l-1/cmd", b"{}", NOW).ignored


def test_bad_messages_become_dead_letters_with_unique_times() -> None:
    pipe = Pipeline("baclieu")
    first = pipe.handle("baclieu/p1/weather/ws-1/tele", b"nope", NOW)
    second = pipe.handle("baclieu/p1/weather/WS/tele", b"{}", NOW)
    assert (first.deadletter, second.deadletter) == ("not_json", "bad_topic")
    assert first.lines[0].endswith(f" {NOW}") and second.lines[0].endswith(f" {NOW + 1}")
    assert 'payload="nope"' in first.lines[0]


def test_unsynced_batch_gets_distinct_stable_stamps() -> None:
    pipe = Pipeline("baclieu")
    batch = json.dumps([{"seq": i, "boot": 1, "level_cm": i} for i in range(3)]).encode()
    first = pipe.handle("baclieu/p1/water/d-1/tele", batch, NOW)
    stamps = [line.rsplit(" ", 1)[1] for line in first.lines]
    assert stamps == [str(NOW), str(NOW + 1), str(NOW + 2)]
    again = pipe.handle("baclieu/p1/water/d-1/tele", batch, NOW + 500)  # QoS 1 redelivery
    assert again.lines == first.lines
    assert all("ts_platform=true" in line for line in first.lines)


def test_status_and_meta_lines() -> None:
    pipe = Pipeline("baclieu")
    status = pipe.handle("baclieu/p1/lamp/l-1/status", b'{"state":"offline"}', NOW)
    assert status.lines == [
        f'status,device=l-1,district=p1,kind=lamp,site=baclieu state="offline" {NOW}'
    ]
    meta = pipe.handle("baclieu/p1/lamp/l-1/meta", b"{}", NOW)
    assert meta.lines == [] and meta.deadletter is None
    bad = pipe.handle("baclieu/p1/lamp/l-1/meta", b'{"lat":"north"}', NOW)
    assert bad.deadletter == "schema"


def test_registry_points_are_throttled_per_device() -> None:
    from deltasense.contract import parse_topic
    from deltasense.settings import Settings
    from ingest.service import REGISTRY_INTERVAL_MS, Ingest

    ingest = Ingest(Settings(), influx=None)  # type: ignore[arg-type]  # no I/O here
    tele = parse_topic("baclieu/p1/water/d-1/tele")
    status = parse_topic("baclieu/p1/water/d-1/status")
    moved = parse_topic("baclieu/p2/water/d-1/tele")
    assert set(ingest._registry_due({"d-1": (tele, NOW)}, NOW)) == {"d-1"}  # first sight
    ingest._registered["d-1"] = (tele, NOW)
    assert ingest._registry_due({"d-1": (status, NOW + 1000)}, NOW + 1000) == {}
    assert set(ingest._registry_due({"d-1": (moved, NOW + 1000)}, NOW + 1000)) == {"d-1"}
    later = NOW + REGISTRY_INTERVAL_MS
    assert set(ingest._registry_due({"d-1": (tele, later)}, later)) == {"d-1"}
