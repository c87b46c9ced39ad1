"""Splits of an event log into training data and ranking stages: the ``Split`` and ``Stage``
every protocol returns, the catalogue's order, and the two splits training itself needs
(``full_train``: all events; ``holdout``: each user's latest event held out to tune on).
The evaluation protocols (``eval.protocols``) build on these."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.data.events import EventRules
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData, aligned_table, log_order
from llmrec.errors import DataError


@dataclass(frozen=True)
class Stage:
    """One ranking task: users, their target items and what is excluded from their ranking.

    ``candidates`` (item indices) restricts the ranking; None means the whole catalogue.
    ``targets`` and ``exclude`` are in candidate positions (= item indices when None).
    ``tie_order`` (candidate positions) breaks score ties; None: the lower id wins.
    """

    user_idx: np.ndarray
    targets: np.ndarray  # (n, t), -1 padded
    exclude: sp.csr_matrix | None
    candidates: np.ndarray | None = None
    tie_order: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> Stage:
        """The same task for some of its users (row positions or a mask over the rows)."""
        rows = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows)
        exclude = self.exclude[rows] if self.exclude is not None else None
        return replace(self, user_idx=self.user_idx[rows], targets=self.targets[rows],
                       exclude=exclude)  # fmt: skip


@dataclass(frozen=True)
class Split:
    """Training data and the validation and test stages of one protocol.

    Tuning fits on ``valid_train`` and scores ``valid``; the final model is the tuned one when
    ``valid_train is train`` (loo: no refit on train+validation) and else is refit on ``train``.
    ``test_history`` is what is known when the test item is ranked (loo: training plus the
    validation events): models ``observe`` it before the test stage, without refitting,
    as a live service would (sequence models then see the validation item as the latest).
    """

    protocol: str
    train: TrainData
    valid_train: TrainData
    valid: Stage
    test: Stage
    test_history: TrainData
    # repeat consumption: how many users' latest events repeat an item they had, and (the
    # ``repeats`` protocol) per test user whether the target is a repeat
    repeats: dict[str, int] | None = None
    test_is_repeat: np.ndarray | None = None
    # how many users the validation stage had before ``tuning_sample`` (None: not sampled)
    valid_users_all: int | None = None

    def tuning_sample(self, n_users: int, seed: int) -> Split:
        """The same split with a seeded sample of ``n_users`` validation users (0: all).

        Tuning scores every validation user over the catalogue once per grid point (and
        per checked epoch), so its cost grows with users x items; the choice it makes needs
        far fewer users than a big log has (``make bench-tune-users``). Training data, the
        test stage and what models observe are untouched: only whose validation item the
        choices (and the ranker's labels) come from."""
        n = len(self.valid.user_idx)
        if n_users <= 0 or n <= n_users:
            return self
        rows = np.sort(np.random.default_rng(seed).choice(n, n_users, replace=False))
        return replace(self, valid=self.valid.subset(rows), valid_users_all=n)


def indexed_log(ds: Dataset, users: IdMap, items: IdMap) -> pd.DataFrame:
    inter = ds.interactions
    # events as a categorical (one byte per event, cheap to sort and to compare); context
    # columns keep their (Arrow) arrays: a numpy copy would hold one Python object per event
    log = pd.DataFrame(
        {
            "user_idx": users.index(inter[C.USER_ID]),
            "item_idx": items.index(inter[C.ITEM_ID]),
            C.TIMESTAMP: inter[C.TIMESTAMP].to_numpy(dtype=np.int64),
            C.EVENT: inter[C.EVENT].astype("category").array if C.EVENT in inter else "view",
            C.VALUE: inter[C.VALUE].to_numpy(dtype=float) if C.VALUE in inter else np.nan,
        }
    )
    for col in C.CONTEXT_COLUMNS:
        if col in inter:
            log[col] = inter[col].array
    known = log["user_idx"].to_numpy() >= 0
    if not known.all():
        log = log[known]
    order = log_order(
        log["user_idx"].to_numpy(), log[C.TIMESTAMP].to_numpy(), log["item_idx"].to_numpy()
    )
    return (log if order is None else log.iloc[order]).reset_index(drop=True)


def last_per_user(user_idx: np.ndarray) -> np.ndarray:
    """Mask of each user's last row in a log sorted by user."""
    return np.r_[user_idx[1:] != user_idx[:-1], True]


def catalogue(ds: Dataset) -> IdMap:
    """Every item of the items table and of the interactions, in protocol order."""
    return IdMap.from_values(
        pd.concat([ds.items[C.ITEM_ID], ds.interactions[C.ITEM_ID]]).astype(str).unique()
    )


def build_train(ds: Dataset, log: pd.DataFrame, users: IdMap, items: IdMap) -> TrainData:
    return TrainData.build(
        log,
        users,
        items,
        aligned_table(ds.items, C.ITEM_ID, items),
        aligned_table(ds.users, C.USER_ID, users),
        ds.kg,
        ds.item_entity,
        EventRules.from_meta(ds.meta),
    )


def exclusion(train: TrainData, user_idx: np.ndarray, extra: np.ndarray | None) -> sp.csr_matrix:
    ex = train.matrix[user_idx].astype(bool).tolil()
    if extra is not None:
        ex[np.arange(len(user_idx)), extra] = True
    return ex.tocsr()


def full_train(ds: Dataset) -> TrainData:
    """Every interaction of ``ds`` as training data (what ``llmrec train`` fits on)."""
    users = IdMap.from_values(ds.interactions[C.USER_ID].astype(str))
    items = catalogue(ds)
    return build_train(ds, indexed_log(ds, users, items), users, items)


def holdout(
    data: TrainData,
    min_interactions: int = 3,
    tune_users: int = 0,
    seed: int = 0,
    repeats: bool = False,
) -> Split:
    """Tuning without a test: each user's latest event (users with ``min_interactions``+) is
    the validation item, the rest is training; ``test`` repeats validation and
    ``test_history`` is all of ``data``, which the tuned model observes when deployed.
    ``tune_users`` > 0 tunes on a seeded sample of that many of them (``tuning_sample``).

    Where people return to items the latest event may repeat one the user had
    (``repeats["valid_targets_repeat"]`` counts them). Lists exclude history, so the ranker,
    whose candidates exclude it, scores 0 on such a user while a retriever is scored on where
    it ranks the item (the metric keeps a target even when it is history). Two rules that
    avoid repeat targets measured worse on ibm-articles' test items (new items, ``loo``):
    each user's latest *new* item with the events after it left out, and the latest event
    only where it is new (BENCHMARKS.md, "What llmrec train tunes on"), so this one stays.
    ``repeats=True``: nothing excluded (a model that recommends what users had: the
    ``repeats`` protocol)."""
    u = data.log["user_idx"].to_numpy()
    last = last_per_user(u)
    counts = np.bincount(u, minlength=data.n_users)
    label = last & (counts[u] >= min_interactions)
    if not label.any():
        raise DataError(f"no user has {min_interactions} or more interactions to hold out")
    inner = data.subset(~label)
    users = u[label]
    items = data.log["item_idx"].to_numpy()[label]
    had = np.asarray(inner.matrix[users, items]).ravel() != 0
    said = {"valid_targets_repeat": int(had.sum()), "valid_users": len(users)}
    exclude = None if repeats else inner.matrix[users].astype(bool).tocsr()
    stage = Stage(users, items[:, None], exclude)
    protocol = "repeats" if repeats else "holdout"
    split = Split(protocol, inner, inner, stage, stage, data, said)
    return split.tuning_sample(tune_users, seed)
