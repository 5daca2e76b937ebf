"""City layout and device placement."""

from __future__ import annotations

from collections import Counter

import pytest

from deltasense.contract import Kind, is_ident
from simulators.city import DISTRICTS, DISTRICTS_BY_ID, KIND_PREFIX, kind_counts, place_devices


def test_districts_are_valid_and_inside_the_city() -> None:
    assert len({d.id for d in DISTRICTS}) == len(DISTRICTS) >= 10
    for d in DISTRICTS:
        assert is_ident(d.id)
        assert 9.25 <= d.lat <= 9.31
        assert 105.70 <= d.lon <= 105.78


def test_placement_is_deterministic_per_seed() -> None:
    assert place_devices(50, seed=7) == place_devices(50, seed=7)
    assert place_devices(50, seed=7) != place_devices(50, seed=8)


@pytest.mark.parametrize("n", [4, 5, 8, 20, 200, 10_000])
def test_every_kind_present_and_lamps_lead(n: int) -> None:
    specs = place_devices(n, seed=3)
    assert len(specs) == n
    counts = Counter(s.kind for s in specs)
    assert set(counts) == set(Kind)
    assert counts[Kind.LAMP] == max(counts.values())
    assert sum(kind_counts(n).values()) == n


def test_ids_coordinates_and_districts() -> None:
    specs = place_devices(200, seed=1)
    ids = [s.id for s in specs]
    assert len(set(ids)) == len(ids)
    for s in specs:
        assert is_ident(s.id)
        district = DISTRICTS_BY_ID[s.district]
        assert s.id.startswith(f"{KIND_PREFIX[s.kind]}-{district.code}-")
        assert abs(s.lat - district.lat) <= 0.0121
        assert abs(s.lon - district.lon) <= 0.0121
        assert (s.variant in {"drain", "canal"}) == (s.kind is Kind.WATER)
    assert len({s.district for s in specs}) == len(DISTRICTS)
    # Each kind is spread, not piled into one district.
    for kind in Kind:
        assert len({s.district for s in specs if s.kind is kind}) >= 2
    water = [s for s in specs if s.kind is Kind.WATER]
    assert {"drain", "canal"} == {s.variant for s in water}


def test_first_device_has_the_documented_id_shape() -> None:
    ws = next(s for s in place_devices(10, seed=1) if s.kind is Kind.WEATHER)
    assert ws.id.startswith("ws-") and ws.id.endswith("-001")


def test_device_character_is_independent_of_city_size() -> None:
    small = {s.id: s for s in place_devices(20, seed=5)}
    large = {s.id: s for s in place_devices(400, seed=5)}
    for device_id, spec in small.items():
        assert large[device_id] == spec


@pytest.mark.parametrize(
    ("n", "kinds"), [(0, set()), (1, {Kind.LAMP}), (2, {Kind.LAMP, Kind.WATER})]
)
def test_tiny_cities(n: int, kinds: set[Kind]) -> None:
    assert {s.kind for s in place_devices(n)} == kinds


@pytest.mark.parametrize("n", [-1, 10_001])
def test_out_of_range_counts_are_rejected(n: int) -> None:
    with pytest.raises(ValueError, match="device count"):
        place_devices(n)
