"""The gateway's side of the local rules, without brokers: what it appends to the
spool itself (offline alerts) counts its drops like the ward's messages do, and the
siren follows the decisions."""

from __future__ import annotations

from pathlib import Path

from gpiozero.pins.mock import MockFactory
from prometheus_client import REGISTRY

from deltasense.alerts import AlertEvent, Message
from edge.gateway import Gateway
from edge.localrules import Decisions
from edge.settings import EdgeSettings
from edge.spool import DropReason


def _dropped_full() -> float:
    return REGISTRY.get_sample_value("deltasense_edge_dropped_total", {"reason": "full"}) or 0.0


async def test_the_gateways_own_appends_count_their_drops(tmp_path: Path) -> None:
    settings = EdgeSettings(
        district="phuong-1",
        var_dir=tmp_path,
        spool_max_bytes=64 * 1024,
        metrics_port=0,
        siren_pin=5,
    )
    factory = MockFactory()
    gw = Gateway(settings, pin_factory=factory)
    before = _dropped_full()
    event = AlertEvent(
        id="al-0123456789abcdef",
        kind="flood",
        rule="street-flood",
        subject="drain-1",
        district="phuong-1",
        severity="critical",
        state="firing",
        values={f"v{i}": float(i) for i in range(40)},
        started=1,
        updated=1,
        message=Message(vi="", en=""),
    )
    try:
        for i in range(150):
            await gw._act(Decisions(siren=i % 2 == 0, lamp_orders=[], alerts=[event]))
        stats = gw.spool.stats()
        assert stats.dropped[DropReason.FULL] > 0  # the spool did fill
        assert _dropped_full() - before == stats.dropped[DropReason.FULL]
        assert factory.pin(5).state is False  # the last decision: silent
    finally:
        gw._db.shutdown(wait=True)
        gw.spool.close()
        gw.siren.close()
