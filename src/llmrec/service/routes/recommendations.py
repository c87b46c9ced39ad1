"""``GET /v1/recommendations`` (a list, from the cache or scored; with ``q``, a request in
words), ``POST /v1/recommendations`` (a request in words as a conversation), the context
values for pickers and explanations of one item.

A conversation: each answer carries a ``conversation_id``; a follow-up with it refines the
request ("more like the second one", "no horror", "older") or drops chips. The state lives in
the events store with the user's id: deleting the user deletes it, and it expires after
``CONVERSATION_TTL`` idle seconds."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from llmrec.data import columns as C
from llmrec.errors import ConfigError
from llmrec.online.feedback import impression_rows
from llmrec.rerank import RerankSpec
from llmrec.service.asking import answer_json
from llmrec.service.deps import READ, MetricsDep, ServiceDep
from llmrec.service.errors import ApiError, UnknownItemError, UnknownUserError
from llmrec.service.schemas import (
    ERRORS,
    AskIn,
    ContextValues,
    ExplanationOut,
    RecommendationsOut,
    RequestText,
    UserQuery,
    items_out,
)

CONVERSATION_TTL = 3600.0  # seconds a conversation waits for its next turn

router = APIRouter(responses=ERRORS, tags=["recommendations"])


@router.get(
    "/v1/recommendations",
    response_model=RecommendationsOut,
    response_model_exclude_none=True,
    dependencies=[READ],
)
async def recommendations(
    service: ServiceDep,
    metrics: MetricsDep,
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
        rows = impression_rows(out["impression_id"], user_id, items, live.explorer, live.version)
        await run_in_threadpool(service.store.add_impressions, rows)
    return out


@router.get("/v1/context", response_model=ContextValues, dependencies=[READ])
def context_values(service: ServiceDep) -> dict[str, list[str]]:
    """The context values seen in the last 30 days of events (for pickers)."""
    return service.live.context_values()


@router.get("/v1/explanations", response_model=ExplanationOut, dependencies=[READ])
def explanation(
    service: ServiceDep,
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


@router.post(
    "/v1/recommendations",
    response_model=RecommendationsOut,
    response_model_exclude_none=True,
    dependencies=[READ],
)
async def ask(service: ServiceDep, metrics: MetricsDep, body: AskIn) -> dict[str, Any]:
    """A request in words blended with the user's history, or a follow-up to a
    conversation (``conversation_id`` of a previous answer)."""
    store, live = service.store, service.live_for(body.user_id)
    state = None
    if body.conversation_id is not None:
        state = await run_in_threadpool(
            store.conversation, body.conversation_id, body.user_id, CONVERSATION_TTL
        )
        if state is None:  # unknown, another user's, or expired: all look the same
            raise ApiError(
                404, "not_found", "no such conversation (it may have expired)",
                "body.conversation_id",
            )  # fmt: skip
    remove = [c.model_dump(exclude_none=True) for c in body.remove]
    call: Callable[[], Any] = lambda: live.ask(body.user_id, body.q, body.k, state, remove)  # noqa: E731
    answer = await run_in_threadpool(call)
    metrics.lists.labels("query").inc()
    conversation_id = body.conversation_id or uuid.uuid4().hex
    await run_in_threadpool(
        store.save_conversation, conversation_id, body.user_id, answer.state, CONVERSATION_TTL
    )
    return {
        "user_id": body.user_id,
        "items": items_out(answer.items),
        "model_version": live.version,
        "query": answer_json(answer),
        "conversation_id": conversation_id,
    }
