"""The alarm workflow on one alert: assign, comment, shelve, clear, and who did
what and when; and the feed's marks for every active alert.

Reads are for viewers too (a control room's wall screen shows who has an alert);
every change needs an operator, is kept in the alarm store (api/alarmstore.py)
and recorded in the audit log.  Acknowledging stays ``POST /alerts/{id}/ack``
(api/routes/alerts.py); its ack shows in the activity from the event itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request

from api import alarm, auditing, silencing, store
from api.alarm import (
    ActivityOut,
    AlarmMark,
    AssigneeOut,
    AssignIn,
    ClearedOut,
    ClearIn,
    CommentIn,
    OperatorsOut,
    OverviewOut,
    ShelveIn,
    SilenceOut,
    WorkflowOut,
)
from api.alarmstore import AlarmStore, SilenceRecord
from api.auth import Principal, Role, load_tokens
from api.deps import (
    AlarmDep,
    AlertIdPath,
    ApiContext,
    AuditDep,
    CtxDep,
    DbDep,
    HubDep,
    OperatorDep,
    SettingsDep,
    ViewerDep,
)
from deltasense.alerts import AlertEvent
from deltasense.audit import Action, AuditLog, Result
from deltasense.runtime import now_ms
from deltasense.silences import Silence

router = APIRouter(tags=["alarm workflow"])
UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown alert"}}
_ACTIVE = frozenset({"pending", "firing"})


async def _alert(db: DbDep, alert_id: str) -> AlertEvent:
    event = await store.get_alert(db, alert_id)
    if event is None:
        raise HTTPException(404, f"unknown alert {alert_id!r}")
    return event


def _point(event: AlertEvent) -> tuple[str, str, str]:
    return event.id, event.rule, event.subject


def _shelve_of(records: list[SilenceRecord], event: AlertEvent, now: int) -> SilenceRecord | None:
    for r in records:
        if r.purpose == "shelve" and r.active(now) and r.silence.matches(event):
            return r
    return None


async def _workflow(alarm_store: AlarmStore, event: AlertEvent) -> WorkflowOut:
    now = now_ms()
    activity = await silencing.stored(alarm_store.activity, event.id)
    thread = await silencing.stored(alarm_store.thread, event.rule, event.subject)
    assigned = (await silencing.stored(alarm_store.assignments)).get(event.id)
    clearing = (await silencing.stored(alarm_store.clearings)).get(event.id)
    live = await silencing.stored(alarm_store.silences, since_ms=now)
    ack = alarm.ack_activity(event)
    entries = sorted([*activity, *([ack] if ack else [])], key=lambda a: (a.ts, a.id))
    shelve = _shelve_of(live, event, now)
    refusal = alarm.clear_refusal(event)
    cleared = clearing is not None and alarm.clearing_stands(clearing.seen, event)
    return WorkflowOut(
        alert_id=event.id,
        rule=event.rule,
        subject=event.subject,
        state=event.state,
        assignee=AssigneeOut(name=assigned.assignee, by=assigned.actor, ts=assigned.ts)
        if assigned
        else None,
        shelved=SilenceOut.of(shelve, now) if shelve else None,
        cleared=ClearedOut(by=clearing.actor, ts=clearing.ts, note=clearing.note)
        if clearing is not None and cleared
        else None,
        clearable=refusal is None and not cleared,
        clear_refusal=refusal,
        silenced_by=[
            SilenceOut.of(r, now)
            for r in live
            if r.purpose != "shelve" and r.active(now) and r.silence.matches(event)
        ],
        comments=[ActivityOut.of(c) for c in thread],
        activity=[ActivityOut.of(a) for a in entries],
    )


async def _audited(
    audit: AuditLog,
    request: Request,
    principal: Principal,
    action: Action,
    target: str,
    result: Result,
    **detail: object,
) -> None:
    await auditing.record(audit, request, principal, action, target, result, detail)


@router.get("/alerts/{alert_id}/workflow", response_model=WorkflowOut, responses=UNKNOWN)
async def get_workflow(
    alert_id: AlertIdPath, db: DbDep, alarm_store: AlarmDep, _: ViewerDep
) -> WorkflowOut:
    """Assignee, shelve, clear, covering silences, the comment thread of its alarm
    point (every episode of the rule on this subject) and the activity, oldest first."""
    return await _workflow(alarm_store, await _alert(db, alert_id))


@router.post("/alerts/{alert_id}/assign", response_model=WorkflowOut, responses=UNKNOWN)
async def assign(
    alert_id: AlertIdPath,
    body: AssignIn,
    db: DbDep,
    alarm_store: AlarmDep,
    ctx: CtxDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
) -> WorkflowOut:
    """Assign to an operator (a console account or token name with role operator or
    admin); null unassigns."""
    event = await _alert(db, alert_id)
    if body.assignee is not None and body.assignee not in _operators(ctx):
        await _audited(
            audit, request, principal, Action.ALERT_ASSIGN, alert_id, Result.INVALID,
            assignee=body.assignee,
        )  # fmt: skip
        raise HTTPException(422, f"{body.assignee!r} is not an operator")
    await silencing.stored(
        alarm_store.assign,
        alert_id=event.id,
        rule=event.rule,
        subject=event.subject,
        assignee=body.assignee,
        actor=principal.name,
        ts=now_ms(),
    )
    await _audited(
        audit, request, principal, Action.ALERT_ASSIGN, alert_id, Result.OK, assignee=body.assignee
    )
    return await _workflow(alarm_store, event)


@router.post(
    "/alerts/{alert_id}/comments", response_model=WorkflowOut, status_code=201, responses=UNKNOWN
)
async def comment(
    alert_id: AlertIdPath,
    body: CommentIn,
    db: DbDep,
    alarm_store: AlarmDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
) -> WorkflowOut:
    """Add to the alert's thread (kept per alarm point: it survives resolve and re-raise)."""
    event = await _alert(db, alert_id)
    await silencing.stored(
        alarm_store.record,
        alert_id=event.id,
        rule=event.rule,
        subject=event.subject,
        ts=now_ms(),
        actor=principal.name,
        action="comment",
        detail={"text": body.text},
    )
    await _audited(
        audit, request, principal, Action.ALERT_COMMENT, alert_id, Result.OK, chars=len(body.text)
    )
    return await _workflow(alarm_store, event)


