"""The publish → alert on SSE bench runs: its quick mode at its smallest (three
street-flood probes over a 200 msg/s background) on a broker and database of its
own, with the real ingest, analytics and API.  No timing targets: CI proves the
harness (every probe's alert reached the stream, the lag gauge was read), not speed."""

from __future__ import annotations

import math

import pytest

from bench import alert_e2e


@pytest.mark.timeout(180)
def test_quick_smoke_configuration_sees_every_probe_alert_on_the_stream() -> None:
    config = alert_e2e.parse(alert_e2e.SMOKE_ARGS)
    result = alert_e2e.run(config)
    assert result.unseen == 0 and len(result.samples) == config.probes, result
    assert all(math.isfinite(s) and s > 0 for s in result.samples), result.samples
    assert 0 < result.warm_up_s < 60
    # Each probe's crossing reading raised one firing event (and its clear, a resolve).
    assert result.stream_events >= 2 * config.probes + 1
    assert result.acked > 0
    # analytics took in everything the broker acknowledged, and said how late it was
    assert result.caught_up_s is not None, result
    assert result.analytics_readings == result.expected_readings, result
    assert result.analytics_lag_max_s is not None and result.lag_scrapes > 0, result
    assert result.ingest_lag_max_s is not None, result
    table = alert_e2e.render(result)
    assert "| 200 msg/s |" in table and "deltasense_analytics_lag_seconds" in table


def test_hostile_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    hostile = (["--rate", "0"], ["--probes", "-1"], ["--spacing", "nan"], ["--shape", "x"])
    for argv in (*hostile, ["--nope"]):
        with pytest.raises(SystemExit) as exited:
            alert_e2e.parse(argv)
        assert exited.value.code == 2, argv
    err = capsys.readouterr().err
    assert "--rate must be within" in err and "argument --shape: invalid choice" in err
    assert alert_e2e.parse(["--shape", "batch50"]).shape == "batch50"
