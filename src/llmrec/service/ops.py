"""Operations: Prometheus metrics at ``/metrics`` and the API docs at ``/docs`` without internet.

Metrics (``prometheus-client``, one registry per app): requests by method, route template and
status; latency by route template; requests in flight; recommendation lists served from the
cache or scored; events stored; the served model's version. Labels are route templates and
statuses only: no user or item id ever becomes a label (or a log line).

``/docs`` is Swagger UI from the ``swagger-ui-bundle-v2`` wheel, served by this app: FastAPI's
default page loads its scripts from a CDN and is blank offline.
"""

from __future__ import annotations

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
        self.commits = Histogram(
            "llmrec_event_commit_requests",
            "event requests sharing one transaction (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.batches = Histogram(
            "llmrec_recommendation_batch_lists",
            "uncached lists scored in one model pass (request batching)",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.model = Gauge(
            "llmrec_model_info", "served model versions: share of users", ["version"], registry=r
        )

    def render(self, served: dict[str, float]) -> Response:
        self.model.clear()
        for version, share in served.items():
            self.model.labels(version=version).set(share)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def install_ops(
    app: FastAPI, metrics: Metrics, served: Callable[[], dict[str, float]], guard: Any
) -> None:
    """``/metrics`` (behind ``guard``, an admin-key dependency; ``middleware.AccessLog`` fills
    the request series) and the offline ``/docs``."""
    import swagger_ui_bundle

    @app.get("/metrics", include_in_schema=False, dependencies=[guard])
    def prometheus() -> Response:
        return metrics.render(served())

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
