"""Size-adapted training (#24): which path each model takes by catalogue size, refusals before
fitting that name the limit and the flag, and scoring/feature blocks that give the same
answers as one big matrix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from llmrec import versions
from llmrec.cli import app
from llmrec.data import dataset as store
from llmrec.errors import ConfigError
from llmrec.eval import evaluate as ev
from llmrec.eval.protocols import loo
from llmrec.models import EASE, ItemKNN, Recommender, SASRec, memory
from llmrec.models import base as model_base
from llmrec.models.knn import cosine_neighbours
from llmrec.models.sasrec import full_softmax_bytes, loss_path, sampled_softmax
from llmrec.ranking import ranker as ranker_module
from llmrec.ranking.ranker import Ranker
from llmrec.testing import FAST_RANKER, block_dataset
from llmrec.testing.fixtures import shop_dataset

SMALL: dict[str, Any] = {
    "embedding_size": 16,
    "max_len": 12,
    "epochs": 3,
    "encoder": "hashing",
}
TINY_BUDGET = "0.000001"  # GiB: about 1 KB, less than ease needs for 20 items (4.8 KB)


def test_sasrec_switches_to_the_sampled_softmax_above_the_limit() -> None:
    train = loo(block_dataset(n_users=30, n_items=20)).train
    auto = SASRec(**SMALL, full_softmax_items=19)
    assert loss_path(auto.config, 19) == "full" and loss_path(auto.config, 20) == "sampled"
    assert "sampled softmax" in (auto.size_note(20) or "")
    assert "full softmax" in (SASRec(**SMALL).size_note(20) or "")
    auto.fit(train)
    assert auto.loss_ == "sampled"
    s = auto.score(np.arange(train.n_users))
    assert s.shape == (train.n_users, train.n_items) and np.isfinite(s).all()
    assert SASRec(**SMALL, loss="full", full_softmax_items=1).fit(train).loss_ == "full"


def test_sasrec_sampled_softmax_learns_the_blocks() -> None:
    """Trained only with sampled negatives, it still ranks a user's own block first."""
    ds = block_dataset(n_users=40, n_items=30)
    split = loo(ds)
    params = {**SMALL, "epochs": 30, "loss": "sampled", "negatives": 8, "text_init": False}
    sas = SASRec(**params).fit(split.train).observe(split.test_history)
    top = sas.recommend(list(split.train.users.ids[:20]), k=5).item_ids
    for user, items in zip(split.train.users.ids[:20], top, strict=True):
        same = [int(i) % 2 == int(user[1:]) % 2 for i in items]
        assert np.mean(same) >= 0.8, (user, items)


def test_sampled_softmax_with_every_item_once_is_the_full_softmax() -> None:
    """With each other item drawn exactly once and a uniform Q, the sampled loss is the full
    cross-entropy; the target among the negatives is masked (no double count)."""
    torch.manual_seed(0)
    n_items, d = 7, 4
    net = torch.nn.Module()
    table = torch.randn(n_items + 1, d)
    net.embed = lambda ids: table[ids]  # type: ignore[assignment]
    h = torch.randn(5, d)
    target = torch.tensor([1, 3, 3, 7, 2])
    negatives = torch.arange(1, n_items + 1)  # the target is among them: masked
    log_q = torch.full((n_items + 1,), -np.log(n_items))
    got = sampled_softmax(net, h, target, negatives, log_q)
    full = torch.nn.functional.cross_entropy(h @ table[1:].T, target - 1)
    torch.testing.assert_close(got, full)
    # unmasked, the target would count twice and the loss would be higher
    twice = torch.nn.functional.cross_entropy(
        torch.cat([(h * table[target]).sum(-1, keepdim=True), h @ table[1:].T], 1),
        torch.zeros(5, dtype=torch.long),
    )
    assert float(twice) > float(got)


