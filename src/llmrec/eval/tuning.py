"""Hyper-parameter search on the validation item (never the test item), early stopping included."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard

import numpy as np

from llmrec.data.splits import Split
from llmrec.eval.evaluate import evaluate_ranking, evaluate_scores, rank_stage
from llmrec.models.base import Recommender

METRIC = "ndcg@10"


@dataclass
class Trial:
    params: dict[str, Any]
    score: float
    fit_seconds: float
    model: str = ""  # the family tuned (a composite's trials name its parts)


@dataclass
class TuneResult:
    model: Recommender  # fitted with the best parameters, ready for the test stage
    params: dict[str, Any]
    valid_score: float
    fit_seconds: float  # one fit of the chosen configuration
    trials: list[Trial] = field(default_factory=list)


OnTrial = Callable[[Trial], None] | None  # told each trial as it ends (progress lines)


class Composite(Protocol):
    """A model built from other models (``ranking/``: ranker, llm-rerank, hybrid): it tunes
    its parts itself, with ``tune`` for each part and validation for its own parameters.
    ``tune`` hands such a class the split instead of searching a grid."""

    name: str

    @classmethod
    def tune_on(
        cls, split: Split, fixed: dict[str, Any], search: bool = True, on_trial: OnTrial = None
    ) -> TuneResult: ...


def is_composite(model_cls: type[Recommender]) -> TypeGuard[type[Composite]]:
    return callable(getattr(model_cls, "tune_on", None))


def grid(space: dict[str, list[Any]], fixed: dict[str, Any]) -> list[dict[str, Any]]:
    free = {k: v for k, v in space.items() if k not in fixed}
    keys = sorted(free)
    return [
        {**fixed, **dict(zip(keys, vals, strict=True))}
        for vals in itertools.product(*(free[k] for k in keys))
    ]


def valid_score(model: Recommender, split: Split) -> float:
    """NDCG@10 on the validation stage (the only number tuning ever looks at)."""
    ranking = rank_stage(model, split.valid, 0)  # NDCG@10 needs the targets' ranks only
    res = evaluate_ranking(ranking, split.valid, split.valid_train, (10,), None, False)
    return res.metrics[METRIC]


def valid_score_of(score_matrix: np.ndarray, split: Split) -> float:
    """``valid_score`` for scores already computed for the validation stage."""
    res = evaluate_scores(
        score_matrix, split.valid, split.valid_train, ks=(10,), catalogue_metrics=False
    )
    return res.metrics[METRIC]


def best_scoring(model: Recommender, split: Split, fixed: dict[str, Any]) -> float:
    """Try each setting of the model's ``score_space`` (parameters that change scoring, not
    fitting: no refit) on validation; leave the model configured with the best. Values in
    ``fixed`` are not searched."""
    space = {k: v for k, v in getattr(model, "score_space", {}).items() if k not in fixed}
    if not space:
        return valid_score(model, split)
    best, best_params = -1.0, {}
    for params in grid(space, {}):
        model.config = model.config.model_copy(update=params)
        score = valid_score(model, split)
        if score > best:
            best, best_params = score, params
    model.config = model.config.model_copy(update=best_params)
    return best


def _scoring_params(model: Recommender) -> dict[str, Any]:
    return {k: getattr(model.config, k) for k in getattr(model, "score_space", {})}


@dataclass
class EarlyStopping:
    """When to check validation and when to stop: every ``eval_every`` epochs and at the last
    one; a check improves on the best or counts against ``patience``. With ``smooth`` > 1 an
    epoch is judged by the mean of its check and the ``smooth - 1`` before it: where
    check-to-check noise is larger than the trend (BPR), the first lucky check no longer
    wins over a plateau reached later. Shared by this process's loop and the data-parallel
    one (``eval.data_parallel``), so both stop at the same epoch on the same scores."""

    eval_every: int
    patience: int
    last_epoch: int
    smooth: int = 1
    best: float = -1.0
    best_epoch: int = 0
    bad: int = 0
    recent: list[float] = field(default_factory=list)

    def due(self, epoch: int) -> bool:
        return epoch % self.eval_every == 0 or epoch == self.last_epoch

    def check(self, epoch: int, score: float, patience: int = 0) -> tuple[bool, bool]:
        """(improved, stop) after a check scoring ``score``; ``patience``: a model's own,
        known once it knows its path (data size), used when larger."""
        self.recent = [*self.recent, score][-self.smooth :]
        smoothed = sum(self.recent) / len(self.recent)
        if smoothed > self.best:
            self.best, self.best_epoch, self.bad = smoothed, epoch, 0
            return True, False
        self.bad += 1
        return False, self.bad >= max(self.patience, patience)


def stopping_for(model: Recommender) -> EarlyStopping:
    cls = type(model)
    last = model.config.epochs  # type: ignore[attr-defined]
    return EarlyStopping(cls.eval_every, cls.patience, last, cls.smooth_checks)


def _fit_early_stopped(
    model: Recommender, split: Split, stop: EarlyStopping, fixed: dict[str, Any]
) -> tuple[float, int, float]:
    """Train epoch by epoch; keep the state of the best validation epoch.

    Returns (best score, best epoch, training seconds up to that epoch, evaluation excluded).
    """
    best_seconds, seconds = 0.0, 0.0
    snapshot: dict | None = None
    scoring: dict[str, Any] = {}
    t0 = time.perf_counter()
    for epoch in model.fit_epochs(split.valid_train):
        seconds += time.perf_counter() - t0
        if stop.due(epoch):
            score = best_scoring(model, split, fixed)
            improved, done = stop.check(epoch, score, getattr(model, "patience_", 0))
            if improved:
                best_seconds = seconds
                snapshot = copy.deepcopy(model._state())
                scoring = _scoring_params(model)
            if done:
                break
        t0 = time.perf_counter()
    assert snapshot is not None
    model._load_state(snapshot)
    if scoring:
        model.config = model.config.model_copy(update=scoring)
    return stop.best, stop.best_epoch, best_seconds


# Fits an iterative model that can train data-parallel (``Recommender.data_parallel``) in
# place of ``_fit_early_stopped``, same arguments and result: set by ``data_parallel_fit``.
FitEarlyStopped = Callable[
    [Recommender, Split, EarlyStopping, dict[str, Any]], tuple[float, int, float]
]
_DATA_PARALLEL: ContextVar[FitEarlyStopped | None] = ContextVar("data_parallel", default=None)


@contextmanager
def data_parallel_fit(fit: FitEarlyStopped) -> Iterator[None]:
    """Within the block, ``tune`` fits data-parallel models with ``fit`` (Ray Train)."""
    token = _DATA_PARALLEL.set(fit)
    try:
        yield
    finally:
        _DATA_PARALLEL.reset(token)


def tries_weighting(model_cls: type[Recommender], split: Split, fixed: dict[str, Any]) -> bool:
    """Whether tuning tries ``weighting="events"`` (once, on the best of the grid: it doubles
    no grid): the model has the option, it is not fixed, and the events weigh differently."""
    return (
        "weighting" in model_cls.config_class.model_fields
        and "weighting" not in fixed
        and split.valid_train.weighted
    )


class Derivable(Protocol):
    """A fitted model that gives some other settings without refitting (ItemKNN: a smaller
    k is the first k of a larger one's neighbours). ``tune`` fits such a setting's parent
    first and derives the rest from it."""

    def derives(self, params: dict[str, Any]) -> bool: ...

    def derive(self, params: dict[str, Any]) -> Recommender: ...


def is_derivable(model: object) -> TypeGuard[Derivable]:
    return callable(getattr(model, "derives", None)) and callable(getattr(model, "derive", None))


def derived(
    parent: tuple[Recommender, float] | None, params: dict[str, Any]
) -> tuple[Recommender | None, float]:
    """(The setting ``params`` derived from the fitted ``parent``, where it ``derives`` it;
    its seconds: the parent's fit plus the derivation), else (None, 0)."""
    if parent is None or not is_derivable(parent[0]) or not parent[0].derives(params):
        return None, 0.0
    t0 = time.perf_counter()
    model = parent[0].derive(params)
    return model, parent[1] + time.perf_counter() - t0


def n_trials(model_cls: type[Recommender], split: Split, fixed: dict[str, Any]) -> int:
    """How many settings ``tune`` fits (composites: unknown up front, 0)."""
    if is_composite(model_cls):
        return 0
    return len(grid(model_cls.search_space, fixed)) + tries_weighting(model_cls, split, fixed)


def tune(
    model_cls: type[Recommender],
    split: Split,
    fixed: dict[str, Any] | None = None,
    search: bool = True,
    on_trial: OnTrial = None,
) -> TuneResult:
    """Fit every configuration of the search space on ``split.valid_train``; pick by NDCG@10."""
    fixed = dict(fixed or {})
    if is_composite(model_cls):  # they tune their parts themselves
        return model_cls.tune_on(split, fixed, search=search, on_trial=on_trial)
    configs = grid(model_cls.search_space, fixed) if search else [fixed]
    trials: list[Trial] = []
    best: tuple[float, Recommender, dict[str, Any], float] | None = None
    weigh = search and tries_weighting(model_cls, split, fixed)
    parent: tuple[Recommender, float] | None = None  # the last fit, to derive others from
    while configs:
        params = configs.pop(0)
        model, seconds = derived(parent, params) if search else (None, 0.0)
        if model is not None:
            score = best_scoring(model, split, params)
        elif model_cls.iterative:
            model = model_cls(**params)
            fit = (model_cls.data_parallel and _DATA_PARALLEL.get()) or _fit_early_stopped
            score, epochs, seconds = fit(
                model,
                split,
                stopping_for(model),
                params if search else {**model.config.model_dump(), **params},
            )
            model.config = model.config.model_copy(update={"epochs": epochs})
        else:
            model = model_cls(**params)
            t0 = time.perf_counter()
            model.fit(split.valid_train)
            seconds = time.perf_counter() - t0
            score = best_scoring(model, split, params if search else model.config.model_dump())
            parent = (model, seconds)
            if is_derivable(model):  # what it derives next, before another fit replaces it
                configs.sort(key=lambda c, m=model: not m.derives(c))
        params = {**params, **_scoring_params(model)}
        if model_cls.iterative:
            params["epochs"] = epochs
        trial = Trial(params, score, seconds, model_cls.name)
        trials.append(trial)
        if on_trial:
            on_trial(trial)
        if best is None or score > best[0]:
            best = (score, model, params, seconds)
        if not configs and weigh:
            weigh = False
            configs.append({**best[2], "weighting": "events"})
    assert best is not None
    score, model, params, seconds = best
    if split.valid_train is not split.train:  # cold-items: refit on all of training
        model = model_cls(**params)
        t0 = time.perf_counter()
        model.fit(split.train)
        seconds = time.perf_counter() - t0
    return TuneResult(model, model.config.model_dump(), score, seconds, trials)
