"""HSTS is sent over a real TLS connection, and only there (headers: api/headers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from deltasense.settings import Settings
from tests.integration.notifier_support import self_signed
from tests.support import ADMIN_TOKEN
from tools.devstack import free_port


@contextlib.asynccontextmanager
async def serving(app: object, port: int, cert: tuple[Path, Path] | None) -> AsyncIterator[None]:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ssl_certfile=str(cert[0]) if cert else None,
        ssl_keyfile=str(cert[1]) if cert else None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):  # uvicorn offers no event to wait on
            if server.started:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("uvicorn did not start in 10 s")
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("path", ["/healthz", "/", "/nope", "/api/v1/devices"])
async def test_hsts_over_https_not_over_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.chdir(tmp_path)
    cert = self_signed(tmp_path)
    app = create_app(Settings(var_dir=tmp_path / "var", admin_token=ADMIN_TOKEN))
    tls, plain = free_port(), free_port()
    trust = ssl.create_default_context(cafile=str(cert[0]))
    async with (
        serving(app, tls, cert),
        serving(app, plain, None),
        httpx.AsyncClient(verify=trust) as client,
    ):
        secure = await client.get(f"https://127.0.0.1:{tls}{path}")
        clear = await client.get(f"http://127.0.0.1:{plain}{path}")
    assert secure.status_code == clear.status_code
    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert "strict-transport-security" not in clear.headers
    for response in (secure, clear):
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