def test_ease_over_the_memory_budget_is_refused_before_fitting(monkeypatch) -> None:
    train = loo(block_dataset(n_users=30, n_items=20)).train
    monkeypatch.setenv("LLMREC_MEMORY_GB", TINY_BUDGET)
    with pytest.raises(ConfigError, match=r"ease: 20 items need .*LLMREC_MEMORY_GB.*itemknn"):
        EASE().fit(train)
    monkeypatch.setenv("LLMREC_MEMORY_GB", "16")
    assert EASE().fit(train).weights_.shape == (20, 20)


def test_ease_larger_than_the_free_memory_is_refused_under_the_budget(monkeypatch) -> None:
    """The budget (16 GiB) allows 20 items, but the machine says it has 5 KB free: a fit
    that would fault halfway is refused first, naming what is free."""
    train = loo(block_dataset(n_users=30, n_items=20)).train
    monkeypatch.setattr(memory, "available_memory", lambda: 5_000)
    with pytest.raises(ConfigError, match=r"ease: 20 items need .* GiB free now; use itemknn"):
        EASE().fit(train)
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # not Linux: budget only
    assert EASE().fit(train).weights_.shape == (20, 20)


def test_sasrec_full_softmax_is_checked_against_memory(monkeypatch) -> None:
    """``loss=full`` that would not fit is refused before training, naming the flag that
    helps; ``auto`` takes the sampled softmax instead and says why."""
    train = loo(block_dataset(n_users=30, n_items=20)).train
    need = full_softmax_bytes(SASRec(**SMALL).config, 20)
    assert need == 3 * 4 * 64 * 12 * 20
    monkeypatch.setattr(memory, "available_memory", lambda: need)  # under need x headroom
    with pytest.raises(ConfigError, match=r"sasrec: 20 items need .*free now; use loss=sampled"):
        SASRec(**SMALL, loss="full").fit(train)
    auto = SASRec(**SMALL, negatives=8)
    assert "the full one needs" in auto.size_note(20) and "free now" in auto.size_note(20)
    assert auto.fit(train).loss_ == "sampled"
    monkeypatch.setattr(memory, "available_memory", lambda: 2 * need)
    assert loss_path(auto.config, 20) == "full"
    monkeypatch.setenv("LLMREC_MEMORY_GB", TINY_BUDGET)
    with pytest.raises(ConfigError, match=r"sasrec: .*LLMREC_MEMORY_GB.*loss=sampled"):
        SASRec(**SMALL, loss="full").fit(train)


def test_available_memory_reads_the_kernel() -> None:
    from llmrec.config import available_memory

    free = available_memory()
    assert free is None or 0 < free < 2**50


def test_the_pipeline_leaves_out_what_does_not_fit(monkeypatch) -> None:
    split = loo(block_dataset(n_users=40, n_items=20))
    monkeypatch.setenv("LLMREC_MEMORY_GB", TINY_BUDGET)
    m = Ranker(**FAST_RANKER).fit(split.train)
    assert "ease" not in m.retrievers_ and {"sasrec", "content", "pop"} <= set(m.retrievers_)
    note = m.size_note(20) or ""
    assert "ease: left out: ease: 20 items need" in note
    assert "sasrec: sampled softmax" in note and "the full one needs" in note  # auto fell back
    assert m.score(np.arange(5)).shape == (5, 20)
    with pytest.raises(ConfigError, match="LLMREC_MEMORY_GB"):
        Ranker(retrievers={"ease": {}}).fit(split.train)


