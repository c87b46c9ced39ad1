"""``POST /v1/recommendations``: a request in words as a conversation. Each answer carries a
``conversation_id``; a follow-up with it refines the request ("more like the second one",
"no horror", "older") or drops chips. The state lives in the events store with the user's id:
deleting the user deletes it, and it expires after ``CONVERSATION_TTL`` idle seconds."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from llmrec.service.asking import answer_json
from llmrec.service.deps import READ, MetricsDep, ServiceDep
from llmrec.service.errors import ApiError
from llmrec.service.schemas import ERRORS, AskIn, RecommendationsOut, items_out

CONVERSATION_TTL = 3600.0  # seconds a conversation waits for its next turn


router = APIRouter(responses=ERRORS, tags=["recommendations"])


@router.post(
    "/v1/recommendations",
    response_model=RecommendationsOut,
    response_model_exclude_none=True,
    dependencies=[READ],
)
async def ask(service: ServiceDep, metrics: MetricsDep, body: AskIn) -> dict[str, Any]:
    """A request in words blended with the user's history, or a follow-up to a
    conversation (``conversation_id`` of a previous answer)."""
    if service.follower is not None:  # a store query: not on the event loop
        await run_in_threadpool(service.follow)
    store, live = service.store, service.live_for(body.user_id, follow=False)
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
