"""Helpers for firmware tests that run on MicroPython and on CPython alike.

No pytest here: firmware test modules are plain functions with ``assert``,
imported by pytest under CPython and by ``run_mpy.mjs`` on MicroPython.
"""

import os

try:
    import tempfile
except ImportError:  # MicroPython
    tempfile = None

_counter = [0]


def tmpdir() -> str:
    """A fresh empty directory."""
    if tempfile is not None:
        return tempfile.mkdtemp(prefix="dsfw-")
    _counter[0] += 1
    path = f"/tmp/dsfw-{_counter[0]}"
    try:  # noqa: SIM105 - MicroPython has no contextlib
        os.mkdir("/tmp")
    except OSError:
        pass
    os.mkdir(path)
    return path


def raises(exc: type, fn, *args, **kwargs) -> BaseException:  # type: ignore[no-untyped-def]
    """Call ``fn`` and return the ``exc`` it must raise; fail otherwise."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError(f"{exc.__name__} not raised")


def approx(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


class Records:
    """Encoded readings in a list, read like ``ds.spool.Spool`` reads them
    (``rec_len``, ``read_into``), for ``ds.encode.batch_into``."""

    def __init__(self, records: "list[bytes]") -> None:
        self.records = records

    def rec_len(self, k: int) -> int:
        return len(self.records[k])

    def read_into(self, k: int, buf: "bytearray", pos: int, skip: int = 0) -> int:
        rec = self.records[k][skip:]
        buf[pos : pos + len(rec)] = rec
        return len(rec)


def batch(records: "list[bytes]", hist: bool = False, room: int = 8) -> "tuple[bytes, int]":
    """``ds.encode.batch_into`` over ``records`` into a fresh buffer (with
    ``room`` bytes before the payload, as the MQTT header has): ``(payload, n)``."""
    from ds import encode

    buf = bytearray(room + encode.MAX_PAYLOAD_BYTES)
    begin, end, n = encode.batch_into(buf, room, Records(records), len(records), hist)
    return bytes(buf[begin:end]), n
