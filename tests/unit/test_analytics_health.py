"""Device-health rules on hand-built arrays."""

from __future__ import annotations

import numpy as np

from analytics.rules import health
from deltasense.thresholds import Thresholds

NAN = np.nan
NOW = 1_800_000_000_000


def test_offline_after_missed_intervals_or_last_will(thresholds: Thresholds) -> None:
    H = thresholds.health
    last = np.asarray([NOW - 100_000, NOW - 200_000, NOW - 10_000, NOW - 900_000, -1], np.int64)
    interval = np.asarray([60, 60, 60, 600, 60], np.float32)
    lwt = np.asarray([False, False, True, False, False])
    sleeping = np.asarray([False, False, False, False, False])
    r = health.offline_rule(last, interval, lwt, sleeping, NOW, H)
    assert r.condition.tolist() == [False, True, True, False, False]  # never seen: unknown
    asleep = health.offline_rule(last, interval, lwt, ~sleeping, NOW, H)
    assert not asleep.condition.any()


def test_mass_outage_counts_devices_silent_together(thresholds: Thresholds) -> None:
    H = thresholds.health
    # district 0: 4 of 10 silent within minutes; district 1: 4 of 10 silent hours apart
    district = np.repeat(np.asarray([0, 1], np.int64), 10)
    offline = np.zeros(20, bool)
    offline[[0, 1, 2, 3, 10, 11, 12, 13]] = True
    last = np.full(20, NOW, np.int64)
    last[[0, 1, 2, 3]] = NOW - 600_000 - np.arange(4) * 60_000
    last[[10, 11, 12, 13]] = NOW - np.asarray([1, 2, 3, 4]) * 3_600_000
    r = health.mass_outage(district, offline, last, 2, H)
    assert r.condition.tolist() == [True, False]
    assert r.values["silent"].tolist() == [4, 1]
    tiny = health.mass_outage(np.asarray([0, 0]), np.asarray([True, True]), last[:2], 1, H)
    assert not tiny.condition.any()  # 2 devices: below the minimum district size


def test_stuck_sensor_needs_enough_readings(thresholds: Thresholds) -> None:
    H = thresholds.health
    k = 60
    t = (28 + np.random.default_rng(1).normal(0, 0.3, (3, k))).astype(np.float32)
    t[1] = 28.0  # flat for an hour
    t[2, :] = NAN
    t[2, :10] = 28.0  # flat but only 10 readings
    wind = np.full((3, k), 3.0, np.float32) + np.linspace(0, 2, k, dtype=np.float32)
    r = health.stuck_rule({"t_c": t, "wind_ms": wind}, H)
    assert r.condition.tolist() == [False, True, False]
    assert r.clear.tolist() == [True, False, True]  # row 2 judged on its wind


def test_saturated_humidity_is_not_stuck(thresholds: Thresholds) -> None:
    H = thresholds.health
    # An hour of rain at 100 % RH is physics; a hygrometer flat at 70 % is stuck.
    k = 60
    rh = np.full((3, k), 100.0, np.float32)
    rh[1] = 70.0
    rh[2] = 99.5
    rh[2, 30] = 98.0  # dipped below saturation once: judged, and it moved enough
    r = health.stuck_rule({"rh_pct": rh}, H)
    assert r.condition.tolist() == [False, True, False]
    assert r.clear.tolist() == [False, False, True]  # row 0 not judged: state holds
    assert np.isnan(r.values["rh_pct_change"][0])


def test_spikes_are_up_and_back_not_steps(thresholds: Thresholds) -> None:
    H = thresholds.health
    x = np.full((3, 30), 28.0, np.float32)
    x[0, 10] = 40.0  # a spike
    x[1, 10:] = 22.0  # a step (gust front): not a spike
    x[2, 10] = NAN  # a gap: nothing
    r = health.spike_rule({"t_c": x}, H)
    assert r.condition.tolist() == [True, False, False]


def test_qc_battery_signal_and_skew(thresholds: Thresholds) -> None:
    H = thresholds.health
    flagged = np.asarray([[0, 1, 1, 1], [0, 0, 1, 0], [NAN, NAN, NAN, NAN]], np.float32)
    assert health.qc_rule(flagged, H).condition.tolist() == [True, False, False]
    batt = health.low_rule(np.asarray([3.1, 3.35, 3.5, NAN], np.float32), 3.3, 0.1, "batt_v")
    assert batt.condition.tolist() == [True, False, False, False]
    assert batt.clear.tolist() == [False, False, True, False]  # 3.35 inside the deadband
    skew = health.skew_rule(np.asarray([-30, 200, -400, NAN], np.float32), H)
    assert skew.condition.tolist() == [False, True, True, False]


def test_one_silent_device_is_not_a_mass_outage(thresholds: Thresholds) -> None:
    H = thresholds.health
    district = np.zeros(3, np.int64)
    offline = np.asarray([True, False, False])  # 1 of 3 = 33 % but only one device
    last = np.full(3, NOW, np.int64)
    assert not health.mass_outage(district, offline, last, 1, H).condition.any()


def test_a_water_level_spike_is_away_from_both_neighbours() -> None:
    nan = np.nan
    # stations: an echo up, a dropout down, a real rise that stays, a step back down
    # from a flood, too small a jump, gaps (NaN neighbours), and a duplicate reading
    before = np.asarray([2.0, 40.0, 2.0, 40.0, 2.0, nan, 2.0, 5.0], np.float32)
    spike = np.asarray([50.0, 0.0, 50.0, 10.0, 25.0, 50.0, 50.0, 5.0], np.float32)
    after = np.asarray([3.0, 41.0, 52.0, 9.0, 2.0, 3.0, nan, 5.0], np.float32)
    r = health.level_spike_rule(before, spike, after, jump_mm=250.0)
    assert r.condition.tolist() == [True, True, False, False, False, False, False, False]
    assert r.clear.tolist() == (~r.condition).tolist()
    assert r.values["spike_mm"][:2].tolist() == [480.0, 400.0]
