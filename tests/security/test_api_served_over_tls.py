"""Issue 9, item 3: the API served over HTTPS with the dev stack's CA.

The real entry point (``python -m api``, as ``deltasense up`` starts it) with
``api_tls`` on, certificate and key made by ``tools.tls`` under its var dir,
on the session's InfluxDB and broker; clients are httpx verifying against the CA.
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from deltasense.settings import Settings
from tools import tls
from tools.devstack import ServiceError, http_ok, python_service
from tools.stack import api_ca, settings_env


def test_api_over_https_with_the_dev_ca(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"api_tls": True})
    pki = tls.ensure_dev_pki(s.var_dir)
    assert s.api_base_url.startswith("https://") and api_ca(s) == s.mqtt_ca_path
    url = f"{s.api_base_url}/healthz"
    api = python_service(
        "api",
        "api",
        s.var_dir,
        env=settings_env(s),
        healthy=lambda: http_ok(url, cafile=pki.ca_cert),
        ports=[(s.api_host, s.api_port)],
    )
    api.start()
    try:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        with httpx.Client(verify=ctx, timeout=5) as client:
            resp = client.get(url)
            assert resp.status_code == 200
            assert client.get(f"{s.api_base_url}/api/v1/devices").status_code == 401
        # Another CA, or the system's, does not vouch for it.
        cert, _ = tls.make_ca("DeltaSense dev CA", dt.datetime.now(dt.UTC))
        other = tmp_path / "other.pem"
        other.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        for verify in (ssl.create_default_context(cafile=str(other)), True):
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                httpx.get(url, verify=verify, timeout=5)
        # Plain HTTP to the HTTPS port gets no answer.
        with pytest.raises(httpx.TransportError):
            httpx.get(url.replace("https://", "http://"), timeout=5)
        assert not http_ok(url.replace("https://", "http://"))
    finally:
        api.stop()


def test_api_tls_without_its_files_refuses_to_start(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"api_tls": True, "var_dir": tmp_path / "empty"})
    api = python_service(
        "api",
        "api",
        s.var_dir,
        env=settings_env(s),
        healthy=lambda: False,
        ports=[(s.api_host, s.api_port)],
    )
    with pytest.raises(ServiceError, match=r"exited with code 1[\s\S]*server.pem does not exist"):
        api.start()
