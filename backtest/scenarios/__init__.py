"""Scenarios with ground truth: a time-accelerated Bạc Liêu whose events are labelled.

``simulate(name, seed)`` runs a scenario without any wall clock and returns its
readings minute by minute with the labelled events; :mod:`backtest.runner`
feeds them through the analytics engine and scores the alerts it raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from analytics.thresholds import load_thresholds
from backtest.scenarios.catalog import SCENARIOS, ScenarioDef
from backtest.scenarios.labels import Label
from backtest.scenarios.world import INTERVAL_S, Config, World
from deltasense.contract import DEFAULT_SITE, Kind, Reading
from deltasense.thresholds import Thresholds

__all__ = [
    "INTERVAL_S",
    "SCENARIOS",
    "Config",
    "Label",
    "Run",
    "ScenarioDef",
    "Step",
    "UnknownScenarioError",
    "World",
    "build",
    "get",
    "names",
    "simulate",
    "stations",
]


class UnknownScenarioError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown scenario {self.name!r}; known: {', '.join(names())}"


@dataclass(frozen=True)
class Step:
    """One simulated minute: the readings sent in it; evaluate at ``now_ms`` (its end)."""

    now_ms: int
    readings: list[Reading]


@dataclass(frozen=True)
class Run:
    config: Config
    steps: list[Step]
    labels: list[Label]
    stations: dict[str, str]

    def readings(self) -> Iterator[Reading]:
        for step in self.steps:
            yield from step.readings


def names() -> list[str]:
    return list(SCENARIOS)


def get(name: str) -> ScenarioDef:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenarioError(name) from None


def build(
    name: str,
    seed: int = 1,
    *,
    start_ms: int | None = None,
    site: str = DEFAULT_SITE,
    thresholds: Thresholds | None = None,
) -> World:
    """A fresh :class:`World` for ``name``; step it ``world.config.minutes`` times."""
    config = get(name).build(seed, start_ms, site)
    return World(config, thresholds or load_thresholds())


def stations(config: Config) -> dict[str, str]:
    """What each water node's meta says about where it measures (drain or canal)."""
    return {
        d.id: ("canal" if d.variant == "canal" else "drain")
        for d in config.devices
        if d.kind is Kind.WATER
    }


def simulate(
    name: str,
    seed: int = 1,
    *,
    start_ms: int | None = None,
    site: str = DEFAULT_SITE,
    thresholds: Thresholds | None = None,
) -> Run:
    """Run a whole scenario into memory (readings and labels)."""
    world = build(name, seed, start_ms=start_ms, site=site, thresholds=thresholds)
    steps = []
    for _ in range(world.config.minutes):
        now_ms, readings = world.step()
        steps.append(Step(now_ms, readings))
    return Run(world.config, steps, world.labels(), stations(world.config))
