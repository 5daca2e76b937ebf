"""The typhoon backtest's alert events, cached by their inputs and otherwise made
in the background while other tests run.

``run_scenario("typhoon", 1, …)`` is 20–100 s of CPU on this box (every minute of
the 26-hour storm through the engine) and its events are all the notifier's typhoon
tests need.  They are a pure function of the code that makes them, so they are kept
in pytest's cache (``.pytest_cache``) under a hash of every file of the packages
the backtest runs (:data:`SOURCES`), the interpreter and the installed
distributions: any change there makes them again.  When the cache has nothing for
that hash and a session collects a test that uses them, :func:`start` runs the
backtest in a child process at the lowest CPU priority, so it takes only cycles the
suite leaves idle (the integration tests spend much of their time waiting on
brokers, databases and timers).  :func:`events` is what the fixture calls: the
cached events, the child's (its priority raised once the suite waits for it), or,
if neither can be had, the backtest run in this process as before.  Either way the
events are the ones ``run_scenario`` makes: the same code, seed and thresholds.

Run as ``python -m tests.integration.typhoon_support OUT`` it is the child: it
writes the events to ``OUT`` as MessagePack (exact floats; no pickle).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

from deltasense.alerts import AlertEvent

ROOT = Path(__file__).resolve().parents[2]
SCENARIO, SEED = "typhoon", 1
# Every package of this tree that run_scenario imports or reads (the child checks).
SOURCES = ("analytics", "backtest", "deltasense", "simulators", "firmware")

_child: subprocess.Popen[bytes] | None = None
_out: Path | None = None
_owned = False  # _out is a temporary file, not a cache entry


def inputs_key() -> str:
    """A hash of what the events depend on: the sources, interpreter, distributions."""
    h = hashlib.sha256(f"{SCENARIO}|{SEED}|{sys.version}".encode())
    for dist in sorted(f"{d.name}=={d.version}" for d in importlib.metadata.distributions()):
        h.update(dist.encode())
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:32]


def compute() -> list[AlertEvent]:
    from analytics.thresholds import load_thresholds
    from backtest.runner import run_scenario

    return list(run_scenario(SCENARIO, SEED, load_thresholds()).events)


def start(cache_dir: Path | None) -> None:
    """Use the cached events if ``cache_dir`` has them, else start the child (once),
    which writes them there (or to a temporary file); it lowers its own priority."""
    global _child, _out, _owned
    if _out is not None:
        return
    if cache_dir is None:
        _out, _owned = Path(tempfile.mkdtemp(prefix="ds-typhoon-")) / "events.msgpack", True
    else:
        _out = cache_dir / f"{inputs_key()}.msgpack"
        for stale in cache_dir.glob("*.msgpack"):
            if stale != _out:
                stale.unlink(missing_ok=True)
        if _out.exists():
            return
    _child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.typhoon_support", str(_out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def events() -> list[AlertEvent]:
    """The typhoon events: cached, the child's if it finishes, else made here."""
    child, out = _child, _out
    if out is None:
        return compute()
    if child is None:
        return decode(out)
    if child.poll() is None:
        # The suite now waits for it: give it a normal share of the CPU again (raising
        # a priority needs CAP_SYS_NICE; without it, make the events here instead).
        try:
            os.setpriority(os.PRIO_PROCESS, child.pid, 0)
        except OSError:
            stop()
            return compute()
    if child.wait() != 0 or not out.exists():
        return compute()
    return decode(out)


def decode(path: Path) -> list[AlertEvent]:
    try:
        return msgspec.msgpack.decode(path.read_bytes(), type=list[AlertEvent])
    except (OSError, msgspec.DecodeError):  # gone or damaged: make them afresh
        path.unlink(missing_ok=True)
        return compute()


def stop() -> None:
    """End the child if it still runs, and remove a temporary file (session end)."""
    global _child, _out, _owned
    child, out, owned = _child, _out, _owned
    _child = _out = None
    _owned = False
    if child is not None and child.poll() is None:
        child.kill()
        child.wait()
    if out is not None:
        out.with_suffix(".part").unlink(missing_ok=True)
        if owned:
            out.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                out.parent.rmdir()


def _main(out: Path) -> None:
    os.nice(19)  # idle cycles only, until events() asks for it
    events = compute()
    outside = sorted(
        {
            Path(f).relative_to(ROOT).parts[0]
            for m in list(sys.modules.values())
            if (f := getattr(m, "__file__", None)) and Path(f).is_relative_to(ROOT)
        }
        - {*SOURCES, ".venv", "tests"}
    )
    if outside:  # the cache key would miss a change there
        sys.exit(f"run_scenario imported {outside}, not in typhoon_support.SOURCES")
    tmp = out.with_suffix(".part")
    tmp.write_bytes(msgspec.msgpack.encode(events))
    tmp.replace(out)  # whole or absent


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
