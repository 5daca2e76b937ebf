"""The routing file: a good roster parses; every mistake is refused with file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltasense.alerts import AlertEvent, Message
from deltasense.routing import (
    RoutingError,
    load_routing,
    mask_address,
    parse_routing,
    routing_path,
    summary,
    write_routing,
)
from deltasense.settings import Settings

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


# --- shared with the API: masking, summary, the atomic write -------------------------
@pytest.mark.parametrize(
    ("channel", "address", "shown"),
    [
        ("email", "trucban@example.vn", "t***@example.vn"),
        ("email", "a@b.vn", "a***@b.vn"),
        ("telegram", "-1001234567890", "-100***890"),
        ("telegram", "123456789", "123***789"),
        ("telegram", "12345", "***"),  # too short to show any of it
        ("zalo", "8243125690123456789", "824***789"),
        ("sms", "+84912345123", "+849***123"),
        ("webhook", "https://hooks.example.vn/ds/T0KEN?sig=abc", "https://hooks.example.vn/***"),
        ("webhook", "https://user:pw@hooks.example.vn", "https://hooks.example.vn/***"),
        ("webhook", "not a url", "***"),
    ],
)
def test_mask_address_keeps_enough_to_tell_apart_and_not_to_use(
    channel: str, address: str, shown: str
) -> None:
    masked = mask_address(channel, address)
    assert masked == shown
    assert masked != address


def test_summary_has_no_address() -> None:
    out = summary(parse_routing(ROSTER))
    text = str(out)
    for address in ("trucban@example.vn", "1234567890", "8243125690123456789", "hooks.example"):
        assert address not in text
    assert out["receivers"][0] == {
        "id": "truc-ban",
        "name": "Trực ban PCTT thành phố",
        "language": "vi",
        "channels": {"telegram": 1, "email": 1},
    }
    assert [r["name"] for r in out["routes"]] == ["flood-critical", "everything"]
    assert out["routes"][0]["continue"] is True
    assert out["inhibit"] == [
        {"source_rules": ["storm-risk"], "target_rules": sorted(out["inhibit"][0]["target_rules"])}
    ]


def test_write_routing_validates_first_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "notifier" / "routing.toml"
    write_routing(path, ROSTER)
    assert path.read_text(encoding="utf-8") == ROSTER
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(RoutingError, match=r"routes\[0\]\.receivers: unknown receiver 'x'"):
        write_routing(path, '[[routes]]\nname = "a"\nreceivers = ["x"]\n')
    with pytest.raises(RoutingError, match="larger than"):
        write_routing(path, "#" * 1_000_001)
    assert path.read_text(encoding="utf-8") == ROSTER  # refused: nothing written
    assert [p.name for p in path.parent.iterdir()] == ["routing.toml"]  # no temp left


def test_routing_path_is_the_setting_or_var(tmp_path: Path) -> None:
    assert routing_path(Settings(var_dir=tmp_path)) == tmp_path / "notifier" / "routing.toml"
    mine = tmp_path / "roster.toml"
    assert routing_path(Settings(var_dir=tmp_path, notifier_routing_file=mine)) == mine
