"""What the console draws from the rule thresholds, and the local days of the ward tiles."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.chartlines import chart_lines, site_thresholds, wind_caps
from api.city import local_day_start_ms
from api.headers import content_security_policy


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


def test_the_shipped_thresholds_give_the_street_flood_and_gust_lines() -> None:
    shipped = site_thresholds(None)
    lines = chart_lines(shipped)
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
    assert wind_caps(shipped)[6] == 10.8 and list(wind_caps(shipped)) == sorted(wind_caps(shipped))


def test_a_site_override_moves_a_line_and_a_file_analytics_refuses_draws_the_defaults(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[flood]\nstreet_warning_mm = 100.0\n")
    lines = chart_lines(site_thresholds(site))
    assert [(x["label"], x["value"]) for x in lines["level_cm"]] == [
        ("street_flood_warning", 10.0),
        ("street_flood_critical", 30.0),
    ]
    shipped = chart_lines(site_thresholds(None))
    for refused in (
        '[flood]\nstreet_critical_mm = "deep"\n',  # not a number
        "[flood\n",  # not TOML
        "[storm.wind_cap_ms]\n8 = nan\n",  # not finite
        "[flood]\nstreet_warnign_mm = 80.0\n",  # a misspelt key
    ):
        site.write_text(refused)
        caplog.clear()
        assert chart_lines(site_thresholds(site)) == shipped, refused
        assert "drawing the shipped thresholds" in caplog.text, refused
    assert chart_lines(site_thresholds(tmp_path / "absent.toml")) == shipped


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
