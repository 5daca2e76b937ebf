"""District edge gateway health rules: a spool backing up (the ward's readings are
late), records dropped at the gateway (lost for good), the gateway gone silent.
One row per gateway (analytics/gateways.py); a retired gateway clears them all."""

from __future__ import annotations

import numpy as np

from deltasense.rulekernels.base import CRITICAL, F32, WARNING, Bool, RuleResult, severity_of
from deltasense.thresholds import Platform


def backlog_rule(oldest_age_s: F32, retired: Bool, p: Platform) -> RuleResult:
    """The oldest spooled record older than the limit: the uplink is down or cannot
    keep up.  NaN (not known now: the gateway is offline or silent) neither fires
    nor clears; it clears once the spool has drained below the clear age."""
    with np.errstate(invalid="ignore"):
        warning = (oldest_age_s > p.edge_backlog_s) & ~retired
        critical = oldest_age_s > p.edge_backlog_critical_s
        clear = (oldest_age_s <= p.edge_backlog_clear_s) | retired
    return RuleResult(
        condition=warning,
        clear=clear,
        severity=severity_of(warning, critical),
        values={"oldest_age_s": oldest_age_s},
    )


def drops_rule(dropped: F32, watched: Bool, retired: Bool, p: Platform) -> RuleResult:
    """The gateway's drop counter rose within the window: readings lost at the
    gateway.  Clears after a whole window watched without a new drop."""
    condition = (dropped >= p.edge_dropped_min) & ~retired
    return RuleResult(
        condition=condition,
        clear=((dropped == 0) & watched) | retired,
        severity=np.where(condition, CRITICAL, 0).astype(np.int8),
        values={"dropped": dropped},
    )


def silent_rule(
    silent_s: F32, offline: Bool, stale_after_s: F32, heard: Bool, retired: Bool, p: Platform
) -> RuleResult:
    """Its Last Will says offline, or no status for ``edge_silent_intervals`` of its
    intervals; critical once that has lasted ``edge_silent_critical_s``.  A gateway
    not heard yet this run (an alert restored before its retained status came)
    neither fires nor clears."""
    with np.errstate(invalid="ignore"):
        condition = (offline | (silent_s > stale_after_s)) & ~retired
        critical = condition & (silent_s >= p.edge_silent_critical_s)
    return RuleResult(
        condition=condition,
        clear=(~condition & heard) | retired,
        severity=np.where(critical, CRITICAL, np.where(condition, WARNING, 0)).astype(np.int8),
        values={"silent_s": np.nan_to_num(silent_s, nan=0.0).astype(np.float32)},
    )
