"""Which class a model name means: the single-stage models here, the composites of
``ranking/`` by string (they import ``models`` and ``eval.tuning``; importing them here would
run back up the layers), resolved when asked for."""

from __future__ import annotations

import importlib

from llmrec.errors import ConfigError
from llmrec.models.base import Recommender
from llmrec.models.content import Content, UserText
from llmrec.models.ease import EASE
from llmrec.models.knn import ItemKNN, UserKNN
from llmrec.models.lm import LM
from llmrec.models.mf import ALS, BPR
from llmrec.models.pop import Pop, Random
from llmrec.models.repeat import Repeat
from llmrec.models.sasrec import SASRec

MODELS: dict[str, type[Recommender]] = {
    m.name: m for m in (Random, Pop, ItemKNN, UserKNN, EASE, ALS, BPR, SASRec, Content, UserText)
}
# models that only make sense on some data, left out of ``--model all`` (named, they run)
# (``lm`` fine-tunes a language model: minutes on a laptop, so only when asked for)
EXTRA_MODELS: dict[str, type[Recommender]] = {Repeat.name: Repeat, LM.name: LM}


# Composites built from the models above live in ``ranking/``, which imports ``models`` (and
# ``eval.tuning``, to tune their parts): named here by string and imported when asked for.
PIPELINES: dict[str, str] = {
    "hybrid": "llmrec.ranking.hybrid:Hybrid",
    "ranker": "llmrec.ranking.ranker:Ranker",
    "llm-rerank": "llmrec.ranking.llm_rerank:LLMRerank",
}

# what ``--model all`` runs: every single-stage model and the hybrid (the ranker and the LLM
# rerank are pipelines with their own commands and benchmarks)
ALL_MODELS: tuple[str, ...] = (*MODELS, "hybrid")


def get_model_class(name: str) -> type[Recommender]:
    if name in PIPELINES:
        module, attr = PIPELINES[name].split(":")
        return getattr(importlib.import_module(module), attr)
    try:
        return MODELS[name] if name in MODELS else EXTRA_MODELS[name]
    except KeyError:
        known = ", ".join([*MODELS, *EXTRA_MODELS, *PIPELINES])
        raise ConfigError(f"unknown model {name!r}: choose one of {known}") from None
