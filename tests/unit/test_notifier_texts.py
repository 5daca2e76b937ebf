"""Message text: what, where (ward name), how bad, since when (local time), what to do, link."""

from __future__ import annotations

from datetime import timedelta, timezone

from deltasense.alerts import Ack, AlertEvent, Message
from notifier import texts
from notifier.texts import render

ICT = timezone(timedelta(hours=7))


def flood(**kw: object) -> AlertEvent:
    base: dict[str, object] = dict(
        id="al-1",
        kind="flood",
        rule="street-flood",
        subject="wl-nm-001",
        district="nha-mat",
        severity="critical",
        state="firing",
        started=1_764_540_000_000,
        updated=0,  # 22:00 UTC
        values={"depth_mm": 352.0},
        message=Message(vi="Ngập đường", en="Street flooding"),
    )
    base.update(kw)
    return AlertEvent(**base)  # type: ignore[arg-type]


def test_vietnamese_text_has_ward_depth_local_time_advice_and_link() -> None:
    t = render((flood(),), "vi", "alerts", console_url="https://ds.example.vn/", tz=ICT)
    assert t.title == "Cảnh báo DeltaSense: Ngập đường — Nhà Mát"
    assert "[NGHIÊM TRỌNG] Ngập đường · Nhà Mát · sâu 35 cm · từ 05:00 01/12" in t.body
    assert "Không đi vào đường ngập" in t.body
    assert t.body.endswith("https://ds.example.vn/#alert=al-1")


def test_english_resolved_acked_city_and_many() -> None:
    storm = flood(
        kind="storm",
        rule="storm-risk",
        district="",
        risk_level=4,
        values={},
        state="resolved",
        ack=Ack(by="an", ts=0),
        message=Message(vi="Bão", en="Storm"),
    )
    t = render(
        (storm, *(flood(id=f"al-{n}") for n in range(12))),
        "en",
        "repeat",
        console_url="http://c",
        tz=ICT,
    )
    assert t.title.startswith("Reminder: nobody has acknowledged: Storm — whole city")
    assert "whole city · level 4 · since 05:00 01/12 · resolved · Acknowledged by an" in t.body
    assert "and 3 more alerts" in t.body


def test_a_digest_carries_what_fits_urgent_first_with_their_buttons() -> None:
    bodies = [
        {"title": "a", "text": "A" * 900, "buttons": [["Xác nhận: A", "ack:al-a"]]},
        {"title": "b", "text": "B" * 900, "buttons": [["Xác nhận: B", "ack:al-b"]]},
        {"title": "c", "text": "C" * 900},
    ]
    body, n = texts.digest(bodies, "vi", limit=2000, max_buttons=5)
    assert n == 2  # the third would pass Zalo's 2 000 characters
    assert body["title"] == "DeltaSense: 2 tin cảnh báo"
    assert body["text"].startswith("DeltaSense: 2 tin cảnh báo\n\n" + "A" * 900 + "\n\n" + "B")
    assert len(body["text"]) <= 2000
    assert body["buttons"] == [["Xác nhận: A", "ack:al-a"], ["Xác nhận: B", "ack:al-b"]]
    one, n = texts.digest(bodies, "en", limit=1000, max_buttons=1)
    assert (one, n) == (bodies[0], 1)  # alone: the message itself, unchanged
    capped, n = texts.digest(bodies, "en", limit=4096, max_buttons=1)
    assert n == 3 and capped["title"] == "DeltaSense: 3 alert messages"
    assert capped["buttons"] == [["Xác nhận: A", "ack:al-a"]]


def test_a_crowded_digest_switches_to_brief_forms_with_criticals_first() -> None:
    warn = flood(id="al-w", severity="warning")
    crit = flood(id="al-c")
    short = texts.brief((warn, crit, warn, warn), "vi", console_url="https://c.vn", tz=ICT)
    lines = short.splitlines()
    assert lines[0].startswith("[NGHIÊM TRỌNG]") and "Nhà Mát" in lines[0]
    assert lines[3] == "và 1 cảnh báo khác"
    assert lines[4] == "Xem trên bảng điều khiển: https://c.vn/#alert=al-c"
    bodies = [{"title": "t", "text": "X" * 1500, "brief": f"brief {i}"} for i in range(6)]
    body, n = texts.digest(bodies, "en", limit=4096, max_buttons=5)
    assert n == 6  # full texts would carry two; the brief forms carry all six
    assert body["text"].split("\n\n")[1:] == [f"brief {i}" for i in range(6)]


def test_a_very_crowded_digest_carries_one_line_each_and_one_link() -> None:
    brief = "[CRITICAL] Flood {i} · Nhà Mát\nsecond line\nOpen in the console: https://c.vn/#alert=al-{i}"
    bodies = [{"title": "t", "text": "X" * 1500, "brief": brief.format(i=i)} for i in range(40)]
    body, n = texts.digest(bodies, "en", limit=2000, max_buttons=5)
    lines = body["text"].split("\n")
    assert n == len(lines) - 2 > 20  # more than their brief forms would carry
    assert lines[0] == f"DeltaSense: {n} alert messages"
    assert lines[1:-1] == [f"[CRITICAL] Flood {i} · Nhà Mát" for i in range(n)]
    assert lines[-1] == "Open in the console: https://c.vn/#alert=al-0"
    assert len(body["text"]) <= 2000
