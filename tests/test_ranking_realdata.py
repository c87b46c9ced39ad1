"""Issue #4's acceptance on real ml-100k ``loo``: one ranker fit gives both numbers (its
SASRec retriever alone, and the two-stage ranker), tuned on validation, tested once, after
the models observe the validation events."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from llmrec.eval.evaluate import evaluate
from llmrec.eval.protocols import loo
from llmrec.ranking.ranker import Ranker

PEER_SASREC_NDCG10 = 0.0733  # RecBole 1.2.1 SASRec, 8 epochs, same split (RESOURCES.md)


@pytest.mark.realdata
@pytest.mark.slow
def test_ml100k_sasrec_and_ranker_beat_the_best_peer(ml100k, real_settings, monkeypatch) -> None:
    monkeypatch.setenv("LLMREC_HOME", str(real_settings.home))
    split = loo(ml100k)
    ranker = Ranker.tune_on(split, {"seed": 42}).model
    assert isinstance(ranker, Ranker)
    ranker.observe(split.test_history)
    res = {"ranker": evaluate(ranker, split.test, split.train)}
    for name, model in ranker.retrievers_.items():
        res[name] = evaluate(model, split.test, split.train)
    ndcg = {k: r.metrics["ndcg@10"] for k, r in res.items()}
    assert ndcg["sasrec"] >= PEER_SASREC_NDCG10, ndcg
    assert ndcg["ranker"] >= 0.081, ndcg
    best = max((k for k in ndcg if k != "ranker"), key=ndcg.get)
    # at the level of the best single model (SASRec here), never clearly below it; whether it
    # is significantly above is measured over seeds in BENCHMARKS.md (make bench-ranking)
    assert ndcg["ranker"] >= ndcg[best] - 0.005, ndcg
    a, b = res["ranker"].per_user["ndcg@10"], res[best].per_user["ndcg@10"]
    assert wilcoxon(a, b, alternative="less").pvalue > 0.05, (ndcg, best)
    assert np.all(res["ranker"].user_idx == res[best].user_idx)
