"""ASGI middleware: the access log without ids, the body limit and timeout, and
back-pressure (bounded work in flight: past the limit, 503 with ``Retry-After`` at once instead
of an unbounded queue; health checks and static files are never refused)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmrec.config import SERVE
from llmrec.service.errors import error_response

if TYPE_CHECKING:
    from llmrec.service.ops import Metrics

log = logging.getLogger("llmrec.service")
MAX_BODY = SERVE.max_body  # bytes
MAX_IN_FLIGHT = SERVE.max_in_flight  # requests being served at once; more get 503 + Retry-After
BODY_TIMEOUT = SERVE.body_timeout  # seconds a client may take between two parts of its body


class AccessLog:
    """One line per request: method, route template (no ids), status, time, key id; and the
    same facts into ``metrics`` (``ops.Metrics``) when given, so one wrapper times a request."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app, self.metrics = app, metrics

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

        if self.metrics is not None:
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", "?")  # the template: no ids
            seconds = time.perf_counter() - t0
            log.info(
                "%s %s %d %.1fms key=%s",
                scope["method"],
                route,
                status,
                seconds * 1000,
                scope.get("state", {}).get("key_id", "-"),
            )
            if self.metrics is not None:
                self.metrics.in_flight.dec()
                self.metrics.requests.labels(scope["method"], route, str(status)).inc()
                self.metrics.latency.labels(route).observe(seconds)


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
            await error_response(413, "too_large", f"request body over {self.limit} bytes")(
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
                await error_response(408, "timeout", f"no body data for {self.timeout:g} s")(
                    scope, receive, send
                )
                return
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await error_response(413, "too_large", f"request body over {self.limit} bytes")(
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


EXEMPT = ("/healthz", "/metrics", "/web", "/static")


class InFlightLimit:
    def __init__(self, app: ASGIApp, limit: int, refuse: Callable[[], ASGIApp]) -> None:
        self.app, self.limit, self.refuse = app, limit, refuse
        self.in_flight = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(EXEMPT):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self.refuse()(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
