"""Recommenders on text vectors: ``content`` (history -> item similarity) and ``user-text``
(the user's profile text embedded and matched against item texts: an LM as the recommender)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from llmrec.config import get_settings
from llmrec.data import columns as C
from llmrec.data.matrix import TrainData, item_columns, pad_rows, splice_rows, widen
from llmrec.encoders import TextEncoder, VectorCache, encode, get_encoder
from llmrec.models.base import Recommender, RecommenderConfig
from llmrec.text import TextConfig, item_texts, user_texts


def _cache() -> VectorCache:
    return VectorCache(get_settings().cache_dir / "embeddings.sqlite")


def embed_items(
    items: pd.DataFrame,
    encoder: str | TextEncoder,
    kg: pd.DataFrame | None = None,
    item_entity: pd.DataFrame | None = None,
    text: TextConfig | None = None,
) -> np.ndarray:
    """Item texts (title, year, genres, description, attributes, KG facts) -> unit vectors."""
    texts = item_texts(items, text, kg, item_entity)
    fallbacks = items[C.TITLE].astype(str).tolist() if C.TITLE in items else None
    enc = get_encoder(encoder) if isinstance(encoder, str) else encoder
    return encode(enc, texts, _cache(), fallbacks=fallbacks)


def embed_catalogue(train: TrainData, encoder: str | TextEncoder) -> np.ndarray:
    """Unit text vectors of every item of ``train``, in item index order (cached on disk)."""
    return embed_items(items_frame(train), encoder, train.kg, train.item_entity)


def embed_profiles(data: TrainData, encoder: TextEncoder, history_items: int) -> np.ndarray:
    """Unit vectors of every user's profile text (``user_texts``), in user index order."""
    frame = items_frame(data)
    titles = frame[C.TITLE].astype(str).to_numpy() if C.TITLE in frame else data.items.ids
    config = TextConfig(history_items=history_items)
    texts = user_texts(data.log, data.n_users, titles, data.user_table, config)
    return encode(encoder, texts, _cache())


def items_frame(train: TrainData) -> pd.DataFrame:
    if train.item_table is not None:
        return train.item_table
    return pd.DataFrame({C.ITEM_ID: train.items.ids, C.TITLE: train.items.ids})


def text_part(model: Recommender) -> _TextModel | None:
    """The first part of ``model`` (itself, a ranker's retriever, a hybrid's half) that holds
    text vectors for its whole catalogue, and so the encoder that made them."""
    parts: list[Recommender] = [model]
    while parts:
        part = parts.pop(0)
        v = getattr(part, "item_vectors_", None)
        if isinstance(part, _TextModel) and v is not None and len(v) == len(model.items_):
            return part
        for value in vars(part).values():
            values = value.values() if isinstance(value, dict) else [value]
            parts += [x for x in values if isinstance(x, Recommender) and x is not part]
    return None


class TextModelConfig(RecommenderConfig):
    encoder: str = Field("minilm", description="text encoder name (llmrec.encoders.ENCODERS)")


class _TextModel(Recommender):
    """Shared by text models: item vectors for the whole catalogue, new items added live."""

    config: TextModelConfig
    item_vectors_: np.ndarray

    def text_encoder(self) -> TextEncoder:
        """The encoder of this model's vectors (a fine-tuned model returns its own)."""
        return get_encoder(self.config.encoder)

    def _embed_catalogue(self, train: TrainData) -> None:
        self.item_vectors_ = embed_catalogue(train, self.text_encoder())

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        """New items are embedded from their text; changed ones get their vector replaced."""
        vecs = embed_items(items, self.text_encoder())
        out = pad_rows(self.item_vectors_, n_items)
        out[index] = vecs
        self.item_vectors_ = out
        self._widen_state(n_items)

    def _widen_state(self, n_items: int) -> None:
        """Hook: grow per-item state other than vectors."""


class ContentConfig(TextModelConfig):
    half_life: float | None = Field(
        10.0, gt=0, description="history items weigh 0.5 ** (age / half_life); None: equal"
    )
    dislike_weight: float = Field(0.5, ge=0, description="weight of the disliked-items term")
    dislike_below: float = Field(
        2.0, description="ratings at or below this count as dislikes (plus 'dislike' events)"
    )


