"""The HTTP API (DESIGN.md, v1): recommendations, events, items, users, admin.

Every client mistake is a JSON error ``{"error": {"code", "message", "field"?}}`` with a
4xx status; a 500 means a bug. Access logs carry the route, status, time and key id, never
user or item ids.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmrec.data import columns as C
from llmrec.errors import LlmrecError
from llmrec.online.feedback import impression_rows
from llmrec.service.backpressure import InFlightLimit
from llmrec.service.keys import Key, digest, lookup
from llmrec.service.live import LiveModel, Recommended, UnknownItemError, UnknownUserError
from llmrec.service.redaction import log_internal, swallow_handled_errors
from llmrec.service.reports import Reports
from llmrec.service.store import ITEM_FIELDS, Store, item_frame

log = logging.getLogger("llmrec.service")
MISSING = object()
WEB = Path(__file__).parent / "web"  # the page's static files (no key needed, no CDN)

MAX_BODY = 1 << 20  # bytes
MAX_IN_FLIGHT = 64  # requests being served at once; more get 503 + Retry-After
BODY_TIMEOUT = 30.0  # seconds a client may take between two parts of its body
MAX_EVENTS = 1000  # per request
ID = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
Short = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]
# no control characters in anything stored or shown: PostgreSQL refuses NUL in text (a 500
# before this), and a terminal or log reader should not get escape sequences
PathID = Annotated[str, PathParam(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Title = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]+$")]
# free text keeps tabs and line breaks
Text = Annotated[str, Field(max_length=10_000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
Search = Annotated[str, Query(max_length=128, description="part of the id (or title)")]
Limit = Annotated[int, Query(ge=1, le=100)]
UserQuery = Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(message)


# --- schemas -----------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Context(Strict):
    device: Short | None = None
    location: Short | None = None
    scenario: Short | None = None


class EventIn(Strict):
    user_id: ID
    item_id: ID
    event: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="a built-in type (" + ", ".join(C.EVENTS) + ") or a custom name the "
        "served dataset declares (e.g. add_to_cart)",
    )
    value: float | None = Field(None, ge=-1e6, le=1e6, description="the rating for 'rate'")
    timestamp: int | None = Field(None, ge=0, le=2**33, description="unix seconds; now if absent")
    event_id: ID | None = Field(None, description="makes a retry idempotent")
    context: Context | None = None


class EventsAccepted(BaseModel):
    stored: int
    duplicates: int


class ItemIn(Strict):
    title: Title
    text: Text | None = None
    genres: Annotated[list[Short], Field(max_length=20)] = []
    year: int | None = Field(None, ge=0, le=3000)
    attributes: Annotated[
        dict[
            Short,
            Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
            | int
            | float
            | bool,
        ],
        Field(max_length=20),
    ] = {}


class ItemOut(BaseModel):
    item_id: str
    score: float
    title: str
    explanation: str | None = None
    source: str | None = Field(
        None, description="the retriever (or cold-start rule) that proposed the item"
    )
    explanation_source: Literal["llm", "template"] | None = Field(
        None,
        description="who wrote the explanation: the LLM (checked) or the template (the LLM is "
        "off, failed a check, or was not ready within the budget)",
    )
    propensity: float | None = Field(
        None,
        description="exploring service: the probability that this item is shown at this "
        "position (logged with the impression)",
    )
    explored: bool | None = Field(
        None, description="exploring service: the position shows an item from below the list"
    )


class ExplanationOut(BaseModel):
    user_id: str
    item_id: str
    kind: Literal["explanation", "pitch"]
    text: str
    source: Literal["llm", "template"]


class RecommendationsOut(BaseModel):
    user_id: str
    items: list[ItemOut]
    model_version: str
    impression_id: str | None = Field(
        None, description="exploring service: the id under which this list was logged"
    )


class SimilarOut(BaseModel):
    item_id: str
    items: list[ItemOut]
    model_version: str


class UserHit(BaseModel):
    user_id: str
    events: int


class UsersOut(BaseModel):
    users: list[UserHit]


class HistoryEvent(BaseModel):
    item_id: str
    title: str
    event: str
    value: float | None = None
    timestamp: int


class UserOut(BaseModel):
    user_id: str
    profile: dict[str, str | int | float | bool]
    events: int
    history: list[HistoryEvent]


class CatalogueItem(BaseModel):
    item_id: str
    title: str
    genres: list[str] = []
    year: int | None = None
    events: int


class ItemsOut(BaseModel):
    items: list[CatalogueItem]


class ContextValues(BaseModel):
    device: list[str]
    location: list[str]
    scenario: list[str]


class ReportModel(BaseModel):
    model: str
    metrics: dict[str, float]
    params: dict[str, Any]
    fit_seconds: float | None
    valid_ndcg_10: float | None = Field(alias="valid_ndcg@10")


class Report(BaseModel):
    name: str
    dataset: str
    protocol: str
    n_users: int | None
    n_items: int | None
    modified: int
    models: list[ReportModel]


class ReportProblem(BaseModel):
    file: str
    message: str


class ReportsOut(BaseModel):
    folder: str
    metrics: list[str]
    reports: list[Report]
    problems: list[ReportProblem]


class ItemStored(BaseModel):
    item_id: str
    created: bool


class UserDeleted(BaseModel):
    user_id: str
    deleted_events: int


class Reload(Strict):
    model_dir: Annotated[str, Field(min_length=1, max_length=4096)] | None = None


class Health(BaseModel):
    status: str
    model_version: str
    users: int
    items: int
    events: int
    live_events: int


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut} for s in (400, 401, 403, 404, 408, 409, 413, 422, 429, 503)
}


# --- the application ---------------------------------------------------------------------
class Service:
    """What the routes share: the store, the live model (swapped whole on reload), keys."""

    def __init__(
        self,
        store: Store,
        model_dir: Path,
        reports_dir: Path = Path("reports"),
        **live_options: Any,
    ) -> None:
        self.store = store
        self.reports = Reports(reports_dir)
        self.model_dir = Path(model_dir)
        self.live_options = live_options
        self.live = LiveModel(self.model_dir, store, **live_options)
        self.write_lock = threading.Lock()  # store commit + live apply, atomic w.r.t. reload
        self._keys: dict[str, tuple[Key | None, float]] = {}
        self._buckets: dict[int, tuple[float, float]] = {}
        self._bucket_lock = threading.Lock()

    def cached_key(self, secret: str) -> Key | None | object:
        """The key from memory, or ``MISSING`` when it must be read from the store."""
        hit = self._keys.get(digest(secret))
        if hit is None or hit[1] < time.monotonic():
            return MISSING
        return hit[0]

    def key(self, secret: str) -> Key | None:
        """Keys are re-read after 5 s, so a revocation takes effect within 5 s."""
        hit = self.cached_key(secret)
        if hit is not MISSING:
            return hit  # type: ignore[return-value]
        key = lookup(self.store, secret)
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[digest(secret)] = (key, time.monotonic() + 5.0)
        return key

    def allow(self, key: Key) -> float | None:
        """Token bucket per key (capacity = one second's worth): None, or seconds to wait."""
        if key.rate_limit <= 0:
            return None
        now = time.monotonic()
        with self._bucket_lock:
            tokens, last = self._buckets.get(key.id, (key.rate_limit, now))
            tokens = min(key.rate_limit, tokens + (now - last) * key.rate_limit)
            if tokens < 1.0:
                self._buckets[key.id] = (tokens, now)
                return (1.0 - tokens) / key.rate_limit
            self._buckets[key.id] = (tokens - 1.0, now)
            return None

    def reload(self, model_dir: Path | None = None) -> str:
        """Load the new model beside the old, which keeps answering reads, then swap.
        Writes wait for the load (seconds): the new model then starts from exactly what the
        store holds (events, items, deletions) and none of them can fall between the two."""
        target = Path(model_dir) if model_dir else self.model_dir
        with self.write_lock:
            fresh = LiveModel(target, self.store, **self.live_options)
            old, self.live, self.model_dir = self.live, fresh, target
            old.close()
        return fresh.version


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
        description="Real-time recommendations; see the README's HTTP API section.",
    )
    app.state.service = service
    _errors(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY, timeout=body_timeout)
    app.add_middleware(
        InFlightLimit,
        limit=max_in_flight,
        refuse=lambda: _error(503, "overloaded", "too many requests in flight: retry shortly"),
    )

    app.add_middleware(AccessLog)

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
    ) -> dict[str, Any]:
        live = service.live
        context = {C.DEVICE: device, C.LOCATION: location, C.SCENARIO: scenario}
        if timestamp is not None:
            context[C.TIMESTAMP] = str(timestamp)
        context = {c: v for c, v in context.items() if v}
        items = live.cached(user_id, k, context, explain)
        if items is None:  # scoring takes milliseconds: a worker thread, not the event loop
            items = await run_in_threadpool(live.recommend, user_id, k, context, explain)
        out = {"user_id": user_id, "items": _items(items), "model_version": live.version}
        if live.explorer is not None and items:  # logged durably before the list is shown
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
        with service.write_lock:
            live = service.live
            try:
                live.check_items([r[C.ITEM_ID] for r in rows])
            except UnknownItemError as ex:
                n = [r[C.ITEM_ID] for r in rows].index(ex.item_id)
                raise ApiError(422, "unknown_item", str(ex), f"{where(n)}.item_id") from None
            stored = service.store.add_events(rows)
            fresh = [
                {**r, "seq": s.seq} for r, s in zip(rows, stored, strict=True) if not s.duplicate
            ]
            live.add_events(fresh)
        dup = sum(s.duplicate for s in stored)
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
            service.live.put_item(item_frame([row]))
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
        return {"item_id": item_id, "items": _items(items), "model_version": live.version}

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
            out = service.live.explain(user_id, item_id, kind)
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
        with service.write_lock:
            n = service.store.delete_user(user_id)
            service.live.delete_user(user_id)
        return {"user_id": user_id, "deleted_events": n}

    @app.post(
        "/v1/admin/reload",
        responses=ERRORS,
        dependencies=[admin],
        tags=["admin"],
    )
    def reload(body: Reload | None = None) -> dict[str, str]:
        target = Path(body.model_dir) if body and body.model_dir else None
        try:
            version = service.reload(target)
        except LlmrecError as e:
            raise ApiError(422, "invalid_model", str(e), "model_dir") from None
        return {"model_version": version}

    _event_names_in_schema(app, service)
    swallow_handled_errors(app)
    return app


