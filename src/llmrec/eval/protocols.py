"""Evaluation protocols (docs/design.md): leave-one-out ``loo``, ``repeats``, ``cold-items``,
``cold-users``; their ``Split`` and ``Stage`` live in ``data.splits``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.config import get_settings
from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.data.ids import IdMap
from llmrec.data.splits import (
    Split,
    Stage,
    build_train,
    catalogue,
    exclusion,
    indexed_log,
    last_per_user,
)
from llmrec.errors import DataError

PROTOCOLS = ("loo", "repeats", "cold-items", "cold-users")


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
    log = indexed_log(ds, users, items)
    u = log["user_idx"].to_numpy()
    rows = np.arange(len(log))
    candidate = (
        ~log.duplicated(["user_idx", "item_idx"]).to_numpy()
        if new_only
        else np.ones(len(log), bool)
    )
    # per user, the last and second-last candidate rows
    cand_rows, cand_users = rows[candidate], u[candidate]
    last = last_per_user(cand_users)
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
    train = build_train(ds, log[pos < valid_at[u]], users, items)
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
        Stage(vu, vi[:, None], exclusion(train, vu, None)),
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
    train = build_train(ds, log[keep], users, items)
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
    log = indexed_log(ds, users, items)
    rng = np.random.default_rng(seed)
    n_cold = max(1, round(fraction * len(items)))
    if n_cold * 2 >= len(items):
        raise DataError(f"cold-items needs more items than {len(items)}")
    test_cold = np.sort(rng.choice(len(items), n_cold, replace=False))
    warm = np.setdiff1d(np.arange(len(items)), test_cold)
    valid_cold = np.sort(rng.choice(warm, n_cold, replace=False))
    in_test = log["item_idx"].isin(test_cold).to_numpy()
    train = build_train(ds, log[~in_test], users, items)
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
            exclusion(train, base.valid.user_idx[rows_v], None),
        ),
        Stage(
            t_users,
            test.targets[rows_t],
            exclusion(train, t_users, np.array([v_of[u] for u in t_users])),
        ),
        known,
    )


def make_split(ds: Dataset, protocol: str, seed: int = 0, tune_users: int | None = None) -> Split:
    """The protocol's split; above ``tune_users`` validation users (default: the setting
    ``LLMREC_TUNE_USERS``; 0 = all) hyper-parameters are chosen on a seeded sample of them."""
    if protocol == "loo":
        split = loo(ds)
    elif protocol == "repeats":
        split = repeats(ds)
    elif protocol == "cold-items":
        split = cold_items(ds, seed=seed)
    elif protocol == "cold-users":
        split = cold_users(ds, seed=seed)
    else:
        raise DataError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    n = get_settings().tune_users if tune_users is None else tune_users
    return split.tuning_sample(n, seed)
