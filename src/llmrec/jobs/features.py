"""The ranker's features for every user's candidates, as Parquet: what its second stage
scores and, with labels, training data for a ranker fitted elsewhere.

Each row is one (user, candidate) pair at the user's latest request: the candidate's
position in the merged retriever lists, with ``labels`` a ``label`` column (1 when the
(user, item) pair is among them: the events that followed the model's, say), then every
feature column the ranker was trained with, in its order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from llmrec.data import columns as C
from llmrec.data.importer import pairs
from llmrec.errors import DataError, LlmrecError
from llmrec.jobs.engine import JobResult, Run, resolve, run_job
from llmrec.models.base import Recommender
from llmrec.ranking.ranker import Ranker


class RankerFeatureBatch:
    """One partition of users -> their candidates' feature rows."""

    def __init__(self, model: Ranker, labels: sp.csr_matrix | None = None) -> None:
        self.model: Ranker = resolve(model)
        self.labels: sp.csr_matrix | None = resolve(labels)

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        m = self.model
        idx = batch["user_idx"].to_numpy(np.int64)
        cand, x, names, _ = m.candidates(idx)
        rows, cols = np.nonzero(cand >= 0)
        items = cand[rows, cols]
        columns = {
            C.USER_ID: pa.array(m.users_.ids[idx[rows]]),
            "position": pa.array(cols, pa.int32()),
            C.ITEM_ID: pa.array(m.items_.ids[items]),
        }
        if self.labels is not None:
            hit = np.asarray(self.labels[idx[rows], items]).ravel()
            columns["label"] = pa.array(hit.astype(np.int8), pa.int8())
        columns.update({n: pa.array(x[:, j], pa.float32()) for j, n in enumerate(names)})
        return pa.table(columns)


def label_matrix(
    model: Recommender, labels: pd.DataFrame, source: str = "labels"
) -> tuple[sp.csr_matrix, dict[str, int]]:
    """Users x items of ``model``: 1 where a (user_id, item_id) row of ``labels`` names a
    known user and item. Rows naming an id the model lacks (a user or item newer than it)
    are counted, not kept; a file that names none it knows is an error."""
    labels = pairs(labels, source)
    u = model.users_.index(labels[C.USER_ID])
    i = model.items_.index(labels[C.ITEM_ID])
    known = (u >= 0) & (i >= 0)
    if not known.any():
        raise DataError(
            f"none of its {len(labels):,} rows names a user and an item the model knows "
            f"(first: user {labels[C.USER_ID].iloc[0]!r}, item {labels[C.ITEM_ID].iloc[0]!r})",
            file=source,
        )
    n_items = len(model.items_)
    cell = np.unique(u[known] * n_items + i[known])  # a pair listed twice is one label
    m = sp.csr_matrix(
        (np.ones(len(cell), np.int8), (cell // n_items, cell % n_items)),
        shape=(len(model.users_), n_items),
    )
    seen = int(m.multiply(model.history_ != 0).nnz)  # never candidates: seen items are excluded
    counts = {
        "label_rows": len(labels),
        "label_pairs": len(cell),
        "label_pairs_seen": seen,
        "label_pairs_unseen": len(cell) - seen,
    }
    return m, counts


def ranker_features(
    model: Ranker | str | Path,
    out: Path,
    run: Run | None = None,
    labels: pd.DataFrame | None = None,
    labels_source: str = "labels",
) -> JobResult:
    """Candidates and features of every user of a saved ranker into ``out``; with
    ``labels`` (user_id, item_id rows) a ``label`` column, and in ``_job.json`` how many
    label pairs the candidates hold (the first stage's recall of them)."""
    run = run or Run()
    if not isinstance(model, Recommender):
        model = Recommender.load(model)
    if not isinstance(model, Ranker):
        raise LlmrecError(f"features are the ranker's: this model is {model.name!r}")
    model._check_fitted()
    n = len(model.users_)
    params: dict[str, object] = {
        "model": model.name,
        "features": list(model.feature_names_),
        "users": n,
    }
    shared: dict[str, object] = {"model": model}
    summary: tuple[list[str], Callable[[list[pa.Table]], dict[str, object]]] | None = None
    if labels is not None:
        matrix, counts = label_matrix(model, labels, labels_source)
        params |= {"labels": labels_source, **counts}
        shared["labels"] = matrix
        unseen = counts["label_pairs_unseen"]

        def recall(parts: list[pa.Table]) -> dict[str, object]:
            hits = sum(int(pc.sum(t["label"]).as_py() or 0) for t in parts)
            return {
                "labelled_candidates": hits,
                "label_recall": round(hits / unseen, 6) if unseen else None,
            }

        summary = (["label"], recall)

    return run_job(
        "features",
        pd.DataFrame({"user_idx": np.arange(n)}),
        RankerFeatureBatch,
        {},
        out,
        run,
        shared=shared,
        params=params,
        summary=summary,
    )
