"""Tuning on a sample of validation users (#24): the split keeps its training data, test stage
and history; only the validation stage shrinks, seeded; `llmrec train` and `llmrec eval` say
so and record it; the default pipeline learns its ranker from the same sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llmrec import versions
from llmrec.cli import app
from llmrec.data import dataset as store
from llmrec.data.splits import full_train, holdout
from llmrec.eval.evaluate import evaluate_ranking, rank_stage
from llmrec.eval.protocols import loo, make_split
from llmrec.eval.tuning import tune
from llmrec.models import EASE, Recommender
from llmrec.ranking.ranker import Ranker
from llmrec.testing import FAST_RANKER
from llmrec.testing.fixtures import shop_dataset


def test_a_sample_shrinks_only_the_validation_stage() -> None:
    split = loo(shop_dataset())
    n = len(split.valid.user_idx)
    sample = split.tuning_sample(20, seed=3)
    assert sample.valid_users_all == n and len(sample.valid.user_idx) == 20
    assert sample.train is split.train and sample.valid_train is split.valid_train
    assert sample.test is split.test and sample.test_history is split.test_history
    rows = np.searchsorted(split.valid.user_idx, sample.valid.user_idx)
    assert (split.valid.user_idx[rows] == sample.valid.user_idx).all()  # a subset, in order
    assert (split.valid.targets[rows] == sample.valid.targets).all()
    assert (split.valid.exclude[rows] != sample.valid.exclude).nnz == 0
    again = split.tuning_sample(20, seed=3).valid.user_idx
    other = split.tuning_sample(20, seed=4).valid.user_idx
    assert (again == sample.valid.user_idx).all() and not (other == again).all()
    assert split.tuning_sample(0, seed=3) is split and split.tuning_sample(n, seed=3) is split


def test_make_split_and_holdout_read_the_setting(monkeypatch) -> None:
    ds = shop_dataset()
    assert make_split(ds, "loo").valid_users_all is None  # 50 users: under the default
    monkeypatch.setenv("LLMREC_TUNE_USERS", "3")  # cold-users validates on 5 users here
    for protocol in ("loo", "repeats", "cold-items", "cold-users"):
        split = make_split(ds, protocol, seed=1)
        assert len(split.valid.user_idx) == 3 and split.valid_users_all > 3, protocol
    monkeypatch.setenv("LLMREC_TUNE_USERS", "15")
    assert len(make_split(ds, "loo", tune_users=0).valid.user_idx) > 15  # the argument wins
    h = holdout(full_train(ds), tune_users=12, seed=0)
    assert len(h.valid.user_idx) == 12 and h.valid_users_all is not None
    assert len(h.test.user_idx) == h.valid_users_all  # holdout's test stays whole


def test_tuning_scores_exactly_the_sampled_users() -> None:
    """The validation score tuning reports is the mean over the sampled users of what the
    whole validation stage gives each of them."""
    whole = loo(shop_dataset())
    split = whole.tuning_sample(18, seed=0)
    result = tune(EASE, split, {"seed": 0})
    full = evaluate_ranking(
        rank_stage(result.model, whole.valid, 10), whole.valid, whole.valid_train, (10,), None,
        False,
    )  # fmt: skip
    rows = np.isin(full.user_idx, split.valid.user_idx)
    assert rows.sum() == 18
    assert result.valid_score == pytest.approx(full.per_user["ndcg@10"][rows].mean())
    assert result.valid_score != pytest.approx(full.metrics["ndcg@10"])


def test_the_ranker_learns_from_the_sampled_users(monkeypatch) -> None:
    seen: list[int] = []
    original = Ranker.fit_ranker

    def spy(self, split, retrievers):
        seen.append(len(split.valid.user_idx))
        return original(self, split, retrievers)

    monkeypatch.setattr(Ranker, "fit_ranker", spy)
    monkeypatch.setenv("LLMREC_TUNE_USERS", "25")
    train = full_train(shop_dataset())
    model = Ranker(**FAST_RANKER).fit(train)
    assert seen == [25]
    assert model.score(np.arange(4)).shape == (4, train.n_items)


def test_train_and_eval_say_what_they_tuned_on(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    store.save(shop_dataset(), home / "datasets")
    res = runner.invoke(
        app,
        ["train", "--dataset", "shop", "--model", "ease", "--tune-users", "10",
         "--out", str(tmp_path / "m")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "tuning on 10 of" in res.output and "validation users" in res.output
    info = json.loads((versions.resolve(tmp_path / "m") / "training.json").read_text())
    assert info["tune_users"] == 10
    # people return to books here: training says how many held-out events are repeats
    assert 0 < info["holdout"]["valid_targets_repeat"] < info["holdout"]["valid_users"]
    assert "validation users' latest events repeat items they had" in res.output
    model = Recommender.load(tmp_path / "m")
    assert len(model.recommend(["NaN", "7.0"], k=5).item_ids[1]) == 5  # numeric-looking ids
    out = tmp_path / "eval.json"
    res = runner.invoke(
        app,
        ["eval", "--dataset", "shop", "--model", "ease", "--tune-users", "10",
         "--json", str(out), "--reports", str(tmp_path / "r")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["tune_users"] == 10 and doc["n_users"] > 10  # the test stage is whole
    bad = runner.invoke(app, ["eval", "--dataset", "shop", "--model", "ease", "--tune-users", "-1"])
    assert bad.exit_code == 2 and "--tune-users" in bad.output
