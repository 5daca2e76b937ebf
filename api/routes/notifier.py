"""The notifier, seen from the API: an alert's deliveries, and the routing file.

The API does not import the notifier.  Deliveries come from the notifier's own
HTTP endpoint (``/deliveries``, admin token, addresses already masked there);
the routing file is shared on disk and parsed by deltasense/routing.py, the
parser the notifier uses, so a file that does not parse is never written.  The
notifier notices the new file by its mtime within seconds; a PUT waits for its
``/routing/status`` to say it is in use, or puts the old file back if the
notifier refused it (it also checks that its settings reach every channel).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request

from api import auditing
from api.deps import AdminDep, AlertIdPath, AuditDep, CtxDep, OperatorDep, SettingsDep
from api.models import Delivery, RoutingOut
from deltasense.audit import Action, Result
from deltasense.dynsec import write_private
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
DELIVERY_PAGES = 20  # of 500: the most of one alert's deliveries the API reads
CONFIRM_S = 5.0  # the notifier checks the file every 2 s
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
    out: list[Delivery] = []
    params = {"alert_id": alert_id}
    try:
        async with httpx.AsyncClient(timeout=NOTIFIER_TIMEOUT_S) as http:
            # The notifier answers in pages (newest first); an alert's are all read,
            # up to DELIVERY_PAGES of them (a critical repeated for days).
            for _page in range(DELIVERY_PAGES):
                r = await http.get(
                    f"{notifier_url(settings)}/deliveries",
                    params=params,
                    headers={"Authorization": f"Bearer {ctx.admin_token}"},
                )
                if r.status_code != 200:
                    raise HTTPException(
                        503, f"notifier answered {r.status_code}; delivery state unknown"
                    )
                try:
                    page = r.json()
                    out += [Delivery.model_validate(m) for m in page["messages"]]
                    cursor = page.get("next")
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise HTTPException(503, "notifier answered something unreadable") from None
                if not isinstance(cursor, str):
                    break
                params = {"alert_id": alert_id, "before": cursor}
    except httpx.HTTPError as exc:
        raise HTTPException(
            503, f"notifier unavailable ({type(exc).__name__}); delivery state unknown"
        ) from None
    return out


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
    return {"text": text, "summary": summary(routing), "applied": None, "notifier": ""}


@router.put(
    "/admin/notifier/routing",
    response_model=RoutingOut,
    responses={
        413: {"description": "Larger than 1 MB"},
        415: {"description": "Not TOML"},
        422: {"description": "Refused by the parser (the detail names the key) or the notifier"},
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
    ctx: CtxDep,
    settings: SettingsDep,
    principal: AdminDep,
    audit: AuditDep,
) -> Any:
    """Replace the routing file.  The body (TOML, UTF-8) is validated with the
    notifier's parser; a refused body changes nothing.  The running notifier takes
    the new file up within a few seconds, without a restart; the answer waits for
    it (`applied` true), and if the notifier refuses the file (a channel its
    settings cannot reach) the previous file is put back and the answer is 422.
    `applied` null: the notifier did not answer in time or is down (the file
    stays; it is read when the notifier runs).  Every attempt is audited."""
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
            before = await asyncio.to_thread(_read_or_none, path)
            routing = await asyncio.to_thread(write_routing, path, text)
            mtime_ns = path.stat().st_mtime_ns
            applied, note = await _confirmed(settings, ctx.admin_token, mtime_ns)
            if applied is False:  # the notifier refused it (a channel it cannot reach)
                await asyncio.to_thread(_restore, path, before)
    except RoutingError as exc:
        message = _inside(str(exc), path)
        await audited(Result.INVALID, error=message[:500])
        raise HTTPException(422, message) from None
    except OSError as exc:
        await audited(Result.ERROR, error=exc.strerror or str(exc))
        raise HTTPException(503, f"routing file not written: {exc.strerror or exc}") from None
    if applied is False:
        message = f"refused by the notifier, previous file restored: {_inside(note, path)}"
        await audited(Result.INVALID, error=message[:500])
        raise HTTPException(422, message)
    await audited(
        Result.OK,
        receivers=len(routing.receivers),
        routes=len(routing.routes),
        bytes=len(body),
        applied=applied,
    )
    return {"text": text, "summary": summary(routing), "applied": applied, "notifier": note}


def _inside(message: str, path: Path) -> str:
    return message.replace(str(path), path.name)  # the server's paths stay inside


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _restore(path: Path, before: bytes | None) -> None:
    if before is None:
        path.unlink(missing_ok=True)
    else:
        write_private(path, before)


async def _confirmed(settings: Settings, token: str, mtime_ns: int) -> tuple[bool | None, str]:
    """Wait for the running notifier to take up the file written at ``mtime_ns``:
    (True, "") in use, (False, why) refused, (None, why) not known (the notifier is
    down, or slower than ``CONFIRM_S``)."""
    if not settings.notifier_http_port:
        return None, "notifier HTTP endpoint is off; it reads the file within seconds"
    deadline = asyncio.get_running_loop().time() + CONFIRM_S
    async with httpx.AsyncClient(timeout=NOTIFIER_TIMEOUT_S) as http:
        while True:
            try:
                r = await http.get(
                    f"{notifier_url(settings)}/routing/status",
                    headers={"Authorization": f"Bearer {token}"},
                )
                status = r.json() if r.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                return None, "notifier unreachable; it reads the file when it runs"
            if status.get("loaded_mtime_ns") == mtime_ns:
                return True, ""
            if status.get("refused_mtime_ns") == mtime_ns:
                return False, str(status.get("error", ""))
            if asyncio.get_running_loop().time() > deadline:
                return None, f"notifier did not confirm within {CONFIRM_S:g} s"
            await asyncio.sleep(0.1)


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
