"""The ranker's features for every user's candidates, as Parquet: what its second stage
scores (and, with labels joined, what it learns from), for analysis or training elsewhere.

Each row is one (user, candidate) pair at the user's latest request: the candidate's
position in the merged retriever lists, then every feature column the ranker was trained
with, in its order.
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
from llmrec.ranking.ranker import Ranker


class RankerFeatureBatch:
    """One partition of users -> their candidates' feature rows."""

    def __init__(self, model: Ranker) -> None:
        self.model: Ranker = resolve(model)

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        m = self.model
        idx = batch["user_idx"].to_numpy(np.int64)
        cand, x, names, _ = m.candidates(idx)
        rows, cols = np.nonzero(cand >= 0)
        columns = {
            C.USER_ID: pa.array(m.users_.ids[idx[rows]]),
            "position": pa.array(cols, pa.int32()),
            C.ITEM_ID: pa.array(m.items_.ids[cand[rows, cols]]),
        }
        columns.update({n: pa.array(x[:, j], pa.float32()) for j, n in enumerate(names)})
        return pa.table(columns)


def ranker_features(model: Ranker | str | Path, out: Path, run: Run | None = None) -> JobResult:
    """Candidates and features of every user of a saved ranker into ``out``."""
    run = run or Run()
    if not isinstance(model, Recommender):
        model = Recommender.load(model)
    if not isinstance(model, Ranker):
        raise LlmrecError(f"features are the ranker's: this model is {model.name!r}")
    model._check_fitted()
    n = len(model.users_)
    params = {"model": model.name, "features": list(model.feature_names_), "users": n}
    return run_job(
        "features",
        pd.DataFrame({"user_idx": np.arange(n)}),
        RankerFeatureBatch,
        {},
        out,
        run,
        shared={"model": model},
        params=params,
    )
