"""llmrec: a recommender engine in which language models are first-class.

The public surface is small and imports nothing heavy (torch loads only when a text encoder is
first used): load a dataset, split it with a protocol, fit a model, evaluate it.
"""

from __future__ import annotations

from llmrec.config import Settings, get_settings
from llmrec.data.dataset import Dataset
from llmrec.errors import ConfigError, DataError, FetchError, LlmrecError, UnknownDatasetError

__version__ = "0.2.0"

__all__ = [
    "ConfigError",
    "DataError",
    "Dataset",
    "FetchError",
    "LlmrecError",
    "Settings",
    "UnknownDatasetError",
    "__version__",
    "get_settings",
]
