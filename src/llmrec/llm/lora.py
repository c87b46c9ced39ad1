"""The bundled instruct LLM fine-tuned on behaviour as a verbalizer (LoRA through ``peft``).

``llm-rerank`` scores each candidate's title as the continuation of a prompt holding the
user's profile (``prompts.rerank_prompt``). Fine-tuning teaches the 135M model the catalogue's
behaviour in exactly that form, as LlamaRec does with larger models: for each sampled user of
the training events, the prompt is their profile *before* their latest training event and the
target is that event's title; the loss counts the title's tokens only. Low-rank adapters on the
attention's query and value projections (0.34% of the weights) keep it runnable on CPU on a
few hundred examples; the adapter is small enough to live in the model's saved state, and is
merged into a private copy of the weights when scoring (the base model stays as it was).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmrec.data.matrix import TrainData
from llmrec.data.splits import holdout
from llmrec.errors import ConfigError
from llmrec.llm.prompts import rerank_prompt
from llmrec.llm.runtime import (
    LLMConfig,
    LLMUnavailable,
    TransformersLM,
    _import_transformers,
    converted_dir,
)
from llmrec.progress import steps
from llmrec.text.templates import TextConfig, user_texts

log = logging.getLogger(__name__)

TARGETS = ["q_proj", "v_proj"]  # attention projections the adapters sit on (Hu et al. 2021)
MAX_TARGET_TOKENS = 48  # what ``score_candidates`` reads of a title


class LoraSettings(BaseModel):
    """How the verbalizer is fine-tuned (defaults sized for a CPU: ~8 min on one core)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rank: int = Field(8, ge=1, le=64)
    alpha: float = Field(16.0, gt=0)
    examples: int = Field(256, ge=1, description="users sampled as (profile, next title)")
    epochs: int = Field(1, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    batch: int = Field(8, ge=1)
    max_tokens: int = Field(448, ge=64, description="prompt + title tokens kept (left cut)")
    seed: int = 0


Example = tuple[str, str]  # (prompt, the title it should continue with)


def verbalizer_examples(
    data: TrainData,
    titles: np.ndarray,
    noun: str,
    history_items: int,
    n: int,
    seed: int,
) -> list[Example]:
    """Up to ``n`` users of ``data`` (seeded): the rerank prompt of their profile without
    their latest event, and that event's title. Only ``data`` is read: fine-tuning inside
    tuning gets the training part, never a validation or test item."""
    split = holdout(data, min_interactions=2)
    users, targets = split.valid.user_idx, split.valid.targets[:, 0]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(users), min(n, len(users)), replace=False))
    cfg = TextConfig(history_items=history_items)
    before = split.train
    profiles = user_texts(before.log, before.n_users, titles, before.user_table, cfg)
    return [(rerank_prompt(profiles[users[r]], noun), str(titles[targets[r]])) for r in rows]


def _encode(tok: Any, examples: Sequence[Example], max_tokens: int) -> list[tuple[list, int]]:
    """Token ids of prompt + " title" (the prompt cut from the left) and where the title
    starts: the same continuation ``score_candidates`` scores."""
    out = []
    for prompt, title in examples:
        cont = tok(" " + title, add_special_tokens=False).input_ids[:MAX_TARGET_TOKENS]
        prefix = tok(prompt, add_special_tokens=False).input_ids
        prefix = prefix[-(max_tokens - len(cont)) :]
        out.append((prefix + cont, len(prefix)))
    return out


def fine_tune(examples: Sequence[Example], settings: LoraSettings, threads: int = 1) -> dict:
    """LoRA-train the bundled model on ``examples``; returns the adapter's weights as float32
    arrays by ``peft`` state-dict name plus ``"loss"`` (mean loss per epoch). Seeded and
    deterministic on CPU for a given thread count."""
    if not examples:
        raise ConfigError("lora: no examples to fine-tune on (users need 2+ events)")
    torch, transformers = _import_transformers()
    try:
        from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    except ImportError as e:
        raise LLMUnavailable("fine-tuning the LLM needs peft: pip install 'llmrec[llm]'") from e
    torch.manual_seed(settings.seed)
    torch.set_num_threads(threads)
    folder = converted_dir()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    base = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    peft_config = LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, target_modules=TARGETS, lora_dropout=0.0
    )
    model = get_peft_model(base, peft_config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    encoded = _encode(tok, examples, settings.max_tokens)
    rng = np.random.default_rng(settings.seed)
    n_batches = -(-len(encoded) // settings.batch)
    total = n_batches * settings.epochs
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    losses: list[float] = []
    t0 = time.perf_counter()
    with steps("fine-tuning the LLM (LoRA)", total, 2) as advance:
        for _ in range(settings.epochs):
            order, seen = rng.permutation(len(encoded)), []
            for b in range(n_batches):
                batch = [encoded[i] for i in order[b * settings.batch : (b + 1) * settings.batch]]
                width = max(len(ids) for ids, _ in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                for r, (row, start) in enumerate(batch):  # right-padded; the title is learned
                    ids[r, : len(row)] = torch.tensor(row)
                    mask[r, : len(row)] = 1
                    labels[r, start : len(row)] = torch.tensor(row[start:])
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
                seen.append(float(loss.detach()))
                advance(1)
            losses.append(float(np.mean(seen)))
    log.info("LoRA fine-tune: %d examples, %.0f s", len(encoded), time.perf_counter() - t0)
    state = get_peft_model_state_dict(model)
    weights = {k: v.detach().float().numpy().copy() for k, v in state.items()}
    return {"weights": weights, "loss": losses}


def weights_key(weights: dict[str, np.ndarray]) -> str:
    """A content hash of an adapter: one loaded model per distinct adapter."""
    h = hashlib.sha256()
    for k in sorted(weights):
        h.update(k.encode())
        h.update(np.ascontiguousarray(weights[k], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


_ADAPTED: dict[str, TransformersLM] = {}


def adapted_lm(
    weights: dict[str, np.ndarray], rank: int, alpha: float, config: LLMConfig | None = None
) -> TransformersLM:
    """The bundled model with the adapter merged into its own copy of the weights (scored
    exactly like the base model, at the same speed); one instance per adapter and process."""
    config = config or LLMConfig()
    if config.runtime != "transformers":
        raise ConfigError("a fine-tuned LLM (lora) runs on the transformers runtime only")
    key = f"{weights_key(weights)}-{rank}-{alpha}-{config.threads}"
    if key not in _ADAPTED:
        torch, transformers = _import_transformers()
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

        folder = converted_dir()
        base = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        lora = LoraConfig(r=rank, lora_alpha=alpha, target_modules=TARGETS, lora_dropout=0.0)
        model = get_peft_model(base, lora)
        set_peft_model_state_dict(model, {k: torch.from_numpy(v) for k, v in weights.items()})
        merged = model.merge_and_unload().eval()
        _ADAPTED.clear()  # one adapted model at a time: each is a full copy of the weights
        _ADAPTED[key] = TransformersLM(folder, config, model=merged)
    return _ADAPTED[key]
