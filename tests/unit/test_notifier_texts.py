"""Message text from the shared catalogue: what, where (ward name), how bad (cấp, depth
in cm), since when (the site's local time), what to do, the console link; vi and en."""

from __future__ import annotations

import re
import string
import typing
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from deltasense.alerts import Ack, AlertEvent, AlertKind, AlertState, Message, Severity
from deltasense.catalogue import load as load_catalogue
from deltasense.settings import Settings
from notifier import texts
from notifier.texts import render

ICT = Settings().local_tz  # the site's zone from its one owner (UTC+7 by default)
NOTIFIER = Path(__file__).resolve().parents[2] / "notifier"


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
    assert "[NGHIÊM TRỌNG] Ngập đường · Nhà Mát · sâu 35 cm · từ 05:00 01/12 (UTC+7)" in t.body
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
    assert (
        "whole city · disaster risk level 4 · since 05:00 01/12 (UTC+7) · resolved"
        " · Acknowledged by an" in t.body
    )
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


# --- the catalogue ------------------------------------------------------------------------
CATALOGUE = load_catalogue()


def _used_keys() -> set[str]:
    """Every catalogue key the notifier names: literal ``"notify.…"`` strings and
    ``say(lang, "key")`` calls, plus the keys it builds from an alert's fields."""
    keys: set[str] = set()
    for source in NOTIFIER.glob("*.py"):
        code = source.read_text(encoding="utf-8")
        keys |= set(re.findall(r'"(notify\.[a-z0-9_]+)"', code))
        keys |= set(re.findall(r"""\bsay\(\s*[^,()]+,\s*['"]([a-z0-9_.]+)['"]""", code))
        keys |= set(re.findall(r"""\b_both\(\s*['"]([a-z0-9_.]+)['"]""", code))
    keys |= set(typing.get_args(Severity)) | set(typing.get_args(AlertState))
    keys |= {f"risk_{n}" for n in texts.RISK_LEVELS}
    return keys


def test_every_notifier_key_is_in_both_languages_with_the_same_placeholders() -> None:
    used = _used_keys()
    assert {"notify.depth", "notify.todo_flood", "acked_by", "ack", "risk_4"} <= used
    for lang in ("vi", "en"):
        missing = sorted(used - set(CATALOGUE[lang]))
        assert missing == [], f"{lang}: {missing}"
    notify = {k for k in CATALOGUE["vi"] if k.startswith("notify.")}
    assert notify - used == set(), "notify.* keys nobody uses"

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for key in used:
        assert fields(CATALOGUE["vi"][key]) == fields(CATALOGUE["en"][key]), key
    assert set(texts.TODO) | {"storm"} == set(typing.get_args(AlertKind))


def test_the_notifiers_vietnamese_has_its_diacritics() -> None:
    vi = {k: v for k, v in CATALOGUE["vi"].items() if k.startswith("notify.")}
    assert vi["notify.risk"] == "rủi ro thiên tai cấp {level}"
    for slip in ("canh bao", "xac nhan", "ngap", "cap ", "thu lai", "lien ket", "bang dieu"):
        assert not [k for k, v in vi.items() if slip in v.lower()], slip


def _storm(**kw: object) -> AlertEvent:
    base: dict[str, object] = dict(
        kind="storm",
        rule="wind-cap",
        subject="ws-p1-001",
        district="phuong-1",
        risk_level=4,
        values={"cap": 10.0, "wind_10min_ms": 25.3},
        message=Message(vi="Gió mạnh cấp 10", en="Strong wind, cấp 10"),
    )
    base.update(kw)
    return flood(**base)


@pytest.mark.parametrize(
    ("lang", "parts"),
    [
        (
            "vi",
            [
                "Cảnh báo DeltaSense: Ngập đường — Nhà Mát",  # what, where
                "[NGHIÊM TRỌNG]",  # how bad
                "sâu 35 cm",
                "từ 05:00 01/12 (UTC+7)",  # since when, local time
                "Việc cần làm: Không đi vào đường ngập",  # what to do
                "Xem trên bảng điều khiển: https://ds.example.vn/#alert=al-1",
            ],
        ),
        (
            "en",
            [
                "DeltaSense alerts: Street flooding — Nhà Mát",
                "[CRITICAL]",
                "depth 35 cm",
                "since 05:00 01/12 (UTC+7)",
                "What to do: Keep off flooded streets",
                "Open in the console: https://ds.example.vn/#alert=al-1",
            ],
        ),
    ],
)
def test_a_flood_message_has_every_part(lang: str, parts: list[str]) -> None:
    t = render((flood(),), lang, "alerts", console_url="https://ds.example.vn", tz=ICT)
    text = f"{t.title}\n{t.body}"
    for part in parts:
        assert part in text, (part, text)
    assert "notify." not in text  # no key leaked as text


@pytest.mark.parametrize(
    ("lang", "parts"),
    [
        (
            "vi",
            [
                "Chuyển cấp: chưa ai xác nhận: Gió mạnh cấp 10 — Phường 1",
                "[CẢNH BÁO] Gió mạnh cấp 10 · Phường 1 · gió cấp 10 · rủi ro thiên tai cấp 4",
                "từ 05:00 01/12 (UTC+7)",
                "Việc cần làm: " + CATALOGUE["vi"]["risk_4"],  # the console's advice for level 4
                "[THÔNG TIN] Bão · toàn thành phố",
                "gió giật 28,4 m/s",  # Vietnamese decimal comma
            ],
        ),
        (
            "en",
            [
                "Escalated: nobody has acknowledged: Strong wind, cấp 10 — Phường 1",
                "[WARNING] Strong wind, cấp 10 · Phường 1 · wind force 10 (cấp) · disaster risk level 4",
                "since 05:00 01/12 (UTC+7)",
                "What to do: " + CATALOGUE["en"]["risk_4"],
                "gusts 28.4 m/s",
            ],
        ),
    ],
)
def test_a_storm_message_has_every_part(lang: str, parts: list[str]) -> None:
    events = (
        _storm(severity="warning"),
        _storm(
            id="al-2",
            severity="info",
            district="",
            risk_level=2,
            values={"gust_ms": 28.4},
            message=Message(vi="Bão", en="Storm"),
        ),
    )
    t = render(events, lang, "escalation", console_url="http://c", tz=ICT)
    text = f"{t.title}\n{t.body}"
    for part in parts:
        assert part in text, (part, text)
    assert text.count(texts.say(lang, "notify.todo", advice="")) == 1  # once per kind
    short = texts.brief(events, lang, console_url="http://c", tz=ICT)
    assert short.splitlines()[-1] == texts.console_link(events[0], lang, "http://c")


def test_the_time_is_the_sites_zone_not_a_constant() -> None:
    india = timezone(timedelta(minutes=330))
    t = render((flood(),), "en", "alerts", console_url="http://c", tz=india)
    assert "since 03:30 01/12 (UTC+5:30)" in t.body
    assert Settings(utc_offset_min=330).local_tz == india


def test_an_acked_alert_gets_no_advice_and_an_unknown_language_falls_back_to_vietnamese() -> None:
    acked = flood(ack=Ack(by="an", ts=0))
    assert "Việc cần làm" not in render((acked,), "vi", "alerts", console_url="x", tz=ICT).body
    assert texts.say("fr", "critical") == "nghiêm trọng"
    with pytest.raises(KeyError, match=r"notify\.nope"):
        texts.say("vi", "notify.nope")
