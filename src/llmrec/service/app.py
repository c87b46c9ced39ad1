"""The HTTP API (docs/design.md, v1): ``create_app`` puts together the middleware, the ops
pages and the routers of ``routes/`` (recommendations, events, items, users, admin, ...).

Every client mistake is a JSON error ``{"error": {"code", "message", "field"?}}`` with a
4xx status; a 500 means a bug. Access logs carry the route, status, time and key id, never
user or item ids.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from llmrec.service.deps import ADMIN
from llmrec.service.errors import error_response, install_error_handlers
from llmrec.service.middleware import (
    BODY_TIMEOUT,
    MAX_BODY,
    MAX_IN_FLIGHT,
    AccessLog,
    BodyLimit,
    InFlightLimit,
)
from llmrec.service.ops import Metrics, install_ops
from llmrec.service.redaction import swallow_handled_errors
from llmrec.service.routes import ROUTERS
from llmrec.service.routes.pages import WEB
from llmrec.service.schemas import event_names_in_schema
from llmrec.service.serving import Service


def create_app(
    service: Service, max_in_flight: int = MAX_IN_FLIGHT, body_timeout: float = BODY_TIMEOUT
) -> FastAPI:
    """The API. Past ``max_in_flight`` requests being served, 503 with ``Retry-After``; a
    client that takes longer than ``body_timeout`` seconds between two parts of its body,
    408."""
    app = FastAPI(
        title="llmrec",
        version="1",
        description="Real-time recommendations; see docs/service.md.",
        docs_url=None,  # ops.install_ops serves /docs from a local copy of Swagger UI
        redoc_url=None,  # ReDoc loads from a CDN
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY, timeout=body_timeout)
    app.add_middleware(
        InFlightLimit,
        limit=max_in_flight,
        refuse=lambda: error_response(
            503, "overloaded", "too many requests in flight: retry shortly"
        ),
    )

    metrics = Metrics()
    app.state.metrics = metrics
    service.events.on_run = metrics.commits.observe
    service.on_batch = metrics.batches.observe
    app.add_middleware(AccessLog, metrics=metrics)
    install_ops(app, metrics, service.shares, ADMIN)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
    for router in ROUTERS:
        app.include_router(router)
    event_names_in_schema(app, lambda: list(service.live.model.event_rules_.names))
    swallow_handled_errors(app)
    return app
