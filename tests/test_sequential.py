"""SASRec: contract, order learning (overfits a tiny sequential dataset), text part, observe."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.eval.evaluate import evaluate
from llmrec.eval.protocols import loo
from llmrec.models import EASE, SASRec
from llmrec.testing import RecommenderContract

SMALL: dict[str, Any] = {
    "embedding_size": 16,
    "max_len": 12,
    "epochs": 40,
    "dropout": 0.1,
    "learning_rate": 5e-3,
    "encoder": "hashing",
}


class TestSASRec(RecommenderContract):
    model_class = SASRec
    params = SMALL


def cycle_dataset(n_users: int = 30, n_items: int = 12, length: int = 8, seed: int = 0) -> Dataset:
    """Every user walks the items in a fixed cycle (0 -> 1 -> ... -> 11 -> 0) from a random
    start: the next item is determined by the last one, and only order reveals it."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        rows += [(f"u{u}", f"{(start + t) % n_items}", t) for t in range(length)]
    inter = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP])
    inter[C.EVENT], inter[C.VALUE] = "view", np.nan
    items = pd.DataFrame({C.ITEM_ID: [str(i) for i in range(n_items)]})
    items[C.TITLE] = "film " + items[C.ITEM_ID]
    return Dataset("cycle", inter, items)


def test_learns_the_order_that_a_set_model_cannot_see() -> None:
    split = loo(cycle_dataset())
    sas = SASRec(**{**SMALL, "epochs": 80, "text_init": False}).fit(split.train)
    sas.observe(split.test_history)
    got = evaluate(sas, split.test, split.train, ks=(1,)).metrics["recall@1"]
    ease = EASE().fit(split.train).observe(split.test_history)
    base = evaluate(ease, split.test, split.train, ks=(1,)).metrics["recall@1"]
    assert got >= 0.9, got
    assert got > base + 0.3, (got, base)


def test_observe_feeds_the_validation_item_as_the_latest_input() -> None:
    split = loo(cycle_dataset())
    sas = SASRec(**{**SMALL, "epochs": 80, "text_init": False}).fit(split.train)
    users = split.test.user_idx
    before = sas.score(users).argmax(axis=1)
    sas.observe(split.test_history)
    after = sas.score(users).argmax(axis=1)
    # the cycle moves one step: the best guess follows the validation item now
    assert np.mean(after == split.test.targets[:, 0]) >= 0.9
    assert np.mean(before == split.valid.targets[:, 0]) >= 0.9


def test_item_without_training_events_is_scored_from_its_text() -> None:
    """Items 10 and 11 never appear in training; with text_init their scores follow their
    text (a Drama item near the Drama history), without it they are flat zeros-ish."""
    from llmrec.testing import block_dataset

    ds = block_dataset(n_users=40, n_items=24)
    keep = ~ds.interactions[C.ITEM_ID].isin(["20", "21"])
    ds = Dataset(ds.name, ds.interactions[keep].reset_index(drop=True), ds.items)
    train = loo(ds).train
    sas = SASRec(**SMALL).fit(train)
    items = train.items.index(np.array(["20", "21"]))
    assert not sas.trained_items_[items].any()
    s = sas.score(np.arange(train.n_users), items)
    even_users = np.array([int(u[1:]) % 2 == 0 for u in train.users.ids])
    # users of the even (Drama) block prefer the unseen Drama item 20 over Comedy item 21
    assert np.mean(s[even_users, 0] > s[even_users, 1]) > 0.8
    assert np.mean(s[~even_users, 1] > s[~even_users, 0]) > 0.8


def test_sequences_keep_the_latest_items() -> None:
    split = loo(cycle_dataset(length=20))
    sas = SASRec(**{**SMALL, "epochs": 1, "max_len": 5}).fit(split.train)
    seq = sas._sequences(np.array([0]), 5)[0] - 1
    u_log = split.train.log[split.train.log["user_idx"] == 0]["item_idx"].to_numpy()
    np.testing.assert_array_equal(seq, u_log[-5:])


@pytest.mark.parametrize("bad", [{"heads": 0}, {"dropout": 1.0}, {"max_len": 1}])
def test_invalid_parameters(bad: dict[str, Any]) -> None:
    from llmrec.errors import ConfigError

    with pytest.raises(ConfigError):
        SASRec(**bad)
