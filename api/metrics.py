"""Prometheus request metrics as a small pure-ASGI middleware (SSE-safe: no body buffering)."""

from __future__ import annotations

import time

from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deltasense.runtime import Metrics


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        metrics = Metrics("api", registry)
        self.requests = metrics.counter(
            "requests", "HTTP requests by route template and status", ["method", "route", "status"]
        )
        self.latency = metrics.histogram(
            "request_seconds",
            "Time to the response start (first byte), by route template",
            ["method", "route"],
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.metrics.latency.labels(scope["method"], _route(scope)).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    """The route template, never the raw path, so label cardinality stays bounded."""
    route = scope.get("route")
    if isinstance(route, APIRoute):
        # FastAPI keeps included routers nested: the matched route's template lacks
        # the outer prefixes, which are the leading segments of the request path
        # (no route here uses a multi-segment ``:path`` converter).
        depth = route.path.count("/")
        segments = str(scope["path"]).split("/")
        return "/".join(segments[: len(segments) - depth]) + route.path
    if isinstance(route, BaseRoute):
        return str(getattr(route, "path", "<other>"))
    return "<unmatched>"
