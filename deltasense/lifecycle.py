"""Alert lifecycle for one rule over many subjects, vectorised (Prometheus/ThingsBoard style).

Per subject the state is ``none → pending → firing → none``:

* ``for`` (``RuleSpec.for_count``): the condition must hold for this many
  consecutive *fresh* evaluations (a new reading for reading-driven rules, every
  evaluation for rules that pass ``fresh`` all true) before the alert fires.
  Re-evaluating the same reading on a timer never counts twice.  A timed ``for``
  (``RuleSpec.for_ms``) further needs the condition to have held that long since
  the first of those evaluations (Prometheus ``for``).
* The clear condition is the rule's own (limit − deadband); a firing alert whose
  condition no longer holds but whose clear condition does not hold yet stays
  firing: that is the deadband.
* ``keep_firing_for`` (``RuleSpec.keep_firing_for_ms``): once clear, the alert
  resolves after the clear condition has held this long; 0 resolves at once.
* One open alert per (rule, subject).  A severity rise updates the open alert
  (same id, new ``updated``) instead of opening a second; within an episode the
  severity never falls, so the alert reports the worst it got.  The same holds
  for the disaster risk level (1–5) when a rule supplies one.

Only changes are emitted, as :class:`~deltasense.alerts.AlertEvent`: ``firing``
(new id), ``firing`` again for an update, and ``resolved`` (with ``ended``).
Pending is internal and never published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from deltasense.alerts import AlertEvent, AlertKind, Message, Severity, alert_id

_LOG = logging.getLogger(__name__)

NONE: Final = 0
PENDING: Final = 1
FIRING: Final = 2
SEVERITY_NAMES: Final[dict[int, Severity]] = {0: "info", 1: "warning", 2: "critical"}
SEVERITY_LEVELS: Final[dict[str, int]] = {name: level for level, name in SEVERITY_NAMES.items()}
NEVER: Final = -1


@dataclass(frozen=True)
class RuleSpec:
    rule: str
    kind: AlertKind
    for_count: int = 1
    keep_firing_for_ms: int = 0
    for_ms: int = 0

    def __post_init__(self) -> None:
        if self.for_count < 1:
            raise ValueError("for_count must be at least 1")
        if self.for_ms < 0:
            raise ValueError("for_ms must not be negative")
        if self.keep_firing_for_ms < 0:
            raise ValueError("keep_firing_for_ms must not be negative")


@dataclass(frozen=True)
class MessageContext:
    """What a rule's message function may say about one change."""

    subject: str
    district: str
    severity: Severity
    state: str  # "firing" or "resolved"
    values: Mapping[str, float]


MessageFn = Callable[[MessageContext], Message]


def risk_level(severity: int) -> int:
    """Disaster risk level (Decision 18/2021) for a severity; 1:1 for now."""
    return max(1, severity)


