"""Prometheus metrics of the analytics service (module-level: one registry per process)."""

from __future__ import annotations

from typing import Final

from deltasense.runtime import Metrics

_M: Final = Metrics("analytics")

READINGS: Final = _M.counter(
    "readings", "Readings taken in off MQTT (into the windows at the next evaluation).", ["kind"]
)
LAG_SECONDS: Final = _M.gauge(
    "lag_seconds",
    "Last batch of telemetry taken in: median of (taken in - the reading's own ts), "
    "live device-stamped readings.",
)
QC_FLAGGED: Final = _M.counter(
    "qc_flagged", "Values left out of the windows because QC flagged them."
)
DROPPED_OLD: Final = _M.counter("dropped_old", "Readings older than the window, dropped.")
BAD_MESSAGES: Final = _M.counter("bad_messages", "MQTT messages skipped as malformed.", ["reason"])
ALERTS_RAISED: Final = _M.counter("alerts_raised", "Alerts that started firing.", ["rule"])
ALERTS_UPDATED: Final = _M.counter(
    "alerts_updated", "Open alerts updated (severity rise).", ["rule"]
)
ALERTS_RESOLVED: Final = _M.counter("alerts_resolved", "Alerts resolved.", ["rule"])
ALERTS_OPEN: Final = _M.gauge("alerts_open", "Alerts currently firing.")
ACKS: Final = _M.counter("acks", "Operator acks kept on open alerts.")
EVAL_SECONDS: Final = _M.histogram(
    "eval_seconds",
    "Duration of one evaluation of every rule.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
OUTBOX_DROPPED: Final = _M.counter(
    "outbox_dropped", "Alert events dropped because an outbox was full.", ["sink"]
)
BROKER_DROPPED: Final = _M.gauge(
    "broker_dropped_messages",
    "Messages the broker dropped since it started ($SYS/broker/publish/messages/dropped).",
)
BROKER_STORED: Final = _M.gauge(
    "broker_stored_messages", "Messages in the broker's store ($SYS/broker/store/messages/count)."
)
INGEST_LAG: Final = _M.gauge(
    "ingest_lag_seconds", "An ingest worker's reported lag (its health report).", ["worker"]
)
INGEST_DEADLETTERS: Final = _M.gauge(
    "ingest_deadletters", "Dead letters an ingest worker counted since it started.", ["worker"]
)
PLATFORM_ALERTS: Final = _M.gauge(
    "platform_alert_firing",
    "Subjects a platform or edge gateway health rule has firing.",
    ["rule"],
)
EDGE_ONLINE: Final = _M.gauge(
    "edge_online", "1 while a district gateway's status says online.", ["district"]
)
EDGE_OLDEST_AGE: Final = _M.gauge(
    "edge_spool_oldest_age_seconds",
    "A district gateway's oldest spooled record, as its last status said.",
    ["district"],
)
EDGE_DROPPED: Final = _M.gauge(
    "edge_spool_dropped",
    "Records a district gateway's spool dropped since it was made (its status).",
    ["district"],
)
EDGE_ALERTS: Final = _M.counter(
    "edge_alerts",
    "Alert events district gateways raised offline: adopted, ended, duplicate, refused.",
    ["outcome"],
)
