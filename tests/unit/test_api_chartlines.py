"""What the console draws from the rule thresholds, and the local days of the ward tiles."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from api.chartlines import chart_lines, thresholds_document, wind_caps
from api.city import local_day_start_ms
from api.headers import content_security_policy


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


def test_the_shipped_thresholds_give_the_street_flood_and_gust_lines() -> None:
    doc = thresholds_document(None)
    lines = chart_lines(doc)
    assert [(x["label"], x["value"]) for x in lines["level_cm"]] == [
        ("street_flood_warning", 7.6),
        ("street_flood_critical", 30.0),
    ]
    assert [x["value"] for x in lines["gust_ms"]] == [17.2, 25.7]
    assert [x["label"] for x in lines["wind_ms"]] == [
        "cap_8",
        "cap_9",
        "cap_10",
        "cap_11",
        "cap_12",
    ]
    assert wind_caps(doc)[6] == 10.8 and list(wind_caps(doc)) == sorted(wind_caps(doc))


def test_a_site_override_moves_a_line_and_a_bad_value_drops_it(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[flood]\nstreet_warning_mm = 100.0\nstreet_critical_mm = "deep"\n')
    lines = chart_lines(thresholds_document(site))
    assert [(x["label"], x["value"]) for x in lines["level_cm"]] == [("street_flood_warning", 10.0)]
    site.write_text("[flood\n")  # not TOML: the defaults stay, nothing raises
    assert len(chart_lines(thresholds_document(site))["level_cm"]) == 2
    missing = tmp_path / "absent.toml"
    assert len(chart_lines(thresholds_document(missing))["level_cm"]) == 2
    site.write_text("[storm.wind_cap_ms]\n8 = nan\nx = 3.0\n")
    assert 8 not in wind_caps(thresholds_document(site))


def test_rain_day_starts_at_seven_local_and_energy_day_at_midnight() -> None:
    at = _ms("2026-12-01T06:59:00+07:00")
    assert local_day_start_ms(at, 7, 420) == _ms("2026-11-30T07:00:00+07:00")
    assert local_day_start_ms(_ms("2026-12-01T07:00:00+07:00"), 7, 420) == _ms(
        "2026-12-01T07:00:00+07:00"
    )
    assert local_day_start_ms(at, 0, 420) == _ms("2026-12-01T00:00:00+07:00")


def test_the_csp_admits_images_from_the_configured_tile_host_only() -> None:
    assert "img-src 'self' data:;" in content_security_policy(None)
    csp = content_security_policy("https://tiles.example.vn:8443/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://tiles.example.vn:8443;" in csp
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp
