"""Analytics' thresholds: the shared models (:mod:`deltasense.thresholds`) checked
against the rule registry.

The numbers and their validation belong to ``deltasense.thresholds`` (the edge
gateway reads them too); what analytics adds is that a per-rule key
(``alerting.for.rule_s``, ``keep_firing_for.rule_s``) must name one of its rules
(:mod:`analytics.ruleset`), so a misspelt rule stops start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analytics.ruleset import BY_NAME
from deltasense import thresholds as shared
from deltasense.thresholds import Thresholds


def from_document(document: dict[str, Any], source: str = "thresholds") -> Thresholds:
    return shared.from_document(document, source, rules=BY_NAME)


def load_thresholds(path: Path | None = None) -> Thresholds:
    """The shipped defaults with ``path`` merged over them, every rule name checked."""
    return shared.load_thresholds(path, rules=BY_NAME)
