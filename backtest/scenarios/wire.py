"""Scenario readings on the wire: the ``tele`` and ``meta`` messages a node would publish."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from backtest.scenarios.world import INTERVAL_S
from deltasense.contract import Channel, Reading, device_topic
from simulators.city import DeviceSpec

_encode: Final = msgspec.json.Encoder().encode


def tele_topic(reading: Reading) -> str:
    return device_topic(reading.site, reading.district, reading.kind, reading.device, Channel.TELE)


def tele_payload(reading: Reading) -> bytes:
    """The JSON object the device sent for ``reading`` (contract v1)."""
    body: dict[str, Any] = {"ts": reading.ts_ms, "seq": reading.seq, "boot": reading.boot}
    if reading.hist:
        body["hist"] = True
    body.update(reading.fields)
    return _encode(body)


def meta_topic(site: str, spec: DeviceSpec) -> str:
    return device_topic(site, spec.district, spec.kind, spec.id, Channel.META)


def meta_payload(spec: DeviceSpec, station: str | None = None) -> bytes:
    """A birth record: position, reporting interval (the idle one for water nodes),
    and for water nodes whether they sit in a drain or on a canal."""
    meta: dict[str, Any] = {
        "fw": "scenario",
        "hw": "sim",
        "lat": spec.lat,
        "lon": spec.lon,
        "interval_s": INTERVAL_S[spec.kind],
    }
    if station is not None:
        meta["station"] = station
    return _encode(meta)
