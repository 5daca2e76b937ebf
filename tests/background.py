"""Slow, pure computations that a few tests need, made in the background while the
rest of the suite runs.

The analytics acceptance matrix (every scenario × seed through the engine) and the
typhoon backtest's alert events are minutes of CPU with no I/O; most of the
integration tests spend their time waiting on brokers, databases and timers.  So
``pytest_collection_finish`` (tests/conftest.py) starts each job a collected test
needs as ``python -m MODULE OUT``, in a process group of its own at the lowest CPU
priority (nice 19, in the suite's own session so that the nice value counts): it
takes only the cycles the suite leaves idle and yields them at once when a test
wants them.  A job module computes its result with :func:`serve`; the consuming
test gets it with :func:`result`, which waits for the job through :func:`output`
(raising its priority to normal: root may; for anyone else nice 19 still gets
the whole CPU once the suite only waits).  When there is no output (the job was
not started, as in a run of one file, or it failed) the test computes the result
in-process, as it would without this module.  Either way the result is made by
the same code, and it crosses as MessagePack (exact floats; no pickle).

The children are killed and their files removed at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

_T = TypeVar("_T")

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class _Job:
    process: subprocess.Popen[bytes]
    out: Path
    log: Path


_jobs: dict[str, _Job] = {}
_dir: Path | None = None


def start(module: str) -> None:
    """Start ``python -m module OUT`` at nice 19 (once per session)."""
    global _dir
    if module in _jobs:
        return
    if _dir is None:
        _dir = Path(tempfile.mkdtemp(prefix="ds-background-"))
    out = _dir / f"{module}.out"
    log = _dir / f"{module}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(out)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            # Its own process group (its workers get its priority with it), but the
            # suite's session: with the kernel's autogroup scheduling
            # (sched_autogroup_enabled, on here) each session is scheduled as one
            # group and nice counts only inside it, so a new session would get half
            # the CPU against the suite whatever its nice value (seen in CI).
            process_group=0,
            preexec_fn=lambda: os.nice(19),
        )
    _jobs[module] = _Job(process, out, log)


def output(module: str) -> bytes | None:
    """What the job wrote, once it is done; None if it was not started or failed."""
    job = _jobs.get(module)
    if job is None:
        return None
    if job.process.poll() is None:
        # The suite now waits for it: a normal share of the CPU for it and its workers.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PGRP, job.process.pid, 0)
    if job.process.wait() != 0 or not job.out.exists():
        tail = job.log.read_bytes()[-2000:].decode(errors="replace")
        print(f"background job {module} failed (rc {job.process.returncode}):\n{tail}")
        return None
    return job.out.read_bytes()


def result(module: str, compute: Callable[[], _T], kind: type[_T]) -> _T:
    """The job's result decoded as ``kind``, or ``compute()`` here if it has none."""
    data = output(module)
    if data is None:
        return compute()
    return msgspec.msgpack.decode(data, type=kind)


def serve(compute: Callable[[], object]) -> None:
    """A job module's ``__main__``: ``compute()`` written to the path it was given."""
    write(Path(sys.argv[1]), msgspec.msgpack.encode(compute()))


def write(out: Path, data: bytes) -> None:
    """The child's result, whole or absent (what :func:`output` reads)."""
    part = out.with_suffix(".part")
    part.write_bytes(data)
    part.replace(out)


def stop_all() -> None:
    """Kill what still runs (with its workers) and remove the files (session end)."""
    global _dir
    for job in _jobs.values():
        if job.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.process.pid, 9)
            job.process.wait()
    _jobs.clear()
    if _dir is not None:
        shutil.rmtree(_dir, ignore_errors=True)
        _dir = None
