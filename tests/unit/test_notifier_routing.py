"""The routing file: a good roster parses; every mistake is refused with file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltasense.alerts import AlertEvent, Message
from notifier.routing import RoutingError, load_routing, parse_routing

ROSTER = """
[receivers.truc-ban]
name = "Trực ban PCTT thành phố"
language = "vi"
telegram = [-1001234567890]
email = ["trucban@example.vn"]

[receivers.pho-ban]
name = "Phó ban chỉ huy"
zalo = ["8243125690123456789"]

[receivers.ops]
language = "en"
webhook = ["https://hooks.example.vn/ds"]

[[routes]]
name = "flood-critical"
kinds = ["flood"]
severities = ["critical"]
receivers = ["truc-ban"]
escalate = ["pho-ban"]
continue = true

[[routes]]
name = "everything"
receivers = ["ops"]

[[inhibit]]
source_rules = ["storm-risk"]
target_rules = ["wind-cap", "gust"]
"""


def event(**kw: object) -> AlertEvent:
    base: dict[str, object] = dict(
        id="al-1",
        kind="flood",
        rule="street-flood",
        subject="wl-p1-001",
        district="phuong-1",
        severity="critical",
        state="firing",
        started=0,
        updated=0,
        message=Message(vi="v", en="e"),
    )
    base.update(kw)
    return AlertEvent(**base)  # type: ignore[arg-type]


def test_roster_parses_and_routes_continue() -> None:
    r = parse_routing(ROSTER, "roster.toml")
    assert r.receivers["truc-ban"].addresses() == [
        ("telegram", "-1001234567890"),
        ("email", "trucban@example.vn"),
    ]
    assert r.receivers["pho-ban"].language == "vi"
    assert [x.name for x in r.routes_for(event())] == ["flood-critical", "everything"]
    assert [x.name for x in r.routes_for(event(severity="warning"))] == ["everything"]
    assert r.routes[0].group_key(event()) == "flood-critical|kind=flood|district=phuong-1"
    assert r.inhibits[0].source_rules == {"storm-risk"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[receivers.a]\nemail=['a@b.vn']\nphone=['1']", "receivers.a: unknown key 'phone'"),
        ("colour = 1", "unknown key 'colour'"),
        (
            "[[routes]]\nname='x'\nreceivers=['nobody']",
            "routes[0].receivers: unknown receiver 'nobody'",
        ),
        (
            ROSTER + "[[routes]]\nname='y'\nreceivers=['ops']\nescalate=['ghost']",
            "routes[2].escalate: unknown receiver 'ghost'",
        ),
        (
            "[receivers.a]\nemail=['a@b.vn']\n[[routes]]\nname='x'\nreceivers=['a']\nkinds=['fire']",
            "routes[0].kinds: 'fire'",
        ),
        (
            "[receivers.a]\nemail=['a@b.vn']\n[[routes]]\nname='x'\nreceivers=['a']\nsurprise=1",
            "routes[0]: unknown key 'surprise'",
        ),
        (
            "[receivers.a]\nemail=['a@b.vn']\n[[routes]]\nname='x'\nreceivers=['a']\ngroup_by=['colour']",
            "routes[0].group_by: 'colour'",
        ),
        (
            "[receivers.a]\nemail=['a@b.vn']\n[[routes]]\nname='x'\nreceivers=['a']\ncontinue='yes'",
            "routes[0].continue",
        ),
        (
            "[receivers.a]\nemail=['a@b.vn']\n[[routes]]\nname='x'\nreceivers=['a']\n[[routes]]\nname='x'\nreceivers=['a']",
            "defined twice",
        ),
        (
            "[receivers.a]\nemail=['a@b.vn']\n[[routes]]\nname='x'\nreceivers=[]",
            "at least one receiver",
        ),
        ("[receivers.a]\nemail=['not an address']", "receivers.a.email: 'not an address'"),
        ("[receivers.a]\nwebhook=['ftp://x']", "receivers.a.webhook"),
        ("[receivers.a]\ntelegram=['123']", "receivers.a.telegram"),
        ("[receivers.a]\ntelegram=[true]", "receivers.a.telegram"),
        ("[receivers.a]\nzalo=['12; DROP TABLE']", "receivers.a.zalo"),
        ("[receivers.a]\nlanguage='fr'\nemail=['a@b.vn']", "receivers.a.language: 'fr'"),
        ("[receivers.a]\nname='x'", "receivers.a: no channel"),
        ("[receivers.'A B']\nemail=['a@b.vn']", "receiver id 'A B'"),
        ("receivers = 3", "receivers: must be a table"),
        ("routes = 'all'", "routes: must be an array"),
        ("[[inhibit]]\nsource_rules=['a']", "inhibit[0]: source_rules and target_rules"),
        ("[[inhibit]]\nsource_rules=['a']\ntarget_rules=['a']", "cannot inhibit itself"),
        ("[receivers.a\n", "roster.toml"),
        ("[receivers.a]\nemail=['a@b.vn', 'a@b.vn']", "repeated entry"),
        (
            "[receivers.a]\nemail=['a@b.vn']\n[[routes]]\nname='../etc'\nreceivers=['a']",
            "routes[0].name",
        ),
    ],
)
def test_mistakes_are_refused_by_name(text: str, named: str) -> None:
    with pytest.raises(RoutingError) as err:
        parse_routing(text, "roster.toml")
    assert named in str(err.value)
    assert str(err.value).startswith("roster.toml")


def test_files_that_are_not_text_or_missing(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="No such file"):
        load_routing(tmp_path / "absent.toml")
    bad = tmp_path / "binary.toml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RoutingError, match="not UTF-8"):
        load_routing(bad)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(RoutingError, match="larger than"):
        load_routing(big)


def test_the_documented_example_parses() -> None:
    text = (Path(__file__).parents[2] / "docs" / "routing.example.toml").read_text()
    r = parse_routing(text, "docs/routing.example.toml")
    assert r.routes and r.receivers
