"""The gateway service: the ward's broker → the spool → the platform's broker, and back.

Two MQTT sessions, each reconnecting on its own:

* **local** (the ward's Mosquitto): a persistent QoS 1 session on the ward's
  ``tele``, ``status``, ``meta`` and ``ack`` topics.  Messages are batched into
  one spool transaction (fsync) and acknowledged to the ward broker only once it
  has committed; if the gateway dies before, the ward broker redelivers them.
* **uplink** (the platform): the gateway's own identity (``gw.<district>``), a
  persistent session (commands queue on the platform while the link is down).
  The pump sends spooled records with QoS 1 and deletes each only after its
  PUBACK.  Live first: at connect, everything spooled so far is the backlog
  (ids up to the watermark); newer records are live and are sent as soon as
  they are spooled, ahead of the backlog, which may take ``backlog_share`` of
  the in-flight window and so drains as fast as the link acknowledges while
  live data keeps the rest.  Replayed readings carry ``hist`` (edge/relay.py).

Downlink: commands and configurations for the ward's nodes arrive on the uplink
and are relayed to the ward broker (whose persistent sessions keep them for a
sleeping node); a command that expired on the way is answered ``expired``.

Delivery is at least once: a record whose PUBACK arrived just before a crash is
sent again, and the platform stores it once (a reading's ts is its identity).

Local rules (edge/localrules.py): every message the ward side spools is also fed
to the ward's flood and storm rules, which run at once after a water reading and
every second; while the uplink is down their verdicts sound the siren
(edge/siren.py), order the ward's lamps to full brightness (published on the ward
broker) and raise alerts, which go into the spool for the platform like any
reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import aiomqtt
import paho.mqtt.client as mqtt

from deltasense import alerts, gateway_status
from deltasense.contract import Channel, edge_alert_topic, edge_status_topic
from deltasense.mqtt import run_forever
from deltasense.runtime import now_ms, payload_bytes
from deltasense.thresholds import Thresholds, load_thresholds
from edge import metrics, systemd
from edge.localrules import Decisions, WardRules
from edge.relay import (
    DOWNLINK_CHANNELS,
    UPLINK_CHANNELS,
    ack_topic,
    as_replayed,
    channel_of,
    retained,
    triage_command,
)
from edge.settings import EdgeSettings
from edge.siren import Siren
from edge.spool import AppendResult, Incoming, Record, Spool, SpoolStats

_LOG = logging.getLogger("edge")
_T = TypeVar("_T")
PUBLISH_TIMEOUT_S: Final = 30.0  # a PUBACK later than this: the link is dead, reconnect
DELETE_EVERY_S: Final = 0.05
EXPIRE_EVERY_S: Final = 30.0
STATS_EVERY_S: Final = 1.0
PREFETCH: Final = 1000  # records read from the spool per query
RULES_EVERY_S: Final = 1.0  # the local rules' timers (siren max, lease renewals, storm)


def rule_thresholds(settings: EdgeSettings) -> Thresholds:
    """The platform's thresholds (the shipped defaults, the site's file over them);
    raises ThresholdsError naming the file and key."""
    return load_thresholds(settings.thresholds_file)


class Gateway:
    def __init__(
        self,
        settings: EdgeSettings,
        *,
        clock: Callable[[], int] = now_ms,
        pin_factory: Any = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.rules: WardRules | None = None
        if settings.local_rules:
            self.rules = WardRules(
                site=settings.site,
                district=settings.district,
                thresholds=rule_thresholds(settings),
                siren_max_s=settings.siren_max_s,
            )
        self.siren = Siren(
            settings.siren_pin, active_high=settings.siren_active_high, pin_factory=pin_factory
        )
        self.rules_due = asyncio.Event()  # a water reading came: judge now
        self._orders: set[asyncio.Task[None]] = set()  # lamp orders on their way to the ward
        # Every spool call runs on this one thread: SQLite and fsync never block the
        # event loop, and the spool needs no locking.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-spool")
        self.spool = Spool(
            settings.spool_file,
            max_bytes=settings.spool_max_bytes,
            max_age_ms=settings.spool_max_age_s * 1000,
            policy=settings.spool_full_policy,
            clock=clock,
        )
        self.spooled = asyncio.Event()  # the ward side spooled new records
        self.wake = asyncio.Event()  # that, or window space freed
        self.local: aiomqtt.Client | None = None
        self.local_ready = asyncio.Event()
        self.uplink_up = asyncio.Event()
        self._acked: list[int] = []  # PUBACKed, not yet deleted from the spool
        self._stats: SpoolStats = self.spool.stats()
        self.backlog_left = 0
        self._last_db_ok = time.monotonic()
        metrics.SPOOL_MAX_BYTES.set(settings.spool_max_bytes)
        for reason, n in self._stats.dropped.items():
            metrics.DROPPED.labels(reason.value).inc(n)
        metrics.SUPERSEDED.inc(self._stats.superseded)
        for flow in ("live", "backlog"):
            metrics.FORWARDED.labels(flow)
        for outcome in ("relayed", "expired"):
            metrics.COMMANDS.labels(outcome)

    @property
    def base(self) -> str:
        return f"{self.settings.site}/{self.settings.district}"

    async def db(self, call: Callable[..., _T], *args: Any) -> _T:
        result = await asyncio.get_running_loop().run_in_executor(self._db, call, *args)
        self._last_db_ok = time.monotonic()
        return result

    async def run(self) -> None:
        """Until cancelled: both sessions, housekeeping, the watchdog."""
        systemd.notify("READY=1", "STATUS=spool open")
        tasks = [
            run_forever(self._local_session, name="edge local", logger=_LOG, cap_s=5.0),
            run_forever(
                self._uplink_session,
                name="edge uplink",
                logger=_LOG,
                cap_s=self.settings.uplink_retry_max_s,
            ),
            self._housekeeping(),
            self._watchdog(),
            self._local_rules(),
        ]
        try:
            await _first_failure(*tasks)
        finally:
            with contextlib.suppress(Exception):
                await self.db(self.spool.delete, self._take_acked())
            self._db.shutdown(wait=True)
            self.spool.close()
            self.siren.close()

    # --- the ward's side ------------------------------------------------------------------
    async def _local_session(self) -> None:
        s = self.settings
        client = aiomqtt.Client(
            s.local_host,
            s.local_port,
            username=s.local_username,
            password=s.local_password,
            identifier=s.local_identifier,
            clean_session=False,
            keepalive=30,
            protocol=aiomqtt.ProtocolVersion.V311,
            logger=_LOG,
        )
        # PUBACK to the ward broker only after the spool committed (aiomqtt has no
        # manual-ack switch yet, issue #345; ingest does the same).
        client._client.manual_ack_set(True)
        batch: list[Incoming] = []
        acks: list[tuple[int, int]] = []
        lock = asyncio.Lock()

        async def flush() -> None:
            async with lock:
                if not batch:
                    return
                taken, their_acks = batch[:], acks[:]
                batch.clear()
                acks.clear()
                started = time.monotonic()
                result = await self.db(self.spool.append, taken, self._take_acked())
                metrics.COMMIT_SECONDS.observe(time.monotonic() - started)
                for mid, qos in their_acks:
                    client._client.ack(mid, qos)
                metrics.RECEIVED.inc(len(taken))
                self._appended(result)
                self._observe(taken)

        async def flush_periodically() -> None:
            while True:
                await asyncio.sleep(s.batch_wait_s)
                await flush()

        async with client:
            await client.subscribe([(f"{self.base}/+/+/{c}", 1) for c in UPLINK_CHANNELS])
            self.local = client
            self.local_ready.set()
            metrics.LOCAL_UP.set(1)
            _LOG.info("ward broker %s:%d: subscribed to %s", s.local_host, s.local_port, self.base)
            flusher = asyncio.create_task(flush_periodically())
            try:
                async for message in client.messages:
                    topic = message.topic.value
                    batch.append(
                        Incoming(topic, payload_bytes(message.payload), retained(topic), now_ms())
                    )
                    if message.qos > 0:
                        acks.append((message.mid, message.qos))
                    if len(batch) >= s.batch_max:
                        await flush()
            finally:
                self.local = None
                self.local_ready.clear()
                metrics.LOCAL_UP.set(0)
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher

    def _appended(self, result: AppendResult) -> None:
        """Count what an append to the spool dropped (whoever appended: the ward's
        messages, the gateway's own acks and alerts) and wake the pump."""
        for reason, n in result.dropped.items():
            if n:
                metrics.DROPPED.labels(reason.value).inc(n)
                _LOG.warning("spool: dropped %d records (%s)", n, reason.value)
        metrics.SUPERSEDED.inc(result.superseded)
        self.spooled.set()
        self.wake.set()

    # --- local rules ------------------------------------------------------------------------
    def _observe(self, messages: list[Incoming]) -> None:
        rules = self.rules
        if rules is None:
            return
        before = rules.rejected
        for m in messages:
            if rules.observe(m.topic, m.payload, m.received_ms):
                self.rules_due.set()
        if rules.rejected > before:
            metrics.RULES_REJECTED.inc(rules.rejected - before)
            _LOG.info("local rules: ignored a message (%s)", rules.last_error)

    async def _local_rules(self) -> None:
        """Judge the ward after each water reading and every second; act while offline."""
        rules = self.rules
        if rules is None:
            await asyncio.Event().wait()
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.rules_due.wait(), timeout=RULES_EVERY_S)
            self.rules_due.clear()
            offline = not self.uplink_up.is_set()
            try:
                decisions = rules.evaluate(self._clock(), offline=offline)
            except Exception:  # a bug must not stop the spool; the next second tries again
                _LOG.exception("local rules failed")
                continue
            await self._act(decisions)

    async def _act(self, d: Decisions) -> None:
        if self.siren.set(d.siren):
            metrics.SIREN.set(int(d.siren))
            _LOG.warning(
                "siren %s (drains over the critical depth: %s)",
                "on" if d.siren else "off",
                ", ".join(d.flooded) or "none",
            )
        for order in d.lamp_orders:
            # Not awaited here: a ward broker that is away must not hold up the siren.
            task = asyncio.create_task(self._relay(order.topic, order.payload, retain=False))
            self._orders.add(task)
            task.add_done_callback(self._orders.discard)
            metrics.LAMP_ORDERS.inc()
        if d.lamp_orders:
            _LOG.warning("ordered %d lamps to full brightness (offline)", len(d.lamp_orders))
        if d.alerts:
            topic = edge_alert_topic(self.settings.site, self.settings.district)
            now = self._clock()
            records = [Incoming(topic, alerts.encode(e), False, now) for e in d.alerts]
            self._appended(await self.db(self.spool.append, records))
            for e in d.alerts:
                metrics.LOCAL_ALERTS.labels(e.state).inc()
                _LOG.warning(
                    "local alert %s %s %s on %s (%s)", e.id, e.rule, e.state, e.subject, e.severity
                )

    # --- the platform's side --------------------------------------------------------------
    def _uplink_client(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            s.uplink_host,
            s.uplink_port,
            username=s.uplink_user,
            password=s.uplink_password,
            identifier=s.uplink_identifier,
            clean_session=False,
            keepalive=s.uplink_keepalive_s,
            protocol=aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.status_topic, gateway_status.OFFLINE, qos=1, retain=True),
            # 0: paho's own window off.  The pump keeps its own (inflight_max); paho's
            # rescans every queued message at each PUBACK, O(window) per message.
            max_inflight_messages=0,
            tls_context=self._tls(),
            timeout=PUBLISH_TIMEOUT_S,
            logger=_LOG,
        )

    def _tls(self) -> ssl.SSLContext | None:
        """The platform's CA pinned (only it is trusted), the name checked, TLS 1.2+:
        as the platform's own clients (deltasense.mqtt.tls_context)."""
        ca = self.settings.uplink_tls_ca_file
        if ca is None:
            return None
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    @property
    def status_topic(self) -> str:
        return edge_status_topic(self.settings.site, self.settings.district)

    async def _uplink_session(self) -> None:
        client = self._uplink_client()
        client.pending_calls_threshold = self.settings.inflight_max + 10  # a full window is normal
        # Downlink messages are acknowledged once relayed (or answered), not on receipt.
        client._client.manual_ack_set(True)
        # What a previous session got PUBACKs for goes before anything is re-read.
        await self.db(self.spool.delete, self._take_acked())
        async with client:
            await client.subscribe([(f"{self.base}/+/+/{c}", 1) for c in DOWNLINK_CHANNELS])
            watermark = await self.db(self.spool.last_id)
            pump = _Pump(self, client, watermark)
            _LOG.info(
                "uplink %s:%d up as %s; backlog up to record %d",
                self.settings.uplink_host,
                self.settings.uplink_port,
                self.settings.uplink_user,
                watermark,
            )
            self.uplink_up.set()
            metrics.UPLINK_UP.set(1)
            try:
                await self._publish_status(client)
                await _first_failure(
                    pump.run(),
                    self._deleter(),
                    self._downlink(client),
                    self._status_loop(client),
                )
            finally:
                self.uplink_up.clear()
                metrics.UPLINK_UP.set(0)
                await pump.cancel()
                # What was acknowledged leaves the spool now, not at the next session:
                # the spool may fill (and count drops) long before that.
                with contextlib.suppress(Exception):
                    await self.db(self.spool.delete, self._take_acked())

    def _take_acked(self) -> list[int]:
        ids, self._acked = self._acked, []
        return ids

    def acked(self, record_id: int) -> None:
        self._acked.append(record_id)

    async def _deleter(self) -> None:
        while True:
            await asyncio.sleep(DELETE_EVERY_S)
            ids = self._take_acked()
            if ids:
                await self.db(self.spool.delete, ids)

    async def _downlink(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = payload_bytes(message.payload)
            channel = channel_of(topic)
            if channel == Channel.CMD:
                verdict = triage_command(payload, self._clock())
                if verdict.ack is not None:
                    # The answer goes the way of every uplink message: through the spool.
                    ack = Incoming(ack_topic(topic), verdict.ack, False, self._clock())
                    self._appended(await self.db(self.spool.append, [ack]))
                    metrics.COMMANDS.labels("expired").inc()
                    _LOG.info("command on %s expired before it reached the ward", topic)
                else:
                    await self._relay(topic, payload, retain=False)
                    metrics.COMMANDS.labels("relayed").inc()
            elif channel == Channel.CFG:
                await self._relay(topic, payload, retain=True)
                metrics.CONFIGS.inc()
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)

    async def _relay(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """To the ward broker, waiting for it if it is away (it runs on this machine)."""
        while True:
            await self.local_ready.wait()
            local = self.local
            if local is None:
                continue
            try:
                await local.publish(topic, payload, qos=1, retain=retain)
                return
            except aiomqtt.MqttError as exc:
                _LOG.warning("relay to the ward broker failed (%s); retrying", exc)
                await asyncio.sleep(0.5)

    # --- health ---------------------------------------------------------------------------
    def status(self) -> gateway_status.GatewayStatus:
        st = self._stats
        now = self._clock()
        return gateway_status.GatewayStatus(
            state="online",
            ts=now,
            district=self.settings.district,
            interval_s=self.settings.status_interval_s,
            spool_records=st.records,
            spool_bytes=st.bytes,
            spool_max_bytes=self.settings.spool_max_bytes,
            oldest_age_s=None
            if st.oldest_ms is None
            else max(0, round((now - st.oldest_ms) / 1000)),
            backlog_records=self.backlog_left,
            dropped=gateway_status.Dropped(
                **{r.value: n for r, n in st.dropped.items()}  # DropReason values = its fields
            ),
            superseded=st.superseded,
            policy=self.settings.spool_full_policy.value,
        )

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        payload = gateway_status.encode(self.status())
        await client.publish(self.status_topic, payload, qos=1, retain=True)

    async def _status_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            await self._publish_status(client)

    async def _housekeeping(self) -> None:
        last_expire = time.monotonic()
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            if time.monotonic() - last_expire > EXPIRE_EVERY_S:
                last_expire = time.monotonic()
                n = await self.db(self.spool.expire)
                if n:
                    metrics.DROPPED.labels("age").inc(n)
                    _LOG.warning(
                        "spool: dropped %d records older than %d s",
                        n,
                        self.settings.spool_max_age_s,
                    )
            self._stats = st = await self.db(self.spool.stats)
            metrics.SPOOL_RECORDS.set(st.records)
            metrics.SPOOL_BYTES.set(st.bytes)
            metrics.OLDEST_AGE.set(
                0 if st.oldest_ms is None else (self._clock() - st.oldest_ms) / 1000
            )
            metrics.BACKLOG.set(self.backlog_left)

    async def _watchdog(self) -> None:
        """WATCHDOG=1 while the event loop runs and the spool answers: a hung card
        (or thread) stops the pings, and systemd restarts the gateway."""
        interval = systemd.watchdog_interval_s()
        if interval is None:
            await asyncio.Event().wait()  # not under a watchdog: nothing to do, ever
            return
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_db_ok < 2 * interval + STATS_EVERY_S:
                st = self._stats
                systemd.notify(
                    "WATCHDOG=1",
                    f"STATUS=spool {st.records} records, backlog {self.backlog_left}, "
                    f"uplink {'up' if self.uplink_up.is_set() else 'down'}",
                )
            else:
                _LOG.error("spool has not answered for %.0f s: no watchdog ping", interval * 2)


class _Pump:
    """One uplink session's sending: live first, the backlog in the window's rest.

    Records are read from the spool in chunks (one query per ``PREFETCH`` records,
    not one per PUBACK) into two in-memory queues; live is read again whenever the
    ward side has spooled something new."""

    def __init__(self, gateway: Gateway, client: aiomqtt.Client, watermark: int) -> None:
        self.gw = gateway
        self.client = client
        self.watermark = watermark
        self.live_cursor = watermark
        self.backlog_cursor = 0
        self.backlog_read = watermark == 0  # every backlog record is in the queue (or sent)
        self.window = gateway.settings.inflight_max
        self.backlog_window = max(1, int(self.window * gateway.settings.backlog_share))
        self.inflight = {"live": 0, "backlog": 0}
        self.live: deque[Record] = deque()
        self.backlog: deque[Record] = deque()
        self.pending: dict[int, tuple[int, str, float]] = {}  # mid → (record id, flow, sent)
        self._checked = time.monotonic()
        self.failed: BaseException | None = None
        self.started = time.monotonic()
        self.replayed = 0
        self.drained = watermark == 0

    async def run(self) -> None:
        gw = self.gw
        gw.spooled.set()  # read live once at the start
        self.hook()
        while True:
            self.check_overdue()
            if self.failed is not None:
                raise self.failed
            if gw.spooled.is_set():
                gw.spooled.clear()
                fresh = await gw.db(gw.spool.after, self.live_cursor, PREFETCH)
                if fresh:
                    self.live_cursor = fresh[-1].id
                    self.live.extend(fresh)
                    if len(fresh) == PREFETCH:
                        gw.spooled.set()  # more where these came from
            if not self.backlog_read and len(self.backlog) < PREFETCH // 2:
                old = await gw.db(gw.spool.after, self.backlog_cursor, PREFETCH, self.watermark)
                if old:
                    self.backlog_cursor = old[-1].id
                    self.backlog.extend(old)
                else:
                    self.backlog_read = True
            while self.live and self._total() < self.window:
                self._send(self.live.popleft(), backlog=False)
            while (
                self.backlog
                and self._total() < self.window
                and self.inflight["backlog"] < self.backlog_window
            ):
                self._send(self.backlog.popleft(), backlog=True)
            self._note_drain()
            if gw.spooled.is_set() or (not self.backlog_read and len(self.backlog) < PREFETCH // 2):
                continue
            gw.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gw.wake.wait(), timeout=1.0)

    def _total(self) -> int:
        return self.inflight["live"] + self.inflight["backlog"]

    def _note_drain(self) -> None:
        left = len(self.backlog) + self.inflight["backlog"]
        if not self.backlog_read:
            left += max(0, self.watermark - self.backlog_cursor)  # ids, an upper bound
        self.gw.backlog_left = left
        if not self.drained and self.backlog_read and left == 0:
            self.drained = True
            took = time.monotonic() - self.started
            metrics.LAST_DRAIN_SECONDS.set(took)
            metrics.LAST_DRAIN_RECORDS.set(self.replayed)
            _LOG.info(
                "backlog of %d records drained in %.1f s (%.0f records/s)",
                self.replayed,
                took,
                self.replayed / max(took, 1e-3),
            )

    def _send(self, record: Record, *, backlog: bool) -> None:
        """Hand one record to paho and remember it by message id until its PUBACK.

        paho directly, not ``await client.publish()``: aiomqtt's call costs two
        tasks, an event and a timer per message, which at a backlog's rate is most of
        the gateway's CPU on a Pi.  paho's own window is off (the pump keeps one), so it
        never queues anything."""
        flow = "backlog" if backlog else "live"
        if backlog:
            payload = as_replayed(record.topic, record.payload, record.received_ms)
        else:
            payload = record.payload
        info = self.client._client.publish(record.topic, payload, 1, record.retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.failed = aiomqtt.MqttCodeError(info.rc, "could not publish a spooled record")
            return
        self.inflight[flow] += 1
        self.pending[info.mid] = (record.id, flow, time.monotonic())

    def on_puback(self, mid: int) -> bool:
        """A PUBACK for one of ours (paho's callback, on the event loop's thread)."""
        entry = self.pending.pop(mid, None)
        if entry is None:
            return False
        record_id, flow, _ = entry
        self.inflight[flow] -= 1
        self.gw.acked(record_id)
        metrics.FORWARDED.labels(flow).inc()
        if flow == "backlog":
            self.replayed += 1
        self.gw.wake.set()
        return True

    def check_overdue(self) -> None:
        """A PUBACK later than PUBLISH_TIMEOUT_S: the link is dead though TCP says not.
        Looked at once a second: the scan is over the whole window."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        if self.pending:
            oldest = min(sent for _, _, sent in self.pending.values())
            if time.monotonic() - oldest > PUBLISH_TIMEOUT_S:
                self.failed = aiomqtt.MqttError(
                    f"no PUBACK for {len(self.pending)} records in {PUBLISH_TIMEOUT_S:.0f} s"
                )

    def hook(self) -> None:
        """Route paho's on_publish: ours to :meth:`on_puback`, the rest (status
        messages published through aiomqtt) to aiomqtt's own handler."""
        paho_client = self.client._client
        theirs: Any = paho_client.on_publish

        def on_publish(c: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
            if not self.on_puback(mid) and theirs is not None:
                theirs(c, userdata, mid, rc, props)

        paho_client.on_publish = on_publish

    async def cancel(self) -> None:
        self.pending.clear()  # their records stay spooled; the next session re-sends them


async def _first_failure(*coros: Coroutine[Any, Any, None] | Awaitable[None]) -> None:
    """Run ``coros`` together until one ends (with an error, or done); cancel the rest
    and re-raise that one's exception, so ``run_forever`` sees a plain MqttError."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc
    await asyncio.sleep(0)


async def serve(settings: EdgeSettings) -> None:
    await Gateway(settings).run()
