"""Rain totals from cumulative counters: resets, gaps, duplicates, the 07:00 day."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.counters import CounterTracker
from analytics.rules import rain
from deltasense.thresholds import Thresholds

NAN = np.nan
HOUR = 3_600_000


def test_counter_tracker_makes_resets_continuous() -> None:
    c = CounterTracker()
    assert c.continuous("ws", 1, 10.0) == 10.0
    assert c.continuous("ws", 1, 12.0) == 12.0
    assert c.continuous("ws", 1, 11.0) == 11.0  # a glitch back: kept; the rules' max ignores it
    assert c.continuous("ws", 2, 0.4) == pytest.approx(12.4)  # new boot, counter restarted
    assert c.resets == 1
    assert c.continuous("ws", 1, 12.0) == 12.0  # a late reading of the old boot
    assert c.continuous("ws", 3, 5.0) == pytest.approx(12.0 + 5.0)  # kept in flash: no reset
    assert c.resets == 1
    assert c.continuous("ws", 0, 1.0) is None  # a boot older than any known: unplaceable
    assert c.continuous("other", 7, 3.0) == 3.0  # devices are independent


def test_totals_over_gaps_duplicates_and_glitches() -> None:
    minute = np.full((3, 181), NAN, dtype=np.float32)
    minute[0, :] = np.linspace(100, 130, 181)  # 30 mm over 3 h, 10 mm in the last hour
    minute[1, ::7] = np.linspace(0, 50, 181)[::7]  # sparse readings
    minute[1, -1] = minute[1, -8]  # the newest is a duplicate of the previous value
    minute[2, -61] = 5.0
    minute[2, -30] = 4.0  # glitch down
    minute[2, -1] = 6.0
    r1 = rain.total_over(minute, 60)
    r3 = rain.total_over(minute, 180)
    assert r1[0] == pytest.approx(10.0, abs=0.01) and r3[0] == pytest.approx(30.0, abs=0.01)
    assert 0 < r1[1] < 20 and r3[1] > r1[1]
    assert r1[2] == pytest.approx(1.0)
    assert np.isnan(rain.total_over(np.full((1, 61), NAN, np.float32), 60)[0])


def test_day_starts_at_seven_local(utc_offset_min: int) -> None:
    now = 1_780_000_000_000
    start = rain.day_start_ms(now, 7, utc_offset_min)
    local_h = ((start / HOUR) + utc_offset_min / 60) % 24
    assert local_h == 7 and 0 <= now - start < 24 * HOUR
    assert rain.day_start_ms(start, 7, utc_offset_min) == start  # 07:00 sharp opens a new day


@pytest.mark.parametrize("offset_min", [0, 330, 420, -300])
def test_the_day_follows_the_sites_utc_offset(offset_min: int) -> None:
    now = 1_780_000_000_000
    start = rain.day_start_ms(now, 7, offset_min)
    assert ((start + offset_min * 60_000) % (24 * HOUR)) == 7 * HOUR
    assert 0 <= now - start < 24 * HOUR


def test_total_since_uses_the_last_reading_before_the_start() -> None:
    now = 1_780_000_000_000 - 1_780_000_000_000 % HOUR
    times = now - HOUR * np.arange(47, -1, -1, dtype=np.int64)
    hourly = np.full((2, 48), NAN, dtype=np.float32)
    hourly[0] = np.arange(48, dtype=np.float32)  # 1 mm per hour
    hourly[1, 40:] = 10.0 + np.arange(8)  # a station that began reporting 8 h ago
    current = np.asarray([47.5, 17.5], np.float32)
    since = now - 24 * HOUR
    got = rain.total_since(hourly, times, current, since)
    # base: the newest reading of the hour before the start (slot 22 ends at the start)
    assert got[0] == pytest.approx(47.5 - 22)
    assert got[1] == pytest.approx(7.5)


def test_heavy_rain_classes_and_hysteresis(thresholds: Thresholds) -> None:
    R = thresholds.rain
    r1 = np.asarray([2.0, 26.0, 55.0, 10.0, 8.0, 2.0, NAN, 5.0, 7.5], np.float32)
    r3 = np.asarray([5.0, 30.0, 60.0, 80.0, 20.0, 5.0, NAN, 10.0, 20.0], np.float32)
    r24 = np.asarray([5.0, 30.0, 60.0, 80.0, 60.0, 120.0, NAN, 60.0, 60.0], np.float32)
    rday = r24.copy()
    r = rain.heavy_rain_rule(r1, r3, r24, rday, R)
    assert r.condition.tolist() == [False, True, True, True, True, False, False, False, False]
    assert r.severity.tolist() == [0, 1, 2, 2, 1, 0, 0, 0, 0]
    # a very heavy day that has stopped raining (< 2.5 mm/h) no longer holds an alert;
    # moderate rain (2.5-7.6 mm/h) on a heavy day neither fires nor clears: a day-long
    # rain hovering at the 7.6 mm/h limit cannot flap
    assert r.clear.tolist() == [True, False, False, False, False, True, False, False, False]
