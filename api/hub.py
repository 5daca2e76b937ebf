"""The API's MQTT link: live alert changes fanned out to SSE clients, and publishing.

One background task holds one MQTT connection (reconnecting forever through
:func:`deltasense.mqtt.run_forever`), subscribed to the site's ``_alerts``
subtree and to the devices' command acks (applied to :class:`CommandLog`).  Each stream client gets a bounded queue; a client too slow to keep
up loses its oldest queued events (counted), it never slows anyone else.
Retained deliveries are old state, not changes, so they are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import aiomqtt
import msgspec
from prometheus_client import CollectorRegistry

from api.commandlog import CommandLog
from deltasense import alerts
from deltasense.alerts import AlertEvent
from deltasense.contract import Channel
from deltasense.mqtt import make_client, run_forever
from deltasense.runtime import Metrics, now_ms, payload_bytes
from deltasense.settings import Settings

_LOG = logging.getLogger(__name__)
QUEUE_MAX = 256
PUBLISH_TIMEOUT_S = 10.0


class MqttUnavailable(Exception):
    """The API has no broker connection right now, or the publish was not acknowledged."""


REPLAY_MAX = 1000  # changes kept for stream clients that reconnect with Last-Event-ID


@dataclass(frozen=True)
class Change:
    """One alert change as streamed: ``seq`` counts up within this API process."""

    seq: int
    event: AlertEvent


class AlertHub:
    def __init__(
        self, settings: Settings, *, registry: CollectorRegistry, queue_max: int = QUEUE_MAX
    ) -> None:
        self._settings = settings
        self._queue_max = queue_max
        self._queues: set[asyncio.Queue[Change]] = set()
        # SSE ids are "{epoch}-{seq}": the epoch names this process, so an id from
        # before a restart is recognised as one whose events are gone.
        self.epoch = secrets.token_hex(4)
        self._seq = 0
        self._recent: deque[Change] = deque(maxlen=REPLAY_MAX)
        self._client: aiomqtt.Client | None = None
        self._subscribed = asyncio.Event()
        self.commands = CommandLog()
        metrics = Metrics("api", registry)
        self.dropped = metrics.counter(
            "sse_dropped_events", "Alert events dropped for slow stream clients"
        )
        self.received = metrics.counter(
            "alert_events", "Alert change events received from MQTT", ["outcome"]
        )
        self.clients = metrics.gauge("sse_clients", "Connected alert stream clients")

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    async def wait_connected(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout_s)
        return self.connected

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[Change]]:
        """A queue receiving every alert change while the ``with`` block lasts."""
        queue: asyncio.Queue[Change] = asyncio.Queue(self._queue_max)
        self._queues.add(queue)
        self.clients.set(len(self._queues))
        try:
            yield queue
        finally:
            self._queues.discard(queue)
            self.clients.set(len(self._queues))

    def event_id(self, change: Change) -> str:
        return f"{self.epoch}-{change.seq}"

    def since(self, last_event_id: str) -> list[Change] | None:
        """The changes after ``last_event_id``, oldest first; ``None`` when they cannot
        all be given (another process's id, or older than what is kept): the client
        must reload the state instead."""
        epoch, _, seq_text = last_event_id.partition("-")
        if epoch != self.epoch or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if seq > self._seq:
            return None
        if seq < self._seq and (not self._recent or self._recent[0].seq > seq + 1):
            return None
        return [c for c in self._recent if c.seq > seq]

    def fan_out(self, event: AlertEvent) -> None:
        self._seq += 1
        change = Change(self._seq, event)
        self._recent.append(change)
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # keep the newest state; the oldest is superseded anyway
                self.dropped.inc()
            queue.put_nowait(change)

    def handle(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        if topic.endswith(f"/{Channel.ACK}") and not topic.startswith(f"{self._settings.site}/_"):
            self.commands.answer(topic, payload_bytes(message.payload), now_ms())
            return
        if message.retain:
            self.received.labels("retained").inc()
            return
        payload = payload_bytes(message.payload)
        if payload == b"":  # a retained alert being cleared: no change to report
            self.received.labels("cleared").inc()
            return
        try:
            event = alerts.decode(payload)
        except msgspec.DecodeError as exc:
            self.received.labels("bad").inc()
            _LOG.warning("bad alert event on %s: %s (%.200r)", message.topic, exc, payload)
            return
        self.received.labels("ok").inc()
        self.fan_out(event)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the broker's PUBACK."""
        client = self._client
        if client is None or not self.connected:
            raise MqttUnavailable("not connected to the MQTT broker")
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=PUBLISH_TIMEOUT_S)
        except aiomqtt.MqttError as exc:
            raise MqttUnavailable(f"publish to {topic} failed: {exc}") from exc

    async def _session(self) -> None:
        identifier = f"deltasense-api-{secrets.token_hex(4)}"
        try:
            async with make_client(
                self._settings, identifier=identifier, clean_session=True, logger=_LOG
            ) as client:
                self._client = client
                await client.subscribe(alerts.alerts_filter(self._settings.site), qos=1)
                # Devices' answers to commands (the console shows acked/failed).
                await client.subscribe(f"{self._settings.site}/+/+/+/{Channel.ACK}", qos=1)
                self._subscribed.set()
                _LOG.info("subscribed to %s", alerts.alerts_filter(self._settings.site))
                async for message in client.messages:
                    self.handle(message)
        finally:
            self._subscribed.clear()
            self._client = None

    async def run(self) -> None:
        """Run until cancelled."""
        await run_forever(self._session, name="api-alerts", logger=_LOG)
