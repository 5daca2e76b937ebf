"""Message text in Vietnamese and English: what, where, how bad, since when, what to do.

Every word comes from the one catalogue the console reads too
(``deltasense/i18n.json`` through :mod:`deltasense.catalogue`): the notifier's own
texts under ``notify.``, and the console's words where they mean the same thing
(severities, states, "Xác nhận", the disaster risk levels' advice), so a duty officer
reads the same terms on the phone and on the screen.  Ward names come from
:mod:`deltasense.wards`; times are the site's local time, in the zone the caller
passes (``Settings.local_tz``, the one owner of the site's offset).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from deltasense.alerts import AlertEvent
from deltasense.catalogue import text as _catalogue_text
from deltasense.runtime import utc_label
from deltasense.wards import ward_name

MAX_LINES: Final = 10
BRIEF_LINES: Final = 3
HEADS: Final = {
    "alerts": "notify.title_alerts",
    "repeat": "notify.title_repeat",
    "escalation": "notify.title_escalation",
}
# What to do, per alert kind.  A storm's advice is the console's for its disaster
# risk level (risk_1 … risk_5, Decision 18/2021), the others the notifier's own.
TODO: Final = {
    "flood": "notify.todo_flood",
    "energy": "notify.todo_energy",
    "health": "notify.todo_health",
}
RISK_LEVELS: Final = range(1, 6)


def say(lang: str, key: str, **values: object) -> str:
    """The catalogue's text for ``key`` in ``lang``, its ``{placeholders}`` filled."""
    text = _catalogue_text(lang, key)
    return text.format(**values) if values else text


@dataclass(frozen=True)
class Text:
    title: str
    body: str


def local_time(ms: int, tz: timezone) -> str:
    """``05:00 01/12 (UTC+7)``: the site's wall clock, with its offset for strangers."""
    offset = tz.utcoffset(None) or timedelta(0)
    label = utc_label(int(offset.total_seconds() // 60))
    return f"{datetime.fromtimestamp(ms / 1000, tz).strftime('%H:%M %d/%m')} ({label})"


def _number(value: float, decimals: int, lang: str) -> str:
    text = f"{value:.{decimals}f}"
    return text.replace(".", ",") if lang == "vi" else text  # Vietnamese decimal comma


def _value(event: AlertEvent, name: str) -> float | None:
    value = event.values.get(name)
    return value if value is not None and value == value else None  # NaN is no value


def how_bad(event: AlertEvent, lang: str) -> list[str]:
    """Depth in cm, wind on the cấp scale (or its gusts), the disaster risk level."""
    parts: list[str] = []
    depth = _value(event, "depth_mm")
    if depth is not None:
        parts.append(say(lang, "notify.depth", cm=_number(depth / 10, 0, lang)))
    cap = _value(event, "cap")
    gust = _value(event, "gust_ms")
    if cap is not None:
        parts.append(say(lang, "notify.wind_cap", cap=int(cap)))
    elif gust is not None:
        parts.append(say(lang, "notify.gust", ms=_number(gust, 1, lang)))
    if event.kind == "storm" or event.risk_level > 1:
        parts.append(say(lang, "notify.risk", level=event.risk_level))
    return parts


def line(event: AlertEvent, lang: str, tz: timezone) -> str:
    parts = [f"[{say(lang, event.severity).upper()}] {getattr(event.message, lang)}"]
    parts.append(ward_name(event.district, lang))
    parts += how_bad(event, lang)
    parts.append(f"{say(lang, 'since')} {local_time(event.started, tz)}")
    if event.state != "firing":
        parts.append(say(lang, event.state))
    if event.ack is not None:
        parts.append(f"{say(lang, 'acked_by')} {event.ack.by}")
    return " · ".join(parts)


def advice(events: tuple[AlertEvent, ...], lang: str) -> list[str]:
    """What to do about the open, unacknowledged alerts, once per kind."""
    open_ = [e for e in events if e.state == "firing" and e.ack is None]
    out: list[str] = []
    for kind in dict.fromkeys(e.kind for e in open_):
        if kind == "storm":
            level = max(e.risk_level for e in open_ if e.kind == "storm")
            key = f"risk_{min(max(level, RISK_LEVELS[0]), RISK_LEVELS[-1])}"
        else:
            key = TODO[kind]
        out.append(say(lang, "notify.todo", advice=say(lang, key)))
    return out


def console_link(event: AlertEvent, lang: str, console_url: str) -> str:
    return f"{say(lang, 'notify.console')}: {console_url.rstrip('/')}/#alert={event.id}"


def render(
    events: tuple[AlertEvent, ...], lang: str, reason: str, *, console_url: str, tz: timezone
) -> Text:
    lines = [line(e, lang, tz) for e in events[:MAX_LINES]]
    if len(events) > MAX_LINES:
        lines.append(say(lang, "notify.more", n=len(events) - MAX_LINES))
    first = events[0]
    head = say(lang, HEADS.get(reason, HEADS["alerts"]))
    title = f"{head}: {getattr(first.message, lang)} — {ward_name(first.district, lang)}"
    link = console_link(first, lang, console_url)
    body = "\n".join([head, *lines, *advice(events, lang), link])
    return Text(title=title[:200], body=body)


def brief(events: tuple[AlertEvent, ...], lang: str, *, console_url: str, tz: timezone) -> str:
    """A message's short form for a crowded digest: its most urgent lines (criticals,
    then resolves and acks, then the rest), a count of the others, the console link."""

    def rank(e: AlertEvent) -> int:
        if e.state == "firing" and e.severity == "critical":
            return 0
        return 1 if e.state == "resolved" or e.ack is not None else 2

    ordered = sorted(events, key=rank)  # stable: the planner's order within a rank
    lines = [line(e, lang, tz) for e in ordered[:BRIEF_LINES]]
    if len(events) > BRIEF_LINES:
        lines.append(say(lang, "notify.more", n=len(events) - BRIEF_LINES))
    lines.append(console_link(ordered[0], lang, console_url))
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
    head_size = len(say(lang, "notify.digest", n=len(bodies))) + 2

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
    head = say(lang, "notify.digest", n=len(taken))
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
