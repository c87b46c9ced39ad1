"""``GET /v1/activity``: what the web page's Dashboard shows — events and active users per day
(the training events and every event since, as the live model holds them), the lists served
since the server started, logged impressions and their click-through per day, and the model
versions answering. Counts only: no user or item id leaves this route."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from llmrec.data import columns as C
from llmrec.online.feedback import rewards
from llmrec.service.ops import Metrics

DAY = 86_400


class DayCounts(BaseModel):
    day: str  # YYYY-MM-DD (UTC)
    events: int
    users: int  # distinct users with an event that day
    by_event: dict[str, int]


class DayImpressions(BaseModel):
    day: str
    lists: int
    shown: int
    clicked: int  # shown items the user acted on within the horizon (as `llmrec ope` counts)


class ActivityOut(BaseModel):
    model_versions: dict[str, float]  # version -> share of users it answers
    lists_served: dict[str, int]  # since the server started: cache | scored | query
    days: list[DayCounts]  # the last `days` days up to the latest event, oldest first
    impressions: list[DayImpressions]  # empty unless the service explores or runs an A/B test


def daily_events(log: pd.DataFrame, days: int) -> list[dict[str, Any]]:
    """Events and distinct users per UTC day over the ``days`` days ending at the latest
    event (days without events included, as zeros)."""
    if log.empty:
        return []
    day = log[C.TIMESTAMP].to_numpy(np.int64) // DAY
    last = int(day.max())
    keep = day > last - days
    frame = pd.DataFrame(
        {
            "day": day[keep],
            "user": log[C.USER_ID].to_numpy()[keep],
            "event": log[C.EVENT].to_numpy()[keep],
        }
    )
    totals = frame.groupby("day").agg(events=("user", "size"), users=("user", "nunique"))
    kinds = frame.groupby(["day", "event"]).size()
    out = []
    for d in range(max(last - days + 1, int(day.min())), last + 1):
        row = totals.loc[d] if d in totals.index else None
        by_event = {str(e): int(n) for e, n in kinds.loc[d].items()} if row is not None else {}
        out.append(
            {
                "day": _iso(d),
                "events": int(row["events"]) if row is not None else 0,
                "users": int(row["users"]) if row is not None else 0,
                "by_event": by_event,
            }
        )
    return out


def daily_impressions(
    impressions: pd.DataFrame, events: pd.DataFrame, days: int, horizon: int = 3600
) -> list[dict[str, Any]]:
    """Lists, shown items and clicked shown items per UTC day, last ``days`` days."""
    if impressions.empty:
        return []
    clicked = rewards(impressions, events, horizon)
    day = impressions[C.TIMESTAMP].to_numpy(np.int64) // DAY
    frame = pd.DataFrame(
        {"day": day, "list": impressions["impression_id"].to_numpy(), "clicked": clicked}
    )
    frame = frame[frame["day"] > day.max() - days]
    per = frame.groupby("day").agg(
        lists=("list", "nunique"), shown=("list", "size"), clicked=("clicked", "sum")
    )
    return [
        {
            "day": _iso(int(d)),
            "lists": int(r.lists),
            "shown": int(r.shown),
            "clicked": int(r.clicked),
        }
        for d, r in per.iterrows()
    ]


def lists_served(metrics: Metrics) -> dict[str, int]:
    out = {"cache": 0, "scored": 0, "query": 0}
    for family in metrics.lists.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                out[s.labels["source"]] = int(s.value)
    return out


def _iso(day: int) -> str:
    return str(np.datetime64(day, "D"))
