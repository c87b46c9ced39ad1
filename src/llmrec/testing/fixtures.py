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


SHOP_EVENTS = ("view", "click", "cart", "purchase")
_PLOTS = ("detective story with a murder in the fog", "space adventure among far planets")


def shop_dataset(
    n_users: int = 50, n_items: int = 80, n_events: int = 1500, seed: int = 0, name: str = "shop"
) -> Dataset:
    """A bookshop's own data, shaped like the one that broke wave 1: views, clicks, carts and
    purchases (``cart`` is a custom event name, declared in the dataset's ``events`` meta as
    the canonical ``cart``... see ``data.events``), people returning to books they saw
    (repeats), every context column with missing values, extra item and user attributes,
    and ids that look like numbers (``"0042"``, ``"1e3"``) but are strings.

    Two communities (even users read even books) make the answers learnable: a user's
    events are 85% in their own community's books, drawn with a popularity skew.
    """
    rng = np.random.default_rng(seed)
    item_ids = [f"{i:04d}" for i in range(n_items - 1)] + ["1e3"]
    user_ids = [f"{u:03d}" for u in range(n_users - 2)] + ["NaN", "7.0"]
    rows = []
    weights = 1.0 / np.arange(1, n_items // 2 + 1)
    for e in range(n_events):
        u = int(rng.integers(n_users))
        own = u % 2 if rng.random() < 0.85 else 1 - u % 2
        pool = np.arange(own, n_items, 2)
        p = weights[: len(pool)] / weights[: len(pool)].sum()
        i = int(rng.choice(pool, p=p))
        event = str(rng.choice(SHOP_EVENTS, p=[0.55, 0.25, 0.1, 0.1]))
        rows.append(
            {
                C.USER_ID: user_ids[u],
                C.ITEM_ID: item_ids[i],
                C.TIMESTAMP: 1_600_000_000 + 37 * e + int(rng.integers(0, 5)),
                C.EVENT: "add_to_cart" if event == "cart" else event,
                C.VALUE: float(9 + i % 7) if event == "purchase" else np.nan,
                C.DEVICE: [None, "mobile", "desktop", "tablet"][int(rng.integers(4))],
                C.LOCATION: ["DE", "FR", None][int(rng.integers(3))],
                C.SCENARIO: ["home", "search", "email"][int(rng.integers(3))],
            }
        )
    inter = pd.DataFrame(rows)
    genres = [["Crime", "Mystery"], ["Science Fiction", "Space"]]
    items = pd.DataFrame(
        {
            C.ITEM_ID: item_ids,
            C.TITLE: [f"{['The Case', 'Star Voyage'][i % 2]} {i}" for i in range(n_items)],
            "description": [f"A {_PLOTS[i % 2]}, book {i}." for i in range(n_items)],
            C.GENRES: [genres[i % 2] for i in range(n_items)],
            C.YEAR: pd.array([1990 + i % 30 if i % 9 else None for i in range(n_items)], "Int64"),
            "brand": [f"Press {i % 5}" for i in range(n_items)],
            "price": [9.5 + i % 7 for i in range(n_items)],
        }
    )
    users = pd.DataFrame(
        {
            C.USER_ID: user_ids,
            "age": [18 + u % 50 for u in range(n_users)],
            "country": [["DE", "FR", ""][u % 3] for u in range(n_users)],
        }
    )
    meta = {"source": "test", "implicit": True, "events": {"add_to_cart": "cart"}}
    return Dataset(name, inter, items, users, meta=meta)
