"""Time-slotted windows of readings as NumPy arrays (sensors × slots, one per metric).

A :class:`Window` covers ``n_slots`` slots of ``slot_ms`` each (default: 1-minute
slots over 6 h) as a ring: a reading at ``ts`` lands in slot
``(ts // slot_ms) % n_slots``.  One epoch array (the absolute slot number each
ring position currently holds) is shared by every metric, so a slot left over
from an earlier turn of the ring reads as NaN without anyone clearing it.

Sensors are added at run time; capacity grows geometrically, so adding a
sensor costs amortised O(1) instead of a copy of every array.  Each slot keeps
the reading with the newest ``ts`` that fell into it; the window also keeps
each sensor's last value and its ``ts`` (the newest reading seen), which is
what most rules look at.  All ingestion is vectorised over a batch.

Memory: a cell is a float32 value plus a uint16 offset of its reading inside the
slot (ms for slots up to 65.5 s, coarser for longer slots), 6 bytes instead of
the 12 a full int64 timestamp would take: at 100 000 sensors this is what keeps
the engine under 1 GiB.  An empty cell is a NaN value (NaN readings are never
stored).  Rules read only the recent columns they need (``series(last=k)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
U16 = npt.NDArray[np.uint16]

DEFAULT_SLOT_MS: Final = 60_000
DEFAULT_N_SLOTS: Final = 360  # 6 h of 1-minute slots
NO_TS: Final = -1


class _Metric:
    """Arrays of one metric; rows beyond the sensor count are spare capacity."""

    def __init__(self, capacity: int, n_slots: int) -> None:
        self.values: F32 = np.full((capacity, n_slots), np.nan, dtype=np.float32)
        # Offset of the stored reading inside its slot (units: Window.off_unit ms).
        self.slot_off: U16 = np.zeros((capacity, n_slots), dtype=np.uint16)
        self.last_value: F32 = np.full(capacity, np.nan, dtype=np.float32)
        self.last_ts: I64 = np.full(capacity, NO_TS, dtype=np.int64)
        # Rows whose last value moved forward since the last take_fresh().
        self.fresh: Bool = np.zeros(capacity, dtype=np.bool_)

    def grow(self, capacity: int) -> None:
        old = self.values.shape[0]
        extra = capacity - old
        n_slots = self.values.shape[1]
        self.values = np.concatenate(
            [self.values, np.full((extra, n_slots), np.nan, dtype=np.float32)]
        )
        self.slot_off = np.concatenate([self.slot_off, np.zeros((extra, n_slots), dtype=np.uint16)])
        self.last_value = np.concatenate(
            [self.last_value, np.full(extra, np.nan, dtype=np.float32)]
        )
        self.last_ts = np.concatenate([self.last_ts, np.full(extra, NO_TS, dtype=np.int64)])
        self.fresh = np.concatenate([self.fresh, np.zeros(extra, dtype=np.bool_)])


class Window:
    """Ring-buffered windows for one group of sensors (e.g. every ``water`` device)."""

    def __init__(
        self,
        metrics: Sequence[str],
        *,
        slot_ms: int = DEFAULT_SLOT_MS,
        n_slots: int = DEFAULT_N_SLOTS,
        capacity: int = 16,
    ) -> None:
        if not metrics:
            raise ValueError("a window needs at least one metric")
        if slot_ms <= 0 or n_slots <= 0 or capacity <= 0:
            raise ValueError("slot_ms, n_slots and capacity must be positive")
        self.slot_ms = slot_ms
        self.n_slots = n_slots
        self.off_unit = -(-slot_ms // 65_536)  # ms per offset step, so offsets fit uint16
        self._capacity = capacity
        self._rows: dict[str, int] = {}
        self._devices: list[str] = []
        self._metrics = {name: _Metric(capacity, n_slots) for name in metrics}
        # Absolute slot number (ts // slot_ms) held by each ring position; -1 = never used.
        self._epoch: I64 = np.full(n_slots, -1, dtype=np.int64)
        self._head = -1  # newest absolute slot seen (data time or advance())
        self.dropped_old = 0  # readings older than the window, never stored

    # --- sensors -----------------------------------------------------------------
    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self._metrics)

    @property
    def n_sensors(self) -> int:
        return len(self._devices)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def devices(self) -> list[str]:
        """Device id of each row, in row order (read-only by convention)."""
        return self._devices

    def row_of(self, device: str) -> int | None:
        return self._rows.get(device)

    def add_sensor(self, device: str) -> int:
        """Row of ``device``, adding it (and growing capacity) when new."""
        row = self._rows.get(device)
        if row is not None:
            return row
        row = len(self._devices)
        if row >= self._capacity:
            self._grow(max(self._capacity * 2, row + 1))
        self._rows[device] = row
        self._devices.append(device)
        return row

    def rows_for(self, devices: Iterable[str]) -> I64:
        """Rows of ``devices`` as an array, adding unknown ones."""
        return np.fromiter((self.add_sensor(d) for d in devices), dtype=np.int64)

    def _grow(self, capacity: int) -> None:
        for metric in self._metrics.values():
            metric.grow(capacity)
        self._capacity = capacity

    # --- time --------------------------------------------------------------------
    @property
    def head_slot(self) -> int:
        return self._head

    @property
    def span_ms(self) -> int:
        return self.slot_ms * self.n_slots

    def advance(self, now_ms: int) -> None:
        """Move the window's head to ``now_ms`` so slots and last values age out
        even when no reading arrives."""
        self._head = max(self._head, now_ms // self.slot_ms)

    def _oldest_slot(self) -> int:
        return self._head - self.n_slots + 1

    # --- ingestion ---------------------------------------------------------------
    def ingest(self, metric: str, rows: I64, ts_ms: I64, values: npt.ArrayLike) -> int:
        """Store a batch of ``(row, ts, value)`` for ``metric``; returns how many were kept.

        Readings older than the window (relative to the newest slot seen so far,
        this batch included) are dropped and counted in :attr:`dropped_old`.
        Within one (row, slot), the newest ``ts`` wins, so a late reading never
        overwrites a newer one and a duplicate is harmless.  NaN values are
        ignored (they carry no reading).
        """
        m = self._metrics[metric]
        rows = np.asarray(rows, dtype=np.int64)
        ts = np.asarray(ts_ms, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float32)
        if not rows.shape == ts.shape == vals.shape or rows.ndim != 1:
            raise ValueError("rows, ts_ms and values must be 1-D arrays of one length")
        if rows.size == 0:
            return 0
        if rows.min() < 0 or rows.max() >= self.n_sensors:
            raise ValueError("row outside the known sensors; add_sensor() first")
        usable = ~np.isnan(vals) & (ts >= 0)
        rows, ts, vals = rows[usable], ts[usable], vals[usable]
        if rows.size == 0:
            return 0

        absolute = ts // self.slot_ms
        self._head = max(self._head, int(absolute.max()))
        in_window = absolute >= self._oldest_slot()
        self.dropped_old += int(rows.size - np.count_nonzero(in_window))
        rows, ts, vals, absolute = (
            rows[in_window],
            ts[in_window],
            vals[in_window],
            absolute[in_window],
        )
        if rows.size == 0:
            return 0
        slots = absolute % self.n_slots

        # Ring positions entering a new turn: forget what they held, for every metric.
        # (Kept readings all lie within n_slots of each other, so one ring position
        # never receives two different absolute slots in one batch.)
        renew = absolute > self._epoch[slots]
        if renew.any():
            fresh_slots = np.unique(slots[renew])
            for other in self._metrics.values():
                other.values[:, fresh_slots] = np.nan
                other.slot_off[:, fresh_slots] = 0
            self._epoch[slots[renew]] = absolute[renew]

        # Newest reading per (row, slot) within the batch, then against what is stored.
        order = np.lexsort((ts, slots, rows))
        rows_o, slots_o, ts_o, vals_o = rows[order], slots[order], ts[order], vals[order]
        last_of_group = np.ones(rows_o.size, dtype=np.bool_)
        last_of_group[:-1] = (rows_o[1:] != rows_o[:-1]) | (slots_o[1:] != slots_o[:-1])
        r, s, t, v = (
            rows_o[last_of_group],
            slots_o[last_of_group],
            ts_o[last_of_group],
            vals_o[last_of_group],
        )
        off = ((t % self.slot_ms) // self.off_unit).astype(np.uint16)
        newer = np.isnan(m.values[r, s]) | (off >= m.slot_off[r, s])
        m.values[r[newer], s[newer]] = v[newer]
        m.slot_off[r[newer], s[newer]] = off[newer]

        # Last value per row: the batch's newest reading per row (the last to arrive
        # among equal ts: lexsort is stable), if not older than the stored one.
        by_row = np.lexsort((ts, rows))
        rows_r, ts_r, vals_r = rows[by_row], ts[by_row], vals[by_row]
        last_of_row = np.ones(rows_r.size, dtype=np.bool_)
        last_of_row[:-1] = rows_r[1:] != rows_r[:-1]
        lr, lt, lv = rows_r[last_of_row], ts_r[last_of_row], vals_r[last_of_row]
        # A tie goes to the later arrival (as in a slot), but only a strictly newer
        # reading is fresh: a redelivered duplicate must not count as a second reading.
        prior = m.last_ts[lr]
        moved = lt >= prior
        m.last_value[lr[moved]] = lv[moved]
        m.last_ts[lr[moved]] = lt[moved]
        m.fresh[lr[lt > prior]] = True
        return int(rows.size)

    # --- reading -----------------------------------------------------------------
    def _columns(self, last: int | None) -> I64:
        k = self.n_slots if last is None else max(0, min(last, self.n_slots))
        return np.arange(self._head - k + 1, self._head + 1, dtype=np.int64)

    def series(self, metric: str, last: int | None = None) -> F32:
        """A copy of ``metric`` as (sensors × slots), oldest slot first, NaN = missing;
        only the newest ``last`` slots when given (cheaper: rules read what they need)."""
        m = self._metrics[metric]
        n = self.n_sensors
        absolute = self._columns(last)
        if self._head < 0:
            return np.full((n, absolute.size), np.nan, dtype=np.float32)
        positions = absolute % self.n_slots
        current = self._epoch[positions] == absolute
        if not current.any():  # nothing stored in these slots (e.g. no QC flag yet)
            return np.full((n, absolute.size), np.nan, dtype=np.float32)
        if positions.size and np.all(np.diff(positions) == 1):
            out = m.values[:n, positions[0] : positions[-1] + 1].copy()  # contiguous: a slice
        elif positions.size and np.count_nonzero(np.diff(positions) != 1) == 1:
            # The ring wraps once: two slices copy far faster than fancy indexing.
            cut = int(np.flatnonzero(np.diff(positions) != 1)[0]) + 1
            out = np.empty((n, positions.size), dtype=np.float32)
            out[:, :cut] = m.values[:n, positions[0] : positions[cut - 1] + 1]
            out[:, cut:] = m.values[:n, positions[cut] : positions[-1] + 1]
        else:
            out = m.values[:n][:, positions]
        if not current.all():
            out[:, ~current] = np.nan
        return out

    def columns(self, metric: str, offsets: npt.ArrayLike) -> F32:
        """Chosen columns of :meth:`series` (0 = oldest slot, ``n_slots - 1`` = head),
        without copying the rest of the window."""
        m = self._metrics[metric]
        n = self.n_sensors
        absolute = self._oldest_slot() + np.asarray(offsets, dtype=np.int64)
        if self._head < 0:
            return np.full((n, absolute.size), np.nan, dtype=np.float32)
        positions = absolute % self.n_slots
        out = m.values[:n][:, positions]
        stale = self._epoch[positions] != absolute
        if stale.any():
            out[:, stale] = np.nan
        return out

    def latest_since(self, metric: str, since_ms: int) -> F32:
        """Last value per sensor if its reading is not older than ``since_ms``, else NaN."""
        m = self._metrics[metric]
        n = self.n_sensors
        return np.where(m.last_ts[:n] >= since_ms, m.last_value[:n], np.float32(np.nan)).astype(
            np.float32
        )

    def slot_times(self, last: int | None = None) -> I64:
        """Start time (ms) of each column of :meth:`series`."""
        return self._columns(last) * self.slot_ms

    def memory_bytes(self) -> int:
        """Bytes held by the arrays (capacity included)."""
        total = self._epoch.nbytes
        for m in self._metrics.values():
            total += m.values.nbytes + m.slot_off.nbytes + m.last_value.nbytes
            total += m.last_ts.nbytes + m.fresh.nbytes
        return total

    def latest(self, metric: str) -> tuple[F32, I64]:
        """(last value, its ts) per sensor; NaN / -1 where none lies inside the window."""
        m = self._metrics[metric]
        n = self.n_sensors
        values = m.last_value[:n].copy()
        ts = m.last_ts[:n].copy()
        stale = (ts == NO_TS) | (ts // self.slot_ms < self._oldest_slot())
        values[stale] = np.nan
        ts[stale] = NO_TS
        return values, ts

    def take_fresh(self, metric: str) -> Bool:
        """Rows whose last value moved forward since the previous call (then reset)."""
        m = self._metrics[metric]
        out = m.fresh[: self.n_sensors].copy()
        m.fresh[:] = False
        return out
