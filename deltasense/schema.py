"""How DeltaSense lays out its data in InfluxDB (database ``settings.influx_db``).

Ingest writes these measurements; analytics and the API read them.  Time
precision is milliseconds throughout.

``weather`` / ``water`` / ``lamp`` / ``meter`` (one per kind)
    tags ``site``, ``district``, ``device``; fields: the kind's measured fields
    and health fields as sent, plus ``seq`` and ``boot`` (integers),
    ``hist`` (true, only on replayed readings), ``ts_platform`` (true, only
    when the device sent no ``ts`` and ingest stamped the arrival time) and
    ``qc`` (comma-separated names of fields outside the QC range, only when
    any).  Timestamp = the reading's ``ts``, so a redelivered reading
    overwrites itself: stored once.
``status``
    tags ``site``, ``district``, ``kind``, ``device``; fields ``state`` and
    ``device_ts`` (when sent).
``meta``
    same tags; fields ``fw``, ``hw``, ``boot``, ``reset_cause``, ``lat``,
    ``lon``, ``cfg_hash``, ``interval_s`` as sent.
``devices`` (the registry)
    tag ``device``; fields ``site``, ``district``, ``kind``, ``last_seen``
    (ms).  Written when ingest first sees a device, when its district or kind
    changes, and then at most every 30 s while it reports, so ``last_seen`` is
    accurate to 30 s.
``deadletters``
    tag ``reason``; fields ``topic``, ``payload`` (truncated, UTF-8 with
    replacement) and ``detail``.
``alerts``
    see :mod:`deltasense.alerts`.
"""

from __future__ import annotations

from typing import Final

from deltasense.contract import Kind

READING_MEASUREMENTS: Final = tuple(k.value for k in Kind)
STATUS: Final = "status"
META: Final = "meta"
DEVICES: Final = "devices"
DEADLETTERS: Final = "deadletters"
DEADLETTER_PAYLOAD_MAX: Final = 512
