# A small non-blocking MQTT 3.1.1 client for MicroPython's asyncio (and CPython's).
#
# Why our own and not umqtt.simple: umqtt.simple does blocking socket calls
# (connect, read of the CONNACK, wait_msg) that would stall the whole event loop,
# sampling included, for as long as the network hangs. This client does every
# read and write through an injected asyncio stream transport, bounds each step
# with a timeout, and reports every network failure as OSError.
#
# Packet layout: MQTT 3.1.1 (OASIS standard, 2014), sections 2 and 3.
import asyncio
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from ds import clock

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82  # type 8 with the reserved flags 0b0010 (3.8.1)
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

MAX_PACKET = 8192  # a device never needs more: cfg and cmd are small
_CPYTHON = sys.implementation.name == "cpython"


def encode_length(n: int) -> bytes:
    """Remaining length as the variable byte integer of 2.2.3."""
    if n < 0 or n > 268435455:
        raise ValueError("length out of range")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s: "Any") -> bytes:
    b = s.encode() if isinstance(s, str) else bytes(s)
    if len(b) > 65535:
        raise ValueError("string too long")
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_length(len(body)) + body


def dup_of(packet: "Any") -> "Any":
    """The same PUBLISH with the DUP flag set (3.3.1.1), for a resend: a new
    ``bytes``, or the flag set in place in a packet built in a buffer."""
    if isinstance(packet, bytes):
        return bytes((packet[0] | 0x08,)) + packet[1:]
    packet[0] |= 0x08
    return packet


def connect_packet(
    client_id: str,
    keepalive_s: int,
    *,
    clean: bool = True,
    will: "Any" = None,
    user: "Any" = None,
    password: "Any" = None,
) -> bytes:
    """CONNECT (3.1). ``will`` is (topic, payload, qos, retain) or None."""
    flags = 0x02 if clean else 0
    tail = _str(client_id)
    if will is not None:
        topic, payload, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        tail += _str(topic) + _str(payload)
    if user is not None:
        flags |= 0x80
        tail += _str(user)
        if password is not None:
            flags |= 0x40
            tail += _str(password)
    head = _str("MQTT") + bytes((4, flags, keepalive_s >> 8, keepalive_s & 0xFF))
    return _packet(CONNECT, head + tail)


def publish_packet(
    topic: str, payload: bytes, qos: int = 0, retain: bool = False, pid: int = 0, dup: bool = False
) -> bytes:
    first = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    t = _str(topic)
    n = len(t) + len(payload) + (2 if qos else 0)
    # One join instead of chained "+": a 4 KiB batch is copied once, not three times
    # (the heap of a 96 KiB node fragments on every large temporary).
    parts = [bytes((first,)), encode_length(n), t]
    if qos:
        parts.append(bytes((pid >> 8, pid & 0xFF)))
    parts.append(payload)
    return b"".join(parts)


def head_room(topic_len: int) -> int:
    """Bytes :func:`put_publish_head` may need before a payload (QoS 1)."""
    return 1 + 4 + 2 + topic_len + 2


def put_publish_head(
    buf: "Any", off: int, topic: bytes, n: int, qos: int = 0, retain: bool = False, pid: int = 0
) -> int:
    """Write the header of a PUBLISH whose ``n``-byte payload is already in
    ``buf[off:]`` into the bytes right before it (at most :func:`head_room`);
    returns where the packet starts. The payload is never copied."""
    t = len(topic)
    rem = 2 + t + (2 if qos else 0) + n
    if rem > 268435455:
        raise ValueError("length out of range")
    i = off
    if qos:
        i -= 2
        buf[i] = pid >> 8
        buf[i + 1] = pid & 0xFF
    i -= t
    buf[i : i + t] = topic
    i -= 2
    buf[i] = t >> 8
    buf[i + 1] = t & 0xFF
    k = 1  # bytes of the remaining length (2.2.3)
    while rem >> (7 * k):
        k += 1
    i -= k
    for j in range(k):
        b = (rem >> (7 * j)) & 0x7F
        buf[i + j] = b | 0x80 if j < k - 1 else b
    i -= 1
    buf[i] = PUBLISH | (qos << 1) | (1 if retain else 0)
    return i


def subscribe_packet(pid: int, topics: "Any") -> bytes:
    """SUBSCRIBE for [(topic, qos), ...]."""
    body = bytes((pid >> 8, pid & 0xFF))
    for topic, qos in topics:
        body += _str(topic) + bytes((qos,))
    return _packet(SUBSCRIBE, body)


def puback_packet(pid: int) -> bytes:
    return bytes((PUBACK, 2, pid >> 8, pid & 0xFF))


