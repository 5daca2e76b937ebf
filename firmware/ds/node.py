"""The node runtime: sampling, local control, store-and-forward and the MQTT session.

Separate asyncio tasks, so a dead network never stalls sampling:

- ``sampler``: reads the sensors every interval, encodes the reading and pushes
  it into the flash spool. It never touches the network.
- ``control`` (lamp nodes): photocell and dimming profile, with or without network.
- ``network``: connects forever (exponential backoff with full jitter), births
  (retained ``online`` status and ``meta``), restores the ``cmd``/``cfg``
  subscriptions, then publishes the spool oldest first, advancing only after
  the broker's PUBACK.
- ``timekeeper``: NTP at boot and every ``ntp_interval_s`` (woken by the guard).
- ``guard``: feeds the watchdog while every task makes progress; reboots after
  ``no_broker_reboot_s`` without a broker.

Hardware comes in through ``sensors`` (see ``ds.sensors``; an optional
``poll()`` runs every second) and ``system``
(``reset()``, ``reset_cause()``, ``ntp_unix_ms(host)``, ``wdt``, ``heap_free()``,
``rssi()``, ``hw``), so the simulator runs this very code with simulated ones.
"""

import asyncio
import json
import random

import ds
from ds import clock, commands, encode, hal, mqtt, wdt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WILL = b'{"state":"offline"}'
BACKOFF_BASE_MS = 1000
SPOOL_PEEK = 20  # records per publish attempt, at most (encode.batch_into fills the buffer)
# [design] tele payload buffer: the contract allows 4 KiB, but on a 96 KiB heap
# a 2 KiB buffer (about 9 readings a publish) is the better trade; a backlog
# drains at one round trip per 9 readings.
PKT_PAYLOAD = 2048


# --- pure logic ---------------------------------------------------------------------
def photocell(on: bool, lux: "Any", on_lux: float = 16, off_lux: float = 65) -> bool:
    """Switch with hysteresis (ANSI C136.10: on < 16 lx, off > 65 lx)."""
    if lux is None:
        return on
    if lux < on_lux:
        return True
    if lux > off_lux:
        return False
    return on


def parse_profile(profile: "dict[str, Any]") -> "list[tuple[int, float]]":
    """``{"22:00": 70, ...}`` as [(minute of day, pct)] sorted by time."""
    out = []
    for k in profile:
        out.append((int(k[:2]) * 60 + int(k[3:]), float(profile[k])))
    out.sort()
    return out


def profile_pct(steps: "list[tuple[int, float]]", minute: int) -> float:
    """Level in force at local ``minute``: the last step at or before it,
    wrapping to the day's last step before the first one."""
    if not steps:
        return 100.0
    pct = steps[-1][1]
    for at, level in steps:
        if at <= minute:
            pct = level
    return pct


def backoff_ms(attempt: int, cap_ms: int, rand: "Any" = random.random) -> int:
    """Full jitter: U(0, min(cap, base * 2^attempt))."""
    span = min(cap_ms, BACKOFF_BASE_MS << min(attempt, 16))
    return int(rand() * span)


def water_event(
    level_cm: "Any", prev: "Any", now_ms: int, warn_cm: float, rise_mm_per_5min: float
) -> bool:
    """True while the level is over the warning or rises faster than the limit.

    ``prev`` is (ticks_ms, level_cm) of an earlier reading or None.
    """
    if level_cm is None:
        return False
    if level_cm >= warn_cm:
        return True
    if prev is None:
        return False
    dt = clock.ticks_diff(now_ms, prev[0])
    if dt <= 0:
        return False
    rise_mm = (level_cm - prev[1]) * 10.0
    return rise_mm * 300000.0 / dt >= rise_mm_per_5min


def topic_base(cfg: "Any") -> str:
    return "%s/%s/%s/%s/" % (cfg["site"], cfg["district"], cfg["kind"], cfg["device"])


