"""Pure parameter parsing: durations, times, bucket grids, field checks."""

from __future__ import annotations

import pytest

from api.params import (
    MAX_BUCKETS,
    ParamError,
    bucket_starts,
    check_field_for_kind,
    check_field_name,
    choose_every,
    format_duration,
    is_bool_field,
    ms_to_rfc3339,
    parse_duration,
    parse_time,
    time_range,
)
from deltasense.contract import Kind

H = 3_600_000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800), ("1w", 604800)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "text", ["", "0s", "10", "1.5h", "-1m", "1ms", "1 h", "1H", "5m;DROP", "99999999s", "1h30m"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ParamError, match="duration"):
        parse_duration(text)


def test_parse_time() -> None:
    assert parse_time("1700000000123", "start") == 1_700_000_000_123
    assert parse_time("2023-11-14T22:13:20Z", "start") == 1_700_000_000_000
    assert parse_time("2023-11-15T05:13:20+07:00", "start") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20.5Z", "start") == 1_700_000_000_500
    with pytest.raises(ParamError, match="offset"):
        parse_time("2023-11-14T22:13:20", "start")
    with pytest.raises(ParamError, match=r"e\.g\. Z or \+05:30"):
        parse_time("2023-11-14T22:13:20", "start", 330)
    with pytest.raises(ParamError, match="end"):
        parse_time("yesterday", "end")
    assert ms_to_rfc3339(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def test_time_range_defaults_and_order() -> None:
    assert time_range(None, None, 100 * H) == (76 * H, 100 * H)
    assert time_range("0", None, 100 * H) == (0, 100 * H)
    with pytest.raises(ParamError, match="before"):
        time_range("5000", "5000", 100 * H)


def test_bucket_grid_is_epoch_aligned() -> None:
    assert list(bucket_starts(3500, 9000, 2)) == [2000, 4000, 6000, 8000]


def test_choose_every_bounds() -> None:
    assert choose_every(0, 24 * H, None) == 300  # 288 buckets by default for a day
    assert choose_every(0, 10_000_000, "1s") == 1  # 10 000 buckets: the limit itself
    with pytest.raises(ParamError, match=str(MAX_BUCKETS)):
        choose_every(0, 10_000_001, "1s")
    assert choose_every(0, 365 * 24 * H, None) <= 86400  # a year still fits by default


def test_field_checks() -> None:
    assert check_field_name("t_c") == "t_c"
    assert check_field_name("rssi_dbm") == "rssi_dbm"
    for bad in ['t_c" FROM x; DROP DATABASE y', "T_C", "seq", "nope", "x" * 65]:
        with pytest.raises(ParamError):
            check_field_name(bad)
    assert check_field_for_kind("level_cm", Kind.WATER) == "level_cm"
    assert check_field_for_kind("batt_v", Kind.WATER) == "batt_v"
    with pytest.raises(ParamError, match="not measured by weather"):
        check_field_for_kind("level_cm", Kind.WEATHER)
    assert is_bool_field(Kind.LAMP, "on")
    assert not is_bool_field(Kind.LAMP, "power_w")
