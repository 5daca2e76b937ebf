"""An edge gateway's account gw.<district>: its district's device topics and its own
health topic, nothing else; bound to its client id; the wrong identity refused."""

from __future__ import annotations

import json

import pytest

from deltasense import dynsec, provisioning
from deltasense.access import Service
from deltasense.contract import Kind, edge_alert_topic, edge_status_topic
from tests.security.conftest import LockedBroker
from tests.security.probe import GRANTED_QOS1, NOT_AUTHORIZED, Probe, Refused
from tests.support import eventually

ACCEPTED = (0, 16)  # success, or success with no subscriber (MQTT v5 reason codes)


def reading() -> bytes:
    return json.dumps({"seq": 0, "boot": 1, "t_c": 30.0}).encode()


async def test_a_gateway_relays_its_district_and_nothing_else(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    mine, other = f"{tag}-w", f"{tag}-x"
    secret = await provisioning.add_gateway(admin, site=locked.site, district=mine)
    user = f"gw.{mine}"
    with Probe(locked.port, user, user, secret) as gw:
        # its district's nodes, every kind and device: publish the uplink channels
        for channel in ("tele", "status", "meta", "ack"):
            assert gw.publish(f"tsec/{mine}/weather/ws-1/{channel}", reading()) in ACCEPTED, channel
        assert gw.subscribe(f"tsec/{mine}/+/+/cmd") == GRANTED_QOS1
        assert gw.subscribe(f"tsec/{mine}/+/+/cfg") == GRANTED_QOS1
        assert gw.publish(edge_status_topic("tsec", mine), b'{"state":"online"}') in ACCEPTED
        assert gw.publish(edge_alert_topic("tsec", mine), b"{}") in ACCEPTED  # its offline alerts
        # and nothing of another district, the platform or the broker
        for topic in (
            f"tsec/{other}/weather/ws-1/tele",
            f"other/{mine}/weather/ws-1/tele",
            f"tsec/{mine}/weather/ws-1/cmd",
            f"tsec/{mine}/weather/ws-1/cfg",
            edge_status_topic("tsec", other),
            edge_alert_topic("tsec", other),
            "tsec/_alerts/flood/street-flood/x",
            "$CONTROL/dynamic-security/v1",
        ):
            assert gw.publish(topic, reading()) == NOT_AUTHORIZED, topic
        for topic in ("#", "tsec/#", f"tsec/{other}/+/+/cmd", f"tsec/{mine}/+/+/tele", "$SYS/#"):
            assert gw.subscribe(topic) == NOT_AUTHORIZED, topic
    # bound to its client id, and its password only
    with pytest.raises(Refused):
        Probe(locked.port, "someone-else", user, secret).connect()
    with pytest.raises(Refused):
        Probe(locked.port, user, user, secret + "x").connect()
    # a second add is refused, not a silent reset of the secret
    with pytest.raises(provisioning.ProvisioningError, match="exists already"):
        await provisioning.add_gateway(admin, site=locked.site, district=mine)
    with pytest.raises(provisioning.ProvisioningError):
        await provisioning.add_gateway(admin, site=locked.site, district="Not_A_Ward")


async def test_analytics_reads_gateway_health_and_no_node_or_service_forges_it(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    """Analytics may read every gateway's status, publish none; a node, the simulator
    and the other services may neither publish one (a forged healthy status would hide
    a backlog or drops, a forged offline one raise edge-silent) nor read them."""
    ward = f"{tag}-w"
    gw_secret = await provisioning.add_gateway(admin, site=locked.site, district=ward)
    node = f"{tag}-n1"
    node_secret = await provisioning.add_device(
        admin, site=locked.site, district=ward, kind=Kind.WATER, device=node
    )
    mine = edge_status_topic(locked.site, ward)
    forged = b'{"state":"online","ts":1,"spool_records":0,"oldest_age_s":null}'
    with Probe(locked.port, node, node, node_secret) as n:
        assert n.publish(f"tsec/{ward}/water/{node}/tele", reading()) in ACCEPTED  # control
        assert n.publish(mine, forged) == NOT_AUTHORIZED
        assert n.subscribe("tsec/_edge/+/status") == NOT_AUTHORIZED
    for svc in (Service.SIMULATOR, Service.INGEST, Service.API, Service.NOTIFIER):
        with Probe(
            locked.port, f"{tag}-{svc.value}", svc.username, locked.accounts.passwords[svc]
        ) as p:
            assert p.publish(mine, forged) == NOT_AUTHORIZED, svc
    for svc in (Service.SIMULATOR, Service.API, Service.NOTIFIER):
        with Probe(
            locked.port, f"{tag}-{svc.value}-r", svc.username, locked.accounts.passwords[svc]
        ) as p:
            assert p.subscribe("tsec/_edge/+/status") == NOT_AUTHORIZED, svc
    analytics = Service.ANALYTICS
    with Probe(
        locked.port, f"{tag}-analytics", analytics.username, locked.accounts.passwords[analytics]
    ) as an:
        assert an.subscribe("tsec/_edge/+/status") == GRANTED_QOS1  # positive control
        assert an.subscribe("tsec/_edge/#") == NOT_AUTHORIZED  # its status only
        assert an.publish(mine, forged) == NOT_AUTHORIZED  # it reads, never writes
        user = f"gw.{ward}"
        with Probe(locked.port, user, user, gw_secret) as gw:
            assert gw.publish(mine, b'{"state":"online","ts":2}', retain=True) in ACCEPTED
        await eventually(lambda: _async(any(t == mine for t, _, _ in an.messages)))
        assert [b for t, b, _ in an.messages if t == mine] == [b'{"state":"online","ts":2}']
    with Probe(locked.port, user, user, gw_secret) as gw:  # leave no retained status behind
        assert gw.publish(mine, b"", retain=True) in ACCEPTED


async def _async(value: bool) -> bool:
    return value


async def test_only_the_wards_gateway_hands_over_its_offline_alerts(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str
) -> None:
    """A forged offline alert would raise (or, adopted first, silence) a flood alert:
    only gw.<district> may publish on its district's alert topic; analytics reads it."""
    ward = f"{tag}-w"
    gw_secret = await provisioning.add_gateway(admin, site=locked.site, district=ward)
    node = f"{tag}-n1"
    node_secret = await provisioning.add_device(
        admin, site=locked.site, district=ward, kind=Kind.WATER, device=node
    )
    topic = edge_alert_topic(locked.site, ward)
    forged = b'{"id":"al-0","rule":"street-flood","state":"firing"}'
    with Probe(locked.port, node, node, node_secret) as n:
        assert n.publish(topic, forged) == NOT_AUTHORIZED
        assert n.subscribe("tsec/_edge/+/alert") == NOT_AUTHORIZED
    for svc in (Service.SIMULATOR, Service.INGEST, Service.API, Service.NOTIFIER):
        with Probe(
            locked.port, f"{tag}-{svc.value}", svc.username, locked.accounts.passwords[svc]
        ) as p:
            assert p.publish(topic, forged) == NOT_AUTHORIZED, svc
    analytics = Service.ANALYTICS
    with Probe(
        locked.port, f"{tag}-analytics", analytics.username, locked.accounts.passwords[analytics]
    ) as an:
        assert an.subscribe("tsec/_edge/+/alert") == GRANTED_QOS1
        assert an.publish(topic, forged) == NOT_AUTHORIZED
        user = f"gw.{ward}"
        with Probe(locked.port, user, user, gw_secret) as gw:
            assert gw.publish(topic, b'{"from":"the gateway"}') in ACCEPTED
        await eventually(lambda: _async(any(t == topic for t, _, _ in an.messages)))
        assert [b for t, b, _ in an.messages if t == topic] == [b'{"from":"the gateway"}']
