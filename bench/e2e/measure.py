"""One measurement at a time: a peer under an offered load (stored, lost,
readings/s), InfluxDB's own write ceiling, and publish → queryable latency."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.e2e import payloads
from bench.e2e.influx import Ceiling, build_batches, write_ceiling
from bench.e2e.latency import Latency, LatencyProbe
from bench.e2e.rig import Rig, Target
from tools.devstack import ManagedProcess

POLL_S = 0.1  # how often progress is read once the load has been offered
BASE_AGO_MS = 3_600_000  # seq 0's timestamp lies this far in the past


@dataclass(frozen=True)
class Load:
    shape: payloads.Shape
    rate: float  # messages/s offered, all publishers together
    duration_s: float
    publishers: int
    devices: int  # per publisher
    live: bool = False  # readings stamped now at a dry level (payloads.live_message)


@dataclass(frozen=True)
class Run:
    peer: str
    load: Load
    sent: int  # messages published
    acked: int  # messages the broker acknowledged (PUBACK)
    stored: int  # readings the peer holds (InfluxDB count; the subscriber: received)
    first_publish: float
    last_publish: float
    last_stored: float
    settled: bool = True  # False: still storing when the bench stopped waiting
    errors: tuple[str, ...] = ()  # error lines in the peer's log (first few)

    @property
    def acked_readings(self) -> int:
        return self.acked * self.load.shape.readings

    @property
    def lost(self) -> int:
        return max(0, self.acked_readings - self.stored)

    @property
    def offered_per_s(self) -> float:
        """Readings/s the publishers really sent (may fall short of the rate asked)."""
        span = self.last_publish - self.first_publish
        return self.sent * self.load.shape.readings / span if span > 0 else 0.0

    @property
    def stored_per_s(self) -> float:
        """Sustained: readings stored over first publish → last reading stored."""
        span = self.last_stored - self.first_publish
        return self.stored / span if span > 0 else 0.0


@contextmanager
def peer_running(rig: Rig, peer: str) -> Iterator[tuple[Target, ManagedProcess]]:
    """The peer started against a fresh database and ready (it has seen a probe)."""
    target = rig.new_target()
    rig.influx.create(target.db)
    proc = rig.peer_process(peer, target)
    proc.start()
    try:
        rig.wait_ready(peer, target)
        yield target, proc
    finally:
        proc.stop()
        rig.influx.drop(target.db)


def error_lines(proc: ManagedProcess, keep: int = 3) -> tuple[str, ...]:
    """The peer's logged errors (Node-RED's ``[error]``, Python's ``ERROR``)."""
    try:
        text = proc.log_path.read_text(errors="replace")
    except OSError:
        return ()
    found = [line for line in text.splitlines() if "[error]" in line or " ERROR " in line]
    return (f"{len(found)} error lines", *found[:keep]) if found else ()


def start_publishers(rig: Rig, target: Target, load: Load) -> list[subprocess.Popen[str]]:
    base_ms = int(time.time() * 1000) - BASE_AGO_MS
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.e2e.load",
                *rig.mqtt_args(),
                "--site",
                target.site,
                "--tag",
                f"{target.site}p{k}",
                "--shape",
                load.shape.name,
                "--devices",
                str(load.devices),
                "--rate",
                str(load.rate / load.publishers),
                "--duration",
                str(load.duration_s),
                "--base-ms",
                str(base_ms),
                *(["--live"] if load.live else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(load.publishers)
    ]


def finish_publishers(
    procs: list[subprocess.Popen[str]], timeout_s: float, *, now: bool = False
) -> list[dict[str, float]]:
    """Each publisher's counts once it is done (``now``: told to stop publishing)."""
    if now:
        for proc in procs:
            proc.terminate()
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"a load publisher exited with {proc.returncode}")
        out.append(json.loads(stdout))
    return out


def settle(
    count: Callable[[], tuple[int, float]],
    publishers: list[subprocess.Popen[str]],
    *,
    settle_s: float,
    max_s: float,
) -> tuple[int, float, bool]:
    """Poll ``count`` (a progress counter) until the publishers are done and it
    has stopped moving for ``settle_s``; (its value, time of its last change,
    whether it settled within ``max_s``)."""
    deadline = time.monotonic() + max_s
    last_n, last_change, seen_stop = -1, time.time(), 0.0
    while time.monotonic() < deadline:
        n, stamp = count()
        now = time.time()
        if n != last_n:
            last_n, last_change = n, stamp or now
        done = all(p.poll() is not None for p in publishers)
        if done:
            seen_stop = seen_stop or now
            if now - max(last_change, seen_stop) >= settle_s:
                return last_n, last_change, True
        time.sleep(POLL_S)
    return last_n, last_change, False


def throughput(rig: Rig, peer: str, load: Load, settle_s: float, wait_max_s: float = 120.0) -> Run:
    with peer_running(rig, peer) as (target, proc):
        progress = rig.progress(peer, target)
        pubs = start_publishers(rig, target, load)
        try:
            time.sleep(load.duration_s)
            _, last_stored, settled = settle(
                progress, pubs, settle_s=settle_s, max_s=load.duration_s + wait_max_s
            )
            results = finish_publishers(pubs, timeout_s=60)
            stored = rig.stored(peer, target, load.shape.readings)
            errors = error_lines(proc)
        finally:
            for p in pubs:
                if p.poll() is None:
                    p.kill()
    acked = int(sum(r["acked"] for r in results))
    return Run(
        peer=peer,
        load=load,
        sent=int(sum(r["sent"] for r in results)),
        acked=acked,
        stored=stored,
        first_publish=min(r["first_publish"] for r in results),
        last_publish=max(r["last_publish"] for r in results),
        last_stored=last_stored,
        settled=settled,
        errors=errors,
    )


def ceiling(rig: Rig, *, points: int, batch: int, writers: int, max_s: float) -> Ceiling:
    target = rig.new_target()
    rig.influx.create(target.db)
    try:
        bodies = build_batches(points, batch, target.site, int(time.time() * 1000) - BASE_AGO_MS)
        return write_ceiling(
            rig.influx, target.db, bodies, batch=batch, writers=writers, max_s=max_s
        )
    finally:
        rig.influx.drop(target.db)


def latency(rig: Rig, peer: str, load: Load, probe_rate: float) -> Latency:
    """Publish → queryable for probe readings sent while ``load`` runs in the background."""
    with peer_running(rig, peer) as (target, _proc):
        pubs = start_publishers(rig, target, load)
        try:
            probe = LatencyProbe(rig, target, rate=probe_rate)
            result = probe.run(load.duration_s)
            finish_publishers(pubs, timeout_s=60)
        finally:
            for p in pubs:
                if p.poll() is None:
                    p.kill()
    return Latency(peer=peer, background=load.rate, samples=result.samples, unseen=result.unseen)