class Content(_TextModel):
    """score(u, i) = cos(item i, recency-weighted mean of u's liked items
    - dislike_weight * mean of u's disliked items), all as text vectors."""

    name = "content"
    config_class = ContentConfig
    # the profile is built at scoring time: one fit (the catalogue's vectors) serves all
    score_space = {"half_life": [None, 20.0, 5.0, 2.0, 1.0], "dislike_weight": [0.0, 0.5]}
    config: ContentConfig

    def _fit(self, train: TrainData) -> None:
        self._embed_catalogue(train)
        self._observe(train)

    def _observe(self, data: TrainData) -> None:
        self.dislikes_ = self._dislikes(data)

    def _observe_users(self, part: TrainData, replaced: np.ndarray) -> None:
        self.dislikes_ = splice_rows(self.dislikes_, self._dislikes(part), replaced)

    def _dislikes(self, data: TrainData) -> sp.csr_matrix:
        log = data.log
        value, event = log[C.VALUE].to_numpy(dtype=float), log[C.EVENT]
        rated_low = (event == "rate").to_numpy() & (value <= self.config.dislike_below)
        bad = (event == "dislike").to_numpy() | rated_low
        users, items = log["user_idx"].to_numpy()[bad], log["item_idx"].to_numpy()[bad]
        out = sp.csr_matrix(
            (np.ones(len(users), np.float32), (users, items)), shape=data.matrix.shape
        )
        out.data[:] = 1.0  # a pair disliked twice is one dislike
        return out

    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        w = self.weighted_history(user_idx, self.config.half_life)
        d = self.dislikes_[user_idx]
        w = w - w.multiply(d)  # a disliked item is not a positive
        pos = np.asarray(w @ self.item_vectors_) / np.maximum(w.sum(axis=1), 1e-12).A
        neg = np.asarray(d @ self.item_vectors_) / np.maximum(d.sum(axis=1), 1e-12).A
        return pos - self.config.dislike_weight * neg

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return item_products(self.user_vectors(user_idx), self.item_vectors_, item_idx)

    def _widen_state(self, n_items: int) -> None:
        self.dislikes_ = widen(self.dislikes_, (self.dislikes_.shape[0], n_items))

    def _state(self) -> dict[str, np.ndarray]:
        d = self.dislikes_
        return {
            "item_vectors": self.item_vectors_,
            "dislikes_indptr": d.indptr,
            "dislikes_indices": d.indices,
        }

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_vectors_ = state["item_vectors"]
        ind = state["dislikes_indices"]
        self.dislikes_ = sp.csr_matrix(
            (np.ones(len(ind), np.float32), ind, state["dislikes_indptr"]),
            shape=(len(self.users_), len(self.items_)),
        )


class UserTextConfig(TextModelConfig):
    history_items: int = Field(10, ge=0, description="recent items in the profile text")


class UserText(_TextModel):
    """Embeds each user's profile text (demographics + recent items with ratings, newest
    first) and ranks items by cosine with their text vectors: the LM alone recommends."""

    name = "user-text"
    config_class = UserTextConfig
    search_space: dict[str, list] = {}  # each profile length re-embeds every user: fixed
    config: UserTextConfig

    def _fit(self, train: TrainData) -> None:
        self._embed_catalogue(train)
        self._observe(train)

    def _observe(self, data: TrainData) -> None:
        self.user_vectors_ = embed_profiles(data, self.text_encoder(), self.config.history_items)

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return item_products(self.user_vectors_[user_idx], self.item_vectors_, item_idx)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_vectors": self.item_vectors_, "user_vectors": self.user_vectors_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_vectors_, self.user_vectors_ = state["item_vectors"], state["user_vectors"]


def item_products(users: np.ndarray, items: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """``users @ items[item_idx].T`` without copying the catalogue's vectors when most of it
    is asked for (scoring every item: 100,000 x 384 floats copied per call before)."""
    if 2 * len(item_idx) < len(items):
        return users @ items[item_idx].T
    out = users @ items.T
    return item_columns(out, item_idx)
