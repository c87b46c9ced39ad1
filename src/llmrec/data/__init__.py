"""Canonical tables, bundled datasets, import of your own data, and what models fit on."""

from __future__ import annotations

from llmrec.data.dataset import Dataset, list_datasets, load, save
from llmrec.data.ids import IdMap, sorted_ids
from llmrec.data.matrix import TrainData

__all__ = ["Dataset", "IdMap", "TrainData", "list_datasets", "load", "save", "sorted_ids"]
