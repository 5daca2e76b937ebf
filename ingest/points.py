"""Line-protocol points for everything ingest stores (layout: deltasense.schema)."""

from __future__ import annotations

from collections.abc import Iterable

from deltasense import schema
from deltasense.contract import Meta, Reading, Status, Topic, struct_to_dict
from deltasense.lineprotocol import FieldValue, encode_point


def reading_line(reading: Reading, qc_flags: Iterable[str] = ()) -> str:
    fields: dict[str, FieldValue] = dict(reading.fields)
    fields["seq"] = reading.seq
    fields["boot"] = reading.boot
    if reading.hist:
        fields["hist"] = True
    if reading.ts_from_platform:
        fields["ts_platform"] = True
    flagged = ",".join(qc_flags)
    if flagged:
        fields["qc"] = flagged
    tags = {"site": reading.site, "district": reading.district, "device": reading.device}
    return encode_point(reading.kind.value, tags, fields, reading.ts_ms)


def _device_tags(topic: Topic) -> dict[str, str]:
    return {
        "site": topic.site,
        "district": topic.district,
        "kind": topic.kind.value,
        "device": topic.device,
    }


def status_line(topic: Topic, status: Status, now_ms: int) -> str:
    fields: dict[str, FieldValue] = {"state": status.state}
    if isinstance(status.ts, int):
        fields["device_ts"] = status.ts
    return encode_point(schema.STATUS, _device_tags(topic), fields, now_ms)


def meta_line(topic: Topic, meta: Meta, now_ms: int) -> str | None:
    fields: dict[str, FieldValue] = struct_to_dict(meta)
    if not fields:
        return None
    return encode_point(schema.META, _device_tags(topic), fields, now_ms)


def device_line(topic: Topic, last_seen_ms: int, now_ms: int) -> str:
    fields: dict[str, FieldValue] = {
        "site": topic.site,
        "district": topic.district,
        "kind": topic.kind.value,
        "last_seen": last_seen_ms,
    }
    return encode_point(schema.DEVICES, {"device": topic.device}, fields, now_ms)


def deadletter_line(reason: str, topic: str, payload: bytes, detail: str, now_ms: int) -> str:
    fields: dict[str, FieldValue] = {
        "topic": topic[:256],
        "payload": payload[: schema.DEADLETTER_PAYLOAD_MAX].decode("utf-8", errors="replace"),
        "detail": detail[:512],
    }
    return encode_point(schema.DEADLETTERS, {"reason": reason}, fields, now_ms)
