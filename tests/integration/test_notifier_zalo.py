"""Zalo OA access token refresh against the local Zalo fake (message and OAuth
endpoints, single-use refresh tokens), with the real Mosquitto and InfluxDB."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import pytest

from deltasense.influx import InfluxClient
from deltasense.settings import Settings
from notifier.zaloauth import token_path
from tests.integration.notifier_support import (
    ZALO_APP_ID,
    ZALO_REFRESH,
    ZALO_SECRET_KEY,
    ZALO_TOKEN,
    Fakes,
    alert,
    notifier_overrides,
    publish,
    routing,
    running_fakes,
    running_notifier,
)
from tests.support import eventually
from tools.devstack import free_port

ZALO_ONLY = """
[receivers.truc-ban]
language = "vi"
zalo = ["8243125690123456789"]

[[routes]]
name = "flood"
receivers = ["truc-ban"]
"""


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as f:
        yield f


@pytest.fixture
def nsettings(settings: Settings, fakes: Fakes) -> Settings:
    return Settings(**(settings.model_dump() | notifier_overrides(fakes, None, None)))


def _no_token_logged(caplog: pytest.LogCaptureFixture, fakes: Fakes) -> None:
    secrets = {ZALO_TOKEN, ZALO_REFRESH, ZALO_SECRET_KEY, fakes.zalo_refresh, *fakes.zalo_access}
    secrets |= {f["refresh_token"] for f in fakes.zalo_refreshes if "refresh_token" in f}
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert not [s for s in secrets if s in text]


async def test_a_send_after_the_token_expired_arrives_and_the_new_refresh_token_is_kept(
    nsettings: Settings, fakes: Fakes, influx: InfluxClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fakes.zalo_access.clear()  # the configured access token's 25 h are over
    async with running_notifier(nsettings, routing(fakes, ZALO_ONLY), influx):
        sent = await publish(nsettings, alert(11))
        await fakes.wait_for(lambda a: len(fakes.of("zalo")) == 1, within=3)
    took = fakes.of("zalo")[0].at - sent
    assert took < 2.0, f"refresh and resend took {took:.2f} s"
    assert fakes.zalo_refreshes == [
        {"refresh_token": ZALO_REFRESH, "app_id": ZALO_APP_ID, "grant_type": "refresh_token"}
    ]
    path = token_path(nsettings)
    assert path.stat().st_mode & 0o777 == 0o600
    kept = json.loads(path.read_text())
    assert kept["refresh_token"] == fakes.zalo_refresh != ZALO_REFRESH
    assert kept["access_token"] in fakes.zalo_access
    assert abs(kept["expires_at"] - (time.time() + 90_000)) < 60

    # A restart goes on with the kept refresh token, not the spent one in the settings.
    fakes.zalo_access.clear()
    again = Settings(**(nsettings.model_dump() | {"notifier_http_port": free_port()}))
    async with running_notifier(again, routing(fakes, ZALO_ONLY), influx):
        await publish(nsettings, alert(12))
        await fakes.wait_for(lambda a: len(fakes.of("zalo")) == 2, within=3)
    assert fakes.zalo_refreshes[1]["refresh_token"] == kept["refresh_token"]
    assert len(fakes.zalo_refreshes) == 2
    assert any("zalo access token refreshed" in r.getMessage() for r in caplog.records)
    _no_token_logged(caplog, fakes)


async def test_a_refresh_failure_is_a_logged_error_and_the_message_stays_queued(
    nsettings: Settings, fakes: Fakes, influx: InfluxClient, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.zalo_access.clear()
    fakes.zalo_refuse_refresh = True
    async with running_notifier(nsettings, routing(fakes, ZALO_ONLY), influx) as n:
        await publish(nsettings, alert(13))

        async def retried() -> bool:
            return [(m.state, m.attempts > 0) for m in n.outbox.messages("al-0013")] == [
                ("retried", True)
            ]

        assert await eventually(retried, within=5)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(
            "zalo token refresh refused: HTTP 200 -14014 Invalid refresh token" in e
            and "stay queued" in e
            for e in errors
        ), errors
        assert fakes.of("zalo") == []
        # Zalo takes the refresh token again (the operator fixed the app): it arrives.
        fakes.zalo_refuse_refresh = False
        await fakes.wait_for(lambda a: len(fakes.of("zalo")) == 1, within=8)

        async def sent() -> bool:
            return [m.state for m in n.outbox.messages("al-0013")] == ["sent"]

        assert await eventually(sent, within=3)
    assert len(fakes.of("zalo")) == 1
    _no_token_logged(caplog, fakes)
