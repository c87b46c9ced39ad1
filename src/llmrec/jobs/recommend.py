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

from llmrec import versions
from llmrec.data import columns as C
from llmrec.errors import LlmrecError
from llmrec.jobs.engine import JobResult, Run, read_output, resolve, run_job
from llmrec.models.base import Recommender

SCHEMA = pa.schema(
    [
        (C.USER_ID, pa.string()),
        ("rank", pa.int32()),
        (C.ITEM_ID, pa.string()),
        (C.TITLE, pa.string()),  # the catalogue's title (the id where none is known)
        ("score", pa.float64()),
        ("source", pa.string()),
    ]
)
FORMATS = ("parquet", "csv", "jsonl")


class TopKBatch:
    """One partition of users (a ``user_idx`` column) -> their lists, one row per item."""

    def __init__(
        self,
        model: Recommender,
        k: int,
        exclude_seen: bool,
        titles: np.ndarray | None = None,
        blocked: dict[int, np.ndarray] | None = None,
    ) -> None:
        self.model: Recommender = resolve(model)
        self.k, self.exclude_seen = k, exclude_seen
        self.titles = resolve(titles) if titles is not None else self.model.items_.ids
        self.blocked: dict[int, np.ndarray] = resolve(blocked) if blocked is not None else {}

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        m = self.model
        idx = batch["user_idx"].to_numpy(np.int64)
        extra = max((len(self.blocked.get(int(u), ())) for u in idx), default=0)
        top = m.top_k(idx, self.k + extra, self.exclude_seen)
        if extra:  # drop each user's blocked items, then keep their first k
            drop = np.array([i in self.blocked.get(int(idx[r]), ()) for r, i in
                             zip(top.row, top.item_idx, strict=True)], dtype=bool)  # fmt: skip
            keep = ~drop
            start = np.searchsorted(top.row, top.row)  # where each entry's user begins
            kept = np.cumsum(keep) - keep  # kept entries before each position
            keep &= (kept - kept[start]) < self.k
            top = top._replace(
                row=top.row[keep],
                item_idx=top.item_idx[keep],
                score=top.score[keep],
                sources=None if top.sources is None else list(np.asarray(top.sources)[keep]),
            )
        rank = np.arange(len(top.row)) - np.searchsorted(top.row, top.row) + 1
        sources = top.sources if top.sources is not None else [m.name] * len(top.row)
        return pa.table(
            [
                pa.array(m.users_.ids[idx[top.row]]),
                pa.array(rank, pa.int32()),
                pa.array(m.items_.ids[top.item_idx]),
                pa.array(np.asarray(self.titles, dtype=object)[top.item_idx], pa.string()),
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
    titles: dict[str, str] | None = None,
    fmt: str = "parquet",
    blocked: dict[str, set[str]] | None = None,
) -> JobResult:
    """Top-``k`` for ``users`` (default: every user the model knows) into ``out``, with each
    item's title from ``titles`` (item id -> title; default: the model folder's catalogue
    when ``model`` is a folder). ``fmt`` csv or jsonl adds one ``recommendations.csv`` /
    ``.jsonl`` file of every row beside the Parquet parts. ``blocked``: user id -> item ids
    their lists leave out (the service's dislikes)."""
    run = run or Run()
    if k < 1:
        raise LlmrecError("k must be at least 1")
    if fmt not in FORMATS:
        raise LlmrecError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not isinstance(model, Recommender):
        folder = Path(model)
        model = Recommender.load(folder)
        if titles is None:
            titles = folder_titles(folder)
    model._check_fitted()
    if users is None:
        idx = np.arange(len(model.users_))
    else:
        idx = model.users_.index(users)
        if (idx < 0).any():
            missing = [u for u, i in zip(users, idx, strict=True) if i < 0][:5]
            raise LlmrecError(f"unknown user ids: {', '.join(missing)}")
    ids = model.items_.ids
    block = {
        int(u): model.items_.index(sorted(items))
        for u, items in zip(model.users_.index(list(blocked or {})), (blocked or {}).values(),
                            strict=True)
        if u >= 0 and items
    }  # fmt: skip
    names = np.array([(titles or {}).get(str(i), str(i)) for i in ids], dtype=object)
    params = {"model": model.name, "k": k, "exclude_seen": exclude_seen, "users": len(idx)}
    result = run_job(
        "recommend",
        pd.DataFrame({"user_idx": idx}),
        TopKBatch,
        {"k": k, "exclude_seen": exclude_seen},
        out,
        run,
        shared={"model": model, "titles": names, "blocked": block},
        params=params,
    )
    if fmt != "parquet":
        _export(out, fmt)
    return result


def folder_titles(folder: Path) -> dict[str, str] | None:
    """Item id -> title from a trained folder's catalogue (None for a bare model folder)."""
    from llmrec.service.folder import ITEMS_FILE  # the served folder's layout

    path = versions.resolve(folder) / ITEMS_FILE
    if not path.is_file():
        return None
    table = pd.read_parquet(path, columns=[C.ITEM_ID, C.TITLE])
    return dict(zip(table[C.ITEM_ID].astype(str), table[C.TITLE].astype(str), strict=True))


def _export(out: Path, fmt: str) -> None:
    """Every row of the job's Parquet parts as one CSV or JSON Lines file in ``out``, written
    to a temporary name and renamed (no half-written file)."""
    rows = read_output(out).sort_values([C.USER_ID, "rank"], kind="stable")
    target = Path(out) / f"recommendations.{fmt}"
    tmp = target.with_name(f".{target.name}.tmp")
    if fmt == "csv":
        rows.to_csv(tmp, index=False)
    else:
        rows.to_json(tmp, orient="records", lines=True, force_ascii=False)
    tmp.replace(target)
