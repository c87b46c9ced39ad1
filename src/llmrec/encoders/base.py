"""The text-encoder contract and the cached, batched ``encode`` every caller uses."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from llmrec.encoders.cache import VectorCache
from llmrec.progress import steps

log = logging.getLogger(__name__)
PROGRESS_MIN = 256  # texts to encode before a progress bar is worth showing


class TextEncoder(Protocol):
    """Maps texts to L2-normalised float32 vectors; ``name`` identifies model and version."""

    name: str
    dim: int
    max_tokens: int

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Raw vectors for one batch (no cache, no normalisation guarantees)."""
        ...

    def count_tokens(self, texts: list[str]) -> np.ndarray:
        """Tokens per text, as the model would see them before truncation."""
        ...


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prepare(texts: Sequence[str], fallbacks: Sequence[str] | None = None) -> list[str]:
    """Empty texts fall back to ``fallbacks`` (e.g. the title), then to a placeholder."""
    out = []
    for n, t in enumerate(texts):
        t = " ".join(str(t).split())
        if not t and fallbacks is not None:
            t = " ".join(str(fallbacks[n]).split())
        out.append(t or "(no text)")
    return out


def encode(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache: VectorCache | None = None,
    fallbacks: Sequence[str] | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """(n, dim) float32, L2-normalised; cached by (encoder name, sha256 of the text)."""
    prepared = prepare(texts, fallbacks)
    keys = [text_key(t) for t in prepared]
    found = cache.get_many(encoder.name, keys) if cache is not None else {}
    todo = sorted({k: t for k, t in zip(keys, prepared, strict=True) if k not in found}.items())
    if todo:
        todo_texts = [t for _, t in todo]
        over = int((encoder.count_tokens(todo_texts) > encoder.max_tokens).sum())
        if over:
            log.warning(
                "%d of %d texts exceed %s's %d-token limit and were truncated",
                over,
                len(todo_texts),
                encoder.name,
                encoder.max_tokens,
            )
        new = _encode_batches(encoder, todo_texts, batch_size, progress)
        fresh = dict(zip((k for k, _ in todo), new, strict=True))
        if cache is not None:
            cache.put_many(encoder.name, fresh)
        found = {**found, **fresh}
    if not keys:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32)


def _encode_batches(
    encoder: TextEncoder, texts: list[str], batch_size: int, progress: bool
) -> np.ndarray:
    parts = []
    label = f"embedding with {encoder.name}"
    with steps(label, len(texts), PROGRESS_MIN if progress else len(texts) + 1) as advance:
        for lo in range(0, len(texts), batch_size):
            batch = texts[lo : lo + batch_size]
            parts.append(np.asarray(encoder.encode_batch(batch), dtype=np.float32))
            advance(len(batch))
    vecs = np.concatenate(parts)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
