"""Scoring raised alerts against labelled events (pure; no engine, no I/O).

Matching: an alert matches a label when the kinds agree, the alert starts within
``[label.start − tolerance, label.end + tolerance]`` (or is still firing when the
labelled event starts: it reported it ahead of time), and the subject fits the
label's scope: the same device for a device label (or the device's district, for
a district roll-up alert whose subject is the district), any subject in the
district for a district label, any subject for a city label.

* ``events``: expected labels; ``detected`` those matched by at least one alert;
  ``delay`` = start of the first matching alert − the moment the label became
  detectable by its definition (its start plus ``evidence_ms``, set by the scenario:
  3 missed intervals for an offline device, 60 min for a stuck sensor, half the
  median window for a drifting lamp, the switches that make cycling; 0 for storm,
  flood and the other faults); negative when an alert anticipated the event within
  the tolerance.  ``onset delay`` is measured from the label's start.
* ``false_alerts``: alerts matching no label, expected or tolerated.
* ``flaps``: an alert of a (rule, subject) that reports the same episode as the
  previous alert of that (rule, subject): more than one alert for one episode
  (:func:`episode_flaps`).
* ``precision`` = true alerts / alerts, ``recall`` = detected / events; ``None``
  where there is nothing to divide by.

Per rule, ``events`` are the labels of the rule's kind (its family); rules of one
family share them, so one rule's misses may be another's detections.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from backtest.scenarios.labels import ALERT_KINDS, Label
from deltasense.alerts import SEVERITY_RANK, AlertEvent

DEFAULT_TOLERANCE_MS: Final = 15 * 60_000


@dataclass(frozen=True)
class Alert:
    """One alert episode (all events of one id folded together)."""

    id: str
    kind: str
    rule: str
    subject: str
    district: str
    severity: str  # the highest it reached
    start_ms: int
    end_ms: int | None  # None: still open when the run ended

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "rule": self.rule,
            "subject": self.subject,
            "district": self.district,
            "severity": self.severity,
            "start": self.start_ms,
            "end": self.end_ms,
        }


def fold(events: Iterable[AlertEvent]) -> list[Alert]:
    """Alert episodes from a stream of alert changes, in order of start."""
    by_id: dict[str, Alert] = {}
    for e in events:
        old = by_id.get(e.id)
        severity = e.severity
        if old is not None and SEVERITY_RANK[old.severity] > SEVERITY_RANK[severity]:
            severity = old.severity  # type: ignore[assignment]
        by_id[e.id] = Alert(
            id=e.id,
            kind=e.kind,
            rule=e.rule,
            subject=e.subject,
            district=e.district,
            severity=severity,
            start_ms=e.started,
            end_ms=e.ended if e.state == "resolved" else None,
        )
    return sorted(by_id.values(), key=lambda a: (a.start_ms, a.rule, a.subject))


def matches(alert: Alert, label: Label, tolerance_ms: int = DEFAULT_TOLERANCE_MS) -> bool:
    if alert.kind != label.kind:
        return False
    starts_inside = label.start_ms - tolerance_ms <= alert.start_ms <= label.end_ms + tolerance_ms
    open_at_start = alert.start_ms < label.start_ms and (
        alert.end_ms is None or alert.end_ms >= label.start_ms
    )
    if not (starts_inside or open_at_start):
        return False
    if label.scope == "city":
        return True
    if label.scope == "district":
        return label.district in (alert.district, alert.subject)
    return alert.subject in (label.subject, label.district)


def episode_flaps(matched: Sequence[Sequence[int]], labels: Sequence[Label]) -> list[bool]:
    """For the alerts of one (rule, subject) in order of start (each given as the
    indices of the labels it matches): whether each repeats the previous one's episode.

    An alert's episode is its expected labels.  An alert matching only tolerated
    labels (a re-raise in the lead-up or aftermath of an event) sharing one with the
    previous alert continues that alert's episode: a flap.  An alert for an expected
    event after a tolerated-only alert sharing the envelope is a flap too (raised,
    dropped, raised again for one storm).  Two alerts for two distinct expected events
    that share only the tolerated envelope around both (water in the street through
    two labelled floods) are two episodes."""
    flaps: list[bool] = []
    prev_episode: set[int] = set()
    prev_matched: set[int] = set()
    for i, m in enumerate(matched):
        cur = set(m)
        expected = {k for k in cur if labels[k].expected}
        shares_envelope = bool(cur & prev_matched)
        if i == 0:
            flap = False
        elif expected:
            prev_expected = any(labels[k].expected for k in prev_episode)
            flap = bool(expected & prev_episode) or (not prev_expected and shares_envelope)
        else:
            flap = shares_envelope
        flaps.append(flap)
        prev_episode = expected or (prev_episode if flap else cur)
        prev_matched = cur
    return flaps


@dataclass
class Score:
    """Counts for one group (an alert kind, a rule, or a kind of labelled event)."""

    events: int = 0
    detected: int = 0
    alerts: int = 0
    false_alerts: int = 0
    flaps: int = 0
    delays_s: list[float] = field(default_factory=list)
    onset_delays_s: list[float] = field(default_factory=list)

    @property
    def missed(self) -> int:
        return self.events - self.detected

    @property
    def precision(self) -> float | None:
        return None if self.alerts == 0 else (self.alerts - self.false_alerts) / self.alerts

    @property
    def recall(self) -> float | None:
        return None if self.events == 0 else self.detected / self.events

    @property
    def delay_median_s(self) -> float | None:
        return statistics.median(self.delays_s) if self.delays_s else None

    @property
    def delay_worst_s(self) -> float | None:
        return max(self.delays_s) if self.delays_s else None

    @property
    def onset_delay_median_s(self) -> float | None:
        return statistics.median(self.onset_delays_s) if self.onset_delays_s else None

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None, nd: int) -> float | None:
            return None if x is None else round(x, nd)

        return {
            "events": self.events,
            "detected": self.detected,
            "missed": self.missed,
            "raised": self.alerts,
            "false_alerts": self.false_alerts,
            "flaps": self.flaps,
            "precision": r(self.precision, 4),
            "recall": r(self.recall, 4),
            "delay_median_s": r(self.delay_median_s, 1),
            "delay_worst_s": r(self.delay_worst_s, 1),
            "onset_delay_median_s": r(self.onset_delay_median_s, 1),
        }


@dataclass
class Outcome:
    """Per-label and per-alert verdicts plus the three score tables."""

    kinds: dict[str, Score]
    rules: dict[str, Score]
    whats: dict[str, Score]
    label_delay_s: list[float | None]  # per label (None: not detected or tolerated)
    alert_matches: list[list[int]]  # per alert: indices of the labels it matches
    alert_flaps: list[bool]


def score(
    alerts: Sequence[Alert], labels: Sequence[Label], tolerance_ms: int = DEFAULT_TOLERANCE_MS
) -> Outcome:
    kinds = {kind: Score() for kind in ALERT_KINDS}
    rules: dict[str, Score] = {}
    whats: dict[str, Score] = {}
    rule_kind = {a.rule: a.kind for a in alerts}

    alert_matches = [
        [i for i, label in enumerate(labels) if matches(a, label, tolerance_ms)] for a in alerts
    ]
    # Flaps: consecutive alerts of one (rule, subject) for one episode.
    alert_flaps = [False] * len(alerts)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i in sorted(range(len(alerts)), key=lambda j: alerts[j].start_ms):
        groups[(alerts[i].rule, alerts[i].subject)].append(i)
    for members in groups.values():
        flags = episode_flaps([alert_matches[i] for i in members], labels)
        for i, flag in zip(members, flags, strict=True):
            alert_flaps[i] = flag

    for a, matched, flap in zip(alerts, alert_matches, alert_flaps, strict=True):
        for table, key in ((kinds, a.kind), (rules, a.rule)):
            s = table.setdefault(key, Score())
            s.alerts += 1
            s.false_alerts += not matched
            s.flaps += flap

    label_delay: list[float | None] = []
    for i, label in enumerate(labels):
        if not label.expected:
            label_delay.append(None)
            continue
        starts = [a.start_ms for a, m in zip(alerts, alert_matches, strict=True) if i in m]
        delay = (min(starts) - label.detectable_ms) / 1000.0 if starts else None
        label_delay.append(delay)
        for table, key in ((kinds, label.kind), (whats, label.what)):
            s = table.setdefault(key, Score())
            s.events += 1
            if delay is not None:
                s.detected += 1
                s.delays_s.append(delay)
                s.onset_delays_s.append(delay + label.evidence_ms / 1000.0)
        # Per rule: the family's labels, detected by this rule's own alerts.
        by_rule: dict[str, list[int]] = defaultdict(list)
        for a, m in zip(alerts, alert_matches, strict=True):
            if i in m:
                by_rule[a.rule].append(a.start_ms)
        for rule, kind in rule_kind.items():
            if kind != label.kind:
                continue
            s = rules.setdefault(rule, Score())
            s.events += 1
            if by_rule.get(rule):
                s.detected += 1
                s.delays_s.append((min(by_rule[rule]) - label.detectable_ms) / 1000.0)
                s.onset_delays_s.append((min(by_rule[rule]) - label.start_ms) / 1000.0)
    return Outcome(kinds, rules, whats, label_delay, alert_matches, alert_flaps)
