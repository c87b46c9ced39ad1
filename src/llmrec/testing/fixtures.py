"""Small datasets whose right answers are known by construction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset

# a ranker small enough to fit in seconds (hashing text encoder: no model download)
FAST_RANKER: dict[str, Any] = {
    "retrievers": {
        "sasrec": {"encoder": "hashing", "epochs": 5, "embedding_size": 16, "max_len": 12},
        "ease": {"reg": 100.0},
        "content": {"encoder": "hashing"},
        "pop": {},
    },
    "n_candidates": 10,
    "min_data_in_leaf": 5,
    "rounds": 20,
}


def tiny_dataset(name: str = "tiny") -> Dataset:
    """5 users, 6 items, hand-written; user u5 has only 2 interactions (dropped by loo).

    Timestamps tie on purpose: u1's last two interactions share t=30, so the item-id order
    decides (item 10 sorts after item 9 as an integer, before it as a string).
    """
    rows = [
        ("u1", "1", 10),
        ("u1", "2", 20),
        ("u1", "9", 30),
        ("u1", "10", 30),
        ("u2", "1", 11),
        ("u2", "3", 12),
        ("u2", "4", 13),
        ("u3", "2", 5),
        ("u3", "3", 6),
        ("u3", "4", 7),
        ("u3", "1", 8),
        ("u4", "4", 1),
        ("u4", "9", 2),
        ("u4", "10", 3),
        ("u5", "1", 1),
        ("u5", "2", 2),
    ]
    inter = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP])
    inter[C.EVENT], inter[C.VALUE] = "rate", 4.0
    items = pd.DataFrame(
        {
            C.ITEM_ID: ["1", "2", "3", "4", "9", "10"],
            C.TITLE: ["One", "Two", "Three", "Four", "Nine", "Ten"],
            C.GENRES: [["a"], ["a", "b"], ["b"], ["c"], ["a", "c"], []],
        }
    )
    return Dataset(name, inter, items)


def block_dataset(
    n_users: int = 40, n_items: int = 20, seed: int = 0, name: str = "blocks"
) -> Dataset:
    """Two communities: even users consume even items, odd users odd items (a checkerboard).

    Each user sees a random 60% of their own block, so any collaborative model must rank the
    rest of the user's block above the other block; the genre (Drama for even items, Comedy
    for odd ones) lets content models do the same from text.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        own = [i for i in range(n_items) if i % 2 == u % 2]
        seen = rng.choice(own, size=int(len(own) * 0.6), replace=False)
        rows += [(f"u{u}", f"{i}", t) for t, i in enumerate(seen)]
    inter = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP])
    inter[C.EVENT], inter[C.VALUE] = "view", np.nan
    items = pd.DataFrame(
        {
            C.ITEM_ID: [str(i) for i in range(n_items)],
            C.TITLE: [f"{'Drama' if i % 2 == 0 else 'Comedy'} item {i}" for i in range(n_items)],
            C.GENRES: [["Drama"] if i % 2 == 0 else ["Comedy"] for i in range(n_items)],
        }
    )
    return Dataset(name, inter, items)
