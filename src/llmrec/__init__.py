"""llmrec: a recommender engine in which language models are first-class.

The public surface is small and imports nothing heavy (torch loads only when a text encoder is
first used): load a dataset (or build one from DataFrames), split it with a protocol, get a
model, fit it, evaluate it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrec.api import (
    ask,
    dataset_from_frames,
    evaluate,
    get_model,
    load_dataset,
    make_split,
    save_dataset,
    training_data,
)
from llmrec.config import Settings, get_settings
from llmrec.data.dataset import Dataset
from llmrec.errors import ConfigError, DataError, FetchError, LlmrecError, UnknownDatasetError

if TYPE_CHECKING:
    from llmrec.models.base import Recommender

__version__ = "0.2.0"

__all__ = [
    "ConfigError",
    "DataError",
    "Dataset",
    "FetchError",
    "LlmrecError",
    "Recommender",
    "Settings",
    "UnknownDatasetError",
    "__version__",
    "ask",
    "dataset_from_frames",
    "evaluate",
    "get_model",
    "get_settings",
    "load_dataset",
    "make_split",
    "save_dataset",
    "training_data",
]


def __getattr__(name: str) -> Any:
    if name == "Recommender":  # the model base class loads numpy/scipy: on first use
        from llmrec.models.base import Recommender

        return Recommender
    raise AttributeError(f"module 'llmrec' has no attribute {name!r}")
