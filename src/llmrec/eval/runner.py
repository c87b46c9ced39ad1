"""One model on one dataset under one protocol: split, tune on validation, test once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrec.data.dataset import Dataset
from llmrec.data.matrix import TrainData, genre_vectors
from llmrec.data.splits import Split, Stage
from llmrec.errors import ConfigError
from llmrec.eval.evaluate import KS, StageResult, evaluate
from llmrec.eval.fairness import GroupGap, beyond_accuracy, group_gap, user_groups
from llmrec.eval.protocols import make_split
from llmrec.eval.tuning import OnTrial, Trial, tune
from llmrec.models import get_model_class
from llmrec.models.base import Recommender
from llmrec.rerank import RERANKERS, STRENGTHS, Reranked, RerankSpec


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
    tune_users: int = 0  # validation users tuning looked at (a sample above --tune-users)
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
            "tune_users": self.tune_users,
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
    on_trial: OnTrial = None,
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
    vectors = genre_vectors(split.train.item_table)
    pop = np.asarray(split.train.matrix.sum(axis=0)).ravel()
    if rerank is not None and rerank.auto:  # before the validation events are observed
        rerank = choose_strength(tuned.model, split, rerank.name, vectors, pop)
    t0 = time.perf_counter()
    tuned.model.observe(split.test_history)
    metrics, result = stage_metrics(tuned.model, split.test, split.train, rerank, vectors, pop)
    eval_seconds = time.perf_counter() - t0
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
        tune_users=len(split.valid.user_idx),
        user_ids=user_ids,
        ranks=result.ranks,
        per_user=result.per_user,
        trials=tuned.trials,
        repeats=split.repeats,
        groups=gaps,
        rerank=None if rerank is None else str(rerank),
        tradeoffs=curves,
    )


def stage_metrics(
    model: Recommender,
    stage: Stage,
    train: TrainData,
    spec: RerankSpec | None,
    vectors: np.ndarray | None,
    pop: np.ndarray,
    ks: tuple[int, ...] = KS,
    catalogue: bool = True,
) -> tuple[dict[str, float], StageResult]:
    """A stage's lists (through the reranker ``spec`` when given) and their metrics, with the
    beyond-accuracy ones (``eval.fairness``) unless ``catalogue`` is off. ``model.history_``
    must be the history the stage's lists exclude."""
    scored = model if spec is None else Reranked(model, spec, vectors, pop)
    r = evaluate(scored, stage, train, ks, item_vectors=vectors, catalogue_metrics=catalogue)  # type: ignore[arg-type]
    if not catalogue:
        return dict(r.metrics), r
    history = model.history_[stage.user_idx]
    extra = beyond_accuracy(r.topk, stage.candidates, stage.targets, history, pop, vectors)
    return {**r.metrics, **extra}, r


TRADEOFF_METRICS = ("ndcg@10", "diversity@10", "miscalibration@10", "exposure@10 tail")


def tradeoff_curves(
    model: Recommender, split: Split, vectors: np.ndarray | None, pop: np.ndarray
) -> dict[str, list[dict[str, float]]]:
    """Accuracy against diversity, calibration and tail exposure as each reranker's strength
    grows (``mmr`` and ``calibrated`` need genres); strength 0 is the model's own list."""
    out: dict[str, list[dict[str, float]]] = {}
    own, _ = stage_metrics(model, split.test, split.train, None, vectors, pop, ks=(10,))
    for name in RERANKERS if vectors is not None else ("tail",):
        out[name] = []
        for strength in STRENGTHS:  # strength 0: the model's own lists, scored once
            spec = RerankSpec(name, strength)
            got = (
                own
                if strength == 0
                else stage_metrics(model, split.test, split.train, spec, vectors, pop, ks=(10,))[0]
            )
            out[name].append(
                {"strength": strength, **{m: got[m] for m in TRADEOFF_METRICS if m in got}}
            )
    return out


def choose_strength(
    model: Recommender, split: Split, name: str, vectors: np.ndarray | None, pop: np.ndarray
) -> RerankSpec:
    """``--rerank NAME=auto``: the strength of best validation NDCG@10 on
    ``rerank.STRENGTHS`` (ties: the weaker), with the tuned model before it observes the
    validation events."""
    if split.valid_train is not split.train:
        raise ConfigError(
            f"--rerank {name}=auto: protocol {split.protocol} refits after tuning, so the "
            "validation stage cannot judge the final model; give a strength"
        )
    found = []
    for strength in STRENGTHS:
        spec = RerankSpec(name, strength)
        got, _ = stage_metrics(
            model, split.valid, split.train, spec, vectors, pop, ks=(10,), catalogue=False
        )
        found.append((got["ndcg@10"], -strength))
    return RerankSpec(name, -max(found)[1])
