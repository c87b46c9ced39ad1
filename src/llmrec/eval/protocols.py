"""Evaluation protocols (docs/design.md): leave-one-out ``loo``, ``cold-items``, ``cold-users``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.data.events import EventRules
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData, aligned_table
from llmrec.errors import DataError

PROTOCOLS = ("loo", "repeats", "cold-items", "cold-users")


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


def _indexed_log(ds: Dataset, users: IdMap, items: IdMap) -> pd.DataFrame:
    inter = ds.interactions
    log = pd.DataFrame(
        {
            "user_idx": users.index(inter[C.USER_ID]),
            "item_idx": items.index(inter[C.ITEM_ID]),
            C.TIMESTAMP: inter[C.TIMESTAMP].to_numpy(dtype=np.int64),
            C.EVENT: inter[C.EVENT].to_numpy() if C.EVENT in inter else "view",
            C.VALUE: inter[C.VALUE].to_numpy(dtype=float) if C.VALUE in inter else np.nan,
        }
    )
    for col in C.CONTEXT_COLUMNS:
        if col in inter:
            log[col] = inter[col].to_numpy()
    log = log[log["user_idx"] >= 0]
    order = np.lexsort((log["item_idx"], log[C.TIMESTAMP], log["user_idx"]))
    return log.iloc[order].reset_index(drop=True)


def _last_per_user(user_idx: np.ndarray) -> np.ndarray:
    """Mask of each user's last row in a log sorted by user."""
    return np.r_[user_idx[1:] != user_idx[:-1], True]


def catalogue(ds: Dataset) -> IdMap:
    """Every item of the items table and of the interactions, in protocol order."""
    return IdMap.from_values(
        np.concatenate([ds.items[C.ITEM_ID].astype(str), ds.interactions[C.ITEM_ID].astype(str)])
    )


def _train(ds: Dataset, log: pd.DataFrame, users: IdMap, items: IdMap) -> TrainData:
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


def _exclusion(train: TrainData, user_idx: np.ndarray, extra: np.ndarray | None) -> sp.csr_matrix:
    ex = train.matrix[user_idx].astype(bool).tolil()
    if extra is not None:
        ex[np.arange(len(user_idx)), extra] = True
    return ex.tocsr()


def _held_out(
    ds: Dataset, min_interactions: int, new_only: bool
) -> tuple[IdMap, IdMap, pd.DataFrame, np.ndarray, np.ndarray]:
    """(users, items, log, test row, validation row per user): the user's last two events,
    or (``new_only``) their last two first-time items; users with fewer than
    ``min_interactions`` distinct items are dropped."""
    inter = ds.interactions
    distinct = inter.drop_duplicates([C.USER_ID, C.ITEM_ID])[C.USER_ID].astype(str)
    counts = distinct.value_counts()
    kept = counts.index[counts >= min_interactions]
    if len(kept) == 0:
        name = "loo" if new_only else "repeats"
        raise DataError(f"no user has {min_interactions} or more distinct items: {name} needs them")
    users = IdMap.from_values(kept)
    items = catalogue(ds)
    log = _indexed_log(ds, users, items)
    u = log["user_idx"].to_numpy()
    rows = np.arange(len(log))
    candidate = (
        ~log.duplicated(["user_idx", "item_idx"]).to_numpy()
        if new_only
        else np.ones(len(log), bool)
    )
    # per user, the last and second-last candidate rows
    cand_rows, cand_users = rows[candidate], u[candidate]
    last = _last_per_user(cand_users)
    second = np.r_[last[1:], False] & (np.r_[cand_users[1:], -1] == cand_users)
    return users, items, log, cand_rows[last], cand_rows[second]


