"""One typed settings object for every DeltaSense service.

Values come, highest priority first, from keyword arguments, ``DELTASENSE_*``
environment variables, an optional TOML file and the defaults below.  The TOML
file is ``deltasense.toml`` in the working directory, or the path given in
``DELTASENSE_CONFIG``; its keys are the field names below (``mqtt_port = 1884``).
Settings are validated once at start-up and passed down; nothing reads the
environment deep inside a service.
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any, Final

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from deltasense.contract import IDENT_RE


def utc_offset_tz(utc_offset_min: int) -> timezone:
    """The fixed-offset zone of ``utc_offset_min`` (the one conversion: the settings own
    the site's offset, and everything local-time goes through here)."""
    return timezone(timedelta(minutes=utc_offset_min))


CONFIG_ENV = "DELTASENSE_CONFIG"
INGEST_WORKERS_MAX = 32
DEFAULT_CONFIG_FILE = "deltasense.toml"


# Secret settings and the length each must have (0: any length, placeholders refused).
# Our own secrets and the long bearer tokens of Telegram and Zalo need 32 characters;
# passwords of a broker, a database or a mail account someone else chose need not.
SECRET_SETTINGS: dict[str, int] = {
    "admin_token": 32,
    "notifier_ack_secret": 32,
    "notifier_webhook_secret": 32,
    "notifier_telegram_token": 32,
    "notifier_zalo_token": 32,
    "notifier_zalo_refresh_token": 32,
    "notifier_zalo_secret_key": 0,
    "mqtt_password": 0,
    "influx_password": 0,
    "notifier_smtp_password": 0,
}
PLACEHOLDERS = frozenset(
    {
        "admin", "changeme", "change-me", "change_me", "default", "dev", "example",
        "password", "passw0rd", "secret", "test", "token", "xxx", "todo", "none",
        "null", "123456", "12345678", "letmein", "qwerty",
    }
)  # fmt: skip
_PLACEHOLDER_PARTS = ("changeme", "replaceme", "placeholder", "yoursecret", "yourtoken")
_MIN_DISTINCT_CHARS = 10


LOG_LEVELS: Final = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


def ident_value(value: str, what: str) -> str:
    """A topic level setting (site, district): the identifier grammar, or a clear error."""
    if not IDENT_RE.fullmatch(value):
        raise ValueError(f"{what} {value!r} must match {IDENT_RE.pattern}")
    return value


def log_level_value(value: str) -> str:
    """A logging level name, upper-cased; an unknown one is an error."""
    level = value.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {value!r}")
    return level


def weak_secret(name: str, value: str | None, min_length: int) -> str | None:
    """Why the secret setting ``name`` is not a real secret, or None if it may be.

    Never says the value itself (it may be a real secret someone mistyped)."""
    if value is None:
        return None
    env = f"DELTASENSE_{name.upper()}"
    squashed = "".join(ch for ch in value.lower() if ch.isalnum())
    if value.strip().lower() in PLACEHOLDERS or any(p in squashed for p in _PLACEHOLDER_PARTS):
        return f"{env} ({name}) is a placeholder"
    if len(value) < min_length:
        return f"{env} ({name}) is {len(value)} characters; it must have at least {min_length}"
    if min_length and len(set(value)) < _MIN_DISTINCT_CHARS:
        return f"{env} ({name}) has fewer than {_MIN_DISTINCT_CHARS} distinct characters"
    return None


class ConfigFileError(ValueError):
    """The TOML configuration file is missing, unreadable or malformed."""


class TomlSource(PydanticBaseSettingsSource):
    """Reads the optional TOML file; a file named explicitly must exist.

    The platform's file by default; the edge gateway names its own."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        *,
        env_var: str = CONFIG_ENV,
        default_file: str = DEFAULT_CONFIG_FILE,
    ) -> None:
        super().__init__(settings_cls)
        explicit = os.environ.get(env_var)
        path = Path(explicit) if explicit else Path(default_file)
        self._data: dict[str, Any] = {}
        if not path.exists():
            if explicit:
                raise ConfigFileError(f"{env_var}={explicit}: no such file")
            return
        try:
            with path.open("rb") as fh:
                self._data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigFileError(f"{path}: {exc}") from exc
        if not isinstance(self._data, dict):  # pragma: no cover - tomllib always gives a dict
            raise ConfigFileError(f"{path}: top level must be a table")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """Settings shared by ingest, analytics, api, the simulator and the supervisor."""

    model_config = SettingsConfigDict(
        env_prefix="DELTASENSE_",
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,  # an error message must never repeat a secret
    )

    site: str = Field("baclieu", description="Site id, first MQTT topic level.")
    var_dir: Path = Field(Path("var"), description="Runtime data: service data, logs, tokens.")
    log_level: str = Field("INFO", description="Python logging level for services.")
    utc_offset_min: int = Field(
        420,
        ge=-720,
        le=840,
        description="The site's local time, minutes east of UTC (Bạc Liêu: UTC+7, no DST).",
    )

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(
        8883,
        ge=1,
        le=65535,
        description="The port clients connect to; unset: 8883 with mqtt_tls, 1883 without.",
    )
    mqtt_tls: bool = Field(
        True,
        description="MQTT over TLS (1.2+) with mqtt_ca_file pinned; the dev stack's broker "
        "then listens with TLS on mqtt_port.",
    )
    mqtt_ca_file: Path | None = Field(
        None, description="CA certificate (PEM) clients trust; defaults to var/tls/ca.pem."
    )
    mqtt_plain_listener: bool = Field(
        False,
        description="With mqtt_tls, the dev stack's broker also opens a plain listener on "
        "mqtt_plain_port (off by default, and in the deployment config).",
    )
    mqtt_plain_port: int = Field(1883, ge=1, le=65535)
    tls_hosts: list[str] = Field(
        default_factory=list,
        description="More names/addresses in the dev server certificate (besides localhost, "
        "127.0.0.1 and ::1), e.g. the LAN address nodes use.",
    )
    mqtt_username: str | None = None
    mqtt_password: str | None = Field(None, repr=False)
    mqtt_keepalive_s: int = Field(30, ge=5, le=3600)
    # The API's device routes (/api/v1/admin/devices) drive the broker's dynamic
    # security plugin; only an API given this identity may (docs/SECURITY.md).
    mqtt_admin_username: str | None = Field(
        None, description="Broker admin identity for the API's device routes; unset: 503."
    )
    mqtt_admin_password: str | None = Field(None, repr=False)
    api_device_admin: bool = Field(
        True, description="`deltasense up` gives the API a broker admin identity (admin.api)."
    )

    broker_max_queued_messages: int = Field(
        100_000, ge=10, description="Per offline session; the supervisor's Mosquitto drops beyond."
    )

    influx_url: str = Field("", description="Defaults to http://127.0.0.1:{influx_port}.")
    influx_port: int = Field(8086, ge=1, le=65535)
    influx_rpc_port: int = Field(8088, ge=1, le=65535, description="influxd backup/RPC port.")
    influx_db: str = "deltasense"
    influx_username: str | None = None
    # repr=False: a logged Settings object never shows it.
    influx_password: str | None = Field(None, repr=False)
    influx_timeout_s: float = Field(10.0, gt=0)

    audit_file: Path | None = Field(
        None, description="Audit log (SQLite, WAL); defaults to var/audit/audit.sqlite3."
    )
    alarm_file: Path | None = Field(
        None,
        description="The API's alarm workflow (assignments, comments, shelves, clears, "
        "silences; SQLite, WAL); defaults to var/api/alarm.sqlite3.",
    )

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_tls: bool = Field(False, description="Serve the API over HTTPS (api_tls_cert/_key).")
    api_tls_cert: Path | None = Field(
        None, description="Server certificate chain (PEM); defaults to var/tls/server.pem."
    )
    api_tls_key: Path | None = Field(
        None, description="Its private key (PEM); defaults to var/tls/server.key."
    )
    admin_token: str | None = Field(
        None,
        repr=False,
        description="Bootstrap admin bearer token; generated into var/secrets/admin-token if unset.",
    )
    api_auth_fail_limit: int = Field(
        10, ge=1, le=10_000, description="Failed authentications per client address per window."
    )
    api_auth_fail_window_s: float = Field(
        60.0, gt=0, le=86_400, description="The window of api_auth_fail_limit, seconds."
    )
    api_device_cache_s: float = Field(
        5.0,
        ge=0,
        le=60,
        description="Seconds the map and ward tiles share one read of the device list "
        "(api/devicecache.py; 0: read it for every request).",
    )
    dev_insecure: bool = Field(
        False,
        description="Accept placeholder or short secrets (a throwaway dev or test stack only).",
    )
    api_session_idle_s: float = Field(
        1800.0, ge=1, le=7 * 86_400, description="A console session ends this long unused."
    )
    api_session_max_s: float = Field(
        12 * 3600.0,
        ge=1,
        le=30 * 86_400,
        description="A console session ends this long after login.",
    )
    api_cookie_secure: bool = Field(
        False,
        description="Mark the session cookie Secure over plain HTTP too (a TLS proxy in "
        "front); over HTTPS it always is.",
    )
    api_password_min_length: int = Field(
        12, ge=8, le=128, description="The shortest password an account may be given."
    )
    api_login_fail_limit: int = Field(
        5, ge=1, le=10_000, description="Failed logins per username and client address per window."
    )
    api_login_fail_window_s: float = Field(
        300.0, gt=0, le=86_400, description="The window of api_login_fail_limit, seconds."
    )

    ingest_batch_size: int = Field(5000, ge=1, le=100_000)
    ingest_flush_interval_s: float = Field(0.5, gt=0, le=60)
    ingest_queue_max: int = Field(100_000, ge=100)
    ingest_max_unacked: int = Field(
        10_000,
        ge=2,
        le=65_535,
        description="Messages ingest holds unacknowledged (the broker's max_inflight_messages"
        " must allow as many); a batch is written at half of it, so the next fills meanwhile.",
    )
    ingest_client_id: str = Field("deltasense-ingest", min_length=1, max_length=60)
    ingest_metrics_port: int = Field(
        9101, ge=0, le=65535, description="Worker i serves on this port + i; 0 turns it off."
    )
    ingest_workers: int = Field(
        1, ge=1, le=INGEST_WORKERS_MAX, description="Ingest processes sharing one subscription."
    )
    ingest_health_interval_s: float = Field(
        5.0, ge=0.1, le=300, description="Each ingest worker's health report on {site}/_health."
    )
    ingest_worker: int = Field(
        0, ge=0, lt=INGEST_WORKERS_MAX, description="This ingest process's index (supervisor)."
    )

    metrics_host: str = Field(
        "127.0.0.1", description="Address the services' Prometheus endpoints bind to."
    )
    analytics_metrics_port: int = Field(
        9102, ge=0, le=65535, description="Partition i serves on this port + i; 0 turns it off."
    )
    analytics_partitions: int = Field(
        1, ge=1, le=64, description="Analytics processes, each owning the districts hashed to it."
    )
    analytics_partition: int = Field(
        0, ge=0, lt=64, description="This analytics process's index (set by the supervisor)."
    )
    analytics_districts: list[str] = Field(
        default_factory=list,
        description="The site's districts, if known: partitions then subscribe to theirs only.",
    )
    analytics_tick_s: float = Field(
        1.0, gt=0, le=60, description="Rule evaluation period; water readings also trigger one."
    )
    analytics_eval_gap_s: float = Field(
        0.25,
        ge=0,
        le=5,
        description=(
            "Shortest time between two evaluations that water readings trigger: a "
            "stream of small batches would otherwise evaluate after each (about 12 ms "
            "each), and analytics fell behind at 1 000 msg/s. 0: after every batch."
        ),
    )

    thresholds_file: Path | None = Field(
        None, description="Rule thresholds (TOML); defaults ship in deltasense/thresholds.toml."
    )

    console_tile_url: str | None = Field(
        None,
        pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[^\s\"'<>]*$",
        description="Base map tiles for the console, e.g. https://tiles.example/{z}/{x}/{y}.png; "
        "unset: no tiles (ward centres only, works offline).",
    )
    console_tile_attribution: str = Field(
        "", max_length=200, description="Attribution shown under the tiles (the provider's terms)."
    )

    notifier_routing_file: Path | None = Field(
        None,
        description="Receivers and routes (TOML); unset: var/notifier/routing.toml if present.",
    )
    notifier_outbox: Path | None = Field(
        None, description="Durable outbox (SQLite, WAL); defaults to var/notifier/outbox.sqlite3."
    )
    notifier_console_url: str = Field(
        "http://127.0.0.1:8000", description="Public console URL put in messages."
    )
    notifier_http_host: str = "127.0.0.1"
    notifier_http_port: int = Field(8010, ge=0, le=65535, description="Ack links; 0 turns it off.")
    notifier_public_url: str = Field(
        "", description="Public base URL of the ack links; defaults to the notifier's own address."
    )
    notifier_ack_secret: str | None = Field(
        None,
        repr=False,
        description="Signs ack links; generated into var/notifier/ack-secret if unset.",
    )
    notifier_ack_link_ttl_s: int = Field(86_400, ge=60, description="Ack links expire after this.")
    notifier_group_wait_s: float = Field(
        30.0, ge=0, le=3600, description="First message of a group."
    )
    notifier_group_interval_s: float = Field(300.0, gt=0, le=86_400, description="Later messages.")
    notifier_urgent_wait_s: float = Field(
        0.5, ge=0, le=10, description="A new critical, resolve or ack waits this for its burst."
    )
    notifier_repeat_interval_s: float = Field(
        1800.0, gt=0, description="Repeat for a firing critical nobody acknowledged."
    )
    notifier_escalation_min: float = Field(
        15.0, gt=0, description="Unacked critical goes to the route's next receiver after this."
    )
    notifier_telegram_url: str = "https://api.telegram.org"
    notifier_telegram_token: str | None = Field(None, repr=False)
    notifier_zalo_url: str = "https://openapi.zalo.me"
    notifier_zalo_token: str | None = Field(
        None, repr=False, description="OA access token; optional once refreshing is set up."
    )
    # Refreshing the OA access token (it lasts about 25 h): the app's id and secret key
    # and a refresh token, which is single-use; the next one is kept in the token file.
    notifier_zalo_oauth_url: str = "https://oauth.zaloapp.com"
    notifier_zalo_app_id: str | None = Field(None, pattern=r"^[0-9]{1,32}$")
    notifier_zalo_secret_key: str | None = Field(None, repr=False)
    notifier_zalo_refresh_token: str | None = Field(
        None, repr=False, description="The first refresh token; later ones are in the token file."
    )
    notifier_zalo_token_file: Path | None = Field(
        None, description="Zalo tokens kept across restarts (0600); var/notifier/zalo-tokens.json."
    )
    notifier_smtp_host: str = "127.0.0.1"
    notifier_smtp_port: int = Field(587, ge=1, le=65535)
    notifier_smtp_starttls: bool = True
    notifier_smtp_username: str | None = None
    notifier_smtp_password: str | None = Field(None, repr=False)
    notifier_smtp_from: str = "deltasense@localhost"
    notifier_smtp_ca_file: Path | None = Field(
        None, description="CA bundle trusted for STARTTLS (a self-hosted mail server's CA)."
    )
    notifier_webhook_secret: str | None = Field(
        None, repr=False, description="HMAC-SHA256 key of webhooks."
    )
    notifier_client_id: str = Field("deltasense-notifier", min_length=1, max_length=64)

    @field_validator("site")
    @classmethod
    def _site_matches_grammar(cls, value: str) -> str:
        return ident_value(value, "site")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return log_level_value(value)

    @model_validator(mode="after")
    def _worker_in_range(self) -> Settings:
        if self.ingest_worker >= self.ingest_workers:
            raise ValueError(
                f"ingest_worker {self.ingest_worker} must be below ingest_workers "
                f"{self.ingest_workers}"
            )
        return self

    @model_validator(mode="after")
    def _partition_in_range(self) -> Settings:
        if self.analytics_partition >= self.analytics_partitions:
            raise ValueError(
                f"analytics_partition {self.analytics_partition} must be below "
                f"analytics_partitions {self.analytics_partitions}"
            )
        for district in self.analytics_districts:
            if not IDENT_RE.fullmatch(district):
                raise ValueError(f"analytics_districts: {district!r} is not a district id")
        return self

    @property
    def analytics_worker_metrics_port(self) -> int:
        port = self.analytics_metrics_port
        return port + self.analytics_partition if port else 0

    @property
    def ingest_session_id(self) -> str:
        """This ingest worker's MQTT client id, the name of its persistent session.
        Worker 0 keeps the single ingest's id, so its queued messages survive an upgrade."""
        base = self.ingest_client_id
        return base if self.ingest_worker == 0 else f"{base}-{self.ingest_worker}"

    @property
    def ingest_worker_metrics_port(self) -> int:
        port = self.ingest_metrics_port
        return port + self.ingest_worker if port else 0

    @model_validator(mode="after")
    def _secrets_are_real(self) -> Settings:
        if self.dev_insecure:
            return self
        problems = [
            problem
            for name, min_length in SECRET_SETTINGS.items()
            if (problem := weak_secret(name, getattr(self, name), min_length)) is not None
        ]
        if problems:
            raise ValueError(
                "; ".join(problems) + " (make one: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'; or DELTASENSE_DEV_INSECURE=1 for a "
                "throwaway dev stack)"
            )
        return self

    @model_validator(mode="after")
    def _port_follows_tls(self) -> Settings:
        # An unset port follows the transport, so `mqtt_tls = false` alone means 1883.
        if "mqtt_port" not in self.model_fields_set and not self.mqtt_tls:
            self.mqtt_port = 1883
        return self

    @property
    def mqtt_ca_path(self) -> Path:
        """The CA the MQTT clients pin (the dev stack's own unless told otherwise)."""
        return self.mqtt_ca_file or self.var_dir / "tls" / "ca.pem"

    @property
    def api_tls_paths(self) -> tuple[Path, Path]:
        """The API's HTTPS certificate chain and key."""
        tls = self.var_dir / "tls"
        return self.api_tls_cert or tls / "server.pem", self.api_tls_key or tls / "server.key"

    @property
    def local_tz(self) -> timezone:
        """The site's local time zone (rain days, dim schedules, naive times)."""
        return utc_offset_tz(self.utc_offset_min)

    @property
    def influx_base_url(self) -> str:
        return (self.influx_url or f"http://127.0.0.1:{self.influx_port}").rstrip("/")

    @property
    def audit_path(self) -> Path:
        return self.audit_file or self.var_dir.resolve() / "audit" / "audit.sqlite3"

    @property
    def alarm_path(self) -> Path:
        return self.alarm_file or self.var_dir.resolve() / "api" / "alarm.sqlite3"

    @property
    def api_base_url(self) -> str:
        scheme = "https" if self.api_tls else "http"
        return f"{scheme}://{self.api_host}:{self.api_port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlSource(settings_cls))


def describe(exc: ValidationError) -> str:
    """A pydantic error as one line naming each bad key."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: "
        + str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors()
    )


def load_settings_or_exit(program: str, **overrides: Any) -> Settings:
    """:func:`load_settings` for a service's start-up: a bad setting exits with a line
    naming it (status 1), not a traceback."""
    try:
        return load_settings(**overrides)
    except ConfigFileError as exc:
        raise SystemExit(f"{program}: configuration file: {exc}") from None
    except ValidationError as exc:
        raise SystemExit(f"{program}: invalid settings: {describe(exc)}") from None


def load_settings(**overrides: Any) -> Settings:
    """Build and validate the settings; raises ``ConfigFileError`` or pydantic's
    ``ValidationError`` with a message naming the bad key."""
    return Settings(**overrides)
