"""Issue 9, items 1-2: every privilege on the broker, and the wrong identity refused.

Against the real Mosquitto with the real dynamic security plugin (conftest.py).
Each refusal has a positive control next to it (the right identity, same
broker, same moment), so a broker that refused everything would fail too.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiomqtt
import pytest

from deltasense import dynsec, provisioning
from deltasense.access import Service
from deltasense.contract import Kind
from deltasense.influx import InfluxClient
from deltasense.settings import Settings
from tests.security.conftest import LockedBroker
from tests.security.probe import ACCEPTED, GRANTED_QOS1, NOT_AUTHORIZED, Probe, Refused
from tests.security.running import running_ingest
from tests.support import eventually, now_ms

D1, D2 = "phuong-1", "phuong-2"


async def provision(
    ds: dynsec.Dynsec, device: str, kind: Kind = Kind.WEATHER, district: str = D1
) -> str:
    return await provisioning.add_device(
        ds, site="tsec", district=district, kind=kind, device=device
    )


def base(device: str, kind: Kind = Kind.WEATHER, district: str = D1) -> str:
    return f"tsec/{district}/{kind}/{device}"


def node(locked: LockedBroker, device: str, secret: str, **kw: Any) -> Probe:
    return Probe(locked.port, device, username=device, password=secret, **kw)


def service(locked: LockedBroker, svc: Service, client_id: str) -> Probe:
    return Probe(locked.port, client_id, svc.username, locked.accounts.passwords[svc])


def reading(seq: int, **fields: Any) -> bytes:
    return json.dumps({"ts": now_ms(), "seq": seq, "boot": 1, "t_c": 30.0, **fields}).encode()


async def rows(db: InfluxClient, q: str) -> list[dict[str, Any]]:
    return [row for s in await db.query(q) for row in s.rows()]


# --- connecting ----------------------------------------------------------------------------
async def test_anonymous_and_wrong_credentials_are_refused(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    device = f"{tag}-ws"
    secret = await provision(admin, device)
    for probe in (
        Probe(locked.port, "anon"),  # no username at all
        Probe(locked.port, device, username=device, password="wrong"),
        Probe(locked.port, f"{tag}-other", username=device, password=secret),  # not its client id
        Probe(locked.port, device, username="svc.ingest", password=secret),
    ):
        with pytest.raises(Refused) as refused:
            probe.connect()
        assert refused.value.code == NOT_AUTHORIZED
    with pytest.raises(aiomqtt.MqttCodeError):  # a 3.1.1 client too (what devices speak)
        async with aiomqtt.Client("127.0.0.1", locked.port, identifier="anon-311"):
            pass
    with node(locked, device, secret):  # the right identity gets in
        pass


# --- publishing ----------------------------------------------------------------------------
async def test_a_node_publishes_only_its_own_topics_and_spoofs_are_not_stored(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str, settings: Settings, influx: InfluxClient
) -> None:
    a, b = f"{tag}-a", f"{tag}-b"
    secret_a = await provision(admin, a)
    await provision(admin, b)
    ingest_settings = locked.settings(settings, Service.INGEST)
    async with running_ingest(ingest_settings, influx):
        with node(locked, a, secret_a) as pa:
            spoofs = {
                f"{base(b)}/tele": reading(0, t_c=99.0),
                f"{base(b)}/status": b'{"state":"offline"}',  # the retained offline
                f"{base(b)}/meta": b'{"fw":"evil","lat":9.0,"lon":105.0}',
                f"{base(b)}/ack": b'{"id":"x","ok":true}',
                f"{base(a, district=D2)}/tele": reading(1),  # its own id, another district
                f"{base(a, kind=Kind.WATER)}/tele": json.dumps(
                    {"ts": now_ms(), "seq": 1, "boot": 1, "level_cm": 50.0}
                ).encode(),  # its own id, another kind
                f"tsec/{D1}/weather/{a}": reading(1),  # not a contract topic
                f"other-site/{D1}/weather/{a}/tele": reading(1),
            }
            for topic, payload in spoofs.items():
                retain = topic.endswith(("/status", "/meta"))
                assert pa.publish(topic, payload, retain=retain) == NOT_AUTHORIZED, topic
            # Its own topics are accepted; stored after the spoofs (same connection,
            # in order), so once this reading is in, ingest has seen the rest.
            assert pa.publish(f"{base(a)}/status", b'{"state":"online"}', retain=True) in ACCEPTED
            assert pa.publish(f"{base(a)}/tele", reading(7)) in ACCEPTED
            stored = await eventually(
                lambda: rows(influx, f'SELECT * FROM "weather" WHERE "device" = \'{a}\'')
            )
            assert [r["seq"] for r in stored] == [7]
    assert await rows(influx, f'SELECT * FROM "weather" WHERE "device" = \'{b}\'') == []
    assert await rows(influx, f'SELECT * FROM "status" WHERE "device" = \'{b}\'') == []
    assert await rows(influx, f'SELECT * FROM "meta" WHERE "device" = \'{b}\'') == []
    assert await rows(influx, 'SELECT * FROM "water"') == []
    assert len(await rows(influx, f'SELECT * FROM "weather" WHERE "device" = \'{a}\'')) == 1
    # Nothing of it is retained for a later subscriber either.
    with service(locked, Service.INGEST, f"{tag}-look") as look:
        assert look.subscribe(f"{base(b)}/#") == GRANTED_QOS1
        await asyncio.sleep(0.5)
        assert look.messages == []


async def test_a_last_will_on_another_devices_status_is_never_published(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    a, b = f"{tag}-a", f"{tag}-b"
    secret_a = await provision(admin, a)
    await provision(admin, b)
    with service(locked, Service.INGEST, f"{tag}-watch") as watch:
        assert watch.subscribe(f"{base(b)}/status") == GRANTED_QOS1
        assert watch.subscribe(f"{base(a)}/status") == GRANTED_QOS1
        evil = node(locked, a, secret_a, will=(f"{base(b)}/status", b'{"state":"offline"}'))
        try:
            evil.connect()
        except Refused as refused:  # the broker may refuse the Will at CONNECT
            assert refused.code == NOT_AUTHORIZED
        else:
            evil.kill()
        honest = node(locked, a, secret_a, will=(f"{base(a)}/status", b'{"state":"offline"}'))
        honest.connect()
        honest.kill()  # positive control: its own Will does arrive
        await eventually(lambda: _async(bool(watch.messages)), within=5)
        await asyncio.sleep(0.3)
        assert [t for t, _, _ in watch.messages] == [f"{base(a)}/status"]


async def _async(value: Any) -> Any:
    return value


async def test_only_analytics_publishes_alerts_and_only_the_platform_commands(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    """The issue's forged 'Deep flood - evacuate now' alert, forged acks, and
    reboot / set_dim / cfg (ntp_host) sent to a lamp by anyone but the platform."""
    a, lamp = f"{tag}-a", f"{tag}-lamp"
    secret_a = await provision(admin, a)
    secret_lamp = await provision(admin, lamp, Kind.LAMP)
    lamp_base = base(lamp, Kind.LAMP)
    forged_alert = json.dumps(
        {"id": "al-forged", "kind": "flood", "rule": "street-flood", "subject": "x",
         "district": D1, "severity": "critical", "state": "firing", "started": now_ms(),
         "updated": now_ms(), "message": {"vi": "Ngập sâu - sơ tán ngay", "en": "Deep flood - evacuate now"}}
    ).encode()  # fmt: skip
    alert_topic = "tsec/_alerts/flood/street-flood/x"
    ack_topic = "tsec/_acks/al-0123456789abcdef"
    forged_ack = forged_alert.replace(b'"message"', b'"ack":{"by":"x","ts":1},"message"')
    reboot = b'{"id":"c1","name":"reboot","args":{}}'
    cfg = b'{"ntp_host":"198.51.100.66"}'
    # A forged silence would mute a ward's flood messages for a month.
    silence_topic = "tsec/_silences/si-forged"
    silence = json.dumps(
        {"matchers": {"district": D1}, "starts": now_ms(), "ends": now_ms() + 86_400_000}
    ).encode()
    with (
        node(locked, lamp, secret_lamp) as victim,
        service(locked, Service.API, f"{tag}-api-sub") as operators,
        service(locked, Service.NOTIFIER, f"{tag}-notifier-sub") as notifier,
    ):
        assert victim.subscribe(f"{lamp_base}/cmd") == GRANTED_QOS1
        assert victim.subscribe(f"{lamp_base}/cfg") == GRANTED_QOS1
        assert operators.subscribe("tsec/_alerts/#") == GRANTED_QOS1
        assert notifier.subscribe("tsec/_silences/+") == GRANTED_QOS1
        with node(locked, a, secret_a) as pa:
            assert pa.publish(alert_topic, forged_alert, retain=True) == NOT_AUTHORIZED
            assert pa.publish(ack_topic, forged_ack) == NOT_AUTHORIZED  # nor acknowledge
            assert pa.publish(silence_topic, silence, retain=True) == NOT_AUTHORIZED  # nor silence
            assert pa.publish(f"{lamp_base}/cmd", reboot) == NOT_AUTHORIZED
            assert pa.publish(f"{lamp_base}/cfg", cfg, retain=True) == NOT_AUTHORIZED
            assert pa.publish(f"{base(a)}/cmd", reboot) == NOT_AUTHORIZED  # not even its own
        # Services outside their job are refused too.
        for svc, topic in (
            (Service.INGEST, alert_topic),
            (Service.SIMULATOR, alert_topic),
            (Service.INGEST, f"{lamp_base}/cmd"),
            (Service.SIMULATOR, f"{lamp_base}/cmd"),
            (Service.SIMULATOR, f"{lamp_base}/cfg"),
            (Service.ANALYTICS, f"{lamp_base}/cfg"),
            (Service.ANALYTICS, f"{base(a)}/cmd"),  # analytics commands lamps only
            (Service.NOTIFIER, f"{lamp_base}/cmd"),  # the notifier only acks alerts
            (Service.NOTIFIER, f"{lamp_base}/cfg"),
            # Acks have their own topic: the ackers can no longer speak on _alerts.
            (Service.API, alert_topic),
            (Service.NOTIFIER, alert_topic),
            (Service.INGEST, ack_topic),
            (Service.SIMULATOR, ack_topic),
            (Service.ANALYTICS, ack_topic),  # it applies acks, it does not make them
            # Only the API silences (operators, POST /api/v1/silences).
            (Service.INGEST, silence_topic),
            (Service.SIMULATOR, silence_topic),
            (Service.ANALYTICS, silence_topic),
            (Service.NOTIFIER, silence_topic),  # it honours silences, it does not make them
        ):
            with service(locked, svc, f"{tag}-{svc.value}") as p:
                payload = silence if "/_s" in topic else forged_alert if "/_a" in topic else reboot
                assert p.publish(topic, payload) == NOT_AUTHORIZED, (svc, topic)
        await asyncio.sleep(0.3)
        assert victim.messages == [] and operators.messages == [] and notifier.messages == []
        # Positive controls: analytics raises alerts and leases lamps, the API
        # commands and configures; they arrive.
        with service(locked, Service.ANALYTICS, f"{tag}-analytics-ok") as an:
            assert (
                an.publish(alert_topic, forged_alert.replace(b"al-forged", b"al-real")) in ACCEPTED
            )
            assert an.publish(f"{lamp_base}/cmd", b'{"id":"c2","name":"set_dim"}') in ACCEPTED
        with service(locked, Service.API, f"{tag}-api-ok") as api:
            assert api.publish(f"{lamp_base}/cmd", b'{"id":"c3","name":"ping"}') in ACCEPTED
            assert api.publish(f"{lamp_base}/cfg", b'{"interval_s":60}') in ACCEPTED
            assert api.publish(ack_topic, forged_ack) in ACCEPTED  # an operator's ack
            assert api.publish(silence_topic, silence) in ACCEPTED  # an operator's silence
        await eventually(
            lambda: _async(len(victim.messages) == 3 and operators.messages and notifier.messages)
        )
        assert [t for t, _, _ in notifier.messages] == [silence_topic]
        assert [t.rsplit("/", 1)[1] for t, _, _ in victim.messages] == ["cmd", "cmd", "cfg"]
        assert [t for t, _, _ in operators.messages] == [alert_topic]
        assert b"al-real" in operators.messages[0][1]


# --- subscribing ---------------------------------------------------------------------------
async def test_a_node_subscribes_only_to_its_own_cmd_and_cfg(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    a, b = f"{tag}-a", f"{tag}-b"
    secret_a = await provision(admin, a)
    await provision(admin, b)
    with node(locked, a, secret_a) as pa:
        for topic in (
            "#",
            "$SYS/#",
            "$SYS/broker/clients/connected",
            "$CONTROL/dynamic-security/#",
            "tsec/#",
            "tsec/_alerts/#",
            "tsec/_acks/+",
            f"{base(b)}/cmd",
            f"{base(b)}/cfg",
            f"{base(b)}/tele",
            "tsec/+/+/+/cmd",
            f"tsec/{D1}/weather/+/cmd",
            f"{base(a)}/#",
            f"{base(a)}/+",
            f"{base(a)}/tele",
        ):
            assert pa.subscribe(topic) == NOT_AUTHORIZED, topic
        assert pa.subscribe(f"{base(a)}/cmd") == GRANTED_QOS1
        assert pa.subscribe(f"{base(a)}/cfg") == GRANTED_QOS1
    # The simulator plays many devices: their own channels, under its site only.
    with service(locked, Service.SIMULATOR, f"{tag}-sim") as sim:
        assert sim.subscribe(f"{base(b)}/cmd") == GRANTED_QOS1
        assert sim.publish(f"{base(b)}/tele", reading(0)) in ACCEPTED
        assert sim.publish(f"other/{D1}/weather/{b}/tele", reading(0)) == NOT_AUTHORIZED
    # The many-device accounts cannot read the city either.
    for svc in (Service.SIMULATOR, Service.API, Service.ANALYTICS, Service.NOTIFIER):
        with service(locked, svc, f"{tag}-{svc.value}") as p:
            for topic in ("#", "$SYS/#", "tsec/#"):
                assert p.subscribe(topic) == NOT_AUTHORIZED, (svc, topic)
    # The notifier reads alerts and silences, and no device's readings.
    with service(locked, Service.NOTIFIER, f"{tag}-notifier") as nt:
        assert nt.subscribe(f"{base(a)}/tele") == NOT_AUTHORIZED
        assert nt.subscribe("tsec/_alerts/#") == GRANTED_QOS1
        assert nt.subscribe("tsec/_silences/+") == GRANTED_QOS1
        assert nt.publish("tsec/_alerts/flood/street-flood/x", b"{}") == NOT_AUTHORIZED
        assert nt.publish("tsec/_acks/al-0123456789abcdef", b"{}") in ACCEPTED  # its acks
        assert nt.subscribe("tsec/_acks/+") == GRANTED_QOS1  # the API's acks too
        assert nt.publish(f"{base(a)}/cmd", b"{}") == NOT_AUTHORIZED
    # Acks are read by those who act on them: analytics and the notifier.
    with service(locked, Service.ANALYTICS, f"{tag}-analytics-acks") as an:
        assert an.subscribe("tsec/_acks/+") == GRANTED_QOS1
    for svc in (Service.API, Service.SIMULATOR):  # (ingest reads all of {site}/#)
        with service(locked, svc, f"{tag}-{svc.value}-acks") as p:
            assert p.subscribe("tsec/_acks/+") == NOT_AUTHORIZED, svc
    # The API reads the devices' answers to commands, and nothing else of theirs.
    with service(locked, Service.API, f"{tag}-api-devacks") as api:
        assert api.subscribe(f"{base(a)}/ack") == GRANTED_QOS1
        assert api.subscribe("tsec/+/+/+/ack") == GRANTED_QOS1
        for channel in ("tele", "meta", "status", "cfg"):
            assert api.subscribe(f"{base(a)}/{channel}") == NOT_AUTHORIZED, channel
        assert api.publish(f"{base(a)}/ack", b"{}") == NOT_AUTHORIZED


async def test_only_ingest_joins_the_ingest_share_group(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    """A member of ``$share/ingest/{site}/#`` takes its share of every reading away from
    ingest: nobody else may join that group, or read the city through another one."""
    a = f"{tag}-a"
    secret_a = await provision(admin, a)
    stolen = ("$share/ingest/tsec/#", "$share/ingest/#", "$share/x/tsec/#", "$share/x/#")
    with node(locked, a, secret_a) as pa:
        for topic in (*stolen, f"$share/ingest/{base(a)}/cmd"):
            assert pa.subscribe(topic) == NOT_AUTHORIZED, topic
    for svc in (Service.SIMULATOR, Service.API, Service.ANALYTICS, Service.NOTIFIER):
        with service(locked, svc, f"{tag}-{svc.value}-share") as p:
            for topic in stolen:
                assert p.subscribe(topic) == NOT_AUTHORIZED, (svc, topic)
    with service(locked, Service.INGEST, f"{tag}-ingest-share") as ingest:
        assert ingest.subscribe("$share/ingest/tsec/#") == GRANTED_QOS1  # positive control
        assert ingest.subscribe("$share/ingest/other-site/#") == NOT_AUTHORIZED
        with node(locked, a, secret_a) as pa:
            # Several: earlier tests' ingest sessions are members too and take turns.
            for seq in range(6):
                assert pa.publish(f"{base(a)}/tele", reading(seq)) in ACCEPTED
        ours = lambda: [t for t, _, _ in ingest.messages if a in t]  # noqa: E731
        await eventually(lambda: _async(bool(ours())))
        assert ours() and set(ours()) == {f"{base(a)}/tele"}


async def test_only_analytics_reads_the_broker_counters_and_only_ingest_reports_health(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    """Analytics may read exactly the two ``$SYS`` counters of the platform health
    rules; a node may neither read them nor forge ingest's health reports (which
    could hide a dead-letter surge or raise a false lag alert)."""
    a = f"{tag}-a"
    secret_a = await provision(admin, a)
    counters = ("$SYS/broker/publish/messages/dropped", "$SYS/broker/store/messages/count")
    report = b'{"worker":0,"started":1,"ts":1,"messages":0,"deadletters":0,"lag_s":null}'
    with node(locked, a, secret_a) as pa:
        for topic in counters:
            assert pa.subscribe(topic) == NOT_AUTHORIZED, topic
        assert pa.subscribe("tsec/_health/#") == NOT_AUTHORIZED
        assert pa.publish("tsec/_health/ingest/0", report) == NOT_AUTHORIZED
    for svc in (Service.SIMULATOR, Service.API, Service.NOTIFIER):
        with service(locked, svc, f"{tag}-{svc.value}-sys") as p:
            assert p.subscribe(counters[0]) == NOT_AUTHORIZED, svc
            assert p.publish("tsec/_health/ingest/0", report) == NOT_AUTHORIZED, svc
    with service(locked, Service.ANALYTICS, f"{tag}-analytics-sys") as an:
        for topic in ("$SYS/#", "$SYS/broker/clients/connected", "$SYS/broker/+/+"):
            assert an.subscribe(topic) == NOT_AUTHORIZED, topic
        assert an.publish("tsec/_health/ingest/0", report) == NOT_AUTHORIZED
        for topic in counters:  # positive control: granted, and the value arrives
            assert an.subscribe(topic) == GRANTED_QOS1, topic
        assert an.subscribe("tsec/_health/#") == GRANTED_QOS1
        # Mosquitto 2.0.11 publishes a $SYS counter at start and then only when it
        # changes, and its retained value expires after 60 s: the store count changes
        # all the time, the dropped count (0) is gone on a broker up for a minute.
        stored = counters[1]
        await eventually(lambda: _async(stored in {t for t, _, _ in an.messages}), within=12)
        assert {t for t, _, _ in an.messages} <= set(counters)
        assert all(body.isdigit() for _, body, _ in an.messages)
        with service(locked, Service.INGEST, f"{tag}-ingest-health") as ingest:
            assert ingest.publish("tsec/_health/ingest/0", report) in ACCEPTED
            assert ingest.publish("tsec/_alerts/health/x/y", b"{}") == NOT_AUTHORIZED
        await eventually(lambda: _async(any("_health" in t for t, _, _ in an.messages)))
        assert [b for t, b, _ in an.messages if "_health" in t] == [report]


# --- revocation ----------------------------------------------------------------------------
async def test_a_revoked_node_is_cut_off_within_5_s_and_refused_until_enabled(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    device = f"{tag}-ws"
    secret = await provision(admin, device)
    with node(locked, device, secret) as connected:
        assert connected.publish(f"{base(device)}/tele", reading(0)) in ACCEPTED
        started = time.monotonic()
        record = await provisioning.revoke_device(admin, device)
        assert connected.disconnected.wait(5.0), "still connected 5 s after the revocation"
        took = time.monotonic() - started
    print(f"revocation: disconnected {took * 1000:.1f} ms after the command was sent")
    assert took < 5.0 and record.device == device
    with pytest.raises(Refused) as refused:
        node(locked, device, secret).connect()
    assert refused.value.code == NOT_AUTHORIZED
    assert not (await provisioning.get_device(admin, device)).enabled
    await provisioning.enable_device(admin, device)
    with node(locked, device, secret) as back:
        assert back.publish(f"{base(device)}/tele", reading(1)) in ACCEPTED
