"""Analytics partitions: K processes, each owning the districts a stable hash gives it.

``partition_of(district, k)`` is the first 8 bytes of SHA-256 of the district id,
big-endian, modulo ``k``: every process (any Python, any host) computes the same
map from the id alone, with no list to agree on, and a district never changes
owner while ``k`` stays.  The city-wide subjects (``storm-risk``'s ``city``, the
``platform``) have district ``""`` and belong to partition 0.

What a partition reads: every weather station (``storm-risk`` judges all of the
city's stations together and ``compound-flood`` falls back on the city's rain
where a district has no station; a city has tens of stations, not thousands),
and of every other kind only its own districts' devices.  Alerts it raises: those
whose district it owns (a weather station's own alerts are its district's).
Lamps under the city's storm risk learn it from partition 0's alert event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from deltasense.contract import Channel, Kind

CITY_OWNER = 0
CHANNELS = (Channel.TELE, Channel.META, Channel.STATUS)


def partition_of(district: str, count: int) -> int:
    if count < 1:
        raise ValueError("a partition count is at least 1")
    if not district:
        return CITY_OWNER
    digest = hashlib.sha256(district.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Partition:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} is not in 0..{self.count - 1}")

    @property
    def whole(self) -> bool:
        """One partition: it owns everything (no filtering, no masks)."""
        return self.count == 1

    @property
    def owns_city(self) -> bool:
        return self.index == CITY_OWNER

    def owns(self, district: str) -> bool:
        return self.whole or partition_of(district, self.count) == self.index

    def wants(self, kind: Kind, district: str) -> bool:
        """Whether this partition takes readings, meta and status of such a device."""
        return kind is Kind.WEATHER or self.owns(district)

    def filters(self, site: str, districts: Sequence[str] = ()) -> list[str]:
        """MQTT filters of its devices' tele, meta and status.  With the site's
        ``districts`` known, only its own districts' topics (plus every weather
        station); without, the whole site (the service drops what it does not want
        before decoding it)."""
        if self.whole or not districts:
            return [f"{site}/+/+/+/{c}" for c in CHANNELS]
        mine = sorted(d for d in set(districts) if self.owns(d))
        out = [f"{site}/+/{Kind.WEATHER}/+/{c}" for c in CHANNELS]
        for d in mine:
            out += [
                f"{site}/{d}/{k}/+/{c}" for k in Kind if k is not Kind.WEATHER for c in CHANNELS
            ]
        return out
