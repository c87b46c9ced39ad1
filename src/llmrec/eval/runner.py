"""One model on one dataset under one protocol: split, tune on validation, test once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrec.data.dataset import Dataset
from llmrec.errors import ConfigError
from llmrec.eval.evaluate import evaluate, genre_vectors
from llmrec.eval.fairness import GroupGap, beyond_accuracy, group_gap, user_groups
from llmrec.eval.protocols import Split, make_split
from llmrec.eval.tuning import Trial, tune
from llmrec.models import get_model_class
from llmrec.models.base import Recommender
from llmrec.ranking.rerank import RerankSpec


@dataclass
class EvalRun:
    dataset: str
    protocol: str
    model: str
    params: dict[str, Any]
    metrics: dict[str, float]
    valid_ndcg10: float
    fit_seconds: float
    tune_seconds: float
    eval_seconds: float
    n_users: int
    n_items: int
    user_ids: np.ndarray = field(repr=False)
    ranks: np.ndarray = field(repr=False)  # per test user, best target rank (0 = none)
    per_user: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    repeats: dict[str, int] | None = None  # the protocol's repeat counts (``Split.repeats``)
    groups: dict[str, GroupGap] = field(default_factory=dict)  # ndcg@10 by user group
    rerank: str | None = None  # the post-ranking stage the test lists went through
    # --tradeoffs: per reranker, the test metrics at each strength of rerank.STRENGTHS
    tradeoffs: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """docs/design.md's ``--json`` document (plus tuning facts)."""
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "model": self.model,
            "params": self.params,
            "metrics": self.metrics,
            "valid_ndcg@10": self.valid_ndcg10,
            "fit_seconds": self.fit_seconds,
            "tune_seconds": self.tune_seconds,
            "eval_seconds": self.eval_seconds,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "trials": [{"params": t.params, "valid_ndcg@10": t.score} for t in self.trials],
            "repeats": self.repeats,
            "rerank": self.rerank,
            "tradeoffs": self.tradeoffs,
            "groups": {
                a: {
                    "groups": {k: {"users": n, "ndcg@10": m} for k, (n, m) in g.groups.items()},
                    "gap": g.gap,
                    "interval": [g.low, g.high],
                    "p": g.p,
                }
                for a, g in self.groups.items()
            },  # fmt: skip
        }