class StreamTransport:
    """The real transport: an asyncio stream pair (``asyncio.open_connection``)."""

    def __init__(self, reader: "Any", writer: "Any") -> None:
        self._r = reader
        self._w = writer

    async def recv(self, n: int) -> bytes:
        try:
            data = await self._r.readexactly(n)
        except OSError:
            raise
        except EOFError:  # CPython's IncompleteReadError: one failure type, OSError
            raise OSError("connection closed") from None
        if len(data) != n:  # MicroPython may return short at EOF
            raise OSError("connection closed")
        return bytes(data)

    async def send(self, data: bytes) -> None:
        if _CPYTHON and not isinstance(data, bytes):
            data = bytes(data)  # CPython's transports may hold on to the buffer after drain()
        try:
            self._w.write(data)
            await self._w.drain()
        except OSError:
            raise
        except (EOFError, RuntimeError) as exc:  # e.g. writing to a closed transport
            raise OSError(repr(exc)) from None

    def close(self) -> None:
        try:
            self._w.close()
            if not _CPYTHON:
                # MicroPython's Stream.close() does nothing; only the coroutine
                # wait_closed() closes the socket. Close it now: else the socket, and
                # a TLS session's ~21 KiB of mbedTLS buffers, outlive the connection
                # (measured: tests/security/test_firmware_tls_micropython.py).
                self._w.s.close()
        except Exception:  # noqa: BLE001 - closing a dead socket may fail; it is gone anyway
            pass


async def open_stream(host: str, port: int, tls: "Any" = None) -> StreamTransport:
    """A TCP stream to the broker, over TLS with the ``ssl.SSLContext`` ``tls``
    (``ds.tls``), checking the broker's certificate names ``host``."""
    try:
        if tls is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host
            )
    except OSError:
        raise
    except Exception as exc:  # e.g. EOFError, socket.gaierror subclasses are OSError
        raise OSError(str(exc)) from exc
    return StreamTransport(reader, writer)


