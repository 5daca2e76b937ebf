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
