"""Who may do what on the broker: identities, roles and their ACLs (docs/SECURITY.md).

Pure policy, no I/O except the credential files.  Deny by default: the dynamic
security plugin's default refuses every publish and subscription, and each
identity gets exactly the topics its job needs.

* a device's username is its device id (``[a-z0-9][a-z0-9-]{0,31}``) and it may
  connect only with that client id; its role ``device.<id>`` names its own five
  topic levels, so it is bound to its site, district and kind as well;
* platform accounts have a dot in their name (``svc.ingest``, ``gw.phuong-1``,
  ``admin.broker``), so they can never collide with a device id.
"""

from __future__ import annotations

import json
import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Final

from deltasense.contract import (
    ACKS_DISTRICT,
    ALERTS_DISTRICT,
    EDGE_DISTRICT,
    SILENCES_DISTRICT,
    Channel,
    Kind,
    edge_alert_topic,
    edge_alerts_filter,
    edge_status_topic,
    is_ident,
)
from deltasense.dynsec import Acl, AclType, admin_acls, write_private
from deltasense.health import BROKER_TOPICS, HEALTH_DISTRICT

ADMIN_USERNAME: Final = "admin.broker"
# The API's own admin identity for its device routes (only when configured), so
# it can be disabled or rotated without touching the CLI's.
API_ADMIN_USERNAME: Final = "admin.api"
SECRET_BYTES: Final = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits
DEVICE_SENDS: Final = (Channel.TELE, Channel.STATUS, Channel.META, Channel.ACK)
DEVICE_RECEIVES: Final = (Channel.CMD, Channel.CFG)

PUB: Final = AclType.PUBLISH_SEND
RECV: Final = AclType.PUBLISH_RECEIVE
SUB: Final = AclType.SUBSCRIBE_PATTERN
SUB_LITERAL: Final = AclType.SUBSCRIBE_LITERAL
# Ingest workers share one subscription, $share/ingest/{site}/# (ingest/service.py).
INGEST_SHARE_GROUP: Final = "ingest"


class Service(StrEnum):
    """Platform accounts, one per service (docs/SECURITY.md, roles)."""

    INGEST = "ingest"
    ANALYTICS = "analytics"
    API = "api"
    NOTIFIER = "notifier"
    SIMULATOR = "simulator"

    @property
    def username(self) -> str:
        return f"svc.{self.value}"


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def device_role(device: str) -> str:
    return f"device.{device}"


def device_base(site: str, district: str, kind: Kind | str, device: str) -> str:
    for name, value in (("site", site), ("district", district), ("device", device)):
        if not is_ident(value):
            raise ValueError(f"{name} {value!r} must match [a-z0-9][a-z0-9-]{{0,31}}")
    return f"{site}/{district}/{Kind(kind)}/{device}"


def device_acls(site: str, district: str, kind: Kind | str, device: str) -> list[Acl]:
    """Exactly its own topics: publish tele|status|meta|ack, subscribe cmd|cfg."""
    base = device_base(site, district, kind, device)
    return [Acl(PUB, f"{base}/{c}") for c in DEVICE_SENDS] + [
        Acl(SUB_LITERAL, f"{base}/{c}") for c in DEVICE_RECEIVES
    ]


def _device_side(prefix: str) -> list[Acl]:
    """What a publisher of many devices under ``prefix`` may do (simulator, gateway)."""
    return [Acl(PUB, f"{prefix}/+/+/{c}") for c in DEVICE_SENDS] + [
        Acl(SUB, f"{prefix}/+/+/{c}") for c in DEVICE_RECEIVES
    ]


def gateway_username(district: str) -> str:
    return f"gw.{district}"


def gateway_acls(site: str, district: str) -> list[Acl]:
    """An edge gateway relays the devices of its district, and no other, reports its
    own health on ``{site}/_edge/{district}/status`` and hands over the alerts it
    raised offline on ``{site}/_edge/{district}/alert`` (never on ``_alerts``)."""
    for name, value in (("site", site), ("district", district)):
        if not is_ident(value):
            raise ValueError(f"{name} {value!r} must match [a-z0-9][a-z0-9-]{{0,31}}")
    return [
        *_device_side(f"{site}/{district}"),
        Acl(PUB, edge_status_topic(site, district)),
        Acl(PUB, edge_alert_topic(site, district)),
    ]


