"""Ward display names for messages, in one place until the site data carries them.

The ids are the ``district`` topic level (the simulator's wards of Bạc Liêu); an
id missing here is shown as it is.  City-wide alerts have district ``""``.
"""

from __future__ import annotations

from typing import Final

WARD_NAMES: Final[dict[str, str]] = {
    "phuong-1": "Phường 1",
    "phuong-2": "Phường 2",
    "phuong-3": "Phường 3",
    "phuong-5": "Phường 5",
    "phuong-7": "Phường 7",
    "phuong-8": "Phường 8",
    "nha-mat": "Nhà Mát",
    "vinh-trach": "Vĩnh Trạch",
    "vinh-trach-dong": "Vĩnh Trạch Đông",
    "hiep-thanh": "Hiệp Thành",
}
CITY: Final[dict[str, str]] = {"vi": "toàn thành phố", "en": "whole city"}


def ward_name(district: str, language: str) -> str:
    if not district:
        return CITY.get(language, CITY["en"])
    return WARD_NAMES.get(district, district)
