"""The ingest service: one MQTT session at a time, batches into InfluxDB.

At-least-once end to end: messages arrive on a persistent QoS 1 session and are
acknowledged to the broker only after the batch holding their points has been
written.  If ingest dies before that, the broker redelivers them; storage is
idempotent (a reading's timestamp is its identity within its series), so a
redelivery is stored once.

Flow: the broker keeps up to ``ingest_max_unacked`` messages out to ingest
unacknowledged (its ``max_inflight_messages``, set by tools/devstack.py; at
100, nine in ten writes came from the flush timer with a batch a tenth full).  A batch is written when it holds ``ingest_batch_size`` lines or
half the window's messages, or every ``ingest_flush_interval_s``; receiving goes
on while it is written, into the next batch, so writes and MQTT overlap.  While
InfluxDB is down the writer retries with backoff and acknowledges nothing, so the
broker stops at the window and holds the backlog.  (MQTT 5's Receive Maximum
would set the window from the client, but paho decodes MQTT 5 properties on
every PUBLISH: measured 1.3-1.8x ingest's CPU per message.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from dataclasses import dataclass, field
from typing import Final

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from deltasense import health, paho_io, schema
from deltasense.access import INGEST_SHARE_GROUP
from deltasense.contract import Topic
from deltasense.influx import InfluxClient, InfluxRequestError, InfluxUnavailable, influx_client
from deltasense.mqtt import make_client, run_forever
from deltasense.reasons import Reason
from deltasense.runtime import Backoff, now_ms, payload_bytes
from deltasense.settings import Settings
from ingest.metrics import (
    DEADLETTERS,
    FLUSH_MESSAGES,
    FLUSHES,
    LAG_SECONDS,
    MESSAGES,
    READINGS,
    WRITE_RETRIES,
    WRITE_SECONDS,
)
from ingest.pipeline import Pipeline

_LOG = logging.getLogger(__name__)
# Bound once: labels() per message took 3x the time of a bound counter's inc() (timeit).
_STORED: Final = MESSAGES.labels("stored")
_IGNORED: Final = MESSAGES.labels("ignored")
_DEAD: Final = MESSAGES.labels("deadletter")

# A device's registry point (its `last_seen`) is rewritten at most this often, so
# the registry costs one point per device per interval, not one per reading.
REGISTRY_INTERVAL_MS = 30_000


class SubscriptionRefused(RuntimeError):
    """The broker's ACL refused ingest's subscription: a configuration error."""


def _refused(code: int | ReasonCode) -> bool:
    """A SUBACK code of failure (0x80 and up, in MQTT 3.1.1 and 5 alike)."""
    return (code.value if isinstance(code, ReasonCode) else code) >= 0x80


def shared_filter(site: str) -> str:
    """The one subscription several ingest workers share: the broker hands each message
    to one of them.  Each worker has its own persistent session, so what the broker
    had sent a worker that dies stays in its session and is redelivered when the
    supervisor restarts it (docs/RELIABILITY.md, "Scale-out")."""
    return f"$share/{INGEST_SHARE_GROUP}/{site}/#"


def filters(settings: Settings) -> tuple[str, str]:
    """(the filter to hold, the one to drop).  A single worker keeps the plain filter:
    Mosquitto 2.0.11 does not restore a session's shared subscription from its
    persistence file, so after a broker restart readings published before the
    worker resubscribes would match no one (measured, docs/RELIABILITY.md); a plain
    one is restored and matches at once.  The other is dropped, so a session that
    held it before (the worker count changed) does not get every message twice."""
    plain, shared = f"{settings.site}/#", shared_filter(settings.site)
    return (plain, shared) if settings.ingest_workers == 1 else (shared, plain)


@dataclass
class _Batch:
    lines: list[str] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)  # (mid, qos) awaiting PUBACK
    seen: dict[str, tuple[Topic, int]] = field(default_factory=dict)  # device → (topic, ms)
    stamps: list[int] = field(default_factory=list)  # newest live device ts of each message


class Ingest:
    """Wires the pipeline between one MQTT client and one InfluxDB client."""

    def __init__(self, settings: Settings, influx: InfluxClient) -> None:
        self.settings = settings
        self.influx = influx
        self.pipeline = Pipeline(settings.site)
        self._batch = _Batch()
        self._lock = asyncio.Lock()
        self._registered: dict[str, tuple[Topic, int]] = {}  # device → (topic, written at)
        self._due = asyncio.Event()  # the batch is full: write it now, not on the timer
        # Half the window: the next batch fills while this one is written.
        self._flush_at = max(1, settings.ingest_max_unacked // 2)
        self.connected = asyncio.Event()
        # What the health reports say (deltasense/health.py): counters since start, and
        # the worst batch lag since the last report.
        self._started = now_ms()
        self._messages = 0
        self._deadletters = 0
        self._lag_s: float | None = None

    async def run(self) -> None:
        await run_forever(self._session, name="ingest", logger=_LOG)

    async def _session(self) -> None:
        client = make_client(
            self.settings,
            identifier=self.settings.ingest_session_id,
            clean_session=False,
            logger=_LOG,
        )
        # aiomqtt has no manual-ack switch yet (aiomqtt issue #345): reach the paho
        # client so a PUBACK goes out only after the write, not on receipt.
        client._client.manual_ack_set(True)
        # Messages are taken in paho's own callback, in the event loop's read of the
        # socket.  aiomqtt would wrap each in a Message and pass it through an
        # asyncio queue and an iterator: at 5 000 single readings/s that was an eighth
        # of ingest's samples (py-spy), more than decoding them.  Set before
        # connecting: a persistent session's backlog comes right after CONNACK.
        client._client.on_message = self._on_message
        # paho reads a packet in three recv() calls and one per event-loop wake-up;
        # this reads 64 KiB at a time and parses all of it (deltasense/paho_io.py).
        paho_io.buffer_reads(client._client)
        self._fault: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch = _Batch()  # a dead session's acks are void (its lines were written)
        async with client:
            held, dropped = filters(self.settings)
            granted = await client.subscribe(held, qos=1)
            if any(_refused(code) for code in granted):
                # Without it ingest would idle, connected, while the broker queues nothing.
                raise SubscriptionRefused(
                    f"the broker refused {held} to {self.settings.mqtt_username}"
                    " (its ACL: deltasense/access.py)"
                )
            await client.unsubscribe(dropped)
            self.connected.set()
            _LOG.info(
                "ingest worker %d of %d (%s) subscribed to %s on %s:%d",
                self.settings.ingest_worker,
                self.settings.ingest_workers,
                self.settings.ingest_session_id,
                held,
                self.settings.mqtt_host,
                self.settings.mqtt_port,
            )
            flusher = asyncio.create_task(self._flusher(client))
            reporter = asyncio.create_task(self._report_periodically(client))
            watcher = asyncio.create_task(self._until_lost(client))
            try:
                done, _ = await asyncio.wait(
                    (flusher, watcher, self._fault), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()  # the session was lost, or the writer died (a bug)
                raise AssertionError("ingest's session ended without an error")
            except asyncio.CancelledError:
                # Shutting down: write and acknowledge what we hold while connected.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.flush(client), timeout=5)
                raise
            except aiomqtt.MqttError:
                await self._write_orphans()
                raise
            finally:
                self.connected.clear()
                for task in (flusher, reporter, watcher):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _until_lost(self, client: aiomqtt.Client) -> None:
        """Raises aiomqtt.MqttError when the session is lost (what aiomqtt's message
        iterator does).  Messages reach :meth:`_on_message`, not this queue; one that
        came through aiomqtt all the same is taken too."""
        async for message in client.messages:
            self._accept(
                message.topic.value, payload_bytes(message.payload), message.qos, message.mid
            )

    def _on_message(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        try:
            self._accept(message.topic, payload_bytes(message.payload), message.qos, message.mid)
        except Exception as exc:  # a bug (the pipeline never raises on device input)
            # Raised here it would only be logged by the event loop, and the message
            # would stay unacknowledged for good: end the session instead.
            if not self._fault.done():
                self._fault.set_exception(exc)

    def _accept(self, topic: str, payload: bytes, qos: int, mid: int) -> None:
        arrived = now_ms()
        outcome = self.pipeline.handle(topic, payload, arrived)
        batch = self._batch
        batch.lines.extend(outcome.lines)
        self._messages += 1
        if qos > 0:
            batch.acks.append((mid, qos))
        if outcome.newest_ms is not None:
            batch.stamps.append(outcome.newest_ms)
        if outcome.deadletter:
            self._deadletters += 1
            _DEAD.inc()
            DEADLETTERS.labels(outcome.deadletter).inc()
        elif outcome.ignored:
            _IGNORED.inc()
        else:
            _STORED.inc()
            READINGS.inc(outcome.readings)
            if outcome.topic is not None:
                batch.seen[outcome.topic.device] = (outcome.topic, arrived)
        if len(batch.lines) >= self.settings.ingest_batch_size or len(batch.acks) >= self._flush_at:
            self._due.set()

    async def _flusher(self, client: aiomqtt.Client) -> None:
        """Write the batch when it is full, or every flush interval, one write at a
        time (PUBACKs go out in the order the messages came, as MQTT requires)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self.settings.ingest_flush_interval_s)
            trigger = "size" if self._due.is_set() else "timer"
            self._due.clear()
            await self.flush(client, trigger)

    async def _report_periodically(self, client: aiomqtt.Client) -> None:
        topic = health.ingest_topic(self.settings.site, self.settings.ingest_worker)
        while True:
            await asyncio.sleep(self.settings.ingest_health_interval_s)
            report = self.report()
            try:
                await client.publish(topic, health.encode(report), qos=1)
            except aiomqtt.MqttError as exc:  # the session is going; the next one reports
                _LOG.debug("health report not sent: %s", exc)
                return
            if report.lag_s == self._lag_s:
                self._lag_s = None  # reported: the next report covers the batches after it

    def report(self) -> health.IngestReport:
        return health.IngestReport(
            worker=self.settings.ingest_worker,
            started=self._started,
            ts=now_ms(),
            messages=self._messages,
            deadletters=self._deadletters,
            lag_s=self._lag_s,
        )

    def _note_lag(self, stamps: list[int], written_ms: int) -> None:
        """A written batch's lag: the median over its messages, so a few devices with a
        wrong clock do not make it (a backlog makes every message late)."""
        if not stamps:
            return
        lag = (written_ms - statistics.median(stamps)) / 1000.0
        LAG_SECONDS.set(lag)
        self._lag_s = lag if self._lag_s is None else max(self._lag_s, lag)

    async def flush(self, client: aiomqtt.Client, trigger: str = "stop") -> None:
        async with self._lock:
            # Messages keep arriving while we write: they go into a fresh batch.
            batch, self._batch = self._batch, _Batch()
            if not batch.lines and not batch.acks:
                return
            FLUSHES.labels(trigger).inc()
            FLUSH_MESSAGES.observe(len(batch.acks))
            await self._store(batch)
            paho_io.ack_all(client._client, batch.acks)  # one send(), not one a message

    async def _write_orphans(self) -> None:
        """The session is gone, so the PUBACKs of what we hold can no longer be sent
        (the broker redelivers those messages to the next session) — but a broker
        that crashed may have lost them, so the readings are written now, before
        reconnecting.  Storage is idempotent: a redelivery is stored once."""
        async with self._lock:
            batch, self._batch = self._batch, _Batch()
            if not batch.lines:
                return
            await self._store(batch)
        _LOG.warning(
            "MQTT session lost: wrote the %d held lines; their messages will be redelivered",
            len(batch.lines),
        )

    async def _store(self, batch: _Batch) -> None:
        """Write a batch's lines and the registry points it makes due."""
        stamp = now_ms()
        registry = self._registry_due(batch.seen, stamp)
        lines = batch.lines + [
            schema.device_line(topic, seen, stamp * schema.NS_PER_MS)
            for topic, seen in registry.values()
        ]
        # A batch that grew while InfluxDB was down goes out in batch-size writes.
        size = self.settings.ingest_batch_size
        for start in range(0, len(lines), size):
            await self._write(lines[start : start + size])
        self._note_lag(batch.stamps, now_ms())
        for device, (topic, _) in registry.items():
            self._registered[device] = (topic, stamp)

    def _registry_due(
        self, seen: dict[str, tuple[Topic, int]], stamp: int
    ) -> dict[str, tuple[Topic, int]]:
        """Devices whose registry point is new, changed (moved district) or stale."""
        due = {}
        for device, (topic, last_seen) in seen.items():
            known = self._registered.get(device)
            moved = known is not None and (known[0].district, known[0].kind) != (
                topic.district,
                topic.kind,
            )
            if known is None or moved or stamp - known[1] >= REGISTRY_INTERVAL_MS:
                due[device] = (topic, last_seen)
        return due

    async def _write(self, lines: list[str]) -> None:
        backoff = Backoff(0.2, 10.0)
        while True:
            try:
                with WRITE_SECONDS.time():
                    await self.influx.write_lines(lines, precision=schema.INGEST_PRECISION)
                return
            except InfluxUnavailable as exc:
                wait = backoff.next()
                WRITE_RETRIES.inc()
                _LOG.warning(
                    "InfluxDB write failed (%s); retry %d in %.1f s", exc, backoff.attempt, wait
                )
                await asyncio.sleep(wait)
            except InfluxRequestError as exc:
                # Part of the batch was refused (e.g. a field type conflict). Write
                # the lines one by one so only the bad ones become dead letters.
                _LOG.warning("InfluxDB refused part of a batch (%s); writing line by line", exc)
                await self._write_each(lines)
                return

    async def _write_each(self, lines: list[str]) -> None:
        for line in lines:
            try:
                await self.influx.write_lines([line], precision=schema.INGEST_PRECISION)
            except InfluxRequestError as exc:
                DEADLETTERS.labels(Reason.STORE_REJECTED).inc()
                dead = schema.deadletter_line(
                    Reason.STORE_REJECTED,
                    "(ingest)",
                    line.encode(),
                    str(exc),
                    now_ms() * schema.NS_PER_MS,
                )
                with contextlib.suppress(InfluxRequestError):
                    await self.influx.write_lines([dead], precision=schema.INGEST_PRECISION)


async def serve(settings: Settings) -> None:
    """Run ingest until cancelled: wait for InfluxDB, create the database, consume."""
    async with influx_client(settings, logger=_LOG) as influx:
        await influx.wait_ready()
        await influx.create_database()
        await Ingest(settings, influx).run()
