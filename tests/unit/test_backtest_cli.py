"""`deltasense backtest`: arguments, errors, the JSON report and the HTML timeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backtest import scenarios
from backtest.runner import BacktestError, check_window, iso, parse_time
from tools.cli import app
from tools.devstack import free_port

runner = CliRunner()
NOW = 1_731_800_000_000


pytestmark = pytest.mark.usefixtures("cli_sandbox")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backtest"], "--scenario NAME"),
        (["backtest", "--scenario", "tsunami"], "unknown scenario 'tsunami'"),
        (["backtest", "--scenario", "flash-flood", "--start", "-1h", "--end", "now"], "not both"),
        (["backtest", "--start", "-1h"], "go together"),
        (["backtest", "--start", "yesterday", "--end", "now"], "cannot read time 'yesterday'"),
        (["backtest", "--start", "now", "--end", "-1h"], "after --start"),
        (["backtest", "--start", "-40d", "--end", "now"], "longer than 31 days"),
        (["backtest", "--scenario", "flash-flood", "--seed", "-1"], "--seed"),
        (["backtest", "--scenario", "flash-flood", "--tolerance", "-5"], "--tolerance"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_unreachable_influxdb_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_INFLUX_PORT", str(free_port()))  # nobody listens
    result = runner.invoke(app, ["backtest", "--start", "-1h", "--end", "now"])
    assert result.exit_code == 2
    assert "does not answer" in result.output


def test_list_names_every_scenario() -> None:
    result = runner.invoke(app, ["backtest", "--list"])
    assert result.exit_code == 0
    for name in scenarios.names():
        assert name in result.output


def test_json_report_and_html_timeline(tmp_path: Path) -> None:
    page = tmp_path / "timeline.html"
    result = runner.invoke(
        app, ["backtest", "--scenario", "flash-flood", "--seed", "2", "--json", "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert (rep["source"], rep["seed"], rep["minutes"]) == ("flash-flood", 2, 60)
    keys = {"events", "detected", "false_alerts", "flaps", "precision", "recall", "delay_median_s"}
    for kind in ("storm", "flood", "energy", "health"):
        entry = rep["kinds"][kind]
        assert keys <= set(entry)
        for a in entry["alerts"]:
            assert a["kind"] == kind
            assert {"kind", "rule", "subject", "severity", "start", "end"} <= set(a)
    flood = rep["kinds"]["flood"]
    assert flood["events"] == sum(
        1 for lb in rep["labels"] if lb["kind"] == "flood" and lb["expected"]
    )
    assert (
        flood["events"] > 0 and flood["detected"] > 0
    )  # the street-flood rule sees the cloudburst
    assert (
        rep["total_alerts"]
        == len(rep["alerts"])
        == sum(len(k["alerts"]) for k in rep["kinds"].values())
    )
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<svg" in text
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text


def test_text_report_prints_tables() -> None:
    result = runner.invoke(app, ["backtest", "--scenario", "flash-flood"])
    assert result.exit_code == 0, result.output
    assert "per alert kind" in result.output and "flash-flood (seed 1)" in result.output


def test_parse_time_forms() -> None:
    assert parse_time("now", NOW) == NOW
    assert parse_time("-90m", NOW) == NOW - 90 * 60_000
    assert parse_time("-2d", NOW) == NOW - 2 * 86_400_000
    assert parse_time("1731800000", NOW) == 1_731_800_000_000
    assert parse_time("1731800000123", NOW) == 1_731_800_000_123
    assert parse_time("2024-11-17T07:00", NOW) == parse_time("2024-11-17T00:00Z", NOW)
    for bad in ("", "tomorrow", "-5x", "2024-13-01"):
        with pytest.raises(BacktestError):
            parse_time(bad, NOW)
    with pytest.raises(BacktestError, match="future"):
        check_window(NOW + 1, NOW + 2, NOW)


def test_naive_times_and_reports_use_the_sites_offset() -> None:
    assert parse_time("2024-11-17T05:30", NOW, 330) == parse_time("2024-11-17T00:00Z", NOW)
    with pytest.raises(BacktestError, match=r"naive = UTC\+5:30"):
        parse_time("tomorrow", NOW, 330)
    at = parse_time("2024-11-17T00:00Z", NOW)
    assert (iso(at), iso(at, 0)) == ("2024-11-17 07:00:00", "2024-11-17 00:00:00")
