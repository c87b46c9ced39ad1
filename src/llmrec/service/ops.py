"""Operations: Prometheus metrics at ``/metrics`` and the API docs at ``/docs`` without internet.

Metrics (``prometheus-client``, one registry per app): requests by method, route template and
status; latency by route template; requests in flight; recommendation lists served from the
cache or scored; events stored; the served model's version. Labels are route templates and
statuses only: no user or item id ever becomes a label (or a log line).

``/docs`` is Swagger UI from the ``swagger-ui-bundle-v2`` wheel, served by this app: FastAPI's
default page loads its scripts from a CDN and is blank offline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmrec_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "llmrec_request_seconds", "time to answer", ["route"], buckets=BUCKETS, registry=r
        )
        self.in_flight = Gauge("llmrec_requests_in_flight", "requests being served", registry=r)
        self.lists = Counter(
            "llmrec_recommendation_lists", "lists served", ["source"], registry=r
        )  # source: cache | scored
        self.events = Counter("llmrec_events_stored", "events stored (202)", registry=r)
        self.model = Gauge("llmrec_model_info", "the served model", ["version"], registry=r)

    def render(self, version: str) -> Response:
        self.model.clear()
        self.model.labels(version=version).set(1)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Counts and times every HTTP request by its route template (unmatched: '?')."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status = time.perf_counter(), 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m = self.metrics
        m.in_flight.inc()
        try:
            await self.app(scope, receive, capture)
        finally:
            m.in_flight.dec()
            route = getattr(scope.get("route"), "path", "?")
            m.requests.labels(scope["method"], route, str(status)).inc()
            m.latency.labels(route).observe(time.perf_counter() - t0)


def install_ops(app: FastAPI, version: Callable[[], str], guard: Any) -> Metrics:
    """``/metrics`` (behind ``guard``, an admin-key dependency) and the offline ``/docs``."""
    import swagger_ui_bundle

    metrics = Metrics()
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.get("/metrics", include_in_schema=False, dependencies=[guard])
    def prometheus() -> Response:
        return metrics.render(version())

    app.mount(
        "/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets"
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="llmrec API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    return metrics
