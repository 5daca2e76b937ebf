"""Node configuration: defaults, the local file written at flashing, and the
remote ``cfg`` the platform sends (retained).

The effective config is ``DEFAULTS`` updated by the local file
(``/config.json``: identity, Wi-Fi, broker, pins profile, written by
``deltasense firmware flash``) and then by the last accepted remote ``cfg``
(``/cfg_remote.json``). A remote ``cfg`` is checked as a whole against
``SCHEMA`` and :data:`REMOTE_KEYS`; if anything in it is wrong, nothing of it
is applied and the old config stays in force.
"""

import binascii
import hashlib
import json

from ds import hal

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULTS = {
    # identity and network (local file only)
    "site": "baclieu",
    "district": "center",
    "kind": "weather",
    "device": "node-0",
    "board": "esp32-devkit",
    "wifi_ssid": "",
    "wifi_pass": "",
    "broker_host": "192.0.2.1",
    "broker_port": 1883,
    "mqtt_user": "",
    "mqtt_pass": "",
    "lat": None,
    "lon": None,
    "station": "drain",
    # timing [design]
    "interval_s": 60,
    "idle_interval_s": 300,  # water: FloodNet's one reading every 300 s (REFERENCE.md)
    "event_interval_s": 60,
    "publish_interval_s": 10,
    "ntp_host": "pool.ntp.org",
    "ntp_interval_s": 21600,
    "no_broker_reboot_s": 3600,
    "wdt_timeout_s": 60,
    # water
    "mount_mm": 2000,
    "water_sensor": "a02yyuw",  # or "jsn-sr04t" (trigger/echo)
    "warn_level_cm": 7.6,  # 76 mm on the street (REFERENCE.md, FloodNet)
    "rise_mm_per_5min": 25,  # drain_rise_warning_mm_per_5min (REFERENCE.md)
    # weather
    "rain_mm_per_tip": 0.2794,  # Argent 80422 (REFERENCE.md)
    # lamp (REFERENCE.md lighting defaults)
    "photocell_on_lux": 16,
    "photocell_off_lux": 65,
    "dim_profile": {"22:00": 70, "00:00": 50, "05:00": 100},
    "dim_min_pct": 10,
    "tz_offset_min": 420,  # Asia/Ho_Chi_Minh, UTC+7, no DST
    # spool
    "spool_capacity": 2048,
}

# name: (type, min, max); type "num" accepts int or float, "profile" a dim profile.
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

# What the platform may change over MQTT: behaviour, never identity or credentials.
REMOTE_KEYS = (
    "interval_s", "idle_interval_s", "event_interval_s", "publish_interval_s",
    "ntp_host", "ntp_interval_s", "no_broker_reboot_s", "mount_mm", "warn_level_cm",
    "rise_mm_per_5min", "rain_mm_per_tip", "photocell_on_lux", "photocell_off_lux",
    "dim_profile", "dim_min_pct", "lat", "lon", "station",
)
# Left out of the hash and of anything echoed back.
SECRET_KEYS = ("wifi_pass", "mqtt_pass")

LOCAL_PATH = "/config.json"
REMOTE_PATH = "/cfg_remote.json"


class ConfigError(ValueError):
    pass


def _is_ident(s: str) -> bool:
    # CONTRACT.md identifiers: [a-z0-9][a-z0-9-]{0,31}
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


def _canonical(obj: "Any") -> str:
    # json.dumps with sorted keys, built by hand: MicroPython's json has no sort_keys.
    if isinstance(obj, dict):
        keys = sorted(obj)
        return "{" + ",".join(json.dumps(k) + ":" + _canonical(obj[k]) for k in keys) + "}"
    return json.dumps(obj)


def config_hash(cfg: "dict[str, Any]") -> str:
    """First 12 hex digits of SHA-256 over the canonical JSON, secrets left out."""
    public = {}
    for k in cfg:
        if k not in SECRET_KEYS:
            public[k] = cfg[k]
    digest = hashlib.sha256(_canonical(public).encode()).digest()
    return binascii.hexlify(digest).decode()[:12]


class Config:
    """The effective configuration and where it is kept.

    ``cfg`` is the merged dict; ``hash`` is :func:`config_hash` of it, for
    ``meta.cfg_hash``. ``apply_remote`` is the only way a running node changes
    its config.
    """

    def __init__(self, local_path: str = LOCAL_PATH, remote_path: str = REMOTE_PATH) -> None:
        self.local_path = local_path
        self.remote_path = remote_path
        self.cfg: "dict[str, Any]" = dict(DEFAULTS)
        self.errors: "list[str]" = []
        self._merge_file(local_path, None)
        self._merge_file(remote_path, REMOTE_KEYS)
        self.hash = config_hash(self.cfg)

    def _merge_file(self, path: str, allowed: "tuple[str, ...] | None") -> None:
        raw = hal.read_bytes(path)
        if raw is None:
            return
        try:
            self.cfg.update(validate(json.loads(raw), allowed))
        except (ValueError, ConfigError) as exc:
            # A bad file must not brick the node: keep what we have, say why.
            self.errors.append("%s: %s" % (path, exc))

    def __getitem__(self, key: str) -> "Any":
        return self.cfg[key]

    def get(self, key: str, default: "Any" = None) -> "Any":
        return self.cfg.get(key, default)

    def apply_remote(self, payload: bytes) -> "tuple[bool, str | None]":
        """Validate a ``cfg`` payload, persist it atomically, apply it.

        Returns ``(True, None)`` when applied (also when it changes nothing)
        and ``(False, reason)`` when refused, with the old config in force.
        """
        try:
            updates = validate(json.loads(payload), REMOTE_KEYS)
        except ConfigError as exc:
            return False, str(exc)
        except ValueError:
            return False, "cfg is not JSON"
        merged = dict(self.cfg)
        merged.update(updates)
        if merged["photocell_on_lux"] > merged["photocell_off_lux"]:
            return False, "photocell_on_lux must not exceed photocell_off_lux"
        stored = {}
        raw = hal.read_bytes(self.remote_path)
        if raw is not None:
            try:
                prev = json.loads(raw)
                if isinstance(prev, dict):
                    stored = prev
            except ValueError:
                pass
        stored.update(updates)
        hal.atomic_write(self.remote_path, json.dumps(stored).encode())
        self.cfg = merged
        self.hash = config_hash(merged)
        return True, None

    def save_local(self, values: "dict[str, Any]") -> None:
        """Write the local file (used at flashing time); validates first."""
        validate(values)
        hal.atomic_write(self.local_path, json.dumps(values).encode())
