"""Issue 10, scope 3: ingest scaled out on the broker.

Two ingest worker processes (the supervisor's, as ``deltasense up`` starts them
with ``ingest_workers = 2``) share ``$share/ingest/{site}/#`` on the real
Mosquitto.  One is killed with SIGKILL in the middle of a QoS 1 stream whose
publisher counts PUBACKs; every acknowledged reading must be stored exactly once.

Mosquitto #2662: a shared-subscription member's unacknowledged messages die with
its session.  Each worker has its own persistent session (clean_session false,
its own client id), so they wait in it until the supervisor restarts the worker.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request

import pytest

from deltasense.settings import Settings
from tools import chaos
from tools.devstack import ProcState, Stack, free_port
from tools.stack import ingest_name, ingest_workers, settings_env

RATE = 200.0


def _messages(port: int) -> float:
    """What a worker's metrics say it received (stored, ignored or dead letters)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    found = re.findall(r"^deltasense_ingest_messages_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return sum(float(v) for v in found)


@pytest.mark.timeout(180)
def test_two_workers_one_killed_mid_stream_lose_nothing(settings: Settings) -> None:
    base = free_port()
    while not _port_pair_free(base):
        base = free_port()
    two = settings.model_copy(update={"ingest_workers": 2, "ingest_metrics_port": base})
    workers = ingest_workers(two, settings_env(two))
    assert [w.name for w in workers] == ["ingest", "ingest-1"]
    stack = Stack(workers)
    stack.start()
    supervisor = chaos.Supervisor(stack)
    supervisor.start()
    pub = chaos.Publisher(two, devices=10, rate=RATE, tag=two.site)
    try:
        pub.start()
        time.sleep(3.0)
        victim = workers[1]
        # Both members are taking their share before the kill.
        assert _messages(base) > 50 and _messages(base + 1) > 50
        victim.kill()
        killed = time.monotonic()
        chaos._wait("the killed worker restarts", lambda: victim.state is ProcState.UP, 20)
        restart_s = time.monotonic() - killed
        time.sleep(3.0)
        after = _messages(base + 1)
        time.sleep(1.0)
        assert _messages(base + 1) > after  # the restarted worker takes its share again
    finally:
        pub.stop()
        supervisor.stop()
    try:
        acked = pub.acked()
        deadline = time.monotonic() + 20
        while True:
            counts = chaos.stored_counts(two, pub.devices)
            lost = sum(len(acked[d]) - counts[d].distinct for d in pub.devices)
            if lost <= 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        stack.stop()
    published = sum(len(s) for s in acked.values())
    stored = sum(c.distinct for c in counts.values())
    duplicates = sum(c.points - c.distinct for c in counts.values())
    report = f"published {published} stored {stored} dup {duplicates} restart {restart_s:.1f} s"
    print(report)
    assert published > RATE * 5, report  # the stream really ran across the kill
    assert lost == 0 and stored == published, report
    assert duplicates == 0, report
    assert victim.restarts == 1 and restart_s < 10, report
    assert supervisor.log and any(ingest_name(1) in line for line in supervisor.log)


def _port_pair_free(port: int) -> bool:
    """Worker i serves metrics on the base port + i: the next one must be free too."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port + 1))
        except OSError:
            return False
    return True