class Client:
    """One MQTT connection at a time; ``connect()`` again after a failure.

    ``opener(host, port)`` returns a transport with ``async recv(n)`` (exactly n
    bytes or OSError), ``async send(data)`` (``data`` is bytes or, from
    :meth:`publish_into`, a memoryview it must not keep) and ``close()``. ``on_message(topic,
    payload)`` is called for every incoming PUBLISH (QoS 1 is acked after it
    returns). Every public coroutine raises OSError on any network failure, and
    after one the connection is closed: the caller reconnects.
    """

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        *,
        opener: "Any" = open_stream,
        keepalive_s: int = 30,
        will: "Any" = None,
        user: "Any" = None,
        password: "Any" = None,
        on_message: "Any" = None,
        timeout_s: float = 10.0,
        ack_timeout_s: float = 5.0,
        retries: int = 2,
    ) -> None:
        self.client_id = client_id
        self.host = host
        self.port = port
        self.opener = opener
        self.keepalive_s = keepalive_s
        self.will = will
        self.user = user
        self.password = password
        self.on_message = on_message
        self.timeout_s = timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.connected = False
        self.error: "Any" = None  # why the last connection died
        self._t: "Any" = None
        self._pid = 0
        self._acks: dict = {}  # pid -> Event set by PUBACK / SUBACK
        self._tasks: list = []
        self._last_tx = 0
        self._last_rx = 0
        self._wlock = asyncio.Lock()

    # --- connection ------------------------------------------------------------
    async def connect(self, clean: bool = True) -> bool:
        """Open the transport, CONNECT, wait for CONNACK. Returns session_present."""
        self.close()
        self.error = None
        try:
            self._t = await asyncio.wait_for(self.opener(self.host, self.port), self.timeout_s)
            pkt = connect_packet(
                self.client_id,
                self.keepalive_s,
                clean=clean,
                will=self.will,
                user=self.user,
                password=self.password,
            )
            await asyncio.wait_for(self._t.send(pkt), self.timeout_s)
            head = await asyncio.wait_for(self._t.recv(4), self.timeout_s)
        except asyncio.TimeoutError:
            self.close()
            raise OSError("connect timed out") from None
        except OSError:
            self.close()
            raise
        if head[0] != CONNACK or head[1] != 2:
            self.close()
            raise OSError("bad CONNACK")
        if head[3] != 0:
            self.close()
            raise OSError("connection refused, code %d" % head[3])
        self.connected = True
        self._last_tx = self._last_rx = clock.ticks_ms()
        self._tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._pinger())]
        return bool(head[2] & 1)

    def close(self) -> None:
        """Drop the connection without DISCONNECT (the broker sends the Last Will)."""
        self.connected = False
        me = asyncio.current_task()
        for task in self._tasks:
            # The reader or pinger may be closing from inside itself; MicroPython
            # raises "can't cancel self" there (CPython allows it). It ends on its own.
            if task is not me:
                task.cancel()
        self._tasks = []
        if self._t is not None:
            self._t.close()
            self._t = None
        for ev in self._acks.values():
            ev.set()  # wake waiters: they see connected == False
        self._acks = {}

    async def disconnect(self) -> None:
        """Clean goodbye: DISCONNECT, so the broker discards the Last Will."""
        if self.connected:
            try:
                await self._send(bytes((DISCONNECT, 0)))
            except OSError:
                pass
        self.close()

    def _fail(self, exc: "Any") -> None:
        if self.connected:
            self.error = exc
        self.close()

    # --- sending ---------------------------------------------------------------
    async def _send(self, data: "Any") -> None:
        if not self.connected:
            raise OSError("not connected")
        async with self._wlock:
            try:
                await asyncio.wait_for(self._t.send(data), self.timeout_s)
            except asyncio.TimeoutError:
                exc = OSError("send timed out")
                self._fail(exc)
                raise exc from None
            except OSError as exc:
                self._fail(exc)
                raise
        self._last_tx = clock.ticks_ms()

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def _await_ack(self, pid: int, packet: "Any", dup: bool) -> None:
        """Send ``packet`` and wait for the ack of ``pid``; on timeout resend it
        (with the DUP flag when ``dup``; built only then, to spare the heap)."""
        ev = asyncio.Event()
        self._acks[pid] = ev
        try:
            await self._send(packet)
            for attempt in range(self.retries + 1):
                try:
                    await asyncio.wait_for(ev.wait(), self.ack_timeout_s)
                except asyncio.TimeoutError:
                    if attempt == self.retries:
                        exc = OSError("no ack for packet %d" % pid)
                        self._fail(exc)
                        raise exc from None
                    await self._send(dup_of(packet) if dup else packet)
                    continue
                if not self.connected:
                    raise OSError("connection lost")
                return
        finally:
            self._acks.pop(pid, None)

    async def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish; for QoS 1 return only after the broker's PUBACK (retried with DUP)."""
        if qos == 0:
            await self._send(publish_packet(topic, payload, 0, retain))
            return
        pid = self._next_pid()
        await self._await_ack(
            pid,
            publish_packet(topic, payload, 1, retain, pid),
            True,
        )

    async def publish_into(
        self, topic: bytes, buf: "Any", off: int, end: int, qos: int = 1, retain: bool = False
    ) -> None:
        """:meth:`publish` of the payload ``buf[off:end]`` of a bytearray, with
        the header written into ``buf`` before ``off`` (:func:`head_room`):
        no copy of the payload. ``buf`` must stay unchanged until this returns."""
        pid = self._next_pid() if qos else 0
        start = put_publish_head(buf, off, topic, end - off, qos, retain, pid)
        pkt = (buf if isinstance(buf, memoryview) else memoryview(buf))[start:end]
        if qos == 0:
            await self._send(pkt)
            return
        await self._await_ack(pid, pkt, True)

    async def subscribe(self, topics: "Any") -> None:
        """Subscribe to [(topic, qos), ...] and wait for the SUBACK."""
        pid = self._next_pid()
        pkt = subscribe_packet(pid, topics)
        await self._await_ack(pid, pkt, False)

    # --- receiving ---------------------------------------------------------------
    async def _read_packet(self) -> "Any":
        t = self._t
        first = (await t.recv(1))[0]
        n = 0
        shift = 0
        while True:
            b = (await t.recv(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise OSError("bad remaining length")
        if n > MAX_PACKET:
            raise OSError("packet too large: %d" % n)
        body = await t.recv(n) if n else b""
        return first, body

    async def _reader(self) -> None:
        try:
            while self.connected:
                first, body = await self._read_packet()
                self._last_rx = clock.ticks_ms()
                kind = first & 0xF0
                if kind in (PUBACK, SUBACK):
                    if len(body) < 2:
                        raise OSError("short ack")
                    ev = self._acks.get((body[0] << 8) | body[1])
                    if ev is not None:
                        ev.set()
                elif kind == PUBLISH:
                    await self._incoming(first, body)
                elif kind != PINGRESP:
                    raise OSError("unexpected packet 0x%02x" % first)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any broken packet ends the connection
            self._fail(exc if isinstance(exc, OSError) else OSError(repr(exc)))

    async def _incoming(self, first: int, body: bytes) -> None:
        qos = (first >> 1) & 3
        if len(body) < 2:
            raise OSError("short publish")
        tlen = (body[0] << 8) | body[1]
        topic = bytes(body[2 : 2 + tlen]).decode()
        pos = 2 + tlen
        pid = 0
        if qos:
            pid = (body[pos] << 8) | body[pos + 1]
            pos += 2
        if self.on_message is not None:
            try:
                self.on_message(topic, bytes(body[pos:]))
            except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the session
                print("mqtt: handler failed:", repr(exc))
        if qos:
            await self._send(puback_packet(pid))

    async def _pinger(self) -> None:
        """PINGREQ when idle; a connection silent for 1.5 keepalives is dead."""
        ka_ms = self.keepalive_s * 1000
        try:
            while self.connected:
                await clock.sleep_ms(ka_ms // 4)
                now = clock.ticks_ms()
                if clock.ticks_diff(now, self._last_rx) > ka_ms * 3 // 2:
                    self._fail(OSError("keepalive timeout"))
                    return
                if clock.ticks_diff(now, self._last_tx) >= ka_ms // 2:
                    await self._send(bytes((PINGREQ, 0)))
        except OSError:
            pass
