"""``lm``: the language model alone recommends, after learning from the catalogue's behaviour.

The bundled encoder is fine-tuned (``encoders.finetune``) so that a user's profile text lands
near the text of what they chose next; items are then ranked by cosine with the user's
profile. Any item with text is scorable, warm or cold, including items added live.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydantic import Field

from llmrec.data.matrix import TrainData, pad_rows
from llmrec.encoders import encode, prepare
from llmrec.encoders.finetune import (
    ContrastiveTrainer,
    FineTuneConfig,
    FineTunedEncoder,
    hard_negatives,
    next_items,
    query_texts,
    training_positions,
)
from llmrec.errors import LlmrecError
from llmrec.models.base import RecommenderConfig
from llmrec.models.content import _cache, _TextModel, embed_profiles, item_products, items_frame
from llmrec.text import item_texts

ENCODER_DIR = "encoder"  # the fine-tuned encoder's folder inside the model folder
PREFIX = "encoder."  # its weights' keys in the model's state
META = "encoder_meta"  # its training record (JSON), read back from its manifest


class LMConfig(RecommenderConfig):
    epochs: int = Field(5, ge=1, description="passes of `examples` pairs (tuning stops early)")
    examples: int = Field(1000, ge=1, description="training pairs sampled per epoch")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate")
    batch_size: int = Field(32, ge=2, description="pairs per step (in-batch negatives)")
    history_items: int = Field(5, ge=1, description="recent items in the user's text")
    hard_negatives: bool = Field(False, description="add one co-occurrence hard negative")
    time_budget: float | None = Field(
        None, gt=0, description="seconds of fine-tuning at most (all epochs); None: no limit"
    )
    pop_prior: float = Field(
        0.0,
        ge=0,
        description="score += pop_prior * log(1 + training users of the item): the "
        "popularity that in-batch negatives train out of the cosine (chosen on validation)",
    )
    seed: int = 0


class LM(_TextModel):
    """score(u, i) = cos(fine-tuned encoder(u's profile text), fine-tuned encoder(i's text))."""

    name = "lm"
    config_class = LMConfig
    iterative = True
    eval_every = 1
    patience = 2
    # each setting is minutes of fine-tuning on 2 cores: epochs are chosen on validation,
    # the rest is fixed at defaults measured in BENCHMARKS.md (`make bench-lm`)
    search_space: dict[str, list] = {}
    # in-batch negatives are drawn by popularity, so the fine-tuned cosine scores
    # log p(i|u) - log p(i) (sampled softmax without its correction): the prior adds the
    # popularity back at scoring time, by as much as validation asks for
    score_space = {"pop_prior": [0.0, 0.02, 0.05, 0.1, 0.2]}
    config: LMConfig  # type: ignore[assignment]  # no `encoder` name: its own encoder_
    encoder_: FineTunedEncoder

    def text_encoder(self) -> FineTunedEncoder:
        return self.encoder_

    def _fit_epochs(self, train: TrainData) -> Iterator[int]:
        cfg = self.config
        positions = training_positions(train.log)
        if not len(positions):
            raise LlmrecError(
                "lm learns from what users did after an earlier event: no user has two events"
            )
        self.log_pop_ = np.log1p(np.asarray(train.matrix.sum(axis=0), np.float32).ravel())
        self.encoder_ = FineTunedEncoder.from_base()
        self.encoder_.meta = {
            "data_sha256": _data_hash(train),
            "training": cfg.model_dump(mode="json"),
        }
        ft = FineTuneConfig(lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed)
        trainer = ContrastiveTrainer(self.encoder_, ft)
        frame = items_frame(train)
        titles = frame["title"].astype(str).to_numpy() if "title" in frame else train.items.ids
        item_text = _item_texts(train)  # what training and the catalogue's vectors both read
        nxt = next_items(train.log) if cfg.hard_negatives else None
        items = train.log["item_idx"].to_numpy()
        deadline = None if cfg.time_budget is None else time.perf_counter() + cfg.time_budget
        for epoch in range(1, cfg.epochs + 1):
            rng = np.random.default_rng([cfg.seed, epoch])
            rows = np.sort(rng.choice(positions, min(cfg.examples, len(positions)), replace=False))
            queries = query_texts(train.log, rows, titles, train.user_table, cfg.history_items)
            negs = None
            if nxt is not None:
                negs = [
                    item_text[i] for i in hard_negatives(train.log, rows, train.n_items, rng, nxt)
                ]
            trainer.epoch(queries, [item_text[i] for i in items[rows]], items[rows], negs, deadline)
            self.item_vectors_ = encode(self.encoder_, item_text, _cache())
            self._observe(train)
            yield epoch
            if deadline is not None and time.perf_counter() > deadline:
                return

    def _observe(self, data: TrainData) -> None:
        self.user_vectors_ = embed_profiles(data, self.encoder_, self.config.history_items)

    def _widen_state(self, n_items: int) -> None:
        self.log_pop_ = pad_rows(self.log_pop_, n_items)  # a new item: no users yet

    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        cos = item_products(self.user_vectors_[user_idx], self.item_vectors_, item_idx)
        if not self.config.pop_prior:
            return cos
        return cos + self.config.pop_prior * self.log_pop_[item_idx]

    def _state(self) -> dict[str, np.ndarray]:
        weights = {PREFIX + k: v for k, v in self.encoder_.weights().items()}
        vectors = {"item_vectors": self.item_vectors_, "user_vectors": self.user_vectors_}
        return {**vectors, "log_pop": self.log_pop_, **weights}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_vectors_, self.user_vectors_ = state["item_vectors"], state["user_vectors"]
        self.log_pop_ = state["log_pop"]
        weights = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
        if weights:  # a snapshot, or what ``_read_files`` read back
            if not hasattr(self, "encoder_"):
                self.encoder_ = FineTunedEncoder.from_base()
            self.encoder_.set_weights(weights)
        if META in state:
            self.encoder_.meta = json.loads(state[META].tobytes().decode())

    def _write_files(self, folder: Path, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.encoder_.save(folder / ENCODER_DIR)  # the weights ``state`` was taken from
        return {k: v for k, v in state.items() if not k.startswith(PREFIX)}

    def _read_files(self, folder: Path) -> dict[str, np.ndarray]:
        """The saved encoder's weights (checked against its manifest) and training record."""
        enc = FineTunedEncoder.load(folder / ENCODER_DIR)
        meta = np.frombuffer(json.dumps(enc.meta).encode(), np.uint8)
        return {**{PREFIX + k: v for k, v in enc.weights().items()}, META: meta}


def _item_texts(train: TrainData) -> list[str]:
    frame = items_frame(train)
    fallbacks = frame["title"].astype(str).tolist() if "title" in frame else None
    return prepare(item_texts(frame, None, train.kg, train.item_entity), fallbacks)


def _data_hash(train: TrainData) -> str:
    """Hash of the training log (users, items, order): names the data an encoder learnt."""
    h = hashlib.sha256()
    h.update(train.users.ids.astype(str).tobytes())
    h.update(train.items.ids.astype(str).tobytes())
    h.update(train.log[["user_idx", "item_idx"]].to_numpy(np.int64).tobytes())
    return h.hexdigest()