def loo(ds: Dataset, min_interactions: int = 3) -> Split:
    """Temporal leave-one-out: per user, the latest *new* item (one the user had not had
    before) = test, the new item before it = validation, the events before that = train.

    Without repeat consumption (MovieLens) these are simply the last and second-last events.
    With repeats, a user whose latest events return to items they had is evaluated on their
    latest new item, and the events after it are left out (they lie in the test's future):
    a seen item can never be a target that history-excluding models are blamed for missing.
    ``repeats`` in the split counts the users this concerns; the ``repeats`` protocol
    evaluates repeat targets instead.
    """
    users, items, log, test_row, valid_row = _held_out(ds, min_interactions, new_only=True)
    u = log["user_idx"].to_numpy()
    pos = np.arange(len(log))
    valid_at = np.full(len(users), -1)
    test_at = np.full(len(users), -1)
    valid_at[u[valid_row]], test_at[u[test_row]] = valid_row, test_row
    train = _train(ds, log[pos < valid_at[u]], users, items)
    known = train.with_log(log[pos < test_at[u]])
    vu, tu = u[valid_row], u[test_row]
    vi, ti = log["item_idx"].to_numpy()[valid_row], log["item_idx"].to_numpy()[test_row]
    later = np.bincount(u[pos > test_at[u]], minlength=len(users))
    repeats = {
        "users_latest_event_repeat": int((later > 0).sum()),
        "events_after_test_left_out": int(later.sum()),
    }
    return Split(
        "loo",
        train,
        train,
        Stage(vu, vi[:, None], _exclusion(train, vu, None)),
        Stage(tu, ti[:, None], known.matrix[tu].astype(bool).tocsr()),
        known,
        repeats,
    )


def repeats(ds: Dataset, min_interactions: int = 3) -> Split:
    """Leave-one-out over every event, repeats included: the user's latest event = test, the
    one before = validation; nothing is excluded, so every model may recommend what a user
    already had (a ``repeat`` retriever does only that). ``test_is_repeat`` marks the test
    users whose target they had had before: the report scores repeat and new targets apart."""
    users, items, log, test_row, valid_row = _held_out(ds, min_interactions, new_only=False)
    u = log["user_idx"].to_numpy()
    keep = np.ones(len(log), bool)
    keep[test_row] = keep[valid_row] = False
    train = _train(ds, log[keep], users, items)
    keep[valid_row] = True
    known = train.with_log(log[keep])
    vu, tu = u[valid_row], u[test_row]
    vi, ti = log["item_idx"].to_numpy()[valid_row], log["item_idx"].to_numpy()[test_row]
    is_repeat = np.asarray(known.matrix[tu, ti]).ravel() > 0
    valid_repeat = np.asarray(train.matrix[vu, vi]).ravel() > 0
    counts = {
        "test_targets_repeat": int(is_repeat.sum()),
        "test_targets_new": int((~is_repeat).sum()),
        "valid_targets_repeat": int(valid_repeat.sum()),
    }
    return Split(
        "repeats",
        train,
        train,
        Stage(vu, vi[:, None], None),
        Stage(tu, ti[:, None], None),
        known,
        counts,
        is_repeat,
    )


def _cold_stage(log: pd.DataFrame, cold: np.ndarray, seed: int) -> Stage:
    """Users ranking the ``cold`` items they interacted with against all ``cold`` items.

    Ties are broken in a seeded random order, not by id: ids of items nobody has seen must
    carry no signal (ml-100k's low ids are its popular films), so a model with no signal for
    cold items (every CF model) scores as random does.
    """
    pos = pd.Series(np.arange(len(cold)), index=cold)
    held = log[log["item_idx"].isin(cold)].drop_duplicates(["user_idx", "item_idx"])
    users = np.sort(held["user_idx"].unique())
    row = pd.Series(np.arange(len(users)), index=users)[held["user_idx"]].to_numpy()
    col = held.groupby("user_idx").cumcount().to_numpy()
    targets = np.full((len(users), int(col.max()) + 1 if len(col) else 1), -1, dtype=np.int64)
    targets[row, col] = pos[held["item_idx"]].to_numpy()
    tie_order = np.random.default_rng(seed).permutation(len(cold))
    return Stage(users, targets, None, np.sort(cold), tie_order)


