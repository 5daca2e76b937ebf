"""The ingest pipeline as a pure function: message in, lines or a dead letter out."""

from __future__ import annotations

import json

from ingest.pipeline import Pipeline

NOW = 1_780_000_000_000
NS = 1_000_000  # ingest writes in ns


def stamp(line: str) -> int:
    return int(line.rsplit(" ", 1)[1])


def test_reading_becomes_one_line_with_identity_and_flags() -> None:
    out = Pipeline("baclieu").handle(
        "baclieu/p1/weather/ws-1/tele",
        b'{"ts":%d,"seq":3,"boot":1,"t_c":70,"hist":true}' % NOW,
        NOW,
    )
    assert out.deadletter is None and out.readings == 1
    assert out.lines == [
        "weather,device=ws-1,district=p1,site=baclieu"
        f' t_c=70.0,seq=3i,boot=1i,hist=true,qc="t_c" {NOW * NS + 3 * 1000 + 1}'
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
    # Both in NOW's millisecond, distinct, the second later.
    assert NOW * NS <= stamp(first.lines[0]) < stamp(second.lines[0]) < (NOW + 1) * NS
    assert 'payload="nope"' in first.lines[0]


def test_unsynced_batch_gets_distinct_stable_stamps() -> None:
    pipe = Pipeline("baclieu")
    batch = json.dumps([{"seq": i, "boot": 1, "level_cm": i} for i in range(3)]).encode()
    first = pipe.handle("baclieu/p1/water/d-1/tele", batch, NOW)
    stamps = [stamp(line) for line in first.lines]
    assert stamps == [(NOW + i) * NS + i * 1000 + 1 for i in range(3)]
    again = pipe.handle("baclieu/p1/water/d-1/tele", batch, NOW + 500)  # QoS 1 redelivery
    assert again.lines == first.lines
    assert all("ts_platform=true" in line for line in first.lines)


def test_status_and_meta_lines() -> None:
    pipe = Pipeline("baclieu")
    status = pipe.handle("baclieu/p1/lamp/l-1/status", b'{"state":"offline"}', NOW)
    assert status.lines == [
        f'status,device=l-1,district=p1,kind=lamp,site=baclieu state="offline" {NOW * NS}'
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


def test_same_ts_different_readings_do_not_collide_but_redelivery_does() -> None:
    """Series key + timestamp is a point's identity in InfluxDB: two readings of one
    device claiming one ts must land on different points, the same reading again
    on the same point (idempotent, with no state: a fresh pipeline agrees)."""
    topic = "baclieu/p1/water/d-1/tele"

    def line(seq: int, boot: int, pipe: Pipeline) -> str:
        payload = b'{"ts":%d,"seq":%d,"boot":%d,"level_cm":%d}' % (NOW, seq, boot, seq)
        (out,) = pipe.handle(topic, payload, NOW + 7).lines
        return out

    pipe = Pipeline("baclieu")
    seen = {stamp(line(seq, boot, pipe)) for seq in range(0, 1000, 37) for boot in (4, 5)}
    assert len(seen) == 2 * len(range(0, 1000, 37))
    assert all(NOW * NS <= t < (NOW + 1) * NS for t in seen)  # readers still see ts
    assert line(12, 4, pipe) == line(12, 4, pipe) == line(12, 4, Pipeline("baclieu"))
