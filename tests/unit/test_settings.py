"""Settings: environment, TOML file, and clear errors for bad configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from deltasense.settings import ConfigFileError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("DELTASENSE_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert (s.site, s.mqtt_port, s.influx_port, s.api_port) == ("baclieu", 8883, 8086, 8000)
    assert s.influx_base_url == "http://127.0.0.1:8086"
    # Secure by default: MQTT over TLS with the dev CA pinned, no plain listener.
    assert s.mqtt_tls and not s.mqtt_plain_listener and s.mqtt_plain_port == 1883
    assert s.mqtt_ca_path == Path("var/tls/ca.pem")
    assert not s.api_tls and s.api_base_url == "http://127.0.0.1:8000"
    assert s.api_tls_paths == (Path("var/tls/server.pem"), Path("var/tls/server.key"))


def test_mqtt_port_follows_tls_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(mqtt_tls=False).mqtt_port == 1883
    assert load_settings(mqtt_tls=False, mqtt_port=8883).mqtt_port == 8883
    monkeypatch.setenv("DELTASENSE_MQTT_TLS", "false")
    assert load_settings().mqtt_port == 1883
    monkeypatch.setenv("DELTASENSE_MQTT_PORT", "2883")
    assert load_settings().mqtt_port == 2883
    assert load_settings(api_tls=True).api_base_url == "https://127.0.0.1:8000"
    monkeypatch.setenv("DELTASENSE_TLS_HOSTS", '["192.168.1.10", "broker.lan"]')
    assert load_settings().tls_hosts == ["192.168.1.10", "broker.lan"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("DELTASENSE_MQTT_TLS", "perhaps"), ("DELTASENSE_TLS_HOSTS", "not json")],
)
def test_bad_tls_settings_are_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(
        (ValidationError, ValueError), match=name.removeprefix("DELTASENSE_").lower()
    ):
        load_settings()


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_MQTT_PORT", "1884")
    monkeypatch.setenv("DELTASENSE_INFLUX_URL", "http://db:8086/")
    assert load_settings().mqtt_port == 1884
    assert load_settings().influx_base_url == "http://db:8086"


def test_toml_file_then_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "deltasense.toml").write_text('site = "camau"\napi_port = 9000\n')
    assert (load_settings().site, load_settings().api_port) == ("camau", 9000)
    monkeypatch.setenv("DELTASENSE_API_PORT", "9001")
    assert load_settings().api_port == 9001


def test_explicit_config_file_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_CONFIG", "/nonexistent/ds.toml")
    with pytest.raises(ConfigFileError, match="no such file"):
        load_settings()


def test_malformed_toml_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("site = \n")
    monkeypatch.setenv("DELTASENSE_CONFIG", str(bad))
    with pytest.raises(ConfigFileError, match=r"bad\.toml"):
        load_settings()


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("DELTASENSE_MQTT_PORT", "70000", "mqtt_port"),
        ("DELTASENSE_MQTT_PORT", "abc", "mqtt_port"),
        ("DELTASENSE_SITE", "Bac Lieu", "site"),
        ("DELTASENSE_LOG_LEVEL", "LOUD", "log_level"),
    ],
)
def test_bad_values_name_the_field(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, field: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as info:
        load_settings()
    assert info.value.errors()[0]["loc"] == (field,)


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deltasense.toml").write_text("mqtt_prot = 1\n")
    with pytest.raises(ValidationError, match="mqtt_prot"):
        load_settings()


def test_ingest_workers_each_have_a_session_and_a_metrics_port() -> None:
    one = load_settings()
    assert (one.ingest_workers, one.ingest_session_id) == (1, "deltasense-ingest")
    third = load_settings(ingest_workers=3, ingest_worker=2, ingest_metrics_port=9200)
    assert third.ingest_session_id == "deltasense-ingest-2"
    assert third.ingest_worker_metrics_port == 9202
    assert load_settings(ingest_worker=0, ingest_metrics_port=0).ingest_worker_metrics_port == 0


@pytest.mark.parametrize(
    ("workers", "worker", "match"),
    [(2, 2, "must be below ingest_workers 2"), (0, 0, "ingest_workers"), (33, 0, "ingest_workers"),
     (2, -1, "ingest_worker")],
)  # fmt: skip
def test_bad_ingest_worker_settings_are_refused(workers: int, worker: int, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        load_settings(ingest_workers=workers, ingest_worker=worker)


def test_ingest_workers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_INGEST_WORKERS", "two")
    with pytest.raises(ValidationError, match="ingest_workers"):
        load_settings()


def test_analytics_partitions_are_checked_and_districts_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match="must be below analytics_partitions 2"):
        load_settings(analytics_partitions=2, analytics_partition=2)
    with pytest.raises(ValidationError, match="not a district id"):
        load_settings(analytics_districts=["phuong-1", "Phường 2"])
    monkeypatch.setenv("DELTASENSE_ANALYTICS_DISTRICTS", '["phuong-1", "phuong-2"]')
    monkeypatch.setenv("DELTASENSE_ANALYTICS_PARTITIONS", "3")
    monkeypatch.setenv("DELTASENSE_ANALYTICS_PARTITION", "2")
    s = load_settings(analytics_metrics_port=9400)
    assert s.analytics_districts == ["phuong-1", "phuong-2"]
    assert s.analytics_worker_metrics_port == 9402
