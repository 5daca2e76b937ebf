"""Issue 10, scope 3: analytics as two partitions on the supervised stack, each killed
with SIGKILL in turn under the chaos suite's counting publisher.

The standing flood alert is in a district of partition 1.  Killing its owner: the
supervisor restarts it, it adopts the open alert and refills its windows from
InfluxDB, and the alert keeps its one id, raised once (partition 0 never raises
it).  Killing partition 0 (the city's and the platform's owner) changes nothing
for it.  No acknowledged reading is lost either way.
"""

from __future__ import annotations

import pytest

from analytics.partition import partition_of
from tools import chaos
from tools.stack import analytics_name


@pytest.mark.timeout(300)
def test_each_of_two_partitions_killed_keeps_the_standing_alert_one_and_loses_nothing() -> None:
    owner = analytics_name(partition_of(chaos.DISTRICT, 2))
    assert owner == "analytics-1"  # the map is stable: phuong-1 hashes to partition 1
    scenarios = (
        chaos.Scenario("kill -9 the flood district's partition", owner),
        chaos.Scenario("kill -9 partition 0", "analytics"),
    )
    watches: list[chaos.AlertWatch] = []
    outcomes = chaos.run(
        scenarios,
        devices=10,
        rate=150,
        lead_s=2.0,
        tail_s=2.0,
        max_queued=10_000,
        analytics_partitions=2,
        on_watch=watches.append,
    )
    report = "\n".join(map(str, outcomes))
    print(report)
    assert [o.scenario for o in outcomes] == [s.name for s in scenarios]
    for o in outcomes:
        assert o.published > 150 and o.lost == 0 and o.duplicates == 0, report
        assert o.alert_ids == 1, report  # no second episode for the standing flood
        assert o.restart_s < 10, report
    (watch,) = watches
    assert watch.raised == 1, report  # raised once, by its owner, never again
