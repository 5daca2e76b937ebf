"""``deltasense chaos``: crash the platform's processes under load and count what is lost.

A stack of its own (free ports, a temporary var dir) runs under the same
supervisor as ``deltasense up``.  A steady publisher sends water readings with
QoS 1 and counts the broker's PUBACKs: an acknowledged reading is the platform's
promise, so every one must end up in InfluxDB.  Each scenario kills one process
with SIGKILL (optionally keeping it down for an outage), waits until readings
flow again, and then compares, per scenario and device:

- published: readings the broker acknowledged;
- stored: distinct readings in InfluxDB (``count(distinct(seq))``);
- duplicates: stored points beyond one per reading (0 by design: a reading's
  timestamp is its identity, so a redelivery overwrites itself);
- lost: published − stored, which must be 0;
- alert ids: one flood alert stands through every scenario; a restart of
  analytics must continue it (one id), not raise it again.

Readings published but never acknowledged (in flight at a broker crash) are
reported as ``unconfirmed``: the device still holds them (the firmware's spool
replays them), so they are not the platform's loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from deltasense import health, schema
from deltasense.access import Service
from deltasense.influx import InfluxClient, influx_client, quote_ident
from deltasense.mqtt import paho_tls
from deltasense.runtime import now_ms
from deltasense.settings import Settings
from tools.broker import as_service
from tools.devstack import (
    BROKER_AUTOSAVE_CHANGES,
    BROKER_SYS_INTERVAL_S,
    ManagedProcess,
    ProcState,
    Stack,
    free_port,
)
from tools.influxdb import as_user
from tools.stack import build_stack

_LOG = logging.getLogger(__name__)

DISTRICT: Final = "phuong-1"
_RUNS: Final = itertools.count(1)
KIND: Final = "water"


@dataclass(frozen=True)
class Scenario:
    """Kill ``victim`` after ``lead_s`` of steady load; keep it down ``outage_s``.

    With ``backlog_s``, ingest is killed first and kept down that long, so readings
    wait in the broker's queue for its persistent session when the victim dies.
    """

    name: str
    victim: str
    outage_s: float = 0.0
    backlog_s: float = 0.0
    allowed_loss: int = 0  # a documented window (Mosquitto's crash window), else 0
    # With ``overflow``, the victim (ingest) stays down while a burst fills its session's
    # queue to the broker's limit and ``overflow`` messages past it: those are lost, and
    # the scenario passes only if the broker counted every one ($SYS) and analytics
    # raised broker-queue-drop.
    overflow: int = 0


SCENARIOS: Final = {
    "ingest": Scenario("kill -9 ingest", "ingest"),
    "analytics": Scenario("kill -9 analytics", "analytics"),
    "api": Scenario("kill -9 api", "api"),
    "mosquitto": Scenario("kill -9 mosquitto", "mosquitto"),
    "influxdb": Scenario("influxdb down 60 s", "influxdb", outage_s=60.0),
    # Mosquitto 2.0 keeps queued messages in memory and saves them every
    # BROKER_AUTOSAVE_CHANGES changes: a crash while readings wait for ingest
    # loses at most that many (the only loss the platform documents).
    "mosquitto-backlog": Scenario(
        "kill -9 mosquitto, 5 s backlog",
        "mosquitto",
        backlog_s=5.0,
        allowed_loss=BROKER_AUTOSAVE_CHANGES,
    ),
    "queue-overflow": Scenario("queue overflow, ingest down", "ingest", overflow=1_000),
}
# The chaos broker's queue limit: above the InfluxDB outage's backlog (60 s at the
# default 200/s), so only the overflow scenario reaches it.
CHAOS_MAX_QUEUED: Final = 20_000


@dataclass
class Outcome:
    scenario: str
    published: int
    unconfirmed: int
    stored: int
    duplicates: int
    lost: int
    restart_s: float  # kill → the victim is up again
    recover_s: float  # kill → a reading published after the kill is queryable
    alert_ids: int  # most ids seen for one (rule, subject) of the standing alert (1 = right)
    allowed_loss: int = 0
    dropped: int = 0  # messages the broker says it dropped during the scenario ($SYS)
    drop_alert: bool = False  # analytics raised broker-queue-drop during the scenario
    overflow: bool = False  # the scenario overflows the queue on purpose
    # Overflow only: seconds from the first drop (the victim's queue reached the broker's
    # limit, seen from the acknowledged count) and from the broker's first $SYS count of
    # it to broker-queue-drop firing (None: it did not fire).
    alert_after_drop_s: float | None = None
    alert_after_counter_s: float | None = None

    @property
    def ok(self) -> bool:
        if self.duplicates or self.alert_ids != 1:
            return False
        if self.overflow:  # lost on purpose: every loss counted by the broker, and alerted
            return 0 < self.lost <= self.dropped and self.drop_alert
        return self.lost <= self.allowed_loss and self.dropped == 0


class Publisher:
    """QoS 1 readings from ``devices`` virtual drains at ``rate`` messages/s in total,
    on one connection; a reading counts as published once its PUBACK arrives."""

    def __init__(
        self, settings: Settings, *, devices: int, rate: float, tag: str, limit: int = 0
    ) -> None:
        self.settings = settings
        self.limit = limit  # stop after sending this many (0: until stopped)
        self.devices = [f"chaos-{tag}-{i:03d}" for i in range(devices)]
        self.rate = rate
        # Only the publishing thread calls paho's publish(); paho runs on_publish
        # under its own lock, so the callback may take ours but publish() must not
        # be called while holding it (that order would deadlock).
        self._lock = threading.Lock()
        self._inflight: dict[int, tuple[str, int]] = {}  # mid → (device, seq)
        self._early: set[int] = set()  # PUBACKs that beat the bookkeeping of their mid
        self._acked: dict[str, set[int]] = {d: set() for d in self.devices}
        self._seq = dict.fromkeys(self.devices, 0)
        self._connected = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"chaos-publisher-{tag}",
            clean_session=False,  # in-flight readings are re-sent after a reconnect
        )
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        paho_tls(self.client, settings)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # hold everything while disconnected
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.on_publish = self._on_publish

    def _on_publish(self, _c: object, _u: object, mid: int, _rc: object, _p: object) -> None:
        with self._lock:
            sent = self._inflight.pop(mid, None)
            if sent is None:
                self._early.add(mid)
            else:
                self._acked[sent[0]].add(sent[1])

    def start(self) -> None:
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(20):
            raise TimeoutError("the chaos publisher could not connect to the broker")
        self._thread = threading.Thread(target=self._run, name="chaos-publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        last_ts = dict.fromkeys(self.devices, 0)
        i = 0
        while not self._halt.is_set() and not (self.limit and i >= self.limit):
            device = self.devices[i % len(self.devices)]
            i += 1
            with self._lock:
                seq = self._seq[device]
                self._seq[device] = seq + 1
            ts = max(now_ms(), last_ts[device] + 1)  # unique per device
            last_ts[device] = ts
            payload = json.dumps({"ts": ts, "seq": seq, "boot": 1, "level_cm": 1.0})
            topic = f"{self.settings.site}/{DISTRICT}/{KIND}/{device}/tele"
            mid = self.client.publish(topic, payload, qos=1).mid
            with self._lock:
                if mid in self._early:  # acknowledged before we got here
                    self._early.discard(mid)
                    self._acked[device].add(seq)
                else:
                    self._inflight[mid] = (device, seq)
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._halt.wait(delay)
            elif delay < -1.0:  # fell behind (machine busy): do not burst to catch up
                next_at = time.monotonic()

    def next_seq(self, device: str) -> int:
        """The seq ``device``'s next reading will carry."""
        with self._lock:
            return self._seq[device]

    def acked(self) -> dict[str, set[int]]:
        """Per device, the seqs the broker acknowledged."""
        with self._lock:
            return {d: set(s) for d, s in self._acked.items()}

    def published(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._acked.values())

    def unconfirmed(self) -> int:
        with self._lock:
            return len(self._inflight)

    def stop(self, drain_s: float = 10.0) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + drain_s
        while self.unconfirmed() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.client.loop_stop()
        self.client.disconnect()


