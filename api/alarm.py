"""The alarm workflow's rules and bodies: what may be assigned, said, shelved,
cleared and silenced, within which bounds (docs/CONTRACT.md, "Alarm workflow").

Pure: no I/O.  The routes (api/routes/alarm_workflow.py, api/routes/silences.py)
check with these and keep the records in :mod:`api.alarmstore`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.alarmstore import Activity, SilenceRecord
from deltasense.alerts import AlertEvent, AlertKind, Severity
from deltasense.contract import is_ident
from deltasense.silences import MAX_SILENCE_MS, SILENCE_FIELDS

MAX_COMMENT: Final = 2000
MAX_NOTE: Final = 500
MIN_SHELVE_S: Final = 60
MAX_SHELVE_S: Final = 24 * 3600  # a shelved alarm comes back within a day (ISA-18.2)
MAX_SILENCE_S: Final = MAX_SILENCE_MS // 1000  # the notifier's own bound: 30 days
MAX_SILENCE_AHEAD_MS: Final = MAX_SILENCE_MS  # a maintenance window starts within 30 days
BACKDATE_SLACK_MS: Final = 60_000  # a silence may start up to a minute ago (clock skew)
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$"  # token names (api/auth.py)

# Rules that report a past event (a spike, a counter that rose) and keep the alert
# firing for a window so it is seen.  Their condition is over once seen; an operator
# who has dealt with it may clear it early.  Every other rule reports a level that may
# still hold (water, wind, rain, battery, a silent device): only analytics, which sees
# the readings, resolves those.
CLEARABLE_RULES: Final = frozenset(
    {"sensor-spike", "level-spike", "broker-queue-drop", "edge-spool-drops"}
)
_ACTIVE: Final = frozenset({"pending", "firing"})


def clear_refusal(event: AlertEvent) -> str | None:
    """Why ``event`` may not be cleared now, or None when it may."""
    if event.state not in _ACTIVE:
        return "the alert is resolved already: nothing to clear"
    if event.rule not in CLEARABLE_RULES:
        return (
            f"rule {event.rule!r} reports a condition that may still hold; analytics "
            "resolves it when its readings say so (clearable: "
            f"{', '.join(sorted(CLEARABLE_RULES))})"
        )
    return None


def seen(event: AlertEvent) -> str:
    """What analytics says of an alert, without the ack: a clear holds while it stays so."""
    return json.dumps([event.state, event.severity, event.risk_level, event.values], sort_keys=True)


def clearing_stands(seen_at_clear: str, event: AlertEvent) -> bool:
    """A clear holds until analytics reports the alert anew (a severity rise, new
    values), which shows it in the active list once more; an ack changes nothing."""
    return seen(event) == seen_at_clear


# --- request bodies -------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be blank")
    return value


class CommentIn(_Body):
    text: Annotated[str, Field(min_length=1, max_length=MAX_COMMENT)]

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        return _text(v, "a comment")


class AssignIn(_Body):
    assignee: Annotated[
        str | None, Field(pattern=NAME_PATTERN, description="An operator's name; null unassigns.")
    ]


class ShelveIn(_Body):
    duration_s: Annotated[int, Field(ge=MIN_SHELVE_S, le=MAX_SHELVE_S)]
    reason: Annotated[str, Field(max_length=MAX_NOTE)] = ""


class ClearIn(_Body):
    note: Annotated[str, Field(max_length=MAX_NOTE)] = ""


class SilenceIn(_Body):
    """A silence or a maintenance window: the matchers name alert fields, all must match."""

    matchers: dict[str, str] = Field(
        description="Alert fields to match: kind, rule, district (a ward), subject (a "
        "device, or a ward for ward alerts), severity; at least one."
    )
    purpose: Literal["silence", "maintenance"] = "silence"
    starts: Annotated[int | None, Field(description="ms since the epoch; default now.")] = None
    ends: Annotated[int | None, Field(description="ms since the epoch.")] = None
    duration_s: Annotated[int | None, Field(ge=60, le=MAX_SILENCE_S)] = None
    comment: Annotated[str, Field(max_length=MAX_NOTE)] = ""
    alert_id: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
            description="Made from this alert's page: logged in its activity.",
        ),
    ] = None

    @field_validator("matchers")
    @classmethod
    def _known(cls, m: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(m) - SILENCE_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown matcher {unknown[0][:40]!r} (known: {', '.join(sorted(SILENCE_FIELDS))})"
            )
        if not m:
            raise ValueError("a silence needs at least one matcher")
        for name, value in m.items():
            if name == "kind" and value not in get_args(AlertKind):
                raise ValueError(f"kind must be one of {', '.join(get_args(AlertKind))}")
            elif name == "severity" and value not in get_args(Severity):
                raise ValueError(f"severity must be one of {', '.join(get_args(Severity))}")
            elif name in ("rule", "district", "subject") and not is_ident(value):
                raise ValueError(f"{name} must match [a-z0-9][a-z0-9-]{{0,31}}")
        return m

    def window(self, now_ms: int) -> tuple[int, int]:
        """(starts, ends) in ms, or ValueError saying what is out of bounds."""
        starts = now_ms if self.starts is None else self.starts
        if (self.ends is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends and duration_s")
        ends = self.ends if self.ends is not None else starts + (self.duration_s or 0) * 1000
        if starts < now_ms - BACKDATE_SLACK_MS:
            raise ValueError("starts must not be in the past")
        if starts > now_ms + MAX_SILENCE_AHEAD_MS:
            raise ValueError("starts must be within 30 days")
        if ends <= starts:
            raise ValueError("ends must follow starts")
        if ends - starts > MAX_SILENCE_MS:
            raise ValueError("a silence lasts at most 30 days")
        return starts, ends


# --- response bodies ------------------------------------------------------------------
class ActivityOut(BaseModel):
    ts: int
    actor: str
    action: str = Field(
        description="ack, assign, unassign, comment, shelve, unshelve, clear, silence, unsilence"
    )
    alert_id: str
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, a: Activity) -> ActivityOut:
        return cls(ts=a.ts, actor=a.actor, action=a.action, alert_id=a.alert_id, detail=a.detail)


class SilenceOut(BaseModel):
    id: str
    purpose: Literal["silence", "maintenance", "shelve"]
    matchers: dict[str, str]
    starts: int
    ends: int
    by: str
    comment: str
    created: int
    alert_id: str | None = None
    ended_by: str | None = None
    ended_at: int | None = None
    active: bool

    @classmethod
    def of(cls, r: SilenceRecord, now_ms: int) -> SilenceOut:
        s = r.silence
        return cls(
            id=s.id,
            purpose=r.purpose,
            matchers=s.matchers,
            starts=s.starts,
            ends=s.ends,
            by=s.by,
            comment=s.comment,
            created=r.created,
            alert_id=r.alert_id,
            ended_by=r.ended_by,
            ended_at=r.ended_at,
            active=r.active(now_ms),
        )


class AssigneeOut(BaseModel):
    name: str
    by: str
    ts: int


class ClearedOut(BaseModel):
    by: str
    ts: int
    note: str


class WorkflowOut(BaseModel):
    """Everything done to one alert, and what may be done now."""

    alert_id: str
    rule: str
    subject: str
    state: str
    assignee: AssigneeOut | None = None
    shelved: SilenceOut | None = None
    cleared: ClearedOut | None = None
    clearable: bool
    clear_refusal: str | None = None
    silenced_by: list[SilenceOut] = Field(
        default_factory=list, description="Silences and maintenance windows that cover it now."
    )
    comments: list[ActivityOut] = Field(
        default_factory=list,
        description="The thread of its alarm point (rule, subject), over every episode.",
    )
    activity: list[ActivityOut] = Field(
        default_factory=list, description="Who did what and when, oldest first."
    )


class AlarmMark(BaseModel):
    assignee: str | None = None
    shelved_until: int | None = None
    cleared: bool = False
    silenced: list[str] = Field(default_factory=list, description="Covering silence ids.")
    comments: int = 0


class OverviewOut(BaseModel):
    """The feed's marks for every active alert, and the silences applying or upcoming."""

    now: int
    alerts: dict[str, AlarmMark]
    silences: list[SilenceOut]


class OperatorsOut(BaseModel):
    names: list[str]


def ack_activity(event: AlertEvent) -> Activity | None:
    """The alert's acknowledgement as an activity entry: acks arrive from the console,
    the Telegram button and email links alike, all on the event itself."""
    if event.ack is None:
        return None
    detail = {"note": event.ack.note} if event.ack.note else {}
    return Activity(
        id=0, alert_id=event.id, ts=event.ack.ts, actor=event.ack.by, action="ack", detail=detail
    )
