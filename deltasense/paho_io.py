"""Cheaper socket I/O for a paho client that takes a stream of messages (ingest).

paho 2.2 reads one MQTT packet with three or more ``recv()`` calls (the command
byte, each remaining-length byte, then the body), its ``loop_read`` reads one
packet however many are waiting (it ignores ``max_packets``), and under aiomqtt
each call is one wake-up of the event loop; with manual acknowledgement every
PUBACK is a ``send()`` of its own.  At 10 000 single-reading messages/s that was
about a quarter of ingest's samples (py-spy: ``recv`` 7 %, the event loop's rounds 12 %,
the PUBACK writes 5 %), more than decoding and encoding the readings.

:func:`buffer_reads` makes paho read the socket 64 KiB at a time and parse every
packet those bytes hold in one wake-up; :func:`ack_all` writes a batch's PUBACKs
as one ``send()``.  Both reach paho's private methods (``_sock_recv``,
``_packet_queue``), as ingest's manual acknowledgement already does through
aiomqtt (which has no switch for it): paho and aiomqtt are pinned in
pyproject.toml, and tests/unit/test_paho_io.py holds the two to paho's own
reading and acknowledging.  No maintained Python MQTT client does both under
aiomqtt; gmqtt reads through an asyncio protocol but would replace aiomqtt and
paho in one service.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

# One recv() per this many bytes at most: hundreds of ~100-byte single-reading
# packets a call.  Not tuned: no other size was measured.
READ_CHUNK = 65_536

# A PUBACK of MQTT 3.1.1 (and of MQTT 5 with reason "success", which may be left
# out): 0x40, remaining length 2, the packet id; as one big-endian 32-bit word.
_PUBACK_HEAD = 0x4002 << 16


class BufferedReads:
    """paho's ``_sock_recv`` served from a buffer of one ``recv(READ_CHUNK)``, and a
    ``loop_read`` that parses packets while the buffer holds bytes.

    The event loop wakes the reader only while the kernel holds bytes; so
    ``loop_read`` must not return with a whole packet left in the buffer, or it
    would wait there until the next bytes come.  It returns once the buffer is
    empty at a packet's end (at most ``READ_CHUNK`` bytes of packets a wake-up, so
    one busy connection cannot hold the loop for long)."""

    def __init__(self, client: paho.Client) -> None:
        self._client = client
        # The class's own methods, bound: the TLS mapping (SSLWantRead becomes
        # BlockingIOError) stays paho's, and a packet is read the way paho reads it.
        self._recv = client._sock_recv
        self._read_one = client.loop_read
        self._buf = b""
        self._at = 0
        self._sock: Any = None
        client._sock_recv = self.recv  # type: ignore[method-assign]
        client.loop_read = self.loop_read  # type: ignore[method-assign]

    @property
    def pending(self) -> int:
        """Bytes received from the kernel that paho has not read yet."""
        if self._client._sock is not self._sock:
            return 0
        return max(0, len(self._buf) - self._at)

    def recv(self, bufsize: int) -> bytes:
        """At most ``bufsize`` bytes, as ``socket.recv`` answers (``b""`` at the end of
        the stream, BlockingIOError when nothing has come)."""
        buf, at = self._buf, self._at
        if self._client._sock is not self._sock:
            # A new connection: bytes left from the one before are not its bytes.
            self._sock, buf, at = self._client._sock, b"", 0
        if at >= len(buf):
            self._buf, self._at = b"", 0  # nothing stale if recv raises
            buf = self._recv(READ_CHUNK)
            if not buf:
                return buf
            at = 0
        end = at + bufsize
        self._buf, self._at = buf, end
        return buf[at:end]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's ``loop_read``, again while a packet's bytes wait in the buffer."""
        rc = self._read_one()
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self.pending:
            rc = self._read_one()
        return rc


def buffer_reads(client: paho.Client) -> BufferedReads:
    """Put ``client``'s socket reads behind a buffer (before it connects)."""
    return BufferedReads(client)


def puback_bytes(mids: Sequence[int]) -> bytes:
    """The PUBACK packets of ``mids``, in order."""
    return struct.pack(f"!{len(mids)}I", *[_PUBACK_HEAD | mid for mid in mids])


def ack_all(client: paho.Client, acks: Sequence[tuple[int, int]]) -> None:
    """Acknowledge ``acks`` ((packet id, QoS) of received messages, in the order they
    came) as paho's ``ack`` would, QoS 1 PUBACKs written as one packet.

    A QoS 2 message anywhere in the batch sends every acknowledgement through
    paho's ``ack`` instead, so the order of PUBACKs and PUBCOMPs stays the order
    of the messages (ingest subscribes at QoS 1; this is for safety, not speed)."""
    if not acks:
        return
    if any(qos != 1 for _, qos in acks):
        for mid, qos in acks:
            client.ack(mid, qos)
        return
    packet = puback_bytes([mid for mid, _ in acks])
    client._packet_queue(paho.PUBACK, packet, 0, 1)
