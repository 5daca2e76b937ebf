"""Ring-buffered windows: slots, late data, gaps, growth, duplicates, wrapping."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.window import Window

SLOT = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % SLOT  # a slot boundary


def arr(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def make(n_slots: int = 10, capacity: int = 2) -> Window:
    return Window(["level_cm", "dist_mm"], slot_ms=SLOT, n_slots=n_slots, capacity=capacity)


def test_readings_land_in_their_slots_oldest_first() -> None:
    w = make()
    a, b = w.add_sensor("a"), w.add_sensor("b")
    kept = w.ingest("level_cm", arr(a, b, a), arr(T0, T0 + SLOT, T0 + 2 * SLOT), [1.0, 2.0, 3.0])
    assert kept == 3
    series = w.series("level_cm")
    assert series.shape == (2, 10)
    assert series.dtype == np.float32
    # the head slot is the last column, T0 is two before it
    np.testing.assert_array_equal(series[0, -3:], [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(series[1, -3:], [np.nan, 2.0, np.nan])
    assert np.isnan(series[:, :-3]).all()
    assert w.slot_times()[-1] == T0 + 2 * SLOT
    # the other metric is untouched
    assert np.isnan(w.series("dist_mm")).all()


def test_latest_is_newest_reading_not_last_arrived() -> None:
    w = make()
    a = w.add_sensor("a")
    w.ingest("level_cm", arr(a), arr(T0 + 5 * SLOT), [5.0])
    w.ingest("level_cm", arr(a), arr(T0 + 2 * SLOT), [2.0])  # late, within the window
    values, ts = w.latest("level_cm")
    assert values[0] == 5.0 and ts[0] == T0 + 5 * SLOT
    series = w.series("level_cm")
    assert series[0, -4] == 2.0  # the late reading landed in its own slot
    assert w.dropped_old == 0


def test_readings_older_than_the_window_are_dropped_and_counted() -> None:
    w = make(n_slots=10)
    a = w.add_sensor("a")
    w.ingest("level_cm", arr(a), arr(T0 + 20 * SLOT), [1.0])
    kept = w.ingest("level_cm", arr(a, a), arr(T0 + 10 * SLOT, T0 + 11 * SLOT), [9.0, 8.0])
    assert kept == 1  # T0+10 slots is exactly one span old: out; T0+11 is the oldest slot
    assert w.dropped_old == 1
    series = w.series("level_cm")
    assert series[0, 0] == 8.0 and series[0, -1] == 1.0
    assert np.count_nonzero(~np.isnan(series)) == 2


def test_a_batch_spanning_more_than_the_window_keeps_only_its_tail() -> None:
    w = make(n_slots=4)
    a = w.add_sensor("a")
    ts = T0 + SLOT * np.arange(10, dtype=np.int64)
    kept = w.ingest("level_cm", np.zeros(10, dtype=np.int64), ts, np.arange(10, dtype=np.float32))
    assert kept == 4 and w.dropped_old == 6
    np.testing.assert_array_equal(w.series("level_cm")[a], [6, 7, 8, 9])


def test_wrapping_slots_forget_the_previous_turn_for_every_metric() -> None:
    w = make(n_slots=4)
    a, b = w.add_sensor("a"), w.add_sensor("b")
    w.ingest("level_cm", arr(a, b), arr(T0, T0), [1.0, 1.5])
    w.ingest("dist_mm", arr(b), arr(T0), [100.0])
    # one full turn later, only a reports; position T0 % 4 is reused
    w.ingest("level_cm", arr(a), arr(T0 + 4 * SLOT), [2.0])
    series = w.series("level_cm")
    np.testing.assert_array_equal(series[0], [np.nan, np.nan, np.nan, 2.0])
    assert np.isnan(series[1]).all()  # b's value from the previous turn is gone
    assert np.isnan(w.series("dist_mm")).all()


def test_gaps_and_advance_age_out_slots_and_last_values() -> None:
    w = make(n_slots=5)
    a = w.add_sensor("a")
    w.ingest("level_cm", arr(a), arr(T0), [3.0])
    w.advance(T0 + 3 * SLOT)  # no data for 3 minutes: still inside the window
    np.testing.assert_array_equal(w.series("level_cm")[0], [np.nan, 3.0, np.nan, np.nan, np.nan])
    assert w.latest("level_cm")[0][0] == 3.0
    w.advance(T0 + 5 * SLOT)  # now T0 is a full span old
    assert np.isnan(w.series("level_cm")).all()
    values, ts = w.latest("level_cm")
    assert np.isnan(values[0]) and ts[0] == -1
    w.advance(T0)  # never moves back
    assert w.head_slot == (T0 + 5 * SLOT) // SLOT


def test_duplicates_are_idempotent_and_newest_in_slot_wins() -> None:
    w = make()
    a = w.add_sensor("a")
    w.ingest("level_cm", arr(a, a), arr(T0 + 1000, T0 + 1000), [4.0, 4.0])
    assert w.take_fresh("level_cm").tolist() == [True]
    w.ingest("level_cm", arr(a), arr(T0 + 1000), [4.0])  # redelivered
    assert w.take_fresh("level_cm").tolist() == [False]  # a duplicate is not a new reading
    w.ingest("level_cm", arr(a), arr(T0 + 1000), [4.5])  # same ms, later arrival: it wins
    assert w.latest("level_cm")[0][0] == 4.5
    assert w.take_fresh("level_cm").tolist() == [False]
    # two readings in one slot, in one batch, out of order: the newer one stays
    w.ingest("level_cm", arr(a, a), arr(T0 + 30_000, T0 + 20_000), [7.0, 6.0])
    assert w.series("level_cm")[0, -1] == 7.0
    # a late reading into the same slot does not overwrite the newer one
    w.ingest("level_cm", arr(a), arr(T0 + 10_000), [1.0])
    assert w.series("level_cm")[0, -1] == 7.0
    assert w.latest("level_cm")[0][0] == 7.0


def test_nan_values_carry_no_reading() -> None:
    w = make()
    a = w.add_sensor("a")
    w.ingest("level_cm", arr(a), arr(T0), [5.0])
    assert w.ingest("level_cm", arr(a), arr(T0 + SLOT), [np.nan]) == 0
    assert w.latest("level_cm")[0][0] == 5.0


def test_growth_keeps_rows_and_data() -> None:
    w = make(capacity=2)
    rows = w.rows_for([f"d{i}" for i in range(37)])
    assert rows.tolist() == list(range(37))
    assert w.capacity >= 37 and w.capacity <= 64  # geometric, not one copy per add
    w.ingest("level_cm", rows, np.full(37, T0, dtype=np.int64), rows.astype(np.float32))
    extra = w.add_sensor("late-comer")
    assert extra == 37 and w.row_of("d5") == 5 and w.add_sensor("d5") == 5
    values, _ = w.latest("level_cm")
    assert values.shape == (38,)
    np.testing.assert_array_equal(values[:37], np.arange(37))
    assert np.isnan(values[37])
    assert w.devices[:3] == ["d0", "d1", "d2"]


def test_growth_is_amortised() -> None:
    w = make(capacity=1)
    capacities = set()
    for i in range(1000):
        w.add_sensor(f"s{i}")
        capacities.add(w.capacity)
    assert len(capacities) <= 11  # 1, 2, 4, … 1024


@pytest.mark.parametrize(
    ("rows", "ts", "values"),
    [
        (arr(0, 0), arr(T0), [1.0, 2.0]),  # length mismatch
        (arr(5), arr(T0), [1.0]),  # unknown row
        (arr(-1), arr(T0), [1.0]),
    ],
)
def test_bad_batches_are_refused(rows: np.ndarray, ts: np.ndarray, values: list[float]) -> None:
    w = make()
    w.add_sensor("a")
    with pytest.raises(ValueError):
        w.ingest("level_cm", rows, ts, values)


def test_unknown_metric_and_bad_geometry() -> None:
    w = make()
    with pytest.raises(KeyError):
        w.series("nope")
    with pytest.raises(ValueError):
        Window([], slot_ms=SLOT)
    with pytest.raises(ValueError):
        Window(["x"], slot_ms=0)


def test_empty_window_reads_as_nan() -> None:
    w = make()
    w.add_sensor("a")
    assert np.isnan(w.series("level_cm")).all()
    assert w.ingest("level_cm", arr(), arr(), []) == 0
