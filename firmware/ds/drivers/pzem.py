"""Peacefair PZEM-004T v3.0 energy meter over Modbus RTU (UART 9600 8N1).

Source: PZEM-004T V3.0 user manual (Innovators Guide), section 2 "Communication
protocol": 2.2 physical layer (9600 baud, 8N1), 2.3 function codes (0x04 read
input registers), 2.4 register map, 2.6 CRC (Modbus CRC-16). CRC-16/MODBUS
(poly 0xA001 reflected, init 0xFFFF, low byte first) is the Modbus over Serial
Line spec v1.02, section 6.2.2.
"""

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ADDR_DEFAULT = 0x01  # factory slave address (manual 2.3)
ADDR_GENERAL = 0xF8  # answered by any single meter on the bus (manual 2.3)
FC_READ_INPUT = 0x04  # manual 2.3
REG_START = 0x0000
REG_COUNT = 10  # 0x0000..0x0009 (manual 2.4)
RESPONSE_LEN = 3 + 2 * REG_COUNT + 2  # addr, fc, byte count, data, crc


class ModbusError(ValueError):  # bad data on the wire, like int("x")
    pass


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data``."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def with_crc(frame: bytes) -> bytes:
    c = crc16(frame)
    return frame + bytes((c & 0xFF, c >> 8))


def read_request(addr: int = ADDR_DEFAULT) -> bytes:
    """The 8-byte frame reading input registers 0x0000..0x0009."""
    return with_crc(
        bytes((addr, FC_READ_INPUT, REG_START >> 8, REG_START & 0xFF, 0, REG_COUNT))
    )


def decode_response(frame: bytes, addr: int = ADDR_DEFAULT) -> "dict[str, Any]":
    """Readings from a response frame; ModbusError on any defect.

    Register map (manual 2.4), big-endian registers, 32-bit values low word first:
    0x0000 voltage 0.1 V; 0x0001/2 current 0.001 A; 0x0003/4 power 0.1 W;
    0x0005/6 energy 1 Wh; 0x0007 frequency 0.1 Hz; 0x0008 power factor 0.01;
    0x0009 alarm (0xFFFF alarm, 0x0000 none).
    """
    if len(frame) >= 5 and frame[1] == FC_READ_INPUT | 0x80:
        raise ModbusError("exception code %d" % frame[2])
    if len(frame) != RESPONSE_LEN:
        raise ModbusError("frame of %d bytes, want %d" % (len(frame), RESPONSE_LEN))
    if crc16(frame[:-2]) != (frame[-2] | (frame[-1] << 8)):
        raise ModbusError("bad CRC")
    if frame[0] != addr and addr != ADDR_GENERAL:
        raise ModbusError("answer from address %d" % frame[0])
    if frame[1] != FC_READ_INPUT or frame[2] != 2 * REG_COUNT:
        raise ModbusError("unexpected function or length")
    r = [(frame[3 + 2 * i] << 8) | frame[4 + 2 * i] for i in range(REG_COUNT)]
    return {
        "v": r[0] / 10,
        "a": (r[1] | (r[2] << 16)) / 1000,
        "power_w": (r[3] | (r[4] << 16)) / 10,
        "energy_wh_total": r[5] | (r[6] << 16),
        "hz": r[7] / 10,
        "pf": r[8] / 100,
        "alarm": r[9] == 0xFFFF,
    }


class PZEM004T:
    """One meter on ``uart``. :meth:`read` returns the decoded dict."""

    def __init__(self, uart: "Any", addr: int = ADDR_DEFAULT, sleep_ms: "Any" = None) -> None:
        self.uart = uart
        self.addr = addr
        self.sleep_ms = sleep_ms
        self.errors = 0

    def read(self) -> "dict[str, Any]":
        while self.uart.read(64):  # drop stale bytes
            pass
        self.uart.write(read_request(self.addr))
        if self.sleep_ms is not None:
            # 25 bytes at 9600 baud (10 bits each) take 26 ms, plus the meter's turnaround.
            self.sleep_ms(60)
        buf = bytearray()
        for _ in range(4):
            chunk = self.uart.read(RESPONSE_LEN - len(buf))
            if chunk:
                buf.extend(chunk)
            if len(buf) >= RESPONSE_LEN or (len(buf) >= 5 and buf[1] & 0x80):
                break
        try:
            return decode_response(bytes(buf), self.addr)
        except ModbusError:
            self.errors += 1
            raise
