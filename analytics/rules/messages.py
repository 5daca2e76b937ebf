"""Short Vietnamese and English texts for every rule's alert changes.

One table: the rule's title in both languages and which of its values to show,
with their labels and units.  Vietnamese numbers use the decimal comma.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from analytics.lifecycle import MessageContext
from deltasense.alerts import Message

# rule → (title vi, title en)
TITLES: Final[dict[str, tuple[str, str]]] = {
    "wind-cap": ("Gió mạnh", "Strong wind"),
    "gust": ("Gió giật mạnh", "Damaging wind gusts"),
    "squall": ("Gió tố", "Squall"),
    "pressure-fall": ("Khí áp giảm nhanh", "Rapid pressure fall"),
    "gust-front": ("Front gió giật của dông", "Thunderstorm gust front"),
    "heavy-rain": ("Mưa lớn", "Heavy rain"),
    "storm-risk": ("Rủi ro thiên tai do bão, dông", "Storm risk for the city"),
    "drain-rising": ("Nước dâng nhanh trên đường", "Street water rising fast"),
    "canal-level": ("Mực nước kênh vượt báo động", "Canal above alarm level"),
    "district-flood": ("Ngập lụt khu vực", "District flooding"),
    "compound-flood": ("Mưa lớn khi nước kênh cao", "Heavy rain on high water"),
    "day-burn": ("Đèn sáng ban ngày", "Lamp burning in daylight"),
    "lamp-out": ("Đèn không sáng", "Lamp out"),
    "power-drift": ("Công suất đèn lệch định mức", "Lamp power drift"),
    "lamp-cycling": ("Đèn bật tắt liên tục", "Lamp cycling on and off"),
    "dimming-opportunity": ("Có thể giảm độ sáng để tiết kiệm", "Dimming would save energy"),
    "cabinet-energy": ("Điện năng tủ điện bất thường", "Cabinet consumption off its baseline"),
    "device-offline": ("Thiết bị mất kết nối", "Device offline"),
    "mass-outage": ("Mất kết nối hàng loạt", "Mass outage"),
    "stuck-sensor": ("Cảm biến bị kẹt", "Stuck sensor"),
    "sensor-spike": ("Cảm biến có giá trị đột biến", "Sensor spikes"),
    "level-spike": ("Cảm biến mực nước đo sai đột biến", "Water-level sensor spike"),
    "out-of-range": ("Giá trị ngoài phạm vi vật lý", "Physically impossible readings"),
    "low-battery": ("Pin yếu", "Low battery"),
    "weak-signal": ("Sóng yếu", "Weak signal"),
    "clock-skew": ("Đồng hồ thiết bị bị lệch", "Device clock skewed"),
}

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


def make(rule: str) -> Callable[[MessageContext], Message]:
    title_vi, title_en = TITLES[rule]

    def message(ctx: MessageContext) -> Message:
        place = f" ({ctx.district})" if ctx.district and ctx.district != ctx.subject else ""
        where_vi = f"tại {ctx.subject}{place}"
        where_en = f"at {ctx.subject}{place}"
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
