"""Synthetic datasets for scale tests: power-law popularity and activity, taste clusters,
generated item texts. Written chunk by chunk: memory grows with users + items, not events.

The model: every item belongs to one of ``clusters`` tastes and has a Zipf popularity
(weight ``1 / rank ** popularity_exponent`` over a random order of the items); every user
has a taste and a Pareto activity (``activity_shape``; lower = heavier tail). A user's
events pick, with probability ``in_taste``, an item of their taste by popularity within
it, else any item by global popularity; ratings are higher inside the taste. Every user
has at least one event; the total is exactly ``interactions``. Item texts name the taste's
genre and words, so text encoders can find the clusters that collaborative filtering sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmrec.data import columns as C
from llmrec.data import dataset as store

_GENRES = (
    "Noir", "Space Opera", "Cozy Mystery", "Jazz", "Folk", "Cyberpunk", "Romance", "Western",
    "Documentary", "Horror", "Fantasy", "Cooking", "Travel", "History", "Comedy", "Thriller",
    "Poetry", "Animation", "Sports", "Science", "Gardening", "Opera", "Punk", "Mythology",
)  # fmt: skip
_NOUNS = (
    "river", "engine", "garden", "detective", "harbour", "planet", "violin", "desert",
    "kitchen", "castle", "robot", "island", "storm", "library", "train", "forest", "mirror",
    "dragon", "city", "lantern", "orchard", "circus", "glacier", "market", "comet", "canyon",
    "festival", "lighthouse", "spy", "queen", "pilot", "painter", "ghost", "wolf", "sailor",
    "clock", "bridge", "archive", "machine", "meadow", "tower", "voyage", "melody", "empire",
)  # fmt: skip
_ADJECTIVES = (
    "silent", "golden", "broken", "hidden", "electric", "gentle", "restless", "crimson",
    "distant", "frozen", "wild", "quiet", "burning", "secret", "lonely", "bright", "ancient",
    "strange", "velvet", "hollow", "endless", "midnight", "little", "last",
)  # fmt: skip
_OCCUPATIONS = (
    "student", "engineer", "teacher", "artist", "nurse", "writer", "farmer", "lawyer",
    "programmer", "retired", "scientist", "salesman", "librarian", "doctor", "other",
)  # fmt: skip
_START = 1_600_000_000  # events start here (unix seconds) and spread over a year
_SPAN = 365 * 86_400


class SynthConfig(BaseModel):
    """The generator's knobs (documented defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    users: int = Field(ge=1)
    items: int = Field(ge=1)
    interactions: int = Field(ge=1)
    clusters: int = Field(20, ge=1, description="user tastes / item groups")
    popularity_exponent: float = Field(1.0, ge=0, description="Zipf exponent of item weights")
    activity_shape: float = Field(1.5, gt=0, description="Pareto shape of user activity")
    in_taste: float = Field(0.8, ge=0, le=1, description="share of events inside the taste")
    seed: int = 0
    chunk_users: int = Field(50_000, ge=1, description="users generated per written chunk")

    @model_validator(mode="after")
    def _enough_events(self) -> SynthConfig:
        if self.interactions < self.users:
            raise ValueError(
                f"interactions ({self.interactions:,}) must be at least users "
                f"({self.users:,}): every user has an event"
            )
        return self


_SCHEMA = pa.schema(
    [
        (C.USER_ID, pa.string()),
        (C.ITEM_ID, pa.string()),
        (C.TIMESTAMP, pa.int64()),
        (C.EVENT, pa.string()),
        (C.VALUE, pa.float64()),
    ]
)


