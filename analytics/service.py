"""The analytics service: MQTT readings → windows → rules → alert events (MQTT + InfluxDB).

Start-up: wait for InfluxDB (bounded), adopt the alerts a previous run left
open (so a restart raises nothing twice) and refill the windows from the
window span of stored readings (every kind; hourly counters over 48 h).  Then
one persistent MQTT session (stable client id, QoS 1) receives
``{site}/+/+/+/tele``, every device's retained ``meta`` and ``status``, and
``{site}/_alerts/#`` (its own events, retained: the latest state of each) and
``{site}/_acks/+`` (operators' acks from the API and the notifier, applied to
the event it knows and republished on ``_alerts``, where it is the only
publisher).  Platform health (ingest's reports, the broker's ``$SYS`` counters)
comes on a second, clean connection of partition 0, so it never waits behind a
telemetry backlog; rules run every ``analytics_tick_s`` and after a batch of
water readings: at once, unless the last evaluation is less than
``analytics_eval_gap_s`` old (then when it is, or after ``EVAL_EVERY_MESSAGES``
messages, whichever comes first).  Decoded telemetry waits out of the windows
until the next evaluation (``take``/``flush``), so their NumPy inserts cost once
per evaluation, not once per MQTT wake-up.  Lamps the
engine orders to full brightness (storm or flood) get a contract ``cmd``
``set_dim`` 100, recorded in the schema's ``commands`` measurement.  Every alert change goes through
two bounded outboxes, one per sink, so a broker or database outage delays
events instead of losing them; MQTT events are retained, QoS 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import statistics
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar

import aiomqtt
import msgspec

from analytics import metrics
from analytics.engine import CommandRequest, Engine
from analytics.partition import Partition
from analytics.ruleset import GATEWAY_RULES, PLATFORM_RULES
from analytics.stored import readings_from_series
from analytics.thresholds import load_thresholds
from deltasense import alerts, gateway_status, health, paho_io, schema
from deltasense.contract import (
    UNSET,
    Channel,
    Command,
    ContractError,
    Kind,
    Reading,
    decode_meta,
    decode_status,
    decode_tele,
    device_topic,
    edge_alerts_filter,
    edge_district_of,
    parse_topic,
)
from deltasense.influx import (
    InfluxClient,
    InfluxError,
    InfluxRequestError,
    InfluxUnavailable,
    influx_client,
    quote_ident,
    quote_string,
)
from deltasense.lineprotocol import LineProtocolError
from deltasense.mqtt import make_client, received, run_forever
from deltasense.runtime import Backoff, now_ms, payload_bytes, retry, start_metrics_server
from deltasense.settings import Settings
from deltasense.thresholds import Thresholds

_LOG = logging.getLogger(__name__)
# ``now_ms`` is called through this module's name, so the live backtest can swap in its clock.
_T = TypeVar("_T")

OUTBOX_MAX: Final = 10_000
HOURLY_SPAN_MS: Final = 48 * 3_600_000
COMMAND_TTL_MS: Final = 15 * 60_000
EVAL_EVERY_MESSAGES: Final = 500  # evaluate at least this often under a steady stream
# Telemetry held out of the windows until the next evaluation, at most (``take``):
# a stream of non-water kinds is evaluated only every analytics_tick_s.
HOLD_MAX_READINGS: Final = 5_000
INFLUX_BATCH: Final = 500
STARTUP_ATTEMPTS: Final = 5
PAYLOAD_LOG_MAX: Final = 200


def client_id(settings: Settings) -> str:
    """Partition 0 keeps the single analytics' id (its session survives an upgrade)."""
    base = f"deltasense-analytics-{settings.site}"
    return base if settings.analytics_partition == 0 else f"{base}-{settings.analytics_partition}"


def partition_of(settings: Settings) -> Partition:
    return Partition(settings.analytics_partition, settings.analytics_partitions)


def tele_filter(site: str) -> str:
    return f"{site}/+/+/+/{Channel.TELE}"


def meta_filter(site: str) -> str:
    """Every device's retained birth record: position (sun), interval (offline), station."""
    return f"{site}/+/+/+/{Channel.META}"


def status_filter(site: str) -> str:
    """Every device's retained status; the Last Will says ``offline``."""
    return f"{site}/+/+/+/{Channel.STATUS}"


# --- start-up from InfluxDB --------------------------------------------------------------
# Every name in these queries is a schema constant or a Kind value, quoted; values are
# bound parameters (hence the S608 waivers).
_q = quote_ident
_BY_DEVICE: Final = f"GROUP BY {_q(schema.DEVICE)}, {_q(schema.DISTRICT)}"
_IN_SPAN: Final = f"WHERE {_q(schema.SITE)} = $site AND time > $since AND time <= $until"