def _event_names_in_schema(app: FastAPI, service: Service) -> None:
    """The OpenAPI document lists the served model's event names (built-in and declared) as
    ``EventIn.event``'s enum, so clients and fuzzers see what the 422 check accepts; read at
    each call, since a reload may bring a dataset with other declared names."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        props = schema.get("components", {}).get("schemas", {}).get("EventIn", {})
        event = props.get("properties", {}).get("event")
        if event is not None:
            event["enum"] = list(service.live.model.event_rules_.names)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _items(items: list[Recommended]) -> list[dict[str, Any]]:
    return [
        {
            "item_id": r.item_id,
            "score": r.score,
            "title": r.title,
            "explanation": r.explanation,
            "source": r.source,
            "explanation_source": r.explanation_source,
            "propensity": r.propensity,
            "explored": r.explored,
        }
        for r in items
    ]


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_CODES = {
    408: "timeout",
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.code, e.message, e.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = sorted(e.errors(), key=lambda x: x.get("type") in _WRONG_BRANCH)
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            pos = first["loc"][-1] if first.get("loc") else "?"
            return _error(422, "invalid_json", f"the body is not valid JSON (at {pos})", "body")
        return _error(422, "invalid_request", str(first["msg"]), _field(first.get("loc", ())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(e.status_code, "error")
        response = _error(e.status_code, code, str(e.detail))
        response.headers.update(e.headers or {})  # e.g. Allow on a 405
        return response

    @app.exception_handler(LlmrecError)
    async def user_error(_: Request, e: LlmrecError) -> JSONResponse:
        return _error(400, "bad_request", str(e))

    @app.exception_handler(Exception)
    async def bug(_: Request, e: Exception) -> JSONResponse:
        log_internal(log, e)  # type and place only: messages can quote client data
        return _error(500, "internal", "internal error")


# errors from the union branch that does not match the body's type (object vs list)
_WRONG_BRANCH = {"model_attributes_type", "list_type", "model_type", "dict_type"}


_UNION_TAGS = {"constrained-str", "str", "int", "float", "bool"}


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """("body", 0, "item_id") -> "body[0].item_id"; ("query", "k") -> "k"."""
    parts = list(loc)
    if parts and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    if len(parts) > 1 and parts[-1] in _UNION_TAGS:  # which branch of a union: not a field
        parts = parts[:-1]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p not in ("list[EventIn]", "EventIn", "function-after[...]"):
            out += f".{p}" if out else str(p)
    return out or None


class AccessLog:
    """One line per request: method, route template (no ids), status, time, key id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            log.info(
                "%s %s %d %.1fms key=%s",
                scope["method"],
                getattr(route, "path", "?"),  # the template: no ids in the log
                status,
                (time.perf_counter() - t0) * 1000,
                scope.get("state", {}).get("key_id", "-"),
            )


class BodyLimit:
    """413 for a request body over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float = BODY_TIMEOUT) -> None:
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _error(413, "too_large", f"request body over {self.limit} bytes")(
                scope, receive, send
            )
            return
        # a streamed (chunked) body is read here, up to the limit, before any route sees it:
        # raised inside a route's body parsing, the 413 would surface as FastAPI's 400
        body, more = bytearray(), True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:  # a slow (or stalled) client holds a connection, not a worker
                await _error(408, "timeout", f"no body data for {self.timeout:g} s")(
                    scope, receive, send
                )
                return
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _error(413, "too_large", f"request body over {self.limit} bytes")(
                    scope, receive, send
                )
                return
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)
