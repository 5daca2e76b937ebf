"""Publish → alert on the API's SSE stream, and the services' lag while it runs.

A probe is one water reading on a street drain that crosses the street-flood
rule's critical depth (``street_critical_mm``, 300 mm) in one reading: 35 cm on a
drain analytics has never seen (a first reading is judged as it is;
``flood.spike_jump_mm`` would hold a rise of 350 mm from a dry previous reading
as unconfirmed until a second reading, so a drain used again would measure two
readings, not one).  Its latency runs from the probe's publish call to the
arrival of the drain's ``firing`` street-flood event on
``GET /api/v1/alerts/stream`` (a viewer's stream, opened with a single-use
ticket from ``POST /api/v1/stream/ticket``, as the console opens it).  Once the
event is in (or ``timeout_s`` passed) a dry reading clears the drain, so its
alert resolves and no two probes' floods stand at once (two flooded drains in
one district would raise district-flood as well).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from bench.e2e import payloads

if TYPE_CHECKING:
    from bench.e2e.rig import Rig, Target

RULE = "street-flood"
CROSSING_CM = 35.0  # 350 mm of water on the street: over street_critical_mm in one reading
DRY_CM = 0.0
PROBE_PREFIX = "sse-probe"
GRACE_S = 5.0  # after the last probe, how long a late alert may still arrive
SCRAPE_S = 0.5


@dataclass
class AlertStream:
    """The API's alert stream, read by an event loop in a thread of its own: when
    each drain's first ``firing`` (``seen``) and ``resolved`` street-flood event
    arrived (``time.monotonic``)."""

    base_url: str
    token: str
    seen: dict[str, float] = field(default_factory=dict)
    resolved: dict[str, float] = field(default_factory=dict)
    events: int = 0  # alert events of any rule the stream carried
    error: BaseException | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _listening: threading.Event = field(default_factory=threading.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _task: asyncio.Task[None] | None = None
    _thread: threading.Thread | None = None

    def start(self, within_s: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name="sse-stream", daemon=True)
        self._thread.start()
        if not self._listening.wait(within_s):
            raise TimeoutError(f"the alert stream did not open within {within_s:.0f} s")
        if self.error is not None:
            raise RuntimeError(f"the alert stream failed: {self.error}") from self.error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._task = loop.create_task(self._read())
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass  # close(): the run is over
        except Exception as exc:  # reported by start() or after the run
            self.error = exc
        finally:
            self._listening.set()
            loop.close()

    async def _read(self) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        timeout = httpx.Timeout(10, read=60)  # keep-alive comments come every 15 s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=timeout) as c:
            ticket = await c.post("/api/v1/stream/ticket", headers=auth)
            ticket.raise_for_status()
            # The ticket in the query, as a browser's EventSource sends it; the token
            # itself never goes into a URL (the API refuses that).
            params = {"ticket": ticket.json()["ticket"]}
            async with c.stream("GET", "/api/v1/alerts/stream", params=params) as response:
                response.raise_for_status()
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        if line == ": listening":
                            self._listening.set()
                    elif line:
                        key, _, value = line.partition(": ")
                        fields[key] = value
                    else:
                        if fields.get("event") == "alert":
                            self._alert(json.loads(fields["data"]))
                        fields = {}
        raise RuntimeError("the alert stream ended")

    def _alert(self, event: dict[str, object]) -> None:
        arrived = time.monotonic()
        with self._cond:
            self.events += 1
            if event.get("rule") == RULE and event.get("state") in ("firing", "resolved"):
                arrivals = self.seen if event["state"] == "firing" else self.resolved
                arrivals.setdefault(str(event.get("subject")), arrived)
                self._cond.notify_all()

    def wait(self, subject: str, timeout_s: float, *, resolved: bool = False) -> float | None:
        """When ``subject``'s firing (or resolved) event arrived; None if not within
        ``timeout_s``."""
        arrivals = self.resolved if resolved else self.seen
        with self._cond:
            self._cond.wait_for(lambda: subject in arrivals, timeout_s)
            return arrivals.get(subject)

    def arrivals(self) -> dict[str, float]:
        with self._cond:
            return dict(self.seen)

    def close(self) -> None:
        """Cancel the read: the connection closes at once, so the API's shutdown does
        not wait for an open stream."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout=10)


def reading(seq: int, level_cm: float) -> bytes:
    return f'{{"ts":{int(time.time() * 1000)},"seq":{seq},"boot":1,"level_cm":{level_cm}}}'.encode()


