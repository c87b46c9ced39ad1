"""The verbs of the Python API, re-exported by ``llmrec``: load a dataset (or build one from
DataFrames), split it with a protocol, get a model, evaluate it. Heavy modules load on use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrec.config import get_settings

if TYPE_CHECKING:
    import pandas as pd

    from llmrec.data.dataset import Dataset
    from llmrec.data.events import EventRules
    from llmrec.data.matrix import TrainData
    from llmrec.data.splits import Split
    from llmrec.eval.evaluate import StageResult
    from llmrec.models.base import Recommender
    from llmrec.query.answer import Asked


def load_dataset(name: str, root: Path | str | None = None) -> Dataset:
    """A stored dataset by name; a bundled one (``ml-100k``, ``ml-1m``, ...) is fetched into
    ``root`` (default: ``$LLMREC_HOME/datasets``) on first use."""
    from llmrec.data import dataset as store
    from llmrec.data.fetch import FETCHERS, fetch

    s = get_settings()
    folder = Path(root) if root is not None else s.datasets_dir
    if name in FETCHERS and not store.exists(folder, name):
        fetch(name, folder, s.cache_dir / "wheels")
    return store.load(folder, name)


def dataset_from_frames(
    name: str,
    interactions: pd.DataFrame,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    *,
    events: EventRules | None = None,
    drop_unknown: bool = False,
    timestamp_unit: str = "s",
) -> Dataset:
    """A dataset from pandas DataFrames, checked by the same rules as ``llmrec data import``
    (errors name the frame, row and column); nothing is written (``save_dataset`` does)."""
    from llmrec.data.dataset import Dataset
    from llmrec.data.events import EventRules
    from llmrec.data.importer import (
        check_catalogue,
        interactions_table,
        items_table,
        users_table,
    )
    from llmrec.data.tables import as_text

    rules = events or EventRules()
    inter, _ = interactions_table(as_text(interactions), "interactions", rules, timestamp_unit)  # type: ignore[arg-type]
    item_table = items_table(as_text(items), "items") if items is not None else None
    user_table = users_table(as_text(users), "users") if users is not None else None
    meta = {"source": "frames", "implicit": True, **rules.to_meta()}
    ds = Dataset(name, inter, item_table, user_table, meta=meta)  # type: ignore[arg-type]
    check_catalogue(ds, "interactions", drop_unknown, "items")
    return ds


def save_dataset(ds: Dataset, root: Path | str | None = None) -> Path:
    """Store ``ds`` atomically under ``root`` (default: ``$LLMREC_HOME/datasets``), where the
    CLI and ``load_dataset`` find it."""
    from llmrec.data import dataset as store

    folder = Path(root) if root is not None else get_settings().datasets_dir
    store.save(ds, folder)
    return folder / ds.name


def make_split(
    ds: Dataset, protocol: str = "loo", seed: int = 0, tune_users: int | None = None
) -> Split:
    """``loo`` (default), ``repeats``, ``cold-items`` or ``cold-users`` (docs/evaluation.md).
    Tuning looks at a seeded sample of ``tune_users`` validation users when there are more
    (default: ``LLMREC_TUNE_USERS``, 10,000; 0 = all)."""
    from llmrec.eval.protocols import make_split as split

    return split(ds, protocol, seed=seed, tune_users=tune_users)


def training_data(ds: Dataset) -> TrainData:
    """Every event of ``ds`` as training data, nothing held back: what a model is deployed on
    (``llmrec train`` fits this after tuning on a split)."""
    from llmrec.data.splits import full_train

    return full_train(ds)


def get_model(name: str, **params: Any) -> Recommender:
    """A model by its command-line name (``ease``, ``sasrec``, ``ranker``, ...), configured
    with ``params``; unknown names and parameters are a ``ConfigError``."""
    from llmrec.models import get_model_class

    return get_model_class(name)(**params)


def evaluate(model: Recommender, split: Split, stage: str = "test") -> StageResult:
    """Every metric on ``split``'s test (or ``valid``) stage, as ``llmrec eval`` computes it.
    For the test stage, first let the model ``observe(split.test_history)``."""
    from llmrec.data.matrix import genre_vectors
    from llmrec.eval.evaluate import evaluate as run

    target = split.test if stage == "test" else split.valid
    vectors = genre_vectors(split.train.item_table)
    return run(model, target, split.train, item_vectors=vectors)


def ask(
    model: Recommender,
    text: str,
    user_id: str | None = None,
    k: int = 10,
    items: pd.DataFrame | None = None,
    previous: Asked | None = None,
) -> Asked:
    """A request in words ("a light 80s space adventure", "like Fargo but no horror") read
    against ``items`` (the catalogue: ``Dataset.items``) and blended with ``user_id``'s own
    scores from the fitted ``model``; ``.items`` is the list with why each item matches,
    ``.constraints`` what was understood, ``.reason`` why the list is empty. With
    ``previous`` (an earlier answer), ``text`` is a follow-up: "more like the second one",
    "no horror", "older"."""
    from llmrec.query.answer import ask as run

    return run(model, text, user_id, k, items, previous)