def cold_items(ds: Dataset, seed: int = 0, fraction: float = 0.1) -> Split:
    """A seeded ``fraction`` of items and all their interactions are held out of training.

    Validation repeats the draw inside the training items (another ``fraction`` of them),
    so tuning never sees the test items; the final model is refit on all of training.
    """
    users = IdMap.from_values(ds.interactions[C.USER_ID].astype(str))
    items = catalogue(ds)
    log = _indexed_log(ds, users, items)
    rng = np.random.default_rng(seed)
    n_cold = max(1, round(fraction * len(items)))
    if n_cold * 2 >= len(items):
        raise DataError(f"cold-items needs more items than {len(items)}")
    test_cold = np.sort(rng.choice(len(items), n_cold, replace=False))
    warm = np.setdiff1d(np.arange(len(items)), test_cold)
    valid_cold = np.sort(rng.choice(warm, n_cold, replace=False))
    in_test = log["item_idx"].isin(test_cold).to_numpy()
    train = _train(ds, log[~in_test], users, items)
    in_valid = train.log["item_idx"].isin(valid_cold).to_numpy()
    valid_train = train.subset(~in_valid)
    return Split(
        "cold-items",
        train,
        valid_train,
        _cold_stage(train.log, valid_cold, seed + 1),
        _cold_stage(log, test_cold, seed + 2),
        train,
    )


def cold_users(ds: Dataset, seed: int = 0, fraction: float = 0.1, keep: int = 5) -> Split:
    """loo, but a seeded ``fraction`` of users keep only their ``keep`` latest training
    interactions; only those users are evaluated (a cold-start view of users)."""
    base = loo(ds)
    rng = np.random.default_rng(seed)
    n = max(1, round(fraction * base.train.n_users))
    cold = np.sort(rng.choice(base.train.n_users, n, replace=False))
    log = base.train.log
    is_cold = log["user_idx"].isin(cold).to_numpy()
    from_end = log.groupby("user_idx").cumcount(ascending=False).to_numpy()
    train = base.train.subset(~is_cold | (from_end < keep))
    # what models observe at test time: the (shortened) training plus every row loo adds
    # after training — the validation item and, with repeats, the events between it and the
    # test item (so not just each user's last row). Both logs keep the same per-user order,
    # training rows first, so a user's rows past their training count are the added ones.
    seen = base.test_history.log
    su = seen["user_idx"].to_numpy()
    n_train = np.bincount(log["user_idx"].to_numpy(), minlength=base.train.n_users)
    added = seen.groupby("user_idx", sort=False).cumcount().to_numpy() >= n_train[su]
    known = train.with_log(pd.concat([train.log, seen[added]]))
    rows_v = np.flatnonzero(np.isin(base.valid.user_idx, cold))
    rows_t = np.flatnonzero(np.isin(base.test.user_idx, cold))
    # the test ranking excludes the (shortened) training history plus the validation item
    test = base.test
    t_users = test.user_idx[rows_t]
    v_of = dict(zip(base.valid.user_idx, base.valid.targets[:, 0], strict=True))
    return Split(
        "cold-users",
        train,
        train,
        Stage(
            base.valid.user_idx[rows_v],
            base.valid.targets[rows_v],
            _exclusion(train, base.valid.user_idx[rows_v], None),
        ),
        Stage(
            t_users,
            test.targets[rows_t],
            _exclusion(train, t_users, np.array([v_of[u] for u in t_users])),
        ),
        known,
    )


def full_train(ds: Dataset) -> TrainData:
    """Every interaction of ``ds`` as training data (what ``llmrec train`` fits on)."""
    users = IdMap.from_values(ds.interactions[C.USER_ID].astype(str))
    items = catalogue(ds)
    return _train(ds, _indexed_log(ds, users, items), users, items)


def holdout(data: TrainData, min_interactions: int = 3) -> Split:
    """Tuning without a test: each user's latest event (users with ``min_interactions``+)
    is the validation item, the rest is training; ``test`` repeats validation and
    ``test_history`` is all of ``data``, which the tuned model observes when deployed."""
    u = data.log["user_idx"].to_numpy()
    last = _last_per_user(u)
    counts = np.bincount(u, minlength=data.n_users)
    label = last & (counts[u] >= min_interactions)
    if not label.any():
        raise DataError(f"no user has {min_interactions} or more interactions to hold out")
    inner = data.subset(~label)
    users = u[label]
    items = data.log["item_idx"].to_numpy()[label]
    stage = Stage(users, items[:, None], inner.matrix[users].astype(bool).tocsr())
    return Split("holdout", inner, inner, stage, stage, data)


def make_split(ds: Dataset, protocol: str, seed: int = 0) -> Split:
    if protocol == "loo":
        return loo(ds)
    if protocol == "repeats":
        return repeats(ds)
    if protocol == "cold-items":
        return cold_items(ds, seed=seed)
    if protocol == "cold-users":
        return cold_users(ds, seed=seed)
    raise DataError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