class AlertWatch:
    """Raises one flood alert before the scenarios and collects the ids of every
    alert event for it: a restart of analytics must continue that alert (same id),
    never raise it again."""

    DEVICE: Final = "chaos-flood"

    def __init__(self, settings: Settings, device: Settings | None = None) -> None:
        self.settings = settings
        # Watching alerts and playing the flooded drain are two identities on a
        # locked-down broker (the API's and the simulator's).
        self.device = device or settings
        self.ids: dict[str, set[str]] = {}  # rule → alert ids
        # (rule, state, monotonic arrival) of platform health events
        self.platform: list[tuple[str, str, float]] = []
        self.raised = 0  # live (not retained) firing events of the standing alert
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="chaos-alert-watch")
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        paho_tls(self.client, settings)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{settings.site}/_alerts/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        try:
            event = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if event.get("subject") == self.DEVICE:
            with self._lock:
                self.ids.setdefault(str(event.get("rule")), set()).add(str(event.get("id")))
                if event.get("state") == "firing" and not msg.retain:
                    self.raised += 1
        elif event.get("subject") == "platform" and not msg.retain:  # changes, not history
            at = time.monotonic()
            with self._lock:
                self.platform.append((str(event.get("rule")), str(event.get("state")), at))

    def platform_firing(self, rule: str) -> bool:
        """The platform alert of ``rule`` stands now (raised in this scenario, or still
        firing from an earlier drop: its keep-firing hold)."""
        with self._lock:
            states = [state for r, state, _ in self.platform if r == rule]
        return bool(states) and states[-1] == "firing"

    def fired_at(self, rule: str, since: float) -> float | None:
        """When the platform alert of ``rule`` first fired after ``since`` (monotonic)."""
        with self._lock:
            return next(
                (
                    t
                    for r, state, t in self.platform
                    if r == rule and state == "firing" and t > since
                ),
                None,
            )

    def count(self) -> int:
        """The most distinct ids any one rule raised for the standing alert's drain."""
        with self._lock:
            return max((len(ids) for ids in self.ids.values()), default=0)

    def start(self) -> None:
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(20):
            raise TimeoutError("the alert watch could not subscribe")
        reading = {"ts": now_ms(), "seq": 0, "boot": 1, "level_cm": 20.0}
        topic = f"{self.settings.site}/{DISTRICT}/{KIND}/{self.DEVICE}/tele"
        drain = paho.Client(CallbackAPIVersion.VERSION2, client_id="chaos-flood-drain")
        if self.device.mqtt_username:
            drain.username_pw_set(self.device.mqtt_username, self.device.mqtt_password)
        paho_tls(drain, self.device)
        drain.connect(self.device.mqtt_host, self.device.mqtt_port, keepalive=10)
        drain.loop_start()
        try:
            drain.publish(topic, json.dumps(reading), qos=1).wait_for_publish(10)
        finally:
            drain.disconnect()
            drain.loop_stop()
        _wait("the standing flood alert is raised", lambda: self.count() > 0, within=20)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Supervisor(threading.Thread):
    """The supervisor's loop (``deltasense up``'s), in a thread beside the test."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(name="chaos-supervisor", daemon=True)
        self.stack = stack
        self._halt = threading.Event()
        self.log: list[str] = []

    def run(self) -> None:
        while not self._halt.is_set():
            self.log += self.stack.supervise()
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclass(frozen=True)
class Stored:
    points: int
    distinct: int


async def _stored(db: InfluxClient, site: str, devices: Sequence[str]) -> dict[str, Stored]:
    wanted = set(devices)
    seq = quote_ident(schema.SEQ)
    rows = await db.query(
        f"SELECT count({seq}) AS n, count(distinct({seq})) AS d FROM {quote_ident(KIND)} "  # noqa: S608 - identifiers quoted, site bound
        f"WHERE {quote_ident(schema.SITE)} = $site GROUP BY {quote_ident(schema.DEVICE)}",
        params={"site": site},
    )
    found = {d: Stored(0, 0) for d in devices}
    for series in rows:
        device = series.tags.get(schema.DEVICE, "")
        if device in wanted:
            (row,) = series.rows()
            found[device] = Stored(int(row["n"]), int(row["d"]))
    return found


def stored_counts(settings: Settings, devices: Sequence[str]) -> dict[str, Stored]:
    async def run() -> dict[str, Stored]:
        async with influx_client(as_user(settings)) as db:
            return await _stored(db, settings.site, devices)

    return asyncio.run(run())


def _wait(what: str, done: Callable[[], bool], within: float) -> float:
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > within:
            raise TimeoutError(f"{what}: not within {within:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _queryable(settings: Settings, device: str, seq: int) -> bool:
    try:
        return stored_counts(settings, [device])[device].distinct > seq
    except Exception:  # InfluxDB down or restarting: not yet
        return False


class BrokerDrops:
    """The broker's own count of dropped messages (``$SYS``), read as analytics reads it."""

    def __init__(self, settings: Settings) -> None:
        self.value: int | None = None
        self.updates = 0
        self.seen: list[tuple[float, int]] = []  # (monotonic arrival, value)
        self._mark: int | None = None
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="chaos-broker-drops")
        paho_tls(self.client, settings)
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self.client.on_connect = lambda c, *_: c.subscribe(health.BROKER_DROPPED_TOPIC, qos=0)
        self.client.on_message = self._on_message
        self.settings = settings

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with contextlib.suppress(health.HealthError):
            value = health.broker_counter(bytes(msg.payload))
            with self._lock:
                self.value, self.updates = value, self.updates + 1
                self.seen.append((time.monotonic(), value))

    def read(self) -> tuple[int | None, int]:
        with self._lock:
            return self.value, self.updates

    def start(self) -> None:
        """Mosquitto publishes the counter at its start and then only when it changes,
        and a retained ``$SYS`` value expires after 60 s (2.0.11): on a stack that took
        longer than that to come up there is none to read.  The chaos broker is fresh,
        so a counter that stays silent that long is still at its start value, 0."""
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=10)
        self.client.loop_start()
        with contextlib.suppress(TimeoutError):
            _wait(
                "the broker's $SYS drop counter",
                lambda: self.read()[0] is not None,
                within=BROKER_SYS_INTERVAL_S + 1.0,
            )
        with self._lock:
            if self.value is None:
                self.value = 0
                self.seen.append((time.monotonic(), 0))

    def settled(self) -> int:
        """The count once the broker has had a chance to publish it again (it does
        every sys_interval, and only when it changed)."""
        time.sleep(BROKER_SYS_INTERVAL_S + 1.0)
        value = self.read()[0]
        assert value is not None
        return value

    def dropped_since_mark(self) -> int:
        """Drops since the previous call (the first call marks the start): one settle
        per scenario, as nothing publishes between two scenarios.  A broker restart
        starts its count again from 0."""
        value = self.settled()
        before, self._mark = self._mark, value
        return 0 if before is None else max(0, value - before if value >= before else value)

    def first_rise(self, since: float) -> float | None:
        """When the count first rose after ``since`` (monotonic), as published."""
        with self._lock:
            seen = list(self.seen)
        previous = next((v for t, v in reversed(seen) if t <= since), None)
        for t, value in seen:
            if t > since:
                if previous is not None and value > previous:
                    return t
                previous = value
        return None

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _overflow(
    settings: Settings, victim: ManagedProcess, extra: int, tag: str, steady: Publisher
) -> tuple[Publisher, float | None]:
    """With ``victim`` (ingest) held down, a burst that fills its session's queue to the
    broker's limit and ``extra`` past it; then let the supervisor bring it back.
    Returns the burst and when the queue reached the limit (the first drop): every
    reading acknowledged since the kill waits in that queue."""
    limit = settings.broker_max_queued_messages
    target = limit + extra
    steady_before = steady.published()
    burst = Publisher(
        as_service(settings, Service.SIMULATOR),
        devices=10,
        rate=5_000.0,
        tag=f"{tag}-burst",
        limit=target,
    )
    burst.start()
    full_at: float | None = None
    deadline = time.monotonic() + 180
    while burst.published() < target:
        if full_at is None and burst.published() + steady.published() - steady_before >= limit:
            full_at = time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError("the burst is acknowledged: not within 180 s")
        time.sleep(0.02)
    if full_at is None:
        full_at = time.monotonic()
    burst.stop()
    victim.release()
    return burst, full_at


