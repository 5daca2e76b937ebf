"""The firmware node (ds.node under CPython, as the simulator runs it) against a real broker.

The outage test runs the node for about five minutes of its own time in about
90 s of wall time: the simulator's clock (``simulators.device.CLOCK``, which
the node's ticks, wall clock, task sleeps, NTP and sensors all read) runs 10x
the host clock while the broker is up, and at 1x while the broker is stopped,
so the 60 s broker outage is 60 s for the node and for Mosquitto alike. Network
timeouts inside the MQTT client (``asyncio.wait_for``) and Mosquitto's own
timers stay in real time; the node's keepalive and backoff run in node time.

Every test here runs the node the way it is deployed: over TLS to a TLS-only
broker with the dev CA pinned (``ds.tls``: ``ssl.SSLContext`` + ``cadata``,
CERT_REQUIRED, the broker's name checked), with its own provisioned identity on
a locked-down broker (dynamic security plugin, anonymous refused:
:class:`SecureBroker`, the module's :func:`secure` one or the outage test's
own); the platform side (recorder, operator) uses the services' accounts over TLS. Under
CPython ``ssl`` is OpenSSL; on a board it is mbedTLS (docs/SECURITY.md "TLS").

Two outages, in order:

1. A network cut through a TCP proxy the test can break: the broker stays up,
   sees the node's connection drop and publishes its Last Will.
2. Mosquitto itself is stopped (SIGTERM) for 60 s and restarted on the same
   persistent store. Mosquitto 2.0 publishes the Last Will of every connected
   client as it shuts down and saves it retained (checked with 2.0.11), so the
   node's status turns ``offline`` by its Will, not by the network cut. The
   proxy keeps refusing the node until the test has read the retained status
   of the restarted broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from deltasense import dynsec, provisioning
from deltasense.access import Service
from deltasense.contract import Channel, Kind, decode_status, decode_tele, parse_topic
from deltasense.mqtt import make_client
from deltasense.settings import Settings
from simulators.city import DeviceSpec, place_devices
from simulators.device import CLOCK, WILL_PAYLOAD, VirtualDevice
from tools import broker, tls
from tools.devstack import BrokerTls, ManagedProcess, Stack, free_port, mosquitto_process

INTERVAL_S = 0.2  # real seconds, for the short tests
RATE = 10.0  # node time per wall time while the broker is up (outage test)
NODE_INTERVAL_S = 1.0  # the outage test's sampling interval, node seconds
OUTAGE_S = 60.0  # the broker is down this long: real seconds, at rate 1


class Proxy:
    """A TCP forwarder that can cut every connection and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.up = True
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if not self.up:
            w.close()
            return
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            w.close()
            return
        self._writers += [w, uw]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(4096):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    def cut(self) -> None:
        self.up = False
        for w in self._writers:
            w.close()
        self._writers = []

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


class SecureBroker:
    """A locked-down broker on TLS only, as deployed: the nodes' and services' identities."""

    def __init__(self, var: Path) -> None:
        self.port = free_port()
        self.accounts = broker.prepare(var)
        self.pki = tls.ensure_dev_pki(var)
        self.ca_der = self.pki.ca_der()
        self.var = var

    def settings(self, base: Settings, service: Service) -> Settings:
        """``base`` as ``service`` on this broker, over TLS with the dev CA pinned."""
        return base.model_copy(
            update={
                "mqtt_port": self.port,
                "mqtt_tls": True,
                "mqtt_ca_file": self.pki.ca_cert,
                "mqtt_username": service.username,
                "mqtt_password": self.accounts.passwords[service],
            }
        )

    async def provision(self, site: str, spec: DeviceSpec) -> str:
        """A node identity of its own (bound to its client id, kind and district)."""
        async with dynsec.connect(
            host="127.0.0.1",
            port=self.port,
            username=broker.access.ADMIN_USERNAME,
            password=self.accounts.admin_password,
            tls=self.admin_tls,
        ) as ds:
            # The services' roles follow the test's own site; the device ids repeat
            # between tests (the same seeded city), so an earlier identity goes first.
            await provisioning.sync_platform(ds, site=site, passwords=self.accounts.passwords)
            with contextlib.suppress(provisioning.ProvisioningError):  # none yet
                await provisioning.remove_device(ds, spec.id)
            return await provisioning.add_device(
                ds, site=site, district=spec.district, kind=spec.kind, device=spec.id
            )

    @property
    def admin_tls(self) -> Any:
        import ssl

        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def process(self) -> ManagedProcess:
        """Mosquitto with persistence, TLS only on ``port``, the plugin's identities."""
        pki = self.pki
        proc = mosquitto_process(
            self.var,
            port=self.port,
            dynsec_file=self.accounts.dynsec_file,
            tls=BrokerTls(cafile=pki.ca_cert, certfile=pki.server_cert, keyfile=pki.server_key),
        )
        ready = Settings(mqtt_port=self.port, var_dir=self.var)  # over TLS, the dev CA
        proc.healthy = broker.ready_check(ready, self.accounts)
        return proc


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    sb = SecureBroker(tmp_path_factory.mktemp("fw-secure"))
    with Stack([sb.process()]):
        yield sb


