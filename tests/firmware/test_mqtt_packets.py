# firmware-test: micropython
"""MQTT 3.1.1 packet encoding of ds.mqtt against byte sequences from the spec
(OASIS MQTT 3.1.1, sections 2.2.3 and 3)."""

from ds import mqtt
from fwtest import raises


def test_remaining_length_examples_from_the_spec() -> None:
    # Table 2.4: 0 -> 00, 127 -> 7F, 128 -> 80 01, 16383 -> FF 7F, 16384 -> 80 80 01
    assert mqtt.encode_length(0) == b"\x00"
    assert mqtt.encode_length(127) == b"\x7f"
    assert mqtt.encode_length(128) == b"\x80\x01"
    assert mqtt.encode_length(16383) == b"\xff\x7f"
    assert mqtt.encode_length(16384) == b"\x80\x80\x01"
    assert mqtt.encode_length(268435455) == b"\xff\xff\xff\x7f"
    raises(ValueError, mqtt.encode_length, 268435456)
    raises(ValueError, mqtt.encode_length, -1)


def test_connect_with_retained_will_and_credentials() -> None:
    pkt = mqtt.connect_packet(
        "wl-p1-001",
        60,
        clean=False,
        will=("s/d/water/wl-p1-001/status", b'{"state":"offline"}', 1, True),
        user="wl-p1-001",
        password="pw",
    )
    assert pkt[0] == 0x10
    body = pkt[2:]  # remaining length < 128: one byte
    assert pkt[1] == len(body)
    assert body[:7] == b"\x00\x04MQTT\x04"
    # flags: user 0x80, password 0x40, will retain 0x20, will QoS 1 0x08, will 0x04, not clean
    assert body[7] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04
    assert body[8:10] == b"\x00\x3c"
    assert body[10:21] == b"\x00\x09wl-p1-001"
    assert b'\x00\x13{"state":"offline"}' in body
    assert body.endswith(b"\x00\x02pw")


def test_connect_clean_without_will() -> None:
    pkt = mqtt.connect_packet("a", 30)
    assert pkt == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x1e\x00\x01a"


def test_publish_qos1_with_packet_id_and_dup() -> None:
    pkt = mqtt.publish_packet("a/b", b"hi", qos=1, retain=True, pid=258)
    assert pkt == b"\x33\x09\x00\x03a/b\x01\x02hi"
    dup = mqtt.publish_packet("a/b", b"hi", qos=1, retain=True, pid=258, dup=True)
    assert dup[0] == 0x3B and dup[1:] == pkt[1:]
    assert mqtt.publish_packet("t", b"", qos=0) == b"\x30\x03\x00\x01t"


def test_publish_head_in_place_matches_publish_packet() -> None:
    topic = "a/b/" + "t" * 150
    for qos, retain, payload in ((1, False, b"x" * 300), (0, True, b"hi"), (1, True, b"")):
        room = mqtt.head_room(len(topic))
        buf = bytearray(room) + payload
        start = mqtt.put_publish_head(buf, room, topic.encode(), len(payload), qos, retain, 513)
        assert bytes(buf[start:]) == mqtt.publish_packet(topic, payload, qos, retain, 513)
    pkt = memoryview(bytearray(mqtt.publish_packet("a", b"x", 1, False, 1)))
    assert mqtt.dup_of(pkt) is pkt and pkt[0] == 0x3A  # DUP set in place


def test_subscribe_and_puback() -> None:
    pkt = mqtt.subscribe_packet(10, [("x/cmd", 1), ("x/cfg", 1)])
    assert pkt == b"\x82\x12\x00\x0a\x00\x05x/cmd\x01\x00\x05x/cfg\x01"
    assert mqtt.puback_packet(513) == b"\x40\x02\x02\x01"
