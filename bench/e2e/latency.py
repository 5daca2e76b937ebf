"""Publish → queryable: probe readings published at a steady rate, InfluxDB polled
for them; a probe's latency runs from its publish call to the first poll whose
answer holds it (so it includes up to one poll interval)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.e2e import payloads

if TYPE_CHECKING:
    from bench.e2e.rig import Rig, Target

DEVICE = "latency-probe"
POLL_S = 0.05
GRACE_S = 5.0  # after the last probe, how long a late one may still turn up


@dataclass(frozen=True)
class ProbeResult:
    samples: list[float]
    unseen: int


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    peer: str
    background: float  # messages/s of background load
    samples: list[float]
    unseen: int

    def p(self, q: float) -> float:
        """Over every probe: an unseen one counts as slower than any seen (inf)."""
        return percentile(self.samples + [math.inf] * self.unseen, q)


class LatencyProbe:
    def __init__(self, rig: Rig, target: Target, *, rate: float) -> None:
        self.rig, self.target, self.rate = rig, target, rate
        self.sent: dict[int, float] = {}
        self.seen: dict[int, float] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def _poll(self) -> None:
        q = (
            f'SELECT "seq" FROM "{payloads.KIND}" '  # noqa: S608 - bench-made names
            f"WHERE \"device\" = '{DEVICE}' AND time > now() - 5m"
        )
        while not self._halt.is_set():
            try:
                result = self.rig.influx.query(q, self.target.db)[0]
            except (OSError, RuntimeError):
                result = {}
            now = time.time()
            for series in result.get("series", []):
                for _ts, seq in series["values"]:
                    with self._lock:
                        self.seen.setdefault(int(seq), now)
            self._halt.wait(POLL_S)

    def run(self, duration_s: float) -> ProbeResult:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{self.target.site}"
        )
        if self.rig.mqtt_user:
            client.username_pw_set(self.rig.mqtt_user, self.rig.mqtt_password)
        client.connect("127.0.0.1", self.rig.mqtt_port, keepalive=30)
        client.loop_start()
        poller = threading.Thread(target=self._poll, name="latency-poll", daemon=True)
        poller.start()
        topic = payloads.topic(self.target.site, DEVICE)
        period = 1.0 / self.rate
        started = time.monotonic()
        seq = 0
        while time.monotonic() - started < duration_s:
            now = time.time()
            body = f'{{"ts":{int(now * 1000)},"seq":{seq},"boot":1,"level_cm":1.0}}'
            self.sent[seq] = now
            client.publish(topic, body, qos=1)
            seq += 1
            time.sleep(max(0.0, started + seq * period - time.monotonic()))
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.seen) >= len(self.sent):
                    break
            time.sleep(POLL_S)
        self._halt.set()
        poller.join(timeout=10)
        client.loop_stop()
        client.disconnect()
        with self._lock:
            samples = [self.seen[s] - t for s, t in self.sent.items() if s in self.seen]
        return ProbeResult(samples=samples, unseen=len(self.sent) - len(samples))