def _last(field_name: str) -> str:
    return f"last({_q(field_name)}) AS {_q(field_name)}"


RESTORE_QUERY: Final = (
    f"SELECT {_last(schema.BODY)} FROM {_q(schema.ALERTS)} GROUP BY {_q(schema.ID)}"  # noqa: S608
)
STATIONS_QUERY: Final = (
    f"SELECT {_last(schema.STATION)} FROM {_q(schema.META)} WHERE {_q(schema.SITE)} = $site "  # noqa: S608
    f"AND {_q(schema.KIND)} = {quote_string(Kind.WATER.value)} {_BY_DEVICE}"
)
# The minute windows are refilled this much at a time, so a city's six hours never
# arrive as one answer (100 000 sensors × 6 h of 1-min readings is 36 M rows).
REFILL_CHUNK_MS: Final = 20 * 60_000
REFILL_AHEAD_MS: Final = 24 * 3_600_000  # the last chunk also takes stamps a bit ahead
HOURLY_COUNTERS: Final = ((Kind.WEATHER, "rain_mm_total"), (Kind.METER, "energy_wh_total"))
META_QUERY: Final = (
    f"SELECT {_last(schema.LAT)}, {_last(schema.LON)}, {_last(schema.INTERVAL_S)} "  # noqa: S608
    f"FROM {_q(schema.META)} WHERE {_q(schema.SITE)} = $site "
    f"{_BY_DEVICE}, {_q(schema.KIND)}"
)


def kind_refill_query(kind: Kind) -> str:
    """A span of one kind's stored readings, every field, by device."""
    return f"SELECT * FROM {_q(kind.value)} {_IN_SPAN} {_BY_DEVICE}"  # noqa: S608


def hourly_refill_query(kind: Kind, counter: str) -> str:
    """Hourly counters for the 48 h windows: the last counter reading (and its boot) per hour."""
    return (
        f"SELECT {_last(counter)}, {_last(schema.BOOT)} FROM {_q(kind.value)} {_IN_SPAN} "  # noqa: S608
        f"GROUP BY time(1h), {_q(schema.DEVICE)}, {_q(schema.DISTRICT)}"
    )


def open_alerts_from_rows(bodies: Iterable[Any]) -> list[alerts.AlertEvent]:
    """Decode stored alert bodies, keeping those still open (firing or pending)."""
    events = (schema.alert_from_body(body) for body in bodies)
    return [e for e in events if e is not None and e.state in ("firing", "pending")]


async def restore_alerts(db: InfluxClient, engine: Engine) -> int:
    series = await db.query(RESTORE_QUERY)
    bodies = (row.get(schema.BODY) for s in series for row in s.rows())
    adopted = engine.restore(open_alerts_from_rows(bodies))
    metrics.ALERTS_OPEN.set(len(engine.open_alerts()))
    return adopted


async def refill_stations(db: InfluxClient, engine: Engine, site: str) -> int:
    """Water stations' mounting from their stored meta, so canal stations are known
    before the first reading (the retained meta arrives again on subscribe)."""
    found = 0
    for s in await db.query(STATIONS_QUERY, params={"site": site}):
        device, district = s.tags.get(schema.DEVICE, ""), s.tags.get(schema.DISTRICT, "")
        for row in s.rows():
            if not engine.partition.wants(Kind.WATER, district):
                continue
            if device and isinstance(row.get(schema.STATION), str):
                engine.set_station(device, district, row[schema.STATION])
                found += 1
    return found


def refill_chunks(since_ms: int, at_ms: int) -> list[tuple[int, int]]:
    """``(after, up to and including)`` spans covering ``(since_ms, at_ms]`` in
    ``REFILL_CHUNK_MS`` steps, oldest first; the last reaches ``REFILL_AHEAD_MS`` past
    ``at_ms`` for readings stamped slightly ahead."""
    bounds = [*list(range(since_ms, at_ms, REFILL_CHUNK_MS)), at_ms]
    spans = list(itertools.pairwise(bounds))
    if not spans:
        spans = [(since_ms, at_ms)]
    last_since, _ = spans[-1]
    spans[-1] = (last_since, at_ms + REFILL_AHEAD_MS)
    return spans


def batch_lag_s(stamps: list[int], at_ms: int) -> float | None:
    """How far behind its readings analytics is, over one batch taken in at ``at_ms``:
    the median over its messages of (``at_ms`` − the message's newest live, device-
    stamped ts), as ingest measures its own lag, so a few devices with a wrong clock
    do not make it (a backlog makes every message late).  None for no such message."""
    if not stamps:
        return None
    return (at_ms - statistics.median(stamps)) / 1000.0


