"""``hybrid``: a collaborative model's scores blended with content scores, per user.

Both score vectors are standardised per user over the catalogue, then mixed:
(1 - weight) * z(cf) + weight * z(content). A component with no signal for a user (all equal,
e.g. CF on never-seen items) contributes zero, so the other decides.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from llmrec.data.matrix import TrainData
from llmrec.data.splits import Split
from llmrec.eval.tuning import OnTrial, Trial, TuneResult, tune, valid_score, valid_score_of
from llmrec.models import get_model_class
from llmrec.models.base import Recommender, RecommenderConfig, own_params
from llmrec.models.content import Content


class HybridConfig(RecommenderConfig):
    cf: str = Field("itemknn", description="collaborative model name")
    cf_params: dict[str, Any] = Field(default_factory=dict)
    content_params: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(0.3, ge=0, le=1, description="share of the content scores")


def _blend(z_cf: np.ndarray | None, z_content: np.ndarray | None, weight: float) -> np.ndarray:
    """(1 - weight) * z_cf + weight * z_content; a part with zero weight may be None."""
    if weight <= 0:
        assert z_cf is not None
        return z_cf
    if weight >= 1:
        assert z_content is not None
        return z_content
    assert z_cf is not None and z_content is not None
    return (1 - weight) * z_cf + weight * z_content


def _z(part: Recommender, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """Scores standardised per user with the mean and sd over the whole catalogue, so a
    score does not depend on which other candidates are scored with it."""
    s = np.nan_to_num(part.score(user_idx).astype(np.float64), nan=0.0)
    sd = s.std(axis=1, keepdims=True)
    z = np.divide(s - s.mean(axis=1, keepdims=True), sd, out=np.zeros_like(s), where=sd > 0)
    return z[:, item_idx]


class Hybrid(Recommender):
    """CF + content. Tuning: the CF model's own search, the content search, then the weight."""

    name = "hybrid"
    config_class = HybridConfig
    search_space = {
        "cf": ["itemknn", "ease"],
        "weight": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0],
    }
    config: HybridConfig

    def _parts(self) -> tuple[Recommender, Content]:

        cf = get_model_class(self.config.cf)(**{"seed": self.config.seed, **self.config.cf_params})
        return cf, Content(**{"seed": self.config.seed, **self.config.content_params})

    def _fit(self, train: TrainData) -> None:
        cf, content = self._parts()
        self.cf_, self.content_ = cf.fit(train), content.fit(train)

    def _observe(self, data: TrainData) -> None:
        self.cf_.observe(data)
        self.content_.observe(data)

    def can_observe_users(self) -> bool:
        parts = (self.cf_, self.content_)
        return super().can_observe_users() and all(p.can_observe_users() for p in parts)

    def _observe_users(self, part: TrainData, replaced: np.ndarray) -> None:
        rows = np.flatnonzero(replaced)
        self.cf_.observe_users(part, rows)
        self.content_.observe_users(part, rows)

    def _observe_item_events(self, events: pd.DataFrame) -> None:
        self.cf_.observe_item_events(events)
        self.content_.observe_item_events(events)

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        self.cf_.add_items(items)
        self.content_.add_items(items)

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        w = self.config.weight
        z_cf = _z(self.cf_, user_idx, item_idx) if w < 1 else None
        z_content = _z(self.content_, user_idx, item_idx) if w > 0 else None
        return _blend(z_cf, z_content, w)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            **{f"cf.{k}": v for k, v in self.cf_._state().items()},
            **{f"content.{k}": v for k, v in self.content_._state().items()},
        }

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        cf, content = self._parts()
        self.cf_ = self._adopt(cf, state, "cf.")
        self.content_ = self._adopt(content, state, "content.")  # type: ignore[assignment]

    @classmethod
    def tune_on(
        cls, split: Split, fixed: dict[str, Any], search: bool = True, on_trial: OnTrial = None
    ) -> TuneResult:
        """Tune each component on validation, then the blend weight: each part scores the
        validation users once; every weight only re-blends and re-ranks those scores."""

        base = cls.config_class(**fixed)
        if not search:
            model = cls(base)
            t0 = time.perf_counter()
            model.fit(split.valid_train)
            trial = Trial(base.model_dump(), valid_score(model, split), time.perf_counter() - t0)
            return cls._final(split, model, trial, [trial])
        seed = {"seed": base.seed}
        # components are tuned and kept fitted on valid_train: the weight search must not
        # score validation with models refit on data that holds the validation items
        fold = dataclasses.replace(split, train=split.valid_train)
        ct = tune(Content, fold, {**seed, **base.content_params}, on_trial=on_trial)
        users = split.valid.user_idx
        items = split.valid.candidates
        items = np.arange(split.valid_train.n_items) if items is None else items
        z_content = _z(ct.model, users, items)
        cf_names = [base.cf] if "cf" in fixed else cls.search_space["cf"]
        trials, best = list(ct.trials), None
        for cf_name in cf_names:
            cf_params = base.cf_params if cf_name == base.cf else {}
            cf = tune(get_model_class(cf_name), fold, {**seed, **cf_params}, on_trial=on_trial)
            trials += cf.trials
            z_cf = _z(cf.model, users, items)
            for weight in cls.search_space["weight"]:
                config = base.model_copy(
                    update={
                        "cf": cf_name,
                        "cf_params": own_params(cf.params),
                        "content_params": own_params(ct.params),
                        "weight": weight,
                    }
                )
                model = cls(config)
                model._adopt_history(cf.model)
                model.cf_, model.content_ = cf.model, ct.model
                score = valid_score_of(_blend(z_cf, z_content, weight), split)
                trial = Trial(config.model_dump(), score, cf.fit_seconds + ct.fit_seconds)
                trials.append(trial)
                if on_trial:
                    on_trial(trial)
                if best is None or trial.score > best[0].score:
                    best = (trial, model)
        assert best is not None
        return cls._final(split, best[1], best[0], trials)

    @classmethod
    def _final(cls, split: Split, model: Hybrid, trial: Trial, trials: list[Trial]) -> TuneResult:

        if split.valid_train is not split.train:  # cold-items: refit the chosen blend
            t0 = time.perf_counter()
            model = cls(**trial.params).fit(split.train)
            trial = Trial(trial.params, trial.score, time.perf_counter() - t0)
        return TuneResult(model, trial.params, trial.score, trial.fit_seconds, trials)