@dataclass(frozen=True)
class ProbeResult:
    samples: list[float]  # seconds, publish → firing event on the stream
    unseen: int
    published: int  # probe readings published (crossing and clearing)


class AlertProbes:
    """Street-flood probes on fresh drains, one at a time, ``spacing_s`` apart."""

    def __init__(self, rig: Rig, target: Target, stream: AlertStream) -> None:
        self.rig, self.target, self.stream = rig, target, stream
        self.published = 0
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sse-{target.site}")
        if rig.mqtt_user:
            client.username_pw_set(rig.mqtt_user, rig.mqtt_password)
        client.connect("127.0.0.1", rig.mqtt_port, keepalive=30)
        client.loop_start()
        self._client = client

    def _publish(self, device: str, seq: int, level_cm: float) -> float:
        """Publish one reading; the monotonic time just before the publish call."""
        at = time.monotonic()
        self._client.publish(
            payloads.topic(self.target.site, device), reading(seq, level_cm), qos=1
        )
        self.published += 1
        return at

    def warm_up(self, within_s: float = 60.0) -> float:
        """A crossing reading (again every 2 s) until its alert is on the stream: the
        whole path (analytics and the API subscribed) works.  Its first latency.

        Returns once the clearing reading has resolved the alert too: analytics has
        then taken in every warm-up reading, so a count of its intake read next
        (bench/alert_e2e.py) holds them all.  Returning at the firing event let that
        count miss the clearing reading, one reading too few, on a fast box."""
        device = f"{PROBE_PREFIX}-warm-up"
        deadline = time.monotonic() + within_s
        first, seq = 0.0, 0
        while time.monotonic() < deadline:
            seq += 1
            sent = self._publish(device, seq, CROSSING_CM)
            first = first or sent
            if (arrived := self.stream.wait(device, 2.0)) is not None:
                self._publish(device, seq + 1, DRY_CM)
                left = max(0.0, deadline - time.monotonic())
                if self.stream.wait(device, left, resolved=True) is None:
                    raise TimeoutError(
                        f"the warm-up's street-flood alert did not resolve within {within_s:.0f} s"
                    )
                return arrived - first
        raise TimeoutError(f"no street-flood alert on the stream within {within_s:.0f} s")

    def run(
        self,
        probes: int,
        spacing_s: float,
        timeout_s: float,
        say: Callable[[str], None] = lambda _line: None,
    ) -> ProbeResult:
        sent: dict[str, float] = {}
        started = time.monotonic()
        for i in range(probes):
            device = f"{PROBE_PREFIX}-{i:03d}"
            sent[device] = self._publish(device, 1, CROSSING_CM)
            # The clearing reading waits for the alert: in the same batch as the
            # crossing one it would leave the drain dry before the rules ran.
            arrived = self.stream.wait(device, timeout_s)
            self._publish(device, 2, DRY_CM)
            say(
                f"  probe {i + 1}/{probes}: "
                + (
                    f"{arrived - sent[device]:.3f} s"
                    if arrived is not None
                    else f"not yet seen after {timeout_s:g} s (cleared)"
                )
            )
            time.sleep(max(0.0, started + (i + 1) * spacing_s - time.monotonic()))
        grace = time.monotonic() + GRACE_S
        while time.monotonic() < grace and not sent.keys() <= self.stream.arrivals().keys():
            time.sleep(0.05)
        seen = self.stream.arrivals()
        samples = [seen[d] - t for d, t in sent.items() if d in seen]
        return ProbeResult(samples, unseen=len(sent) - len(samples), published=self.published)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample's value from a Prometheus text page (parsed by prometheus_client),
    the one whose labels are exactly ``labels``; None when absent."""
    want = labels or {}
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == want:
                return float(found.value)
    return None


@dataclass
class LagWatch:
    """Polls a metrics page every ``SCRAPE_S``; keeps the largest value of one gauge
    (None: never seen)."""

    url: str
    name: str
    worst: float | None = None
    last: float | None = None
    scrapes: int = 0  # pages read
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="lag-watch", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        with httpx.Client(timeout=5) as c:
            while not self._stop.is_set():
                try:
                    text = c.get(self.url).text
                except httpx.HTTPError:
                    text = ""
                if text:
                    self.scrapes += 1
                value = sample(text, self.name)
                if value is not None:
                    self.last = value
                    self.worst = value if self.worst is None else max(self.worst, value)
                self._stop.wait(SCRAPE_S)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
