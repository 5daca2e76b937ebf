"""The gateway's uplink over TLS: the platform's CA pinned, a broker signed by
another CA refused (nothing forwarded), a reading over TLS stored as over plain."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import aiomqtt
from cryptography.hazmat.primitives import serialization

from deltasense.runtime import now_ms
from edge.settings import EdgeSettings
from tests.integration.edge_support import WARD, metric
from tools import tls
from tools.devstack import BrokerTls, Stack, free_port, mosquitto_process
from tools.edgestack import gateway_process, ward_broker


def _other_ca(tmp_path: Path) -> Path:
    cert, _ = tls.make_ca("DeltaSense dev CA", dt.datetime.now(dt.UTC))  # same name, other key
    path = tmp_path / "other-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


async def _forwarded(tls_port: int, pki: tls.DevPki, ward_port: int) -> list[bytes]:
    got: list[bytes] = []
    ctx = __import__("ssl").create_default_context(cafile=str(pki.ca_cert))
    async with aiomqtt.Client("127.0.0.1", tls_port, identifier="tls-watch", tls_context=ctx) as c:
        await c.subscribe(f"tls/{WARD}/+/+/tele", qos=1)
        async with aiomqtt.Client("127.0.0.1", ward_port, identifier="wl-p1-009") as node:
            reading = {"ts": now_ms(), "seq": 1, "boot": 1, "level_cm": 3}
            await node.publish(f"tls/{WARD}/water/wl-p1-009/tele", json.dumps(reading), qos=1)
        try:
            async with asyncio.timeout(10):
                async for m in c.messages:
                    got.append(bytes(m.payload))  # type: ignore[arg-type]
                    break
        except TimeoutError:
            pass
    return got


def test_the_uplink_pins_the_platform_ca(tmp_path: Path) -> None:
    pki = tls.ensure_dev_pki(tmp_path / "platform")
    tls_port, ward_port = free_port(), free_port()
    platform = mosquitto_process(
        tmp_path / "platform",
        port=tls_port,
        anonymous=True,
        tls=BrokerTls(cafile=pki.ca_cert, certfile=pki.server_cert, keyfile=pki.server_key),
    )
    with Stack([platform, ward_broker(tmp_path / "ward", port=ward_port)]):
        for ca, should_forward in ((_other_ca(tmp_path), False), (pki.ca_cert, True)):
            edge = EdgeSettings(
                site="tls",
                district=WARD,
                var_dir=tmp_path / f"edge-{should_forward}",
                local_port=ward_port,
                uplink_port=tls_port,
                uplink_username="edge",
                uplink_tls_ca_file=ca,
                uplink_retry_max_s=1.0,
                metrics_port=free_port(),
            )
            gateway = gateway_process(edge)
            gateway.start()
            try:
                got = asyncio.run(_forwarded(tls_port, pki, ward_port))
                if should_forward:
                    assert len(got) == 1 and json.loads(got[0])["level_cm"] == 3
                    assert metric(edge, "uplink_connected") == 1
                else:
                    time.sleep(1)
                    assert got == []
                    assert metric(edge, "uplink_connected") == 0
                    assert metric(edge, "spool_records") >= 1  # kept for a good link
                    assert "CERTIFICATE_VERIFY_FAILED" in gateway.tail(50)
            finally:
                gateway.stop()
