"""The verbalizer LLM fine-tuned on behaviour (#21 item 4): examples come from the training
events only, the fine-tune learns (its loss falls, the target's score rises) and is
deterministic, the adapter is saved as safetensors and loads to the same scores, and tuning
chooses between the shipped and the fine-tuned LLM on validation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from llmrec.config import Settings
from llmrec.data.splits import full_train, holdout
from llmrec.errors import ConfigError
from llmrec.eval.protocols import loo
from llmrec.llm.lora import LoraSettings, adapted_lm, fine_tune, verbalizer_examples
from llmrec.llm.prompts import rerank_prompt
from llmrec.llm.runtime import LanguageModel, LLMConfig, load_llm
from llmrec.models.base import Recommender
from llmrec.ranking.llm_rerank import LORA_FILE, LLMRerank
from llmrec.testing import FAST_RANKER, block_dataset
from llmrec.testing.fixtures import shop_dataset


def test_examples_hold_out_each_users_latest_training_event() -> None:
    split = loo(shop_dataset())
    data = split.valid_train  # what tuning fine-tunes on: no validation or test item
    titles = np.array([f"Book {i}" for i in range(data.n_items)], dtype=object)
    examples = verbalizer_examples(data, titles, "book", 5, 10, seed=0)
    h = holdout(data, min_interactions=2)
    assert len(examples) == 10
    expected = {str(titles[t]) for t in h.valid.targets[:, 0]}
    assert {target for _, target in examples} <= expected
    for prompt, _ in examples:
        assert "<profile>" in prompt and prompt.endswith("The user should choose the book:")
    again = verbalizer_examples(data, titles, "book", 5, 10, seed=0)
    assert again == examples and verbalizer_examples(data, titles, "book", 5, 10, 1) != examples
    every = verbalizer_examples(data, titles, "book", 5, 10_000, seed=0)
    assert len(every) == len(h.valid.user_idx)  # capped at the users there are


class _ByAdapter(LanguageModel):
    """Prefers titles sharing words with the prompt; with an adapter, the opposite."""

    def __init__(self, sign: float) -> None:
        super().__init__()
        self.sign = sign

    def score_candidates(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        words = set(prompt.lower().split())
        return self.sign * np.array(
            [float(len(words & set(c.lower().split()))) for c in candidates]
        )

    def generate(self, prompt: str, max_tokens: int) -> str:
        return ""


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
def test_tuning_chooses_between_the_shipped_and_the_fine_tuned_llm(monkeypatch, mode) -> None:
    shipped, tuned_lm = _ByAdapter(1.0), _ByAdapter(-1.0)
    monkeypatch.setattr(LLMRerank, "_llm", lambda self: tuned_lm if self.lora_ else shipped)
    calls: list[int] = []

    def fake_fine_tune(self, train):
        calls.append(len(train.log))
        self.neutral_ = {}
        return {"a": np.ones(2, np.float32)}

    monkeypatch.setattr(LLMRerank, "_fine_tune", fake_fine_tune)
    split = loo(block_dataset())
    fixed = {"base_params": FAST_RANKER, "top_m": 5, "noun": "film", "lora": mode}
    result = LLMRerank.tune_on(split, fixed)
    arms = [t.params["lora"] for t in result.trials if "top_m" in t.params]
    n = len(LLMRerank.search_space["weight"])
    assert arms == {"auto": ["off"] * n + ["on"] * n, "on": ["on"] * n, "off": ["off"] * n}[mode]
    assert calls == ([] if mode == "off" else [len(split.valid_train.log)])  # training part
    best = max((t for t in result.trials if "top_m" in t.params), key=lambda t: t.score)
    model = result.model
    assert model.config.lora == best.params["lora"] and model.config.weight == best.params["weight"]
    assert bool(model.lora_) == (model.config.lora == "on")


def test_lora_needs_the_transformers_runtime() -> None:
    data = full_train(block_dataset())
    with pytest.raises(ConfigError, match="runtime=transformers"):
        LLMRerank(base_params=FAST_RANKER, lora="on", runtime="llama-cpp").fit(data)


# --- the real model ----------------------------------------------------------------------
@pytest.fixture
def real_home(real_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LLMREC_HOME", str(real_settings.home))  # the converted LLM lives there
    return real_settings


PROMPT = rerank_prompt("Alien (rated 5/5); Aliens (rated 5/5); The Terminator (rated 4/5)", "movie")
EXAMPLES = [(PROMPT, "Blade Runner"), (PROMPT.replace("Alien ", "Heat "), "Blade Runner")]


@pytest.mark.slow
@pytest.mark.realdata
def test_the_fine_tune_learns_and_is_deterministic(real_home: Settings) -> None:
    settings = LoraSettings(epochs=3, learning_rate=2e-3, batch=2, seed=3)
    first = fine_tune(EXAMPLES, settings)
    loss = first["loss"]
    assert len(loss) == 3 and loss[2] < loss[0]
    again = fine_tune(EXAMPLES, settings)
    assert first["weights"].keys() == again["weights"].keys()
    assert all(np.array_equal(first["weights"][k], again["weights"][k]) for k in first["weights"])
    shipped = load_llm(LLMConfig())
    tuned = adapted_lm(first["weights"], settings.rank, settings.alpha)
    cands = ["Blade Runner", "Mary Poppins"]
    before, after = shipped.score_candidates(PROMPT, cands), tuned.score_candidates(PROMPT, cands)
    assert after[0] > before[0]  # the learned title is more likely after fine-tuning
    assert (after[0] - after[1]) > (before[0] - before[1])
    assert np.array_equal(shipped.score_candidates(PROMPT, cands), before)  # base untouched


@pytest.mark.slow
@pytest.mark.realdata
def test_a_fine_tuned_rerank_saves_its_adapter_and_loads_the_same(
    real_home: Settings, tmp_path: Path
) -> None:
    split = loo(shop_dataset())
    params = {"base": "ease", "top_m": 3, "weight": 1.0, "noun": "book", "lora": "on",
              "lora_examples": 4, "history_items": 3}  # fmt: skip
    model = LLMRerank(**params).fit(split.train)
    assert model.lora_ and len(model.lora_loss_) == 1
    model.observe(split.test_history)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert meta["params"]["lora"] == "on"
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m" / LORA_FILE), "np") as f:
        assert f.metadata()["base_model"] == "SmolLM2-135M-Instruct"
        assert set(f.keys()) == set(model.lora_)
    again = Recommender.load(tmp_path / "m")
    again.observe(split.test_history)
    users = split.test.user_idx[:3]
    assert np.allclose(again.score(users), model.score(users))
    ids = [str(u) for u in split.train.users.ids[users]]  # numeric-looking string ids
    assert len(again.recommend(ids, k=3).item_ids[0]) == 3
