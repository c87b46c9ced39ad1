"""``POST /v1/events``: one event or a batch, answered 202 once durable (group commit)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import Field

from llmrec.data import columns as C
from llmrec.service.deps import WRITE, MetricsDep, ServiceDep
from llmrec.service.errors import ApiError, UnknownItemError
from llmrec.service.schemas import ERRORS, MAX_EVENTS, EventIn, EventsAccepted

router = APIRouter(responses=ERRORS, tags=["events"])


@router.post("/v1/events", status_code=202, response_model=EventsAccepted, dependencies=[WRITE])
def post_events(
    service: ServiceDep,
    metrics: MetricsDep,
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
