"""``GET /v1/activity``: the Dashboard's counts per day (``service.activity`` computes them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from llmrec.service.activity import ActivityOut, daily_events, daily_impressions, lists_served
from llmrec.service.deps import READ, MetricsDep, ServiceDep
from llmrec.service.schemas import ERRORS

router = APIRouter()


@router.get(
    "/v1/activity",
    response_model=ActivityOut,
    responses=ERRORS,
    dependencies=[READ],
    tags=["service"],
)
async def activity(
    service: ServiceDep, metrics: MetricsDep, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, Any]:
    """Counts per day for the Dashboard: events, active users, logged impressions and
    their click-through; lists served since start; the versions answering."""

    def compute() -> dict[str, Any]:
        log = service.live.event_log()
        store = service.store
        # the whole table: a page refresh, not a hot path
        impressions = store.impressions_since(0)
        acted = store.events_since(0) if not impressions.empty else log.iloc[:0]
        return {
            "model_versions": service.shares(),
            "lists_served": lists_served(metrics),
            "days": daily_events(log, days),
            "impressions": daily_impressions(impressions, acted, days),
        }

    return await run_in_threadpool(compute)