def _mine(engine: Engine, readings: Iterable[Reading]) -> list[Reading]:
    """Readings this engine's partition takes, in time order."""
    wants = engine.partition.wants
    return sorted((r for r in readings if wants(r.kind, r.district)), key=lambda r: r.ts_ms)


async def refill_all(db: InfluxClient, engine: Engine, site: str, at_ms: int) -> int:
    """Every kind's windows from stored readings: hourly counters over 48 h first
    (so the counters' boots come in time order), then the minute windows' span.
    Replayed readings do not count for clock skew."""
    total = 0
    hourly_since = (at_ms - HOURLY_SPAN_MS) * 1_000_000
    for kind, field_name in HOURLY_COUNTERS:
        q = hourly_refill_query(kind, field_name)
        series = await db.query(
            q, params={"site": site, "since": hourly_since, "until": at_ms * 1_000_000}
        )
        readings = _mine(engine, readings_from_series(kind, series, site, as_history=True))
        total += engine.ingest(readings, replay=True).values
    for kind in Kind:
        q = kind_refill_query(kind)
        for since_ms, until_ms in refill_chunks(at_ms - engine.window_span_ms(kind), at_ms):
            params = {"site": site, "since": since_ms * 1_000_000, "until": until_ms * 1_000_000}
            series = await db.query(q, params=params)
            readings = _mine(engine, readings_from_series(kind, series, site, as_history=True))
            total += engine.ingest(readings, replay=True).values
    await refill_meta(db, engine, site)
    return total


async def refill_meta(db: InfluxClient, engine: Engine, site: str) -> None:
    """Every device's stored meta (position, reporting interval) into the engine."""
    for s in await db.query(META_QUERY, params={"site": site}):
        device, district, kind_name = (
            s.tags.get(k, "") for k in (schema.DEVICE, schema.DISTRICT, schema.KIND)
        )
        if not device or kind_name not in {k.value for k in Kind}:
            continue
        if not engine.partition.wants(Kind(kind_name), district):
            continue
        for row in s.rows():
            lat, lon = row.get(schema.LAT), row.get(schema.LON)
            interval = row.get(schema.INTERVAL_S)
            engine.set_meta(
                device,
                district,
                Kind(kind_name),
                lat=float(lat) if isinstance(lat, int | float) else None,
                lon=float(lon) if isinstance(lon, int | float) else None,
                interval_s=float(interval) if isinstance(interval, int | float) else None,
            )


async def _retrying(what: str, call: Callable[[], Awaitable[_T]]) -> _T:
    """A start-up query, retried a few times while InfluxDB is unavailable."""
    return await retry(
        call,
        what=what,
        retry_on=InfluxUnavailable,
        attempts=STARTUP_ATTEMPTS,
        backoff=Backoff(0.5, 30.0, jitter=False),
        log=_LOG,
    )