def run_scenario(
    settings: Settings,
    stack: Stack,
    scenario: Scenario,
    watch: AlertWatch,
    drops: BrokerDrops,
    *,
    devices: int,
    rate: float,
    lead_s: float,
    tail_s: float,
) -> Outcome:
    tag = f"{scenario.victim[:6]}-{next(_RUNS)}"  # devices of their own per run
    # The broker is locked down: the publisher plays devices as the simulator does.
    pub = Publisher(as_service(settings, Service.SIMULATOR), devices=devices, rate=rate, tag=tag)
    victim = next(p for p in stack.processes if p.name == scenario.victim)
    publishers = [pub]
    full_at: float | None = None
    pub.start()
    try:
        _wait("publisher connected", lambda: pub.published() > 0, within=20)
        time.sleep(lead_s)
        if scenario.backlog_s:
            ingest = next(p for p in stack.processes if p.name == "ingest")
            ingest.kill(hold_s=scenario.backlog_s + 1.0)  # back 1 s after the victim's kill
            time.sleep(scenario.backlog_s)
        killed = time.monotonic()
        if scenario.overflow:
            victim.kill(hold_s=3_600.0)  # released once the burst is in
            probe = pub.devices[0]
            seq = pub.next_seq(probe)
            burst, full_at = _overflow(settings, victim, scenario.overflow, tag, pub)
            publishers.append(burst)
        else:
            victim.kill(hold_s=scenario.outage_s)
            probe = pub.devices[0]
            seq = pub.next_seq(probe)  # this reading and later ones are published after the kill
        restart_s = _wait(
            f"{victim.name} up again",
            lambda: victim.state is ProcState.UP,
            scenario.outage_s + (150 if scenario.overflow else 30),
        )
        if scenario.overflow:
            restart_s = time.monotonic() - killed
            # Readings offered while the queue was full were dropped: probe one after.
            seq = pub.next_seq(probe)
        _wait(
            f"{scenario.name}: readings flow again",
            lambda: _queryable(settings, probe, seq),
            within=180 if scenario.overflow else 60,  # behind the whole backlog
        )
        recover_s = time.monotonic() - killed
        time.sleep(tail_s)
    finally:
        pub.stop()
    acked = {d: s for p in publishers for d, s in p.acked().items()}
    devices_all = [d for p in publishers for d in p.devices]
    published = sum(len(s) for s in acked.values())
    unconfirmed = sum(p.unconfirmed() for p in publishers)
    # Ingest flushes every ingest_flush_interval_s: give the last batch time to land.
    deadline = time.monotonic() + 30
    previous = -1
    while True:
        counts = stored_counts(settings, devices_all)
        lost = sum(max(0, len(acked[d]) - counts[d].distinct) for d in devices_all)
        if lost == 0 or time.monotonic() > deadline:
            break
        if scenario.overflow and lost == previous:
            break  # the backlog is in; what is missing stays missing
        previous = lost
        time.sleep(1.0 if scenario.overflow else 0.5)
    dropped = drops.dropped_since_mark()
    alert_after_drop_s = alert_after_counter_s = None
    if scenario.overflow:
        # Analytics reads the counter on a connection of its own: the alert follows the
        # broker's next $SYS publish (sys_interval), not analytics' telemetry backlog.
        with contextlib.suppress(TimeoutError):
            _wait(
                "broker-queue-drop raised",
                lambda: watch.fired_at("broker-queue-drop", killed) is not None,
                within=30,
            )
        fired = watch.fired_at("broker-queue-drop", killed)
        counted = drops.first_rise(killed)
        if fired is not None and full_at is not None:
            alert_after_drop_s = round(fired - full_at, 2)
        if fired is not None and counted is not None:
            alert_after_counter_s = round(fired - counted, 2)
    return Outcome(
        scenario=scenario.name,
        published=published,
        unconfirmed=unconfirmed,
        stored=sum(c.distinct for c in counts.values()),
        duplicates=sum(c.points - c.distinct for c in counts.values()),
        lost=lost,
        restart_s=round(restart_s, 2),
        recover_s=round(recover_s, 2),
        alert_ids=watch.count(),
        allowed_loss=scenario.allowed_loss,
        dropped=max(0, dropped),
        drop_alert=watch.platform_firing("broker-queue-drop"),
        overflow=bool(scenario.overflow),
        alert_after_drop_s=alert_after_drop_s,
        alert_after_counter_s=alert_after_counter_s,
    )