def secure_node(
    sb: SecureBroker,
    spec: DeviceSpec,
    site: str,
    secret: str,
    port: int | None = None,
    **over: Any,
) -> VirtualDevice:
    """The firmware node over TLS (its CA pinned in its flash) with its own identity,
    to the broker or (``port``) a proxy in front of it."""
    return node_device(
        spec, site, port or sb.port, user=spec.id, password=secret, ca_der=sb.ca_der, **over
    )


class Recorder:
    """Everything under ``{site}/#``, reconnecting with a persistent session;
    as ``login`` (an account over TLS) when given, else anonymous and plain."""

    def __init__(self, port: int, site: str, login: Settings | None = None) -> None:
        self.port, self.site, self.login = port, site, login
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = asyncio.Event()

    def client(self) -> aiomqtt.Client:
        if self.login is not None:
            return make_client(self.login, identifier=f"rec-{self.site}", clean_session=False)
        return aiomqtt.Client(
            "127.0.0.1", self.port, identifier=f"rec-{self.site}", clean_session=False
        )

    async def run(self) -> None:
        while True:
            try:
                async with self.client() as c:
                    await c.subscribe(f"{self.site}/#", qos=1)
                    self.subscribed.set()
                    async for m in c.messages:
                        assert isinstance(m.payload, bytes)
                        self.messages.append((str(m.topic), m.payload, m.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.3)  # the broker is away: retry shortly

    def channel(self, name: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t.endswith("/" + name)]

    def readings(self) -> list[Any]:
        out = []
        for t, p, _ in self.messages:
            if t.endswith("/tele"):
                out.extend(decode_tele(parse_topic(t), p, CLOCK.unix_ms()))
        return out


@contextlib.asynccontextmanager
async def running(device: VirtualDevice) -> AsyncIterator[VirtualDevice]:
    task = asyncio.create_task(device.node.run())
    try:
        yield device
    finally:
        await device.node.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        device.close()


async def until(pred: Callable[[], Any], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def spec_of(kind: Kind) -> DeviceSpec:
    return next(s for s in place_devices(8, seed=5) if s.kind is kind)


def node_device(spec: DeviceSpec, site: str, port: int, **over: Any) -> VirtualDevice:
    kw: dict[str, Any] = {
        "interval_s": INTERVAL_S,
        "keepalive_s": 5,
        "backoff_cap_s": 1.0,
        "ack_timeout_s": 2.0,
    }
    return VirtualDevice(spec, boot=3, site=site, port=port, live=True, **(kw | over))


def states(rec: Recorder) -> list[str]:
    return [decode_status(p).state for p in rec.channel("status")]


class ScaledSleep:
    """The firmware's task sleeps (``ds.clock.sleep_ms``) in ``CLOCK``'s time:
    wake once ``CLOCK`` has advanced ``ms``, looking again at least every
    0.25 s so a change of rate during a sleep is honoured."""

    async def sleep_ms(self, ms: int) -> None:
        until = CLOCK.now() + ms / 1000
        while True:
            left = until - CLOCK.now()
            if left <= 0:
                return
            await asyncio.sleep(min(left / CLOCK.rate, 0.25))


@contextlib.contextmanager
def accelerated(rate: float) -> Iterator[None]:
    """The simulated world (node, sensors, NTP) runs ``rate`` times as fast."""
    from ds import clock  # on sys.path once simulators.device is imported

    saved = (clock._hw, clock._virtual)
    clock.use(CLOCK, ScaledSleep())
    CLOCK.set_rate(rate)
    try:
        yield
    finally:
        CLOCK.reset_rate()
        clock.use(*saved)


async def node_seconds(seconds: float) -> None:
    """Let ``seconds`` of node time pass."""
    await ScaledSleep().sleep_ms(int(seconds * 1000))


async def retained(login: Settings, topic: str) -> tuple[bytes, bool]:
    """The retained message on ``topic`` as a fresh subscriber (``login``) gets it."""
    async with make_client(login, identifier=f"probe-{time.monotonic_ns()}") as c:
        await c.subscribe(topic, qos=1)
        async with asyncio.timeout(5):
            async for m in c.messages:
                assert isinstance(m.payload, bytes)
                return m.payload, m.retain
    raise AssertionError("no retained message")  # pragma: no cover - the loop returns


def live_statuses(rec: Recorder) -> list[str]:
    """Status changes as they happened: ``will`` for the Last Will, else the state.

    Copies a (re)subscription gets because the message is retained are left out
    (they repeat the current state); so is a QoS 1 redelivery of the message
    just before (an identical payload).
    """
    out: list[str] = []
    prev = b""
    for t, p, retain in rec.messages:
        if t.endswith("/status") and not retain and p != prev:
            out.append("will" if p == WILL_PAYLOAD else decode_status(p).state)
            prev = p
    return out


@pytest.mark.timeout(240)  # ~90 s of wall time; the suite's 120 s default is too tight
async def test_broker_outage_of_60_s_loses_no_reading(settings: Settings, tmp_path: Path) -> None:
    """Issue 3: a node runs for minutes; the broker is stopped for 60 s and
    restarted; every reading taken meanwhile arrives (``hist``), ``seq`` has no
    gaps, the retained status goes ``offline`` by the Last Will and back
    ``online``, and sampling keeps its cadence through the outage.

    Duplicates are allowed, as the contract allows them (QoS 1 is at least
    once; ``(device, boot, seq)`` identifies a reading): every copy of a ``seq``
    must carry the same ``ts`` and fields, and a duplicate never fills a gap.
    """
    # The node over TLS with its own identity, as deployed, on a broker of its own
    # (persistence on, TLS only, the plugin's identities kept across the restart).
    sb = SecureBroker(tmp_path / "own-broker")
    port = sb.port
    broker = sb.process()
    await asyncio.to_thread(broker.start)  # its health check syncs the accounts (own loop)
    spec = spec_of(Kind.WATER)
    secret = await sb.provision(settings.site, spec)
    watcher = sb.settings(settings, Service.INGEST)
    proxy = Proxy(port)
    await proxy.start()
    rec = Recorder(port, settings.site, watcher)
    rec_task = asyncio.create_task(rec.run())
    interval_ms = int(NODE_INTERVAL_S * 1000)
    wall0 = time.monotonic()
    try:
        await asyncio.wait_for(rec.subscribed.wait(), 10)
        with accelerated(RATE):
            device = secure_node(
                sb,
                spec,
                settings.site,
                secret,
                proxy.port,
                interval_s=NODE_INTERVAL_S,
                keepalive_s=60,  # node seconds: pings every 3 s of wall time at rate 10
                backoff_cap_s=5.0,
            )
            status_topic = device.topic(settings.site, Channel.STATUS)
            async with running(device) as dev:
                await until(lambda: len(rec.readings()) >= 5 and "online" in states(rec))
                await node_seconds(60)

                # 1. The network between node and broker goes away; the broker stays up.
                proxy.cut()
                cut_ms = CLOCK.unix_ms()
                await until(lambda: live_statuses(rec)[-1:] == ["will"], within=5)
                await node_seconds(30)
                mend_ms = CLOCK.unix_ms()
                proxy.up = True
                await until(lambda: live_statuses(rec)[-1:] == ["online"], within=10)
                await node_seconds(60)

                # 2. The broker is stopped for 60 s (real time, and node time too).
                CLOCK.set_rate(1.0)
                await asyncio.to_thread(broker.stop)
                proxy.up = False  # keeps the node out until the retained status is read
                stopped = time.monotonic()
                stop_ms = CLOCK.unix_ms()
                await asyncio.sleep(OUTAGE_S - (time.monotonic() - stopped))
                restart_ms = CLOCK.unix_ms()
                outage_s = time.monotonic() - stopped
                await asyncio.to_thread(broker.start)
                status_at_restart = await retained(watcher, status_topic)
                proxy.up = True
                CLOCK.set_rate(RATE)
                await until(lambda: live_statuses(rec)[-1:] == ["online"], within=15)
                await node_seconds(60)

                taken = dev.node.counters["seq"]  # readings taken so far
                await until(lambda: len(dev.node.spool) == 0, within=15)
                await until(lambda: len({r.seq for r in rec.readings()}) >= taken, within=15)
                status_at_end = await retained(watcher, status_topic)
                connects, errors = dev.node.connects, dev.node.errors
            await until(lambda: live_statuses(rec)[-1:] == ["offline"], within=10)
    finally:
        rec_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rec_task
        await proxy.close()
        broker.stop()
    wall_s = time.monotonic() - wall0

    readings = rec.readings()
    assert {r.boot for r in readings} == {3}
    assert all(not r.ts_from_platform for r in readings)  # NTP synced before the first
    by_seq: dict[int, list[Any]] = {}
    for r in readings:
        by_seq.setdefault(r.seq, []).append(r)
    assert set(by_seq) == set(range(max(by_seq) + 1))  # no gaps: none lost
    assert len(by_seq) >= taken
    for copies in by_seq.values():  # a duplicate is the same reading, sent again
        assert len({(c.ts_ms, json.dumps(c.fields, sort_keys=True)) for c in copies}) == 1
    first = sorted((c[0] for c in by_seq.values()), key=lambda r: r.seq)
    node_span_s = (first[-1].ts_ms - first[0].ts_ms) / 1000
    assert node_span_s >= 240  # several minutes of the node's time

    # Every reading taken while the network was cut or the broker was down came
    # as a replay. Copies: a reading's first copy may be live and its replay hist.
    def taken_between(a: int, b: int) -> list[list[Any]]:
        return [c for c in by_seq.values() if a <= c[0].ts_ms <= b]

    in_cut = taken_between(cut_ms, mend_ms)
    in_outage = taken_between(stop_ms, restart_ms)
    assert len(in_cut) >= 0.5 * 30 / NODE_INTERVAL_S
    assert all(all(c.hist for c in copies) for copies in in_cut + in_outage)
    # Sampling never paused while the broker was down: one reading per interval.
    ts = sorted(copies[0].ts_ms for copies in in_outage)
    assert len(ts) >= 0.9 * (restart_ms - stop_ms) / interval_ms
    gaps = [b - a for a, b in zip([stop_ms, *ts], [*ts, restart_ms], strict=True)]
    assert max(gaps) <= 2 * interval_ms

    # Status: online, Will (network cut), online, Will (broker shutdown), online,
    # and the clean goodbye when the test stops the node.
    assert live_statuses(rec) == ["online", "will", "online", "will", "online", "offline"]
    assert status_at_restart == (WILL_PAYLOAD, True)  # retained across the restart
    assert decode_status(status_at_end[0]).state == "online" and status_at_end[1]
    assert connects == 3 and errors >= 2

    hist = sum(r.hist for r in readings)
    print(
        f"\noutage test: wall {wall_s:.0f} s, node time {node_span_s:.0f} s, broker down "
        f"{outage_s:.1f} s; {len(by_seq)} readings (seq 0..{max(by_seq)}), "
        f"{len(readings) - len(by_seq)} duplicates, {hist} copies with hist; "
        f"{len(in_cut)} taken during the cut, {len(in_outage)} during the broker outage "
        f"(largest gap {max(gaps)} ms); statuses {live_statuses(rec)}; "
        f"retained at restart {status_at_restart[0]!r}; connects {connects}, errors {errors}"
    )


async def test_commands_and_cfg_on_a_lamp(
    settings: Settings, secure: SecureBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    printed: list[str] = []  # the node's console (it prints why it refuses a cfg)

    def console() -> str:
        printed.append(capsys.readouterr().out)
        return "".join(printed)

    spec = spec_of(Kind.LAMP)
    secret = await secure.provision(settings.site, spec)
    rec = Recorder(secure.port, settings.site, secure.settings(settings, Service.INGEST))
    rec_task = asyncio.create_task(rec.run())
    device = secure_node(secure, spec, settings.site, secret)
    base = device.topic(settings.site, Channel.CMD).rsplit("/", 1)[0]
    ops_login = secure.settings(settings, Service.API)  # commands and cfg: the API's account
    try:
        async with (
            running(device) as dev,
            make_client(ops_login, identifier=f"ops-{settings.site}") as ops,
        ):
            await until(lambda: "online" in states(rec) and dev.node.client.connected)
            now = int(time.time() * 1000)

            async def cmd(body: dict[str, Any] | bytes) -> dict[str, Any]:
                n = len(rec.channel("ack"))
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                await ops.publish(base + "/cmd", raw, qos=1)
                await until(lambda: len(rec.channel("ack")) > n, within=10)
                ack: dict[str, Any] = json.loads(rec.channel("ack")[-1])
                return ack

            dim = {"id": "c1", "name": "set_dim", "args": {"pct": 40}, "expires": now + 60_000}
            ack = await cmd(dim)
            assert ack["id"] == "c1" and ack["ok"] is True
            assert dev.sensors.lamp[1] == 40.0  # the output follows the command
            await until(
                lambda: (
                    any(r.fields.get("dim_pct") == 40 for r in rec.readings() if r.fields["on"])
                    or not dev.node.lamp_on
                )
            )
            expired = {"id": "c2", "name": "set_dim", "args": {"pct": 10}, "expires": now - 1}
            ack = await cmd(expired)
            assert (ack["id"], ack["ok"]) == ("c2", False) and "expired" in ack["error"]
            assert dev.sensors.lamp[1] == 40.0
            bad = await cmd(b"{not json")
            assert bad["ok"] is False and bad["error"]
            unknown = await cmd({"id": "c3", "name": "explode", "expires": now + 60_000})
            assert unknown["ok"] is False
            again = await cmd(dim)  # same id: same ack, action not repeated
            assert again["ok"] is True

            # A lease (the platform's storm/flood order): full output for duration_s,
            # then the photocell and dimming profile rule again, not the old 40 % order.
            args = {"pct": 100, "duration_s": 1}
            lease = {"id": "c5", "name": "set_dim", "args": args, "expires": now + 60_000}
            assert (await cmd(lease))["ok"] is True
            assert dev.sensors.lamp[1] == 100.0 and dev.node.dim_override is not None
            await until(lambda: dev.node.dim_override is None, within=10)
            await until(lambda: dev.sensors.lamp[1] == dev.node.dim_pct, within=5)
            assert dev.node.dim_pct != 40.0
            bad_lease = {**lease, "id": "c6", "args": {"pct": 100, "duration_s": 0}}
            refused = await cmd(bad_lease)
            assert refused["ok"] is False and "duration_s" in refused["error"]

            old_hash = dev.node.config.hash
            old_interval = dev.node.config.cfg["photocell_on_lux"]
            await ops.publish(base + "/cfg", b'{"photocell_on_lux": "dark"}', qos=1, retain=True)
            await until(lambda: "cfg refused:" in console(), within=10)
            assert "photocell_on_lux" in console()
            assert dev.node.config.hash == old_hash
            assert dev.node.config.cfg["photocell_on_lux"] == old_interval
            await ops.publish(base + "/cfg", b'{"photocell_on_lux": 12}', qos=1, retain=True)
            await until(lambda: dev.node.config.cfg["photocell_on_lux"] == 12)
            await until(
                lambda: any(
                    json.loads(m).get("cfg_hash") == dev.node.config.hash
                    for m in rec.channel("meta")
                )
            )
            await ops.publish(base + "/cfg", b"", qos=1, retain=True)  # clear the retained cfg
    finally:
        rec_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rec_task


@pytest.mark.parametrize("kind", list(Kind))
async def test_every_kind_births_with_meta(
    settings: Settings, secure: SecureBroker, kind: Kind
) -> None:
    spec = spec_of(kind)
    secret = await secure.provision(settings.site, spec)
    rec = Recorder(secure.port, settings.site, secure.settings(settings, Service.INGEST))
    rec_task = asyncio.create_task(rec.run())
    try:
        async with running(secure_node(secure, spec, settings.site, secret)) as dev:
            assert dev.node.config.cfg["broker_tls"] is True
            await until(lambda: len(rec.readings()) >= 3 and rec.channel("meta"))
        # The clean goodbye is published as the device stops; give the recorder
        # time to receive it (cancelling at once made this test flaky under load).
        await until(lambda: bool(states(rec)) and states(rec)[-1] == "offline", within=10)
    finally:
        rec_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rec_task
    meta = json.loads(rec.channel("meta")[0])
    assert meta["boot"] == 3 and meta["hw"] == "sim" and meta["lat"] == spec.lat
    assert ("station" in meta) is (kind is Kind.WATER)
    assert states(rec)[-1] == "offline"  # clean goodbye
