"""The HTTP API (docs/design.md, v1): recommendations, events, items, users, admin.

Every client mistake is a JSON error ``{"error": {"code", "message", "field"?}}`` with a
4xx status; a 500 means a bug. Access logs carry the route, status, time and key id, never
user or item ids.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import Field

from llmrec.data import columns as C
from llmrec.errors import ConfigError
from llmrec.online.feedback import impression_rows
from llmrec.rerank import RerankSpec
from llmrec.service.activity import install_activity
from llmrec.service.admin_routes import install_admin
from llmrec.service.ask_routes import install_asking
from llmrec.service.asking import answer_json
from llmrec.service.errors import (
    ApiError,
    UnknownItemError,
    UnknownUserError,
    error_response,
    install_error_handlers,
)
from llmrec.service.keys import Key
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
from llmrec.service.schemas import (
    ERRORS,
    MAX_EVENTS,
    ContextValues,
    EventIn,
    EventsAccepted,
    ExplanationOut,
    Health,
    ItemIn,
    ItemsOut,
    ItemStored,
    Limit,
    PathID,
    RecommendationsOut,
    ReportsOut,
    RequestText,
    Search,
    SimilarOut,
    UserDeleted,
    UserOut,
    UserQuery,
    UsersOut,
    event_names_in_schema,
    items_out,
)
from llmrec.service.serving import MISSING, Service
from llmrec.service.store import ITEM_FIELDS, item_frame

log = logging.getLogger("llmrec.service")
WEB = Path(__file__).parent / "web"  # the page's static files (no key needed, no CDN)


# --- the application ---------------------------------------------------------------------
bearer = HTTPBearer(auto_error=False, description="an API key from `llmrec keys create`")


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
    service.events.on_run = metrics.commits.observe
    service.on_batch = metrics.batches.observe
    app.add_middleware(AccessLog, metrics=metrics)

    def role(needed: str) -> Callable[..., Awaitable[Key]]:
        async def check(
            request: Request,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> Key:
            if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
                raise ApiError(401, "unauthorized", "an API key is needed", "Authorization")
            key = service.cached_key(creds.credentials)
            if key is MISSING:  # a store lookup: off the event loop
                key = await run_in_threadpool(service.key, creds.credentials)
            if key is None:
                raise ApiError(401, "unauthorized", "unknown or revoked API key", "Authorization")
            request.state.key_id = key.id
            if not key.allows(needed):
                raise ApiError(403, "forbidden", f"this key's role cannot {needed}")
            wait = service.allow(key)
            if wait is not None:
                raise ApiError(429, "rate_limited", f"over {key.rate_limit:g} requests/s; retry")
            return key

        return check

    reader, writer, admin = Depends(role("read")), Depends(role("write")), Depends(role("admin"))
    install_ops(app, metrics, service.shares, admin)
    install_asking(app, service, reader, metrics)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/healthz", response_model=Health, tags=["service"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", **service.live.stats()}

    @app.get(
        "/v1/recommendations",
        response_model=RecommendationsOut,
        response_model_exclude_none=True,
        responses=ERRORS,
        dependencies=[reader],
        tags=["recommendations"],
    )
    async def recommendations(
        user_id: UserQuery,
        k: Annotated[int, Query(ge=1, le=100)] = 10,
        scenario: Annotated[str | None, Query(max_length=64)] = None,
        device: Annotated[str | None, Query(max_length=64)] = None,
        location: Annotated[str | None, Query(max_length=64)] = None,
        timestamp: Annotated[int | None, Query(ge=0, le=2**33)] = None,
        explain: bool = False,
        q: RequestText = None,
        rerank: Annotated[
            str | None,
            Query(
                max_length=32,
                pattern=r"^(mmr|calibrated|tail)[:=][0-9.]+$",
                description="post-ranking stage for this list: mmr:S, calibrated:S or tail:S "
                "(S in [0, 1]; default: the server's --rerank)",
            ),
        ] = None,
    ) -> dict[str, Any]:
        live = service.live_for(user_id)  # the same version every time while a split runs
        context = {C.DEVICE: device, C.LOCATION: location, C.SCENARIO: scenario}
        if timestamp is not None:
            context[C.TIMESTAMP] = str(timestamp)
        context = {c: v for c, v in context.items() if v}
        try:
            spec = RerankSpec.parse(rerank) if rerank else None
            if spec is not None and spec.strength > 0:
                live.check_rerank(spec)
        except ConfigError as e:
            raise ApiError(
                422, "invalid_request", str(e).replace("--rerank", "rerank"), "rerank"
            ) from None
        if q and q.strip():  # read and scored per request: never cached
            answer = await run_in_threadpool(live.ask, user_id, q, k)
            metrics.lists.labels("query").inc()
            return {
                "user_id": user_id,
                "items": items_out(answer.items),
                "model_version": live.version,
                "query": answer_json(answer),
            }
        items = live.cached(user_id, k, context, explain, spec)
        metrics.lists.labels("cache" if items is not None else "scored").inc()
        if items is None:  # scoring takes milliseconds: a worker thread, not the event loop
            items = await run_in_threadpool(live.recommend, user_id, k, context, explain, spec)
        out = {"user_id": user_id, "items": items_out(items), "model_version": live.version}
        logged = live.explorer is not None or service.split is not None
        if logged and items:  # exploring or A/B: logged durably before the list is shown
            out["impression_id"] = uuid.uuid4().hex
            rows = impression_rows(
                out["impression_id"], user_id, items, live.explorer, live.version
            )
            await run_in_threadpool(service.store.add_impressions, rows)
        return out

    @app.get(
        "/v1/users",
        response_model=UsersOut,
        responses=ERRORS,
        dependencies=[reader],
        tags=["users"],
    )
    def find_users(query: Search = "", limit: Limit = 20) -> dict[str, Any]:
        return {"users": service.live.find_users(query, limit)}

    @app.get(
        "/v1/users/{user_id}",
        response_model=UserOut,
        responses=ERRORS,
        dependencies=[reader],
        tags=["users"],
    )
    def get_user(
        user_id: PathID,
        limit: Annotated[int, Query(ge=0, le=1000, description="latest events shown")] = 50,
    ) -> dict[str, Any]:
        try:
            return service.live.user(user_id, limit)
        except UnknownUserError as e:
            raise ApiError(404, "not_found", str(e), "user_id") from None

    @app.get(
        "/v1/items",
        response_model=ItemsOut,
        response_model_exclude_none=True,
        responses=ERRORS,
        dependencies=[reader],
        tags=["items"],
    )
    def find_items(query: Search = "", limit: Limit = 20) -> dict[str, Any]:
        return {"items": service.live.find_items(query, limit)}

    @app.get(
        "/v1/context",
        response_model=ContextValues,
        responses=ERRORS,
        dependencies=[reader],
        tags=["recommendations"],
    )
    def context_values() -> dict[str, list[str]]:
        """The context values seen in the last 30 days of events (for pickers)."""
        return service.live.context_values()

    @app.get(
        "/v1/reports",
        response_model=ReportsOut,
        responses=ERRORS,
        dependencies=[reader],
        tags=["reports"],
    )
    def reports() -> dict[str, Any]:
        """The evaluation reports of `llmrec eval` (the server's `--reports` folder)."""
        return service.reports.latest()

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=EventsAccepted,
        responses=ERRORS,
        dependencies=[writer],
        tags=["events"],
    )
    def post_events(
        body: Annotated[
            EventIn | Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENTS)],
            Body(),
        ],
    ) -> dict[str, int]:
        batch = body if isinstance(body, list) else [body]

        def where(n: int) -> str:  # the field name of event n as the client sent it
            return f"body[{n}]" if isinstance(body, list) else "body"

        now = int(time.time())
        rows = []
        names = service.live.model.event_rules_.names
        for n, e in enumerate(batch):
            if e.event not in names:
                raise ApiError(
                    422,
                    "invalid_request",
                    f"unknown event {e.event!r}: use one of {', '.join(names)}",
                    f"{where(n)}.event",
                )
            if e.event == "rate" and e.value is None:
                raise ApiError(
                    422, "invalid_request", "a 'rate' event needs a value", f"{where(n)}.value"
                )
            ctx = e.context.model_dump() if e.context else {}
            rows.append(
                {
                    "event_id": e.event_id,
                    C.USER_ID: e.user_id,
                    C.ITEM_ID: e.item_id,
                    C.EVENT: e.event,
                    C.VALUE: e.value,
                    C.TIMESTAMP: e.timestamp if e.timestamp is not None else now,
                    **{c: ctx.get(c) for c in C.CONTEXT_COLUMNS},
                }
            )
        try:  # one transaction with the other requests waiting (group commit)
            stored = service.events.submit(rows)
        except UnknownItemError as ex:
            n = [r[C.ITEM_ID] for r in rows].index(ex.item_id)
            raise ApiError(422, "unknown_item", str(ex), f"{where(n)}.item_id") from None
        dup = sum(s.duplicate for s in stored)
        metrics.events.inc(len(stored) - dup)
        return {"stored": len(stored) - dup, "duplicates": dup}

    @app.put(
        "/v1/items/{item_id}",
        response_model=ItemStored,
        responses=ERRORS,
        dependencies=[writer],
        tags=["items"],
    )
    def put_item(item_id: PathID, item: ItemIn) -> dict[str, Any]:
        reserved = set(item.attributes) & set(ITEM_FIELDS)
        if reserved:
            name = sorted(reserved)[0]
            raise ApiError(
                422, "invalid_request", f"{name!r} is a field, not an attribute", "attributes"
            )
        row = {C.ITEM_ID: item_id, **item.model_dump()}
        with service.write_lock:
            created = item_id not in service.live.model.items_
            service.store.put_item(row)
            service.put_item(item_frame([row]))
        return {"item_id": item_id, "created": created}

    @app.get(
        "/v1/items/{item_id}/similar",
        response_model=SimilarOut,
        response_model_exclude_none=True,
        responses=ERRORS,
        dependencies=[reader],
        tags=["items"],
    )
    def similar(
        item_id: PathID,
        k: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        live = service.live
        try:
            items = live.similar(item_id, k)
        except UnknownItemError as e:
            raise ApiError(404, "not_found", str(e), "item_id") from None
        return {"item_id": item_id, "items": items_out(items), "model_version": live.version}

    @app.get(
        "/v1/explanations",
        response_model=ExplanationOut,
        responses=ERRORS,
        dependencies=[reader],
        tags=["recommendations"],
    )
    def explanation(
        user_id: UserQuery,
        item_id: Annotated[str, Query(min_length=1, max_length=128)],
        kind: Literal["explanation", "pitch"] = "explanation",
    ) -> dict[str, Any]:
        """Why an item suits a user, or a short personalised pitch for it (the service's
        recommendation text): the LLM's checked wording, or the template within the budget."""
        try:
            out = service.live_for(user_id).explain(user_id, item_id, kind)
        except UnknownItemError as e:
            raise ApiError(404, "not_found", str(e), "item_id") from None
        except UnknownUserError as e:
            raise ApiError(404, "not_found", str(e), "user_id") from None
        return {
            "user_id": user_id,
            "item_id": item_id,
            "kind": kind,
            "text": out.text,
            "source": out.source,
        }

    @app.delete(
        "/v1/users/{user_id}",
        response_model=UserDeleted,
        responses=ERRORS,
        dependencies=[writer],
        tags=["users"],
    )
    def delete_user(
        user_id: PathID,
    ) -> dict[str, Any]:
        n = service.delete_user(user_id)
        return {"user_id": user_id, "deleted_events": n}

    install_admin(app, service, admin)
    install_activity(app, service, reader, metrics)
    event_names_in_schema(app, lambda: list(service.live.model.event_rules_.names))
    swallow_handled_errors(app)
    return app