def chaos_settings(
    var_dir: Path,
    *,
    max_queued: int = CHAOS_MAX_QUEUED,
    ingest_workers: int = 1,
    analytics_partitions: int = 1,
) -> Settings:
    """A stack of its own on free ports, so chaos never touches a running demo."""
    return Settings(
        site="chaos",
        var_dir=var_dir,
        mqtt_port=free_port(),
        influx_port=free_port(),
        influx_rpc_port=free_port(),
        api_port=free_port(),
        ingest_metrics_port=free_port(),
        analytics_metrics_port=free_port(),
        notifier_http_port=free_port(),
        influx_db="chaos",
        admin_token=secrets.token_urlsafe(32),
        ingest_flush_interval_s=0.2,
        ingest_health_interval_s=1.0,
        broker_max_queued_messages=max_queued,
        ingest_workers=ingest_workers,
        analytics_partitions=analytics_partitions,
    )


@contextmanager
def chaos_stack(
    var_dir: Path | None = None,
    *,
    max_queued: int = CHAOS_MAX_QUEUED,
    ingest_workers: int = 1,
    analytics_partitions: int = 1,
) -> Iterator[tuple[Settings, Stack]]:
    with tempfile.TemporaryDirectory(prefix="deltasense-chaos-") as tmp:
        settings = chaos_settings(
            var_dir or Path(tmp) / "var",
            max_queued=max_queued,
            ingest_workers=ingest_workers,
            analytics_partitions=analytics_partitions,
        )
        stack = build_stack(settings)
        stack.start()
        supervisor = Supervisor(stack)
        supervisor.start()
        try:
            yield settings, stack
        finally:
            supervisor.stop()
            stack.stop()


