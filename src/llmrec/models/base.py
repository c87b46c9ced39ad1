"""The one model interface. Public methods live here; a model writes only the ``_`` hooks."""

from __future__ import annotations

import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmrec.atomic import replace_folder
from llmrec.data import columns as C
from llmrec.data.events import EventRules
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData, shared_splices, splice_rows, widen
from llmrec.errors import ConfigError, LlmrecError
from llmrec.models.topk import Recommendations, TopK, top_k
from llmrec.versions import resolve

FORMAT_VERSION = 1
# how CF models read the history: every pair 1, or weighted by its events (``data.events``)
Weighting = Literal["binary", "events"]


_SCORE_CELLS = 1 << 24  # users x items scored at once (64 MiB of float32): a big catalogue
# scores fewer users per block, so memory never grows with users x items


def score_rows(n_items: int) -> int:
    """Users per scoring block for a catalogue of ``n_items`` (2,048 at most)."""
    return int(min(2048, max(1, _SCORE_CELLS // max(n_items, 1))))


class RecommenderConfig(BaseModel):
    """Hyper-parameters; shared names: embedding_size, epochs, learning_rate, reg, seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 42


class HistoryConfig(RecommenderConfig):
    """Parameters of models that score from the user's history rows (``weighted_history``)."""

    half_life: float | None = Field(
        None, gt=0, description="history items weigh 0.5 ** (age / half_life); None: equal"
    )
    weighting: Weighting = Field(
        "binary", description="history as 1 per item, or weighted by its events (data.events)"
    )


class Recommender(ABC):
    """Scores items for users; never ranks for evaluation nor evaluates (``eval/`` does)."""

    name: ClassVar[str]
    config_class: ClassVar[type[RecommenderConfig]] = RecommenderConfig
    # Values tried on the validation item by ``eval.tuning`` (never on the test item).
    search_space: ClassVar[dict[str, list[Any]]] = {}
    # Parameters that change scoring but not fitting: tuning tries each value at every
    # validation check without a refit (e.g. the weight of a popularity prior).
    score_space: ClassVar[dict[str, list[Any]]] = {}
    # Iterative models train epoch by epoch so that tuning can stop early on validation.
    iterative: ClassVar[bool] = False
    eval_every: ClassVar[int] = 10  # epochs between validation checks (iterative models)
    # iterative models that can train data-parallel (eval.data_parallel sets ``shard``)
    data_parallel: ClassVar[bool] = False
    patience: ClassVar[int] = 5  # checks without improvement before stopping
    # checks averaged (trailing) before comparing epochs: >1 where single checks are noise
    smooth_checks: ClassVar[int] = 1

    def __init__(self, config: RecommenderConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise ConfigError("pass a config or parameters, not both")
        try:
            self.config = config or self.config_class(**params)
        except ValidationError as e:
            raise ConfigError(f"{self.name}: invalid parameters: {pydantic_message(e)}") from e

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    # --- public API -----------------------------------------------------------------------
    def fit(self, train: TrainData) -> Self:
        """Fit on ``train``; fitting again replaces the previous fit."""
        for _ in self.fit_epochs(train):
            pass
        return self

    def fit_epochs(self, train: TrainData) -> Iterator[int]:
        """Fit, yielding the number of epochs done after each epoch (iterative models)."""
        if train.n_users == 0 or train.n_items == 0:
            raise LlmrecError("cannot fit on an empty training set")
        self.check_fits(train.n_users, train.n_items)
        self._bind(train)
        yield from self._fit_epochs(train)

    def prepare(self, train: TrainData) -> None:
        """Work every worker of a data-parallel fit needs, done once by the driver before
        they start: what it computes goes to a disk cache the workers read (e.g. the item
        text vectors), so N workers do not each compute it."""
        return None

    def check_fits(self, n_users: int, n_items: int) -> None:
        """Raise ``ConfigError`` (naming the limit and how to change it) when fitting this
        many users and items would not fit the memory budget: before any memory is taken,
        never an out-of-memory kill halfway."""
        return None

    def size_note(self, n_items: int) -> str | None:
        """Which of its paths the model takes for a catalogue of ``n_items`` (printed by
        ``llmrec train``); None when it has one path."""
        return None

    def _bind(self, train: TrainData) -> None:
        """Take ``train``'s users, items and history as the fitted ones."""
        self.users_, self.items_ = train.users, train.items
        self.history_, self.recency_, self.strength_ = train.matrix, train.recency, train.weights
        self.event_rules_ = train.rules

    def observe(self, data: TrainData) -> Self:
        """Take ``data`` as what is now known of the users (e.g. training plus validation
        events when the test item is ranked, or live events in the service), without
        refitting: history-based models score from it at once; models with learned user
        factors only exclude it. ``data`` may list new users after the known ones (they get
        a neutral state where a model has per-user parameters); its items must be the
        model's own (grow them with ``add_items``)."""
        self._check_fitted()
        n_old = len(self.users_)
        if data.n_items != len(self.items_) or data.n_users < n_old:
            raise LlmrecError("observe() needs the model's items and at least its users")
        grown = data.n_users > n_old
        if grown and not np.array_equal(data.users.ids[:n_old], self.users_.ids):
            raise LlmrecError("observe(): new users must come after the known ones")
        self.users_ = data.users
        self.history_, self.recency_, self.strength_ = data.matrix, data.recency, data.weights
        if grown:
            self._add_users(n_old)
        self._observe(data)
        return self

    def can_observe_users(self) -> bool:
        """Whether ``observe_users`` keeps all per-user state current: true when that state
        is the history alone, or the model updates the rest in ``_observe_users``."""
        cls = type(self)
        if cls.observe is not Recommender.observe:
            return False
        return (
            cls._observe is Recommender._observe
            or cls._observe_users is not Recommender._observe_users
        )

    def observe_users(self, part: TrainData, rows: np.ndarray) -> Self:
        """``observe`` for users ``rows`` alone: ``part`` holds their whole logs (the
        model's items, at least its users). They score as after ``observe`` of all data;
        item-level state (counts, popularity) stays as last observed. Cost: their events
        plus linear copies of per-user arrays, not a pass over the log."""
        self._check_fitted()
        n_old = len(self.users_)
        if not self.can_observe_users():
            raise LlmrecError(f"{self.name}: observe_users() unsupported, use observe()")
        if part.n_items != len(self.items_) or part.n_users < n_old:
            raise LlmrecError("observe_users() needs the model's items and at least its users")
        if part.n_users > n_old and not np.array_equal(part.users.ids[:n_old], self.users_.ids):
            raise LlmrecError("observe_users(): new users must come after the known ones")
        replaced = np.zeros(part.n_users, dtype=bool)
        replaced[np.asarray(rows, dtype=np.int64)] = True
        with shared_splices():  # parts of a composite model share one spliced history
            self.users_ = part.users
            self.history_ = splice_rows(self.history_, part.matrix, replaced)
            self.recency_ = splice_rows(self.recency_, part.recency, replaced)
            self.strength_ = splice_rows(self.strength_, part.weights, replaced)
            if part.n_users > n_old:
                self._add_users(n_old)
            self._observe_users(part, replaced)
        return self

    def observe_item_events(self, events: pd.DataFrame) -> Self:
        """Item-level state (per-item counts, times, context shares) takes ``events``, new
        ones (user_idx, item_idx, timestamp, event, value, context columns), without a pass
        over the log; with ``observe_users`` for the users who made them, the model then
        scores as after ``observe`` of the whole log (the service's refresh). Models whose
        item-level state is fixed at fit, or read from the history when scoring, have none
        to update."""
        self._check_fitted()
        self._observe_item_events(events)
        return self

    def add_items(self, items: pd.DataFrame) -> Self:
        """Make new or changed items (``item_id`` plus title/genres/description... columns)
        scorable at once, without refitting: text-aware models embed them, the others give
        a new item a neutral (zero) state. Known ids get their text updated."""
        self._check_fitted()
        if C.ITEM_ID not in items:
            raise LlmrecError("add_items(): the table needs an 'item_id' column")
        items = items.assign(**{C.ITEM_ID: items[C.ITEM_ID].astype(str)})
        ids = items[C.ITEM_ID].to_numpy()
        if len(set(ids)) != len(ids):
            raise LlmrecError("add_items(): item ids repeat")
        pos = self.items_.index(ids)
        new = ids[pos < 0]
        grown = IdMap(np.concatenate([self.items_.ids, new])) if len(new) else self.items_
        index = grown.index(ids)
        self._add_items(items, index, len(grown))  # grows model state; may refuse
        if len(new):
            self.items_ = grown
            shape = (len(self.users_), len(grown))
            self.history_, self.recency_ = widen(self.history_, shape), widen(self.recency_, shape)
            self.strength_ = widen(self.strength_, shape)
        return self

    def _user_indices(self, user_idx: np.ndarray) -> np.ndarray:
        """``user_idx`` as int64, checked against this fitted model's users."""
        self._check_fitted()
        user_idx = np.asarray(user_idx, dtype=np.int64)
        if user_idx.size and (user_idx.min() < 0 or user_idx.max() >= len(self.users_)):
            raise LlmrecError("user index out of range")
        return user_idx

    def score(self, user_idx: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        """Dense scores (len(user_idx), n candidates); higher is better. All items when None."""
        user_idx = self._user_indices(user_idx)
        items = np.arange(len(self.items_)) if candidates is None else np.asarray(candidates)
        return np.asarray(self._score(user_idx, items), dtype=np.float32)

    def recommend(
        self,
        user_ids: Iterable[str],
        k: int = 10,
        exclude_seen: bool = True,
        context: dict[str, str] | None = None,
    ) -> Recommendations:
        """Top-``k`` item ids per user; seen items are dropped; ties go to the lower id.

        ``context`` describes the request (``timestamp`` in unix seconds, ``device``,
        ``location``, ``scenario``); models that use context (``ranker``) read it, the others
        ignore it.
        """
        return self.recommend_with_sources(user_ids, k, exclude_seen, context)[0]

    def recommend_with_sources(
        self,
        user_ids: Iterable[str],
        k: int = 10,
        exclude_seen: bool = True,
        context: dict[str, str] | None = None,
    ) -> tuple[Recommendations, list[list[str]]]:
        """``recommend`` plus, per item, the part of the model that proposed it: the
        retriever of a two-stage model that ranked it best, or the model's own name."""
        self._check_fitted()
        user_ids = [str(u) for u in user_ids]
        idx = self.users_.index(user_ids)
        if (idx < 0).any():
            missing = [u for u, i in zip(user_ids, idx, strict=True) if i < 0][:5]
            raise LlmrecError(f"unknown user ids: {', '.join(missing)}")
        top = self.top_k(idx, k, exclude_seen, context)
        bounds = np.searchsorted(top.row, np.arange(len(idx) + 1))
        ids = self.items_.ids[top.item_idx]
        sources = top.sources if top.sources is not None else [self.name] * len(top.row)
        out_ids, out_scores, out_sources = [], [], []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            out_ids.append(ids[lo:hi].tolist())
            out_scores.append(top.score[lo:hi])
            out_sources.append(list(sources[lo:hi]))
        return Recommendations(out_ids, out_scores), out_sources

    def top_k(
        self,
        user_idx: np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        context: dict[str, str] | None = None,
    ) -> TopK:
        """``recommend`` over user indices, as flat arrays (what batch jobs write): rows in
        user order, best first within a user; NaN scores rank last as -inf."""
        user_idx = self._user_indices(user_idx)
        scores, source, names = self._score_with_sources(user_idx, context)
        return self._top_of(user_idx, scores, source, names, k, exclude_seen)

    def _top_of(
        self,
        user_idx: np.ndarray,
        scores: np.ndarray,
        source: np.ndarray | None,
        names: list[str],
        k: int,
        exclude_seen: bool,
    ) -> TopK:
        """``top_k`` of scores already computed for every item."""
        rows, cols = top_k(scores, k, self.history_[user_idx] if exclude_seen else None)
        picked = scores[rows, cols].astype(np.result_type(scores.dtype, np.float32))
        picked[np.isnan(picked)] = -np.inf
        sources = None if source is None else [names[j] for j in source[rows, cols]]
        return TopK(rows, cols, picked, sources)

    def save(self, path: str | Path, extra: Callable[[Path], None] | None = None) -> None:
        """A directory: ``manifest.json`` (readable) + ``arrays.npz`` (no pickle); atomic.
        ``extra(folder)`` may add files to the folder before it replaces ``path``."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            h = self.recency_
            arrays = {
                "user_ids": self.users_.ids,
                "item_ids": self.items_.ids,
                "history_indptr": h.indptr,
                "history_indices": h.indices,
                "history_rank": h.data,
                "history_strength": self.strength_.data,
                **{f"state_{k}": v for k, v in self._write_files(tmp, self._state()).items()},
            }
            np.savez(tmp / "arrays.npz", **{k: savable(k, v) for k, v in arrays.items()})
            manifest = {
                "family": self.name,
                "format_version": FORMAT_VERSION,
                "params": self.config.model_dump(mode="json"),
                "n_users": len(self.users_),
                "n_items": len(self.items_),
                **self.event_rules_.to_meta(),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            if extra is not None:
                extra(tmp)
            replace_folder(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load any model saved by ``save`` (the manifest names its family), or the current
        version of a folder of versions (``llmrec.versions``)."""
        from llmrec.models.registry import get_model_class

        path = resolve(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise LlmrecError(f"{path}: not a saved llmrec model ({e})") from e
        model_cls = get_model_class(manifest["family"])
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise LlmrecError(f"{path} holds a {manifest['family']!r} model, not {cls.name!r}")
        model = model_cls(**manifest["params"])
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        model.users_, model.items_ = IdMap(arrays["user_ids"]), IdMap(arrays["item_ids"])
        n_u, n_i = len(model.users_), len(model.items_)
        model.recency_ = sp.csr_matrix(
            (arrays["history_rank"], arrays["history_indices"], arrays["history_indptr"]),
            shape=(n_u, n_i),
        )
        model.history_ = model.recency_.copy()
        model.history_.data[:] = 1.0
        model.strength_ = model.history_
        if "history_strength" in arrays:  # older folders: every pair weighs 1
            model.strength_ = model.recency_.copy()
            model.strength_.data = arrays["history_strength"]
        model.event_rules_ = EventRules.from_meta(manifest)
        state = {k[6:]: v for k, v in arrays.items() if k.startswith("state_")}
        model._load_state({**state, **model._read_files(path)})
        return model

    def weighted_history(
        self, user_idx: np.ndarray, half_life: float | None, weighting: Weighting = "binary"
    ) -> sp.csr_matrix:
        """The users' history rows, each item weighted 0.5 ** (age / half_life), age 0 = latest,
        times the pair's event weight when ``weighting`` is "events".

        ``half_life`` None and "binary" give the plain binary history.
        """
        base = self.strength_ if weighting == "events" else self.history_
        if half_life is None:
            return base[user_idx]
        h = self.recency_[user_idx].copy()
        h.data = np.power(0.5, (h.data - 1.0) / half_life).astype(np.float32)
        if weighting == "events":
            h.data *= base[user_idx].data  # same sparsity pattern
        return h

    # --- hooks ------------------------------------------------------------------------------
    def _fit_epochs(self, train: TrainData) -> Iterator[int]:
        """Iterative models override this; others override ``_fit``."""
        self._fit(train)
        yield 0

    def _fit(self, train: TrainData) -> None:
        raise NotImplementedError

    def _score_with_sources(
        self, user_idx: np.ndarray, context: dict[str, str] | None
    ) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
        """Hook: (scores for a request with context, per user x item an index into the names
        of the parts that proposed each item, those names). Context-free single-stage
        models ignore the context and have no parts (None)."""
        return self.score(user_idx), None, []

    def _observe(self, data: TrainData) -> None:
        """Hook: refresh per-user state derived from the event log (history is already set)."""
        return None

    def _observe_users(self, part: TrainData, replaced: np.ndarray) -> None:
        """Hook: per-user state of the ``replaced`` rows from ``part`` (see
        ``observe_users``); a model overriding ``_observe`` overrides this too to take part."""
        return None

    def _observe_item_events(self, events: pd.DataFrame) -> None:
        """Hook: item-level state derived from the event log takes new ``events`` (see
        ``observe_item_events``)."""
        return None

    def _add_users(self, n_old: int) -> None:
        """Hook: give users ``n_old..`` (appended by ``observe``) per-user state; their
        history is already set. History-based models have none to add."""
        return None

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        """Hook: grow per-item state to ``n_items`` and set it for ``items`` (row r is item
        ``index[r]``; indices at or past the current count are new). Called before the
        model's ``items_`` grows, so it can refuse."""
        raise LlmrecError(f"{self.name} cannot add items without refitting")

    @abstractmethod
    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays (saved with the model and snapshotted by early stopping)."""

    @abstractmethod
    def _load_state(self, state: dict[str, np.ndarray]) -> None: ...

    def _write_files(self, folder: Path, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Hook: write parts of ``state`` to files of their own in ``folder`` (a language
        model's weights as safetensors); return the rest, which goes to ``arrays.npz``."""
        return state

    def _read_files(self, folder: Path) -> dict[str, np.ndarray]:
        """Hook: read back what ``_write_files`` wrote (merged into ``_load_state``'s input)."""
        return {}

    def _adopt(self, part: Recommender, state: dict[str, np.ndarray], prefix: str) -> Recommender:
        """Load a component of a composite model: this model's users, items and history,
        and the ``prefix``-ed slice of ``state``."""
        part._adopt_history(self)
        part._load_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        return part

    def _adopt_history(self, other: Recommender) -> None:
        """Take ``other``'s users, items and history (all its views of the event log)."""
        self.users_, self.items_ = other.users_, other.items_
        self.history_, self.recency_, self.strength_ = (
            other.history_,
            other.recency_,
            other.strength_,
        )
        self.event_rules_ = other.event_rules_

    def _check_fitted(self) -> None:
        if not hasattr(self, "history_"):
            raise LlmrecError(f"{self.name} is not fitted: call fit() first")


def savable(name: str, a: np.ndarray) -> np.ndarray:
    """``a`` as an array that loads without pickle: text (object arrays of strings, as pandas
    hands them out) becomes fixed-width unicode, missing text the empty string. Any other
    object array is a bug in the model's ``_state``, named here rather than at load time."""
    a = np.asarray(a)
    if a.dtype != object:
        return a
    values = pd.Series(a.ravel(), dtype=object)
    missing = values.isna().to_numpy()
    text = values[~missing]
    if not text.map(lambda v: isinstance(v, str)).all():
        kinds = sorted({type(v).__name__ for v in text})
        raise LlmrecError(f"cannot save state {name!r}: it holds {', '.join(kinds)} objects")
    out = np.where(missing, "", values.to_numpy()).astype(str)
    return out.reshape(a.shape)


def own_params(params: dict[str, Any]) -> dict[str, Any]:
    """A part's parameters without the seed, which its composite model passes down."""
    return {k: v for k, v in params.items() if k != "seed"}


def pydantic_message(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
