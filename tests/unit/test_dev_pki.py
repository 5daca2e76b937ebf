"""The dev stack's CA and server certificate (tools/tls.py): made once, kept,
renewed when they expire or when the wanted names change, keys private."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509

from tools import tls

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(path: Path) -> set[str]:
    ext = load(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(
        ext.get_values_for_type(x509.DNSName)
    )


def test_made_private_and_valid(tmp_path: Path) -> None:
    pki = tls.ensure_dev_pki(tmp_path, ["192.168.1.10", "gw.local"], now=NOW)
    assert mode(pki.dir) == 0o700
    assert mode(pki.ca_key) == 0o600 and mode(pki.server_key) == 0o600
    assert mode(pki.ca_cert) == 0o644 and mode(pki.server_cert) == 0o644
    ca, server = load(pki.ca_cert), load(pki.server_cert)
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert sans(pki.server_cert) == {"localhost", "127.0.0.1", "::1", "192.168.1.10", "gw.local"}
    assert pki.ca_der()[0] == 0x30  # DER: an ASN.1 SEQUENCE, what a node pins


def test_kept_when_nothing_changed(tmp_path: Path) -> None:
    first = tls.ensure_dev_pki(tmp_path, now=NOW)
    before = (first.ca_cert.read_bytes(), first.server_cert.read_bytes())
    again = tls.ensure_dev_pki(tmp_path, now=NOW + dt.timedelta(days=100))
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == before


def test_server_cert_renewed_when_names_change(tmp_path: Path) -> None:
    pki = tls.ensure_dev_pki(tmp_path, now=NOW)
    ca = pki.ca_cert.read_bytes()
    old = pki.server_cert.read_bytes()
    tls.ensure_dev_pki(tmp_path, ["10.0.0.5"], now=NOW)
    assert pki.server_cert.read_bytes() != old and pki.ca_cert.read_bytes() == ca
    assert "10.0.0.5" in sans(pki.server_cert)
    # An address written another way is the same name: no renewal.
    kept = pki.server_cert.read_bytes()
    tls.ensure_dev_pki(tmp_path, ["10.0.0.5", "LOCALHOST", "0:0:0:0:0:0:0:1"], now=NOW)
    assert pki.server_cert.read_bytes() == kept


def test_renewed_before_expiry(tmp_path: Path) -> None:
    pki = tls.ensure_dev_pki(tmp_path, now=NOW)
    ca, server = pki.ca_cert.read_bytes(), pki.server_cert.read_bytes()
    late = load(pki.server_cert).not_valid_after_utc - dt.timedelta(days=10)
    tls.ensure_dev_pki(tmp_path, now=late)
    assert pki.server_cert.read_bytes() != server and pki.ca_cert.read_bytes() == ca
    assert load(pki.server_cert).not_valid_after_utc > late + dt.timedelta(days=300)
    # The CA too, near its end; the server certificate follows the new CA.
    very_late = load(pki.ca_cert).not_valid_after_utc - dt.timedelta(days=1)
    tls.ensure_dev_pki(tmp_path, now=very_late)
    assert pki.ca_cert.read_bytes() != ca
    load(pki.server_cert).verify_directly_issued_by(load(pki.ca_cert))


def test_a_replaced_ca_gets_a_new_server_cert(tmp_path: Path) -> None:
    pki = tls.ensure_dev_pki(tmp_path, now=NOW)
    pki.ca_cert.unlink()
    tls.ensure_dev_pki(tmp_path, now=NOW)
    load(pki.server_cert).verify_directly_issued_by(load(pki.ca_cert))


def test_loose_key_modes_are_tightened(tmp_path: Path) -> None:
    pki = tls.ensure_dev_pki(tmp_path, now=NOW)
    pki.server_key.chmod(0o644)
    pki.dir.chmod(0o755)
    tls.ensure_dev_pki(tmp_path, now=NOW)
    assert mode(pki.server_key) == 0o600 and mode(pki.dir) == 0o700


@pytest.mark.parametrize(
    "host", ["", "bad host", "-x.local", "a..b", "x" * 64 + ".local", "ünï.local", "a/b", "*"]
)
def test_hostile_tls_hosts_are_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(tls.TlsError, match="tls_hosts"):
        tls.ensure_dev_pki(tmp_path, [host], now=NOW)


def test_corrupt_files_are_named(tmp_path: Path) -> None:
    pki = tls.ensure_dev_pki(tmp_path, now=NOW)
    pki.ca_key.write_text("garbage")
    with pytest.raises(tls.TlsError, match=r"ca\.key"):
        tls.ensure_dev_pki(tmp_path, now=NOW)


def test_wanted_hosts_canonical() -> None:
    assert tls.wanted_hosts(["::0:1", "Gw.Local"]) == ("localhost", "127.0.0.1", "::1", "gw.local")
