"""ds.mqtt.Client against a scripted fake transport (CPython asyncio): acks,
retries with DUP, incoming QoS 1, keepalive, and every failure as OSError."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ds import mqtt


class FakeBroker:
    """The far end of a fake transport: parses what the client sends, answers
    CONNACK/SUBACK/PUBACK/PINGRESP unless told to stay silent."""

    def __init__(self, connack_rc: int = 0, drop_first_puback: bool = False) -> None:
        self.rx = bytearray()
        self.got = asyncio.Event()
        self.sent: list[bytes] = []
        self.closed = False
        self.connack_rc = connack_rc
        self.drop_first_puback = drop_first_puback
        self.answer_pings = True

    async def recv(self, n: int) -> bytes:
        while len(self.rx) < n:
            if self.closed:
                raise OSError("closed")
            self.got.clear()
            await self.got.wait()
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def push(self, data: bytes) -> None:
        self.rx.extend(data)
        self.got.set()

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise OSError("closed")
        self.sent.append(bytes(data))  # a transport must not keep a view of the buffer
        kind = data[0] & 0xF0
        if kind == mqtt.CONNECT:
            self.push(bytes((0x20, 2, 0, self.connack_rc)))
        elif kind == 0x80:  # SUBSCRIBE
            self.push(bytes((0x90, 3)) + data[2:4] + b"\x01")
        elif kind == mqtt.PUBLISH and data[0] & 0x06:
            tlen = (data[2] << 8) | data[3]
            pid = data[4 + tlen : 6 + tlen]
            if self.drop_first_puback:
                self.drop_first_puback = False
            else:
                self.push(b"\x40\x02" + pid)
        elif kind == mqtt.PINGREQ and self.answer_pings:
            self.push(b"\xd0\x00")

    def close(self) -> None:
        self.closed = True
        self.got.set()


def client(broker: FakeBroker, **kw: Any) -> mqtt.Client:
    async def opener(host: str, port: int) -> FakeBroker:
        return broker

    return mqtt.Client("dev", "h", 1, opener=opener, **kw)


async def test_qos1_publish_waits_for_puback_and_retries_with_dup() -> None:
    broker = FakeBroker(drop_first_puback=True)
    c = client(broker, ack_timeout_s=0.2)
    await c.connect()
    await c.publish("t", b"x", qos=1)
    pubs = [p for p in broker.sent if p[0] & 0xF0 == mqtt.PUBLISH]
    assert len(pubs) == 2
    assert pubs[0][0] & 0x08 == 0 and pubs[1][0] & 0x08  # the resend carries DUP
    assert pubs[0][1:] == pubs[1][1:]  # same packet id and payload
    await c.disconnect()
    assert broker.sent[-1] == b"\xe0\x00"


async def test_publish_into_sends_the_buffer_and_resends_with_dup_in_place() -> None:
    broker = FakeBroker(drop_first_puback=True)
    c = client(broker, ack_timeout_s=0.2)
    await c.connect()
    topic = b"x/tele"
    room = mqtt.head_room(len(topic))
    buf = bytearray(room) + b'{"seq":1}'
    await c.publish_into(topic, memoryview(buf), room, len(buf), 1)
    pubs = [p for p in broker.sent if p[0] & 0xF0 == mqtt.PUBLISH]
    assert len(pubs) == 2 and pubs[1][0] & 0x08 and not pubs[0][0] & 0x08
    assert pubs[0] == mqtt.publish_packet("x/tele", b'{"seq":1}', 1, False, 1)
    assert pubs[1][1:] == pubs[0][1:]
    await c.disconnect()


async def test_no_puback_at_all_is_an_oserror_and_closes() -> None:
    broker = FakeBroker()
    broker.send = _silent(broker.send)  # type: ignore[method-assign]
    c = client(broker, ack_timeout_s=0.1, retries=1)
    await c.connect()
    with pytest.raises(OSError):
        await c.publish("t", b"x", qos=1)
    assert not c.connected and broker.closed


def _silent(send: Any) -> Any:
    async def wrapped(data: bytes) -> None:
        if data[0] & 0xF0 == mqtt.PUBLISH:
            return
        await send(data)

    return wrapped


async def test_refused_connack_is_an_oserror() -> None:
    with pytest.raises(OSError, match="refused"):
        await client(FakeBroker(connack_rc=5)).connect()


async def test_incoming_qos1_is_delivered_then_acked() -> None:
    broker = FakeBroker()
    got: list[tuple[str, bytes]] = []
    c = client(broker, on_message=lambda t, p: got.append((t, p)))
    await c.connect()
    await c.subscribe([("x/cmd", 1)])
    broker.push(mqtt.publish_packet("x/cmd", b'{"id":"1"}', qos=1, pid=7))
    for _ in range(50):
        if broker.sent[-1] == b"\x40\x02\x00\x07":
            break
        await asyncio.sleep(0.01)
    assert got == [("x/cmd", b'{"id":"1"}')]
    assert broker.sent[-1] == b"\x40\x02\x00\x07"
    c.close()


async def test_garbage_from_the_broker_ends_the_connection_with_oserror() -> None:
    broker = FakeBroker()
    c = client(broker)
    await c.connect()
    broker.push(b"\x20\x02\x00\x00")  # a second CONNACK: protocol violation
    for _ in range(50):
        if not c.connected:
            break
        await asyncio.sleep(0.01)
    assert not c.connected and isinstance(c.error, OSError)
    with pytest.raises(OSError):
        await c.publish("t", b"x")


async def test_silent_broker_fails_the_keepalive() -> None:
    broker = FakeBroker()
    broker.answer_pings = False
    c = client(broker, keepalive_s=1)
    await c.connect()
    for _ in range(60):
        if not c.connected:
            break
        await asyncio.sleep(0.05)
    assert not c.connected and "keepalive" in str(c.error)
    assert any(p == b"\xc0\x00" for p in broker.sent)  # it did ask


async def test_connect_timeout_is_an_oserror() -> None:
    async def hang(host: str, port: int) -> Any:
        await asyncio.sleep(10)

    c = mqtt.Client("dev", "h", 1, opener=hang, timeout_s=0.1)
    with pytest.raises(OSError, match="timed out"):
        await c.connect()
