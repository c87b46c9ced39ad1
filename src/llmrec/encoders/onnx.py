"""The MiniLM encoder (bundled or fine-tuned) run by ONNX Runtime, for the one place where a
single short text is encoded while someone waits: the free words of a request in words.

For a few words PyTorch spends its time on per-operator overhead; ONNX Runtime runs the same
graph with little of it (``make bench-query``: a request with free words 16.8 ms p50 this way,
25.1 ms with torch, ml-100k, same run). The vectors are the torch encoder's (the same weights,
mean pooling and normalisation: |difference| < 1e-5, a test), so they keep its name and are
compared with item vectors the torch encoder made. The graph is exported once per weights
file into ``$LLMREC_HOME/cache/onnx`` (written to a temporary name, then renamed), and reused
by every process. Without ``onnxruntime`` and ``onnx`` (the ``embed`` extra installs both) or
for another pooling, ``fast_twin`` hands back the torch encoder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.config import get_settings
from llmrec.encoders.base import TextEncoder
from llmrec.encoders.models import MiniLM

log = logging.getLogger(__name__)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_twins: dict[tuple[str, str], TextEncoder] = {}
_lock = threading.Lock()


class OnnxMiniLM:
    """``base``'s transformer as an ONNX Runtime session; tokenizer and pooling as ``base``."""

    def __init__(self, base: MiniLM, graph: Path) -> None:
        import onnxruntime as ort

        self.name, self.dim, self.max_tokens = base.name, base.dim, base.max_tokens
        self.base = base
        self.tokenizer = base.model.tokenizer
        options = ort.SessionOptions()
        # one short text: one thread is as fast, and no pool spins beside the request
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np"
        )
        feed = {k: np.asarray(enc[k], dtype=np.int64) for k in self.inputs}
        hidden = self.session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        mean = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        return (mean / np.maximum(norms, 1e-12)).astype(np.float32)

    def count_tokens(self, texts: list[str]) -> np.ndarray:
        return self.base.count_tokens(texts)


def _mean_pooled(base: MiniLM) -> bool:
    """A transformer, mean pooling and at most a normalisation: what ``OnnxMiniLM`` repeats."""
    mods = list(base.model)
    if len(mods) not in (2, 3):
        return False
    pooling = mods[1]
    mode = getattr(pooling, "pooling_mode", None)  # sentence-transformers 5.x names it
    if isinstance(mode, str):
        if mode != "mean" or getattr(pooling, "include_prompt", True) is False:
            return False
    else:  # older releases: one flag per mode
        others = ("cls_token", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens")
        flags = [getattr(pooling, f"pooling_mode_{m}", False) for m in others]
        if not getattr(pooling, "pooling_mode_mean_tokens", False) or any(flags):
            return False
    return len(mods) == 2 or type(mods[2]).__name__ == "Normalize"


def _weights_key(folder: Path) -> str:
    """The weights' identity: sha256 over the folder's weight files (names and bytes)."""
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:24]


def _export(base: MiniLM, graph: Path) -> None:
    import torch

    class Hidden(torch.nn.Module):  # keyword arguments in, the last hidden state out
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, args, strict=True))).last_hidden_state

    transformer = base.model[0].auto_model.eval()
    sample = base.model.tokenizer(["a short request"], return_tensors="pt")
    names = [n for n in _INPUTS if n in sample]
    graph.parent.mkdir(parents=True, exist_ok=True)
    tmp = graph.with_name(f".{graph.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes: not for users
            torch.onnx.export(
                Hidden(transformer),
                tuple(sample[n] for n in names),
                str(tmp),
                input_names=names,
                output_names=["hidden"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, graph)  # whole or not at all, also for a process exporting beside us
    finally:
        tmp.unlink(missing_ok=True)


def fast_twin(encoder: TextEncoder) -> TextEncoder:
    """``encoder`` run by ONNX Runtime when it is a mean-pooled MiniLM and the runtime is
    installed (exported on first use, then loaded from the cache); else ``encoder`` itself."""
    if not isinstance(encoder, MiniLM) or not _mean_pooled(encoder):
        return encoder
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import onnxruntime  # noqa: F401
    except ImportError:
        return encoder
    folder = Path(encoder.folder)
    with _lock:
        key = (encoder.name, str(folder.resolve()))
        if key not in _twins:
            graph = get_settings().cache_dir / "onnx" / f"minilm-{_weights_key(folder)}.onnx"
            try:
                if not graph.is_file():
                    _export(encoder, graph)
                _twins[key] = OnnxMiniLM(encoder, graph)
            except Exception as e:  # an exporter or runtime that cannot: torch still can
                log.warning("ONNX Runtime not used for %s: %s", encoder.name, type(e).__name__)
                _twins[key] = encoder
        return _twins[key]
