"""The real Mosquitto takes ingest's batched PUBACKs (deltasense/paho_io.py) as
acknowledgements: a session that took its backlog through the buffered reads and
acknowledged it in one write each batch gets nothing again when it comes back,
and a session that acknowledged nothing gets everything again."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from bench import mqtt_reads
from deltasense import paho_io
from tests.support import Services

BACKLOG = 3_000


async def redelivered(port: int, session: str, wait_s: float = 3.0) -> int:
    """Messages the broker sends ``session`` again on reconnecting (acknowledged)."""
    count = 0
    async with mqtt_reads.session_client(port, session) as client:

        async def count_them() -> None:
            nonlocal count
            async for _message in client.messages:
                count += 1

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(count_them(), wait_s)
    return count


async def test_one_puback_write_per_batch_acknowledges_the_whole_backlog(
    services: Services,
) -> None:
    port = services.mqtt_port
    tag = secrets.token_hex(3)
    acked, silent = f"reads-acked-{tag}", f"reads-silent-{tag}"
    for session in (acked, silent):
        await mqtt_reads.subscribe(port, session)
    await asyncio.to_thread(mqtt_reads.queue_backlog, port, BACKLOG)

    taken = await mqtt_reads.take(port, acked, BACKLOG, mqtt_reads.VARIANTS[-1])
    assert taken.messages == BACKLOG
    assert await redelivered(port, acked) == 0

    # The control: reading the backlog through the buffer without acknowledging it
    # leaves all of it with the broker.
    client = mqtt_reads.session_client(port, silent)
    client._client.manual_ack_set(True)
    paho_io.buffer_reads(client._client)
    got: list[int] = []
    client._client.on_message = lambda _c, _u, m: got.append(m.mid)
    async with client:
        for _ in range(200):
            if len(got) == BACKLOG:
                break
            await asyncio.sleep(0.05)
    assert len(got) == BACKLOG
    assert await redelivered(port, silent) == BACKLOG