def test_train_prints_the_paths_and_refuses_early(home: Path, tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    store.save(shop_dataset(), home / "datasets")
    retrievers = json.dumps({"ease": {"reg": 100.0}, "itemknn": {}, "pop": {}})
    args = ["train", "--dataset", "shop", "--out", str(tmp_path / "m")]
    args += ["--param", f"retrievers={retrievers}", "--param", "min_data_in_leaf=5"]
    monkeypatch.setenv("LLMREC_MEMORY_GB", TINY_BUDGET)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "ease: left out" in res.output
    info = json.loads((versions.resolve(tmp_path / "m") / "training.json").read_text())
    assert "ease: left out" in info["paths"] and "retriever ease" not in info["stage_seconds"]
    model = Recommender.load(tmp_path / "m")
    assert len(model.recommend(["NaN"], k=5).item_ids[0]) == 5
    refused = subprocess.run(  # the entry point, as a user runs it
        [sys.executable, "-c", "from llmrec.cli import main; main()"]
        + ["train", "--dataset", "shop", "--model", "ease", "--out", str(tmp_path / "e")],
        capture_output=True,
        text=True,
        env={**os.environ, "LLMREC_HOME": str(home), "LLMREC_MEMORY_GB": TINY_BUDGET},
    )
    assert refused.returncode == 2, refused.stderr
    assert "ease: 80 items need" in refused.stderr and "LLMREC_MEMORY_GB" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "e").exists()


def test_scoring_in_blocks_gives_the_same_metrics(monkeypatch) -> None:
    split = loo(shop_dataset())
    model = ItemKNN().fit(split.train).observe(split.test_history)
    whole = ev.evaluate_scores(model.score(split.test.user_idx), split.test, split.train)
    monkeypatch.setattr(model_base, "_SCORE_CELLS", 3 * split.train.n_items)  # 3 users a block
    assert model_base.score_rows(split.train.n_items) == 3
    blocks = ev.evaluate(model, split.test, split.train)
    assert blocks.metrics == whole.metrics
    np.testing.assert_array_equal(blocks.topk, whole.topk)


def test_ranker_features_in_blocks_are_the_same(monkeypatch) -> None:
    """Candidates and labels are identical; features equal up to float noise of the
    matrix products' block sizes (1e-7 in a score, which can flip the last of the five
    digits a retriever's scores are rounded to), so the learned weights agree closely."""
    split = loo(shop_dataset())
    whole = Ranker(**FAST_RANKER).fit(split.train)
    x, names, qid, label, cand = whole._features(split.valid)
    monkeypatch.setattr(ranker_module, "score_rows", lambda n_items: 4)
    bx, bnames, bqid, blabel, bcand = whole._features(split.valid)
    assert bnames == names
    np.testing.assert_array_equal(bcand, cand)
    np.testing.assert_array_equal(bqid, qid)
    np.testing.assert_array_equal(blabel, label)
    np.testing.assert_allclose(bx, x, rtol=1e-3, atol=1e-4)
    blocks = Ranker(**FAST_RANKER).fit(split.train)
    np.testing.assert_allclose(blocks.linear_.weights, whole.linear_.weights, rtol=1e-4, atol=1e-9)


def test_neighbours_by_blocks_match_the_whole_gram() -> None:
    x = loo(shop_dataset()).train.matrix
    sim = cosine_neighbours(x, k=5, shrink=1.0)
    xc = x.tocsc().astype(np.float64)
    gram = (xc.T @ xc).toarray()
    norms = np.sqrt(np.diag(gram))
    full = gram / (np.outer(norms, norms) + 1.0 + 1e-12)
    np.fill_diagonal(full, 0.0)
    dense = sim.toarray()
    for j in range(x.shape[1]):
        kept = np.flatnonzero(dense[j])
        assert len(kept) <= 5
        np.testing.assert_allclose(dense[j, kept], full[j, kept])
        if len(kept) == 5:  # the kept ones are the most similar
            assert dense[j, kept].min() >= np.sort(full[j])[-5] - 1e-12


def test_long_loops_show_progress_and_short_ones_stay_quiet() -> None:
    import io

    from rich.console import Console

    from llmrec.progress import steps

    for total, shown in ((60, True), (5, False)):
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=100)
        with steps("sasrec epoch 3/200", total, 50, console=console) as advance:
            for _ in range(total):
                advance(1)
        text = out.getvalue()
        assert ("sasrec epoch 3/200" in text and f"{total}/{total}" in text) == shown, text
