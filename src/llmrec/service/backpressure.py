"""Back-pressure and slow clients: bounded work in flight, bounded time to send a body.

Past ``limit`` requests in flight a request is answered at once with 503 and ``Retry-After``
instead of joining an unbounded queue (200 concurrent uncached requests used to wait 4-6 s
each, all accepted). Health checks and the web page's static files are never refused, so a
load balancer can tell a busy server from a dead one.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

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
