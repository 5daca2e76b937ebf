"""Stored InfluxDB rows back into readings (pure), for the service's start-up refill
and for the replay backtest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from deltasense import schema
from deltasense.contract import FieldValue, Kind, Reading

# Stored columns that are no sensor field (tags, provenance, QC flags).
NOT_FIELDS: Final = schema.READING_BOOKKEEPING | frozenset(schema.READING_TAGS) | {"time"}


def readings_from_series(
    kind: Kind, series: Iterable[Any], site: str, *, as_history: bool
) -> list[Reading]:
    """Rows of ``kind`` (``SELECT *`` grouped by device and district) as readings.

    Fields the ingest flagged in ``qc`` are left out; rows with no field left, no
    device or no time are skipped.  ``as_history`` (the refill) marks every reading
    ``hist`` with ``seq`` 0: replayed readings must not count for clock skew.
    Otherwise (the replay backtest) ``seq``, ``hist`` and ``ts_platform`` are kept as
    stored, so the engine sees what it saw live."""
    out: list[Reading] = []
    for s in series:
        device, district = s.tags.get(schema.DEVICE, ""), s.tags.get(schema.DISTRICT, "")
        if not device:
            continue
        for row in s.rows():
            qc = row.get(schema.QC)
            flagged = set(qc.split(",")) if isinstance(qc, str) else set()
            fields: dict[str, FieldValue] = {
                k: v
                for k, v in row.items()
                if k not in NOT_FIELDS and k not in flagged and isinstance(v, int | float)
            }
            ts = row.get("time")
            if not fields or not isinstance(ts, int):
                continue
            seq, boot = row.get(schema.SEQ), row.get(schema.BOOT)
            out.append(
                Reading(
                    site=site,
                    district=district,
                    kind=kind,
                    device=device,
                    ts_ms=ts,
                    seq=0 if as_history or not isinstance(seq, int) else seq,
                    boot=int(boot) if isinstance(boot, int | float) else 0,
                    hist=as_history or row.get(schema.HIST) is True,
                    ts_from_platform=not as_history and row.get(schema.TS_PLATFORM) is True,
                    fields=fields,
                )
            )
    return out