@router.post(
    "/alerts/{alert_id}/shelve",
    response_model=WorkflowOut,
    responses={**UNKNOWN, 409: {"description": "Resolved"}, 503: {"description": "Broker down"}},
)
async def shelve(
    alert_id: AlertIdPath,
    body: ShelveIn,
    db: DbDep,
    hub: HubDep,
    alarm_store: AlarmDep,
    settings: SettingsDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
) -> WorkflowOut:
    """Shelve the alarm point (this rule on this subject) for 60 s – 24 h: it leaves
    the active list and the notifier holds back its messages (a silence matching
    rule and subject) until then; shelving again replaces the end."""
    event = await _alert(db, alert_id)
    if event.state not in _ACTIVE:
        await _audited(audit, request, principal, Action.ALERT_SHELVE, alert_id, Result.INVALID)
        raise HTTPException(409, "the alert is resolved: nothing to shelve")
    now = now_ms()
    live = await silencing.stored(alarm_store.silences, since_ms=now)
    previous = _shelve_of(live, event, now)
    silence = Silence(
        id=silencing.new_id("sh"),
        matchers={"rule": event.rule, "subject": event.subject},
        starts=now,
        ends=now + body.duration_s * 1000,
        by=principal.name,
        comment=body.reason,
    )
    await silencing.publish(hub, settings.site, silence)
    record = SilenceRecord(silence=silence, purpose="shelve", created=now, alert_id=event.id)
    await silencing.stored(alarm_store.add_silence, record, on_alert=_point(event), action="shelve")
    if previous is not None:  # the new one is on the broker first: no gap
        await silencing.retract(hub, settings.site, previous.id)
        await silencing.stored(alarm_store.end_silence, previous.id, actor=principal.name, ts=now)
    await _audited(
        audit, request, principal, Action.ALERT_SHELVE, alert_id, Result.OK,
        until=silence.ends, reason=body.reason,
    )  # fmt: skip
    return await _workflow(alarm_store, event)