class Node:
    """One field node. ``run()`` runs its tasks until ``stop()``."""

    def __init__(
        self,
        config: "Any",
        sensors: "Any",
        spool: "Any",
        counters: "Any",
        system: "Any",
        *,
        opener: "Any" = mqtt.open_stream,
        backoff_cap_s: float = 300,
        keepalive_s: int = 60,
        ack_timeout_s: float = 10,
    ) -> None:
        self.config = config
        self.sensors = sensors
        self.spool = spool
        self.counters = counters
        self.system = system
        self.wall = clock.WallClock()
        self.boot = counters.begin_boot()
        self.boot_ticks = clock.ticks_ms()
        cfg = config.cfg
        self.base = topic_base(cfg)
        # One packet buffer for every tele publish, made once: replays copy the
        # spooled readings straight into it (no 4 KiB temporaries to fragment
        # the heap); the MQTT header goes into the head room before the payload.
        self._tele = (self.base + "tele").encode()
        self._head = mqtt.head_room(len(self._tele))
        self._pkt = memoryview(bytearray(self._head + PKT_PAYLOAD))
        self.kind = cfg["kind"]
        self.backoff_cap_ms = int(backoff_cap_s * 1000)
        self.client = mqtt.Client(
            cfg["device"],
            cfg["broker_host"],
            cfg["broker_port"],
            opener=opener,
            keepalive_s=keepalive_s,
            will=(self.base + "status", WILL, 1, True),
            user=cfg.get("mqtt_user") or None,
            password=cfg.get("mqtt_pass") or None,
            on_message=self._on_message,
            ack_timeout_s=ack_timeout_s,
        )
        self.cmds = commands.Commands(
            {
                "set_dim": lambda a: self.set_dimming(a["pct"], a.get("duration_s")),
                "set_interval": lambda a: self.set_interval(a["interval_s"]),
                "sync_time": lambda a: self.request_time_sync(),
                "reboot": lambda a: None,  # Commands sets reboot_pending; we reboot after the ack
                "ping": lambda a: None,
            },
            self.wall.now_ms,
        )
        self.supervisor = wdt.Supervisor()
        self.stopping = False
        self.connects = 0
        self.errors = 0  # failed connects and lost sessions
        self.sent = 0  # readings confirmed by the broker
        self.last_broker = clock.ticks_ms()
        self._wake = asyncio.Event()  # new reading or ack to send
        self._ntp_now = asyncio.Event()  # set by a sync_time command, or by the guard when due
        self._ntp_due = clock.ticks_ms()
        self._acks: "list[bytes]" = []
        self._replay_n = 0  # leading spool records whose send failed
        self._meta_dirty = False
        self._tasks: "list[Any]" = []
        # lamp state
        self.lamp_on = False
        self.dim_pct = 0.0
        self.dim_override: "Any" = None  # (pct, until ticks or None)
        self._steps = parse_profile(cfg["dim_profile"])
        # water state
        self._prev_level: "Any" = None
        self.event_mode = False

    # --- readings ---------------------------------------------------------------------
    def interval_ms(self) -> int:
        cfg = self.config.cfg
        if self.kind == "water":
            s = cfg["event_interval_s"] if self.event_mode else cfg["idle_interval_s"]
        else:
            s = cfg["interval_s"]
        return int(s * 1000)

    def health(self) -> "dict[str, Any]":
        h = {"up_s": clock.ticks_diff(clock.ticks_ms(), self.boot_ticks) // 1000}
        heap = self.system.heap_free()
        if heap is not None:
            h["heap_b"] = heap
        rssi = self.system.rssi()
        if rssi is not None:
            h["rssi_dbm"] = rssi
        batt = self.sensors.battery_v()
        if batt is not None:
            h["batt_v"] = batt
        return h

    def sample(self) -> bytes:
        """Take one reading, push it into the spool, return its encoding."""
        fields = self.sensors.read()
        if self.kind == "lamp":
            fields["on"] = self.lamp_on
            fields["dim_pct"] = self.dim_pct if self.lamp_on else 0.0
        elif self.kind == "water":
            now = clock.ticks_ms()
            level = fields.get("level_cm")
            cfg = self.config.cfg
            self.event_mode = water_event(
                level, self._prev_level, now, cfg["warn_level_cm"], cfg["rise_mm_per_5min"]
            )
            if level is not None:
                self._prev_level = (now, level)
        rec = encode.reading(
            self.kind,
            self.counters.next_seq(),
            self.boot,
            fields,
            self.wall.now_ms(),
            self.health(),
        )
        data = encode.encode_reading(rec)
        if not self.client.connected:
            data = encode.mark_hist(data)  # taken during an outage: a replay when sent
        self.spool.push(data)
        self._wake.set()
        return data

    # --- lamp control -------------------------------------------------------------------
    def control_step(self) -> None:
        """Photocell, then the dimming profile (or a commanded override)."""
        cfg = self.config.cfg
        lux = self.sensors.lux()
        self.lamp_on = photocell(self.lamp_on, lux, cfg["photocell_on_lux"], cfg["photocell_off_lux"])
        pct = 100.0
        now = self.wall.now_ms()
        if now is not None:
            minute = (clock.local_minutes(now, 0) + cfg["tz_offset_min"]) % 1440
            pct = profile_pct(self._steps, minute)
        ov = self.dim_override
        if ov is not None:
            if ov[1] is not None and clock.ticks_diff(clock.ticks_ms(), ov[1]) >= 0:
                self.dim_override = None
            else:
                pct = ov[0]
        if 0 < pct < cfg["dim_min_pct"]:
            pct = cfg["dim_min_pct"]
        self.dim_pct = pct
        self.sensors.set_lamp(self.lamp_on, pct)

    def set_dimming(self, pct: float, duration_s: "Any" = None) -> None:
        until = None
        if duration_s:
            until = clock.ticks_ms() + int(duration_s * 1000)
        self.dim_override = (float(pct), until)
        if self.kind == "lamp":
            self.control_step()

    def set_interval(self, seconds: float) -> None:
        cfg = self.config.cfg
        cfg["interval_s"] = seconds
        if self.kind == "water":
            cfg["idle_interval_s"] = seconds
        self._meta_dirty = True

    def request_time_sync(self) -> None:
        self._ntp_now.set()

    # --- messages -----------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.base + "cmd":
            self._acks.append(self.cmds.handle(payload))
            self._wake.set()
        elif topic == self.base + "cfg":
            old = self.config.hash
            ok, reason = self.config.apply_remote(payload)
            if not ok:
                print("cfg refused:", reason)
                return
            pw = self.config.cfg.get("mqtt_pass") or None
            if pw != self.client.password:
                # A rotated secret, used from the next connect; the fresh meta
                # tells the platform it is stored (docs/SECURITY.md).
                self.client.password = pw
                self._meta_dirty = True
            if self.config.hash != old:
                self._steps = parse_profile(self.config.cfg["dim_profile"])
                self._meta_dirty = True

    def meta(self) -> bytes:
        cfg = self.config.cfg
        return encode.meta(
            "ds-" + ds.FW_VERSION,
            self.system.hw,
            self.boot,
            self.system.reset_cause(),
            self.config.hash,
            self.interval_ms() / 1000,
            cfg.get("lat"),
            cfg.get("lon"),
            cfg.get("station") if self.kind == "water" else None,
        )

    # --- tasks --------------------------------------------------------------------------
    async def _sampler(self) -> None:
        self.supervisor.register("sampler", 3 * self.interval_ms() / 1000 + 30)
        while not self.stopping:
            try:
                self.sample()
            except (OSError, ValueError) as exc:  # a sensor fault must not stop sampling
                print("sample failed:", repr(exc))
            self.supervisor.progress("sampler")
            if self.counters.get("seq", 0) % 30 == 0:
                self.counters.save()  # totals survive a power cut, at bounded flash wear
            await clock.sleep_ms(self.interval_ms())

    async def _control(self) -> None:
        self.supervisor.register("control", 120)
        while not self.stopping:
            try:
                self.control_step()
            except OSError as exc:
                print("control failed:", repr(exc))
            self.supervisor.progress("control")
            await clock.sleep_ms(10000)

    async def _poller(self) -> None:
        # Sensors that need ticking between readings (the anemometer's gust window).
        while not self.stopping:
            try:
                self.sensors.poll()
            except OSError as exc:
                print("poll failed:", repr(exc))
            await clock.sleep_ms(1000)

    async def _timekeeper(self) -> None:
        cfg = self.config.cfg
        while not self.stopping:
            try:
                self.wall.sync(self.system.ntp_unix_ms(cfg["ntp_host"]))
                wait = cfg["ntp_interval_s"] * 1000
            except OSError as exc:
                print("ntp failed:", repr(exc))
                wait = 60000
            self._ntp_due = hal.ticks_add(clock.ticks_ms(), wait)
            self._ntp_now.clear()
            # No sleep of its own: the guard, awake every second anyway, sets the
            # event when the time is due; a sync_time command sets it at once.
            await self._ntp_now.wait()

    async def _guard(self) -> None:
        limit = self.config.cfg["no_broker_reboot_s"] * 1000
        while not self.stopping:
            if self.client.connected:
                self.last_broker = clock.ticks_ms()
            elif clock.ticks_diff(clock.ticks_ms(), self.last_broker) > limit:
                print("no broker for", limit // 1000, "s: rebooting")
                self.counters.save()
                self.system.reset()
                return
            if self.supervisor.healthy():
                self.system.wdt.feed()
            if clock.ticks_diff(clock.ticks_ms(), self._ntp_due) >= 0:
                self._ntp_now.set()
            self._wake.set()  # the session's once-a-second look (see _session)
            await clock.sleep_ms(1000)

    async def _network(self) -> None:
        self.supervisor.register("network", 600)
        attempt = 0
        while not self.stopping:
            self.supervisor.progress("network")
            try:
                await self.client.connect(clean=False)
                self.connects += 1
                attempt = 0
                await self._session()
            except OSError as exc:
                self.errors += 1
                print("mqtt:", repr(exc))
            self.client.close()
            if self.stopping:
                return
            await clock.sleep_ms(backoff_ms(attempt, self.backoff_cap_ms))
            attempt += 1

    async def _session(self) -> None:
        c = self.client
        await c.subscribe([(self.base + "cmd", 1), (self.base + "cfg", 1)])
        await c.publish(self.base + "status", encode.status("online", self.wall.now_ms()), 1, True)
        await c.publish(self.base + "meta", self.meta(), 1, True)
        self._meta_dirty = False
        while c.connected and not self.stopping:
            self.supervisor.progress("network")
            self.last_broker = clock.ticks_ms()
            while self._acks:
                await c.publish(self.base + "ack", self._acks[0], 1)
                self._acks.pop(0)
            if self.cmds.reboot_pending:
                self.cmds.reboot_pending = False
                self.counters.save()
                self.system.reset()
            if self._meta_dirty:
                self._meta_dirty = False
                await c.publish(self.base + "meta", self.meta(), 1, True)
            count = min(self.spool.start_peek(), SPOOL_PEEK)
            if count:
                if self._replay_n:
                    count = min(count, self._replay_n)
                try:
                    begin, end, n = encode.batch_into(
                        self._pkt, self._head, self.spool, count, self._replay_n > 0
                    )
                except ValueError as exc:  # cannot happen with the spool's rec_size
                    print("spool: dropping a record:", exc)
                    self.spool.advance(1)
                    continue
                try:
                    await c.publish_into(self._tele, self._pkt, begin, end, 1)
                except OSError:
                    # Unconfirmed: these go out again after the reconnect, as replays.
                    self._replay_n = max(self._replay_n, n)
                    raise
                self.spool.advance(n)
                self._replay_n = max(0, self._replay_n - n)
                self.sent += n
                continue
            # Woken by a new reading or ack, and by the guard every second (no
            # wait_for: its timeout would allocate a task each time).
            self._wake.clear()
            await self._wake.wait()
        if not c.connected and c.error is not None:
            raise c.error

    async def run(self) -> None:
        self._tasks = [
            asyncio.create_task(self._timekeeper()),  # first: NTP before the first reading
            asyncio.create_task(self._sampler()),
            asyncio.create_task(self._network()),
            asyncio.create_task(self._guard()),
        ]
        if self.kind == "lamp":
            self._tasks.append(asyncio.create_task(self._control()))
        if hasattr(self.sensors, "poll"):
            self._tasks.append(asyncio.create_task(self._poller()))
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for t in self._tasks:
                t.cancel()

    async def stop(self) -> None:
        """Clean goodbye: retained ``offline`` status, DISCONNECT, tasks ended."""
        self.stopping = True
        for t in self._tasks:
            t.cancel()
        if self.client.connected:
            try:
                await self.client.publish(
                    self.base + "status", encode.status("offline", self.wall.now_ms()), 1, True
                )
            except OSError:
                pass
            await self.client.disconnect()
        self.client.close()
        self.counters.save()