class Lifecycle:
    """State of one rule's alerts; subjects are rows shared with the rule's window."""

    def __init__(self, spec: RuleSpec, message: MessageFn, *, capacity: int = 16) -> None:
        self.spec = spec
        self._message = message
        self._state = np.zeros(capacity, dtype=np.int8)
        self._count = np.zeros(capacity, dtype=np.int32)  # consecutive fresh evaluations
        self._since = np.full(capacity, NEVER, dtype=np.int64)  # first of those (ms)
        self._severity = np.zeros(capacity, dtype=np.int8)  # of the open alert
        self._risk = np.zeros(capacity, dtype=np.int8)  # of the open alert
        self._clear_since = np.full(capacity, NEVER, dtype=np.int64)
        self._open: dict[int, AlertEvent] = {}
        self._row_of_id: dict[str, int] = {}
        # True while no subject is pending, firing or counting: a step whose
        # condition holds nowhere then changes nothing and can return at once.
        self._idle = True

    # --- inspection --------------------------------------------------------------------
    def state(self, n: int) -> npt.NDArray[np.int8]:
        self._ensure(n)
        return self._state[:n].copy()

    def open_alert(self, row: int) -> AlertEvent | None:
        return self._open.get(row)

    def open_alerts(self) -> list[AlertEvent]:
        return list(self._open.values())

    def _ensure(self, n: int) -> None:
        capacity = self._state.size
        if n <= capacity:
            return
        extra = max(capacity * 2, n) - capacity
        self._state = np.concatenate([self._state, np.zeros(extra, dtype=np.int8)])
        self._count = np.concatenate([self._count, np.zeros(extra, dtype=np.int32)])
        self._since = np.concatenate([self._since, np.full(extra, NEVER, dtype=np.int64)])
        self._severity = np.concatenate([self._severity, np.zeros(extra, dtype=np.int8)])
        self._risk = np.concatenate([self._risk, np.zeros(extra, dtype=np.int8)])
        self._clear_since = np.concatenate(
            [self._clear_since, np.full(extra, NEVER, dtype=np.int64)]
        )

    # --- restore and acks ------------------------------------------------------------
    def restore(self, row: int, event: AlertEvent) -> None:
        """Adopt an alert left open by a previous run, as firing (so it is not raised again)."""
        self._ensure(row + 1)
        old = self._open.get(row)
        if old is not None:
            if old.started >= event.started:
                _LOG.warning(
                    "%s: ignoring older open alert %s of %s",
                    self.spec.rule,
                    event.id,
                    event.subject,
                )
                return
            _LOG.warning(
                "%s: two open alerts for %s; keeping the newer %s",
                self.spec.rule,
                event.subject,
                event.id,
            )
            del self._row_of_id[old.id]
        if event.state != "firing":
            event = msgspec.structs.replace(event, state="firing")
        self._open[row] = event
        self._row_of_id[event.id] = row
        self._state[row] = FIRING
        self._severity[row] = SEVERITY_LEVELS.get(event.severity, 1)
        self._risk[row] = max(1, min(5, event.risk_level))
        self._count[row] = self.spec.for_count
        self._since[row] = event.started
        self._clear_since[row] = NEVER
        self._idle = False

    def apply_ack(self, event: AlertEvent) -> bool:
        """Keep an operator's ack on the open alert with the same id; True if it changed."""
        row = self._row_of_id.get(event.id)
        if row is None or event.ack is None:
            return False
        current = self._open[row]
        if current.ack == event.ack:
            return False
        self._open[row] = msgspec.structs.replace(current, ack=event.ack)
        return True

    # --- alerts raised elsewhere (an edge gateway's, offline) ----------------------------
    def adopt(self, row: int, event: AlertEvent) -> AlertEvent | None:
        """Take over an alert raised elsewhere as this rule's open alert of ``row``, in
        this rule's words; None (nothing changes) if ``row`` has an open alert already."""
        if row in self._open:
            return None
        self.restore(row, event)
        adopted = msgspec.structs.replace(self._open[row], state="firing")
        adopted = msgspec.structs.replace(adopted, message=self._text(adopted))
        self._open[row] = adopted
        return adopted

    def end(
        self, row: int, ended_ms: int, values: Mapping[str, float] | None = None
    ) -> AlertEvent | None:
        """Resolve the open alert of ``row`` outside an evaluation (whoever raised it saw
        its episode end); None if ``row`` has none."""
        current = self._open.pop(row, None)
        if current is None:
            return None
        del self._row_of_id[current.id]
        self._state[row] = NONE
        self._severity[row] = 0
        self._risk[row] = 0
        self._count[row] = 0
        self._since[row] = NEVER
        self._clear_since[row] = NEVER
        self._idle = not (self._state.any() or self._count.any())
        updated = max(ended_ms, current.updated + 1)
        event = msgspec.structs.replace(
            current,
            state="resolved",
            updated=updated,
            ended=updated,
            values=dict(values) if values else current.values,
        )
        return msgspec.structs.replace(event, message=self._text(event))

    # --- evaluation --------------------------------------------------------------------
    def step(
        self,
        *,
        condition: npt.ArrayLike,
        clear: npt.ArrayLike,
        severity: npt.ArrayLike,
        fresh: npt.ArrayLike,
        now_ms: int,
        subjects: Sequence[str],
        districts: Sequence[str],
        values: Mapping[str, npt.NDArray[np.floating]],
        risk: npt.ArrayLike | None = None,
    ) -> list[AlertEvent]:
        """Advance every subject by one evaluation; returns the alert changes.

        ``risk`` (1–5, optional) is the disaster risk level per subject; without it
        the level follows the severity."""
        cond = np.asarray(condition, dtype=np.bool_)
        clr = np.asarray(clear, dtype=np.bool_) & ~cond  # the condition wins a contradiction
        sev = np.asarray(severity, dtype=np.int8)
        new = np.asarray(fresh, dtype=np.bool_)
        n = cond.size
        lvl = (
            np.maximum(sev, 1).astype(np.int8)
            if risk is None
            else np.clip(np.asarray(risk), 1, 5).astype(np.int8)
        )
        if not (
            clr.size == sev.size == new.size == lvl.size == len(subjects) == len(districts) == n
        ):
            raise ValueError("all per-subject inputs must have one length")
        self._ensure(n)
        if self._idle and not cond.any():
            return []
        state = self._state[:n]  # views: updated in place
        count = self._count[:n]
        since = self._since[:n]
        open_sev = self._severity[:n]
        open_risk = self._risk[:n]
        clear_since = self._clear_since[:n]

        # Consecutive fresh evaluations with the condition.
        counting = new & cond
        start = counting & (count == 0)
        since[start] = now_ms
        count[counting] += 1
        broken = new & ~cond
        count[broken] = 0
        since[broken] = NEVER

        idle = state != FIRING
        held = (count >= self.spec.for_count) & (now_ms - since >= self.spec.for_ms)
        fire = idle & cond & held
        state[idle & cond & ~fire] = PENDING
        state[(state == PENDING) & ~cond] = NONE

        firing = state == FIRING
        clear_since[firing & ~clr] = NEVER
        clear_since[firing & clr & (clear_since == NEVER)] = now_ms
        resolve = firing & clr & (now_ms - clear_since >= self.spec.keep_firing_for_ms)
        rise = firing & ~resolve & cond & ((sev > open_sev) | (lvl > open_risk))
        new_sev = np.maximum(sev, open_sev)
        new_risk = np.maximum(lvl, open_risk)

        events: list[AlertEvent] = []
        for row in np.flatnonzero(fire):
            events.append(
                self._fire(
                    int(row), int(sev[row]), int(lvl[row]), now_ms, subjects, districts, values
                )
            )
        for row in np.flatnonzero(rise):
            events.append(
                self._update(int(row), int(new_sev[row]), int(new_risk[row]), now_ms, values)
            )
        for row in np.flatnonzero(resolve):
            events.append(self._resolve(int(row), now_ms, values))

        state[fire] = FIRING
        open_sev[fire] = sev[fire]
        open_sev[rise] = new_sev[rise]
        open_risk[fire] = lvl[fire]
        open_risk[rise] = new_risk[rise]
        state[resolve] = NONE
        open_sev[resolve] = 0
        open_risk[resolve] = 0
        # A new episode needs new readings over the limit (and gets a new start, so a new id).
        count[resolve] = 0
        since[resolve] = NEVER
        clear_since[fire | resolve] = NEVER
        self._idle = not (state.any() or count.any())
        return events

    # --- event construction ----------------------------------------------------------------
    @staticmethod
    def _values_at(values: Mapping[str, npt.NDArray[np.floating]], row: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, array in values.items():
            value = float(array[row])
            if np.isfinite(value):
                out[name] = round(value, 3)
        return out

    def _text(self, event: AlertEvent) -> Message:
        return self._message(
            MessageContext(
                subject=event.subject,
                district=event.district,
                severity=event.severity,
                state=event.state,
                values=event.values,
            )
        )

    def _fire(
        self,
        row: int,
        severity: int,
        risk: int,
        now_ms: int,
        subjects: Sequence[str],
        districts: Sequence[str],
        values: Mapping[str, npt.NDArray[np.floating]],
    ) -> AlertEvent:
        if row in self._open:  # cannot happen: fire requires state != FIRING
            raise RuntimeError(f"{self.spec.rule}: second open alert for {subjects[row]}")
        started = int(self._since[row]) if self._since[row] != NEVER else now_ms
        event = AlertEvent(
            id=alert_id(self.spec.rule, subjects[row], started),
            kind=self.spec.kind,
            rule=self.spec.rule,
            subject=subjects[row],
            district=districts[row],
            severity=SEVERITY_NAMES[severity],
            state="firing",
            risk_level=risk,
            values=self._values_at(values, row),
            started=started,
            updated=max(now_ms, started),
            message=Message(vi="", en=""),
        )
        event = msgspec.structs.replace(event, message=self._text(event))
        self._open[row] = event
        self._row_of_id[event.id] = row
        return event

    def _changed(self, current: AlertEvent, now_ms: int, **changes: object) -> AlertEvent:
        updated = max(now_ms, current.updated + 1)  # one Influx point per change
        event = msgspec.structs.replace(current, updated=updated, **changes)
        return msgspec.structs.replace(event, message=self._text(event))

    def _update(
        self,
        row: int,
        severity: int,
        risk: int,
        now_ms: int,
        values: Mapping[str, npt.NDArray[np.floating]],
    ) -> AlertEvent:
        current = self._open[row]
        event = self._changed(
            current,
            now_ms,
            severity=SEVERITY_NAMES[severity],
            risk_level=risk,
            values=self._values_at(values, row) or current.values,
        )
        self._open[row] = event
        return event

    def _resolve(
        self, row: int, now_ms: int, values: Mapping[str, npt.NDArray[np.floating]]
    ) -> AlertEvent:
        current = self._open.pop(row)
        del self._row_of_id[current.id]
        event = self._changed(
            current, now_ms, state="resolved", values=self._values_at(values, row) or current.values
        )
        return msgspec.structs.replace(event, ended=event.updated)
