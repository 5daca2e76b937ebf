"""The site's ward list: valid topic ids, unique names, the display-name fallbacks."""

from __future__ import annotations

import pytest

from deltasense.contract import is_ident
from deltasense.wards import WARDS, WARDS_BY_ID, Ward, WardsError, parse_wards, ward_name


def test_ward_ids_are_topic_levels_and_unique() -> None:
    assert len(WARDS_BY_ID) == len(WARDS) >= 10
    assert all(is_ident(w.id) for w in WARDS)
    assert len({w.code for w in WARDS}) == len(WARDS)
    assert len({w.name for w in WARDS}) == len(WARDS)


def test_ward_centres_lie_in_bac_lieu() -> None:
    for w in WARDS:
        assert 9.2 < w.lat < 9.4 and 105.6 < w.lon < 105.85, w


def test_display_names() -> None:
    assert ward_name("hiep-thanh", "vi") == "xã Hiệp Thành"
    assert ward_name("hiep-thanh", "en") == "xã Hiệp Thành"
    assert ward_name("", "vi") == "toàn thành phố"
    assert ward_name("", "en") == "whole city"
    assert ward_name("", "fr") == "whole city"
    assert ward_name("ward-not-listed", "vi") == "ward-not-listed"


_GOOD = """city = { vi = "toàn thành phố", en = "whole city" }
[[ward]]
id = "phuong-1"
code = "p1"
name = "Phường 1"
lat = 9.28
lon = 105.72
"""


def test_a_ward_list_is_data_parsed_from_toml() -> None:
    wards, city = parse_wards(_GOOD)
    assert wards == (Ward("phuong-1", "p1", "Phường 1", 9.28, 105.72),)
    assert city == {"vi": "toàn thành phố", "en": "whole city"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not = [toml", "not valid TOML"),
        ('[[ward]]\nid = "a"', "city must be a table"),
        ('city = { vi = "x", en = "y" }', r"no \[\[ward\]\] entries"),
        (_GOOD.replace('"phuong-1"', '"Phuong/1"'), "topic identifiers"),
        (_GOOD.replace("lat = 9.28", "lat = 91.0"), "lat must be a number"),
        (_GOOD.replace("lat = 9.28", 'lat = "9.28"'), "lat must be a number"),
        (_GOOD.replace('name = "Phường 1"', 'name = ""'), "name must be a non-empty"),
        (_GOOD + "colour = 1\n", "unknown keys"),
        (_GOOD + _GOOD.split("\n", 1)[1].replace('"p1"', '"p2"'), "share one id"),
    ],
)
def test_a_bad_ward_list_is_refused_with_its_reason(text: str, message: str) -> None:
    with pytest.raises(WardsError, match=message):
        parse_wards(text, "site.toml")
