# firmware-test: micropython
"""PZEM-004T v3: CRC16/Modbus, request frame, register decoding, errors."""

from ds.drivers import pzem
from ds.hal_cpython import FakeUART
from fwtest import approx, raises


def _response(regs: "list[int]", addr: int = 1) -> bytes:
    body = bytes((addr, 0x04, 20))
    for r in regs:
        body += bytes((r >> 8, r & 0xFF))
    return pzem.with_crc(body)


# 230.1 V, 4.512 A, 1012.3 W, 88231 Wh (32-bit), 50.0 Hz, pf 0.97, no alarm
REGS = [2301, 4512, 0, 10123, 0, 88231 & 0xFFFF, 88231 >> 16, 500, 97, 0]


def test_crc_known_vectors() -> None:
    # CRC-16/MODBUS check value over "123456789" is 0x4B37 (CRC catalogue).
    assert pzem.crc16(b"123456789") == 0x4B37
    assert pzem.read_request(1) == bytes((0x01, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x70, 0x0D))


def test_decode_register_map_with_32_bit_low_word_first() -> None:
    r = pzem.decode_response(_response(REGS))
    assert r["v"] == 230.1 and r["a"] == 4.512 and r["hz"] == 50.0
    assert approx(r["power_w"], 1012.3, 1e-9) and r["pf"] == 0.97
    assert r["energy_wh_total"] == 88231 and r["alarm"] is False
    big = list(REGS)
    big[1], big[2] = 0x86A0, 0x0001  # 100000 mA
    big[9] = 0xFFFF
    r = pzem.decode_response(_response(big))
    assert r["a"] == 100.0 and r["alarm"] is True


def test_bad_frames_raise() -> None:
    good = _response(REGS)
    raises(pzem.ModbusError, pzem.decode_response, good[:-1])
    raises(pzem.ModbusError, pzem.decode_response, good[:10] + b"\x00" + good[11:])
    raises(pzem.ModbusError, pzem.decode_response, _response(REGS, addr=2), 1)
    err = pzem.with_crc(bytes((1, 0x84, 0x02)))
    e = raises(pzem.ModbusError, pzem.decode_response, err)
    assert "2" in str(e)


def test_driver_round_trip_over_fake_uart() -> None:
    uart = FakeUART()
    uart.feed(b"\x00\x00stale")
    uart.responder = lambda req: _response(REGS) if req == pzem.read_request(1) else b""
    meter = pzem.PZEM004T(uart, sleep_ms=lambda ms: None)
    assert meter.read()["v"] == 230.1
    assert uart.tx == [pzem.read_request(1)]
    uart.responder = lambda req: b"\x01\x04"  # truncated answer
    raises(pzem.ModbusError, meter.read)
    assert meter.errors == 1
