"""The Zalo OA token keeper (fast, an in-process transport): refresh before expiry,
one refresh for concurrent senders, hostile OAuth answers, the kept chain vs a new
refresh token in the settings, and the settings that must go together."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pydantic
import pytest

from deltasense.routing import Routing, parse_routing
from deltasense.settings import Settings
from notifier.channels import Outcome
from notifier.outbox import Message, Outbox
from notifier.service import MAX_ATTEMPTS, ConfigError, Notifier, build_channels, check_channels
from notifier.zaloauth import REFRESH_MARGIN_S, RETRY_EARLY_S, ZaloAuth, ZaloAuthError, token_path

REFRESH = "refresh-seed-Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8Ii9"
SECRET = "app-secret-Zz9Yy8Xx7Ww6"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def settings(tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = {
        "var_dir": tmp_path,
        "dev_insecure": True,
        "notifier_zalo_oauth_url": "http://oauth.test",
        "notifier_zalo_app_id": "123",
        "notifier_zalo_secret_key": SECRET,
        "notifier_zalo_refresh_token": REFRESH,
    }
    return Settings(**(base | kw))  # type: ignore[arg-type]


def oauth(answer: Callable[[httpx.Request], httpx.Response]) -> tuple[httpx.AsyncClient, list]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


def issuing(n: list[int]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        n[0] += 1
        return httpx.Response(
            200,
            json={
                "access_token": f"access-{n[0]}",
                "refresh_token": f"refresh-{n[0]}",
                "expires_in": "90000",
            },
        )

    return answer


async def test_it_refreshes_an_hour_before_expiry_without_waiting_for_a_refusal(
    tmp_path: Path,
) -> None:
    clock, n = Clock(), [0]
    http, seen = oauth(issuing(n))
    auth = ZaloAuth(settings(tmp_path), http, clock)
    assert await auth.access_token() == "access-1"  # no access token yet: refreshed first
    request = seen[0]
    assert request.url == "http://oauth.test/v4/oa/access_token"
    assert request.headers["secret_key"] == SECRET
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {"refresh_token": REFRESH, "app_id": "123", "grant_type": "refresh_token"}
    clock.now += 90_000 - REFRESH_MARGIN_S - 1
    assert await auth.access_token() == "access-1"  # not yet
    clock.now += 2
    assert await auth.access_token() == "access-2"  # within the margin: refreshed early
    assert dict(httpx.QueryParams(seen[1].content.decode()))["refresh_token"] == "refresh-1"
    path = token_path(settings(tmp_path))
    kept = json.loads(path.read_text())
    assert kept["refresh_token"] == "refresh-2" and kept["expires_at"] == clock.now + 90_000
    assert path.stat().st_mode & 0o777 == 0o600


async def test_concurrent_senders_share_one_refresh(tmp_path: Path) -> None:
    n = [0]
    http, seen = oauth(issuing(n))
    auth = ZaloAuth(settings(tmp_path, notifier_zalo_token="old-" + "a" * 32), http, Clock())
    await asyncio.gather(*(auth.refresh("old-" + "a" * 32) for _ in range(5)))
    assert len(seen) == 1 and auth.tokens.access_token == "access-1"
    await auth.refresh("old-" + "a" * 32)  # a late sender with the replaced token
    assert len(seen) == 1


async def test_a_failed_early_refresh_keeps_the_old_token_while_it_lasts(tmp_path: Path) -> None:
    clock, n = Clock(), [0]
    refuse = [False]

    def answer(request: httpx.Request) -> httpx.Response:
        if refuse[0]:
            return httpx.Response(
                200, json={"error": -14014, "error_name": "Invalid refresh token"}
            )
        return issuing(n)(request)

    http, seen = oauth(answer)
    auth = ZaloAuth(settings(tmp_path), http, clock)
    await auth.access_token()
    refuse[0] = True
    clock.now += 90_000 - REFRESH_MARGIN_S + 10
    assert await auth.access_token() == "access-1"  # refused, but it still works
    assert await auth.access_token() == "access-1" and len(seen) == 2  # not hammered
    clock.now += RETRY_EARLY_S
    await auth.access_token()
    assert len(seen) == 3
    clock.now += REFRESH_MARGIN_S  # now it has ended
    with pytest.raises(ZaloAuthError, match="-14014 Invalid refresh token"):
        await auth.access_token()
    assert auth.failures == 3


@pytest.mark.parametrize(
    ("response", "named"),
    [
        (httpx.Response(502, text="<html>bad gateway</html>"), "HTTP 502"),
        (httpx.Response(200, json=["not", "an", "object"]), "HTTP 200"),
        (httpx.Response(200, json={"access_token": "a" * 40}), "HTTP 200"),  # no refresh token
        (httpx.Response(200, json={"access_token": 5, "refresh_token": "r"}), "HTTP 200"),
        (
            httpx.Response(400, json={"error": -1, "error_description": f"bad {REFRESH}"}),
            "HTTP 400 -1 bad ***",  # an echoed token never reaches the log
        ),
    ],
)
async def test_hostile_oauth_answers_are_clear_errors_without_tokens(
    tmp_path: Path, response: httpx.Response, named: str
) -> None:
    http, _ = oauth(lambda _: response)
    auth = ZaloAuth(settings(tmp_path), http, Clock())
    with pytest.raises(ZaloAuthError) as err:
        await auth.access_token()
    assert named in str(err.value) and REFRESH not in str(err.value)
    assert not token_path(settings(tmp_path)).exists()  # nothing half-kept


async def test_unknown_or_absurd_lifetimes_mean_refresh_on_refusal_only(tmp_path: Path) -> None:
    for expires_in in ("soon", -5, 10**9, None):
        http, _ = oauth(
            lambda _, e=expires_in: httpx.Response(
                200, json={"access_token": "a", "refresh_token": "r", "expires_in": e}
            )
        )
        auth = ZaloAuth(settings(tmp_path / str(expires_in)), http, Clock())
        await auth.access_token()
        assert auth.tokens.expires_at is None


async def test_the_kept_chain_wins_unless_the_settings_hold_a_new_refresh_token(
    tmp_path: Path,
) -> None:
    http, _ = oauth(issuing([0]))
    first = ZaloAuth(settings(tmp_path), http, Clock())
    await first.access_token()
    again = ZaloAuth(settings(tmp_path), http, Clock())  # a restart, same settings
    assert again.tokens.refresh_token == "refresh-1"
    gone = ZaloAuth(settings(tmp_path, notifier_zalo_refresh_token=None), http, Clock())
    assert gone.tokens.refresh_token == "refresh-1"  # the seed may be removed after use
    fresh = "re-authorised-" + "b" * 32
    renewed = ZaloAuth(settings(tmp_path, notifier_zalo_refresh_token=fresh), http, Clock())
    assert renewed.tokens.refresh_token == fresh and renewed.tokens.access_token == ""
    static = "static-" + "c" * 32  # refreshing turned off: the configured token, no file
    off = settings(
        tmp_path,
        notifier_zalo_token=static,
        notifier_zalo_app_id=None,
        notifier_zalo_secret_key=None,
        notifier_zalo_refresh_token=None,
    )
    assert ZaloAuth(off, http, Clock()).tokens.access_token == static


def test_a_corrupt_token_file_is_refused_at_start_by_name(tmp_path: Path) -> None:
    s = settings(tmp_path)
    token_path(s).parent.mkdir(parents=True, exist_ok=True)
    token_path(s).write_text("{not json")
    r = parse_routing('[receivers.a]\nzalo = ["1"]')
    with pytest.raises(ConfigError, match=r"zalo-tokens\.json: not a Zalo token file"):
        build_channels(s, r, httpx.AsyncClient(), Clock())


def test_zalo_needs_a_token_or_a_whole_refresh_setup(tmp_path: Path) -> None:
    r = parse_routing('[receivers.a]\nzalo = ["1"]')
    check_channels(settings(tmp_path), r)  # refreshing alone is enough
    bare = Settings(var_dir=tmp_path, dev_insecure=True)
    with pytest.raises(ConfigError, match=r"zalo \(DELTASENSE_NOTIFIER_ZALO_TOKEN or"):
        check_channels(bare, r)
    for missing, named in [
        ({"notifier_zalo_app_id": None}, "needs DELTASENSE_NOTIFIER_ZALO_APP_ID"),
        (
            {"notifier_zalo_refresh_token": None, "notifier_zalo_secret_key": None},
            "needs DELTASENSE_NOTIFIER_ZALO_SECRET_KEY",
        ),
        ({"notifier_zalo_refresh_token": None}, "needs DELTASENSE_NOTIFIER_ZALO_REFRESH_TOKEN"),
    ]:
        partial = settings(tmp_path, notifier_zalo_token="t" * 40, **missing)
        with pytest.raises(ConfigError, match=named):  # even with an access token
            check_channels(partial, r)
    with pytest.raises(pydantic.ValidationError, match="notifier_zalo_app_id"):
        settings(tmp_path, notifier_zalo_app_id="12a; DROP")
    assert REFRESH not in repr(settings(tmp_path)) and SECRET not in repr(settings(tmp_path))


def test_a_message_waiting_for_a_token_refresh_is_never_given_up(tmp_path: Path) -> None:
    """Past the attempt limit a send that failed for the channel's credentials stays
    'retried' (it goes once a refresh works); any other failure is given up."""
    box = Outbox(tmp_path / "o.sqlite3")
    n = Notifier(settings(tmp_path), Routing(), box, {})
    m = Message("ds-" + "1" * 32, "a", "zalo", "1", "alerts", ("al-1",), {"text": "x"})
    box.enqueue([m, replace(m, key="ds-" + "2" * 32)], now_ms=0)
    late = replace(m, attempts=MAX_ATTEMPTS + 5)
    n._settle(late, Outcome(False, detail="zalo token refresh refused", keep=True), 0.0)
    n._settle(replace(late, key="ds-" + "2" * 32), Outcome(False, detail="zalo error -1"), 0.0)
    states = {x.key: x.state for x in box.messages()}
    assert states == {m.key: "retried", "ds-" + "2" * 32: "failed"}
    box.close()
