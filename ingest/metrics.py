"""Prometheus metrics of the ingest service (module-level: one registry per process)."""

from __future__ import annotations

from typing import Final

from deltasense.runtime import Metrics

_M: Final = Metrics("ingest")

MESSAGES: Final = _M.counter("messages", "MQTT messages received", ["outcome"])
READINGS: Final = _M.counter("readings", "Readings stored")
DEADLETTERS: Final = _M.counter("deadletters", "Rejected messages", ["reason"])
WRITE_SECONDS: Final = _M.histogram("write_seconds", "InfluxDB batch write time")
WRITE_RETRIES: Final = _M.counter("write_retries", "Batch writes retried")
LAG_SECONDS: Final = _M.gauge(
    "lag_seconds", "Last batch written: median of (written - the reading's own ts), live readings."
)
FLUSHES: Final = _M.counter("flushes", "Batch flushes by what triggered them", ["trigger"])
FLUSH_MESSAGES: Final = _M.histogram(
    "flush_messages",
    "Messages acknowledged per flush",
    buckets=(1, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
)
