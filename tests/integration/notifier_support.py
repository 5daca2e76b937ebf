"""Real local servers for the notifier's channels, and helpers to drive it.

* ``Fakes``: one uvicorn server on loopback implementing the Telegram Bot API
  calls the notifier makes (sendMessage, getUpdates long poll,
  answerCallbackQuery), Zalo OA's ``/v3.0/oa/message/cs`` and a webhook sink
  that checks the HMAC signature, each able to answer 429 with retry_after.
* ``Inbox``: aiosmtpd with STARTTLS required, on a self-signed certificate.
Every arrival is timestamped and signalled, so tests wait on events, not sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deltasense import alerts
from deltasense.alerts import AlertEvent, Message
from deltasense.influx import InfluxClient
from deltasense.mqtt import make_client
from deltasense.routing import Routing, parse_routing
from deltasense.settings import Settings
from notifier.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from notifier.outbox import Outbox
from notifier.service import Notifier, build_channels, outbox_path, watch_routing
from notifier.web import serve_http
from tools.devstack import free_port

TOKEN = "123456:TEST-TOKEN-aB3dE5fG7hJ9kL1mN3pQ5rS7t"
ZALO_TOKEN = "zalo-test-token-Xy4Wv6Ut8Sr0Qp2On4Ml6Kj8I"
ZALO_APP_ID = "4291763606161179100"
ZALO_SECRET_KEY = "zalo-app-secret-Qw3Er5Ty7Ui9Op1As3Df"
ZALO_REFRESH = "zalo-refresh-0-Lk4Jh6Gf8Ds0Aq2Zx4Cv6Bn8M"
WEBHOOK_SECRET = "webhook-test-secret-Fh3Gj5Kl7Zx9Cv1Bn3Mq5W"


@dataclass
class Arrival:
    channel: str
    address: str
    at: float  # time.time()
    body: dict[str, Any]
    key: str = ""


@dataclass
class Fakes:
    port: int = field(default_factory=free_port)
    arrivals: list[Arrival] = field(default_factory=list)
    attempts: dict[str, list[float]] = field(default_factory=dict)  # channel → request times
    throttle: dict[str, list[int]] = field(default_factory=dict)  # channel → retry_after answers
    updates: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    answers: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    hold: Callable[[Arrival], Any] | None = None  # awaited before answering (slow provider)
    # Answer like Telegram when its limits are broken (1 a second per chat, 20 a minute
    # per group) instead of taking everything; each such 429 is counted.
    telegram_limits: bool = False
    telegram_violations: int = 0
    _chat_sends: dict[str, list[float]] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    # Zalo OA tokens: access tokens the message endpoint takes (empty it: they expired),
    # the one refresh token the OAuth endpoint takes (each works once), and refusals.
    zalo_access: set[str] = field(default_factory=lambda: {ZALO_TOKEN})
    zalo_refresh: str = ZALO_REFRESH
    zalo_refuse_refresh: bool = False
    zalo_refreshes: list[dict[str, str]] = field(default_factory=list)  # forms received
    zalo_expires_in: str = "90000"  # Zalo sends it as a string

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _arrived(self, arrival: Arrival) -> None:
        self.arrivals.append(arrival)
        async with self.changed:
            self.changed.notify_all()
        if self.hold is not None:
            await self.hold(arrival)

    def _throttled(self, channel: str) -> int | None:
        self.attempts.setdefault(channel, []).append(time.time())
        queue = self.throttle.get(channel)
        return queue.pop(0) if queue else None

    def _over_telegram_limits(self, chat: str) -> int | None:
        if not self.telegram_limits:
            return None
        now = time.time()
        sends = self._chat_sends.setdefault(chat, [])
        # 0.1 s of slack: the notifier paces on its own monotonic clock.
        too_soon = bool(sends) and now - sends[-1] < 0.9
        in_minute = [t for t in sends if t > now - 60.0]
        if too_soon or (chat.startswith("-") and len(in_minute) >= 20):
            self.telegram_violations += 1
            return 1
        sends.append(now)
        return None

    async def wait_for(self, check: Callable[[list[Arrival]], bool], within: float) -> None:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: check(self.arrivals))

    def of(self, channel: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.channel == channel]

    def app(self) -> Starlette:
        async def send_message(request: Request) -> Response:
            body = await request.json()
            wait = self._throttled("telegram") or self._over_telegram_limits(str(body["chat_id"]))
            if wait is not None:
                return JSONResponse(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {wait}",
                        "parameters": {"retry_after": wait},
                    },
                    status_code=429,
                )
            await self._arrived(Arrival("telegram", str(body["chat_id"]), time.time(), body))
            return JSONResponse({"ok": True, "result": {"message_id": len(self.arrivals)}})

        async def get_updates(request: Request) -> Response:
            offset = int(request.query_params.get("offset", "0"))
            timeout = min(float(request.query_params.get("timeout", "0")), 1.0)
            out: list[dict[str, Any]] = []
            with contextlib.suppress(TimeoutError):
                update = await asyncio.wait_for(self.updates.get(), timeout)
                if update.get("update_id", offset) >= offset or not isinstance(
                    update.get("update_id"), int
                ):
                    out.append(update)
            return JSONResponse({"ok": True, "result": out})

        async def answer(request: Request) -> Response:
            self.answers.append(await request.json())
            async with self.changed:
                self.changed.notify_all()
            return JSONResponse({"ok": True, "result": True})

        async def zalo(request: Request) -> Response:
            if request.headers.get("access_token") not in self.zalo_access:
                return JSONResponse({"error": -216, "message": "Access token is invalid"})
            body = await request.json()
            wait = self._throttled("zalo")
            if wait is not None:
                return JSONResponse(
                    {"error": -32, "message": "rate"},
                    status_code=429,
                    headers={"Retry-After": str(wait)},
                )
            await self._arrived(Arrival("zalo", body["recipient"]["user_id"], time.time(), body))
            return JSONResponse({"error": 0, "message": "Success", "data": {"message_id": "m1"}})

        async def zalo_oauth(request: Request) -> Response:
            form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
            self.zalo_refreshes.append(form)
            ok = (
                request.headers.get("secret_key") == ZALO_SECRET_KEY
                and request.headers.get("content-type") == "application/x-www-form-urlencoded"
                and form.get("app_id") == ZALO_APP_ID
                and form.get("grant_type") == "refresh_token"
                and form.get("refresh_token") == self.zalo_refresh
                and not self.zalo_refuse_refresh
            )
            if not ok:
                return JSONResponse(
                    {"error": -14014, "error_name": "Invalid refresh token", "error_reason": ""}
                )
            n = len(self.zalo_refreshes)
            access, refresh = f"zalo-access-{n}-{'x' * 24}", f"zalo-refresh-{n}-{'y' * 24}"
            self.zalo_access = {access}  # the old one is spent (it expired)
            self.zalo_refresh = refresh  # single use
            return JSONResponse(
                {
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_in": self.zalo_expires_in,
                }
            )

        async def hook(request: Request) -> Response:
            raw = await request.body()
            if not verify(
                WEBHOOK_SECRET,
                request.headers.get(TIMESTAMP_HEADER, ""),
                request.headers.get(SIGNATURE_HEADER, ""),
                raw,
                time.time(),
            ):
                self.bad_signatures += 1
                return Response(status_code=401)
            wait = self._throttled("webhook")
            if wait is not None:
                return Response(status_code=429, headers={"Retry-After": str(wait)})
            body = json.loads(raw)
            await self._arrived(
                Arrival(
                    "webhook",
                    str(request.url),
                    time.time(),
                    body,
                    request.headers["Idempotency-Key"],
                )
            )
            return Response(status_code=204)

        return Starlette(
            routes=[
                Route(f"/tg/bot{TOKEN}/sendMessage", send_message, methods=["POST"]),
                Route(f"/tg/bot{TOKEN}/getUpdates", get_updates),
                Route(f"/tg/bot{TOKEN}/answerCallbackQuery", answer, methods=["POST"]),
                Route("/zalo/v3.0/oa/message/cs", zalo, methods=["POST"]),
                Route("/zalo-oauth/v4/oa/access_token", zalo_oauth, methods=["POST"]),
                Route("/hook", hook, methods=["POST"]),
            ]
        )


@contextlib.asynccontextmanager
async def running_fakes() -> AsyncIterator[Fakes]:
    fakes = Fakes()
    config = uvicorn.Config(
        fakes.app(), host="127.0.0.1", port=fakes.port, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield fakes
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


# --- SMTP ---------------------------------------------------------------------------
@dataclass
class Mail:
    to: list[str]
    at: float
    message: email.message.EmailMessage
    tls: bool


class Inbox:
    """aiosmtpd on loopback, STARTTLS required; mails land in ``mails``."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.mails: list[Mail] = []
        self._loop = asyncio.get_running_loop()
        self.arrived = asyncio.Event()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        self.port = free_port()
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, tls_context=tls, require_starttls=True
        )

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = (
            envelope.content
            if isinstance(envelope.content, bytes)
            else str(envelope.content).encode()
        )
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        mail = Mail(list(envelope.rcpt_tos), time.time(), msg, session.ssl is not None)
        self._loop.call_soon_threadsafe(self._add, mail)
        return "250 OK"

    def _add(self, mail: Mail) -> None:
        self.mails.append(mail)
        self.arrived.set()

    async def wait(self, n: int, within: float) -> None:
        async with asyncio.timeout(within):
            while len(self.mails) < n:
                self.arrived.clear()
                await self.arrived.wait()

    def __enter__(self) -> Inbox:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# --- alert events -------------------------------------------------------------------
