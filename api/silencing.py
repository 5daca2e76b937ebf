"""Putting silences on the broker and taking them off (``{site}/_silences/{id}``,
retained, QoS 1; deltasense/silences.py), shared by the silence routes and
shelving.  The API's record (api/alarmstore.py) says who and why; the retained
message is what the notifier honours.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Final, ParamSpec, TypeVar

from fastapi import HTTPException

from api.alarmstore import AlarmStore, AlarmStoreError
from api.hub import AlertHub, MqttUnavailable
from deltasense import silences
from deltasense.silences import Silence

_LOG = logging.getLogger(__name__)
SWEEP_EVERY_S: Final = 30.0
_last_sweep: dict[str, float] = {}
P = ParamSpec("P")
T = TypeVar("T")


def new_id(prefix: str) -> str:
    """``si-…`` for a silence, ``sh-…`` for a shelve: a topic-level id."""
    return f"{prefix}-{secrets.token_hex(8)}"


async def stored(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking :class:`AlarmStore` call off the event loop; 503 when it fails."""
    try:
        result = await asyncio.to_thread(call, *args, **kwargs)
    except AlarmStoreError as exc:
        _LOG.error("alarm workflow store: %s", exc)
        raise HTTPException(503, "alarm workflow store unavailable") from None
    return result


async def publish(hub: AlertHub, site: str, silence: Silence) -> None:
    """The silence, retained, for the notifier; :class:`MqttUnavailable` → 503."""
    await hub.publish(
        silences.silence_topic(site, silence.id), silences.encode(silence), retain=True
    )


async def retract(hub: AlertHub, site: str, silence_id: str) -> None:
    """An empty retained message: the notifier drops the silence, the broker forgets it."""
    await hub.publish(silences.silence_topic(site, silence_id), b"", retain=True)


async def sweep(hub: AlertHub, site: str, store: AlarmStore, now_ms: int) -> None:
    """Take silences that are over off the broker (their retained message would
    otherwise stay for ever).  Best effort, at most every 30 s per process."""
    key = str(store.path)
    if time.monotonic() - _last_sweep.get(key, -SWEEP_EVERY_S) < SWEEP_EVERY_S:
        return
    _last_sweep[key] = time.monotonic()
    try:
        for silence_id in await asyncio.to_thread(store.unretracted_expired, now_ms):
            await retract(hub, site, silence_id)
            await asyncio.to_thread(store.mark_retracted, silence_id)
    except (MqttUnavailable, AlarmStoreError) as exc:
        _LOG.info("expired silences stay on the broker for now: %s", exc)
        _last_sweep.pop(key, None)
