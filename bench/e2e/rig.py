"""The benchmark's fixed parts: its own Mosquitto and InfluxDB on free ports in a
temporary directory (started with the dev stack's helpers), and how each peer
process is made."""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.e2e import nodered, payloads
from bench.e2e.influx import Influx
from deltasense.settings import Settings
from tools.devstack import (
    ManagedProcess,
    Stack,
    free_port,
    http_ok,
    influxdb_process,
    mosquitto_process,
    python_service,
)
from tools.stack import settings_env

PEERS = ("subscriber", "naive", "nodered", "deltasense")
STORING = ("naive", "nodered", "deltasense")  # peers whose result is what InfluxDB holds
PROBE_DEVICE = "ready-probe"


@dataclass
class Target:
    """One peer run's broker-side names: its own topic site and database."""

    site: str
    db: str
    stats: Path


@dataclass
class Rig:
    root: Path
    mqtt_port: int = field(default_factory=free_port)
    influx_port: int = field(default_factory=free_port)
    influx_rpc_port: int = field(default_factory=free_port)
    mqtt_user: str | None = None
    mqtt_password: str | None = None
    _runs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _stack: Stack | None = None
    _probe: paho.Client | None = None

    @property
    def influx(self) -> Influx:
        return Influx(self.influx_port)

    def start(self) -> None:
        var = self.root / "var"
        self._stack = Stack(
            [
                # Explicitly anonymous and bench-only (docs/BENCHMARKS.md): one load
                # connection publishes for a hundred devices, which the platform's
                # per-device accounts would refuse; InfluxDB without users likewise,
                # to measure the bare server.
                mosquitto_process(var, port=self.mqtt_port, anonymous=True),
                influxdb_process(
                    var, http_port=self.influx_port, rpc_port=self.influx_rpc_port, auth=False
                ),
            ]
        )
        self._stack.start()

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.loop_stop()
            self._probe.disconnect()
            self._probe = None
        if self._stack is not None:
            self._stack.stop()

    def new_target(self) -> Target:
        n = next(self._runs)
        return Target(site=f"bench{n}", db=f"bench_{n}", stats=self.root / f"stats-{n}.json")

    def mqtt_args(self) -> list[str]:
        args = ["--port", str(self.mqtt_port)]
        if self.mqtt_user:
            args += ["--username", self.mqtt_user, "--password", self.mqtt_password or ""]
        return args

    # --- peers -------------------------------------------------------------------
    def settings(self, target: Target, var_dir: Path, **extra: Any) -> Settings:
        """The shipped settings for ``target``'s site on this rig's broker and database
        (plus ``extra``): what every DeltaSense process of a bench run gets."""
        return Settings(
            site=target.site,
            var_dir=var_dir,
            mqtt_port=self.mqtt_port,
            mqtt_tls=False,  # the bench's broker is plain (anonymous, bench only)
            mqtt_username=self.mqtt_user,
            mqtt_password=self.mqtt_password,
            influx_port=self.influx_port,
            influx_rpc_port=self.influx_rpc_port,
            influx_db=target.db,
            ingest_client_id=f"bench-ingest-{target.site}",
            **extra,
        )

    def peer_process(self, peer: str, target: Target) -> ManagedProcess:
        run_dir = self.root / "run"
        if peer in ("subscriber", "naive"):
            return ManagedProcess(
                name=f"bench-{peer}",
                argv=[
                    sys.executable,
                    "-m",
                    "bench.e2e.peers",
                    peer,
                    *self.mqtt_args(),
                    "--site",
                    target.site,
                    "--stats",
                    str(target.stats),
                    "--influx-url",
                    self.influx.url,
                    "--db",
                    target.db,
                ],
                log_path=run_dir / "log" / f"{peer}-{target.site}.log",
                healthy=target.stats.exists,
            )
        if peer == "nodered":
            return nodered.process(
                run_dir,
                port=free_port(),
                mqtt_port=self.mqtt_port,
                influx_port=self.influx_port,
                site=target.site,
                db=target.db,
                mqtt_user=self.mqtt_user,
                mqtt_password=self.mqtt_password,
            )
        if peer == "deltasense":
            metrics = free_port()
            settings = self.settings(
                target, run_dir / f"var-{target.site}", ingest_metrics_port=metrics
            )
            return python_service(
                "ingest",
                "ingest",
                settings.var_dir,  # its log too: one per run
                env=settings_env(settings),
                healthy=lambda: http_ok(f"http://127.0.0.1:{metrics}/metrics"),
            )
        raise ValueError(f"unknown peer {peer!r}")

    def progress(self, peer: str, target: Target) -> Callable[[], tuple[int, float]]:
        """A number that grows while the peer stores, and when the peer last stored
        (0.0: unknown, the poll's time stands for it).  For storing peers it is
        InfluxDB's write counter, cheap enough to poll while the peer still works."""
        if peer == "subscriber":

            def received() -> tuple[int, float]:
                stats = read_stats(target.stats)
                return int(stats.get("messages", 0)), float(stats.get("last", 0.0))

            return received
        influx = self.influx
        return lambda: (influx.points_written(), 0.0)

    def stored(self, peer: str, target: Target, readings: int) -> int:
        """The load's readings the peer holds: received (subscriber) or in InfluxDB."""
        if peer == "subscriber":
            return int(read_stats(target.stats).get("messages", 0)) * readings
        return self.influx.count(target.db)

    def wait_ready(self, peer: str, target: Target, within_s: float = 60.0) -> None:
        """Publish a probe reading (again every 2 s) until the peer has it."""
        topic = payloads.topic(target.site, PROBE_DEVICE)
        client = self._probe_client()
        deadline = time.monotonic() + within_s
        seq = 0
        while time.monotonic() < deadline:
            body = payloads.message(seq, payloads.SINGLE, int(time.time() * 1000) - seq)
            client.publish(topic, body, qos=1)
            seq += 1
            until = time.monotonic() + 2.0
            while time.monotonic() < until:
                if self._has_probe(peer, target):
                    return
                time.sleep(0.1)
        raise TimeoutError(f"{peer}: the readiness probe was not seen within {within_s:.0f} s")

    def _probe_client(self) -> paho.Client:
        if self._probe is None:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-ready-probe")
            if self.mqtt_user:
                client.username_pw_set(self.mqtt_user, self.mqtt_password)
            client.connect("127.0.0.1", self.mqtt_port, keepalive=30)
            client.loop_start()
            self._probe = client
        return self._probe

    def _has_probe(self, peer: str, target: Target) -> bool:
        if peer == "subscriber":
            return int(read_stats(target.stats).get("probes", 0)) > 0
        try:
            return self.influx.has_device(target.db, PROBE_DEVICE)
        except (OSError, RuntimeError):
            return False

    def __enter__(self) -> Rig:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def read_stats(path: Path) -> dict[str, float]:
    try:
        data: dict[str, float] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def temp_root() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="deltasense-bench-e2e-")
