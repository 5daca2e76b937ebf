"""The notifier, seen from the API: an alert's deliveries, and the routing file.

The API does not import the notifier.  Deliveries come from the notifier's own
HTTP endpoint (``/deliveries``, admin token, addresses already masked there);
the routing file is shared on disk and parsed by deltasense/routing.py, the
parser the notifier uses, so a file the notifier would refuse is never written.
The notifier notices the new file by its mtime within seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request

from api import auditing
from api.deps import AdminDep, AlertIdPath, AuditDep, CtxDep, OperatorDep, SettingsDep
from api.models import Delivery, RoutingOut
from deltasense.audit import Action, Result
from deltasense.routing import (
    MAX_FILE_BYTES,
    Routing,
    RoutingError,
    load_routing,
    routing_path,
    summary,
    write_routing,
)
from deltasense.settings import Settings

router = APIRouter(tags=["notifier"])

NOTIFIER_TIMEOUT_S = 3.0
TOML_TYPES = ("application/toml", "text/plain", "text/x-toml")
_write_lock = asyncio.Lock()  # two admins saving at once: one file, the last one whole


def notifier_url(settings: Settings) -> str:
    host = settings.notifier_http_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.notifier_http_port}"


@router.get(
    "/alerts/{alert_id}/notifications",
    response_model=list[Delivery],
    responses={503: {"description": "The notifier is down or does not answer"}},
)
async def alert_notifications(
    alert_id: AlertIdPath, ctx: CtxDep, settings: SettingsDep, _: OperatorDep
) -> Any:
    """Every notification the notifier made for this alert, newest first: receiver,
    channel, masked address, reason, delivery state, attempts, last error, times.
    Operators and admins: addresses, even masked, tell who is on duty."""
    if not settings.notifier_http_port:
        raise HTTPException(503, "notifier HTTP endpoint is off (notifier_http_port = 0)")
    try:
        async with httpx.AsyncClient(timeout=NOTIFIER_TIMEOUT_S) as http:
            r = await http.get(
                f"{notifier_url(settings)}/deliveries",
                params={"alert_id": alert_id},
                headers={"Authorization": f"Bearer {ctx.admin_token}"},
            )
    except httpx.HTTPError as exc:
        raise HTTPException(
            503, f"notifier unavailable ({type(exc).__name__}); delivery state unknown"
        ) from None
    if r.status_code != 200:
        raise HTTPException(503, f"notifier answered {r.status_code}; delivery state unknown")
    try:
        rows = r.json()["messages"]
        return [Delivery.model_validate(m) for m in rows]
    except (ValueError, KeyError, TypeError):
        raise HTTPException(503, "notifier answered something unreadable") from None


def _current(settings: Settings) -> tuple[str, Routing]:
    path = routing_path(settings)
    if not path.exists():
        return "", Routing()
    routing = load_routing(path)
    return path.read_text(encoding="utf-8"), routing


@router.get("/admin/notifier/routing", response_model=RoutingOut)
async def get_routing(settings: SettingsDep, _: AdminDep) -> Any:
    """The routing file (receivers, routes, inhibitions) and a summary of it
    without addresses.  Admins only: the text holds addresses."""
    try:
        text, routing = await asyncio.to_thread(_current, settings)
    except RoutingError as exc:
        # Edited by hand into something the notifier refuses: say so, show nothing.
        raise HTTPException(409, f"routing file on disk is invalid: {exc}") from None
    return {"text": text, "summary": summary(routing)}


@router.put(
    "/admin/notifier/routing",
    response_model=RoutingOut,
    responses={
        413: {"description": "Larger than 1 MB"},
        415: {"description": "Not TOML"},
        422: {"description": "Refused by the parser; the detail names the key"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/toml": {"schema": {"type": "string"}}},
        }
    },
)
async def put_routing(
    request: Request,
    settings: SettingsDep,
    principal: AdminDep,
    audit: AuditDep,
) -> Any:
    """Replace the routing file.  The body (TOML, UTF-8) is validated with the
    notifier's parser; a refused body changes nothing.  The notifier uses the new
    file within a few seconds, without a restart.  Every attempt is audited."""
    path = routing_path(settings)

    async def audited(result: Result, **detail: object) -> None:
        await auditing.record(
            audit, request, principal, Action.ROUTING_EDIT, path.name, result, detail
        )

    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in TOML_TYPES:
        raise HTTPException(415, f"send the file as {TOML_TYPES[0]} (got {ctype or 'none'!r})")
    body = await _body(request)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        await audited(Result.INVALID, error="not UTF-8")
        raise HTTPException(422, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        async with _write_lock:
            routing = await asyncio.to_thread(write_routing, path, text)
    except RoutingError as exc:
        message = str(exc).replace(str(path), path.name)  # the server's paths stay inside
        await audited(Result.INVALID, error=message[:500])
        raise HTTPException(422, message) from None
    except OSError as exc:
        await audited(Result.ERROR, error=exc.strerror or str(exc))
        raise HTTPException(503, f"routing file not written: {exc.strerror or exc}") from None
    await audited(
        Result.OK,
        receivers=len(routing.receivers),
        routes=len(routing.routes),
        bytes=len(body),
    )
    return {"text": text, "summary": summary(routing)}


async def _body(request: Request) -> bytes:
    """The body, refused past the routing file's size limit without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FILE_BYTES:
        raise HTTPException(413, f"larger than {MAX_FILE_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise HTTPException(413, f"larger than {MAX_FILE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
