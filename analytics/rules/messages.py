"""Short Vietnamese and English texts for alert changes.

A rule declares its title in both languages (analytics/ruleset.py); :func:`titled`
turns it into the rule's message function, which shows up to three of the
alert's values with the labels and units of :data:`LABELS`.  Street flooding
has its own wording (:func:`street_flood`).  Vietnamese numbers use the decimal
comma.
"""

from __future__ import annotations

from typing import Final

from deltasense.alerts import Message
from deltasense.lifecycle import MessageContext, MessageFn
from deltasense.wards import ward_name

# value → (label vi, label en, unit, decimals)
LABELS: Final[dict[str, tuple[str, str, str, int]]] = {
    "cap": ("cấp", "force", "", 0),
    "wind_10min_ms": ("gió trung bình 10 phút", "10-min mean wind", "m/s", 1),
    "gust_ms": ("gió giật", "gust", "m/s", 1),
    "wind_ms": ("gió", "wind", "m/s", 1),
    "tendency_3h_hpa": ("biến áp 3 giờ", "3 h tendency", "hPa", 1),
    "tendency_6h_hpa": ("biến áp 6 giờ", "6 h tendency", "hPa", 1),
    "t_drop_c": ("nhiệt độ giảm", "temperature drop", "°C", 1),
    "rain_1h_mm": ("mưa 1 giờ", "rain in 1 h", "mm", 1),
    "rain_3h_mm": ("mưa 3 giờ", "rain in 3 h", "mm", 1),
    "rain_day_mm": ("mưa từ 7 giờ", "rain since 07:00", "mm", 1),
    "level": ("cấp độ rủi ro", "risk level", "", 0),
    "stations_agreeing": ("số trạm", "stations", "", 0),
    "rise_mm_per_5min": ("tốc độ dâng", "rising", "mm/5 phút|mm/5 min", 0),
    "minutes_to_next_limit": ("còn khoảng", "next limit in about", "phút|min", 0),
    "level_m": ("mực nước", "level", "m", 2),
    "spike_mm": ("bước nhảy", "jump", "mm", 0),
    "drains_flooded": ("cống ngập", "flooded drains", "", 0),
    "canal_above_alarm_m": ("kênh so với báo động", "canal vs alarm level", "m", 2),
    "power_w": ("công suất", "power", "W", 0),
    "drift_pct": ("lệch", "drift", "%", 0),
    "switches_per_h": ("số lần bật tắt mỗi giờ", "switches per hour", "", 0),
    "kwh_per_night": ("tiết kiệm mỗi đêm", "saving per night", "kWh", 2),
    "vnd_per_year": ("mỗi năm", "per year", "VND", 0),
    "wh": ("điện năng giờ qua", "last hour", "Wh", 0),
    "deviation_pct": ("lệch", "off baseline by", "%", 0),
    "silent_s": ("im lặng", "silent for", "s", 0),
    "silent": ("thiết bị im lặng", "devices silent", "", 0),
    "devices": ("trên tổng", "of", "", 0),
    "spikes": ("số lần", "count", "", 0),
    "flagged_readings": ("số bản tin", "readings", "", 0),
    "batt_v": ("pin", "battery", "V", 2),
    "rssi_dbm": ("tín hiệu", "signal", "dBm", 0),
    "skew_s": ("lệch", "off by", "s", 0),
}
MAX_SHOWN: Final = 3


def _number(value: float, decimals: int, decimal: str) -> str:
    text = f"{value:,.{decimals}f}"
    if decimal == ",":  # Vietnamese: 1.234,5
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def _details(ctx: MessageContext, vi: bool) -> str:
    parts: list[str] = []
    for key, value in ctx.values.items():
        label = LABELS.get(key)
        if label is None or len(parts) >= MAX_SHOWN:
            continue
        name = label[0] if vi else label[1]
        units = label[2].split("|")
        unit = units[0] if vi or len(units) == 1 else units[1]
        number = _number(value, label[3], "," if vi else ".")
        parts.append(f"{name} {number}{' ' + unit if unit else ''}")
    return ", ".join(parts)


def _where(ctx: MessageContext) -> tuple[str, str]:
    """Where, as operators say it: the device and its ward's display name ("tại
    drain-x (Phường 1)"), or the ward alone for a ward's own alert."""
    if ctx.district and ctx.district == ctx.subject:
        return f"tại {ward_name(ctx.district, 'vi')}", f"at {ward_name(ctx.district, 'en')}"
    if ctx.district:
        return (
            f"tại {ctx.subject} ({ward_name(ctx.district, 'vi')})",
            f"at {ctx.subject} ({ward_name(ctx.district, 'en')})",
        )
    return f"tại {ctx.subject}", f"at {ctx.subject}"


