"""Request and response bodies of the HTTP API (they shape docs/openapi.json)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, Field

from deltasense.alerts import AlertEvent, Severity
from deltasense.contract import IDENT_PATTERN, Kind

DeviceStatus = Literal["online", "offline", "sleeping", "unknown"]


class Location(BaseModel):
    lat: float
    lon: float


class Device(BaseModel):
    device: str
    kind: str
    site: str
    district: str
    location: Location | None = Field(None, description="From the device's latest meta record.")
    status: DeviceStatus
    status_ts: int | None = Field(None, description="When the status was recorded (ms).")
    last_seen: int | None = Field(None, description="Last reading received (ms since epoch).")
    fw: str | None = None


class Latest(BaseModel):
    device: str
    kind: str
    ts: int = Field(description="Reading time, ms since the Unix epoch (UTC).")
    fields: dict[str, float | int | bool]
    seq: int | None = None
    boot: int | None = None
    hist: bool = Field(False, description="Replayed from the device's buffer.")
    ts_from_platform: bool = Field(False, description="Device clock unsynced; arrival time.")
    qc: list[str] = Field(
        default_factory=list, description="Fields flagged as physically impossible."
    )


class SeriesOut(BaseModel):
    device: str
    field: str
    every: str
    aggregate: Literal["mean", "min", "max", "last"]
    start: int
    end: int
    points: list[tuple[int, float | bool | None]] = Field(
        description="[bucket start ms, value or null when the bucket holds no reading]"
    )


class AlertMessage(BaseModel):
    vi: str
    en: str


class AlertAck(BaseModel):
    by: str
    ts: int
    note: str = ""


class Alert(BaseModel):
    """One alert's latest state (the ``_alerts`` MQTT event, see deltasense.alerts)."""

    id: str
    kind: Literal["storm", "flood", "energy", "health"]
    rule: str
    subject: str
    district: str
    severity: Literal["info", "warning", "critical"]
    state: Literal["pending", "firing", "resolved"]
    risk_level: int
    values: dict[str, float]
    started: int
    updated: int
    ended: int | None = None
    message: AlertMessage
    ack: AlertAck | None = None

    @classmethod
    def of(cls, event: AlertEvent) -> Alert:
        return cls.model_validate(msgspec.to_builtins(event))


class AckIn(BaseModel):
    note: Annotated[str | None, Field(max_length=500)] = None


class CommandIn(BaseModel):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    args: dict[str, Any] = Field(default_factory=dict)
    ttl_s: Annotated[int, Field(ge=1, le=86400)] = 300


class CommandOut(BaseModel):
    id: str
    name: str
    args: dict[str, Any]
    expires: int
    topic: str


class DeadLetter(BaseModel):
    ts: int
    reason: str | None
    topic: str | None
    payload: str | None
    detail: str | None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool]


class ServiceOut(BaseModel):
    name: str
    state: str = Field(description="stopped, starting, up or restarting")
    pid: int | None = None
    restarts: int = Field(0, description="Restarts after a crash since the stack started.")
    last_exit: int | None = Field(None, description="Exit code of the last crash (-9: killed).")
    since: float = Field(0.0, description="Unix time of the last state change.")


class SystemOut(BaseModel):
    supervised: bool = Field(description="False when no `deltasense up` supervisor reports here.")
    state: str | None = Field(None, description="The supervisor's state (up, stopping…).")
    services: list[ServiceOut] = []
    degraded: list[str] = Field([], description="Services that are not up while the stack is.")
    recovered: list[str] = Field(
        [], description="Services up again after a crash in the last 60 s (the console says so)."
    )


class StreamTicketOut(BaseModel):
    ticket: str = Field(description="Opaque; pass as `?ticket=` to GET /api/v1/alerts/stream.")
    expires_in_s: int = Field(description="Seconds it stays valid; it is good for one stream.")


class AuditEntry(BaseModel):
    """One audit-log entry (deltasense/audit.py); never holds a secret."""

    id: int = Field(description="Position in the log (1, 2, …); page back with before_id.")
    ts: int = Field(description="When, ms since the Unix epoch (UTC).")
    actor: str = Field(description="Who: the API token's name, or the OS user of the CLI.")
    origin: str = Field(description="From where: the client's address, or `cli`.")
    action: str = Field(description="What: device.add, token.remove, alert.ack, command.send, …")
    target: str = Field(description="On what: a device id, a token name, an alert id.")
    result: str = Field(description="ok, not_found, invalid, unconfirmed or error.")
    detail: dict[str, Any] = Field(default_factory=dict)


class DeviceIdentityIn(BaseModel):
    """A new device identity (as `deltasense devices add`)."""

    model_config = {"extra": "forbid"}

    device: Annotated[str, Field(pattern=f"^{IDENT_PATTERN}$", description="Its MQTT username.")]
    kind: Kind
    district: Annotated[str, Field(pattern=f"^{IDENT_PATTERN}$")]


class DeviceIdentity(BaseModel):
    """A device's broker identity; never its secret."""

    device: str
    site: str
    district: str
    kind: str
    enabled: bool = Field(description="False once revoked: refused on connect.")
    clientid: str | None = Field(description="The only client id it may connect with.")
    username: str
    publish: list[str] = Field(description="Topics it may publish on.")
    subscribe: list[str] = Field(description="Topics it may subscribe to.")


