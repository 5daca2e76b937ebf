"""Bạc Liêu's wards and communes: the one list of ``district`` ids and their names.

The id is the ``district`` topic level; the simulator places devices around the
centres, the notifier and the console show the display name.  An id that is not
listed is shown as it is (a deployment may add wards before this list knows them);
city-wide alerts have district ``""``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Ward:
    id: str  # topic level, matches the identifier grammar
    code: str  # short form used inside simulated device ids
    name: str  # display name, Vietnamese with diacritics (also used in English)
    lat: float
    lon: float


# Centres are APPROXIMATE (hand-placed from a map, ±1 km): good enough to spread
# devices over the city and to label a map, not for surveying.  Bạc Liêu city as of 2024.
WARDS: Final[tuple[Ward, ...]] = (
    Ward("phuong-1", "p1", "Phường 1", 9.2865, 105.7245),
    Ward("phuong-2", "p2", "Phường 2", 9.2920, 105.7160),
    Ward("phuong-3", "p3", "Phường 3", 9.2810, 105.7330),
    Ward("phuong-5", "p5", "Phường 5", 9.2720, 105.7420),
    Ward("phuong-7", "p7", "Phường 7", 9.2990, 105.7290),
    Ward("phuong-8", "p8", "Phường 8", 9.3050, 105.7150),
    Ward("nha-mat", "nm", "Nhà Mát", 9.2520, 105.7700),
    Ward("vinh-trach", "vt", "Vĩnh Trạch", 9.2760, 105.7620),
    Ward("vinh-trach-dong", "vtd", "Vĩnh Trạch Đông", 9.2950, 105.7700),
    Ward("hiep-thanh", "ht", "Hiệp Thành", 9.2580, 105.7450),
)
WARDS_BY_ID: Final[dict[str, Ward]] = {w.id: w for w in WARDS}
CITY_NAME: Final[dict[str, str]] = {"vi": "toàn thành phố", "en": "whole city"}


def ward_name(district: str, language: str) -> str:
    """Display name of a ward; the whole city for ``""``; an unknown id as it is."""
    if not district:
        return CITY_NAME.get(language, CITY_NAME["en"])
    ward = WARDS_BY_ID.get(district)
    return ward.name if ward else district