def run(
    ds: Dataset,
    model: str,
    protocol: str = "loo",
    params: dict[str, Any] | None = None,
    search: bool = True,
    seed: int = 0,
    split: Split | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    rerank: RerankSpec | None = None,
    groups: tuple[str, ...] = (),
    tradeoffs: bool = False,
) -> EvalRun:
    """Tune ``model`` on the validation stage, then evaluate the test stage once (through
    ``rerank`` when given); NDCG@10 by each user attribute in ``groups``; with ``tradeoffs``
    the test lists of every reranker at every strength too (descriptive curves: nothing is
    chosen on them)."""
    cls = get_model_class(model)
    split = split or make_split(ds, protocol, seed=seed)
    fixed = {"seed": seed, **(params or {})}
    t0 = time.perf_counter()
    tuned = tune(cls, split, fixed, search=search, on_trial=on_trial)
    tune_seconds = time.perf_counter() - t0
    if rerank is not None and rerank.auto:  # before the validation events are observed
        rerank = choose_strength(tuned.model, split, rerank.name)
    t0 = time.perf_counter()
    tuned.model.observe(split.test_history)
    vectors = genre_vectors(split.train.item_table)
    pop = np.asarray(split.train.matrix.sum(axis=0)).ravel()
    scored = tuned.model
    if rerank is not None:
        from llmrec.ranking.rerank import Reranked

        scored = Reranked(tuned.model, rerank, vectors, pop)  # type: ignore[assignment]
    result = evaluate(scored, split.test, split.train, item_vectors=vectors)
    eval_seconds = time.perf_counter() - t0
    metrics = dict(result.metrics)
    history = tuned.model.history_[split.test.user_idx]
    extra = beyond_accuracy(
        result.topk,
        split.test.candidates,
        split.test.targets,
        history,
        pop,
        vectors,  # type: ignore[arg-type]
    )
    metrics.update(extra)
    user_ids = split.train.users.ids[result.user_idx]
    activity = np.diff(split.train.matrix.indptr)[result.user_idx]
    gaps = {
        a: group_gap(
            result.per_user["ndcg@10"],
            user_groups(a, user_ids, split.train.user_table, activity),
            a,
            seed=seed,
        )
        for a in groups
    }
    curves = tradeoff_curves(tuned.model, split, vectors, pop) if tradeoffs else {}
    if split.test_is_repeat is not None:  # repeat and new targets scored apart
        for part, mask in (("repeat", split.test_is_repeat), ("new", ~split.test_is_repeat)):
            for name in ("recall@10", "ndcg@10"):
                vals = result.per_user[name][mask]
                metrics[f"{name} {part}"] = float(vals.mean()) if len(vals) else float("nan")
    return EvalRun(
        dataset=ds.name,
        protocol=split.protocol,
        model=model,
        params=tuned.params,
        metrics=metrics,
        valid_ndcg10=tuned.valid_score,
        fit_seconds=tuned.fit_seconds,
        tune_seconds=tune_seconds,
        eval_seconds=eval_seconds,
        n_users=len(split.test.user_idx),
        n_items=split.train.n_items,
        user_ids=user_ids,
        ranks=result.ranks,
        per_user=result.per_user,
        trials=tuned.trials,
        repeats=split.repeats,
        groups=gaps,
        rerank=None if rerank is None else str(rerank),
        tradeoffs=curves,
    )


TRADEOFF_METRICS = ("ndcg@10", "diversity@10", "miscalibration@10", "exposure@10 tail")


def tradeoff_curves(
    model: Recommender, split: Split, vectors: np.ndarray | None, pop: np.ndarray
) -> dict[str, list[dict[str, float]]]:
    """Accuracy against diversity, calibration and tail exposure as each reranker's strength
    grows (``mmr`` and ``calibrated`` need genres); strength 0 is the model's own list."""
    from llmrec.ranking.rerank import RERANKERS, STRENGTHS, Reranked

    history = model.history_[split.test.user_idx]
    out: dict[str, list[dict[str, float]]] = {}
    for name in RERANKERS if vectors is not None else ("tail",):
        out[name] = []
        for strength in STRENGTHS:
            scored = Reranked(model, RerankSpec(name, strength), vectors, pop)
            r = evaluate(scored, split.test, split.train, ks=(10,), item_vectors=vectors)
            extra = beyond_accuracy(
                r.topk, split.test.candidates, split.test.targets, history, pop, vectors
            )
            got = {**r.metrics, **extra}
            out[name].append(
                {"strength": strength, **{m: got[m] for m in TRADEOFF_METRICS if m in got}}
            )
    return out


def choose_strength(model: Recommender, split: Split, name: str) -> RerankSpec:
    """``--rerank NAME=auto``: the strength of best validation NDCG@10 on
    ``rerank.STRENGTHS`` (ties: the weaker), with the tuned model before it observes the
    validation events."""
    from llmrec.ranking.rerank import STRENGTHS, Reranked

    if split.valid_train is not split.train:
        raise ConfigError(
            f"--rerank {name}=auto: protocol {split.protocol} refits after tuning, so the "
            "validation stage cannot judge the final model; give a strength"
        )
    vectors = genre_vectors(split.train.item_table)
    pop = np.asarray(split.train.matrix.sum(axis=0)).ravel()
    found = []
    for strength in STRENGTHS:
        scored = Reranked(model, RerankSpec(name, strength), vectors, pop)
        r = evaluate(scored, split.valid, split.train, ks=(10,), catalogue_metrics=False)
        found.append((r.metrics["ndcg@10"], -strength))
    return RerankSpec(name, -max(found)[1])
