"""The chaos suite, shortened for `make test`: each platform process is killed
with SIGKILL under a steady QoS 1 publisher (InfluxDB stays down 5 s); every
reading the broker acknowledged must be stored exactly once (a broker crash with
readings queued for ingest may lose at most its documented autosave window), each process must
come back by itself within 10 s, and the standing flood alert must keep its id
through an analytics restart.  `make chaos` runs the long form (60 s outage)."""

from __future__ import annotations

import pytest

from tools import chaos

SHORT = (
    chaos.Scenario("kill -9 ingest", "ingest"),
    chaos.Scenario("kill -9 analytics", "analytics"),
    chaos.Scenario("kill -9 api", "api"),
    chaos.Scenario("kill -9 mosquitto", "mosquitto"),
    chaos.Scenario("influxdb down 5 s", "influxdb", outage_s=5.0),
    chaos.Scenario(
        "kill -9 mosquitto, 3 s backlog",
        "mosquitto",
        backlog_s=3.0,
        allowed_loss=chaos.BROKER_AUTOSAVE_CHANGES,
    ),
)


@pytest.mark.timeout(400)
def test_every_process_killed_under_load_loses_nothing() -> None:
    outcomes = chaos.run(SHORT, devices=10, rate=150, lead_s=2.0, tail_s=1.0)
    report = "\n".join(map(str, outcomes))
    assert [o.scenario for o in outcomes] == [s.name for s in SHORT]
    for o in outcomes:
        assert o.published > 150, report  # the load really ran through the scenario
        assert o.lost <= o.allowed_loss, report  # 0 but for Mosquitto's documented window
        assert o.duplicates == 0, report
        assert o.alert_ids == 1, report
        outage = next(s.outage_s for s in SHORT if s.name == o.scenario)
        assert o.restart_s < outage + 10, report
