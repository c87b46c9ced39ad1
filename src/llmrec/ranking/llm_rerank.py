"""``llm-rerank``: the ranker's top-M candidates rescored by the bundled instruct LLM.

Verbalizer scoring (as LlamaRec does): each candidate's title is scored as the continuation
of a prompt holding the user's profile and recent history, never generated and parsed. Raw
log-probabilities mostly rank by popularity and title length, so the LLM's score is
calibrated: log p(title | user prompt) - log p(title | the same prompt for a user with no
history). Within the top-M, the final score is z(ranker) + weight * z(LLM) (z: standardised
over the M); the rest keep the ranker's order below them. The weight is chosen on the
validation item; weight 0 is the ranker itself, so tuning can always fall back to it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from rich.progress import Progress

from llmrec.data import columns as C
from llmrec.data.matrix import TrainData
from llmrec.data.splits import Split
from llmrec.errors import ConfigError
from llmrec.eval.tuning import OnTrial, Trial, TuneResult, tune, valid_score_of
from llmrec.llm.lora import LoraSettings, adapted_lm, fine_tune, verbalizer_examples
from llmrec.llm.prompts import rerank_prompt
from llmrec.llm.runtime import MODEL_NAME, LanguageModel, LLMConfig, load_llm
from llmrec.llm.safety import natural_title
from llmrec.models import get_model_class
from llmrec.models.base import Recommender, RecommenderConfig, own_params
from llmrec.text.templates import TextConfig, user_texts

NEUTRAL = "A new user with no history."
TOP = 1e7  # the reranked M stay above every other item
LORA_FILE = "lora.safetensors"  # the fine-tuned adapter, beside arrays.npz


class LLMRerankConfig(RecommenderConfig):
    base: str = Field("ranker", description="the model whose top-M are rescored")
    base_params: dict[str, Any] = Field(default_factory=dict)
    top_m: int = Field(20, ge=2, le=200, description="candidates rescored per user")
    weight: float = Field(0.0, ge=0, description="weight of the LLM's z-score")
    noun: str = Field("item", description="what the items are, in the prompt")
    runtime: str = Field("transformers", description="transformers or llama-cpp")
    history_items: int = Field(10, ge=0, description="recent items in the prompt")
    tune_users: int = Field(
        0, ge=0, description="validation users scored to choose the weight (0: all)"
    )
    lora: Literal["off", "on", "auto"] = Field(
        "off",
        description="fine-tune the LLM on the training events as a verbalizer (LoRA): on, "
        "off, or auto = whichever validation prefers (tuning resolves it to on or off)",
    )
    lora_examples: int = Field(256, ge=1, description="users the fine-tune learns from")
    lora_epochs: int = Field(1, ge=1)
    lora_rank: int = Field(8, ge=1, le=64)
    lora_alpha: float = Field(16.0, gt=0)
    lora_lr: float = Field(3e-4, gt=0, description="the fine-tune's learning rate")


class LLMRerank(Recommender):
    name = "llm-rerank"
    config_class = LLMRerankConfig
    config: LLMRerankConfig
    search_space = {"weight": [0.0, 0.1, 0.25, 0.5, 1.0, 2.0]}

    # --- the parts -------------------------------------------------------------------------
    def _base(self) -> Recommender:

        cls = get_model_class(self.config.base)
        return cls(**{"seed": self.config.seed, **self.config.base_params})

    def _llm(self) -> LanguageModel:
        config = LLMConfig(runtime=self.config.runtime)  # type: ignore[arg-type]
        lora = getattr(self, "lora_", None)
        if lora:
            c = self.config
            return adapted_lm(lora, c.lora_rank, c.lora_alpha, config)
        return load_llm(config)

    def _fit(self, train: TrainData) -> None:
        self.base_ = self._base().fit(train)
        self._texts(train)
        self.lora_ = self._fine_tune(train) if self.config.lora != "off" else {}

    def _fine_tune(self, train: TrainData) -> dict[str, np.ndarray]:
        """The LoRA adapter learnt from ``train`` (users' latest event from their profile
        before it); the neutral-prompt scores of the base model no longer apply."""
        c = self.config
        if c.runtime != "transformers":
            raise ConfigError("llm-rerank: lora needs runtime=transformers")
        t0 = time.perf_counter()
        examples = verbalizer_examples(
            train, self.titles_, c.noun, c.history_items, c.lora_examples, c.seed
        )
        settings = LoraSettings(
            rank=c.lora_rank, alpha=c.lora_alpha, examples=c.lora_examples,
            epochs=c.lora_epochs, learning_rate=c.lora_lr, seed=c.seed,
        )  # fmt: skip
        result = fine_tune(examples, settings, threads=LLMConfig().threads)
        self.lora_loss_ = result["loss"]
        self.lora_seconds_ = time.perf_counter() - t0
        self.neutral_ = {}
        return result["weights"]

    def _observe(self, data: TrainData) -> None:
        self.base_.observe(data)
        self._texts(data)

    def _texts(self, data: TrainData) -> None:
        """Titles (from the item table; a live log has none, so the known ones stay) and
        every user's profile text from ``data``."""
        if data.item_table is not None and C.TITLE in data.item_table:
            titles = data.item_table[C.TITLE].astype(str).to_numpy()
            self.titles_ = np.array([natural_title(str(t)) for t in titles], dtype=object)
        elif len(getattr(self, "titles_", ())) != data.n_items:
            self.titles_ = data.items.ids.astype(str).astype(object)
        cfg = TextConfig(history_items=self.config.history_items)
        self.profiles_ = user_texts(data.log, data.n_users, self.titles_, data.user_table, cfg)
        self.neutral_: dict[str, float] = getattr(self, "neutral_", {})

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        self.base_.add_items(items)
        titles = np.empty(n_items, dtype=object)
        titles[: len(self.titles_)] = self.titles_
        names = items[C.TITLE] if C.TITLE in items else items[C.ITEM_ID]
        titles[index] = [natural_title(str(t)) for t in names]
        self.titles_ = titles

    def _state(self) -> dict[str, np.ndarray]:
        return {
            **{f"base.{k}": v for k, v in self.base_._state().items()},
            **{f"lora.{k}": v for k, v in (getattr(self, "lora_", None) or {}).items()},
            "titles": self.titles_.astype(str),
        }

    def _write_files(self, folder: Path, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The adapter as safetensors of its own, its metadata naming the base model and
        how it was trained (the rest goes to arrays.npz)."""
        lora = {k[5:]: v for k, v in state.items() if k.startswith("lora.")}
        if lora:
            from safetensors.numpy import save_file

            c = self.config
            meta = {
                "base_model": MODEL_NAME, "rank": str(c.lora_rank), "alpha": str(c.lora_alpha),
                "examples": str(c.lora_examples), "epochs": str(c.lora_epochs),
                "learning_rate": str(c.lora_lr), "history_items": str(c.history_items),
                "loss": ",".join(f"{x:.4f}" for x in getattr(self, "lora_loss_", [])),
            }  # fmt: skip
            save_file(lora, str(folder / LORA_FILE), metadata=meta)
        return {k: v for k, v in state.items() if not k.startswith("lora.")}

    def _read_files(self, folder: Path) -> dict[str, np.ndarray]:
        if not (folder / LORA_FILE).is_file():
            return {}
        from safetensors.numpy import load_file

        return {f"lora.{k}": v for k, v in load_file(str(folder / LORA_FILE)).items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.base_ = self._adopt(self._base(), state, "base.")
        self.lora_ = {k[5:]: v for k, v in state.items() if k.startswith("lora.")}
        self.titles_ = state["titles"].astype(object)
        self.neutral_ = {}
        self.profiles_ = [NEUTRAL] * len(self.users_)  # until the next observe

    # --- scoring ---------------------------------------------------------------------------
    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        base = self.base_.score(user_idx).astype(np.float64)
        top = self.top_candidates(user_idx, base)
        llm = self.llm_scores(user_idx, top)
        return blend(base, top, llm, self.config.weight)[:, item_idx]

    def top_candidates(self, user_idx: np.ndarray, base: np.ndarray) -> np.ndarray:
        """The M best unseen items per user by the base model (users x M)."""
        masked = base.copy()
        seen = self.history_[user_idx].toarray().astype(bool)
        masked[seen | np.isnan(masked)] = -np.inf
        m = min(self.config.top_m, masked.shape[1])
        return np.argsort(-masked, axis=1, kind="stable")[:, :m]

    def llm_scores(
        self, user_idx: np.ndarray, top: np.ndarray, progress: bool = False
    ) -> np.ndarray:
        """Calibrated LLM scores of each user's candidates (users x M)."""
        llm = self._llm()
        noun = self.config.noun
        out = np.empty(top.shape)
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("LLM rescoring", total=len(user_idx))
            for r, u in enumerate(user_idx):
                titles = [str(t) for t in self.titles_[top[r]]]
                with llm.lock:
                    given = llm.score_candidates(rerank_prompt(self.profiles_[u], noun), titles)
                    new = [t for t in dict.fromkeys(titles) if t not in self.neutral_]
                    if new:
                        neutral = llm.score_candidates(rerank_prompt(NEUTRAL, noun), new)
                        self.neutral_.update(zip(new, neutral.tolist(), strict=True))
                out[r] = given - np.array([self.neutral_[t] for t in titles])
                bar.advance(task)
        return out

    # --- tuning ----------------------------------------------------------------------------
    @classmethod
    def tune_on(
        cls, split: Split, fixed: dict[str, Any], search: bool = True, on_trial: OnTrial = None
    ) -> TuneResult:
        """The base model tuned as usual; then the LLM rescores the validation users' top-M
        once and every weight only re-blends those scores."""

        config = cls.config_class(**fixed)
        t0 = time.perf_counter()
        bt = tune(
            get_model_class(config.base),
            split,
            {"seed": config.seed, **config.base_params},
            search=search,
            on_trial=on_trial,
        )
        model = cls(config.model_copy(update={"base_params": own_params(bt.params)}))
        model._bind(split.valid_train)
        model.base_ = bt.model
        model._texts(split.valid_train)
        users = split.valid.user_idx
        if config.tune_users and config.tune_users < len(users):
            rng = np.random.default_rng(config.seed)
            users = np.sort(rng.choice(users, config.tune_users, replace=False))
        valid = dataclasses.replace(
            split, valid=split.valid.subset(np.isin(split.valid.user_idx, users))
        )
        base = bt.model.score(users).astype(np.float64)
        top = model.top_candidates(users, base)
        # the LLM as it ships and/or fine-tuned on the training part (never on validation)
        llm: dict[str, np.ndarray] = {}
        model.lora_ = {}
        if config.lora != "on":
            llm["off"] = model.llm_scores(users, top, progress=True)
        if config.lora != "off":
            model.lora_ = model._fine_tune(split.valid_train)
            llm["on"] = model.llm_scores(users, top, progress=True)
        weights = cls.search_space["weight"] if search else [config.weight]
        trials: list[Trial] = list(bt.trials)
        best: Trial | None = None
        for lora, scores in llm.items():  # "off" first: a tie keeps the cheaper model
            for w in weights:
                score = valid_score_of(blend(base, top, scores, w), valid)
                update = {"weight": w, "lora": lora}
                params = model.config.model_copy(update=update).model_dump()
                trial = Trial(params, score, time.perf_counter() - t0)
                trials.append(trial)
                if on_trial:
                    on_trial(trial)
                if best is None or score > best.score:
                    best = trial
        assert best is not None
        chosen = {k: best.params[k] for k in ("weight", "lora")}
        model.config = model.config.model_copy(update=chosen)
        if chosen["lora"] == "off":
            model.lora_, model.neutral_ = {}, {}
        return TuneResult(model, best.params, best.score, bt.fit_seconds, trials)


def blend(base: np.ndarray, top: np.ndarray, llm: np.ndarray, weight: float) -> np.ndarray:
    """Scores over all items: the top-M by z(base) + weight * z(llm), above all others."""
    out = base.copy()
    b = np.take_along_axis(base, top, axis=1)
    final = _z(b) + weight * _z(llm)
    np.put_along_axis(out, top, TOP + final, axis=1)
    return out


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=1, keepdims=True)
    return np.divide(x - x.mean(axis=1, keepdims=True), sd, out=np.zeros_like(x), where=sd > 0)
