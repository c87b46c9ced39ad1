"""What the routes depend on: the app's ``Service`` and ``Metrics`` (set on ``app.state`` by
``create_app``) and the API-key roles. Module-level, so the routers in ``routes/`` are plain
``APIRouter``s rather than closures over one app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmrec.service.errors import ApiError
from llmrec.service.keys import Key
from llmrec.service.ops import Metrics
from llmrec.service.serving import MISSING, Service

bearer = HTTPBearer(auto_error=False, description="an API key from `llmrec keys create`")


# async: FastAPI runs plain functions in a worker thread, a hop per request for an attribute
async def get_service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(get_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def role(needed: str) -> Callable[..., Awaitable[Key]]:
    """A dependency that lets a request through with a key whose role can ``needed`` (read,
    write, admin) and within the key's rate: else 401, 403 or 429."""

    async def check(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Key:
        service: Service = request.app.state.service
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
        if service.follower is not None:  # replicas: others' writes first (a store query)
            await run_in_threadpool(service.follow)
        return key

    return check


READ, WRITE, ADMIN = Depends(role("read")), Depends(role("write")), Depends(role("admin"))
