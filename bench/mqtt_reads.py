"""Taking a backlog off the broker: paho's reads and PUBACKs as shipped, against
ingest's (deltasense/paho_io.py: 64 KiB reads, one PUBACK write per batch).

One Mosquitto of the bench's own; every consumer is a persistent QoS 1 session,
subscribed first and then away while one publisher queues the same messages for
all of them.  Each consumer then connects in this process the way ingest does
(aiomqtt, paho's ``on_message``, manual acknowledgement, every ``ACK_EVERY``
messages acknowledged at once) and takes the whole backlog; it is timed from
connecting until the broker has taken the last acknowledgement, in CPU seconds
of this process (nothing else runs in it then) and in wall seconds.  Only the MQTT work is
measured: the messages are counted, not decoded.  The variants alternate, round
by round, so drift on a noisy machine falls on both.

``python -m bench.mqtt_reads [--messages N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.e2e import payloads
from deltasense import paho_io
from tools.devstack import Stack, free_port, mosquitto_process

ACK_EVERY = 500  # about what one ingest batch acknowledges at this rate
SITE = "benchreads"
DEVICES = 100
# name → (64 KiB reads, one PUBACK write per batch)
MODES = {
    "paho as shipped": (False, False),
    "buffered reads": (True, False),
    "buffered reads, one PUBACK write (ingest)": (True, True),
}
VARIANTS = tuple(MODES)


@dataclass(frozen=True)
class Taken:
    variant: str
    messages: int
    cpu_s: float
    wall_s: float


def session_client(port: int, session: str) -> aiomqtt.Client:
    """An aiomqtt client for the persistent session ``session`` (MQTT 3.1.1)."""
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=session,
        clean_session=False,
        protocol=aiomqtt.ProtocolVersion.V311,
    )


async def subscribe(port: int, session: str) -> None:
    """Make ``session`` persistent with the bench's subscription, then leave."""
    async with session_client(port, session) as client:
        await client.subscribe(f"{SITE}/#", qos=1)


def queue_backlog(port: int, messages: int) -> None:
    """Publish ``messages`` single-reading QoS 1 messages and wait for every PUBACK."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-reads-publisher")
    pub.max_inflight_messages_set(1_000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    base_ms = int(time.time() * 1000) - 86_400_000
    infos = []
    for seq in range(messages):
        device = payloads.device_name("r", seq % DEVICES)
        body = payloads.message(seq, payloads.SINGLE, base_ms)
        infos.append(pub.publish(payloads.topic(SITE, device), body, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=60)
    pub.loop_stop()
    pub.disconnect()


async def take(port: int, session: str, messages: int, variant: str) -> Taken:
    """Connect ``session`` and take its backlog of ``messages``, acknowledging them."""
    buffered, one_write = MODES[variant]
    client = session_client(port, session)
    inner = client._client
    inner.manual_ack_set(True)
    acks: list[tuple[int, int]] = []
    count = 0
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    ack: Callable[[list[tuple[int, int]]], None]
    if buffered:
        paho_io.buffer_reads(inner)
    if one_write:

        def ack(batch: list[tuple[int, int]]) -> None:
            paho_io.ack_all(inner, batch)
    else:

        def ack(batch: list[tuple[int, int]]) -> None:
            for mid, qos in batch:
                inner.ack(mid, qos)

    def on_message(_c: object, _u: object, message: paho.MQTTMessage) -> None:
        nonlocal count
        count += 1
        acks.append((message.mid, message.qos))
        if len(acks) >= ACK_EVERY or count == messages:
            ack(acks)
            acks.clear()
        if count == messages and not done.done():
            done.set_result(None)

    inner.on_message = on_message
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with client:
        await asyncio.wait_for(done, timeout=300)
        # A round trip after the last PUBACK: the broker answers packets in the order
        # they come, so its UNSUBACK says it has taken every acknowledgement (a
        # session that reconnected before that could find them redelivered).
        await client.unsubscribe(f"{SITE}/barrier")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return Taken(variant, count, cpu, wall)


def run(messages: int, rounds: int) -> list[Taken]:
    with tempfile.TemporaryDirectory(prefix="deltasense-bench-reads-") as tmp:
        port = free_port()
        stack = Stack([mosquitto_process(Path(tmp) / "var", port=port, anonymous=True)])
        stack.start()
        try:
            sessions = [
                (f"bench-reads-{r}-{v}", VARIANTS[(r + v) % len(VARIANTS)])
                for r in range(rounds)
                for v in range(len(VARIANTS))
            ]
            for session, _ in sessions:
                asyncio.run(subscribe(port, session))
            queue_backlog(port, messages)
            return [asyncio.run(take(port, s, messages, variant)) for s, variant in sessions]
        finally:
            stack.stop()


def table(results: list[Taken]) -> str:
    best = {v: min(r.cpu_s / r.messages for r in results if r.variant == v) for v in VARIANTS}
    rows = [
        "| variant | rounds | messages each | best CPU µs/message | best msg/s (wall) | CPU vs shipped |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in VARIANTS:
        mine = [r for r in results if r.variant == v]
        rate = max(r.messages / r.wall_s for r in mine)
        rows.append(
            f"| {v} | {len(mine)} | {mine[0].messages:,} | {best[v] * 1e6:.1f} | {rate:,.0f} "
            f"| {best[v] / best[VARIANTS[0]]:.2f}× |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=50_000, help="backlog per consumer")
    p.add_argument("--rounds", type=int, default=3, help="consumers per variant")
    args = p.parse_args(argv)
    if args.messages < 1 or args.rounds < 1:
        p.error("--messages and --rounds must be at least 1")
    print(f"\n## MQTT backlog, taken and acknowledged: {args.messages:,} messages per consumer")
    print(table(run(args.messages, args.rounds)))


if __name__ == "__main__":
    main()
