"""Recommenders behind one interface; ``MODELS`` maps command-line names to classes."""

from __future__ import annotations

from llmrec.errors import ConfigError
from llmrec.models.base import Recommendations, Recommender, RecommenderConfig
from llmrec.models.content import Content, UserText
from llmrec.models.ease import EASE
from llmrec.models.hybrid import Hybrid
from llmrec.models.knn import ItemKNN, UserKNN
from llmrec.models.mf import ALS, BPR
from llmrec.models.pop import Pop, Random

MODELS: dict[str, type[Recommender]] = {
    m.name: m for m in (Random, Pop, ItemKNN, UserKNN, EASE, ALS, BPR, Content, UserText, Hybrid)
}


def get_model_class(name: str) -> type[Recommender]:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}") from None


__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "MODELS",
    "ItemKNN",
    "Pop",
    "Random",
    "Recommendations",
    "Recommender",
    "RecommenderConfig",
    "UserKNN",
    "get_model_class",
]
