"""The notifier service: alert events → planner → durable outbox → channels.

One MQTT session receives every alert event (``{site}/_alerts/#``, retained
copies included: after a restart they are the current state, and what the
outbox remembers having told receivers keeps them from being sent twice) and
the console's silences (``{site}/_silences/{id}``).  The planner decides what
goes out; each planned message is written to the outbox before a sender task
takes it; senders pace each channel and retry with backoff, honouring the
provider's ``retry_after``.  Acks (Telegram button, email link) are published
on the alert's ack topic (``{site}/_acks/{id}``) exactly like the API's ack
route, and written to InfluxDB; the API's acks are read from there too, so an
ack stops reminders even while analytics (which republishes it on ``_alerts``)
is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aiomqtt
import httpx
import msgspec

from deltasense import alerts, schema, silences
from deltasense.alerts import AlertEvent
from deltasense.dynsec import write_private
from deltasense.influx import InfluxClient, InfluxError, influx_client
from deltasense.mqtt import make_client, run_forever
from deltasense.routing import Routing, RoutingError, load_routing, routing_path
from deltasense.runtime import Backoff, payload_bytes
from deltasense.settings import Settings
from notifier import texts
from notifier.acklinks import make_token
from notifier.channels import (
    TEXT_LIMITS,
    Channel,
    Email,
    Outcome,
    Pacer,
    Telegram,
    Webhook,
    Zalo,
)
from notifier.grouping import Planned, Planner, Timing
from notifier.outbox import NORMAL, URGENT, Message, Outbox, TrackedRow, message_key
from notifier.zaloauth import ZaloAuth, ZaloAuthError, can_refresh
from notifier.zaloauth import setup_problem as zalo_setup_problem

_LOG = logging.getLogger("notifier")
ROUTING_POLL_S: Final = 2.0  # how soon an edited routing file (API PUT, editor) is used
MAX_ATTEMPTS: Final = 20
MAX_BUTTONS: Final = 5
POLL_TIMEOUT_S: Final = 25
# Messages to one chat that are due together go as one digest on the channels with a
# per-chat rate (Telegram, Zalo): in a storm a new critical then waits for at most one
# send slot, not for a queue of routine messages.
MAX_DIGEST: Final = 40
# A digest's ack buttons (one per open alert, urgent first): more than a single
# message's, still a keyboard a phone shows without scrolling far.
MAX_DIGEST_BUTTONS: Final = 10
DIGEST_CHANNELS: Final = {channel: MAX_DIGEST for channel in TEXT_LIMITS}


class ConfigError(ValueError):
    """The routing file needs a channel the settings do not configure."""


class AckUnavailable(RuntimeError):
    """The broker is not connected: the ack cannot be published now."""


def outbox_path(settings: Settings) -> Path:
    return settings.notifier_outbox or settings.var_dir / "notifier" / "outbox.sqlite3"


def ack_secret(settings: Settings) -> str:
    """The configured secret, or one generated once into var/notifier/ack-secret."""
    if settings.notifier_ack_secret:
        return settings.notifier_ack_secret
    path = settings.var_dir / "notifier" / "ack-secret"
    if not path.exists():  # created 0600 from the start, never readable by others
        write_private(path, secrets.token_urlsafe(32).encode())
    return path.read_text().strip()


def public_url(settings: Settings) -> str:
    own = f"http://{settings.notifier_http_host}:{settings.notifier_http_port}"
    return (settings.notifier_public_url or own).rstrip("/")


def timing(settings: Settings) -> Timing:
    return Timing(
        group_wait_ms=int(settings.notifier_group_wait_s * 1000),
        group_interval_ms=int(settings.notifier_group_interval_s * 1000),
        urgent_wait_ms=int(settings.notifier_urgent_wait_s * 1000),
        repeat_ms=int(settings.notifier_repeat_interval_s * 1000),
        escalate_ms=int(settings.notifier_escalation_min * 60_000),
    )


def check_channels(settings: Settings, routing: Routing) -> None:
    """Refuse a routing file that uses a channel the settings cannot reach."""
    used = {ch for r in routing.receivers.values() for ch, _ in r.addresses()}
    needs = {
        "telegram": (settings.notifier_telegram_token, "DELTASENSE_NOTIFIER_TELEGRAM_TOKEN"),
        "zalo": (
            settings.notifier_zalo_token or can_refresh(settings),
            "DELTASENSE_NOTIFIER_ZALO_TOKEN or _ZALO_APP_ID, _ZALO_SECRET_KEY and "
            "_ZALO_REFRESH_TOKEN",
        ),
        "webhook": (settings.notifier_webhook_secret, "DELTASENSE_NOTIFIER_WEBHOOK_SECRET"),
    }
    missing = [f"{ch} ({var})" for ch, (value, var) in needs.items() if ch in used and not value]
    if (problem := zalo_setup_problem(settings)) is not None:
        raise ConfigError(problem)
    if missing:
        raise ConfigError(
            f"{routing_path(settings)}: receivers use channels not configured: {', '.join(missing)}"
        )


def build_channels(
    settings: Settings, routing: Routing, http: httpx.AsyncClient, clock: Callable[[], float]
) -> dict[str, Channel]:
    """The channels the routing file uses (checked by :func:`check_channels`)."""
    check_channels(settings, routing)
    used = {ch for r in routing.receivers.values() for ch, _ in r.addresses()}
    out: dict[str, Channel] = {}
    if "telegram" in used and settings.notifier_telegram_token:
        out["telegram"] = Telegram(
            http, settings.notifier_telegram_url, settings.notifier_telegram_token
        )
    if "zalo" in used and (settings.notifier_zalo_token or can_refresh(settings)):
        try:
            auth = ZaloAuth(settings, http, clock)
        except ZaloAuthError as exc:
            raise ConfigError(str(exc)) from None
        out["zalo"] = Zalo(http, settings.notifier_zalo_url, auth)
    if "webhook" in used and settings.notifier_webhook_secret:
        out["webhook"] = Webhook(http, settings.notifier_webhook_secret, clock)
    if "email" in used:
        out["email"] = Email(settings)
    return out


class Notifier:
    def __init__(
        self,
        settings: Settings,
        routing: Routing,
        outbox: Outbox,
        channels: dict[str, Channel],
        *,
        clock: Callable[[], float] = time.time,
        influx: InfluxClient | None = None,
    ) -> None:
        self.settings = settings
        self.routing = routing
        self.outbox = outbox
        self.channels = channels
        self.clock = clock
        self.influx = influx
        self.planner = Planner(routing, timing(settings))
        self.latest: dict[str, AlertEvent] = {}
        self.pacer = Pacer()
        self.secret = ack_secret(settings)
        self.bad_payloads = 0
        self._client: aiomqtt.Client | None = None
        self._wake_plan = asyncio.Event()
        self._wake_send = asyncio.Event()
        self._inflight: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._backoff = Backoff(1.0, 300.0)  # per message: delay(attempts), no shared state
        self.connected = asyncio.Event()
        self.routing_status = RoutingStatus()
        self._tg: asyncio.TaskGroup | None = None  # while run() runs
        self._polling = False

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def use_routing(self, routing: Routing, channels: dict[str, Channel]) -> None:
        """Route by a new file from now on.  Channels already open are kept (their
        pacing state with them); ones the new file adds are opened.  What receivers
        were told stays in the outbox, so nothing already sent is sent again."""
        for name, channel in channels.items():
            self.channels.setdefault(name, channel)
        self.routing = routing
        self.planner.use_routing(routing)
        self._start_poller()  # a Telegram channel this file adds needs its button presses read
        self._wake_plan.set()

    def _start_poller(self) -> None:
        """Read Telegram's button presses once there is a Telegram channel (at start-up
        or when a reloaded routing file adds one); one poller for the process."""
        telegram = self.channels.get("telegram")
        if self._tg is None or self._polling or not isinstance(telegram, Telegram):
            return
        self._polling = True
        self._tg.create_task(self._poll_telegram(telegram))

    # --- start-up ----------------------------------------------------------------------
    def restore(self) -> None:
        idempotent = frozenset(n for n, ch in self.channels.items() if ch.idempotent)
        doubtful = self.outbox.recover(idempotent)
        if doubtful:
            _LOG.warning("resending messages cut off mid-send (possible duplicates): %s", doubtful)
        for row in self.outbox.tracked():
            try:
                event = alerts.decode(row.event)
            except msgspec.DecodeError:
                continue
            self.planner.restore(event, first=row.first, last=row.last, steps=row.steps)
            self.latest[event.id] = event

    async def run(self) -> None:
        self.restore()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(run_forever(self._session, name="notifier", logger=_LOG))
                tg.create_task(self._plan_loop())
                tg.create_task(self._send_loop())
                self._start_poller()
        finally:
            self._tg, self._polling = None, False
            # Sends in flight stop with the service (their rows stay 'sending' and are
            # resent at the next start), rather than outliving the outbox they write to.
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- MQTT --------------------------------------------------------------------------
    async def _session(self) -> None:
        s = self.settings
        async with make_client(
            s, identifier=f"{s.notifier_client_id}-{s.site}", logger=_LOG
        ) as client:
            await client.subscribe(alerts.alerts_filter(s.site), qos=1)
            await client.subscribe(alerts.acks_filter(s.site), qos=1)
            await client.subscribe(silences.silences_filter(s.site), qos=1)
            self._client = client
            self.connected.set()
            try:
                async for message in client.messages:
                    self.on_message(str(message.topic), payload_bytes(message.payload))
            finally:
                self._client = None
                self.connected.clear()

    def on_message(self, topic: str, payload: bytes) -> None:
        if silences.is_silence_topic(self.settings.site, topic):
            self._on_silence(topic, payload)
            return
        if not payload:
            return  # a cleared retained topic
        try:
            if alerts.is_ack_topic(self.settings.site, topic):
                event = alerts.decode_ack(self.settings.site, topic, payload)
            else:
                event = alerts.decode(payload)
        except ValueError as exc:  # msgspec.DecodeError, alerts.AckError
            self.bad_payloads += 1
            _LOG.warning("ignored an alert payload on %s: %s", topic, exc)
            return
        self.observe(event)

    def _on_silence(self, topic: str, payload: bytes) -> None:
        silence_id = topic.rsplit("/", 1)[-1]
        if not payload:
            self.planner.drop_silence(silence_id)
            return
        try:
            self.planner.set_silence(silences.decode(silence_id, payload))
        except silences.SilenceError as exc:
            self.bad_payloads += 1
            _LOG.warning("ignored a silence on %s: %s", topic, exc)

    def observe(self, event: AlertEvent) -> None:
        known = self.latest.get(event.id)
        if known is None or event.updated > known.updated:
            self.latest[event.id] = event
        self.planner.observe(event, self.now_ms())
        self._wake_plan.set()

    # --- planning → outbox -------------------------------------------------------------
    async def _plan_loop(self) -> None:
        while True:
            now = self.now_ms()
            planned = self.planner.due(now)
            if planned:
                self.enqueue(planned, now)
                self._wake_send.set()
            wake = self.planner.next_wake()
            timeout = 60.0 if wake is None else max(0.0, (wake - self.now_ms()) / 1000)
            self._wake_plan.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_plan.wait(), timeout)

    def _body(self, p: Planned, channel: str, lang: str) -> dict[str, Any]:
        tz = self.settings.local_tz
        text = texts.render(
            p.events, lang, p.reason, console_url=self.settings.notifier_console_url, tz=tz
        )
        open_ = [e for e in p.events if e.state == "firing" and e.ack is None][:MAX_BUTTONS]
        body: dict[str, Any] = {"title": text.title, "text": text.body}
        if channel in TEXT_LIMITS:  # a channel that may carry it in a digest
            body["brief"] = texts.brief(
                p.events, lang, console_url=self.settings.notifier_console_url, tz=tz
            )
        label = texts.say(lang, "ack")
        if channel == "telegram":
            body["buttons"] = [
                [f"{label}: {e.message.vi if lang == 'vi' else e.message.en}"[:60], f"ack:{e.id}"]
                for e in open_
            ]
        if channel == "email" and open_:
            expires = int(self.clock()) + self.settings.notifier_ack_link_ttl_s
            links = [
                f"{texts.line(e, lang, tz)}\n{public_url(self.settings)}/ack/{make_token(self.secret, e.id, p.receiver, expires)}"
                for e in open_
            ]
            body["ack_label"] = texts.say(lang, "notify.ack_link")
            body["ack_url"] = "\n\n".join(links)
        if channel == "webhook":
            body["webhook"] = {
                "reason": p.reason,
                "receiver": p.receiver,
                "route": p.route,
                "group": p.group,
                "title": text.title,
                "text": text.body,
                "events": [msgspec.to_builtins(e) for e in p.events],
            }
        return body

    def enqueue(self, planned: list[Planned], now_ms: int) -> int:
        messages: list[Message] = []
        ids: set[str] = set()
        for p in planned:
            receiver = self.routing.receivers[p.receiver]
            stamps = [(e.id, e.updated) for e in p.events]
            ids.update(e.id for e in p.events)
            for channel, address in receiver.addresses():
                messages.append(
                    Message(
                        key=message_key(p.receiver, channel, address, p.reason, stamps),
                        receiver=p.receiver,
                        channel=channel,
                        address=address,
                        reason=p.reason,
                        alert_ids=tuple(e.id for e in p.events),
                        body=self._body(p, channel, receiver.language),
                        priority=URGENT if p.urgent else NORMAL,
                    )
                )
        tracked: list[TrackedRow] = []
        gone: list[str] = []
        for alert_id in ids:
            t = self.planner.alerts.get(alert_id)
            if t is None or t.notified is None or t.first_notified is None:
                gone.append(alert_id)
                continue
            assert t.last_notified is not None
            tracked.append(
                TrackedRow(
                    alert_id,
                    alerts.encode(t.notified),
                    t.first_notified,
                    t.last_notified,
                    dict(t.steps),
                )
            )
        return self.outbox.enqueue(messages, now_ms=now_ms, tracked=tracked, untracked=gone)

    # --- outbox → channels -------------------------------------------------------------
    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake_send.clear()
            waiting = self.pacer.waiting(loop.time())
            busy = self._inflight | set(waiting)
            claimed = self.outbox.claim(self.now_ms(), busy=busy, batch=DIGEST_CHANNELS)
            # claim() returns a digest's members next to each other.
            for (channel, address), group in itertools.groupby(
                claimed, key=lambda m: (m.channel, m.address)
            ):
                self._inflight.add((channel, address))
                task = asyncio.create_task(self._deliver(list(group)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            due = self.outbox.next_due()
            timeout = 5.0 if due is None else min(5.0, max(0.05, (due - self.now_ms()) / 1000))
            if waiting:
                timeout = min(timeout, max(0.01, min(waiting.values()) - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_send.wait(), timeout)

    def _digest(self, batch: list[Message]) -> tuple[dict[str, Any], str, list[Message]]:
        """One body for messages to one chat; the members that did not fit go back."""
        first = batch[0]
        if len(batch) == 1:
            return first.body, first.key, batch
        receiver = self.routing.receivers.get(first.receiver)
        lang = receiver.language if receiver is not None else "vi"
        body, n = texts.digest(
            [m.body for m in batch],
            lang,
            limit=TEXT_LIMITS[first.channel],
            max_buttons=MAX_DIGEST_BUTTONS,
        )
        carried, rest = batch[:n], batch[n:]
        if rest:
            self.outbox.release(m.key for m in rest)
        key = "ds-" + hashlib.sha256("\x00".join(m.key for m in carried).encode()).hexdigest()[:32]
        return body, key, carried

    async def _deliver(self, batch: list[Message]) -> None:
        m = batch[0]
        try:
            body, key, carried = self._digest(batch)
            urgent = any(c.priority == URGENT for c in carried)
            loop = asyncio.get_running_loop()
            at = self.pacer.reserve(m.channel, m.address, loop.time(), urgent=urgent)
            await asyncio.sleep(at - loop.time())
            channel = self.channels.get(m.channel)
            if channel is None:
                for c in carried:
                    self.outbox.failed(c.key, f"channel {m.channel} not configured")
                return
            try:
                outcome = await channel.send(m.address, body, key)
            except Exception as exc:  # a bug or a provider's surprise: keep the message, retry
                _LOG.exception("%s to %s raised", m.channel, m.receiver)
                outcome = Outcome(False, detail=f"{type(exc).__name__}: {exc}")
            self.pacer.done(m.channel, m.address, loop.time())
            if len(carried) > 1:
                self.outbox.bump(f"digests.{m.channel}")
            for c in carried:
                self._settle(c, outcome, loop.time())
        finally:
            self._inflight.discard((m.channel, m.address))
            self._wake_send.set()

    def _settle(self, m: Message, outcome: Outcome, now: float) -> None:
        attempts = m.attempts + 1
        if outcome.ok:
            self.outbox.sent(m.key, self.now_ms())
        elif outcome.permanent or (attempts >= MAX_ATTEMPTS and not outcome.keep):
            _LOG.error("gave up %s to %s: %s", m.channel, m.receiver, outcome.detail)
            self.outbox.failed(m.key, outcome.detail)
        else:
            wait = outcome.retry_after_s
            if wait is not None:
                # The provider's wait holds every message to that address, not just this one.
                self.pacer.hold(m.channel, m.address, now + wait)
            else:
                wait = self._backoff.delay(attempts)
            _LOG.warning(
                "%s to %s: %s; retry in %.1f s", m.channel, m.receiver, outcome.detail, wait
            )
            self.outbox.retry(m.key, self.now_ms() + int(wait * 1000), outcome.detail)

    # --- acks ----------------------------------------------------------------------------
    async def ack(self, alert_id: str, by: str, note: str = "") -> AlertEvent | None:
        """Acknowledge like the API's ack route: publish on the ack topic, then store.
        None if the alert is unknown; an acked alert stays as it is."""
        event = self.latest.get(alert_id)
        if event is None:
            return None
        if event.ack is not None:
            return event
        client = self._client
        if client is None:
            raise AckUnavailable("broker not connected")
        acked = alerts.acknowledged(event, by=by, now_ms=self.now_ms(), note=note)
        await client.publish(
            alerts.ack_topic(self.settings.site, acked.id), alerts.encode(acked), qos=1
        )
        if self.influx is not None:
            try:
                await self.influx.write_lines([schema.alert_line(acked)])
            except InfluxError as exc:
                _LOG.warning("ack of %s published but not stored: %s", alert_id, exc)
        self.observe(acked)
        return acked

    async def _poll_telegram(self, telegram: Telegram) -> None:
        offset = int(self.outbox.value("telegram.offset") or 0)
        backoff = Backoff(1.0, 60.0)
        while True:
            try:
                updates = await telegram.get_updates(offset, POLL_TIMEOUT_S)
                backoff.reset()
            except httpx.HTTPError as exc:
                wait = backoff.next()
                _LOG.warning("telegram getUpdates: %s; again in %.1f s", exc, wait)
                await asyncio.sleep(wait)
                continue
            for update in updates:
                if isinstance(update, dict) and isinstance(update.get("update_id"), int):
                    offset = max(offset, update["update_id"] + 1)
                    chats: dict[int, str] = {
                        c: r.language for r in self.routing.receivers.values() for c in r.telegram
                    }
                    await self._on_update(telegram, update, chats)
                else:
                    self.bad_payloads += 1
            self.outbox.set_value("telegram.offset", str(offset))

    async def _on_update(
        self, telegram: Telegram, update: dict[str, Any], chats: dict[int, str]
    ) -> None:
        """A button press: ack as ``telegram:{user}`` if the chat is a receiver's; the
        answer (a toast on the presser's phone) in that receiver's language."""
        cq = update.get("callback_query")
        try:
            assert isinstance(cq, dict)
            callback_id = str(cq["id"])
            data = cq["data"]
            chat = cq["message"]["chat"]["id"]
            user = cq["from"]
            who = user.get("username") or str(user["id"])
            assert isinstance(data, str) and data.startswith("ack:") and isinstance(chat, int)
        except (AssertionError, KeyError, TypeError, AttributeError):
            self.bad_payloads += 1
            _LOG.warning("ignored a Telegram update %s", str(update)[:200])
            return
        if chat not in chats:
            await telegram.answer(callback_id, texts.say("vi", "forbidden"))
            return
        lang = chats[chat]
        try:
            acked = await self.ack(data[4:], f"telegram:{who}")
        except AckUnavailable:
            await telegram.answer(callback_id, texts.say(lang, "notify.ack_retry"))
            return
        if acked is None or acked.ack is None:
            text = texts.say(lang, "notify.ack_unknown")
        else:
            text = f"{texts.say(lang, 'acked_by')} {acked.ack.by}"
        with contextlib.suppress(httpx.HTTPError):
            await telegram.answer(callback_id, text)


@dataclasses.dataclass(frozen=True)
class RoutingStatus:
    """Which version of the routing file is in use (by its mtime), and the last
    changed version refused, with why: the API's PUT waits on this."""

    loaded_mtime_ns: int | None = None
    refused_mtime_ns: int | None = None
    error: str = ""


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


async def watch_routing(
    notifier: Notifier,
    build: Callable[[Routing], dict[str, Channel]],
    *,
    every_s: float = ROUTING_POLL_S,
) -> None:
    """Use an edited routing file without a restart.  A file that does not parse,
    or needs a channel the settings lack, is logged and the routing in use stays."""
    path = routing_path(notifier.settings)
    seen = _mtime(path)
    notifier.routing_status = RoutingStatus(loaded_mtime_ns=seen)
    while True:
        await asyncio.sleep(every_s)
        now = _mtime(path)
        if now == seen or now is None:
            continue
        seen = now
        try:
            routing = load_routing(path)
            fresh = build(routing)
        except (RoutingError, ConfigError) as exc:
            _LOG.error("routing file changed but refused, the previous routing stays: %s", exc)
            notifier.routing_status = dataclasses.replace(
                notifier.routing_status, refused_mtime_ns=now, error=str(exc)
            )
            continue
        notifier.use_routing(routing, fresh)
        # The last refusal stays readable after a later file is taken (the API puts
        # the previous file back after one: the reason must outlive that reload).
        notifier.routing_status = dataclasses.replace(notifier.routing_status, loaded_mtime_ns=now)
        _LOG.info(
            "routing reloaded from %s: %d receivers, %d routes",
            path,
            len(routing.receivers),
            len(routing.routes),
        )


async def serve(settings: Settings, routing: Routing) -> None:
    from notifier.web import serve_http

    outbox = Outbox(outbox_path(settings))
    try:
        async with (
            httpx.AsyncClient(timeout=30) as http,
            influx_client(settings, logger=_LOG) as db,
        ):

            def build(r: Routing) -> dict[str, Channel]:
                return build_channels(settings, r, http, time.time)

            notifier = Notifier(settings, routing, outbox, build(routing), influx=db)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(notifier.run())
                tg.create_task(watch_routing(notifier, build))
                if settings.notifier_http_port:
                    tg.create_task(serve_http(notifier))
    finally:
        outbox.close()
