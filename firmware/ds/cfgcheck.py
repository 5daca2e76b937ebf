"""The rules of the node's configuration, loaded only while checking one.

:mod:`ds.config` imports this module at boot (the local and remote files) and
when a remote ``cfg`` arrives, then drops it again on the board: the schema
and its checks are code a node runs a few times a day, and its heap is 96 KiB.
"""

from ds.config import ConfigError

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# name: (type, min, max); type "num" accepts int or float, "profile" a dim profile.
# broker_tls and ca_file are local only (not in config.REMOTE_KEYS): no cfg over MQTT
# can turn TLS off or swap the pinned CA.
SCHEMA = {
    "site": ("ident", None, None),
    "district": ("ident", None, None),
    "kind": ("kind", None, None),
    "device": ("ident", None, None),
    "board": ("str", 1, 32),
    "wifi_ssid": ("str", 0, 32),
    "wifi_pass": ("str", 0, 64),
    "broker_host": ("str", 1, 253),
    "broker_port": ("int", 1, 65535),
    "broker_tls": ("bool", None, None),
    "ca_file": ("str", 1, 64),
    "mqtt_user": ("str", 0, 64),
    "mqtt_pass": ("str", 0, 128),
    "lat": ("num?", -90, 90),
    "lon": ("num?", -180, 180),
    "station": ("choice", ("drain", "canal"), None),
    "interval_s": ("int", 5, 86400),
    "idle_interval_s": ("int", 5, 86400),
    "event_interval_s": ("int", 5, 86400),
    "publish_interval_s": ("int", 1, 3600),
    "ntp_host": ("str", 1, 253),
    "ntp_interval_s": ("int", 60, 604800),
    "no_broker_reboot_s": ("int", 60, 604800),
    "wdt_timeout_s": ("int", 10, 3600),
    "mount_mm": ("num", 100, 20000),
    "water_sensor": ("choice", ("a02yyuw", "jsn-sr04t"), None),
    "warn_level_cm": ("num", 0, 2000),
    "rise_mm_per_5min": ("num", 1, 10000),
    "rain_mm_per_tip": ("num", 0.01, 10),
    "photocell_on_lux": ("num", 0, 100000),
    "photocell_off_lux": ("num", 0, 100000),
    "dim_profile": ("profile", None, None),
    "dim_min_pct": ("int", 0, 100),
    "tz_offset_min": ("int", -720, 840),
    "spool_capacity": ("int", 16, 65536),
}

def _is_ident(s: str) -> bool:
    # docs/CONTRACT.md identifiers: [a-z0-9][a-z0-9-]{0,31}
    if not 1 <= len(s) <= 32:
        return False
    for i, ch in enumerate(s):
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or (ch == "-" and i > 0)):
            return False
    return True


def _is_num(v: "Any") -> bool:
    return (isinstance(v, int) or isinstance(v, float)) and not isinstance(v, bool)


def _check_profile(v: "Any") -> None:
    if not isinstance(v, dict) or not 1 <= len(v) <= 24:
        raise ConfigError("dim_profile: an object of 1..24 'HH:MM': pct entries")
    for k in v:
        pct = v[k]
        if not isinstance(k, str) or len(k) != 5 or k[2] != ":":
            raise ConfigError("dim_profile: bad time %r" % (k,))
        try:
            hh, mm = int(k[:2]), int(k[3:])
        except ValueError:
            raise ConfigError("dim_profile: bad time %r" % (k,)) from None
        if not (0 <= hh <= 23 and 0 <= mm <= 59):
            raise ConfigError("dim_profile: bad time %r" % (k,))
        if not _is_num(pct) or not 0 <= pct <= 100:
            raise ConfigError("dim_profile: %s level must be 0..100" % k)


def check_value(name: str, v: "Any") -> None:
    """Raise ConfigError unless ``v`` is valid for ``name``."""
    if name not in SCHEMA:
        raise ConfigError("unknown key %s" % name)
    kind, lo, hi = SCHEMA[name]
    if kind == "ident":
        if not isinstance(v, str) or not _is_ident(v):
            raise ConfigError("%s: not an identifier" % name)
    elif kind == "kind":
        if v not in ("weather", "water", "lamp", "meter"):
            raise ConfigError("%s: unknown kind" % name)
    elif kind == "choice":
        if v not in lo:  # type: ignore[operator]
            raise ConfigError("%s: one of %s" % (name, ", ".join(lo)))  # type: ignore[arg-type]
    elif kind == "str":
        if not isinstance(v, str) or not lo <= len(v) <= hi:  # type: ignore[operator]
            raise ConfigError("%s: string of %s..%s characters" % (name, lo, hi))
    elif kind == "bool":
        if not isinstance(v, bool):
            raise ConfigError("%s: true or false" % name)
    elif kind == "profile":
        _check_profile(v)
    else:
        if v is None and kind == "num?":
            return
        if kind == "int" and (not isinstance(v, int) or isinstance(v, bool)):
            raise ConfigError("%s: integer required" % name)
        if not _is_num(v):
            raise ConfigError("%s: number required" % name)
        if not lo <= v <= hi:  # type: ignore[operator]
            raise ConfigError("%s: must be in %s..%s" % (name, lo, hi))


def validate(updates: "Any", allowed: "tuple[str, ...] | None" = None) -> "dict[str, Any]":
    """Check a whole update; return it as a dict or raise ConfigError."""
    if not isinstance(updates, dict):
        raise ConfigError("cfg must be a JSON object")
    for name in updates:
        if not isinstance(name, str):
            raise ConfigError("keys must be strings")
        if allowed is not None and name not in allowed:
            if name in SCHEMA:
                raise ConfigError("%s cannot be set remotely" % name)
            raise ConfigError("unknown key %s" % name)
        check_value(name, updates[name])
    return updates
