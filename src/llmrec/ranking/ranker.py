"""``ranker``: two-stage recommendation. Retrievers (sequence model, EASE, item KNN, content,
popularity) each rank the catalogue; their lists merge into N candidates; a LightGBM
LambdaRank model orders the candidates from retriever, knowledge-graph and context features.

Training: the retrievers are tuned and fitted on the training events; the ranker learns from
the validation item (one held-out latest event per user), with the number of boosting rounds
chosen by cross-validation over users. ``fit(train)`` without a split holds out each user's
latest event itself. The test item is never seen by either stage.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from llmrec.config import get_settings
from llmrec.data import columns as C
from llmrec.data.matrix import TrainData, genre_vectors
from llmrec.data.splits import Split, Stage, holdout
from llmrec.errors import ConfigError, LlmrecError
from llmrec.eval.tuning import OnTrial, Trial, TuneResult, tune
from llmrec.models import get_model_class
from llmrec.models.base import Recommender, RecommenderConfig, TopK, own_params, score_rows
from llmrec.progress import steps
from llmrec.ranking.boosting import choose, train_booster
from llmrec.ranking.candidates import Ranks, quantise, rank_cap_for
from llmrec.ranking.features import GROUPS, EventIndex, ItemSide, Request, build_features
from llmrec.ranking.kg import item_entity_matrix, kg_item_similarity
from llmrec.ranking.listwise import Listwise, fit_listwise
from llmrec.ranking.plan import family, plan

DEFAULT_RETRIEVERS: dict[str, dict[str, Any]] = {
    "sasrec": {},
    "ease": {},
    "itemknn": {},
    "content": {},
    "pop": {},
}


class RankerConfig(RecommenderConfig):
    retrievers: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_RETRIEVERS.items()},
        description="retriever name -> its parameters ({} = tune on validation); "
        "name#suffix adds another of the same family, e.g. sasrec#plain",
    )
    n_candidates: int = Field(100, ge=10, description="candidates the ranker orders")
    groups: list[str] = Field(default_factory=lambda: list(GROUPS), description="features")
    num_leaves: int = Field(15, ge=2)
    learning_rate: float = Field(0.05, gt=0)
    min_data_in_leaf: int = Field(100, ge=1)
    rounds: int | None = Field(None, ge=0, description="boosting rounds; None: by CV")
    l2: float | None = Field(None, gt=0, description="listwise model's L2; None: by CV")
    folds: int = Field(5, ge=2, description="cross-validation folds (over users) for rounds")
    rank_cap: int | None = Field(
        None,
        ge=0,
        description="retriever ranks exact for each retriever's top rank_cap items, the rest "
        "rank_cap + 1 (0: the whole catalogue); None: 0 up to 20,000 items, else 2,000, "
        "decided when fitting",
    )
    repeats: bool = Field(
        False,
        description="candidates include the user's own items, proposed by a 'repeat' "
        "retriever too (data where people return to items; the 'repeats' protocol sets it)",
    )


class Ranker(Recommender):
    name = "ranker"
    config_class = RankerConfig
    config: RankerConfig

    # --- training ------------------------------------------------------------------------
    def _fit(self, train: TrainData) -> None:
        """Without a split: each user's latest event (users with 3+) is the ranker's label."""

        c = self.config
        split = holdout(train, tune_users=get_settings().tune_users, seed=c.seed, repeats=c.repeats)
        self._fit_split(split, search=True)
        self.observe(train)

    @classmethod
    def tune_on(
        cls, split: Split, fixed: dict[str, Any], search: bool = True, on_trial: OnTrial = None
    ) -> TuneResult:
        """Retrievers tuned on validation, the ranker trained on it (rounds by CV)."""

        if split.protocol == "repeats":  # the protocol lets lists hold what users had
            fixed = {"repeats": True, **fixed}
        model = cls(**fixed)
        t0 = time.perf_counter()
        model._fit_split(split, search=search, on_trial=on_trial)
        seconds = time.perf_counter() - t0
        if split.valid_train is not split.train:  # cold-items: refit retrievers on train
            model.observe_refit(split.train)
        trial = Trial(model.config.model_dump(), model.valid_score_, seconds)
        if on_trial:
            on_trial(trial)
        return TuneResult(model, trial.params, trial.score, seconds, [*model.trials_, trial])

    def _fit_split(self, split: Split, search: bool, on_trial: OnTrial = None) -> None:

        c = self.config
        if not c.retrievers:
            raise ConfigError("ranker: needs at least one retriever")
        fold = dataclasses.replace(split, train=split.valid_train)  # retrievers stay on it
        retrievers: dict[str, Recommender] = {}
        trials: list[Trial] = []
        seconds: dict[str, float] = {}
        n_users, n_items = fold.train.n_users, fold.train.n_items
        wanted, self.size_notes_ = plan(c.retrievers, c.repeats, c.seed, n_users, n_items)
        for name, p in sorted(wanted.items()):
            t0 = time.perf_counter()
            cls = get_model_class(family(name))
            res = tune(cls, fold, {"seed": c.seed, **p}, search=search and not p, on_trial=on_trial)
            retrievers[name] = res.model
            trials += res.trials
            seconds[f"retriever {name}"] = time.perf_counter() - t0
        self.fit_ranker(split, retrievers)
        self.trials_ = trials
        self.stage_seconds_ = {**seconds, **self.stage_seconds_}

    def check_fits(self, n_users: int, n_items: int) -> None:
        c = self.config
        plan(c.retrievers, c.repeats, c.seed, n_users, n_items)  # raises when none fits

    def size_note(self, n_items: int) -> str | None:
        c = self.config
        notes = getattr(self, "size_notes_", None)
        if notes is None:
            notes = plan(c.retrievers, c.repeats, c.seed, 0, n_items)[1]
        fitted = hasattr(self, "retrievers_")  # fitted with None: before the cap, exact
        cap = (0 if fitted else rank_cap_for(n_items)) if c.rank_cap is None else c.rank_cap
        if cap and cap < n_items:
            top = f"exact for each retriever's top {cap:,} of {n_items:,} items"
            notes = {**notes, "ranks": top}
        return "; ".join(f"{n}: {v}" for n, v in notes.items()) or None

    def fit_ranker(self, split: Split, retrievers: dict[str, Recommender]) -> Ranker:
        """Stage two only: learn to rank the candidates of ``retrievers`` (fitted on
        ``split.valid_train``, kept as they are) from the validation items."""
        c = self.config
        bad = set(c.groups) - set(GROUPS)
        if bad:
            raise ConfigError(f"ranker: unknown feature groups {sorted(bad)}: use {GROUPS}")
        t0 = time.perf_counter()
        train = split.valid_train
        self._bind(train)
        # sorted by name: the feature order is fixed
        self.retrievers_ = {n: retrievers[n] for n in sorted(retrievers)}
        if c.rank_cap is None:  # fixed at fitting: features mean the same when serving
            self.config = c = c.model_copy(update={"rank_cap": rank_cap_for(train.n_items)})
        self.trials_ = []
        self._fit_side(train)
        self.events_ = EventIndex.build(train)
        self.__dict__.pop("feature_names_", None)  # a refit learns its features afresh
        x, names, qid, label, cand = self._features(split.valid)
        self.feature_names_ = names
        l2, rounds, self.valid_score_ = choose(c, x, qid, label, cand)
        self.linear_ = fit_listwise(x, qid, label, l2)
        self.booster_ = train_booster(c, x, qid, label, rounds, self.linear_)
        params = {n: own_params(m.config.model_dump()) for n, m in self.retrievers_.items()}
        self.config = c.model_copy(update={"retrievers": params, "rounds": rounds, "l2": l2})
        self.stage_seconds_ = {"ranker": time.perf_counter() - t0}
        return self

    def observe_refit(self, train: TrainData) -> None:
        """Refit the retrievers with their chosen parameters on ``train`` (same indices)."""
        for name, model in self.retrievers_.items():
            self.retrievers_[name] = type(model)(model.config).fit(train)
        self.observe(train)

    def _fit_side(self, train: TrainData) -> None:

        table = train.item_table
        year = np.full(train.n_items, np.nan)
        if table is not None and C.YEAR in table:
            year = table[C.YEAR].to_numpy(dtype=float)
        g = genre_vectors(table)
        g = np.zeros((train.n_items, 1), np.float32) if g is None else g
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        kg = kg_item_similarity(item_entity_matrix(train.kg, train.item_entity, train.items))
        text = None
        content = self.retrievers_.get("content")
        if content is not None:
            text = content.item_vectors_  # type: ignore[attr-defined]
        pop = np.asarray(train.matrix.sum(axis=0)).ravel().astype(np.float32)
        self.side_ = ItemSide(year, g.astype(np.float32), kg, text, pop)

    # --- features --------------------------------------------------------------------------
    def candidates(
        self, user_idx: np.ndarray, request: Request | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[str], Ranks]:
        """(candidates users x N, features rows x F, feature names, retriever ranks)."""
        if self.config.repeats:  # own items are candidates too
            excluded = np.zeros((len(user_idx), len(self.items_)), bool)
        else:
            excluded = self.history_[user_idx].toarray().astype(bool)
        scores = {n: quantise(m.score(user_idx)) for n, m in self.retrievers_.items()}
        cap = self.config.rank_cap or 0  # None: fitted before the cap existed, exact
        ranks = Ranks.of(list(scores.values()), excluded, cap)
        cand = ranks.merge(excluded, self.config.n_candidates)
        rows, cols = np.nonzero(cand >= 0)
        at = ranks.at(rows, cand[rows, cols])  # (retrievers, pairs)
        request = request or Request.latest(self.events_, user_idx)
        groups = tuple(self.config.groups)
        shares = None  # while fitting: every context field the events carry
        if hasattr(self, "feature_names_"):  # fitted: the ones it was trained with
            shares = tuple(n[11:] for n in self.feature_names_ if n.startswith("item_share_"))
        pair_ranks = dict(zip(scores, at, strict=True))
        x, names = build_features(
            user_idx, cand, scores, pair_ranks, self.side_, self.events_, request, groups, shares
        )
        return cand, x, names, ranks

    def _features(
        self, stage: Stage
    ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:
        # block by block of users: retriever scores and ranks are a block x items each
        block = score_rows(len(self.items_))
        parts, n = [], len(stage.user_idx)
        with steps(f"ranker features of {n:,} users", -(-n // block), 10) as advance:
            for lo in range(0, n, block):
                parts.append(self.candidates(stage.user_idx[lo : lo + block])[:3])
                advance(1)
        cand = np.concatenate([p[0] for p in parts])
        x, names = np.concatenate([p[1] for p in parts]), parts[0][2]
        rows, cols = np.nonzero(cand >= 0)
        t_rows, t_cols = np.nonzero(stage.targets >= 0)
        targets = stage.targets[t_rows, t_cols]  # candidate positions when the stage has them
        items = targets if stage.candidates is None else stage.candidates[targets]
        is_target = sp.csr_matrix(
            (np.ones(len(items), bool), (t_rows, items)), shape=(len(cand), len(self.items_))
        )
        label = np.asarray(is_target[rows, cand[rows, cols]]).ravel().astype(np.float32)
        return x, names, rows, label, cand

    # --- scoring ---------------------------------------------------------------------------
    def rank(
        self, user_idx: np.ndarray, request: Request | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(candidates users x N, ranker scores users x N (NaN for padding), the retriever
        that ranks each candidate best, as an index into ``retrievers_`` (0 for padding))."""
        cand, x, names, ranks = self.candidates(user_idx, request)
        rows, cols = np.nonzero(cand >= 0)
        source = np.zeros(cand.shape, dtype=np.int64)
        source[rows, cols] = ranks.at(rows, cand[rows, cols]).argmin(axis=0)
        return cand, self._predict(cand, x, names), source

    def _predict(self, cand: np.ndarray, x: np.ndarray, names: list[str]) -> np.ndarray:
        """Ranker scores of the candidates (users x N, NaN for padding)."""
        if names != self.feature_names_:
            raise LlmrecError(
                f"ranker: features {names} differ from the trained {self.feature_names_}"
            )
        rows, cols = np.nonzero(cand >= 0)
        pred = np.full(cand.shape, np.nan)
        if len(x):
            extra = self.booster_.predict(x) if self.booster_ is not None else 0.0
            pred[rows, cols] = self.linear_.predict(x) + extra
        return pred

    def top_k(
        self,
        user_idx: np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        context: dict[str, str] | None = None,
    ) -> TopK:
        """``Recommender.top_k`` from the candidates alone when each user has ``k`` of them
        (the service's lists): the same items, scores and sources as ranking every item
        (non-candidates score below every candidate), without users x items scores. Fewer
        candidates than ``k``: every item, as the base class does."""
        user_idx = self._user_indices(user_idx)
        cand, x, names, ranks = self.candidates(user_idx, self._request(user_idx, context))
        pred = self._predict(cand, x, names).astype(np.float32)  # as ``score`` returns them
        ok = cand >= 0
        if exclude_seen and self.config.repeats:  # repeats are candidates: seen ones leave
            seen = self.history_[user_idx].copy()
            seen.data = np.ones(len(seen.data), np.int8)  # a stored entry is seen, any value
            rows = np.repeat(np.arange(len(cand)), cand.shape[1])
            ok &= np.asarray(seen[rows, np.maximum(cand, 0).ravel()]).reshape(cand.shape) == 0
        names_ = list(self.retrievers_)
        if k > int(ok.sum(axis=1).min(initial=k)) or np.isnan(pred[ok]).any():
            scores, source = self._all_from(cand, pred, ranks)
            return self._top_of(
                user_idx, scores.astype(np.float32), source, names_, k, exclude_seen
            )
        key = np.where(ok, -pred, np.inf)
        order = np.lexsort((cand, key), axis=1)[:, :k]  # best first, ties to the lower item
        items = np.take_along_axis(cand, order, 1)
        rows = np.repeat(np.arange(len(cand)), k)
        picked = np.take_along_axis(pred, order, 1).ravel()
        best = ranks.at(rows, items.ravel()).argmin(axis=0)
        return TopK(rows, items.ravel(), picked, [names_[j] for j in best])

    def _score_with_sources(
        self, user_idx: np.ndarray, context: dict[str, str] | None
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        scores, source = self._all_scores(user_idx, self._request(user_idx, context))
        return scores.astype(np.float32), source, list(self.retrievers_)  # as ``score`` does

    def _request(self, user_idx: np.ndarray, context: dict[str, str] | None) -> Request | None:
        """The request a context describes (None: each user's latest event's, by default)."""
        return Request.from_context(self.events_, user_idx, context) if context else None

    def _score(
        self, user_idx: np.ndarray, item_idx: np.ndarray, request: Request | None = None
    ) -> np.ndarray:
        return self._all_scores(user_idx, request)[0][:, item_idx]

    def _all_scores(
        self, user_idx: np.ndarray, request: Request | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, best retriever) for every item; the items that are not candidates rank
        after every candidate, by their best rank in any retriever."""
        cand, x, names, ranks = self.candidates(user_idx, request)
        return self._all_from(cand, self._predict(cand, x, names), ranks)

    @staticmethod
    def _all_from(
        cand: np.ndarray, pred: np.ndarray, ranks: Ranks
    ) -> tuple[np.ndarray, np.ndarray]:
        best_rank, source = ranks.best()
        out = -1e6 - best_rank.astype(np.float64)
        rows, cols = np.nonzero(cand >= 0)
        out[rows, cand[rows, cols]] = pred[rows, cols]
        return out, source

    def _observe(self, data: TrainData) -> None:
        for model in self.retrievers_.values():
            model.observe(data)
        self.events_ = EventIndex.build(data)

    def can_observe_users(self) -> bool:
        parts = self.retrievers_.values()
        return super().can_observe_users() and all(m.can_observe_users() for m in parts)

    def _observe_users(self, part: TrainData, replaced: np.ndarray) -> None:
        rows = np.flatnonzero(replaced)
        for model in self.retrievers_.values():
            model.observe_users(part, rows)
        self.events_ = self.events_.with_users(part, replaced)

    def _observe_item_events(self, events: pd.DataFrame) -> None:
        for model in self.retrievers_.values():
            model.observe_item_events(events)
        ctx = {
            c: events[c].to_numpy(dtype=object) for c in self.events_.item_context if c in events
        }
        self.events_ = self.events_.with_item_events(
            events["item_idx"].to_numpy(), events[C.TIMESTAMP].to_numpy(np.int64), ctx
        )

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        """Every retriever takes the items (text-aware ones embed them); the item side
        grows with what the table says (release year, text vector) and no events yet."""
        for model in self.retrievers_.values():
            model.add_items(items)
        content = self.retrievers_.get("content")
        text = content.item_vectors_ if content is not None else None  # type: ignore[attr-defined]
        self.side_ = self.side_.grown(n_items, index, items, text)
        self.events_ = self.events_.with_items(n_items)

    # --- state -----------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, model in self.retrievers_.items():
            out.update({f"r.{name}.{k}": v for k, v in model._state().items()})
        s, e = self.side_, self.events_
        out.update(
            {
                "side.year": s.year,
                "side.genres": s.genres,
                "side.kg_indptr": s.kg.indptr,
                "side.kg_indices": s.kg.indices,
                "side.kg_data": s.kg.data,
                "side.popularity": s.popularity,
                "booster": np.frombuffer(
                    self.booster_.model_to_string().encode() if self.booster_ else b"", np.uint8
                ),
                "linear.mean": self.linear_.mean,
                "linear.scale": self.linear_.scale,
                "linear.weights": self.linear_.weights,
                "feature_names": np.array(self.feature_names_),
                "log.user": np.repeat(np.arange(len(e.user_indptr) - 1), np.diff(e.user_indptr)),
                "log.item": e.items,
                "log.ts": e.ts,
                **{f"log.ctx.{k}": v for k, v in e.context.items()},
            }
        )
        if s.text is not None:
            out["side.text"] = s.text
        return out

    def _write_files(self, folder: Path, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each retriever writes its own files (``lm``: its encoder) under ``r.<name>/``."""
        for name, model in self.retrievers_.items():
            p = f"r.{name}."
            own = {k[len(p) :]: v for k, v in state.items() if k.startswith(p)}
            sub = folder / f"r.{name}"
            sub.mkdir(exist_ok=True)
            kept = model._write_files(sub, own)
            if not any(sub.iterdir()):
                sub.rmdir()
            state = {k: v for k, v in state.items() if not k.startswith(p)}
            state.update({p + k: v for k, v in kept.items()})
        return state

    def _read_files(self, folder: Path) -> dict[str, np.ndarray]:

        out: dict[str, np.ndarray] = {}
        for name, params in sorted(self.config.retrievers.items()):
            if (folder / f"r.{name}").is_dir():
                part = get_model_class(family(name))(**{"seed": self.config.seed, **params})
                out.update(
                    {f"r.{name}.{k}": v for k, v in part._read_files(folder / f"r.{name}").items()}
                )
        return out

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        import lightgbm as lgb

        self.retrievers_ = {}
        for name, params in sorted(self.config.retrievers.items()):
            model = get_model_class(family(name))(**{"seed": self.config.seed, **params})
            model = self._adopt(model, state, f"r.{name}.")
            self.retrievers_[name] = model
        n = len(self.items_)
        kg = sp.csr_matrix(
            (state["side.kg_data"], state["side.kg_indices"], state["side.kg_indptr"]), shape=(n, n)
        )
        self.side_ = ItemSide(
            state["side.year"],
            state["side.genres"],
            kg,
            state.get("side.text"),
            state["side.popularity"],
        )
        text = state["booster"].tobytes().decode()
        self.booster_ = lgb.Booster(model_str=text) if text else None
        self.linear_ = Listwise(
            state["linear.mean"], state["linear.scale"], state["linear.weights"]
        )
        self.feature_names_ = [str(x) for x in state["feature_names"]]
        log = pd.DataFrame(
            {
                "user_idx": state["log.user"],
                "item_idx": state["log.item"],
                C.TIMESTAMP: state["log.ts"],
                **{k[8:]: v for k, v in state.items() if k.startswith("log.ctx.")},
            }
        )
        data = TrainData(self.users_, self.items_, self.history_, self.recency_, log)
        self.events_ = EventIndex.build(data)
        if len(self.events_.ts) != len(log):
            raise LlmrecError("ranker: saved event log is inconsistent")
