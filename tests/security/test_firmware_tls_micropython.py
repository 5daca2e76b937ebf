"""The firmware's TLS code on a real MicroPython with mbedTLS, against the real broker.

The WebAssembly MicroPython the firmware tests use has no ``socket`` and no
``ssl`` module, so it cannot open a TLS session. This test runs the firmware's
``ds.tls`` + ``ds.mqtt`` (tests/firmware/mpy_tls_session.py) on a MicroPython
unix-port binary built with mbedTLS, named by ``DS_MICROPYTHON``; it is skipped,
saying so, when that variable is unset (the binary is not on PyPI, npm or
Debian; docs/SECURITY.md "TLS" says how to build it). What it shows when it runs:
a provisioned node's identity over TLS 1.2 with the dev CA pinned, the reading
received by the platform's ingest account, a wrong CA refused by mbedTLS, and
the heap a session costs on that interpreter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from deltasense import dynsec, provisioning
from deltasense.access import Service
from deltasense.contract import Kind
from deltasense.mqtt import make_client
from deltasense.settings import Settings
from tests.security.conftest import LockedBroker
from tools import tls

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "firmware" / "mpy_tls_session.py"
MICROPYTHON = os.environ.get("DS_MICROPYTHON", "")

pytestmark = pytest.mark.skipif(
    not MICROPYTHON, reason="DS_MICROPYTHON (a unix MicroPython with ssl) is not set"
)


def run(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [MICROPYTHON, str(SCRIPT), str(ROOT / "firmware"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@DSTLS@@")), None)
    assert line is not None, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    result: dict[str, Any] = json.loads(line.removeprefix("@@DSTLS@@"))
    assert result["impl"] == "micropython"
    return result


async def test_firmware_tls_session_on_micropython(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str, tmp_path: Path
) -> None:
    device = f"{tag}-mpy"
    secret = await provisioning.add_device(
        admin, site=locked.site, district="phuong-1", kind=Kind.WEATHER, device=device
    )
    topic = f"{locked.site}/phuong-1/weather/{device}/tele"
    ca = tmp_path / "ca.der"
    ca.write_bytes(locked.pki.ca_der())
    wrong = tmp_path / "wrong.der"
    other, _ = tls.make_ca("DeltaSense dev CA", dt.datetime.now(dt.UTC))
    wrong.write_bytes(other.public_bytes(serialization.Encoding.DER))
    ingest = locked.tls_settings(Settings(var_dir=tmp_path), Service.INGEST)
    got: list[bytes] = []
    async with make_client(ingest, identifier=f"{tag}-rec") as sub:
        await sub.subscribe(topic, qos=1)
        args = [str(ca), str(locked.tls_port), device, secret, topic, str(locked.port)]
        result = await asyncio.to_thread(run, args)
        async with asyncio.timeout(5):
            async for message in sub.messages:
                assert isinstance(message.payload, bytes)
                got.append(message.payload)
                if len(got) == 2:  # the plain session's copy, then the TLS one
                    break
    assert result["ok"], result
    refused = await asyncio.to_thread(
        run, [str(wrong), str(locked.tls_port), device, secret, topic]
    )
    assert not refused["ok"] and "tls" not in refused, refused
    t, p = result["tls"], result["plain"]
    print(
        f"\nMicroPython {result['version']}: SSLContext with the CA {result['context_b']} B; "
        f"session live {t['session_live']} B (plain {p['session_live']} B), CONNECT with "
        f"handshake allocates <= {t['connect_bound']} B (plain {p['connect_bound']} B); "
        f"after close {t['after_close']} B; wrong CA: {refused['error']}"
    )
    assert t["session_live"] > p["session_live"]  # the TLS buffers are in this heap
    # A closed TLS session gives its heap back (MicroPython's Stream.close() alone
    # would not: ds.mqtt closes the socket itself). The plain session runs first and
    # keeps what the first connection allocates once (socket, poller), so it is not
    # the measure here.
    assert t["after_close"] < 1024, result
