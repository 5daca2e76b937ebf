"""The simulated city: Bạc Liêu's wards and communes, and where devices stand.

Placement is deterministic for a given ``(n, seed)`` and each device's own
behaviour depends only on ``(seed, device id)``, so a device keeps its character
whether the city holds 10 devices or 10,000.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from deltasense.contract import Kind, is_ident
from deltasense.wards import WARDS, WARDS_BY_ID, Ward

MAX_DEVICES: Final = 10_000


# The wards themselves (ids, names, centres) are site data, owned by deltasense.wards.
DISTRICTS: Final[tuple[Ward, ...]] = WARDS
DISTRICTS_BY_ID: Final[dict[str, Ward]] = WARDS_BY_ID

# Device-id prefix per kind: ws-p1-001 is the first weather station in Phường 1.
KIND_PREFIX: Final[dict[Kind, str]] = {
    Kind.WEATHER: "ws",
    Kind.WATER: "wl",
    Kind.LAMP: "lp",
    Kind.METER: "mt",
}
# Share of the fleet per kind: lamp posts dominate a real deployment.
KIND_SHARE: Final[dict[Kind, float]] = {
    Kind.LAMP: 0.55,
    Kind.WATER: 0.20,
    Kind.METER: 0.15,
    Kind.WEATHER: 0.10,
}
# Which kinds a city smaller than four devices gets, in order.
_SMALL_CITY_ORDER: Final = (Kind.LAMP, Kind.WATER, Kind.WEATHER, Kind.METER)
# Every fourth water station (the 2nd, 6th, ...) sits on a canal, the rest in street drains.
CANAL_EVERY: Final = 4
_JITTER_SD_DEG: Final = 0.004  # ~450 m
_JITTER_MAX_DEG: Final = 0.012


@dataclass(frozen=True)
class DeviceSpec:
    """Where a virtual device stands and what it is; its behaviour seed."""

    id: str
    kind: Kind
    district: str
    lat: float
    lon: float
    seed: int
    # "drain" or "canal" for water stations, "" for the other kinds.
    variant: str = ""


def kind_counts(n: int) -> dict[Kind, int]:
    """How many devices of each kind a city of ``n`` devices holds.

    At least one of each kind once ``n >= 4``; lamps take whatever the shares leave.
    """
    if n < 0:
        raise ValueError(f"device count must be >= 0, got {n}")
    if n < len(Kind):
        return {k: int(k in _SMALL_CITY_ORDER[:n]) for k in Kind}
    counts: dict[Kind, int] = {
        k: max(1, int(KIND_SHARE[k] * n)) for k in Kind if k is not Kind.LAMP
    }
    counts[Kind.LAMP] = n - sum(counts.values())
    return {k: counts[k] for k in Kind}


def device_seed(seed: int, device_id: str) -> int:
    """A stable per-device seed (string seeding of ``random.Random`` is stable)."""
    return random.Random(f"{seed}:{device_id}").getrandbits(63)


def _jitter(rng: random.Random) -> float:
    return max(-_JITTER_MAX_DEG, min(_JITTER_MAX_DEG, rng.gauss(0.0, _JITTER_SD_DEG)))


def place_devices(
    n: int, seed: int = 1, districts: Sequence[str] | None = None
) -> list[DeviceSpec]:
    """``n`` devices spread over the districts, deterministic per ``(n, seed)``.

    Each kind is dealt round-robin over the districts in a seeded order, so every
    kind covers as many districts as its count allows.  ``districts`` keeps the
    city to those wards (a ward behind an edge gateway, say).
    """
    if n > MAX_DEVICES:
        raise ValueError(f"device count must be <= {MAX_DEVICES}, got {n}")
    counts = kind_counts(n)
    order = list(DISTRICTS)
    random.Random(f"districts:{seed}").shuffle(order)
    if districts is not None:
        unknown = sorted(set(districts) - set(DISTRICTS_BY_ID))
        if unknown or not districts:
            raise ValueError(f"unknown districts {unknown}; known: {sorted(DISTRICTS_BY_ID)}")
        order = [d for d in order if d.id in set(districts)]
    specs: list[DeviceSpec] = []
    for kind in Kind:
        per_district: dict[str, int] = {}
        for i in range(counts[kind]):
            district = order[i % len(order)]
            number = per_district.get(district.id, 0) + 1
            per_district[district.id] = number
            device_id = f"{KIND_PREFIX[kind]}-{district.code}-{number:03d}"
            assert is_ident(device_id), device_id
            dseed = device_seed(seed, device_id)
            rng = random.Random(dseed)
            variant = ""
            if kind is Kind.WATER:
                variant = "canal" if i % CANAL_EVERY == 1 else "drain"
            specs.append(
                DeviceSpec(
                    id=device_id,
                    kind=kind,
                    district=district.id,
                    lat=round(district.lat + _jitter(rng), 6),
                    lon=round(district.lon + _jitter(rng), 6),
                    seed=dseed,
                    variant=variant,
                )
            )
    return specs
