"""Faults a scenario injects: value types only; :mod:`.world` applies them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DayBurn:
    """Photocell stuck closed: the lamp stays lit by day."""

    device: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class LampOut:
    """LED driver failed: the node says ``on`` but the lamp draws standby power only."""

    device: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Drift:
    """Power creeping above rated (ageing driver): ``pct_per_h`` up to ``max_pct``."""

    device: str
    start_ms: int
    end_ms: int
    pct_per_h: float = 8.0
    max_pct: float = 30.0

    def pct(self, t_ms: int) -> float:
        if not self.start_ms <= t_ms < self.end_ms:
            return 0.0
        return min(self.max_pct, self.pct_per_h * (t_ms - self.start_ms) / 3_600_000)


@dataclass(frozen=True)
class Cycling:
    """A failing lamp going off and on again every ``period_min`` while it should be lit."""

    device: str
    start_ms: int
    end_ms: int
    period_min: int = 10


@dataclass(frozen=True)
class Stuck:
    """One field of a sensor repeats its last good value."""

    device: str
    field: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Spike:
    """One reading of one field off by ``delta`` (a single-sample spike)."""

    device: str
    field: str
    at_ms: int
    delta: float


@dataclass(frozen=True)
class Dropout:
    """The node is silent (radio or backhaul trouble); the physics goes on."""

    device: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class ClockSkew:
    """The node's clock is off by ``offset_ms`` (its ``ts`` is wrong, arrival is not)."""

    device: str
    start_ms: int
    end_ms: int
    offset_ms: int


@dataclass(frozen=True)
class Outage:
    """Mains power lost in a district: lamps, cabinets and weather stations go dark and
    silent; battery water nodes go on.  On return the mains nodes reboot."""

    district: str
    start_ms: int
    end_ms: int


Fault = DayBurn | LampOut | Drift | Cycling | Stuck | Spike | Dropout | ClockSkew | Outage
