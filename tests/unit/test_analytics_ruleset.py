"""The rule registry: one declaration per rule, and thresholds keys checked against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.ruleset import BY_NAME, RULES, Subject
from analytics.thresholds import load_thresholds
from deltasense.thresholds import Thresholds, ThresholdsError


def site_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


MISSPELT = [
    ("[alerting.for]\nrule_s = {wind_cap = 600}\n", "alerting.for.rule_s.wind_cap", "wind-cap"),
    ('[alerting.for.rule_s]\n"day_burn" = 60\n', "alerting.for.rule_s.day_burn", "day-burn"),
    (
        '[alerting.keep_firing_for.rule_s]\n"street-floods" = 0\n',
        "alerting.keep_firing_for.rule_s.street-floods",
        "street-flood",
    ),
    ("[alerting.keep_firing_for.rule_s]\ntsunami = 60\n", "keep_firing_for.rule_s.tsunami", None),
]


@pytest.mark.parametrize(("text", "key", "meant"), MISSPELT)
def test_an_unknown_rule_name_is_refused_with_file_and_key(
    tmp_path: Path, text: str, key: str, meant: str | None
) -> None:
    path = site_file(tmp_path, text)
    with pytest.raises(ThresholdsError) as info:
        load_thresholds(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert f"{key}:" in message
    if meant is not None:
        assert f"did you mean {meant!r}" in message
    else:
        assert "did you mean" not in message


def test_every_registered_rule_may_be_named(tmp_path: Path) -> None:
    lines = ["[alerting.for.rule_s]", *(f'"{r.name}" = 7' for r in RULES)]
    lines += ["[alerting.keep_firing_for.rule_s]", *(f'"{r.name}" = 11' for r in RULES)]
    t = load_thresholds(site_file(tmp_path, "\n".join(lines) + "\n"))
    for rule in RULES:
        spec = rule.spec(t)
        assert (spec.for_ms, spec.keep_firing_for_ms) == (7000, 11000), rule.name


def test_the_service_refuses_to_start_on_a_misspelt_rule(cli_sandbox: Path) -> None:
    path = site_file(cli_sandbox, "[alerting.for]\nrule_s = {wind_cap = 600}\n")
    env = {**os.environ, "DELTASENSE_THRESHOLDS_FILE": str(path)}
    run = subprocess.run(
        [sys.executable, "-m", "analytics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0
    assert str(path) in run.stderr and "alerting.for.rule_s.wind_cap" in run.stderr
    assert "Traceback" not in run.stderr


def test_names_are_unique_and_the_registry_covers_every_subject() -> None:
    assert len(BY_NAME) == len(RULES)
    assert {r.subject for r in RULES} == set(Subject)


def test_default_timing_comes_from_the_kind_or_the_rule(thresholds: Thresholds) -> None:
    a = thresholds.alerting
    # a lighting table's own for_min (10 min), not the energy kind's lighting_s (15 min)
    lamp_out = BY_NAME["lamp-out"].spec(thresholds).for_ms
    assert lamp_out == round(thresholds.lighting.lamp_out.for_min * 60_000) == 600_000
    assert round(a.for_.lighting_s * 1000) == 900_000
    assert BY_NAME["power-drift"].spec(thresholds).for_ms == round(a.for_.lighting_s * 1000)
    # street-flood counts readings; other flood rules count evaluations
    street = BY_NAME["street-flood"].spec(thresholds)
    assert (street.for_count, street.for_ms) == (a.for_.flood_readings, 0)
    assert BY_NAME["drain-rising"].spec(thresholds).for_count == 1


def test_a_rule_s_entry_wins_over_the_rules_own_default(tmp_path: Path) -> None:
    text = '[alerting.for.rule_s]\n"day-burn" = 30\n"street-flood" = 120\n'
    t = load_thresholds(site_file(tmp_path, text))
    assert BY_NAME["day-burn"].spec(t).for_ms == 30_000
    street = BY_NAME["street-flood"].spec(t)
    # street-flood is an ordinary rule now: its rule_s is honoured, on top of the readings
    assert (street.for_count, street.for_ms) == (t.alerting.for_.flood_readings, 120_000)
