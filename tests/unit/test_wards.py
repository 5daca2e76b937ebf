"""The site's ward list: valid topic ids, unique names, the display-name fallbacks."""

from __future__ import annotations

from deltasense.contract import is_ident
from deltasense.wards import WARDS, WARDS_BY_ID, ward_name


def test_ward_ids_are_topic_levels_and_unique() -> None:
    assert len(WARDS_BY_ID) == len(WARDS) >= 10
    assert all(is_ident(w.id) for w in WARDS)
    assert len({w.code for w in WARDS}) == len(WARDS)
    assert len({w.name for w in WARDS}) == len(WARDS)


def test_ward_centres_lie_in_bac_lieu() -> None:
    for w in WARDS:
        assert 9.2 < w.lat < 9.4 and 105.6 < w.lon < 105.85, w


def test_display_names() -> None:
    assert ward_name("hiep-thanh", "vi") == "Hiệp Thành"
    assert ward_name("hiep-thanh", "en") == "Hiệp Thành"
    assert ward_name("", "vi") == "toàn thành phố"
    assert ward_name("", "en") == "whole city"
    assert ward_name("", "fr") == "whole city"
    assert ward_name("ward-not-listed", "vi") == "ward-not-listed"
