"""``GET /v1/activity``: the Dashboard's counts per day (``service.activity`` computes them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from llmrec.service.activity import (
    DAY,
    ActivityOut,
    daily_events,
    daily_impressions,
    lists_served,
)
from llmrec.service.deps import READ, MetricsDep, ServiceDep
from llmrec.service.schemas import ERRORS

router = APIRouter(responses=ERRORS, tags=["service"])


@router.get("/v1/activity", response_model=ActivityOut, dependencies=[READ])
async def activity(
    service: ServiceDep, metrics: MetricsDep, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, Any]:
    """Counts per day for the Dashboard: events, active users, logged impressions and
    their click-through; lists served since start; the versions answering."""

    def compute() -> dict[str, Any]:
        log = service.live.event_log()
        store = service.store
        # only the days shown are read: the impressions of the window, and the events since
        # its start (a click after an impression of the window counts for it)
        last = store.last_impression_time()
        shown: list[dict[str, Any]] = []
        if last is not None:
            start = (last // DAY - days + 1) * DAY
            window = store.impressions_since(0, since_ts=start)
            shown = daily_impressions(window, store.events_since(0, since_ts=start), days)
        return {
            "model_versions": service.shares(),
            "lists_served": lists_served(metrics),
            "days": daily_events(log, days),
            "impressions": shown,
        }

    return await run_in_threadpool(compute)
