"""A small async InfluxDB client for the v1 HTTP API (``/ping``, ``/write``, ``/query``).

The v1 endpoints are served by InfluxDB 1.x, by 2.x's compatibility API and by
3.x, so this one client works against all of them.  Values in InfluxQL always go
through bound parameters (``params=``); identifiers go through
:func:`quote_ident`.  Errors are three named classes; httpx's own exceptions
never leak out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import msgspec

from deltasense.lineprotocol import encode_lines
from deltasense.settings import Settings

_LOG = logging.getLogger(__name__)


class InfluxError(Exception):
    """Base class for InfluxDB client errors."""


class InfluxUnavailable(InfluxError):
    """The server could not be reached or answered 5xx; worth retrying."""


class InfluxRequestError(InfluxError):
    """The server refused the request (4xx): retrying the same request is useless."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def quote_ident(name: str) -> str:
    """Quote an InfluxQL identifier (measurement, tag key, field key)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """Quote an InfluxQL string literal; prefer bound parameters where possible."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Series(msgspec.Struct):
    name: str = ""
    columns: list[str] = msgspec.field(default_factory=list)
    values: list[list[Any]] = msgspec.field(default_factory=list)
    tags: dict[str, str] = msgspec.field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=False)) for row in self.values]


class _Result(msgspec.Struct):
    statement_id: int = 0
    series: list[Series] = msgspec.field(default_factory=list)
    error: str | None = None
    # InfluxDB cut the result at its [http] max-row-limit (0, no limit, is the default
    # since 1.2.2, but a server may set one): a silently short refill would forget
    # readings, so it is an error.
    partial: bool = False


class _Response(msgspec.Struct):
    results: list[_Result] = msgspec.field(default_factory=list)
    error: str | None = None


_RESPONSE = msgspec.json.Decoder(_Response)


def influx_client(settings: Settings, *, logger: logging.Logger | None = None) -> InfluxClient:
    """A client for the configured server and database."""
    return InfluxClient(
        url=settings.influx_base_url,
        database=settings.influx_db,
        username=settings.influx_username,
        password=settings.influx_password,
        timeout_s=settings.influx_timeout_s,
        logger=logger,
    )


class InfluxClient:
    """Async client bound to one database.  Use as an async context manager."""

    def __init__(
        self,
        *,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        auth = httpx.BasicAuth(username, password or "") if username else None
        self.database = database
        self._log = logger or _LOG
        self._http = httpx.AsyncClient(base_url=url, auth=auth, timeout=timeout_s)

    async def __aenter__(self) -> InfluxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"InfluxDB at {self._http.base_url}: {exc!r}") from exc
        if response.status_code >= 500:
            raise InfluxUnavailable(
                f"InfluxDB {path} answered {response.status_code}: {response.text[:200]}"
            )
        if response.status_code >= 400:
            raise InfluxRequestError(
                f"InfluxDB {path} refused the request ({response.status_code}): "
                f"{response.text[:300]}",
                status=response.status_code,
            )
        return response

    async def ping(self) -> bool:
        try:
            await self._request("GET", "/ping")
        except InfluxError:
            return False
        return True

    async def wait_ready(self, *, attempts: int = 30, delay_s: float = 0.5) -> None:
        """Bounded wait for the server; raises :class:`InfluxUnavailable` at the end."""
        for attempt in range(attempts):
            if await self.ping():
                return
            if attempt == 0:
                self._log.info("waiting for InfluxDB at %s", self._http.base_url)
            await asyncio.sleep(delay_s)
        raise InfluxUnavailable(f"InfluxDB at {self._http.base_url} not ready")

    async def create_database(self) -> None:
        """Make sure the database exists.

        CREATE DATABASE is idempotent, but only an admin may run it: a service
        with its own least-privilege user (auth enabled) gets 403, and then the
        database must already exist (the stack creates it and grants on it), which
        it checks among the databases it may see."""
        try:
            await self.execute(f"CREATE DATABASE {quote_ident(self.database)}")
        except InfluxRequestError as exc:
            if exc.status != 403:
                raise
            if self.database not in await self.databases():
                raise InfluxRequestError(
                    f"database {self.database!r} does not exist (or this user has no grant "
                    "on it), and this user may not create it: an admin must",
                    status=403,
                ) from None

    async def databases(self) -> list[str]:
        """The databases this user may see (all, for an admin)."""
        return [row[0] for s in await self.query("SHOW DATABASES", db=None) for row in s.values]

    async def execute(self, statement: str) -> None:
        """Run one statement that returns no rows (CREATE, GRANT, …) outside any database.

        Statements that carry a password must build it with :func:`quote_string`;
        it travels in the POST body, never in the URL (InfluxDB redacts it in its
        own logs)."""
        await self.query(statement, db=None)

    async def write_lines(self, lines: Sequence[str], *, precision: str = "ms") -> None:
        if not lines:
            return
        await self._request(
            "POST",
            "/write",
            params={"db": self.database, "precision": precision},
            content=encode_lines(lines),
        )

    async def query(
        self,
        q: str,
        *,
        params: Mapping[str, Any] | None = None,
        epoch: str = "ms",
        db: str | None = "",
    ) -> list[Series]:
        """Run one InfluxQL statement and return its series.

        ``params`` are bound parameters, referenced as ``$name`` in ``q``.  ``db``
        defaults to the client's database; ``None`` runs outside any.
        """
        form: dict[str, str] = {"q": q, "epoch": epoch}
        if db is not None:
            form["db"] = db or self.database
        if params:
            form["params"] = msgspec.json.encode(dict(params)).decode()
        response = await self._request("POST", "/query", data=form)
        decoded = _RESPONSE.decode(response.content)
        if decoded.error:
            raise InfluxRequestError(decoded.error, status=response.status_code)
        series: list[Series] = []
        for result in decoded.results:
            if result.error:
                raise InfluxRequestError(result.error, status=response.status_code)
            if result.partial:
                raise InfluxRequestError(
                    "the result was truncated by the server's [http] max-row-limit; "
                    "set it to 0 or query a shorter span",
                    status=response.status_code,
                )
            series.extend(result.series)
        return series
