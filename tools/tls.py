"""The dev stack's TLS material: a local CA and a server certificate it signs.

Made with the ``cryptography`` package under ``var/tls`` (0700; private keys
0600) on every start of the stack, and made again only when needed: the CA when
it is missing or expires within :data:`RENEW_BEFORE`, the server certificate
when it is missing, expires soon, was not signed by the current CA or does not
name exactly the wanted hosts (``localhost``, ``127.0.0.1``, ``::1`` and the
``tls_hosts`` setting).  Keys are ECDSA P-256: mbedTLS on both node ports
verifies them (``MBEDTLS_ECDSA_C``, ``MBEDTLS_ECP_DP_SECP256R1_ENABLED`` in
MicroPython's ``extmod/mbedtls/mbedtls_config_common.h``), with a far smaller
handshake than RSA.

This CA is for development and demos only: a deployment uses its own
(docs/SECURITY.md, "TLS").
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 397  # what public CAs may issue at most; the stack renews it by itself
RENEW_BEFORE = dt.timedelta(days=30)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TlsError(RuntimeError):
    """The TLS material cannot be made or read (the message says which file)."""


@dataclass(frozen=True)
class DevPki:
    """Where the stack's CA and server certificate are."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    hosts: tuple[str, ...]

    def ca_der(self) -> bytes:
        """The CA certificate in DER, as a node pins it (``/ca.der``)."""
        return _load_cert(self.ca_cert).public_bytes(serialization.Encoding.DER)


def tls_dir(var_dir: Path) -> Path:
    return var_dir.resolve() / "tls"


def wanted_hosts(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The certificate's names: the defaults then ``extra``, each once, each checked."""
    out: list[str] = []
    for raw in (*DEFAULT_HOSTS, *extra):
        host = _check_host(raw.strip().lower())
        if host not in out:
            out.append(host)
    return tuple(out)


def _check_host(host: str) -> str:
    """``host`` as the certificate names it (an address in its canonical form)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.split(".")
    ok = 0 < len(host) <= 253 and all(
        0 < len(label) <= 63
        and label.replace("-", "").isalnum()
        and label.isascii()
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )
    if not ok:
        raise TlsError(f"tls_hosts: {host!r} is neither an IP address nor a DNS name")
    return host


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _san_hosts(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    ips: list[Address] = san.get_values_for_type(x509.IPAddress)  # type: ignore[assignment]
    return {str(ip) for ip in ips} | set(san.get_values_for_type(x509.DNSName))


def _write_private(path: Path, data: bytes) -> None:
    """Written 0600 from the start (never readable by others, even for a moment)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsError(f"{path}: not a readable PEM certificate ({exc})") from None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsError(f"{path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{path}: not an EC private key")
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def make_ca(
    common_name: str, now: dt.datetime, days: int = CA_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_server_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Iterable[str],
    now: dt.datetime,
    days: int = SERVER_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A TLS server certificate for ``hosts`` signed by the CA."""
    hosts = tuple(hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ensure_dev_pki(
    var_dir: Path, extra_hosts: Iterable[str] = (), *, now: dt.datetime | None = None
) -> DevPki:
    """The stack's CA and server certificate, made or renewed as needed (see above)."""
    now = now or dt.datetime.now(dt.UTC)
    hosts = wanted_hosts(extra_hosts)
    base = tls_dir(var_dir)
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)
    pki = DevPki(
        dir=base,
        ca_cert=base / "ca.pem",
        ca_key=base / "ca.key",
        server_cert=base / "server.pem",
        server_key=base / "server.key",
        hosts=hosts,
    )
    ca: x509.Certificate | None = None
    if pki.ca_cert.exists() and pki.ca_key.exists():
        ca = _load_cert(pki.ca_cert)
        ca_key = _load_key(pki.ca_key)
        if not _fresh(ca, now):
            ca = None
    if ca is None:
        ca, ca_key = make_ca("DeltaSense dev CA", now)
        _write_private(pki.ca_key, _key_pem(ca_key))
        _write_public(pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM))
    for key_file in (pki.ca_key, pki.server_key):
        if key_file.exists():
            key_file.chmod(0o600)
    renew = True
    if pki.server_cert.exists() and pki.server_key.exists():
        server = _load_cert(pki.server_cert)
        renew = (
            not _fresh(server, now)
            or not _signed_by(server, ca)
            or _san_hosts(server) != set(hosts)
        )
    if renew:
        server, server_key = make_server_cert(ca, ca_key, hosts, now)
        _write_private(pki.server_key, _key_pem(server_key))
        _write_public(pki.server_cert, server.public_bytes(serialization.Encoding.PEM))
    return pki
