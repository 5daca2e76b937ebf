"""``python -m bench.e2e.peers {subscriber,naive}``: two of the benchmark's peers.

* ``subscriber`` — the broker ceiling: a bare paho QoS 1 subscriber that counts
  the load's messages and stores nothing.
* ``naive`` — the obvious small ingest: a paho QoS 1 subscriber that decodes each
  message and writes its readings with one HTTP ``/write`` per message
  (keep-alive connection); paho acknowledges a message when its callback returns,
  so after the write.

Both write their counts as JSON to ``--stats`` every 0.2 s and on SIGTERM; the
file first appears once the subscription is acknowledged (the readiness signal).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.e2e import payloads
from deltasense.schema import INGEST_PRECISION, point_time_ns

STATS_EVERY_S = 0.2


class Counts:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages = 0
        self.readings = 0
        self.errors = 0
        self.probes = 0
        self.first = 0.0
        self.last = 0.0
        self.subscribed = False

    def seen(self, readings: int) -> None:
        now = time.time()
        if not self.messages:
            self.first = now
        self.messages += 1
        self.readings += readings
        self.last = now

    def write(self) -> None:
        if not self.subscribed:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(vars(self) | {"path": str(self.path)}))
        os.replace(tmp, self.path)


class InfluxWriter:
    """One HTTP /write per call on a keep-alive connection."""

    def __init__(self, url: str, db: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 8086
        self.path = "/write?" + urllib.parse.urlencode({"db": db, "precision": INGEST_PRECISION})
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def write(self, body: bytes) -> bool:
        for _attempt in range(2):
            try:
                self.conn.request("POST", self.path, body=body)
                response = self.conn.getresponse()
                response.read()
                return response.status == 204
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        return False


def to_lines(topic: str, payload: bytes | bytearray) -> bytes:
    site, district, kind, device, _ = topic.split("/")
    decoded: Any = json.loads(payload)
    readings = decoded if isinstance(decoded, list) else [decoded]
    lines = [
        f"{kind},device={device},district={district},site={site} "
        f"level_cm={float(r['level_cm'])},seq={int(r['seq'])}i,boot={int(r['boot'])}i "
        f"{point_time_ns(int(r['ts']), int(r['seq']), int(r['boot']))}"
        for r in readings
    ]
    return "\n".join(lines).encode()


def make_handler(args: argparse.Namespace, counts: Counts) -> Any:
    marker = f"/{payloads.DEVICE_PREFIX}-"
    writer = InfluxWriter(args.influx_url, args.db) if args.mode == "naive" else None

    def on_message(_c: object, _u: object, msg: paho.MQTTMessage) -> None:
        topic = msg.topic
        if writer is None:
            if marker in topic:
                counts.seen(0)
            else:
                counts.probes += 1
            return
        try:
            body = to_lines(topic, msg.payload)
        except (ValueError, KeyError, TypeError):
            counts.errors += 1
            return
        if writer.write(body):
            counts.seen(body.count(b"\n") + 1)
        else:
            counts.errors += 1

    return on_message


def run(args: argparse.Namespace) -> None:
    counts = Counts(Path(args.stats))
    halt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: halt.set())
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{args.mode}-{args.site}")
    if args.username:
        client.username_pw_set(args.username, args.password)
    client.on_connect = lambda c, *_: c.subscribe(f"{args.site}/+/+/+/tele", qos=1)

    def on_subscribe(*_: object) -> None:
        counts.subscribed = True
        counts.write()

    client.on_subscribe = on_subscribe
    client.on_message = make_handler(args, counts)
    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + args.max_s
    while not halt.wait(STATS_EVERY_S) and time.monotonic() < deadline:
        counts.write()
    client.loop_stop()
    counts.write()
    client.disconnect()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["subscriber", "naive"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--site", required=True)
    p.add_argument("--stats", required=True, help="JSON file the counts are written to")
    p.add_argument("--influx-url", default="http://127.0.0.1:8086")
    p.add_argument("--db", default="bench")
    p.add_argument("--max-s", type=float, default=900.0, help="exit after this long regardless")
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
