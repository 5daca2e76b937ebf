"""Node configuration: defaults, the local file written at flashing, and the
remote ``cfg`` the platform sends (retained).

The effective config is ``DEFAULTS`` updated by the local file
(``/config.json``: identity, Wi-Fi, broker, pins profile, written by
``deltasense firmware flash``) and then by the last accepted remote ``cfg``
(``/cfg_remote.json``). A remote ``cfg`` is checked as a whole against
``ds.cfgcheck.SCHEMA`` and :data:`REMOTE_KEYS`; if anything in it is wrong,
nothing of it is applied and the old config stays in force. The checks are
loaded only while they run (:func:`_unload_checks`).
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
    "broker_port": 8883,
    "broker_tls": True,  # MQTT over TLS with the CA in ca_file pinned (ds.tls)
    "ca_file": "/ca.der",
    "mqtt_user": "",
    "mqtt_pass": "",
    "lat": None,
    "lon": None,
    "station": "drain",
    # timing [design]
    "interval_s": 60,
    "idle_interval_s": 300,  # water: FloodNet's one reading every 300 s (docs/REFERENCE.md)
    "event_interval_s": 60,
    "publish_interval_s": 10,
    "ntp_host": "pool.ntp.org",
    "ntp_interval_s": 21600,
    "no_broker_reboot_s": 3600,
    "wdt_timeout_s": 60,
    # water
    "mount_mm": 2000,
    "water_sensor": "a02yyuw",  # or "jsn-sr04t" (trigger/echo)
    "warn_level_cm": 7.6,  # 76 mm on the street (docs/REFERENCE.md, FloodNet)
    "rise_mm_per_5min": 25,  # drain_rise_warning_mm_per_5min (docs/REFERENCE.md)
    # weather
    "rain_mm_per_tip": 0.2794,  # Argent 80422 (docs/REFERENCE.md)
    # lamp (docs/REFERENCE.md lighting defaults)
    "photocell_on_lux": 16,
    "photocell_off_lux": 65,
    "dim_profile": {"22:00": 70, "00:00": 50, "05:00": 100},
    "dim_min_pct": 10,
    "tz_offset_min": 420,  # Asia/Ho_Chi_Minh, UTC+7, no DST
    # spool
    "spool_capacity": 2048,
}

# What the platform may change over MQTT: behaviour, never identity; of the
# credentials only the node's own broker secret (rotation, docs/SECURITY.md).
REMOTE_KEYS = (
    "mqtt_pass", "interval_s", "idle_interval_s", "event_interval_s", "publish_interval_s",
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


def validate(updates: "Any", allowed: "tuple[str, ...] | None" = None) -> "dict[str, Any]":
    """Check a whole update; return it as a dict or raise ConfigError (the
    rules are :mod:`ds.cfgcheck`)."""
    return _checks().validate(updates, allowed)  # type: ignore[no-any-return]


def check_value(name: str, v: "Any") -> None:
    """Raise ConfigError unless ``v`` is valid for ``name``."""
    _checks().check_value(name, v)


def _checks() -> "Any":
    from ds import cfgcheck

    return cfgcheck


def _unload_checks() -> None:
    # The checks run at boot and when a cfg arrives, nowhere else: on the board
    # their code leaves the heap until the next time (its qstrs stay interned).
    if hal.MICROPYTHON:
        import sys

        import ds

        sys.modules.pop("ds.cfgcheck", None)
        if hasattr(ds, "cfgcheck"):
            delattr(ds, "cfgcheck")


def _canonical(obj: "Any", out: "Any", skip: "tuple[str, ...]" = ()) -> None:
    # json.dumps with sorted keys, built by hand (MicroPython's json has no
    # sort_keys) and fed to ``out(str)`` piece by piece: the ~1 KB document is
    # never built, a node on a 96 KiB heap hashes its config at every cfg.
    if isinstance(obj, dict):
        sep = "{"
        for k in sorted(obj):
            if k not in skip:
                out(sep)
                out(json.dumps(k))
                out(":")
                _canonical(obj[k], out)
                sep = ","
        out("}" if sep == "," else "{}")
    else:
        out(json.dumps(obj))


def config_hash(cfg: "dict[str, Any]") -> str:
    """First 12 hex digits of SHA-256 over the canonical JSON, secrets left out."""
    h = hashlib.sha256()
    # MicroPython hashes a str as its UTF-8 bytes; CPython wants bytes.
    _canonical(cfg, h.update if hal.MICROPYTHON else lambda s: h.update(s.encode()), SECRET_KEYS)
    return binascii.hexlify(h.digest()).decode()[:12]


def _differs(have: "dict[str, Any]", updates: "dict[str, Any]") -> bool:
    """True if applying ``updates`` would change ``have`` (60 and 60.0 differ:
    they hash differently)."""
    for k in updates:
        if k not in have or have[k] != updates[k] or type(have[k]) is not type(updates[k]):
            return True
    return False


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
        self._accepted = b""  # SHA-256 of the last cfg payload accepted
        self._merge_file(local_path, None)
        self._merge_file(remote_path, REMOTE_KEYS)
        _unload_checks()
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
        # The broker delivers the retained cfg again at every reconnect. The same
        # bytes as the last accepted cfg passed these checks already (they depend
        # on the payload alone), so they are not loaded again: their code (about
        # 5 KiB) would come into the heap during the reconnect, when the heap is
        # fullest (on a Pico W the TLS session's buffers come from it too). The
        # merge below still runs: a set_interval command is undone as before.
        digest = hashlib.sha256(payload).digest()
        try:
            updates = json.loads(payload)
            if digest != self._accepted:
                updates = validate(updates, REMOTE_KEYS)
        except ConfigError as exc:
            return False, str(exc)
        except ValueError:
            return False, "cfg is not JSON"
        finally:
            _unload_checks()
        cfg = self.cfg
        on = updates.get("photocell_on_lux", cfg["photocell_on_lux"])
        if on > updates.get("photocell_off_lux", cfg["photocell_off_lux"]):
            return False, "photocell_on_lux must not exceed photocell_off_lux"
        # The retained cfg comes again at every reconnect: write and hash only
        # what is new (a flash write spared, and the heap of a full hash).
        stored = {}
        raw = hal.read_bytes(self.remote_path)
        if raw is not None:
            try:
                prev = json.loads(raw)
                if isinstance(prev, dict):
                    stored = prev
            except ValueError:
                pass
        if _differs(stored, updates):
            stored.update(updates)
            hal.atomic_write(self.remote_path, json.dumps(stored).encode())
        if _differs(cfg, updates):
            merged = dict(cfg)
            merged.update(updates)
            self.cfg = merged
            self.hash = config_hash(merged)
        self._accepted = digest
        return True, None