def synthesize(
    name: str,
    config: SynthConfig,
    root: Path,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write dataset ``name`` under ``root`` (atomically); ``progress(events)`` after each
    chunk. Returns the dataset's summary counts."""
    c = config
    rng = np.random.default_rng(c.seed)
    item_taste = rng.integers(0, c.clusters, c.items)
    popularity = 1.0 / (rng.permutation(c.items) + 1.0) ** c.popularity_exponent
    global_cum = np.cumsum(popularity)
    by_taste = [np.flatnonzero(item_taste == t) for t in range(c.clusters)]
    taste_cum = [np.cumsum(popularity[i]) for i in by_taste]
    user_taste = rng.integers(0, c.clusters, c.users)
    activity = rng.pareto(c.activity_shape, c.users) + 1.0
    extra_left, weight_left = c.interactions - c.users, float(activity.sum())
    with store.writing(root, name) as version:
        items = pa.Table.from_pandas(_items(rng, item_taste, c.clusters), preserve_index=False)
        pq.write_table(items, version.path / "items.parquet")
        pq.write_table(_users(rng, c.users), version.path / "users.parquet")
        with pq.ParquetWriter(version.path / "interactions.parquet", _SCHEMA) as writer:
            for lo in range(0, c.users, c.chunk_users):
                hi = min(lo + c.chunk_users, c.users)
                w = activity[lo:hi]
                # the extra events split exactly: this chunk's binomial share, then per user
                share = min(1.0, w.sum() / weight_left) if weight_left > 0 else 1.0
                n_extra = rng.binomial(extra_left, share) if hi < c.users else extra_left
                counts = 1 + rng.multinomial(n_extra, w / w.sum())
                extra_left, weight_left = extra_left - n_extra, weight_left - float(w.sum())
                chunk = _events(rng, c, lo, counts, user_taste, global_cum, by_taste, taste_cum)
                writer.write_table(chunk)
                if progress:
                    progress(len(chunk))
        summary = {"interactions": c.interactions, "users": c.users, "items": c.items}
        meta = {"source": "llmrec data synth", "synth": c.model_dump(), "implicit": False}
        version.manifest.update(tables=["interactions", "items", "users"], **summary, **meta)
    return summary


def _events(
    rng: np.random.Generator,
    c: SynthConfig,
    first_user: int,
    counts: np.ndarray,
    user_taste: np.ndarray,
    global_cum: np.ndarray,
    by_taste: list[np.ndarray],
    taste_cum: list[np.ndarray],
) -> pa.Table:
    n = int(counts.sum())
    user = np.repeat(np.arange(first_user, first_user + len(counts)), counts)
    taste = user_taste[user]
    inside = rng.random(n) < c.in_taste
    item = np.searchsorted(global_cum, rng.random(n) * global_cum[-1])
    for t in np.unique(taste[inside]):
        pick = np.flatnonzero(inside & (taste == t))
        if len(by_taste[t]) == 0:
            continue  # a taste without items: its users pick by global popularity
        cum = taste_cum[t]
        item[pick] = by_taste[t][np.searchsorted(cum, rng.random(len(pick)) * cum[-1])]
    # each user's events an increasing sequence from a random start
    gaps = rng.exponential(86_400.0, n)
    ends = np.cumsum(counts)
    within = np.cumsum(gaps) - np.repeat(np.r_[0.0, np.cumsum(gaps)[ends[:-1] - 1]], counts)
    start = rng.integers(_START, _START + _SPAN, len(counts))
    timestamp = np.repeat(start, counts) + within.astype(np.int64)
    rating = np.where(inside, rng.integers(3, 6, n), rng.integers(1, 5, n)).astype(np.float64)
    return pa.table(
        {
            C.USER_ID: pa.array((user + 1).astype(str)),
            C.ITEM_ID: pa.array((item + 1).astype(str)),
            C.TIMESTAMP: pa.array(timestamp, pa.int64()),
            C.EVENT: pa.array(np.full(n, "rate")),
            C.VALUE: pa.array(rating),
        },
        schema=_SCHEMA,
    )


def _items(rng: np.random.Generator, taste: np.ndarray, clusters: int) -> pd.DataFrame:
    genre = [
        _GENRES[t % len(_GENRES)] + (f" {t // len(_GENRES) + 1}" if t >= len(_GENRES) else "")
        for t in range(clusters)
    ]
    words = [rng.choice(len(_NOUNS), 6, replace=False) for _ in range(clusters)]
    n = len(taste)
    noun = np.array([words[t][j] for t, j in zip(taste, rng.integers(0, 6, n), strict=True)])
    other = np.array([words[t][j] for t, j in zip(taste, rng.integers(0, 6, n), strict=True)])
    adj = rng.integers(0, len(_ADJECTIVES), (n, 2))
    second = rng.integers(0, clusters, n)
    has_second = (rng.random(n) < 0.3) & (second != taste)
    return pd.DataFrame(
        {
            C.ITEM_ID: (np.arange(n) + 1).astype(str),
            C.TITLE: [
                f"The {_ADJECTIVES[a].title()} {_NOUNS[w].title()}"
                for a, w in zip(adj[:, 0], noun, strict=True)
            ],
            C.YEAR: rng.integers(1950, 2025, n),
            C.GENRES: [
                [genre[t], genre[s]] if h else [genre[t]]
                for t, s, h in zip(taste, second, has_second, strict=True)
            ],
            "description": [
                f"{_article(_ADJECTIVES[a])} {genre[t].lower()} tale"
                f" of a {_NOUNS[w]} and a {_NOUNS[o]}."
                for a, t, w, o in zip(adj[:, 1], taste, noun, other, strict=True)
            ],
        }
    )


def _users(rng: np.random.Generator, n: int) -> pa.Table:
    return pa.table(
        {
            C.USER_ID: pa.array((np.arange(n) + 1).astype(str)),
            "age": pa.array(rng.integers(16, 75, n)),
            "occupation": pa.array(np.asarray(_OCCUPATIONS)[rng.integers(0, len(_OCCUPATIONS), n)]),
        }
    )


def _article(word: str) -> str:
    return f"{'An' if word[0] in 'aeiou' else 'A'} {word}"
