"""``python -m bench.e2e.load``: one QoS 1 publisher process at an offered rate.

Publishes ``rate`` messages/s for ``duration`` s (bounded by both), round-robin
over its devices, and counts the broker's PUBACKs; then waits (bounded) for the
outstanding PUBACKs and prints one JSON object: messages sent and acknowledged
and the wall-clock times of the first publish and the last PUBACK.  ``--live``
stamps readings with the wall clock at a dry level (what analytics sees of a
city) instead of unique timestamps in the past (what storage benchmarks need).
SIGTERM stops the publishing early; the result is still printed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from bench.e2e import payloads

TICK_S = 0.002
BURST = 500  # at most this many publishes before looking at the clock again
# paho runs in this one thread, with no network thread of its own (no loop_start):
# with one, every publish woke that thread through a socket pair and the two
# fought over the GIL (py-spy: a quarter of a publisher's samples waiting in
# publish(), a third in the network thread's select()).  The bench's load must
# leave the cores to what it measures.


@dataclass
class LoadResult:
    sent: int = 0
    acked: int = 0
    first_publish: float = 0.0  # time.time()
    last_publish: float = 0.0
    last_ack: float = 0.0


class _Acks:
    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.connected = False

    def on_publish(self, _c: object, _u: object, _mid: int, _rc: object, _p: object) -> None:
        self.count += 1
        self.last = time.time()

    def on_connect(self, *_: object) -> None:
        self.connected = True


def connect(args: argparse.Namespace, acks: _Acks) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-load-{args.tag}")
    if args.username:
        client.username_pw_set(args.username, args.password)
    client.max_inflight_messages_set(args.inflight)
    client.max_queued_messages_set(0)
    client.on_publish = acks.on_publish
    client.on_connect = acks.on_connect
    client.connect(args.host, args.port, keepalive=30)
    deadline = time.monotonic() + 10
    while not acks.connected and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    if not acks.connected:
        raise SystemExit("bench load: could not connect to the broker")
    return client


def _looped(client: paho.Client, timeout: float) -> bool:
    """One turn of paho's network loop; False (said on stderr) once the broker is gone:
    this publisher does not reconnect, so what it had not had acknowledged shows as
    unacknowledged in its result."""
    rc = client.loop(timeout=timeout)
    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        print(f"bench load: lost the broker ({rc.name})", file=sys.stderr)
        return False
    return True


def publish(args: argparse.Namespace) -> LoadResult:
    shape = payloads.SHAPES[args.shape]
    devices = [payloads.device_name(args.tag, i) for i in range(args.devices)]
    topics = [payloads.topic(args.site, d) for d in devices]
    seqs = [0] * len(devices)
    # SIGTERM ends the publishing early (the bench's phase is over); the counts are
    # still drained and printed.
    stopped: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopped.append(signum))
    acks = _Acks()
    client = connect(args, acks)
    result = LoadResult(first_publish=time.time())
    started = time.monotonic()
    i = 0
    while (
        (elapsed := time.monotonic() - started) < args.duration
        and result.sent < args.max
        and not stopped
    ):
        due = min(args.max, int(args.rate * elapsed) + 1)
        for _ in range(min(BURST, due - result.sent)):
            k = i % len(devices)
            i += 1
            if args.live:
                body = payloads.live_message(seqs[k], shape, int(time.time() * 1000))
            else:
                body = payloads.message(seqs[k], shape, args.base_ms)
            seqs[k] += shape.readings
            client.publish(topics[k], body, qos=1)
            result.sent += 1
        # Read the PUBACKs (which frees the in-flight window), waiting a tick if
        # this publisher is on schedule.
        if not _looped(client, TICK_S if result.sent >= due else 0.0):
            break
    result.last_publish = time.time()
    deadline = time.monotonic() + args.drain
    while acks.count < result.sent and time.monotonic() < deadline and _looped(client, 0.02):
        pass
    result.acked, result.last_ack = acks.count, acks.last
    client.disconnect()
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--site", required=True)
    p.add_argument("--tag", required=True, help="makes device names and client id unique")
    p.add_argument("--shape", choices=sorted(payloads.SHAPES), default="single")
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--rate", type=float, required=True, help="messages/s offered")
    p.add_argument("--duration", type=float, required=True, help="seconds of publishing")
    p.add_argument("--max", type=int, default=10_000_000, help="messages at most")
    p.add_argument("--base-ms", type=int, required=True, help="timestamp of seq 0")
    p.add_argument(
        "--live", action="store_true", help="stamp readings with the wall clock, dry level"
    )
    p.add_argument("--inflight", type=int, default=1000)
    p.add_argument("--drain", type=float, default=30.0, help="seconds to wait for PUBACKs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    result = publish(parse(argv))
    json.dump(asdict(result), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
