"""Alerts: list, get, acknowledge, and the live change stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api import auditing, store
from api.csvout import CSV_RESPONSE, FormatQuery, csv_response, wants_csv
from api.deps import (
    AlertIdPath,
    AuditDep,
    CtxDep,
    DbDep,
    HubDep,
    OperatorDep,
    SettingsDep,
    StreamAccessDep,
    ViewerDep,
    still_valid,
)
from api.hub import Change, MqttUnavailable
from api.models import AckIn, Alert
from api.paging import PagerDep, page_sorted
from api.params import ms_to_rfc3339
from deltasense import alerts as alerts_mod
from deltasense.alerts import AlertKind, Severity
from deltasense.audit import Action, Result
from deltasense.runtime import now_ms

router = APIRouter(prefix="/alerts", tags=["alerts"])

ACTIVE_STATES = frozenset({"pending", "firing"})
RETRY_MS = 5000
LAST_EVENT_ID = r"^[0-9a-f]{1,16}-[0-9]{1,18}$"
STREAM_RECHECK_S = 1.0  # how often an open stream checks that its token still stands
_LOG = logging.getLogger(__name__)


ALERT_CSV_COLUMNS = (
    "id",
    "kind",
    "rule",
    "subject",
    "district",
    "severity",
    "state",
    "risk_level",
    "started",
    "updated",
    "ended",
    "ack_by",
    "ack_ts",
    "ack_note",
    "message_vi",
    "message_en",
)


def _csv_row(a: Alert) -> tuple[str | int | None, ...]:
    ack = a.ack
    return (
        a.id,
        a.kind,
        a.rule,
        a.subject,
        a.district,
        a.severity,
        a.state,
        a.risk_level,
        ms_to_rfc3339(a.started),
        ms_to_rfc3339(a.updated),
        ms_to_rfc3339(a.ended) if a.ended is not None else None,
        ack.by if ack else None,
        ms_to_rfc3339(ack.ts) if ack else None,
        ack.note if ack else None,
        a.message.vi,
        a.message.en,
    )


@router.get(
    "",
    response_model=list[Alert],
    responses={**CSV_RESPONSE, 200: {**CSV_RESPONSE[200], "description": "Alerts, newest first"}},
)
async def list_alerts(
    db: DbDep,
    _: ViewerDep,
    pager: PagerDep,
    request: Request,
    response: Response,
    state: Literal["active", "resolved", "all"] = "active",
    kind: AlertKind | None = None,
    district: Annotated[str | None, Query(pattern=r"^[a-z0-9_][a-z0-9_-]{0,31}$")] = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    format: FormatQuery = None,
) -> Any:
    """Alerts, newest change first (`updated`, then id).  Pages with `cursor` (from the
    `Link: rel=next` / `X-Next-Cursor` header); an alert that changes while a client
    pages moves to the top and is not repeated.  `format=csv` (or `Accept: text/csv`):
    the same page as CSV (times ISO-8601 UTC)."""
    after = pager.position(int, str)
    events = await store.list_alerts(db, kind=kind, district=district)
    chosen = [
        e
        for e in events
        if (state == "all" or (state == "active") == (e.state in ACTIVE_STATES))
        and (severity is None or e.severity == severity)
    ]
    page, following = page_sorted(chosen, _position, after, limit, descending=True)
    out = [Alert.of(e) for e in page]
    links = pager.headers(following)
    if wants_csv(request, format):
        return csv_response(ALERT_CSV_COLUMNS, map(_csv_row, out), "alerts.csv", links)
    response.headers.update(links)
    return out


def _position(event: alerts_mod.AlertEvent) -> list[int | str]:
    return [event.updated, event.id]


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        400: {"description": "A credential in the URL (`access_token`): never accepted."},
        429: {"description": "Too many failed authentications from this address."},
    },
)
async def stream(
    access: StreamAccessDep,
    hub: HubDep,
    ctx: CtxDep,
    last_event_id: Annotated[
        str | None, Header(pattern=LAST_EVENT_ID, description="The last event id received.")
    ] = None,
    last: Annotated[
        str | None,
        Query(
            pattern=LAST_EVENT_ID,
            description="The same as the Last-Event-ID header, for a new EventSource.",
        ),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """One `alert` event (data: the alert JSON, id: its id) per alert change.

    Authenticated by `Authorization: Bearer …`, or by `?ticket=` from
    `POST /api/v1/stream/ticket` (browsers' EventSource cannot send headers; a token
    is never accepted in the URL). A comment line arrives first (the client is then
    listening) and keep-alive comments every 15 s. The stream ends within
    `STREAM_RECHECK_S` (1 s) of its token being revoked or its console session ending.

    Event ids are `{epoch}-{seq}`, counting up within one API process. A client that
    reconnects with `Last-Event-ID` (or `?last=`) gets the changes it missed first, in
    order; when they are no longer all kept (or the id is from before a restart) it
    gets one `reset` event instead and should reload the alert list.
    """
    with hub.listen() as queue:
        yield ServerSentEvent(comment="listening", retry=RETRY_MS)
        resume = last_event_id or last
        newest = 0
        if resume is not None:
            missed = hub.since(resume)
            if missed is None:
                yield ServerSentEvent(event="reset", raw_data="{}")
            for old in missed or []:
                newest = old.seq
                yield ServerSentEvent(
                    event="alert",
                    id=hub.event_id(old),
                    raw_data=alerts_mod.encode(old.event).decode(),
                )
        while True:
            try:
                change: Change | None = await asyncio.wait_for(queue.get(), STREAM_RECHECK_S)
            except TimeoutError:
                change = None
            if not still_valid(ctx, access.credential):
                _LOG.info(
                    "closing an alert stream of %s: its %s ended",
                    access.principal.name,
                    access.credential.kind,
                )
                return
            if change is not None and change.seq > newest:  # not already replayed
                yield ServerSentEvent(
                    event="alert",
                    id=hub.event_id(change),
                    raw_data=alerts_mod.encode(change.event).decode(),
                )


@router.get("/{alert_id}", response_model=Alert, responses={404: {"description": "Unknown"}})
async def get_alert(alert_id: AlertIdPath, db: DbDep, _: ViewerDep) -> Alert:
    event = await store.get_alert(db, alert_id)
    if event is None:
        raise HTTPException(404, f"unknown alert {alert_id!r}")
    return Alert.of(event)


@router.post(
    "/{alert_id}/ack",
    response_model=Alert,
    responses={404: {"description": "Unknown"}, 503: {"description": "Broker down"}},
)
async def ack_alert(
    alert_id: AlertIdPath,
    db: DbDep,
    hub: HubDep,
    settings: SettingsDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
    body: AckIn | None = None,
) -> Alert:
    """Acknowledge an alert (idempotent; resolved alerts may be acknowledged too).

    The acknowledged event is published on the alert's ack topic
    (`{site}/_acks/{id}`) first; analytics, which owns the lifecycle and alone
    publishes alert events, applies the ack and republishes the event retained
    (the stream and the notifier see it); then it is stored.  Every attempt is
    recorded in the audit log.
    """

    async def audited(result: Result, **detail: object) -> None:
        await auditing.record(audit, request, principal, Action.ALERT_ACK, alert_id, result, detail)

    note = (body.note or "") if body else ""
    event = await store.get_alert(db, alert_id)
    if event is None:
        await audited(Result.NOT_FOUND)
        raise HTTPException(404, f"unknown alert {alert_id!r}")
    if event.ack is not None:
        await audited(Result.OK, already_by=event.ack.by)
        return Alert.of(event)
    now = now_ms()
    acked = alerts_mod.acknowledged(event, by=principal.name, now_ms=now, note=note)
    what = {"rule": event.rule, "severity": str(event.severity), "note": note}
    try:
        topic = alerts_mod.ack_topic(settings.site, acked.id)
    except ValueError as exc:
        await audited(Result.INVALID, **what, error=str(exc))
        raise HTTPException(409, f"ack cannot be published: {exc}") from None
    try:
        await hub.publish(topic, alerts_mod.encode(acked))
    except MqttUnavailable:
        await audited(Result.ERROR, **what, error="broker unavailable")
        raise
    await store.write_alert(db, acked)
    await audited(Result.OK, **what)
    return Alert.of(acked)
