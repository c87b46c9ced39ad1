"""A deterministic stand-in encoder for tests: hashed bag of words, so it reacts to content."""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashingEncoder:
    """Texts sharing words get similar vectors; no model, no randomness."""

    def __init__(self, dim: int = 64, name: str = "hashing-test@1", max_tokens: int = 32) -> None:
        self.dim, self.name, self.max_tokens = dim, name, max_tokens
        self.calls = 0  # texts actually encoded (cache tests count them)

    def _tokens(self, text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for n, t in enumerate(texts):
            for tok in self._tokens(t)[: self.max_tokens]:
                h = int.from_bytes(hashlib.md5(tok.encode()).digest()[:4], "little")
                out[n, h % self.dim] += 1.0
        return out

    def count_tokens(self, texts: list[str]) -> np.ndarray:
        return np.array([len(self._tokens(t)) for t in texts])
