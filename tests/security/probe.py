"""MQTT v5 probes that report what the broker answered (reason codes).

aiomqtt does not expose a PUBACK's reason code; a refused QoS 1 publish is
answered 135 (Not authorized) by Mosquitto under MQTT v5 and silently dropped
under 3.1.1, so these probes speak v5 through paho directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

NOT_AUTHORIZED = 135
# A PUBACK below 0x80 accepts the publish: 0, or 16 "no matching subscribers"
# (nobody was subscribed at that moment; authorised all the same).
ACCEPTED = frozenset({0, 16})
GRANTED_QOS1 = 1


class Refused(Exception):
    """CONNECT was answered with a failure reason code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"connect refused with reason code {code}")
        self.code = code


@dataclass
class Probe:
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    will: tuple[str, bytes] | None = None
    timeout_s: float = 5.0
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5
        )
        if self.username is not None:
            self._c.username_pw_set(self.username, self.password)
        if self.will is not None:
            self._c.will_set(self.will[0], self.will[1], qos=1, retain=True)
        self._connack = threading.Event()
        self._connect_rc = -1
        self._acks: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._lock = threading.Lock()
        self.disconnected = threading.Event()
        self._c.on_connect = self._on_connect
        self._c.on_publish = self._on_publish
        self._c.on_subscribe = self._on_subscribe
        self._c.on_message = self._on_message
        self._c.on_disconnect = lambda *a: self.disconnected.set()

    # --- callbacks (paho's network thread) ------------------------------------------------
    def _on_connect(self, c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._connect_rc = rc.value
        self._connack.set()

    def _done(self, mid: int, value: Any) -> None:
        with self._lock:
            slot = self._acks.setdefault(mid, (threading.Event(), []))
        slot[1].append(value)
        slot[0].set()

    def _on_publish(self, c: Any, u: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        self._done(mid, rc.value)

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: list[ReasonCode], props: Any) -> None:
        self._done(mid, [r.value for r in rcs])

    def _on_message(self, c: Any, u: Any, m: paho.MQTTMessage) -> None:
        self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))

    def _wait(self, mid: int) -> Any:
        with self._lock:
            slot = self._acks.setdefault(mid, (threading.Event(), []))
        assert slot[0].wait(self.timeout_s), f"no answer for message {mid}"
        return slot[1][0]

    # --- use -------------------------------------------------------------------------------
    def connect(self) -> Probe:
        """Connect, or raise :class:`Refused` with the broker's reason code."""
        self._c.connect("127.0.0.1", self.port, keepalive=30, clean_start=True)
        self._c.loop_start()
        if not self._connack.wait(self.timeout_s):
            self.close()
            raise AssertionError("no CONNACK")
        if self._connect_rc != 0:
            self.close()
            raise Refused(self._connect_rc)
        return self

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """QoS 1 publish; the PUBACK's reason code (0 or 16: accepted, 135: not authorized)."""
        info = self._c.publish(topic, payload, qos=1, retain=retain)
        return int(self._wait(info.mid))

    def subscribe(self, topic: str) -> int:
        """The SUBACK's reason code for one filter (1: granted QoS 1, 135: refused)."""
        _, mid = self._c.subscribe(topic, qos=1, properties=Properties(paho.PacketTypes.SUBSCRIBE))
        assert mid is not None
        return int(self._wait(mid)[0])

    def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT (the Will is published)."""
        self._c.socket().close()  # type: ignore[union-attr]
        self._c.loop_stop()

    def close(self) -> None:
        if self._c.is_connected():
            self._c.disconnect()
        self._c.loop_stop()

    def __enter__(self) -> Probe:
        return self.connect()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
