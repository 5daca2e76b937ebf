"""Prometheus metrics of the gateway (module-level: one registry per process).

The drop counters start at the spool's persisted totals, so they count every
drop of the spool's life, across restarts."""

from __future__ import annotations

from typing import Final

from deltasense.runtime import Metrics

_M: Final = Metrics("edge")

RECEIVED: Final = _M.counter("received", "Messages from the ward spooled")
FORWARDED: Final = _M.counter(
    "forwarded", "Messages the platform acknowledged (PUBACK)", ["flow"]
)  # flow: live | backlog
DROPPED: Final = _M.counter("dropped", "Spooled records dropped unsent", ["reason"])
SUPERSEDED: Final = _M.counter(
    "superseded", "Retained records replaced by a newer one of their topic before sending"
)
SPOOL_RECORDS: Final = _M.gauge("spool_records", "Records in the spool")
SPOOL_BYTES: Final = _M.gauge("spool_bytes", "Bytes of the spool's records")
SPOOL_MAX_BYTES: Final = _M.gauge("spool_max_bytes", "The spool's byte bound")
OLDEST_AGE: Final = _M.gauge("spool_oldest_age_seconds", "Age of the oldest spooled record")
BACKLOG: Final = _M.gauge("backlog_records", "Records of the backlog still to send")
LAST_DRAIN_SECONDS: Final = _M.gauge(
    "last_drain_seconds", "How long the last backlog took to drain, from the reconnect"
)
LAST_DRAIN_RECORDS: Final = _M.gauge("last_drain_records", "Records the last backlog replayed")
UPLINK_UP: Final = _M.gauge("uplink_connected", "1 while connected to the platform")
LOCAL_UP: Final = _M.gauge("local_connected", "1 while connected to the ward's broker")
COMMANDS: Final = _M.counter("commands", "Commands from the platform", ["outcome"])
CONFIGS: Final = _M.counter("configs", "Retained configurations relayed to nodes")
COMMIT_SECONDS: Final = _M.histogram(
    "spool_commit_seconds", "Spool transaction time, fsync included"
)
SIREN: Final = _M.gauge("siren_on", "1 while the ward siren sounds (local rules, offline)")
LAMP_ORDERS: Final = _M.counter("lamp_orders", "Full-brightness orders sent to lamps offline")
LOCAL_ALERTS: Final = _M.counter(
    "local_alerts", "Alert events raised offline and spooled for the platform", ["state"]
)
RULES_REJECTED: Final = _M.counter(
    "rules_rejected", "Messages the local rules could not read (ignored, still forwarded)"
)