def titled(title_vi: str, title_en: str) -> MessageFn:
    """The message function of a rule titled ``title_vi`` / ``title_en``."""
    if not (title_vi and title_en):
        raise ValueError("a rule needs a Vietnamese and an English title")

    def message(ctx: MessageContext) -> Message:
        where_vi, where_en = _where(ctx)
        vi, en = _details(ctx, True), _details(ctx, False)
        if ctx.state == "resolved":
            return Message(
                vi=f"Đã hết: {title_vi.lower()} {where_vi}" + (f" ({vi})" if vi else ""),
                en=f"Over: {title_en.lower()} {where_en}" + (f" ({en})" if en else ""),
            )
        severe_vi = " nghiêm trọng" if ctx.severity == "critical" else ""
        severe_en = "Severe: " if ctx.severity == "critical" else ""
        return Message(
            vi=f"{title_vi}{severe_vi} {where_vi}" + (f": {vi}" if vi else ""),
            en=f"{severe_en}{title_en} {where_en}" + (f": {en}" if en else ""),
        )

    return message


def _cm(depth_mm: float, decimal: str) -> str:
    """Depth in cm with at most one decimal, e.g. 76 mm → "7.6", 150 mm → "15"."""
    text = f"{depth_mm / 10:.1f}".rstrip("0").rstrip(".")
    return text.replace(".", decimal)


def street_flood(ctx: MessageContext) -> Message:
    """Street flooding, worded around the water depth (in cm, as residents say it)."""
    where_vi, where_en = _where(ctx)
    depth = ctx.values.get("depth_mm")
    if ctx.state == "resolved":
        if depth is None:
            return Message(vi=f"Hết ngập đường {where_vi}", en=f"Street flooding over {where_en}")
        return Message(
            vi=f"Hết ngập đường {where_vi}: mực nước còn {_cm(depth, ',')} cm",
            en=f"Street flooding over {where_en}: {_cm(depth, '.')} cm of water left",
        )
    severe = ctx.severity == "critical"
    title_vi = "Ngập đường nghiêm trọng" if severe else "Ngập đường"
    title_en = "Severe street flooding" if severe else "Street flooding"
    if depth is None:
        return Message(vi=f"{title_vi} {where_vi}", en=f"{title_en} {where_en}")
    return Message(
        vi=f"{title_vi}: mực nước {_cm(depth, ',')} cm {where_vi}",
        en=f"{title_en}: {_cm(depth, '.')} cm of water {where_en}",
    )


def _duration(seconds: float, vi: bool) -> str:
    """Seconds as operators say them: "45 s", "12 phút"/"12 min", "3,5 giờ"/"3.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} {'phút' if vi else 'min'}"
    hours = _number(seconds / 3600, 1, "," if vi else ".")
    return f"{hours} {'giờ' if vi else 'h'}"


def gateway(
    title_vi: str, title_en: str, fire_vi: str, fire_en: str, over_vi: str, over_en: str
) -> MessageFn:
    """A district edge gateway's alert: the subject is the ward behind it, named by
    its display name.  ``fire_*``/``over_*`` are formats over ``ward``, ``age``
    (the spool's oldest record), ``silent`` (how long not heard) and ``dropped``."""

    def message(ctx: MessageContext) -> Message:
        texts: list[str] = []
        for lang, fire, over, title in (
            ("vi", fire_vi, over_vi, title_vi),
            ("en", fire_en, over_en, title_en),
        ):
            vi = lang == "vi"
            fields = {
                "ward": ward_name(ctx.subject, lang),
                "age": _duration(ctx.values.get("oldest_age_s", 0.0), vi),
                "silent": _duration(ctx.values.get("silent_s", 0.0), vi),
                "dropped": _number(ctx.values.get("dropped", 0.0), 0, "," if vi else "."),
            }
            if ctx.state == "resolved":
                texts.append(over.format(**fields))
                continue
            severe = " (nghiêm trọng)" if vi else " (severe)"
            head = title + (severe if ctx.severity == "critical" else "")
            texts.append(f"{head}: {fire.format(**fields)}")
        return Message(vi=texts[0], en=texts[1])

    return message