class DeviceSecret(BaseModel):
    """A new secret, returned once: the broker keeps only a hash of it."""

    identity: DeviceIdentity
    config: dict[str, str | bool | int] = Field(
        description="The node's config: site, district, kind, device, broker, mqtt_user, mqtt_pass."
    )


# --- city view ------------------------------------------------------------------------
class MapAlert(BaseModel):
    id: str
    severity: Severity
    kind: str


class MapDevice(BaseModel):
    device: str
    kind: str
    district: str
    lat: float | None = Field(None, description="From the device's latest meta; null if none.")
    lon: float | None = None
    status: DeviceStatus
    last_seen: int | None = None
    alert: MapAlert | None = Field(None, description="The device's most severe active alert.")


class WardAlerts(BaseModel):
    info: int = 0
    warning: int = 0
    critical: int = 0


class WardTile(BaseModel):
    district: str
    name: str = Field(description="Display name from the site's ward list (deltasense/wards.toml).")
    lat: float | None = None
    lon: float | None = None
    devices: int
    online: int
    offline: int
    alerts: WardAlerts = Field(description="Active alerts in the ward by severity.")
    deepest_water_cm: float | None = Field(None, description="Highest latest water level (24 h).")
    deepest_water_device: str | None = None
    rain_mm_today: float | None = Field(None, description="Wettest station since 07:00 local.")
    lamps: int
    lamps_on: int
    meter_kwh_today: float | None = Field(None, description="Meters' energy since local midnight.")
    lamp_kwh_today: float | None = Field(None, description="Lamps' energy since local midnight.")


class CityRisk(BaseModel):
    risk_level: int = Field(
        ge=0, le=5, description="Highest active storm alert's level 1–5 (Decision 18/2021); 0 none."
    )
    alert_id: str | None = None
    message: AlertMessage | None = None
    max_wind_ms: float | None = Field(None, description="Strongest latest wind (last hour).")
    wind_cap: int | None = Field(None, description="Its cấp on the Vietnamese wind scale.")


class WardsOut(BaseModel):
    ts: int
    rain_since: int = Field(description="Start of the rain day (07:00 local), ms.")
    energy_since: int = Field(description="Local midnight, ms.")
    city: CityRisk
    wards: list[WardTile]


class ChartLine(BaseModel):
    value: float
    level: Severity
    label: str = Field(description="Catalogue key of the line's name.")


class ConsoleWard(BaseModel):
    id: str
    name: str
    lat: float
    lon: float


class ConsoleConfig(BaseModel):
    site: str
    utc_offset_min: int
    tile_url: str | None
    tile_attribution: str
    lines: dict[str, list[ChartLine]]
    wind_caps: dict[str, float]
    city: AlertMessage = Field(description="The whole city's display name (vi, en).")
    wards: list[ConsoleWard]


class StatusChange(BaseModel):
    ts: int
    state: str


class Me(BaseModel):
    name: str
    role: Literal["viewer", "operator", "admin"]
    via: Literal["token", "session"] = Field(
        "token", description="A bearer token, or an account signed in to the console."
    )


class CommandState(BaseModel):
    id: str
    device: str
    name: str
    args: dict[str, Any]
    sent: int
    expires: int
    by: str
    status: Literal["sent", "acked", "failed", "expired"]
    answered: int | None = Field(None, description="When the device's ack arrived (ms).")
    error: str | None = Field(None, description="The device's reason, when it failed.")


class Delivery(BaseModel):
    """One notification the notifier made (its outbox row); the address is masked."""

    key: str = Field(
        description="Idempotency key of the message (alert events, receiver, channel)."
    )
    receiver: str = Field(description="Receiver id from the routing file.")
    channel: Literal["telegram", "zalo", "email", "webhook"]
    address: str = Field(description="Masked: `t***@example.vn`, `-100***890`, `https://host/***`.")
    reason: str = Field(
        description="Why: alerts (news of the alerts), repeat (unacked critical), escalation."
    )
    alert_ids: list[str] = Field(
        description="Alerts the message carried (a digest carries several)."
    )
    state: Literal["queued", "sending", "sent", "retried", "failed"]
    attempts: int = Field(description="Send attempts so far.")
    created: int = Field(description="Queued at, ms since the Unix epoch (UTC).")
    sent_at: int | None = Field(description="Delivered to the provider at, ms; null until sent.")
    last_error: str = Field(description="The last attempt's error; empty once sent.")


class RoutingReceiver(BaseModel):
    id: str
    name: str
    language: Literal["vi", "en"]
    channels: dict[str, int] = Field(description="channel → number of addresses.")


class RoutingRoute(BaseModel):
    model_config = {"populate_by_name": True}

    name: str
    kinds: list[str]
    severities: list[str]
    wards: list[str]
    rules: list[str]
    receivers: list[str]
    escalate: list[str]
    group_by: list[str]
    continue_: bool = Field(alias="continue")


class RoutingInhibit(BaseModel):
    source_rules: list[str]
    target_rules: list[str]


class RoutingSummary(BaseModel):
    receivers: list[RoutingReceiver]
    routes: list[RoutingRoute]
    inhibit: list[RoutingInhibit]


class RoutingOut(BaseModel):
    """The notifier's routing file (docs/NOTIFICATIONS.md) and what it says."""

    text: str = Field(description="The file as stored (TOML); empty when there is none.")
    summary: RoutingSummary
    applied: bool | None = Field(
        None, description="PUT: the running notifier uses it; null: not confirmed (see notifier)."
    )
    notifier: str = Field("", description="PUT: why it is not confirmed, when it is not.")
