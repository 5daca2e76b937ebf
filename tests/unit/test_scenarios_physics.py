"""Scenario physics: tide, weather systems, drains, lamps and cabinets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest import scenarios
from backtest.scenarios import physics as P
from deltasense.thresholds import Thresholds

HOUR_S = 3600.0


def test_tide_is_the_sum_of_m2_s2_k1_o1_with_their_periods() -> None:
    tide = P.Tide(ref_s=0.0, mean_m=0.1, parts=P.constituents({"S2": 40.0, "O1": 75.0}))
    t = np.arange(0.0, 30 * 24 * HOUR_S, 600.0)
    level = np.array([tide.level_m(x) for x in t])
    # Least squares on the four known frequencies recovers mean, amplitudes and phases.
    cols = [np.ones_like(t)]
    for name in ("M2", "S2", "K1", "O1"):
        w = math.radians(P.SPEED_DEG_H[name]) * t / HOUR_S
        cols += [np.cos(w), np.sin(w)]
    coef, residual, *_ = np.linalg.lstsq(np.stack(cols, axis=1), level, rcond=None)
    assert coef[0] == pytest.approx(0.1, abs=1e-6)
    for i, name in enumerate(("M2", "S2", "K1", "O1")):
        a, b = coef[1 + 2 * i], coef[2 + 2 * i]
        assert math.hypot(a, b) == pytest.approx(P.AMPLITUDE_M[name], abs=1e-6)
    assert float(residual[0]) < 1e-9  # nothing else in it
    # Periods: M2 12.42 h, S2 12 h, K1 23.93 h, O1 25.82 h.
    periods_h = {n: 360.0 / s for n, s in P.SPEED_DEG_H.items()}
    assert periods_h["M2"] == pytest.approx(12.4206, abs=1e-3)
    assert periods_h["O1"] == pytest.approx(25.8193, abs=1e-3)
    m2_only = P.Tide(0.0, 0.0, (P.Constituent("M2", 1.0, P.SPEED_DEG_H["M2"]),))
    assert m2_only.level_m(5000.0 + periods_h["M2"] * HOUR_S) == pytest.approx(
        m2_only.level_m(5000.0)
    )


def test_king_tide_tops_bd3_and_neap_tide_stays_far_below() -> None:
    bd3 = 2.20  # Gành Hào, docs/REFERENCE.md
    king = P.Tide(ref_s=0.0, mean_m=0.30, parts=P.constituents())
    neap = P.Tide(ref_s=0.0, mean_m=0.0, parts=P.constituents({"S2": 180.0, "O1": 180.0}))
    day = [i * 300.0 for i in range(-288, 289)]  # 48 h around the peak
    assert max(king.level_m(t) for t in day) > bd3
    assert max(neap.level_m(t) for t in day) < bd3 - 1.0
    # Two highs and two lows a day (semi-diurnal), range of a spring tide 3-4 m.
    levels = [king.level_m(t) for t in day]
    highs = sum(1 for a, b, c in zip(levels, levels[1:], levels[2:], strict=False) if a < b > c)
    assert 3 <= highs <= 5  # over 48 h
    assert 3.0 <= max(levels) - min(levels) <= 4.6
    assert P.inverse_barometer_m(988.0) == pytest.approx(0.20)


def test_drain_fills_above_capacity_and_recedes_after() -> None:
    drain = P.Drain(area_ratio=10.0, runoff=0.8, capacity_mm_h=200.0, road_m=2.0)
    storage, depths = 0.0, []
    for minute in range(180):
        rain = 60.0 if minute < 60 else 0.0  # 60 mm/h for an hour: 480 mm/h of runoff
        capacity = drain.outflow_capacity_mm_h(canal_m=0.5)
        storage = P.cap_storage(
            P.step_storage(storage, drain.inflow_mm_h(rain), capacity, 1 / 60), drain
        )
        depths.append(storage)
    assert depths[59] == pytest.approx((480 - 200) * 1.0, rel=0.02)  # an hour of excess
    assert depths[60] < depths[59] and depths[100] < depths[60]
    assert depths[-1] == 0.0  # 200 mm/h drains 280 mm in 84 min
    # Rain below capacity never ponds.
    assert P.step_storage(0.0, drain.inflow_mm_h(20.0), 200.0, 1.0) == 0.0


def test_high_canal_blocks_the_outfall_and_tops_low_roads() -> None:
    drain = P.Drain(area_ratio=10.0, runoff=0.8, capacity_mm_h=200.0, road_m=2.0, head_m=0.5)
    assert drain.outflow_capacity_mm_h(1.0) == 200.0
    assert drain.outflow_capacity_mm_h(1.75) == pytest.approx(100.0)
    assert drain.outflow_capacity_mm_h(2.1) == 0.0
    assert P.street_depth_mm(0.0, canal_m=2.15, road_m=2.0) == pytest.approx(150.0)
    assert P.street_depth_mm(300.0, canal_m=1.0, road_m=2.0) == 300.0


def test_storm_cell_moves_over_the_city() -> None:
    track = P.Track(0.0, 0.0, 3600.0, vx_kmh=30.0, vy_kmh=0.0)
    cell = P.StormCell(track, radius_km=5.0, rain_peak_mm_h=100.0)
    west, east = (-10.0, 0.0), (10.0, 0.0)
    times = [i * 60.0 for i in range(121)]

    def peak_time(x: float, y: float) -> float:
        return max(times, key=lambda t: cell.sample(x, y, t).rain_mm_h)

    # The core passes x=-10 km 20 min before the centre and x=+10 km 20 min after.
    assert peak_time(*west) == pytest.approx(3600.0 - 1200.0, abs=60)
    assert peak_time(*east) == pytest.approx(3600.0 + 1200.0, abs=60)
    under = cell.sample(0.0, 0.0, 3600.0)
    assert under.rain_mm_h == pytest.approx(100.0)
    assert cell.sample(0.0, 0.0, 3600.0 - 2 * 3600.0).rain_mm_h < 1.0
    # Outflow blows away from the core: east of it, the wind comes from the west.
    ahead = cell.sample(6.0, 0.0, 3600.0)
    assert ahead.u_ms > 5.0
    assert P.wind_dir_from_deg(ahead.u_ms, ahead.v_ms) == pytest.approx(270.0, abs=1.0)


def test_cyclone_pressure_and_winds() -> None:
    cyclone = P.Cyclone(P.Track(0.0, 0.0, 0.0, -20.0, 0.0), dp_hpa=30.0, rmax_km=40.0)
    centre = cyclone.sample(0.5, 0.0, 0.0)
    at_rmax = cyclone.sample(0.0, -40.0, 0.0)
    far = cyclone.sample(0.0, -400.0, 0.0)
    assert centre.dp_hpa < at_rmax.dp_hpa < far.dp_hpa < 0.0
    assert centre.dp_hpa == pytest.approx(-30.0, abs=0.5)
    speeds = {
        r: math.hypot(*(lambda s: (s.u_ms, s.v_ms))(cyclone.sample(0.0, -r, 0.0)))
        for r in (10, 40, 150)
    }
    assert speeds[40] > speeds[10] and speeds[40] > speeds[150]
    # Counter-clockwise: south of the centre the wind blows towards the east.
    assert at_rmax.u_ms > 0.0
    # It moves: the centre 2 h later is 40 km west.
    assert cyclone.track.at(7200.0) == pytest.approx((-40.0, 0.0))


def test_cabinet_draws_its_base_load_plus_its_lamps(thresholds: Thresholds) -> None:
    world = scenarios.build("lamp-faults", 3, thresholds=thresholds)
    metered = [m for m, st in world.meters.items() if st.lamps]
    assert metered
    lamps_on_cabinets = sum(len(world.meters[m].lamps) for m in world.meters)
    assert lamps_on_cabinets == sum(1 for lamp in world.lamps.values() if lamp.cabinet)
    for _ in range(20 * 60):  # to 20:00 local: lamps lit
        world.step()
    lit = 0
    for meter in metered:
        st = world.meters[meter]
        expected = st.base_w + sum(world.lamps[lamp].power_w for lamp in st.lamps)
        assert st.power_w == pytest.approx(expected)
        lit += sum(world.lamps[lamp].lit for lamp in st.lamps)
    assert lit > 0


def test_lamps_follow_photocell_and_dim_schedule(thresholds: Thresholds) -> None:
    world = scenarios.build("hot-dry-day", 2, thresholds=thresholds)
    by_hour: dict[int, list[tuple[bool, float]]] = {}
    for minute in range(24 * 60):
        world.step()
        if minute % 60 == 30:
            by_hour[minute // 60] = [
                (lamp.lit, lamp.power_w / lamp.rated_w) for lamp in world.lamps.values()
            ]
    # Start is 00:00 local: 02:30 dimmed to 50 %, 12:30 dark, 20:30 full, 22:30 at 70 %.
    assert all(lit and share == pytest.approx(0.5) for lit, share in by_hour[2])
    assert all(not lit for lit, _ in by_hour[12])
    assert all(lit and share == pytest.approx(1.0) for lit, share in by_hour[20])
    assert all(lit and share == pytest.approx(0.7) for lit, share in by_hour[22])
