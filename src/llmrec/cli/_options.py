"""Options and look-ups shared by several commands (one home, no command imports another
for them)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from llmrec import versions
from llmrec.config import get_settings
from llmrec.errors import ConfigError
from llmrec.jobs.engine import Engine, Run

if TYPE_CHECKING:
    from llmrec.service.store import Store


TrainEngineOption = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local: every part in this process; ray: the data-parallel parts (SASRec) on "
        "Ray Train workers, the rest here",
    ),
]
TrainWorkersOption = Annotated[
    int, typer.Option(min=1, help="Ray Train workers, one CPU each (--engine ray)")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="an existing Ray cluster (auto, ray://head:10001); default: a local one",
    ),
]
RayStorageOption = Annotated[
    str | None,
    typer.Option(
        "--ray-storage",
        help="checkpoints of Ray Train (a folder or URI every node reaches); default: a "
        "temporary folder here",
    ),
]


def training_engine(
    engine: Engine,
    workers: int,
    address: str | None,
    storage: str | None,
    models: list[tuple[str, dict[str, Any]]],
    err: Console,
) -> tuple[AbstractContextManager[None], list[str]]:
    """(the block to fit ``models`` in, the parts that go to Ray Train): the options checked
    and what goes where said before any work; no Ray session when nothing goes there."""
    from llmrec.jobs.train import data_parallel_parts, require_ray_train, train_on_ray

    run = Run(engine, address, workers)  # a Ray address without --engine ray: refused
    if engine is not Engine.ray:
        return nullcontext(), []
    parts = list(dict.fromkeys(p for n, kw in models for p in data_parallel_parts(n, kw)))
    what = ", ".join(n for n, _ in models)
    if not parts:
        err.print(f"{what}: no part trains data-parallel; all of it here", highlight=False)
        return nullcontext(), []
    require_ray_train()
    err.print(
        f"{what}: {', '.join(parts)} on Ray Train ({workers} worker"
        f"{'s' if workers > 1 else ''}), the other parts in this process",
        highlight=False,
    )
    return train_on_ray(run, storage), parts


def model_folder(model: Path | None, dataset: str | None = None) -> Path:
    """``model``, else the newest trained model of ``dataset`` (``llmrec train`` records it),
    else the newest trained model in $LLMREC_HOME/models; a clear error listing the models
    there when none fits."""
    if model is not None:
        return model
    root = get_settings().models_dir
    found = sorted(
        (p for p in root.glob("*") if _trained(p) and not p.name.startswith(".")),
        key=lambda p: (versions.resolve(p) / "manifest.json").stat().st_mtime,
        reverse=True,
    )
    if dataset is not None:
        found = [p for p in found if _trained_on(p) == dataset]
    if found:
        return found[0]
    have = ", ".join(p.name for p in sorted(root.glob("*")) if _trained(p))
    what = f" trained on {dataset!r}" if dataset else ""
    raise ConfigError(
        f"no model{what} in {root} (have: {have or 'none'}); train one with "
        f"`llmrec train --dataset {dataset or 'NAME'}` or pass --model FOLDER"
    )


def _trained(folder: Path) -> bool:
    """A plain model folder, or a home with at least one version."""
    try:
        return (versions.resolve(folder) / "manifest.json").is_file()
    except ConfigError:
        return False


def _trained_on(folder: Path) -> str | None:
    try:
        info = versions.resolve(folder) / "training.json"
        return json.loads(info.read_text()).get("dataset")
    except (OSError, ValueError, AttributeError, ConfigError):
        return None


DbOption = Annotated[
    str | None, typer.Option("--db", help="events store URL (default: SQLite in $LLMREC_HOME)")
]


def open_store(db: str | None, create: bool = True) -> Store:
    """The events store ``db`` (default: SQLite in $LLMREC_HOME). A read-only command passes
    ``create=False``: without a default store file it reads an empty in-memory one instead
    of creating the file."""
    from llmrec.service.store import Store, default_url  # needs the serve extra

    if db is None and not create and not get_settings().events_db.exists():
        return Store("sqlite:///:memory:")
    return Store(db or default_url())


class LlmChoice(StrEnum):
    auto = "auto"
    off = "off"
    transformers = "transformers"
    llama_cpp = "llama-cpp"


LlmOption = Annotated[
    LlmChoice,
    typer.Option(
        help="explanations' language model: auto (the bundled one if installed), off "
        "(templates), transformers or llama-cpp (must be installed)"
    ),
]
TuneUsersOption = Annotated[
    int | None,
    typer.Option(
        "--tune-users",
        min=0,
        help="choose hyper-parameters on a seeded sample of this many validation users "
        "(0: all; default: $LLMREC_TUNE_USERS, 10000)",
    ),
]
NounOption = Annotated[
    str, typer.Option(help="what the items are, in prompts (movie, book, product...)")
]


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when they can be (numbers, null, true)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r}: expected key=value")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params
