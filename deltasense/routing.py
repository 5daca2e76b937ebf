"""The routing file: receivers, routes and inhibitions, parsed and validated.

Shared (not the notifier's own) because two services read it: the notifier
routes by it, and the API lets admins read and replace it, validating with this
same parser so a file the notifier would refuse is never written.

Every mistake is refused at start-up with the file and the key named, so a
typo cannot silently leave the duty officer out of a storm.  Shape::

    [receivers.truc-ban]            # id: lower-case letters, digits, '-' and '_'
    name = "Trực ban PCTT"
    language = "vi"                 # vi | en
    telegram = [-1001234567890]     # chat ids
    zalo = ["8243125690123456789"]  # Zalo OA user ids
    email = ["trucban@example.vn"]
    webhook = ["https://hooks.example.vn/deltasense"]

    [[routes]]
    name = "flood"
    kinds = ["flood"]               # each filter: empty or absent = any
    severities = ["warning", "critical"]
    wards = []                      # district ids
    rules = []
    receivers = ["truc-ban"]
    escalate = ["pho-ban", "chu-tich"]  # unacked critical: the next one every N minutes
    group_by = ["kind", "district"] # default
    continue = false                # true: later routes may match the event too

    [[inhibit]]                     # while a source alert is open, target alerts are folded
    source_rules = ["storm-risk"]
    target_rules = ["wind-cap", "gust"]
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from deltasense.alerts import SEVERITY_RANK, AlertEvent
from deltasense.dynsec import write_private
from deltasense.settings import Settings

Language = Literal["vi", "en"]
CHANNELS: Final = ("telegram", "zalo", "email", "webhook")
GROUP_FIELDS: Final = frozenset({"kind", "district", "rule", "subject", "severity"})
KINDS: Final = frozenset({"storm", "flood", "energy", "health"})
ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
EMAIL_RE: Final = re.compile(r"[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
URL_RE: Final = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")
ZALO_RE: Final = re.compile(r"[0-9]{1,32}")
WARD_RE: Final = re.compile(r"[a-z0-9_][a-z0-9_-]{0,31}")
MAX_FILE_BYTES: Final = 1_000_000


class RoutingError(ValueError):
    """The routing file is unreadable or wrong; the message names file and key."""


@dataclass(frozen=True)
class Receiver:
    id: str
    name: str
    language: Language
    telegram: tuple[int, ...] = ()
    zalo: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    webhook: tuple[str, ...] = ()

    def addresses(self) -> list[tuple[str, str]]:
        """(channel, address) for every way to reach this receiver."""
        out: list[tuple[str, str]] = [("telegram", str(chat)) for chat in self.telegram]
        out += [("zalo", a) for a in self.zalo]
        out += [("email", a) for a in self.email]
        out += [("webhook", a) for a in self.webhook]
        return out


@dataclass(frozen=True)
class Route:
    name: str
    receivers: tuple[str, ...]
    kinds: frozenset[str] = frozenset()
    severities: frozenset[str] = frozenset()
    wards: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()
    escalate: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ("kind", "district")
    continue_: bool = False

    def matches(self, event: AlertEvent) -> bool:
        return (
            (not self.kinds or event.kind in self.kinds)
            and (not self.severities or event.severity in self.severities)
            and (not self.wards or event.district in self.wards)
            and (not self.rules or event.rule in self.rules)
        )

    def group_key(self, event: AlertEvent) -> str:
        parts = [self.name] + [f"{f}={getattr(event, f)}" for f in self.group_by]
        return "|".join(parts)


@dataclass(frozen=True)
class Inhibit:
    source_rules: frozenset[str]
    target_rules: frozenset[str]


@dataclass(frozen=True)
class Routing:
    receivers: dict[str, Receiver] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    inhibits: tuple[Inhibit, ...] = ()

    def routes_for(self, event: AlertEvent) -> list[Route]:
        """The routes an event takes: the first match, and the next ones while
        the matched route says ``continue``."""
        out: list[Route] = []
        for route in self.routes:
            if route.matches(event):
                out.append(route)
                if not route.continue_:
                    break
        return out


# --- parsing -------------------------------------------------------------------------
_RECEIVER_KEYS: Final = frozenset({"name", "language", *CHANNELS})
_ROUTE_KEYS: Final = frozenset(
    {"name", "kinds", "severities", "wards", "rules", "receivers", "escalate", "group_by"}
    | {"continue"}
)
_INHIBIT_KEYS: Final = frozenset({"source_rules", "target_rules"})
_TOP_KEYS: Final = frozenset({"receivers", "routes", "inhibit"})


def _unknown(where: str, table: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise RoutingError(
            f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RoutingError(f"{where}: must be a table")
    return value


def _strings(where: str, value: Any, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RoutingError(f"{where}: must be a list of strings")
    for v in value:
        if pattern is not None and not pattern.fullmatch(v):
            raise RoutingError(f"{where}: {v!r} is not valid")
    if len(set(value)) != len(value):
        raise RoutingError(f"{where}: repeated entry")
    return tuple(value)


def _choices(where: str, value: Any, allowed: frozenset[str]) -> frozenset[str]:
    items = _strings(where, value)
    for v in items:
        if v not in allowed:
            raise RoutingError(f"{where}: {v!r} is not one of {', '.join(sorted(allowed))}")
    return frozenset(items)


def _receiver(where: str, rid: str, raw: Any) -> Receiver:
    if not ID_RE.fullmatch(rid):
        raise RoutingError(f"{where}: receiver id {rid!r} must match {ID_RE.pattern}")
    t = _table(where, raw)
    _unknown(where, t, _RECEIVER_KEYS)
    name = t.get("name", rid)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise RoutingError(f"{where}.name: must be a non-empty string (≤ 200 characters)")
    language = t.get("language", "vi")
    if language not in ("vi", "en"):
        raise RoutingError(f"{where}.language: {language!r} is not vi or en")
    chats = t.get("telegram", [])
    if not isinstance(chats, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c != 0 for c in chats
    ):
        raise RoutingError(f"{where}.telegram: must be a list of non-zero integer chat ids")
    receiver = Receiver(
        id=rid,
        name=name,
        language=language,
        telegram=tuple(chats),
        zalo=_strings(f"{where}.zalo", t.get("zalo", []), ZALO_RE),
        email=_strings(f"{where}.email", t.get("email", []), EMAIL_RE),
        webhook=_strings(f"{where}.webhook", t.get("webhook", []), URL_RE),
    )
    if not receiver.addresses():
        raise RoutingError(f"{where}: no channel (give one of {', '.join(CHANNELS)})")
    return receiver


def _route(where: str, raw: Any, receivers: dict[str, Receiver], names: set[str]) -> Route:
    t = _table(where, raw)
    _unknown(where, t, _ROUTE_KEYS)
    name = t.get("name")
    if not isinstance(name, str) or not ID_RE.fullmatch(name):
        raise RoutingError(f"{where}.name: required, must match {ID_RE.pattern}")
    if name in names:
        raise RoutingError(f"{where}.name: route {name!r} is defined twice")
    names.add(name)
    chain: dict[str, tuple[str, ...]] = {}
    for key in ("receivers", "escalate"):
        chain[key] = _strings(f"{where}.{key}", t.get(key, []))
        for rid in chain[key]:
            if rid not in receivers:
                raise RoutingError(f"{where}.{key}: unknown receiver {rid!r}")
    if not chain["receivers"]:
        raise RoutingError(f"{where}.receivers: at least one receiver is required")
    group_by = _strings(f"{where}.group_by", t.get("group_by", ["kind", "district"]))
    for g in group_by:
        if g not in GROUP_FIELDS:
            raise RoutingError(
                f"{where}.group_by: {g!r} is not one of {', '.join(sorted(GROUP_FIELDS))}"
            )
    cont = t.get("continue", False)
    if not isinstance(cont, bool):
        raise RoutingError(f"{where}.continue: must be true or false")
    return Route(
        name=name,
        receivers=chain["receivers"],
        escalate=chain["escalate"],
        kinds=_choices(f"{where}.kinds", t.get("kinds", []), KINDS),
        severities=_choices(
            f"{where}.severities", t.get("severities", []), frozenset(SEVERITY_RANK)
        ),
        wards=frozenset(_strings(f"{where}.wards", t.get("wards", []), WARD_RE)),
        rules=frozenset(_strings(f"{where}.rules", t.get("rules", []), ID_RE)),
        group_by=group_by,
        continue_=cont,
    )


def parse_routing(text: str, source: str = "<routing>") -> Routing:
    """Parse and validate a routing file's text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoutingError(f"{source}: {exc}") from None
    _unknown(source, data, _TOP_KEYS)
    raw_receivers = _table(f"{source}: receivers", data.get("receivers", {}))
    receivers = {
        rid: _receiver(f"{source}: receivers.{rid}", rid, raw) for rid, raw in raw_receivers.items()
    }
    raw_routes = data.get("routes", [])
    if not isinstance(raw_routes, list):
        raise RoutingError(f"{source}: routes: must be an array of tables ([[routes]])")
    names: set[str] = set()
    routes = tuple(
        _route(f"{source}: routes[{i}]", raw, receivers, names) for i, raw in enumerate(raw_routes)
    )
    raw_inhibits = data.get("inhibit", [])
    if not isinstance(raw_inhibits, list):
        raise RoutingError(f"{source}: inhibit: must be an array of tables ([[inhibit]])")
    inhibits = []
    for i, raw in enumerate(raw_inhibits):
        where = f"{source}: inhibit[{i}]"
        t = _table(where, raw)
        _unknown(where, t, _INHIBIT_KEYS)
        src = frozenset(_strings(f"{where}.source_rules", t.get("source_rules", []), ID_RE))
        dst = frozenset(_strings(f"{where}.target_rules", t.get("target_rules", []), ID_RE))
        if not src or not dst:
            raise RoutingError(f"{where}: source_rules and target_rules are both required")
        if src & dst:
            raise RoutingError(f"{where}: a rule cannot inhibit itself ({sorted(src & dst)[0]!r})")
        inhibits.append(Inhibit(src, dst))
    return Routing(receivers=receivers, routes=routes, inhibits=tuple(inhibits))