def alert(
    n: int,
    *,
    severity: str = "critical",
    state: str = "firing",
    updated: int | None = None,
    kind: str = "flood",
    rule: str = "street-flood",
    district: str = "phuong-1",
    depth_mm: float = 320.0,
) -> AlertEvent:
    started = 1_764_540_000_000 + n
    return AlertEvent(
        id=f"al-{n:04d}",
        kind=kind,
        rule=rule,
        subject=f"wl-p1-{n:03d}",
        district=district,  # type: ignore[arg-type]
        severity=severity,
        state=state,
        started=started,  # type: ignore[arg-type]
        updated=started if updated is None else updated,
        values={"depth_mm": depth_mm},
        message=Message(vi="Ngập đường", en="Street flooding"),
    )


ROUTING = """
[receivers.truc-ban]
name = "Trực ban"
language = "vi"
telegram = [1001]
zalo = ["8243125690123456789"]
email = ["trucban@example.vn"]
webhook = ["{hook}"]

[receivers.pho-ban]
language = "en"
telegram = [1002]

[[routes]]
name = "flood"
receivers = ["truc-ban"]
escalate = ["pho-ban"]
"""


def notifier_overrides(fakes: Fakes, inbox: Inbox | None, cert: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "notifier_telegram_url": f"{fakes.url}/tg",
        "notifier_telegram_token": TOKEN,
        "notifier_zalo_url": f"{fakes.url}/zalo",
        "notifier_zalo_token": ZALO_TOKEN,
        "notifier_zalo_oauth_url": f"{fakes.url}/zalo-oauth",
        "notifier_zalo_app_id": ZALO_APP_ID,
        "notifier_zalo_secret_key": ZALO_SECRET_KEY,
        "notifier_zalo_refresh_token": ZALO_REFRESH,
        "notifier_webhook_secret": WEBHOOK_SECRET,
        "notifier_http_port": free_port(),
        "notifier_group_wait_s": 1.0,
        "notifier_group_interval_s": 5.0,
        "notifier_urgent_wait_s": 0.2,
        "notifier_ack_secret": "ack-test-secret-Rt6Yu8Io0Pa2Sd4Fg6Hj8Kl",
    }
    if inbox is not None:
        out |= {"notifier_smtp_port": inbox.port, "notifier_smtp_ca_file": cert}
    return out


