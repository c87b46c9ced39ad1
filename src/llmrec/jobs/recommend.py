"""Batch recommendation: top-k for every user of a saved model, as Parquet.

The model is loaded once by the driver and shared (Ray: put in the object store once, each
actor fetches it); users are partitioned in index order. The lists are exactly
``Recommender.recommend``'s: same exclusion of seen items, same tie order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from llmrec.data import columns as C
from llmrec.errors import LlmrecError
from llmrec.jobs.engine import JobResult, Run, resolve, run_job
from llmrec.models.base import Recommender

SCHEMA = pa.schema(
    [
        (C.USER_ID, pa.string()),
        ("rank", pa.int32()),
        (C.ITEM_ID, pa.string()),
        ("score", pa.float64()),
        ("source", pa.string()),
    ]
)


class TopKBatch:
    """One partition of users (a ``user_idx`` column) -> their lists, one row per item."""

    def __init__(self, model: Recommender, k: int, exclude_seen: bool) -> None:
        self.model: Recommender = resolve(model)
        self.k, self.exclude_seen = k, exclude_seen

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        m = self.model
        idx = batch["user_idx"].to_numpy(np.int64)
        top = m.top_k(idx, self.k, self.exclude_seen)
        rank = np.arange(len(top.row)) - np.searchsorted(top.row, top.row) + 1
        sources = top.sources if top.sources is not None else [m.name] * len(top.row)
        return pa.table(
            [
                pa.array(m.users_.ids[idx[top.row]]),
                pa.array(rank, pa.int32()),
                pa.array(m.items_.ids[top.item_idx]),
                pa.array(top.score, pa.float64()),
                pa.array(sources, pa.string()),
            ],
            schema=SCHEMA,
        )


def batch_recommend(
    model: Recommender | str | Path,
    out: Path,
    run: Run | None = None,
    k: int = 10,
    exclude_seen: bool = True,
    users: list[str] | None = None,
) -> JobResult:
    """Top-``k`` for ``users`` (default: every user the model knows) into ``out``."""
    run = run or Run()
    if k < 1:
        raise LlmrecError("k must be at least 1")
    if not isinstance(model, Recommender):
        model = Recommender.load(model)
    model._check_fitted()
    if users is None:
        idx = np.arange(len(model.users_))
    else:
        idx = model.users_.index(users)
        if (idx < 0).any():
            missing = [u for u, i in zip(users, idx, strict=True) if i < 0][:5]
            raise LlmrecError(f"unknown user ids: {', '.join(missing)}")
    params = {"model": model.name, "k": k, "exclude_seen": exclude_seen, "users": len(idx)}
    return run_job(
        "recommend",
        pd.DataFrame({"user_idx": idx}),
        TopKBatch,
        {"k": k, "exclude_seen": exclude_seen},
        out,
        run,
        shared={"model": model},
        params=params,
    )