@router.delete(
    "/alerts/{alert_id}/shelve",
    response_model=WorkflowOut,
    responses={**UNKNOWN, 409: {"description": "Not shelved"}, 503: {"description": "Broker down"}},
)
async def unshelve(
    alert_id: AlertIdPath,
    db: DbDep,
    hub: HubDep,
    alarm_store: AlarmDep,
    settings: SettingsDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
) -> WorkflowOut:
    event = await _alert(db, alert_id)
    now = now_ms()
    current = _shelve_of(await silencing.stored(alarm_store.silences, since_ms=now), event, now)
    if current is None:
        raise HTTPException(409, "the alert is not shelved")
    await silencing.retract(hub, settings.site, current.id)
    await silencing.stored(
        alarm_store.end_silence,
        current.id,
        actor=principal.name,
        ts=now,
        on_alert=_point(event),
        action="unshelve",
    )
    await _audited(
        audit, request, principal, Action.ALERT_SHELVE, alert_id, Result.OK, ended=current.id
    )
    return await _workflow(alarm_store, event)


@router.post(
    "/alerts/{alert_id}/clear",
    response_model=WorkflowOut,
    responses={**UNKNOWN, 409: {"description": "This rule's alert cannot be cleared now"}},
)
async def clear(
    alert_id: AlertIdPath,
    db: DbDep,
    alarm_store: AlarmDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
    body: Annotated[ClearIn | None, Body()] = None,
) -> WorkflowOut:
    """Clear an alert whose rule reports a past event (`sensor-spike`, `level-spike`,
    `broker-queue-drop`, `edge-spool-drops`) while analytics still holds it firing:
    it leaves the active list until analytics reports it anew.  Any other rule's
    alert, or a resolved one, is refused with 409 and the reason."""
    event = await _alert(db, alert_id)
    refusal = alarm.clear_refusal(event)
    note = body.note if body else ""
    if refusal is not None:
        await _audited(
            audit, request, principal, Action.ALERT_CLEAR, alert_id, Result.INVALID, error=refusal
        )
        raise HTTPException(409, refusal)
    await silencing.stored(
        alarm_store.clear,
        alert_id=event.id,
        rule=event.rule,
        subject=event.subject,
        actor=principal.name,
        ts=now_ms(),
        note=note,
        seen=alarm.seen(event),
    )
    await _audited(audit, request, principal, Action.ALERT_CLEAR, alert_id, Result.OK, note=note)
    return await _workflow(alarm_store, event)


def _operators(ctx: ApiContext) -> list[str]:
    """Console accounts (not disabled) and API tokens with role operator or admin."""
    names = {a.name for a in ctx.accounts.list() if not a.disabled and a.role.allows(Role.OPERATOR)}
    tokens = load_tokens(ctx.settings.var_dir).values()
    return sorted(names | {p.name for p in tokens if p.role.allows(Role.OPERATOR)} | {"admin"})


@router.get("/alarm/operators", response_model=OperatorsOut)
async def operators(ctx: CtxDep, _: OperatorDep) -> OperatorsOut:
    """Who an alert may be assigned to: every console account and token name with role
    operator or admin."""
    return OperatorsOut(names=_operators(ctx))


@router.get("/alarm/overview", response_model=OverviewOut)
async def overview(
    db: DbDep, hub: HubDep, alarm_store: AlarmDep, settings: SettingsDep, _: ViewerDep
) -> OverviewOut:
    """The feed's marks for every active alert (assignee, shelved until, cleared,
    covering silences, comment count) and the silences applying now or later.
    The console hides shelved, cleared and silenced alerts from the active list
    unless asked to show them."""
    now = now_ms()
    await silencing.sweep(hub, settings.site, alarm_store, now)
    events = [e for e in await store.list_alerts(db) if e.state in _ACTIVE]
    live = await silencing.stored(alarm_store.silences, since_ms=now)
    assigned = await silencing.stored(alarm_store.assignments)
    clearings = await silencing.stored(alarm_store.clearings)
    counts = await silencing.stored(alarm_store.comment_counts)
    marks: dict[str, AlarmMark] = {}
    for e in events:
        shelve = _shelve_of(live, e, now)
        c = clearings.get(e.id)
        marks[e.id] = AlarmMark(
            assignee=assigned[e.id].assignee if e.id in assigned else None,
            shelved_until=shelve.effective_ends() if shelve else None,
            cleared=c is not None and alarm.clearing_stands(c.seen, e),
            silenced=[
                r.id
                for r in live
                if r.purpose != "shelve" and r.active(now) and r.silence.matches(e)
            ],
            comments=counts.get((e.rule, e.subject), 0),
        )
    return OverviewOut(now=now, alerts=marks, silences=[SilenceOut.of(r, now) for r in live])
