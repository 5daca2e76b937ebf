# firmware-test: micropython
"""ds.config: defaults, local file, remote cfg validation, atomic persistence, hash."""

import json

from ds import config
from fwtest import raises, tmpdir


def _cfg(local: "dict | None" = None) -> config.Config:
    d = tmpdir()
    if local is not None:
        with open(d + "/config.json", "w") as f:
            f.write(json.dumps(local))
    return config.Config(d + "/config.json", d + "/cfg_remote.json")


def test_defaults_then_local_file() -> None:
    c = _cfg({"device": "wx-7", "kind": "water", "mount_mm": 3000})
    assert c["device"] == "wx-7" and c["kind"] == "water" and c["mount_mm"] == 3000
    assert c["interval_s"] == config.DEFAULTS["interval_s"]
    assert c.errors == []


def test_bad_local_file_keeps_defaults_and_says_why() -> None:
    c = _cfg({"device": "Bad Id!"})
    assert c["device"] == config.DEFAULTS["device"]
    assert len(c.errors) == 1 and "device" in c.errors[0]


def test_remote_cfg_applies_persists_and_changes_hash() -> None:
    c = _cfg({"device": "lamp-3", "kind": "lamp"})
    before = c.hash
    ok, err = c.apply_remote(b'{"interval_s": 120, "dim_profile": {"23:00": 40, "05:30": 100}}')
    assert ok and err is None
    assert c["interval_s"] == 120 and c["dim_profile"] == {"23:00": 40, "05:30": 100}
    assert c.hash != before and len(c.hash) == 12
    reloaded = config.Config(c.local_path, c.remote_path)
    assert reloaded["interval_s"] == 120 and reloaded.hash == c.hash
    assert reloaded["device"] == "lamp-3"


def test_malformed_remote_cfg_leaves_old_config() -> None:
    c = _cfg()
    assert c.apply_remote(b'{"interval_s": 90}')[0]
    h = c.hash
    bad = [
        b"not json",
        b"[1, 2]",
        b'{"interval_s": "60"}',
        b'{"interval_s": 2}',
        b'{"interval_s": true}',
        # Of the credentials only the node's own broker secret may come remotely.
        b'{"interval_s": 60, "mqtt_user": "x"}',
        b'{"interval_s": 60, "wifi_pass": "x"}',
        b'{"broker_host": "198.51.100.7"}',
        b'{"mqtt_pass": 7}',
        b'{"device": "other"}',
        b'{"colour": "red"}',
        b'{"dim_profile": {"25:00": 50}}',
        b'{"dim_profile": {"22:00": 150}}',
        b'{"lat": 91}',
        b'{"photocell_on_lux": 100}',
    ]
    for payload in bad:
        ok, err = c.apply_remote(payload)
        assert not ok and err, payload
        assert c["interval_s"] == 90 and c.hash == h
    assert config.Config(c.local_path, c.remote_path)["interval_s"] == 90


def test_remote_broker_secret_is_stored_and_kept_out_of_the_hash() -> None:
    """Rotation (docs/SECURITY.md): the new secret arrives in the node's own cfg,
    survives a reboot, and a later cfg without it does not drop it."""
    c = _cfg()
    h = c.hash
    ok, err = c.apply_remote(b'{"mqtt_pass": "n3w-secret"}')
    assert ok and err is None
    assert c["mqtt_pass"] == "n3w-secret" and c.hash == h
    assert c.apply_remote(b'{"interval_s": 90}')[0]
    reloaded = config.Config(c.local_path, c.remote_path)
    assert reloaded["mqtt_pass"] == "n3w-secret" and reloaded["interval_s"] == 90


def test_hash_ignores_secrets_and_key_order() -> None:
    a = {"b": 1, "a": [1, 2], "wifi_pass": "x"}
    b = {"a": [1, 2], "b": 1, "wifi_pass": "y"}
    assert config.config_hash(a) == config.config_hash(b)
    assert config.config_hash(a) != config.config_hash({"a": [1, 2], "b": 2})


