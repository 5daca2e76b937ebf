"""The systemd notify protocol, for ``Type=notify`` with ``WatchdogSec=``.

A datagram of ``KEY=value`` lines to the socket in ``$NOTIFY_SOCKET`` is the
whole protocol (sd_notify(3)), so it is a few lines of the socket module
rather than a dependency (``sdnotify``, ``systemd-python``, which needs
libsystemd headers to build on the Pi).  Without ``$NOTIFY_SOCKET`` (not under
systemd, tests) every call does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(*lines: str) -> bool:
    """Send ``READY=1``, ``WATCHDOG=1``, ``STATUS=…``; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
        except OSError:
            return False
    return True


def watchdog_interval_s() -> float | None:
    """How often to send ``WATCHDOG=1`` (half of ``WatchdogSec``), or None when the
    watchdog is off or meant for another process (``$WATCHDOG_PID``)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6 / 2