def load_routing(path: Path) -> Routing:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RoutingError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise RoutingError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RoutingError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return parse_routing(text, str(path))


def routing_path(settings: Settings) -> Path:
    """Where the routing file is: the setting, or var/notifier/routing.toml."""
    return settings.notifier_routing_file or settings.var_dir / "notifier" / "routing.toml"


def write_routing(path: Path, text: str) -> Routing:
    """Validate ``text`` and only then replace the file atomically (0600: it holds
    addresses); a refused text raises :class:`RoutingError` and writes nothing."""
    data = text.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise RoutingError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    routing = parse_routing(text, str(path))
    write_private(path, data)
    return routing


def summary(routing: Routing) -> dict[str, Any]:
    """What the file says, without its addresses: receivers with their channels
    and how many addresses each, routes with their filters, inhibitions."""
    return {
        "receivers": [
            {
                "id": r.id,
                "name": r.name,
                "language": r.language,
                "channels": {ch: n for ch in CHANNELS if (n := len(getattr(r, ch)))},
            }
            for r in routing.receivers.values()
        ],
        "routes": [
            {
                "name": rt.name,
                "kinds": sorted(rt.kinds),
                "severities": sorted(rt.severities),
                "wards": sorted(rt.wards),
                "rules": sorted(rt.rules),
                "receivers": list(rt.receivers),
                "escalate": list(rt.escalate),
                "group_by": list(rt.group_by),
                "continue": rt.continue_,
            }
            for rt in routing.routes
        ],
        "inhibit": [
            {"source_rules": sorted(i.source_rules), "target_rules": sorted(i.target_rules)}
            for i in routing.inhibits
        ],
    }


def mask_address(channel: str, address: str) -> str:
    """An address shown to operators: enough to tell two apart, not enough to use.
    ``t***@example.vn``, ``-100***890`` (chat ids, Zalo ids, phone numbers),
    ``https://hooks.example.vn/***`` (a webhook's path may hold its token)."""
    if channel == "email" and "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if channel == "webhook":
        scheme, sep, rest = address.partition("://")
        host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
        return f"{scheme}{sep}{host}/***" if sep else "***"
    if len(address) <= 6:
        return "***"
    head = 4 if address.startswith(("-", "+")) else 3
    return f"{address[:head]}***{address[-3:]}"
