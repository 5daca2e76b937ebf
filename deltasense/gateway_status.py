"""A district edge gateway's health message: ``{site}/_edge/{district}/status``.

The one owner of its field names: the gateway (edge/gateway.py) builds a
:class:`GatewayStatus` and publishes :func:`encode` of it, retained, every
``status_interval_s``; its Last Will is :data:`OFFLINE`.
Analytics :func:`decode`\\ s it into the gateway health rules (analytics/gateways.py).
Unknown fields are allowed (a newer gateway may add some); a known field of the
wrong type or out of its range refuses the whole message.  docs/CONTRACT.md.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from deltasense.contract import EDGE_DISTRICT, is_ident

STATUS_MAX_BYTES: Final = 2048
# Bounds that no real gateway reaches: a spool is at most a few TB, its oldest
# record at most years old; beyond them the message is not believed.
_Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
_AgeS = Annotated[int, msgspec.Meta(ge=0, le=20 * 365 * 86_400)]
_Ms = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
State = Literal["online", "offline"]


class Dropped(msgspec.Struct, kw_only=True, frozen=True):
    """Records the spool dropped since it was made, by reason (edge/spool.py DropReason)."""

    full: _Count = 0  # over the byte bound
    age: _Count = 0  # older than the age bound

    @property
    def total(self) -> int:
        return self.full + self.age


class GatewayStatus(msgspec.Struct, kw_only=True, frozen=True):
    """The gateway's state.  Only ``state`` is in the Last Will; the rest is None there."""

    state: State
    ts: _Ms | None = None  # ms, the gateway's clock
    district: str | None = None
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None  # how often it reports
    spool_records: _Count | None = None
    spool_bytes: _Count | None = None
    spool_max_bytes: _Count | None = None
    oldest_age_s: _AgeS | None = None  # None: the spool is empty
    backlog_records: _Count | None = None
    dropped: Dropped | None = None
    superseded: _Count | None = None
    policy: str | None = None


OFFLINE: Final = b'{"state":"offline"}'  # the Last Will: nothing else is known then


class GatewayStatusError(ValueError):
    """A gateway status that is not what the contract says."""


def status_filter(site: str) -> str:
    """Every district gateway's status."""
    if not is_ident(site):
        raise ValueError(f"site {site!r} is not an identifier")
    return f"{site}/{EDGE_DISTRICT}/+/status"


def district_of(site: str, topic: str) -> str | None:
    """The district of a gateway status topic, None if ``topic`` is not one."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != site or parts[1] != EDGE_DISTRICT or parts[3] != "status":
        return None
    return parts[2] if is_ident(parts[2]) else None


def encode(status: GatewayStatus) -> bytes:
    return msgspec.json.encode(status)


_DECODER: Final = msgspec.json.Decoder(GatewayStatus)


def decode(payload: bytes, district: str) -> GatewayStatus:
    """A status published on ``district``'s topic; one claiming another district is
    refused (the topic, which the broker binds to ``gw.<district>``, is the truth)."""
    if len(payload) > STATUS_MAX_BYTES:
        raise GatewayStatusError(f"status of {len(payload)} bytes > {STATUS_MAX_BYTES}")
    try:
        status = _DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise GatewayStatusError(str(exc)) from None
    if status.district is not None and status.district != district:
        raise GatewayStatusError(f"status names district {status.district[:40]!r}")
    if status.state == "online" and status.ts is None:
        raise GatewayStatusError("an online status needs its ts")
    return status
