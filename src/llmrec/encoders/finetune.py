"""The bundled encoder fine-tuned on what people did next (contrastive two-tower training).

Query = the user's profile text before an event (the ``user_text`` template: demographics
plus recent items, newest first); positive = the text of the item of that event; negatives
= the other positives of the batch (``MultipleNegativesRankingLoss``), optionally plus one
hard negative per pair. Query and item share the one transformer, so a fine-tuned encoder
embeds items added later and users' new histories exactly as it embeds the training ones.

A fine-tuned encoder is named by the hash of its weights: its cached vectors can never be
served for the base model or for another fine-tune.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llmrec.data import columns as C
from llmrec.encoders.models import MiniLM
from llmrec.errors import LlmrecError
from llmrec.text.templates import TextConfig, user_text

log = logging.getLogger(__name__)
MANIFEST = "llmrec-encoder.json"
FORMAT = 1


class FineTuneConfig(BaseModel):
    """How the trainer steps (what it trains on is the caller's: ``models.lm``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate")
    batch_size: int = Field(32, ge=2, description="pairs per step (in-batch negatives)")
    max_tokens: int = Field(128, ge=16, le=256, description="token limit while training")
    seed: int = 0


def _rows_by_user(log: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(user of each row, first row of that user's block): ``log`` is sorted by (user, time)."""
    users = log["user_idx"].to_numpy()
    change = np.r_[True, users[1:] != users[:-1]]
    starts = np.flatnonzero(change)
    first = starts[np.cumsum(change) - 1]
    return users, first


def training_positions(log: pd.DataFrame) -> np.ndarray:
    """Rows of ``log`` that have at least one earlier event of the same user."""
    _, first = _rows_by_user(log)
    return np.flatnonzero(np.arange(len(log)) > first)


def query_texts(
    log: pd.DataFrame,
    rows: np.ndarray,
    titles: np.ndarray,
    user_table: pd.DataFrame | None,
    history_items: int,
) -> list[str]:
    """For each row, the user's profile text from the events before it (never the row's own)."""
    users, first = _rows_by_user(log)
    items = log["item_idx"].to_numpy()
    values = log[C.VALUE].to_numpy(dtype=float) if C.VALUE in log else np.full(len(log), np.nan)
    attrs = user_table.to_dict("records") if user_table is not None else None
    cfg = TextConfig(history_items=history_items)
    out = []
    for r in rows:
        lo = max(int(first[r]), int(r) - history_items)
        hist = [
            (str(titles[items[j]]), None if np.isnan(values[j]) else float(values[j]))
            for j in range(int(r) - 1, lo - 1, -1)
        ]
        out.append(user_text(attrs[users[r]] if attrs else None, hist, cfg))
    return out


def next_items(log: pd.DataFrame, top: int = 20) -> dict[int, np.ndarray]:
    """Per item, the ``top`` items most often consumed right after it by the same user."""
    items = log["item_idx"].to_numpy()
    _, first = _rows_by_user(log)
    has_prev = (np.arange(len(log)) > first)[1:]
    pairs = pd.DataFrame({"a": items[:-1][has_prev], "b": items[1:][has_prev]})
    counts = pairs.value_counts().reset_index(name="n")
    counts = counts.sort_values(["a", "n"], ascending=[True, False]).groupby("a").head(top)
    return counts.groupby("a")["b"].apply(np.asarray).to_dict()


def hard_negatives(
    log: pd.DataFrame,
    rows: np.ndarray,
    n_items: int,
    rng: np.random.Generator,
    nxt: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """Per row, an item often consumed right after the user's previous item (``next_items``,
    computed here unless given), other than the row's own: the near miss a text model must
    learn to tell apart."""
    nxt = next_items(log) if nxt is None else nxt
    items = log["item_idx"].to_numpy()
    out = np.empty(len(rows), dtype=np.int64)
    for n, r in enumerate(rows):
        cands = nxt.get(int(items[r - 1]), np.empty(0, np.int64))
        cands = cands[cands != items[r]]
        out[n] = rng.choice(cands) if len(cands) else rng.integers(n_items)
    return out


def distinct_batches(keys: np.ndarray, batch_size: int, order: np.ndarray) -> list[np.ndarray]:
    """Batches of positions in ``order`` where no key repeats within a batch (a repeated
    positive would be another pair's negative): a clashing position waits for the next one."""
    batches: list[np.ndarray] = []
    waiting = list(order)
    while waiting:
        batch, seen, rest = [], set(), []
        for p in waiting:
            if len(batch) < batch_size and keys[p] not in seen:
                batch.append(p)
                seen.add(keys[p])
            else:
                rest.append(p)
        batches.append(np.asarray(batch))
        waiting = rest
    return batches


class FineTunedEncoder(MiniLM):
    """MiniLM with its own weights (``TextEncoder``): trained here or loaded from a folder."""

    base = MiniLM.name

    def __init__(self, path: Path | None = None, meta: dict[str, Any] | None = None) -> None:
        super().__init__(path)
        self.meta = meta or {}
        self.refresh_name()

    @classmethod
    def from_base(cls) -> FineTunedEncoder:
        """A fresh copy of the bundled model (never the shared, cached base instance)."""
        return cls()

    def refresh_name(self) -> None:
        """Name = base + hash of the weights: vectors are cached per exact set of weights."""
        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        self.sha256 = h.hexdigest()
        self.name = f"{self.base}+ft@{self.sha256[:16]}"

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        import torch

        state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
        self.model.load_state_dict(state, strict=True)
        self.refresh_name()

    def save(self, folder: Path) -> None:
        """sentence-transformers' folder (safetensors + tokenizer) + a manifest naming the base
        model, the weights' hash, the training data's hash and the training parameters."""
        self.model.save(str(folder), create_model_card=False, safe_serialization=True)
        manifest = {"format": FORMAT, "base": self.base, "sha256": self.sha256, **self.meta}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> FineTunedEncoder:
        """Offline, from ``save``'s folder; refuses weights that do not match the manifest."""
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise LlmrecError(f"{folder}: not a saved llmrec encoder ({e})") from e
        meta = {k: v for k, v in manifest.items() if k not in ("format", "base", "sha256")}
        enc = cls(folder, meta)
        if enc.sha256 != manifest.get("sha256"):
            raise LlmrecError(f"{folder}: the encoder's weights do not match its manifest")
        return enc


class ContrastiveTrainer:
    """Epochs of in-batch-negative training of ``encoder`` (AdamW, seeded, CPU)."""

    def __init__(self, encoder: FineTunedEncoder, config: FineTuneConfig) -> None:
        import torch

        try:
            from sentence_transformers.sentence_transformer.losses import (
                MultipleNegativesRankingLoss,
            )
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.losses import MultipleNegativesRankingLoss

        torch.manual_seed(config.seed)
        self.encoder, self.config = encoder, config
        self.loss = MultipleNegativesRankingLoss(encoder.model)
        self.optimizer = torch.optim.AdamW(encoder.model.parameters(), lr=config.lr)
        self.steps = 0

    def _features(self, texts: Sequence[str]) -> dict:
        model = self.encoder.model
        prep = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers < 6
        return prep(list(texts))

    def epoch(
        self,
        queries: list[str],
        positives: list[str],
        keys: np.ndarray,
        negatives: list[str] | None = None,
        deadline: float | None = None,
        progress: bool = True,
    ) -> float:
        """One pass over the pairs (``keys``: the positive's item, kept distinct per batch);
        returns the mean loss. Stops early, between steps, at ``deadline`` (perf_counter)."""
        cfg, model = self.config, self.encoder.model
        rng = np.random.default_rng([cfg.seed, self.steps])
        batches = distinct_batches(keys, cfg.batch_size, rng.permutation(len(queries)))
        model.max_seq_length = cfg.max_tokens
        model.train()
        losses = []
        bar = Progress(
            TextColumn("fine-tuning the encoder"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]:.3f}"),
            transient=True,
            disable=not progress,
        )
        try:
            with bar:
                task = bar.add_task("steps", total=len(batches), loss=float("nan"))
                for b in batches:
                    if deadline is not None and time.perf_counter() > deadline:
                        log.info("encoder fine-tuning stopped at its time budget")
                        break
                    cols = [[queries[p] for p in b], [positives[p] for p in b]]
                    if negatives is not None:
                        cols.append([negatives[p] for p in b])
                    loss = self.loss([self._features(c) for c in cols], None)
                    loss.backward()
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                    self.steps += 1
                    losses.append(float(loss.detach()))
                    bar.update(task, advance=1, loss=float(np.mean(losses[-20:])))
        finally:
            model.max_seq_length = self.encoder.max_tokens
            model.eval()
        self.encoder.refresh_name()
        return float(np.mean(losses)) if losses else float("nan")
