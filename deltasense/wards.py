"""Bạc Liêu's wards and communes: the one list of ``district`` ids and their names.

The list is site data in ``wards.toml`` beside this module (package data), loaded
and checked once at import: a reorganised ward list is a data change.  The id is
the ``district`` topic level; the simulator places devices around the centres, the
notifier and the console show the display name.  An id that is not listed is shown
as it is (a deployment may add wards before this list knows them); city-wide
alerts have district ``""``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from deltasense.contract import is_ident

WARDS_RESOURCE: Final = "wards.toml"


class WardsError(ValueError):
    """A ward list that cannot be used; the message names the entry and the key."""


@dataclass(frozen=True)
class Ward:
    id: str  # topic level, matches the identifier grammar
    code: str  # short form used inside simulated device ids
    name: str  # display name, Vietnamese with diacritics (also used in English)
    lat: float
    lon: float


def _number(entry: dict[str, Any], key: str, low: float, high: float, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise WardsError(f"{where}: {key} must be a number in [{low}, {high}], not {value!r}")
    return float(value)


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise WardsError(f"{where}: {key} must be a non-empty string of at most 64 characters")
    return value


def parse_wards(text: str, source: str = WARDS_RESOURCE) -> tuple[tuple[Ward, ...], dict[str, str]]:
    """The wards and the city's display names of a ``wards.toml`` document."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WardsError(f"{source}: not valid TOML: {exc}") from exc
    city = doc.get("city")
    if not isinstance(city, dict) or not all(isinstance(city.get(k), str) for k in ("vi", "en")):
        raise WardsError(f"{source}: city must be a table with vi and en names")
    entries = doc.get("ward")
    if not isinstance(entries, list) or not entries:
        raise WardsError(f"{source}: no [[ward]] entries")
    wards: list[Ward] = []
    for i, entry in enumerate(entries):
        where = f"{source}: ward #{i + 1}"
        if not isinstance(entry, dict):
            raise WardsError(f"{where}: not a table")
        unknown = set(entry) - {"id", "code", "name", "lat", "lon"}
        if unknown:
            raise WardsError(f"{where}: unknown keys {sorted(unknown)}")
        ward = Ward(
            id=_text(entry, "id", where),
            code=_text(entry, "code", where),
            name=_text(entry, "name", where),
            lat=_number(entry, "lat", -90, 90, where),
            lon=_number(entry, "lon", -180, 180, where),
        )
        if not is_ident(ward.id) or not is_ident(ward.code):
            raise WardsError(f"{where}: id and code must be topic identifiers")
        wards.append(ward)
    for key in ("id", "code", "name"):
        values = [getattr(w, key) for w in wards]
        if len(set(values)) != len(values):
            raise WardsError(f"{source}: two wards share one {key}")
    return tuple(wards), {"vi": city["vi"], "en": city["en"]}


def _load() -> tuple[tuple[Ward, ...], dict[str, str]]:
    text = resources.files(__package__ or "deltasense").joinpath(WARDS_RESOURCE)
    return parse_wards(text.read_text(encoding="utf-8"), f"deltasense/{WARDS_RESOURCE}")


_LOADED: Final = _load()
WARDS: Final[tuple[Ward, ...]] = _LOADED[0]
CITY_NAME: Final[dict[str, str]] = _LOADED[1]
WARDS_BY_ID: Final[dict[str, Ward]] = {w.id: w for w in WARDS}


def ward_name(district: str, language: str) -> str:
    """Display name of a ward; the whole city for ``""``; an unknown id as it is."""
    if not district:
        return CITY_NAME.get(language, CITY_NAME["en"])
    ward = WARDS_BY_ID.get(district)
    return ward.name if ward else district
