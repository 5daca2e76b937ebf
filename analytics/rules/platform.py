"""Platform health rules: the broker dropping messages, ingest falling behind, a
dead-letter surge.  One subject, the platform; arrays of length 1 like every rule."""

from __future__ import annotations

import numpy as np

from deltasense.rulekernels.base import CRITICAL, F32, WARNING, Bool, RuleResult, severity_of
from deltasense.thresholds import Platform


def queue_drop_rule(dropped: F32, watched: Bool, p: Platform) -> RuleResult:
    """Messages the broker dropped (a full session queue) within the window: each is a
    reading lost.  Clears only after a whole window watched without a drop."""
    condition = dropped >= p.broker_dropped_min
    return RuleResult(
        condition=condition,
        clear=(dropped == 0) & watched,
        severity=np.where(condition, CRITICAL, 0).astype(np.int8),
        values={"dropped": dropped},
    )


def ingest_lag_rule(lag_s: F32, p: Platform) -> RuleResult:
    """Readings stored this long after their own timestamp (or ingest silent this long);
    NaN (nothing known yet) neither fires nor clears."""
    with np.errstate(invalid="ignore"):
        warning = lag_s > p.ingest_lag_s
        critical = lag_s > p.ingest_lag_critical_s
        clear = lag_s <= p.ingest_lag_clear_s
    return RuleResult(
        condition=warning,
        clear=clear,
        severity=severity_of(warning, critical),
        values={"lag_s": lag_s},
    )


def deadletter_rule(per_min: F32, watched: Bool, p: Platform) -> RuleResult:
    """Dead letters per minute over the window at or above the limit; clears below half."""
    condition = per_min >= p.deadletters_per_min
    return RuleResult(
        condition=condition,
        clear=(per_min < p.deadletters_per_min / 2) & watched,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"per_min": per_min},
    )
