"""The analytics core without I/O: readings in, alert changes out.

:class:`Engine` owns the windows, the per-device district map and one
:class:`~analytics.lifecycle.Lifecycle` per rule.  The service feeds it decoded
readings (from MQTT or from the InfluxDB refill), calls :meth:`Engine.evaluate`
and publishes what comes back.  New rules plug in here: a window for their
kind, a pure rule function, a lifecycle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from analytics import window as win
from analytics.lifecycle import Lifecycle, RuleSpec
from analytics.rules import flood
from analytics.thresholds import Thresholds
from deltasense.alerts import AlertEvent
from deltasense.contract import Kind, Reading
from deltasense.qc import out_of_range

_LOG = logging.getLogger(__name__)

WATER_METRICS: Final = ("level_cm",)


@dataclass
class IngestStats:
    readings: int = 0  # readings of a kind analytics uses
    values: int = 0  # values stored in a window
    qc_flagged: int = 0  # values QC flagged, kept out of the windows
    ignored: int = 0  # readings of kinds no rule uses yet


class Engine:
    def __init__(
        self,
        thresholds: Thresholds,
        *,
        slot_ms: int = win.DEFAULT_SLOT_MS,
        n_slots: int = win.DEFAULT_N_SLOTS,
    ) -> None:
        self.thresholds = thresholds
        self.water = win.Window(WATER_METRICS, slot_ms=slot_ms, n_slots=n_slots)
        self._districts: list[str] = []  # per water row
        self._canal_ids = frozenset(thresholds.flood.canal_stations)
        self._canal: list[bool] = []  # per water row
        alerting = thresholds.alerting
        self.street_flood = Lifecycle(
            RuleSpec(
                rule=flood.RULE,
                kind=flood.KIND,
                for_count=alerting.for_.flood_readings,
                keep_firing_for_ms=round(alerting.keep_firing_for.flood_s * 1000),
            ),
            flood.message,
        )

    @property
    def kinds(self) -> frozenset[Kind]:
        """Kinds some rule uses; the service need not decode the others."""
        return frozenset({Kind.WATER})

    @property
    def span_ms(self) -> int:
        return self.water.span_ms

    # --- input ---------------------------------------------------------------------------
    def _water_rows(self, devices: Sequence[str], districts: Sequence[str]) -> np.ndarray:
        rows = self.water.rows_for(devices)
        while len(self._districts) < self.water.n_sensors:
            device = self.water.devices[len(self._districts)]
            self._districts.append("")
            self._canal.append(device in self._canal_ids)
        for row, district in zip(rows.tolist(), districts, strict=True):
            self._districts[row] = district  # a device may move; the newest wins
        return rows

    def set_station(self, device: str, district: str, station: str) -> None:
        """A water node's meta says where it measures; canal stations (by meta or by
        the thresholds' ``canal_stations``) are left out of the street rule."""
        (row,) = self._water_rows([device], [district]).tolist()
        self._canal[row] = station == "canal" or device in self._canal_ids

    def ingest_water(
        self,
        devices: Sequence[str],
        districts: Sequence[str],
        ts_ms: Sequence[int],
        level_cm: Sequence[float],
    ) -> int:
        """Store QC-clean ``level_cm`` values (NaN = none); returns how many were kept."""
        if not devices:
            return 0
        rows = self._water_rows(devices, districts)
        return self.water.ingest(
            "level_cm",
            rows,
            np.asarray(ts_ms, dtype=np.int64),
            np.asarray(level_cm, dtype=np.float32),
        )

    def ingest(self, readings: Iterable[Reading]) -> IngestStats:
        """Decoded readings (any kind) into the windows; QC-flagged values are left out."""
        stats = IngestStats()
        devices: list[str] = []
        districts: list[str] = []
        ts: list[int] = []
        levels: list[float] = []
        for reading in readings:
            if reading.kind is not Kind.WATER:
                stats.ignored += 1
                continue
            stats.readings += 1
            value = reading.fields.get("level_cm")
            if value is None or isinstance(value, bool):
                continue
            if "level_cm" in out_of_range(reading.kind, {"level_cm": value}):
                stats.qc_flagged += 1
                continue
            devices.append(reading.device)
            districts.append(reading.district)
            ts.append(reading.ts_ms)
            levels.append(float(value))
        stats.values = self.ingest_water(devices, districts, ts, levels)
        return stats

    # --- alerts --------------------------------------------------------------------------
    def evaluate(self, now_ms: int) -> list[AlertEvent]:
        """Run every rule on the current windows; returns the alert changes."""
        self.water.advance(now_ms)
        level, _ = self.water.latest("level_cm")
        fresh = self.water.take_fresh("level_cm")
        result = flood.street_flood(
            level,
            excluded=np.asarray(self._canal, dtype=np.bool_),
            flood=self.thresholds.flood,
            deadband_mm=self.thresholds.alerting.deadband.level_mm,
        )
        return self.street_flood.step(
            condition=result.condition,
            clear=result.clear,
            severity=result.severity,
            fresh=fresh,
            now_ms=now_ms,
            subjects=self.water.devices,
            districts=self._districts,
            values={"depth_mm": result.depth_mm},
        )

    def restore(self, events: Iterable[AlertEvent]) -> int:
        """Adopt open alerts of a previous run; returns how many were adopted."""
        adopted = 0
        for event in events:
            if event.state == "resolved":
                continue
            if event.rule != flood.RULE:
                _LOG.info("open alert %s of unknown rule %s left alone", event.id, event.rule)
                continue
            rows = self._water_rows([event.subject], [event.district])
            self.street_flood.restore(int(rows[0]), event)
            adopted += 1
        return adopted

    def apply_ack(self, event: AlertEvent) -> bool:
        if event.rule == flood.RULE:
            return self.street_flood.apply_ack(event)
        return False

    def open_alerts(self) -> list[AlertEvent]:
        return self.street_flood.open_alerts()