def test_hash_is_sha256_of_the_sorted_compact_json() -> None:
    try:
        doc = json.dumps(config.DEFAULTS, sort_keys=True, separators=(",", ":"))
    except TypeError:  # MicroPython's json has no sort_keys: CPython checks this one
        return
    import hashlib

    public = json.loads(doc)
    for k in config.SECRET_KEYS:
        del public[k]
    doc = json.dumps(public, sort_keys=True, separators=(",", ":"))
    assert config.config_hash(config.DEFAULTS) == hashlib.sha256(doc.encode()).hexdigest()[:12]


def test_same_cfg_again_is_applied_without_a_rewrite() -> None:
    c = _cfg()
    payload = b'{"interval_s": 90, "dim_min_pct": 10}'
    assert config.DEFAULTS["mount_mm"] == 2000
    assert c.apply_remote(payload) == (True, None)
    h = c.hash
    stored = json.dumps(json.loads(open(c.remote_path).read())) + "\n"  # noqa: SIM115
    with open(c.remote_path, "w") as f:
        f.write(stored)  # as the node would never write it: a rewrite would show
    assert c.apply_remote(payload) == (True, None)  # the retained cfg, at a reconnect
    assert open(c.remote_path).read() == stored and c.hash == h  # noqa: SIM115
    assert c.apply_remote(b'{"mount_mm": 2000.0}') == (True, None)  # 2000 is the default
    assert c.hash != h and json.loads(open(c.remote_path).read())["mount_mm"] == 2000.0  # noqa: SIM115


def test_the_retained_cfg_again_is_not_checked_again() -> None:
    """At every reconnect the broker delivers the retained cfg again: the same
    bytes as the last accepted cfg are applied without loading the checks
    (ds.cfgcheck, about 5 KiB of heap during the reconnect); other bytes, and
    bytes that were refused, are checked every time."""
    c = _cfg()
    calls = []
    real = config.validate

    def counting(updates, allowed=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(updates, allowed)

    config.validate = counting
    try:
        good = b'{"interval_s": 90, "dim_min_pct": 10}'
        assert c.apply_remote(good) == (True, None) and len(calls) == 1
        h = c.hash
        assert c.apply_remote(good) == (True, None) and len(calls) == 1  # a reconnect
        assert c.hash == h and c["interval_s"] == 90
        c.cfg["interval_s"] = 30  # a set_interval command: the retained cfg undoes it
        assert c.apply_remote(good) == (True, None) and len(calls) == 1
        assert c["interval_s"] == 90 and c.hash == h
        bad = b'{"interval_s": 2}'
        for _ in range(2):  # refused each time, checked each time
            ok, err = c.apply_remote(bad)
            assert not ok and "interval_s" in err
        assert len(calls) == 3 and c["interval_s"] == 90
        other = b'{"interval_s": 120}'
        assert c.apply_remote(other) == (True, None) and len(calls) == 4
        assert c.apply_remote(good) == (True, None) and len(calls) == 5  # no longer the last
        assert c["interval_s"] == 90
        assert c.apply_remote(b'{"interval_s": 90, "dim_min_pct": 10} ') == (True, None)
        assert len(calls) == 6  # other bytes, the same meaning: checked
        assert c.apply_remote(b"not json")[0] is False and len(calls) == 6
    finally:
        config.validate = real
    # A restart forgets: the first cfg after a boot is checked.
    rebooted = config.Config(c.local_path, c.remote_path)
    config.validate = counting
    try:
        assert rebooted.apply_remote(good) == (True, None) and len(calls) == 7
    finally:
        config.validate = real


def test_check_value_ranges() -> None:
    config.check_value("broker_port", 8883)
    raises(config.ConfigError, config.check_value, "broker_port", 0)
    raises(config.ConfigError, config.check_value, "station", "river")
    raises(config.ConfigError, config.check_value, "nope", 1)
    config.check_value("lat", None)
    config.check_value("mount_mm", 1500.5)
