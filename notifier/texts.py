"""Message text in Vietnamese and English: what, where, how bad, since when, what to do.

Words follow the console's catalogue (api/static/app.js I18N) so a duty officer
reads the same terms on the phone and on the screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from deltasense.alerts import AlertEvent
from deltasense.wards import ward_name

WORDS: Final[dict[str, dict[str, str]]] = {
    "vi": {
        "info": "thông tin",
        "warning": "cảnh báo",
        "critical": "nghiêm trọng",
        "pending": "chờ xác nhận",
        "firing": "đang cảnh báo",
        "resolved": "đã kết thúc",
        "acked_by": "Đã xác nhận bởi",
        "since": "từ",
        "depth": "sâu",
        "level": "cấp",
        "repeat": "Nhắc lại: chưa ai xác nhận",
        "escalation": "Chuyển cấp: chưa ai xác nhận",
        "alerts": "Cảnh báo DeltaSense",
        "more": "và {n} cảnh báo khác",
        "console": "Xem trên bảng điều khiển",
        "ack": "Xác nhận",
        "ack_link": "Xác nhận đã nhận cảnh báo",
        "digest": "DeltaSense: {n} tin cảnh báo",
    },
    "en": {
        "info": "info",
        "warning": "warning",
        "critical": "critical",
        "pending": "pending",
        "firing": "firing",
        "resolved": "resolved",
        "acked_by": "Acknowledged by",
        "since": "since",
        "depth": "depth",
        "level": "level",
        "repeat": "Reminder: nobody has acknowledged",
        "escalation": "Escalated: nobody has acknowledged",
        "alerts": "DeltaSense alerts",
        "more": "and {n} more alerts",
        "console": "Open in the console",
        "ack": "Acknowledge",
        "ack_link": "Acknowledge this alert",
        "digest": "DeltaSense: {n} alert messages",
    },
}
ADVICE: Final[dict[str, dict[str, str]]] = {
    "vi": {
        "flood": "Không đi vào đường ngập; kiểm tra cống và bơm; báo người dân khu vực.",
        "storm": "Gia cố, chằng chống; tránh xa cây lớn, cột điện; theo dõi tin bão.",
        "energy": "Kiểm tra tủ điện và đèn tại chỗ.",
        "health": "Kiểm tra thiết bị tại hiện trường.",
    },
    "en": {
        "flood": "Keep off flooded streets; check drains and pumps; warn residents.",
        "storm": "Secure loose objects; keep away from large trees and poles; follow storm bulletins.",
        "energy": "Check the cabinet and lamps on site.",
        "health": "Check the device on site.",
    },
}
MAX_LINES: Final = 10


@dataclass(frozen=True)
class Text:
    title: str
    body: str


def _local(ms: int, tz: timezone) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M %d/%m")


def _cm(depth_mm: float, lang: str) -> str:
    text = f"{depth_mm / 10:.0f}"
    return text if lang == "en" else text.replace(".", ",")


def line(event: AlertEvent, lang: str, tz: timezone) -> str:
    w = WORDS[lang]
    parts = [f"[{w[event.severity].upper()}] {getattr(event.message, lang)}"]
    parts.append(ward_name(event.district, lang))
    if event.kind == "storm" or event.risk_level > 1:
        parts.append(f"{w['level']} {event.risk_level}")
    depth = event.values.get("depth_mm")
    if depth is not None and depth == depth:  # NaN is no depth
        parts.append(f"{w['depth']} {_cm(depth, lang)} cm")
    parts.append(f"{w['since']} {_local(event.started, tz)}")
    if event.state != "firing":
        parts.append(w[event.state])
    if event.ack is not None:
        parts.append(f"{w['acked_by']} {event.ack.by}")
    return " · ".join(parts)


def render(
    events: tuple[AlertEvent, ...], lang: str, reason: str, *, console_url: str, tz: timezone
) -> Text:
    w = WORDS[lang]
    lines = [line(e, lang, tz) for e in events[:MAX_LINES]]
    if len(events) > MAX_LINES:
        lines.append(w["more"].format(n=len(events) - MAX_LINES))
    first = events[0]
    head = w[reason] if reason in ("repeat", "escalation") else w["alerts"]
    title = f"{head}: {getattr(first.message, lang)} — {ward_name(first.district, lang)}"
    kinds = dict.fromkeys(e.kind for e in events if e.state == "firing" and e.ack is None)
    advice = [ADVICE[lang][k] for k in kinds]
    link = f"{w['console']}: {console_url.rstrip('/')}/#alert={first.id}"
    body = "\n".join([head, *lines, *advice, link])
    return Text(title=title[:200], body=body)


BRIEF_LINES: Final = 3


def brief(events: tuple[AlertEvent, ...], lang: str, *, console_url: str, tz: timezone) -> str:
    """A message's short form for a crowded digest: its most urgent lines (criticals,
    then resolves and acks, then the rest), a count of the others, the console link."""
    w = WORDS[lang]

    def rank(e: AlertEvent) -> int:
        if e.state == "firing" and e.severity == "critical":
            return 0
        return 1 if e.state == "resolved" or e.ack is not None else 2

    ordered = sorted(events, key=rank)  # stable: the planner's order within a rank
    lines = [line(e, lang, tz) for e in ordered[:BRIEF_LINES]]
    if len(events) > BRIEF_LINES:
        lines.append(w["more"].format(n=len(events) - BRIEF_LINES))
    lines.append(f"{w['console']}: {console_url.rstrip('/')}/#alert={ordered[0].id}")
    return "\n".join(lines)


def digest(
    bodies: list[dict[str, Any]], lang: str, *, limit: int, max_buttons: int
) -> tuple[dict[str, Any], int]:
    """Several messages to one chat as one (a rate-limited channel in a storm), in the
    given order (urgent first), as much of each as lets the most of them fit in
    ``limit`` characters: full texts, else brief forms, else each one's most urgent
    line (and one console link).  Ack buttons up to ``max_buttons``.  Returns the
    body and how many of ``bodies`` it carries (at least the first, which the
    channel then truncates)."""
    head_size = len(WORDS[lang]["digest"]) + 8

    def text_of(b: dict[str, Any], form: str) -> str:
        brief_text: str = b.get("brief") or b["text"]
        if form == "text":
            return str(b["text"])
        return brief_text if form == "brief" else brief_text.splitlines()[0]

    def fitting(form: str, reserve: int = 0) -> list[str]:
        out: list[str] = []
        size = head_size + reserve
        for b in bodies:
            text = text_of(b, form)
            if out and size + len(text) + 2 > limit:
                break
            out.append(text)
            size += len(text) + 2
        return out

    link = (bodies[0].get("brief") or bodies[0]["text"]).splitlines()[-1]
    parts, sep, tail = fitting("text"), "\n\n", []
    if len(parts) < len(bodies):
        parts = max(parts, fitting("brief"), key=len)
    if len(parts) < len(bodies):
        lines = fitting("line", reserve=len(link) + 2)
        if len(lines) > len(parts):
            parts, sep, tail = lines, "\n", [link]
    if len(parts) == 1:
        return bodies[0], 1
    taken = bodies[: len(parts)]
    head = WORDS[lang]["digest"].format(n=len(taken))
    buttons: list[list[str]] = []
    seen: set[str] = set()
    for b in taken:
        for label, data in b.get("buttons") or []:
            if data not in seen and len(buttons) < max_buttons:
                seen.add(data)
                buttons.append([label, data])
    body: dict[str, Any] = {"title": head, "text": sep.join([head, *parts, *tail])}
    if buttons:
        body["buttons"] = buttons
    return body, len(taken)