# --- the running service -----------------------------------------------------------------
class AnalyticsService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        db: InfluxClient,
        *,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self._ready = ready  # set once subscribed (tests and supervisors wait on it)
        # Which of the two connections have subscribed (the platform one only on the
        # partition that owns the city): ``ready`` waits for both.
        self._subscribed = {"telemetry": False, "platform": not engine.partition.owns_city}
        self.engine = engine
        self.db = db
        # Alert events (retained) and commands as (topic, payload) (not retained).
        self._mqtt_outbox: deque[alerts.AlertEvent | tuple[str, bytes]] = deque()
        self._influx_outbox: deque[str] = deque()
        self._mqtt_wake = asyncio.Event()
        self._influx_wake = asyncio.Event()
        self._dropped_old_seen = 0
        # Evaluations water readings ask for: due at once unless the last one was less
        # than analytics_eval_gap_s ago; then the _evaluate_soon task runs it.
        self._last_eval = -float("inf")  # time.monotonic() of the last evaluation
        self._since_eval = 0  # messages taken in since then
        self._eval_soon = asyncio.Event()
        self._open_ids = {event.id for event in engine.open_alerts()}  # tells raised from updated
        # The latest event seen on each alert topic (ours, retained ones included):
        # what an ack is applied to.  Bounded by the (rule, subject) pairs.
        self._latest: dict[str, alerts.AlertEvent] = {}
        self.bad_messages = 0
        # The platform's own subtrees ({site}/_alerts, _acks, _health: no device
        # district starts with "_") and the broker's: never telemetry.
        self._platform_prefixes = (f"{settings.site}/_", "$SYS/")
        # Decoded telemetry not yet in the windows (``take``/``flush``): per kind, the
        # readings and each one's arrival time.
        self._held: dict[Kind, tuple[list[Reading], list[int]]] = {}

    async def run(self) -> None:
        # An evaluation before the first message: alerts that should resolve or fire
        # given the refilled windows do so now.
        self.evaluate()
        tasks = [
            asyncio.create_task(run_forever(self._session, name="analytics", logger=_LOG)),
            asyncio.create_task(self._ticker()),
            asyncio.create_task(self._evaluate_soon()),
            asyncio.create_task(self._influx_writer()),
        ]
        if self.engine.partition.owns_city:
            platform = run_forever(self._platform_session, name="analytics platform", logger=_LOG)
            tasks.append(asyncio.create_task(platform))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a crashed task is a bug: let it surface
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._flush_influx_once()  # best effort on the way out

    # --- evaluation ----------------------------------------------------------------------
    def evaluate(self) -> None:
        started = time.perf_counter()
        self.flush()
        self._last_eval, self._since_eval = time.monotonic(), 0
        self._eval_soon.clear()
        events = self.engine.evaluate(now_ms())
        metrics.EVAL_SECONDS.observe(time.perf_counter() - started)
        dropped = self.engine.water.dropped_old
        if dropped > self._dropped_old_seen:
            metrics.DROPPED_OLD.inc(dropped - self._dropped_old_seen)
            self._dropped_old_seen = dropped
        if events:
            self._emit(events)
        for rule in (*PLATFORM_RULES, *GATEWAY_RULES):
            metrics.PLATFORM_ALERTS.labels(rule.name).set(self.engine.firing(rule.name))
        commands = self.engine.take_commands()
        if commands:
            self._send_commands(commands)

    def _send_commands(self, commands: list[CommandRequest]) -> None:
        """Orders from the engine as contract ``cmd`` messages (QoS 1), each recorded
        in InfluxDB (the broker keeps no history of commands)."""
        at = now_ms()
        for request in commands:
            command = Command(
                id=uuid.uuid4().hex,
                name=request.name,
                args=request.args,
                expires=at + COMMAND_TTL_MS,
            )
            try:
                topic = device_topic(
                    self.settings.site, request.district, request.kind, request.device, Channel.CMD
                )
                line = schema.command_line(
                    self.settings.site,
                    request.district,
                    request.device,
                    command,
                    reason=request.reason,
                    source="analytics",
                    ts=at,
                )
            except (ContractError, LineProtocolError) as exc:  # pragma: no cover - ids are ours
                _LOG.error("command for %s not sendable: %s", request.device, exc)
                continue
            self._push(self._mqtt_outbox, (topic, msgspec.json.encode(command)), "mqtt")
            self._push(self._influx_outbox, line, "influx")
            _LOG.info(
                "ordered %s %s on %s (alert %s)", command.name, command.args, topic, request.reason
            )
        self._mqtt_wake.set()
        self._influx_wake.set()

    def _emit(self, events: list[alerts.AlertEvent]) -> None:
        for event in events:
            if event.state == "resolved":
                self._open_ids.discard(event.id)
                metrics.ALERTS_RESOLVED.labels(event.rule).inc()
                _LOG.info("alert %s resolved: %s", event.id, event.message.en)
            elif event.id not in self._open_ids:
                self._open_ids.add(event.id)
                metrics.ALERTS_RAISED.labels(event.rule).inc()
                _LOG.info("alert %s firing: %s", event.id, event.message.en)
            else:
                metrics.ALERTS_UPDATED.labels(event.rule).inc()
                _LOG.info("alert %s updated: %s", event.id, event.message.en)
            try:
                line = schema.alert_line(event)
            except LineProtocolError as exc:  # pragma: no cover - ids and tags are ours
                _LOG.error("alert %s cannot be stored: %s", event.id, exc)
            else:
                self._push(self._influx_outbox, line, "influx")
            self._push(self._mqtt_outbox, event, "mqtt")
            with contextlib.suppress(ValueError):  # no valid topic: logged when published
                self._latest[alerts.alert_topic(self.settings.site, event)] = event
        metrics.ALERTS_OPEN.set(len(self.engine.open_alerts()))
        self._mqtt_wake.set()
        self._influx_wake.set()

    @staticmethod
    def _push(outbox: deque[Any], item: Any, sink: str) -> None:
        if len(outbox) >= OUTBOX_MAX:
            outbox.popleft()
            metrics.OUTBOX_DROPPED.labels(sink).inc()
            _LOG.error("%s outbox full; oldest alert event dropped", sink)
        outbox.append(item)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.analytics_tick_s)
            self.evaluate()

    def _water_arrived(self, messages: int) -> None:
        """``messages`` taken in, some with water readings: evaluate now, or soon."""
        self._since_eval += messages
        gap = self.settings.analytics_eval_gap_s
        if self._since_eval >= EVAL_EVERY_MESSAGES or time.monotonic() - self._last_eval >= gap:
            self.evaluate()
        else:
            self._eval_soon.set()

    async def _evaluate_soon(self) -> None:
        while True:
            await self._eval_soon.wait()
            gap = self.settings.analytics_eval_gap_s
            await asyncio.sleep(max(0.0, self._last_eval + gap - time.monotonic()))
            if self._eval_soon.is_set():  # not done meanwhile by the ticker or a backlog
                self.evaluate()

    # --- MQTT ------------------------------------------------------------------------------
    async def _session(self) -> None:
        site = self.settings.site
        client = make_client(
            self.settings, identifier=client_id(self.settings), clean_session=False, logger=_LOG
        )
        # Every reading of the partition's districts comes on this connection: read it
        # 64 KiB at a time and parse all of it in one wake-up, as ingest does
        # (deltasense/paho_io.py); the platform connection carries a few messages.
        paho_io.buffer_reads(client._client)
        async with client:
            partition = self.engine.partition
            for device_filter in partition.filters(site, self.settings.analytics_districts):
                await client.subscribe(device_filter, qos=1)
            await client.subscribe(alerts.alerts_filter(site), qos=1)
            await client.subscribe(alerts.acks_filter(site), qos=1)
            # Every district gateway's status (retained); each partition raises only
            # its own districts' gateway alerts (the engine's ownership mask).
            await client.subscribe(gateway_status.status_filter(site), qos=1)
            # ... and the alerts they raised while their uplink was down (adopted once).
            await client.subscribe(edge_alerts_filter(site), qos=1)
            _raise_if_cancelling()
            _LOG.info(
                "analytics partition %d of %d subscribed to %s and %s",
                partition.index,
                partition.count,
                ", ".join(partition.filters(site, self.settings.analytics_districts)[:3]),
                alerts.alerts_filter(site),
            )
            self._mark_subscribed("telemetry")
            publisher = asyncio.create_task(self._publisher(client))
            try:
                await self._consume(client)
            finally:
                publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publisher

    def _mark_subscribed(self, connection: str) -> None:
        self._subscribed[connection] = True
        if self._ready is not None and all(self._subscribed.values()):
            self._ready.set()

    async def _platform_session(self) -> None:
        """Platform health (partition 0 owns it) on a connection of its own: ingest's
        reports and the broker's counters.  On the telemetry session they would
        wait behind its whole backlog, in order — and a burst that makes the broker
        drop is exactly when that backlog is long: under a loaded full test run,
        analytics was still minutes of readings behind when the one QoS 0 publish of
        the dropped count would have reached it, and broker-queue-drop never fired;
        ingest's reports came late enough to look like silence.  This connection
        carries a few messages per ``sys_interval``, so they arrive when sent.
        Clean session: the counters are retained and the reports cumulative, so
        what it missed while down is read again on connect."""
        site = self.settings.site
        async with make_client(
            self.settings,
            identifier=f"{client_id(self.settings)}-platform",
            clean_session=True,
            logger=_LOG,
        ) as client:
            await client.subscribe(health.health_filter(site), qos=1)
            for topic in health.BROKER_TOPICS:
                await client.subscribe(topic, qos=0)  # retained: the current value at once
            self.engine.platform.counters_subscribed(now_ms())
            _raise_if_cancelling()
            self._mark_subscribed("platform")
            async for message in client.messages:
                self._handle_health(str(message.topic), payload_bytes(message.payload))

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for first in client.messages:
            # Everything already received is taken as one batch, then an evaluation if
            # it held water (now, or when the evaluation gap has passed); the windows'
            # inserts wait for that evaluation (take/flush).
            batch = [first, *received(client)]
            for start in range(0, len(batch), EVAL_EVERY_MESSAGES):
                chunk = batch[start : start + EVAL_EVERY_MESSAGES]
                water = self.take((str(m.topic), payload_bytes(m.payload)) for m in chunk)
                if water:
                    self._water_arrived(len(chunk))
                else:
                    self._since_eval += len(chunk)
                # A backlog is worked through in chunks, not in one stretch: the
                # platform connection, the ticker and the publisher run in between.
                await asyncio.sleep(0)

    async def _publisher(self, client: aiomqtt.Client) -> None:
        site = self.settings.site
        backoff = Backoff(0.2, 5.0, jitter=False)
        while True:
            await self._mqtt_wake.wait()
            self._mqtt_wake.clear()
            while self._mqtt_outbox:
                item = self._mqtt_outbox[0]
                if isinstance(item, tuple):
                    topic, payload, retain, what = item[0], item[1], False, "command"
                else:
                    try:
                        topic = alerts.alert_topic(site, item)
                    except ValueError as exc:  # pragma: no cover - subjects are identifiers
                        _LOG.error("alert %s has no valid topic: %s", item.id, exc)
                        self._mqtt_outbox.popleft()
                        continue
                    payload, retain, what = alerts.encode(item), True, item.id
                try:
                    await client.publish(topic, payload, qos=1, retain=retain)
                except aiomqtt.MqttError as exc:
                    # Kept in the outbox and tried again.  A PUBACK that did not come
                    # in time (it queues behind a long inbound backlog) is no lost
                    # session: returning here left every later alert unpublished
                    # until the next session (docs/BENCHMARKS.md, "Publish → alert
                    # on SSE").  A session that is gone ends _consume, which cancels
                    # this task; the next session publishes what is left.
                    _LOG.warning("publishing %s failed (%s); trying again", what, exc)
                    await asyncio.sleep(backoff.next())
                    continue
                backoff.reset()
                self._mqtt_outbox.popleft()
                _raise_if_cancelling()

    def handle(self, topic: str, payload: bytes) -> int:
        """One MQTT message; returns how many water readings it carried. Never raises
        for bad input: bad messages are counted, logged at debug level and skipped."""
        return self.handle_many([(topic, payload)])

    def handle_many(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """MQTT messages in arrival order, all in the engine on return; returns how
        many water readings they carried (``take`` then ``flush``)."""
        water = self.take(messages)
        self.flush()
        return water

    def take(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """MQTT messages in arrival order; returns how many water readings they carried.

        Telemetry is decoded message by message (each is validated on its own) and
        held until the next ``flush``: every evaluation flushes first, and so does
        any other message (status, meta, alerts, health) before it is applied, so the
        order of state changes is kept.  The windows' NumPy work then costs once per
        evaluation, not once per MQTT wake-up: at 2 000 msg/s a wake-up hands over
        about four messages, and inserting each such handful cost more CPU than
        decoding it (docs/BENCHMARKS.md, "Analytics: telemetry into the windows").
        """
        arrival = now_ms()
        water = 0
        stamps: list[int] = []  # each telemetry message's newest live device ts
        for topic, payload in messages:
            readings = self._telemetry(topic, payload, arrival)
            if readings is None:
                self.flush()
                self._handle_other(topic, payload)
            elif readings:
                held, arrivals = self._held.setdefault(readings[0].kind, ([], []))
                held.extend(readings)
                arrivals.extend([arrival] * len(readings))
                # Counted as taken in, not when flushed: the counter says how far
                # analytics has read the stream (bench/alert_e2e.py waits on it).
                metrics.READINGS.labels(readings[0].kind.value).inc(len(readings))
                if readings[0].kind is Kind.WATER:
                    water += len(readings)
                live = [r.ts_ms for r in readings if not (r.ts_from_platform or r.hist)]
                if live:
                    stamps.append(max(live))
                if sum(len(kept) for kept, _ in self._held.values()) >= HOLD_MAX_READINGS:
                    self.flush()
        lag = batch_lag_s(stamps, arrival)
        if lag is not None:
            metrics.LAG_SECONDS.set(lag)
        return water

    def flush(self) -> None:
        """The telemetry ``take`` holds into the windows, one engine call per kind."""
        for readings, arrivals in self._held.values():
            stats = self.engine.ingest(readings, arrival_ms=arrivals)
            if stats.qc_flagged:
                metrics.QC_FLAGGED.inc(stats.qc_flagged)
        self._held.clear()

    def _telemetry(self, topic: str, payload: bytes, arrival: int) -> list[Reading] | None:
        """A ``tele`` message's readings ([] if bad or of a kind analytics does not
        watch); None for any other message."""
        if not topic.endswith("/tele") or topic.startswith(self._platform_prefixes):
            return None
        try:
            parsed = parse_topic(topic)
            if parsed.kind not in self.engine.kinds:
                return []
            if not self.engine.partition.wants(parsed.kind, parsed.district):
                return []  # another partition's district (a whole-site subscription)
            return decode_tele(parsed, payload, arrival)
        except ContractError as exc:
            self._bad(exc.reason, topic, payload, exc.detail)
            return []

    def _handle_other(self, topic: str, payload: bytes) -> None:
        if topic.startswith(f"{self.settings.site}/_alerts/"):
            self._handle_alert(topic, payload)
            return
        if alerts.is_ack_topic(self.settings.site, topic):
            self._handle_ack(topic, payload)
            return
        if topic.startswith(("$SYS/", f"{self.settings.site}/{health.HEALTH_DISTRICT}/")):
            self._handle_health(topic, payload)
            return
        gateway = gateway_status.district_of(self.settings.site, topic)
        if gateway is not None:
            self._handle_gateway(gateway, topic, payload)
            return
        gateway = edge_district_of(self.settings.site, topic)
        if gateway is not None:
            self._handle_edge_alert(gateway, topic, payload)
            return
        try:
            parsed = parse_topic(topic)
            if parsed.kind not in self.engine.kinds:
                return
            if not self.engine.partition.wants(parsed.kind, parsed.district):
                return  # another partition's district (a whole-site subscription)
            if parsed.channel is Channel.META:
                meta = decode_meta(payload)
                self.engine.set_meta(
                    parsed.device,
                    parsed.district,
                    parsed.kind,
                    lat=None if meta.lat is UNSET else meta.lat,
                    lon=None if meta.lon is UNSET else meta.lon,
                    interval_s=None if meta.interval_s is UNSET else meta.interval_s,
                    station=None if meta.station is UNSET else meta.station,
                )
                return
            if parsed.channel is Channel.STATUS:
                status = decode_status(payload)
                # A goodbye the device sent itself carries its ts; the Last Will does not.
                self.engine.set_status(
                    parsed.device,
                    parsed.district,
                    parsed.kind,
                    status.state,
                    planned=status.ts is not UNSET,
                )
                return
        except ContractError as exc:
            self._bad(exc.reason, topic, payload, exc.detail)

    def _handle_health(self, topic: str, payload: bytes) -> None:
        """The broker's counters and ingest's reports into the platform state (and the
        metrics that mirror them)."""
        platform, at = self.engine.platform, now_ms()
        try:
            if topic == health.BROKER_DROPPED_TOPIC:
                platform.broker_dropped(at, health.broker_counter(payload))
                metrics.BROKER_DROPPED.set(platform.broker_dropped_total or 0)
            elif topic == health.BROKER_STORED_TOPIC:
                platform.broker_stored = health.broker_counter(payload)
                metrics.BROKER_STORED.set(platform.broker_stored)
            else:
                report = health.decode(payload)
                platform.ingest_report(at, report)
                if report.lag_s is not None:
                    metrics.INGEST_LAG.labels(str(report.worker)).set(report.lag_s)
                metrics.INGEST_DEADLETTERS.labels(str(report.worker)).set(report.deadletters)
        except health.HealthError as exc:
            self._bad("bad_health", topic, payload, str(exc))

    def _handle_edge_alert(self, district: str, topic: str, payload: bytes) -> None:
        """An alert a district gateway raised offline: adopted, or dropped as one the
        platform has already (engine.adopt_edge_alert)."""
        try:
            event = alerts.decode(payload)
            outcome, events = self.engine.adopt_edge_alert(district, event)
        except (msgspec.DecodeError, ValueError) as exc:
            metrics.EDGE_ALERTS.labels("refused").inc()
            self._bad("bad_edge_alert", topic, payload, str(exc))
            return
        metrics.EDGE_ALERTS.labels(outcome).inc()
        _LOG.info(
            "edge alert %s of %s (%s %s): %s", event.id, district, event.rule, event.state, outcome
        )
        if events:
            self._emit(events)

    def _handle_gateway(self, district: str, topic: str, payload: bytes) -> None:
        """A district edge gateway's status into the gateway state; an empty retained
        message (the topic cleared) retires the gateway."""
        if not payload:
            self.engine.gateways.retire(district)
            _LOG.info("edge gateway of %s retired (its status was cleared)", district)
            return
        try:
            status = gateway_status.decode(payload, district)
        except gateway_status.GatewayStatusError as exc:
            self._bad("bad_gateway_status", topic, payload, str(exc))
            return
        self.engine.gateways.status(now_ms(), district, status)
        metrics.EDGE_ONLINE.labels(district).set(1 if status.state == "online" else 0)
        if status.state == "online":
            age = status.oldest_age_s
            metrics.EDGE_OLDEST_AGE.labels(district).set(0 if age is None else age)
            if status.dropped is not None:
                metrics.EDGE_DROPPED.labels(district).set(status.dropped.total)

    def _handle_alert(self, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained topic
        try:
            event = alerts.decode(payload)
        except msgspec.DecodeError as exc:
            self._bad("bad_alert", topic, payload, str(exc))
            return
        known = self._latest.get(topic)
        if known is None or event.updated >= known.updated:
            self._latest[topic] = event
        self.engine.note_alert(event)  # the city's storm risk, from partition 0
        # Only analytics publishes here now; an ack on a retained event is one
        # acknowledged before acks had their own topic (the old path), kept.
        if self.engine.apply_ack(event):
            metrics.ACKS.inc()
            _LOG.info("alert %s acknowledged by %s", event.id, event.ack.by if event.ack else "?")

    def _handle_ack(self, topic: str, payload: bytes) -> None:
        """An operator's ack: only its ``ack`` is taken, applied to the event this
        service knows under the same id, and that event is republished (retained)
        and stored, so the acker cannot change what the alert says."""
        try:
            claimed = alerts.decode_ack(self.settings.site, topic, payload)
            alert_topic = alerts.alert_topic(self.settings.site, claimed)
        except ValueError as exc:  # AckError, msgspec.DecodeError, a bad topic level
            self._bad("bad_ack", topic, payload, str(exc))
            return
        # The engine's open event is the newest; a resolved one is the latest seen.
        current = next((e for e in self.engine.open_alerts() if e.id == claimed.id), None)
        if current is None:
            seen = self._latest.get(alert_topic)
            current = seen if seen is not None and seen.id == claimed.id else None
        partition = self.engine.partition
        if current is not None and not partition.owns(current.district):
            return  # another partition's alert: its owner takes the ack
        if current is None:
            if partition.owns(claimed.district):
                self._bad("unknown_alert", topic, payload, f"no alert {claimed.id} known")
            return
        if current.ack is not None:
            return  # acknowledged already: the first ack stands
        acked = msgspec.structs.replace(
            current, ack=claimed.ack, updated=max(current.updated + 1, claimed.updated)
        )
        self.engine.apply_ack(acked)
        self._latest[alert_topic] = acked
        metrics.ACKS.inc()
        _LOG.info("alert %s acknowledged by %s", acked.id, claimed.ack.by if claimed.ack else "?")
        try:
            self._push(self._influx_outbox, schema.alert_line(acked), "influx")
        except LineProtocolError as exc:  # pragma: no cover - ids and tags are ours
            _LOG.error("alert %s cannot be stored: %s", acked.id, exc)
        self._push(self._mqtt_outbox, acked, "mqtt")
        self._mqtt_wake.set()
        self._influx_wake.set()

    def _bad(self, reason: str, topic: str, payload: bytes, detail: str) -> None:
        self.bad_messages += 1
        metrics.BAD_MESSAGES.labels(reason).inc()
        _LOG.debug(
            "skipped message on %s (%s: %s): %r", topic, reason, detail, payload[:PAYLOAD_LOG_MAX]
        )

    # --- InfluxDB ------------------------------------------------------------------------------
    async def _flush_influx_once(self) -> None:
        while self._influx_outbox:
            batch = [
                self._influx_outbox[i] for i in range(min(INFLUX_BATCH, len(self._influx_outbox)))
            ]
            try:
                await self.db.write_lines(batch)
            except InfluxRequestError as exc:
                _LOG.error("InfluxDB refused %d alert points, dropped: %s", len(batch), exc)
            except InfluxError as exc:
                _LOG.warning("writing alert points failed: %s", exc)
                return
            for _ in batch:
                self._influx_outbox.popleft()

    async def _influx_writer(self) -> None:
        backoff = Backoff(0.5, 30.0, jitter=False)
        while True:
            await self._influx_wake.wait()
            self._influx_wake.clear()
            await self._flush_influx_once()
            if self._influx_outbox:  # failed: retry later with backoff
                await asyncio.sleep(backoff.next())
                self._influx_wake.set()
            else:
                backoff.reset()


def _raise_if_cancelling() -> None:
    """Honour a cancellation that ``asyncio.wait_for`` swallowed.

    On Python 3.11, aiomqtt's ``wait_for`` returns the result instead of raising
    when a cancel arrives just as the awaited PUBACK/SUBACK completes; without
    this check the publisher would loop on and shutdown would hang.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def run(
    settings: Settings,
    *,
    thresholds: Thresholds | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """The whole service; runs until cancelled.  ``ready`` is set once it is subscribed."""
    engine = Engine(
        thresholds or load_thresholds(settings.thresholds_file),
        utc_offset_min=settings.utc_offset_min,
        partition=partition_of(settings),
    )
    engine.platform.workers = settings.ingest_workers
    start_metrics_server(settings.analytics_worker_metrics_port, _LOG, settings.metrics_host)
    async with influx_client(settings, logger=_LOG) as db:
        await db.wait_ready(attempts=60, delay_s=0.5)
        await _retrying("creating the database", db.create_database)
        adopted = await _retrying("restoring open alerts", lambda: restore_alerts(db, engine))
        await _retrying("refilling stations", lambda: refill_stations(db, engine, settings.site))
        refilled = await _retrying(
            "refilling windows", lambda: refill_all(db, engine, settings.site, now_ms())
        )
        _LOG.info("adopted %d open alerts; refilled %d readings", adopted, refilled)
        await AnalyticsService(settings, engine, db, ready=ready).run()