def service_acls(service: Service, site: str) -> list[Acl]:
    if not is_ident(site):
        raise ValueError(f"site {site!r} must match [a-z0-9][a-z0-9-]{{0,31}}")
    alerts = f"{site}/{ALERTS_DISTRICT}/#"
    acks = f"{site}/{ACKS_DISTRICT}/+"
    devices = f"{site}/+/+/+"
    if service is Service.INGEST:
        # Everything under the site, except cfg: during a rotation it carries a
        # node's new secret, and ingest stores nothing from it.
        return [
            Acl(SUB, f"{site}/#"),
            Acl(SUB, f"$share/{INGEST_SHARE_GROUP}/{site}/#"),
            Acl(RECV, f"{devices}/{Channel.CFG}", allow=False),
            Acl(PUB, f"{site}/{HEALTH_DISTRICT}/ingest/+"),  # its workers' health reports
        ]
    if service is Service.ANALYTICS:
        return [
            *(Acl(SUB, f"{devices}/{c}") for c in (Channel.TELE, Channel.META, Channel.STATUS)),
            Acl(SUB, alerts),
            Acl(PUB, alerts),  # the only publisher of alert events
            Acl(SUB, acks),  # operators' acks, applied and republished on alerts
            # Platform health: ingest's reports and two broker counters, no other $SYS.
            Acl(SUB, f"{site}/{HEALTH_DISTRICT}/#"),
            *(Acl(SUB_LITERAL, topic) for topic in BROKER_TOPICS),
            # District edge gateways' health: read only (only gw.<district> publishes it).
            Acl(SUB, f"{site}/{EDGE_DISTRICT}/+/status"),
            # ... and the alerts they raised while offline, which analytics adopts.
            Acl(SUB, edge_alerts_filter(site)),
            # full-brightness leases (set_dim) go to lamps only
            Acl(PUB, f"{site}/+/{Kind.LAMP}/+/{Channel.CMD}"),
        ]
    if service is Service.API:
        return [
            Acl(SUB, alerts),
            Acl(PUB, f"{devices}/{Channel.CMD}"),
            Acl(SUB, f"{devices}/{Channel.ACK}"),  # devices' answers to its commands
            Acl(PUB, f"{devices}/{Channel.CFG}"),
            # Operator acknowledgements (api/routes/alerts.py); never on alerts.
            Acl(PUB, acks),
            # Silences and shelved alerts (api/routes/silences.py), retained; the
            # notifier reads them.  Nobody else publishes there.
            Acl(PUB, f"{site}/{SILENCES_DISTRICT}/+"),
        ]
    if service is Service.NOTIFIER:
        return [
            Acl(SUB, alerts),
            # Console silences (notifier/silences.py); nothing else of the city.
            Acl(SUB, f"{site}/{SILENCES_DISTRICT}/+"),
            # Acks from the Telegram button and email links, like the API's; it
            # reads the API's too, so an ack stops reminders even while analytics
            # is down.
            Acl(PUB, acks),
            Acl(SUB, acks),
        ]
    if service is Service.SIMULATOR:
        return _device_side(f"{site}/+")
    raise AssertionError(service)  # pragma: no cover - StrEnum is exhaustive


def admin_role_acls() -> list[Acl]:
    """The plugin itself, and for rotation a node's cfg (push, read the retained one)
    and meta (the node's confirmation), on any site."""
    devices = "+/+/+/+"
    return [
        *admin_acls(),
        Acl(PUB, f"{devices}/{Channel.CFG}"),
        Acl(SUB, f"{devices}/{Channel.CFG}"),
        Acl(SUB, f"{devices}/{Channel.META}"),
    ]


# --- credential files: var/secrets/mqtt/<username>, mode 0600 ------------------------------
def secrets_dir(var_dir: Path) -> Path:
    path = var_dir.resolve() / "secrets" / "mqtt"
    path.mkdir(parents=True, exist_ok=True)
    for p in (path.parent, path):
        os.chmod(p, 0o700)
    return path


def admin_token_file(var_dir: Path, *, create_dir: bool = False) -> Path:
    """The API's generated admin token, ``var/secrets/admin-token`` (0600 in a 0700
    directory); never printed into a log, only its path."""
    path = var_dir.resolve() / "secrets" / "admin-token"
    if create_dir:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
    return path


def read_secret(var_dir: Path, username: str) -> str | None:
    path = var_dir.resolve() / "secrets" / "mqtt" / username
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def write_secret(var_dir: Path, username: str, secret: str) -> Path:
    path = secrets_dir(var_dir) / username
    write_private(path, (secret + "\n").encode())
    return path


def ensure_secret(var_dir: Path, username: str) -> str:
    """The stored secret of a platform account, made on first use."""
    secret = read_secret(var_dir, username)
    if secret is None:
        secret = new_secret()
        write_secret(var_dir, username, secret)
    return secret


def describe(site: str, district: str, kind: Kind | str) -> str:
    """What a device client's textdescription holds (read back by ``devices list``)."""
    return json.dumps({"site": site, "district": district, "kind": str(Kind(kind))})
