"""An edge gateway's account gw.<district>: its district's device topics and its own
health topic, nothing else; bound to its client id; the wrong identity refused."""

from __future__ import annotations

import json

import pytest

from deltasense import dynsec, provisioning
from deltasense.contract import edge_status_topic
from tests.security.conftest import LockedBroker
from tests.security.probe import GRANTED_QOS1, NOT_AUTHORIZED, Probe, Refused

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
        # and nothing of another district, the platform or the broker
        for topic in (
            f"tsec/{other}/weather/ws-1/tele",
            f"other/{mine}/weather/ws-1/tele",
            f"tsec/{mine}/weather/ws-1/cmd",
            f"tsec/{mine}/weather/ws-1/cfg",
            edge_status_topic("tsec", other),
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
