"""Silences and maintenance windows: for a device, a ward, a rule (any alert fields).

Published retained on ``{site}/_silences/{id}`` (deltasense/silences.py) for the
notifier, which holds back what they match; analytics keeps evaluating, and the
console marks the alerts they cover and hides them from its active list unless
asked.  Operators only; every change is in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from api import auditing, silencing, store
from api.alarm import SilenceIn, SilenceOut
from api.alarmstore import SilenceRecord
from api.deps import AlarmDep, AuditDep, DbDep, HubDep, OperatorDep, SettingsDep
from api.paging import PagerDep, page_sorted
from deltasense.audit import Action, Result
from deltasense.runtime import now_ms
from deltasense.silences import Silence

router = APIRouter(prefix="/silences", tags=["alarm workflow"])
# A later page is cut from this many, newest first (silences are few; the store has no
# keyset query).
MAX_PAGED = 10_000
SilenceIdPath = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="A silence id (si-…, sh-…).")
]


@router.post(
    "",
    response_model=SilenceOut,
    status_code=201,
    responses={404: {"description": "Unknown alert_id"}, 503: {"description": "Broker down"}},
)
async def create_silence(
    body: SilenceIn,
    db: DbDep,
    hub: HubDep,
    alarm_store: AlarmDep,
    settings: SettingsDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
) -> SilenceOut:
    """Silence (now, `purpose: silence`) or plan a maintenance window (may start
    later, within 30 days); `ends` or `duration_s`, at most 30 days long."""
    now = now_ms()
    what = {"matchers": body.matchers, "purpose": body.purpose}
    try:
        starts, ends = body.window(now)
    except ValueError as exc:
        await auditing.record(
            audit, request, principal, Action.SILENCE_ADD, "-", Result.INVALID,
            {**what, "error": str(exc)},
        )  # fmt: skip
        raise HTTPException(422, str(exc)) from None
    on_alert = None
    if body.alert_id is not None:
        event = await store.get_alert(db, body.alert_id)
        if event is None:
            raise HTTPException(404, f"unknown alert {body.alert_id!r}")
        on_alert = (event.id, event.rule, event.subject)
    silence = Silence(
        id=silencing.new_id("si"),
        matchers=dict(body.matchers),
        starts=starts,
        ends=ends,
        by=principal.name,
        comment=body.comment,
    )
    await silencing.sweep(hub, settings.site, alarm_store, now)
    await silencing.publish(hub, settings.site, silence)
    record = SilenceRecord(
        silence=silence, purpose=body.purpose, created=now, alert_id=body.alert_id
    )
    await silencing.stored(alarm_store.add_silence, record, on_alert=on_alert)
    await auditing.record(
        audit, request, principal, Action.SILENCE_ADD, silence.id, Result.OK,
        {**what, "starts": starts, "ends": ends},
    )  # fmt: skip
    return SilenceOut.of(record, now)


@router.get("", response_model=list[SilenceOut])
async def list_silences(
    alarm_store: AlarmDep,
    hub: HubDep,
    settings: SettingsDep,
    _: OperatorDep,
    pager: PagerDep,
    response: Response,
    state: Literal["active", "all"] = "active",
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[SilenceOut]:
    """`active`: applying now or later (newest first); `all`: ended ones too.  Pages
    with `cursor` (from the `Link: rel=next` header)."""
    after = pager.position(int, str)
    now = now_ms()
    await silencing.sweep(hub, settings.site, alarm_store, now)
    records = await silencing.stored(
        alarm_store.silences,
        since_ms=now if state == "active" else None,
        limit=limit + 1 if after is None else MAX_PAGED,  # one more: is there a next page?
    )
    # The store's order, created newest first then id: ascending on (-created, id).
    page, following = page_sorted(records, lambda r: [-r.created, r.id], after, limit)
    response.headers.update(pager.headers(following))
    return [SilenceOut.of(r, now) for r in page]


@router.get("/{silence_id}", response_model=SilenceOut, responses={404: {"description": "Unknown"}})
async def get_silence(
    silence_id: SilenceIdPath, alarm_store: AlarmDep, _: OperatorDep
) -> SilenceOut:
    record = await silencing.stored(alarm_store.silence, silence_id)
    if record is None:
        raise HTTPException(404, f"unknown silence {silence_id!r}")
    return SilenceOut.of(record, now_ms())


@router.delete(
    "/{silence_id}",
    response_model=SilenceOut,
    responses={404: {"description": "Unknown"}, 503: {"description": "Broker down"}},
)
async def end_silence(
    silence_id: SilenceIdPath,
    db: DbDep,
    hub: HubDep,
    alarm_store: AlarmDep,
    settings: SettingsDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
) -> SilenceOut:
    """End a silence now (idempotent: ending an ended one changes nothing)."""
    record = await silencing.stored(alarm_store.silence, silence_id)
    if record is None:
        await auditing.record(
            audit, request, principal, Action.SILENCE_END, silence_id, Result.NOT_FOUND
        )
        raise HTTPException(404, f"unknown silence {silence_id!r}")
    now = now_ms()
    if record.ended_at is None:
        await silencing.retract(hub, settings.site, silence_id)
        on_alert = None
        if record.alert_id is not None:
            event = await store.get_alert(db, record.alert_id)
            if event is not None:
                on_alert = (event.id, event.rule, event.subject)
        action = "unshelve" if record.purpose == "shelve" else "unsilence"
        await silencing.stored(
            alarm_store.end_silence,
            silence_id,
            actor=principal.name,
            ts=now,
            on_alert=on_alert,
            action=action,
        )
        await auditing.record(
            audit, request, principal, Action.SILENCE_END, silence_id, Result.OK,
            {"purpose": record.purpose},
        )  # fmt: skip
    ended = await silencing.stored(alarm_store.silence, silence_id)
    assert ended is not None
    return SilenceOut.of(ended, now)
