"""Cumulative counters (rain, energy) made continuous across device reboots.

The contract: a ``*_total`` counter never decreases within one ``boot``; a
decrease with a new ``boot`` is a reset.  :class:`CounterTracker` keeps, per
device, an offset for each boot it has seen, so ``raw + offset(boot)`` is one
monotone series the windows can store and the rules can difference.  A late
reading of an earlier boot still gets that boot's offset; a reading of a boot
older than any known offset (far too late) is dropped.  Readings that go
backwards inside a boot (a glitch) are stored as they are; the rules'
running maximum ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

MAX_BOOTS_KEPT: Final = 4


@dataclass
class _Device:
    offsets: dict[int, float] = field(default_factory=dict)
    max_raw: dict[int, float] = field(default_factory=dict)


class CounterTracker:
    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}
        self.resets = 0

    def continuous(self, device: str, boot: int, raw: float) -> float | None:
        """``raw`` as a point of the device's continuous counter, or None if unplaceable."""
        state = self._devices.get(device)
        if state is None:
            state = self._devices[device] = _Device()
        if boot in state.offsets:
            if raw > state.max_raw[boot]:
                state.max_raw[boot] = raw
            return raw + state.offsets[boot]
        newest = max(state.offsets, default=None)
        if newest is None:
            offset = 0.0
        elif boot > newest:
            prev_max = state.max_raw[newest]
            if raw < prev_max:  # a new boot that starts lower: the counter was reset
                offset = state.offsets[newest] + prev_max
                self.resets += 1
            else:  # the counter survived the reboot (kept in flash)
                offset = state.offsets[newest]
        else:
            return None  # an unknown earlier boot: cannot place it
        state.offsets[boot] = offset
        state.max_raw[boot] = raw
        if len(state.offsets) > MAX_BOOTS_KEPT:
            oldest = min(state.offsets)
            del state.offsets[oldest], state.max_raw[oldest]
        return raw + offset
