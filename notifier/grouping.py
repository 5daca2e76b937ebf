"""Who gets which message when: grouping, the fast path, repeats, escalation (pure).

The planner sees every alert event (``observe``) and, asked with the current
time (``due``), returns the messages to send.  It never reads a clock: the
service passes ``now_ms``, tests pass whatever they like.

* Alerts are grouped per route by the route's ``group_by`` fields (kind × ward
  by default).  A group's first message waits ``group_wait`` for its burst to
  gather, later ones ``group_interval`` after the previous message.
* Fast path: a new critical, a resolve and an ack of something a receiver was
  told about flush their group after only ``urgent_wait`` (a burst of criticals
  still makes one message), unlike Alertmanager, whose resolves wait for the
  next group interval.
* Repeats: a firing critical nobody acknowledged is sent again every ``repeat``.
* Escalation: such an alert goes to the next receiver of the route's
  ``escalate`` chain every ``escalate`` after it was first sent; an ack stops
  repeats and escalation at once.
* Inhibition folds target alerts (per-station wind) while a source alert
  (city storm risk) covering their ward is open; silences drop what they match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from deltasense.alerts import SEVERITY_RANK, AlertEvent
from deltasense.routing import Route, Routing
from deltasense.silences import Silence

Reason = Literal["alerts", "repeat", "escalation"]


@dataclass(frozen=True)
class Planned:
    """One message for one receiver (the service sends it on each of its channels)."""

    receiver: str
    route: str
    group: str
    reason: Reason
    events: tuple[AlertEvent, ...]

    @property
    def urgent(self) -> bool:
        """Goes ahead of routine messages on a rate-limited channel: a repeat or an
        escalation, or it carries a critical, a resolve or an ack."""
        return self.reason != "alerts" or any(
            e.state == "resolved" or e.ack is not None or e.severity == "critical"
            for e in self.events
        )


@dataclass
class Tracked:
    """What the planner knows of one alert."""

    event: AlertEvent
    notified: AlertEvent | None = None  # the last state a receiver was told
    first_notified: int | None = None
    last_notified: int | None = None
    steps: dict[str, int] = field(default_factory=dict)  # route → escalation receivers told

    @property
    def needs_attention(self) -> bool:
        e = self.event
        return e.state == "firing" and e.severity == "critical" and e.ack is None


@dataclass
class _Group:
    route: Route
    pending: dict[str, AlertEvent] = field(default_factory=dict)
    flush_at: int | None = None
    last_flush: int | None = None


@dataclass(frozen=True)
class Timing:
    group_wait_ms: int = 30_000
    group_interval_ms: int = 300_000
    urgent_wait_ms: int = 500
    repeat_ms: int = 1_800_000
    escalate_ms: int = 900_000


def _notable(old: AlertEvent | None, new: AlertEvent) -> tuple[bool, bool]:
    """(worth a message, urgent) for a change from what receivers were told."""
    if old is None:
        if new.state != "firing":
            return False, False  # pending is not news; a resolve of nothing either
        return True, new.severity == "critical"
    if new.state == "resolved" and old.state != "resolved":
        return True, True
    if new.ack is not None and old.ack is None:
        return True, True
    if new.state == "firing" and SEVERITY_RANK[new.severity] > SEVERITY_RANK[old.severity]:
        return True, new.severity == "critical"
    if new.state == "firing" and old.state != "firing":
        return True, new.severity == "critical"
    return False, False


class Planner:
    def __init__(self, routing: Routing, timing: Timing = Timing()) -> None:
        self.routing = routing
        self.timing = timing
        self.alerts: dict[str, Tracked] = {}
        self.silences: dict[str, Silence] = {}
        self._groups: dict[str, _Group] = {}
        self.folded = 0  # events inhibited
        self.silenced = 0
        # Held back by a silence or an inhibition: sent when that ends, if still firing.
        self._held: set[str] = set()

    def use_routing(self, routing: Routing) -> None:
        """Plan by a new routing file from now on.  A group whose route is unchanged
        keeps its timing; one whose route changed or went away is dropped and its
        waiting events are queued again under the new routes, keeping the flush
        time they had (a new receiver is not told later than the old one would be)."""
        self.routing = routing
        routes = {r.name: r for r in routing.routes}
        for key, group in list(self._groups.items()):
            if routes.get(group.route.name) == group.route:
                continue
            del self._groups[key]
            for event in group.pending.values():
                for route in routing.routes_for(event):
                    again = self._groups.setdefault(route.group_key(event), _Group(route))
                    again.pending[event.id] = event
                    if group.flush_at is not None:
                        again.flush_at = min(again.flush_at or group.flush_at, group.flush_at)

    # --- inputs ------------------------------------------------------------------------
    def restore(self, event: AlertEvent, *, first: int, last: int, steps: dict[str, int]) -> None:
        """After a restart: ``event`` was already sent (``first``/``last`` ms), and
        the escalation chain reached ``steps`` per route."""
        self.alerts[event.id] = Tracked(
            event=event, notified=event, first_notified=first, last_notified=last, steps=steps
        )

    def set_silence(self, silence: Silence) -> None:
        self.silences[silence.id] = silence

    def drop_silence(self, silence_id: str) -> None:
        self.silences.pop(silence_id, None)

    def silenced_now(self, event: AlertEvent, now_ms: int) -> bool:
        return any(s.covers(event, now_ms) for s in self.silences.values())

    def inhibited(self, event: AlertEvent) -> bool:
        for rule in self.routing.inhibits:
            if event.rule not in rule.target_rules:
                continue
            for tracked in self.alerts.values():
                src = tracked.event
                if (
                    src.rule in rule.source_rules
                    and src.state == "firing"
                    and src.district in ("", event.district)
                ):
                    return True
        return False

    def observe(self, event: AlertEvent, now_ms: int) -> None:
        tracked = self.alerts.get(event.id)
        if tracked is not None and event.updated <= tracked.event.updated:
            return  # a duplicate or an older state (retained copy after a restart)
        if tracked is None:
            tracked = self.alerts[event.id] = Tracked(event=event)
        tracked.event = event
        worth, urgent = _notable(tracked.notified, event)
        if event.state == "resolved" and tracked.notified is None:
            del self.alerts[event.id]  # nobody was told: nothing to follow up
            return
        if not worth:
            return
        told = tracked.notified is not None
        if not told and self.silenced_now(event, now_ms):
            self.silenced += 1
            self._held.add(event.id)
            return
        if not told and self.inhibited(event):
            self.folded += 1
            self._held.add(event.id)
            return
        self._held.discard(event.id)
        self._queue(event, urgent, now_ms)

    def _queue(self, event: AlertEvent, urgent: bool, now_ms: int) -> None:
        for route in self.routing.routes_for(event):
            key = route.group_key(event)
            group = self._groups.setdefault(key, _Group(route))
            group.pending[event.id] = event
            if urgent:
                at = now_ms + self.timing.urgent_wait_ms
            elif group.last_flush is None:
                at = now_ms + self.timing.group_wait_ms
            else:
                at = max(now_ms, group.last_flush + self.timing.group_interval_ms)
            group.flush_at = at if group.flush_at is None else min(group.flush_at, at)

    # --- outputs -----------------------------------------------------------------------
    def _recipients(self, route: Route, events: list[AlertEvent]) -> list[str]:
        step = max(
            (self.alerts[e.id].steps.get(route.name, 0) for e in events if e.id in self.alerts),
            default=0,
        )
        out: list[str] = []
        for rid in (*route.receivers, *route.escalate[:step]):
            if rid not in out:
                out.append(rid)
        return out

    def _told(self, events: list[AlertEvent], now_ms: int) -> None:
        for e in events:
            tracked = self.alerts.get(e.id)
            if tracked is None:
                continue
            tracked.notified = e
            tracked.last_notified = now_ms
            if tracked.first_notified is None:
                tracked.first_notified = now_ms
            if e.state == "resolved":
                del self.alerts[e.id]

    def _release(self, now_ms: int) -> None:
        for alert_id in list(self._held):
            tracked = self.alerts.get(alert_id)
            if tracked is None or tracked.event.state != "firing" or tracked.notified is not None:
                self._held.discard(alert_id)
            elif not self.silenced_now(tracked.event, now_ms) and not self.inhibited(tracked.event):
                self._held.discard(alert_id)
                self._queue(tracked.event, tracked.event.severity == "critical", now_ms)

    def due(self, now_ms: int) -> list[Planned]:
        self._release(now_ms)
        out: list[Planned] = []
        for key, group in self._groups.items():
            if group.flush_at is None or group.flush_at > now_ms or not group.pending:
                continue
            events = sorted(
                group.pending.values(), key=lambda e: (-SEVERITY_RANK[e.severity], e.started)
            )
            group.pending.clear()
            group.flush_at = None
            group.last_flush = now_ms
            for rid in self._recipients(group.route, events):
                out.append(Planned(rid, group.route.name, key, "alerts", tuple(events)))
            self._told(events, now_ms)
        out += self._follow_ups(now_ms)
        return out

    def _follow_ups(self, now_ms: int) -> list[Planned]:
        repeats: dict[tuple[str, str], list[AlertEvent]] = {}
        escalations: dict[tuple[str, str, str], list[AlertEvent]] = {}
        routes: dict[str, Route] = {}
        for tracked in self.alerts.values():
            if not tracked.needs_attention or tracked.first_notified is None:
                continue
            if self.silenced_now(tracked.event, now_ms):
                continue
            for route in self.routing.routes_for(tracked.event):
                routes[route.name] = route
                key = route.group_key(tracked.event)
                step = tracked.steps.get(route.name, 0)
                if (
                    step < len(route.escalate)
                    and now_ms >= tracked.first_notified + (step + 1) * self.timing.escalate_ms
                ):
                    tracked.steps[route.name] = step + 1
                    escalations.setdefault((route.name, key, route.escalate[step]), []).append(
                        tracked.event
                    )
                assert tracked.last_notified is not None
                if now_ms >= tracked.last_notified + self.timing.repeat_ms:
                    repeats.setdefault((route.name, key), []).append(tracked.event)
        out: list[Planned] = []
        for (rname, key, rid), events in escalations.items():
            out.append(Planned(rid, rname, key, "escalation", tuple(events)))
        for (rname, key), events in repeats.items():
            for rid in self._recipients(routes[rname], events):
                out.append(Planned(rid, rname, key, "repeat", tuple(events)))
            for e in events:
                self.alerts[e.id].last_notified = now_ms
        return out

    def next_wake(self) -> int | None:
        """The earliest time ``due`` may have something (None: nothing scheduled)."""
        times = [g.flush_at for g in self._groups.values() if g.flush_at is not None and g.pending]
        for tracked in self.alerts.values():
            if not tracked.needs_attention or tracked.first_notified is None:
                continue
            assert tracked.last_notified is not None
            times.append(tracked.last_notified + self.timing.repeat_ms)
            for route in self.routing.routes_for(tracked.event):
                step = tracked.steps.get(route.name, 0)
                if step < len(route.escalate):
                    times.append(tracked.first_notified + (step + 1) * self.timing.escalate_ms)
        return min(times) if times else None
