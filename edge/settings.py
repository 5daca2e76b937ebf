"""The gateway's own settings: ``DELTASENSE_EDGE_*`` variables, then a TOML file.

A gateway is its own machine (a Raspberry Pi in a ward's lighting cabinet), so it
does not share the platform's settings: it has two brokers (the ward's, where
its nodes publish, and the platform's uplink) and a spool.  The TOML file is
``deltasense-edge.toml`` in the working directory, or the path in
``DELTASENSE_EDGE_CONFIG`` (the systemd unit uses ``/etc/deltasense/edge.toml``);
its keys are the field names below.  The spool's defaults are sized in
docs/RELIABILITY.md (a week of a 200-node ward on a 32 GB card).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from deltasense.access import gateway_username
from deltasense.contract import DEFAULT_SITE
from deltasense.settings import TomlSource, ident_value, log_level_value
from edge.spool import FullPolicy

EDGE_CONFIG_ENV: Final = "DELTASENSE_EDGE_CONFIG"
EDGE_CONFIG_FILE: Final = "deltasense-edge.toml"
GIB: Final = 1024**3
WEEK_S: Final = 7 * 86_400


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DELTASENSE_EDGE_", extra="forbid", validate_default=True
    )

    site: str = Field(DEFAULT_SITE, description="Site id, first MQTT topic level.")
    district: str = Field(description="The ward this gateway serves (required).")
    var_dir: Path = Field(Path("var"), description="The spool lives here unless spool_path.")
    log_level: str = "INFO"

    # The ward's broker (on the gateway itself): the nodes publish here.
    local_host: str = "127.0.0.1"
    local_port: int = Field(1883, ge=1, le=65535)
    local_username: str | None = None
    local_password: str | None = None
    local_client_id: str = Field("", description="Default deltasense-edge-{district}.")

    # The platform's broker, over the district's uplink.
    uplink_host: str = "127.0.0.1"
    uplink_port: int = Field(1883, ge=1, le=65535)
    uplink_username: str = Field("", description="Default gw.{district}, the gateway's account.")
    uplink_password: str | None = None
    uplink_client_id: str = Field("", description="Default gw.{district}.")
    uplink_tls_ca_file: Path | None = Field(
        None, description="CA that signed the platform broker's certificate; set, TLS is on."
    )
    uplink_keepalive_s: int = Field(15, ge=5, le=3600)
    uplink_retry_max_s: float = Field(
        30.0, gt=0, le=600, description="Reconnect backoff cap (jittered) while the link is down."
    )

    spool_path: Path | None = Field(None, description="Default {var_dir}/edge/spool.sqlite3.")
    spool_max_bytes: int = Field(
        8 * GIB, ge=64 * 1024, description="Byte bound of the spool's records."
    )
    spool_max_age_s: int = Field(WEEK_S, ge=60, description="Records older than this drop.")
    spool_full_policy: FullPolicy = FullPolicy.DROP_OLDEST

    batch_max: int = Field(500, ge=1, le=10_000, description="Messages per spool transaction.")
    batch_wait_s: float = Field(
        0.02, gt=0, le=5, description="A batch is committed (and acked) after this at most."
    )
    inflight_max: int = Field(200, ge=2, le=65_000, description="Uplink QoS 1 window.")
    backlog_share: float = Field(
        0.8, gt=0, lt=1, description="Part of the window the backlog may take; the rest is live."
    )
    status_interval_s: float = Field(10.0, gt=0, le=3600)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9103, ge=0, le=65535, description="Prometheus; 0 turns it off.")

    # Local rules while the uplink is down (edge/localrules.py, docs/EDGE.md).
    local_rules: bool = Field(True, description="Judge the ward's flood and storm offline.")
    thresholds_file: Path | None = Field(
        None, description="The site's rule thresholds (the platform's file), over the defaults."
    )
    siren_pin: int | None = Field(
        None, ge=0, le=27, description="BCM number of the siren's GPIO pin; unset: no siren."
    )
    siren_active_high: bool = Field(True, description="The pin is high while the siren sounds.")
    siren_max_s: float = Field(
        900.0, gt=0, le=86_400, description="The longest the siren sounds in one episode."
    )

    @field_validator("site", "district")
    @classmethod
    def _ident(cls, value: str, info: ValidationInfo) -> str:
        return ident_value(value, str(info.field_name))

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return log_level_value(value)

    @property
    def local_identifier(self) -> str:
        return self.local_client_id or f"deltasense-edge-{self.district}"

    @property
    def uplink_user(self) -> str:
        return self.uplink_username or gateway_username(self.district)

    @property
    def uplink_identifier(self) -> str:
        return self.uplink_client_id or gateway_username(self.district)

    @property
    def spool_file(self) -> Path:
        return self.spool_path or self.var_dir / "edge" / "spool.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlSource(settings_cls, env_var=EDGE_CONFIG_ENV, default_file=EDGE_CONFIG_FILE)
        return (init_settings, env_settings, toml)


def load_edge_settings(**overrides: Any) -> EdgeSettings:
    """Raises ``ConfigFileError`` or pydantic's ``ValidationError`` naming the bad key."""
    return EdgeSettings(**overrides)
