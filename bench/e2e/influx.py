"""Blocking InfluxDB 1.x helpers for the benchmark: databases, counts, and the
write ceiling (pre-built line-protocol batches written as fast as possible)."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.e2e import payloads
from deltasense.schema import INGEST_PRECISION

COUNT_Q = (
    f'SELECT count("level_cm") FROM "{payloads.KIND}" '  # noqa: S608 - bench-made names
    f'WHERE "device" =~ /^{payloads.DEVICE_PREFIX}-/'
)


class Influx:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"

    def query(self, q: str, db: str = "") -> list[dict[str, Any]]:
        form = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ms"}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=form, timeout=30) as resp:
            body = json.loads(resp.read())
        results: list[dict[str, Any]] = body.get("results", [])
        for result in results:
            if "error" in result:
                raise RuntimeError(f"InfluxDB: {result['error']} ({q})")
        return results

    def create(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')

    def drop(self, db: str) -> None:
        self.query(f'DROP DATABASE "{db}"')

    def count(self, db: str, where: str = COUNT_Q) -> int:
        series = self.query(where, db)[0].get("series", [])
        return int(series[0]["values"][0][1]) if series else 0

    def points_written(self) -> int:
        """InfluxDB's own count of points written since it started (every database):
        an in-memory counter, so polling it costs the server next to nothing."""
        series = self.query("SHOW STATS FOR 'write'")[0].get("series", [])
        if not series:
            return 0
        row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=False))
        return int(row.get("pointReq", 0))

    def has_device(self, db: str, device: str) -> bool:
        q = f'SELECT count("seq") FROM "{payloads.KIND}" WHERE "device" = \'{device}\''  # noqa: S608 - bench-made name
        return self.count(db, q) > 0


@dataclass(frozen=True)
class Ceiling:
    writers: int
    batch: int
    points: int
    seconds: float

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


def build_batches(points: int, batch: int, site: str, base_ms: int) -> list[bytes]:
    """``points`` water readings over 100 devices, ``batch`` lines per body."""
    devices = [payloads.device_name("ceil", i) for i in range(100)]
    lines = (
        payloads.reading_line(site, devices[n % 100], n // 100, base_ms) for n in range(points)
    )
    out = []
    while chunk := list(itertools.islice(lines, batch)):
        out.append("\n".join(chunk).encode())
    return out


def write_ceiling(
    influx: Influx, db: str, bodies: list[bytes], *, batch: int, writers: int, max_s: float
) -> Ceiling:
    """Write every body (each writer its own keep-alive connection) and time it."""
    todo = iter(bodies)
    lock = threading.Lock()
    written = [0] * writers
    failures: list[str] = []
    path = "/write?" + urllib.parse.urlencode({"db": db, "precision": INGEST_PRECISION})
    deadline = time.monotonic() + max_s

    def work(k: int) -> None:
        conn = http.client.HTTPConnection(influx.host, influx.port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    body = next(todo, None)
                if body is None:
                    return
                conn.request("POST", path, body=body)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 204:
                    failures.append(f"HTTP {resp.status}")
                    return
                written[k] += body.count(b"\n") + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"InfluxDB write ceiling: writes failed: {failures[:3]}")
    return Ceiling(writers=writers, batch=batch, points=sum(written), seconds=seconds)
