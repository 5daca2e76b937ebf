"""Prometheus metrics of the analytics service (module-level: one registry per process)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

READINGS: Final = Counter(
    "deltasense_analytics_readings_total", "Readings taken into the windows.", ["kind"]
)
QC_FLAGGED: Final = Counter(
    "deltasense_analytics_qc_flagged_total",
    "Values left out of the windows because QC flagged them.",
)
DROPPED_OLD: Final = Counter(
    "deltasense_analytics_dropped_old_total", "Readings older than the window, dropped."
)
BAD_MESSAGES: Final = Counter(
    "deltasense_analytics_bad_messages_total", "MQTT messages skipped as malformed.", ["reason"]
)
ALERTS_RAISED: Final = Counter(
    "deltasense_analytics_alerts_raised_total", "Alerts that started firing.", ["rule"]
)
ALERTS_UPDATED: Final = Counter(
    "deltasense_analytics_alerts_updated_total", "Open alerts updated (severity rise).", ["rule"]
)
ALERTS_RESOLVED: Final = Counter(
    "deltasense_analytics_alerts_resolved_total", "Alerts resolved.", ["rule"]
)
ALERTS_OPEN: Final = Gauge("deltasense_analytics_alerts_open", "Alerts currently firing.")
ACKS: Final = Counter("deltasense_analytics_acks_total", "Operator acks kept on open alerts.")
EVAL_SECONDS: Final = Histogram(
    "deltasense_analytics_eval_seconds",
    "Duration of one evaluation of every rule.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
OUTBOX_DROPPED: Final = Counter(
    "deltasense_analytics_outbox_dropped_total",
    "Alert events dropped because an outbox was full.",
    ["sink"],
)
