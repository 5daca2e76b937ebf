"""Every device the engine has heard of (any kind), and every district, as arrays.

Health rules judge all devices at once, and district rules group by a
district index, so both need plain arrays: last seen, reporting interval,
position, status, battery, signal, clock skew.  Rows are append-only (a
device keeps its row for the life of the process); districts likewise.
Updates arrive one reading at a time from the ingest loop, reads are vectorised.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from analytics.window import Window

KIND_CODES: Final = {"weather": 0, "water": 1, "lamp": 2, "meter": 3}
ONLINE: Final = 0
OFFLINE: Final = 1
SLEEPING: Final = 2
# Not a contract state: an ``offline`` the device published itself (with its ``ts``)
# is a planned stop (shutdown, reboot, maintenance); the Last Will carries no ``ts``.
STOPPED: Final = 3
STATUS_CODES: Final = {"online": ONLINE, "offline": OFFLINE, "sleeping": SLEEPING}
CITY_LAT: Final = 9.29  # Bạc Liêu (docs/REFERENCE.md); devices without a position stand here
CITY_LON: Final = 105.72


def _grow(a: npt.NDArray[np.generic], size: int, fill: float | int) -> npt.NDArray[np.generic]:
    return np.concatenate([a, np.full(size - a.size, fill, dtype=a.dtype)])


class Registry:
    def __init__(self, *, capacity: int = 16, qc_slot_ms: int = 60_000, qc_slots: int = 60) -> None:
        self.devices: list[str] = []
        self.device_districts: list[str] = []
        self._rows: dict[str, int] = {}
        self.districts: list[str] = []
        self._district_rows: dict[str, int] = {}
        self._capacity = capacity
        self.kind = np.full(capacity, -1, dtype=np.int8)
        self.district = np.full(capacity, -1, dtype=np.int64)
        self.last_seen = np.full(capacity, -1, dtype=np.int64)
        self.interval_s = np.full(capacity, np.nan, dtype=np.float32)
        self.lat = np.full(capacity, np.nan, dtype=np.float32)
        self.lon = np.full(capacity, np.nan, dtype=np.float32)
        self.status = np.zeros(capacity, dtype=np.int8)
        self.batt_v = np.full(capacity, np.nan, dtype=np.float32)
        self.rssi_dbm = np.full(capacity, np.nan, dtype=np.float32)
        self.skew_s = np.full(capacity, np.nan, dtype=np.float32)
        # QC-flagged values per reading, newest per minute slot.
        self.qc = Window(("flagged",), slot_ms=qc_slot_ms, n_slots=qc_slots, capacity=capacity)

    @property
    def n(self) -> int:
        return len(self.devices)

    def district_row(self, district: str) -> int:
        row = self._district_rows.get(district)
        if row is None:
            row = self._district_rows[district] = len(self.districts)
            self.districts.append(district)
        return row

    def row(self, device: str, district: str, kind: str) -> int:
        row = self._rows.get(device)
        if row is None:
            row = self._rows[device] = len(self.devices)
            self.devices.append(device)
            self.device_districts.append(district)
            if row >= self._capacity:
                self._grow_to(max(2 * self._capacity, row + 1))
            self.qc.add_sensor(device)
        elif self.device_districts[row] != district:
            self.device_districts[row] = district  # a device may move; the newest wins
        self.district[row] = self.district_row(district)
        if kind:
            self.kind[row] = KIND_CODES.get(kind, -1)
        return row

    def row_of(self, device: str) -> int | None:
        return self._rows.get(device)

    def _grow_to(self, size: int) -> None:
        self.kind = _grow(self.kind, size, -1)  # type: ignore[assignment]
        self.district = _grow(self.district, size, -1)  # type: ignore[assignment]
        self.last_seen = _grow(self.last_seen, size, -1)  # type: ignore[assignment]
        self.interval_s = _grow(self.interval_s, size, np.nan)  # type: ignore[assignment]
        self.lat = _grow(self.lat, size, np.nan)  # type: ignore[assignment]
        self.lon = _grow(self.lon, size, np.nan)  # type: ignore[assignment]
        self.status = _grow(self.status, size, 0)  # type: ignore[assignment]
        self.batt_v = _grow(self.batt_v, size, np.nan)  # type: ignore[assignment]
        self.rssi_dbm = _grow(self.rssi_dbm, size, np.nan)  # type: ignore[assignment]
        self.skew_s = _grow(self.skew_s, size, np.nan)  # type: ignore[assignment]
        self._capacity = size

    def positions(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(lat, lon) of ``rows``, the city centre where a device sent no position."""
        lat = np.where(np.isnan(self.lat[rows]), np.float32(CITY_LAT), self.lat[rows])
        lon = np.where(np.isnan(self.lon[rows]), np.float32(CITY_LON), self.lon[rows])
        return lat.astype(np.float32), lon.astype(np.float32)

    def memory_bytes(self) -> int:
        arrays = (
            self.kind, self.district, self.last_seen, self.interval_s, self.lat, self.lon,
            self.status, self.batt_v, self.rssi_dbm, self.skew_s,
        )  # fmt: skip
        return sum(a.nbytes for a in arrays) + self.qc.memory_bytes()