def run(
    scenarios: Sequence[Scenario] = tuple(SCENARIOS.values()),
    *,
    devices: int = 20,
    rate: float = 200.0,
    lead_s: float = 5.0,
    tail_s: float = 5.0,
    max_queued: int = CHAOS_MAX_QUEUED,
    ingest_workers: int = 1,
    analytics_partitions: int = 1,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_watch: Callable[[AlertWatch], None] | None = None,
) -> list[Outcome]:
    outcomes = []
    with chaos_stack(
        max_queued=max_queued,
        ingest_workers=ingest_workers,
        analytics_partitions=analytics_partitions,
    ) as (settings, stack):
        watch = AlertWatch(
            as_service(settings, Service.API), as_service(settings, Service.SIMULATOR)
        )
        watch.start()
        if on_watch:
            on_watch(watch)
        drops = BrokerDrops(as_service(settings, Service.ANALYTICS))
        drops.start()
        drops.dropped_since_mark()  # the count the first scenario starts from
        try:
            for scenario in scenarios:
                outcome = run_scenario(
                    settings,
                    stack,
                    scenario,
                    watch,
                    drops,
                    devices=devices,
                    rate=rate,
                    lead_s=lead_s,
                    tail_s=tail_s,
                )
                outcomes.append(outcome)
                if on_outcome:
                    on_outcome(outcome)
        finally:
            drops.stop()
            watch.stop()
    return outcomes
