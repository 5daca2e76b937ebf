"""deltasense/paho_io.py held to paho's own reading and acknowledging.

A paho client reads from a fake socket that behaves as the kernel's does: the
bytes that have arrived, at most what is asked, BlockingIOError when none are
there.  The event loop is level-triggered: it calls ``loop_read`` while the
kernel holds bytes, so the property that matters is that after every arrival
each whole packet received so far has reached ``on_message`` — a packet left in
the buffer with the kernel empty would wait there for the next bytes."""

from __future__ import annotations

import struct

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from deltasense import paho_io


class KernelSocket:
    """The bytes that have arrived and not been read; what was sent."""

    def __init__(self) -> None:
        self.arrived = bytearray()
        self.sent = bytearray()
        self.recvs = 0
        self.closed = False

    def recv(self, bufsize: int) -> bytes:
        self.recvs += 1
        if not self.arrived:
            if self.closed:
                return b""
            raise BlockingIOError
        out = bytes(self.arrived[:bufsize])
        del self.arrived[:bufsize]
        return out

    def send(self, data: bytes | bytearray) -> int:
        self.sent += data
        return len(data)

    def close(self) -> None:  # paho closes its socket when the client goes
        self.closed = True


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    """A QoS 1 PUBLISH of MQTT 3.1.1."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + struct.pack("!H", mid) + payload
    length, rl = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        rl.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x32]) + bytes(rl) + body


def client_on(
    sock: KernelSocket, *, buffered: bool
) -> tuple[paho.Client, list[tuple[str, bytes, int]]]:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.manual_ack_set(True)
    got: list[tuple[str, bytes, int]] = []
    client.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload), m.mid))
    client._sock = sock  # type: ignore[assignment]
    if buffered:
        paho_io.buffer_reads(client)
    return client, got


def readable(client: paho.Client, sock: KernelSocket) -> None:
    """What a level-triggered event loop does while the kernel holds bytes."""
    for _ in range(10_000):
        if not sock.arrived:
            return
        assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    raise AssertionError("loop_read made no progress")


messages = st.lists(
    st.tuples(
        st.sampled_from(["a/b/water/d1/tele", "bac-lieu/phuong-1/lamp/l-0001/tele", "t"]),
        st.binary(min_size=0, max_size=300),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_buffered_reads_deliver_what_paho_delivers_after_every_arrival(
    msgs: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    packets = [publish_packet(t, p, i + 1) for i, (t, p) in enumerate(msgs)]
    stream = b"".join(packets)
    # Where each packet ends in the stream: the packets whole after n bytes.
    ends, total = [], 0
    for packet in packets:
        total += len(packet)
        ends.append(total)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=12))))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

    shipped_sock, buffered_sock = KernelSocket(), KernelSocket()
    shipped, shipped_got = client_on(shipped_sock, buffered=False)
    buffered, buffered_got = client_on(buffered_sock, buffered=True)
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        for sock, client in ((shipped_sock, shipped), (buffered_sock, buffered)):
            sock.arrived += chunk
            readable(client, sock)
        whole = sum(1 for end in ends if end <= seen)
        assert len(buffered_got) == whole, "a whole packet was left waiting in the buffer"
        assert buffered_got == shipped_got
    assert buffered_got == [(t, p, i + 1) for i, (t, p) in enumerate(msgs)]
    # The point of it: fewer recv() calls than paho's three or more a packet.
    assert buffered_sock.recvs <= shipped_sock.recvs


def test_a_backlog_in_one_arrival_is_read_with_a_few_recvs_and_one_wake_up() -> None:
    sock = KernelSocket()
    client, got = client_on(sock, buffered=True)
    sock.arrived += b"".join(publish_packet("s/d/water/x/tele", b"{}", i) for i in range(1, 201))
    assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS  # one wake-up
    assert [mid for _, _, mid in got] == list(range(1, 201))
    assert sock.recvs <= 2  # the chunk, then nothing left
    shipped_sock = KernelSocket()
    shipped, shipped_got = client_on(shipped_sock, buffered=False)
    shipped_sock.arrived += b"".join(publish_packet("s/d/water/x/tele", b"{}", 1) for _ in range(3))
    shipped.loop_read()
    assert len(shipped_got) == 1  # paho as shipped: one packet a wake-up


def test_the_end_of_the_stream_is_a_lost_connection_as_for_paho() -> None:
    for buffered in (False, True):
        sock = KernelSocket()
        client, got = client_on(sock, buffered=buffered)
        sock.arrived += publish_packet("a", b"x", 7)
        sock.closed = True
        client.loop_read()
        assert got == [("a", b"x", 7)]
        assert client.loop_read() == MQTTErrorCode.MQTT_ERR_CONN_LOST


def test_bytes_of_an_old_connection_never_reach_a_new_one() -> None:
    old = KernelSocket()
    client, got = client_on(old, buffered=True)
    reads = paho_io.BufferedReads  # the instance was made by client_on; reach it by its recv
    assert isinstance(client._sock_recv.__self__, reads)  # type: ignore[attr-defined]
    packet = publish_packet("a", b"old", 1)
    old.arrived += packet
    assert client._sock_recv(1) == packet[:1]  # a packet begun; the rest buffered
    new = KernelSocket()
    client._sock = new  # type: ignore[assignment]
    client._in_packet = {  # what paho's reconnect sets up, as its _reset_sockets does
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }
    assert client._sock_recv.__self__.pending == 0  # type: ignore[attr-defined]
    new.arrived += publish_packet("b", b"new", 2)
    readable(client, new)
    assert got == [("b", b"new", 2)]


def test_ack_all_writes_the_bytes_paho_ack_writes_in_one_send() -> None:
    acks = [(mid, 1) for mid in (1, 2, 255, 256, 65_535, 9)]
    shipped_sock, one_sock = KernelSocket(), KernelSocket()
    shipped, _ = client_on(shipped_sock, buffered=False)
    one, _ = client_on(one_sock, buffered=True)
    sends: list[int] = []
    real_send = one_sock.send

    def counted(data: bytes | bytearray) -> int:
        sends.append(len(data))
        return real_send(data)

    one_sock.send = counted  # type: ignore[method-assign]
    for mid, qos in acks:
        shipped.ack(mid, qos)
    paho_io.ack_all(one, acks)
    assert (
        bytes(one_sock.sent)
        == bytes(shipped_sock.sent)
        == paho_io.puback_bytes([m for m, _ in acks])
    )
    assert sends == [4 * len(acks)]
    assert one_sock.sent[:4] == b"\x40\x02\x00\x01"


@pytest.mark.parametrize("acks", [[], [(3, 2)], [(1, 1), (2, 2), (3, 1)]])
def test_ack_all_leaves_qos_2_and_empty_batches_to_paho(acks: list[tuple[int, int]]) -> None:
    shipped_sock, one_sock = KernelSocket(), KernelSocket()
    shipped, _ = client_on(shipped_sock, buffered=False)
    one, _ = client_on(one_sock, buffered=False)
    for mid, qos in acks:
        shipped.ack(mid, qos)
    paho_io.ack_all(one, acks)
    assert bytes(one_sock.sent) == bytes(shipped_sock.sent)
    assert (len(one_sock.sent) > 0) == bool(acks)