async def publish(settings: Settings, *events: AlertEvent) -> float:
    """Publish like analytics (retained, QoS 1); returns the time the last was sent."""
    async with make_client(settings) as client:
        for e in events:
            await client.publish(
                alerts.alert_topic(settings.site, e), alerts.encode(e), qos=1, retain=True
            )
    return time.time()


async def watch_ack(settings: Settings, event: AlertEvent) -> asyncio.Task[AlertEvent]:
    """Listen on ``event``'s ack topic (acks are not retained: start before acking);
    the task returns the first ack published there."""
    subscribed = asyncio.Event()

    async def first() -> AlertEvent:
        async with make_client(settings) as client:
            await client.subscribe(alerts.ack_topic(settings.site, event.id), qos=1)
            subscribed.set()
            async for m in client.messages:
                return alerts.decode(bytes(m.payload))  # type: ignore[arg-type]
        raise AssertionError("no ack")

    task = asyncio.create_task(first())
    await asyncio.wait_for(subscribed.wait(), timeout=5)
    return task


def routing(fakes: Fakes, text: str = ROUTING) -> Routing:
    return parse_routing(text.replace("{hook}", f"{fakes.url}/hook"))


@contextlib.asynccontextmanager
async def running_notifier(
    settings: Settings, r: Routing, influx: InfluxClient, *, watch_every_s: float = 0.2
) -> AsyncIterator[Notifier]:
    """The notifier as ``serve`` runs it: planner, senders, HTTP endpoint, and the
    routing file's watcher (polling faster than in production)."""
    outbox = Outbox(outbox_path(settings))
    async with httpx.AsyncClient(timeout=10) as http:

        def build(routing: Routing) -> dict[str, Any]:
            return build_channels(settings, routing, http, time.time)

        n = Notifier(settings, r, outbox, build(r), influx=influx)
        tasks = [
            asyncio.create_task(n.run()),
            asyncio.create_task(serve_http(n)),
            asyncio.create_task(watch_routing(n, build, every_s=watch_every_s)),
        ]
        try:
            async with asyncio.timeout(10):
                await n.connected.wait()
                while True:  # the ack endpoint answers
                    with contextlib.suppress(httpx.TransportError):
                        if (
                            await http.get(
                                f"http://127.0.0.1:{settings.notifier_http_port}/healthz"
                            )
                        ).is_success:
                            break
                    await asyncio.sleep(0.05)
            yield n
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            outbox.close()
