"""The gateway under a systemd-like supervisor: READY=1 once its spool is open, then
WATCHDOG=1 about every WatchdogSec/2 on $NOTIFY_SOCKET, even with the uplink down."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from edge.settings import EdgeSettings
from tools.devstack import Stack, free_port
from tools.edgestack import gateway_process, ward_broker


def test_ready_then_watchdog_pings_with_the_uplink_down(tmp_path: Path) -> None:
    ward_port = free_port()
    edge = EdgeSettings(
        district="phuong-1",
        var_dir=tmp_path / "edge",
        local_port=ward_port,
        uplink_port=free_port(),  # nobody listens: the uplink is down throughout
        metrics_port=free_port(),
    )
    path = tmp_path / "notify"
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server,
        Stack([ward_broker(tmp_path / "ward", port=ward_port)]),
    ):
        server.bind(str(path))
        server.settimeout(10)
        gateway = gateway_process(edge)
        assert gateway.env is not None
        gateway.env |= {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
        gateway.start()
        try:
            first = server.recv(4096).decode()
            assert first.startswith("READY=1"), first
            pings = []
            started = time.monotonic()
            while len(pings) < 3:
                message = server.recv(4096).decode()
                if message.startswith("WATCHDOG=1"):
                    pings.append(time.monotonic() - started)
            assert "uplink down" in message, message  # its STATUS= line says so
            assert pings[-1] < 5.0, pings  # every ~1 s (WatchdogSec 2 s / 2)
        finally:
            gateway.stop()
