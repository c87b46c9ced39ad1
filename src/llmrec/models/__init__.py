"""Recommenders behind one interface; ``MODELS`` maps command-line names to classes."""

from __future__ import annotations

from llmrec.models.base import Recommendations, Recommender, RecommenderConfig
from llmrec.models.content import Content, ContentConfig, TextModelConfig, UserText, UserTextConfig
from llmrec.models.ease import EASE, EASEConfig
from llmrec.models.knn import ItemKNN, KNNConfig, UserKNN
from llmrec.models.lm import LM, LMConfig
from llmrec.models.mf import ALS, BPR, ALSConfig, BPRConfig
from llmrec.models.pop import Pop, Random
from llmrec.models.registry import ALL_MODELS, EXTRA_MODELS, MODELS, PIPELINES, get_model_class
from llmrec.models.repeat import Repeat, RepeatConfig
from llmrec.models.sasrec import SASRec, SASRecConfig

__all__ = [
    "ALL_MODELS",
    "ALS",
    "ALSConfig",
    "BPR",
    "BPRConfig",
    "Content",
    "ContentConfig",
    "EASE",
    "EASEConfig",
    "EXTRA_MODELS",
    "ItemKNN",
    "KNNConfig",
    "LM",
    "LMConfig",
    "MODELS",
    "PIPELINES",
    "Pop",
    "Random",
    "Recommendations",
    "Recommender",
    "RecommenderConfig",
    "Repeat",
    "RepeatConfig",
    "SASRec",
    "SASRecConfig",
    "TextModelConfig",
    "UserKNN",
    "UserText",
    "UserTextConfig",
    "get_model_class",
]
