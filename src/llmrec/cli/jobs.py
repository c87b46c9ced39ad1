"""``llmrec jobs``: batch work over a whole dataset or model, in this process or on Ray."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from llmrec.cli._options import model_folder
from llmrec.config import get_settings
from llmrec.data import dataset as store
from llmrec.jobs.engine import Engine, JobResult, Run

if TYPE_CHECKING:
    from llmrec.models.base import Recommender

app = typer.Typer(help="Batch jobs (embed, features, recommend), local or on Ray.")
out = Console(soft_wrap=True)
err = Console(stderr=True)

EngineOption = Annotated[
    Engine, typer.Option(help="local: this process (no Ray); ray: Ray Data actors")
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="an existing Ray cluster (auto, ray://head:10001); default: a local one",
    ),
]
WorkersOption = Annotated[
    int, typer.Option(min=1, help="Ray actors, one CPU each (a local cluster gets this many)")
]
BatchOption = Annotated[int, typer.Option(min=1, help="rows per partition handed to a worker")]
OutOption = Annotated[Path, typer.Option("--out", help="output folder of Parquet parts")]


class What(StrEnum):
    items = "items"
    users = "users"


def _run(engine: Engine, address: str | None, workers: int, batch_size: int) -> Run:
    return Run(engine, address, workers, batch_size, progress=err.is_terminal)


def _report(result: JobResult) -> None:
    rate = result.inputs / result.seconds if result.seconds else float("nan")
    out.print(
        f"{result.job}: {result.inputs:,} inputs -> {result.rows:,} rows in {result.out} "
        f"({result.seconds:.1f} s, {rate:,.0f}/s, engine {result.engine})",
        highlight=False,
    )


def _load(model: Path | None) -> Recommender:
    from llmrec.models.base import Recommender

    folder = model_folder(model)
    with err.status(f"loading {folder}"):
        return Recommender.load(folder)


@app.command("recommend")
def recommend_command(
    out_dir: OutOption,
    model: Annotated[
        Path | None, typer.Option(help="saved model folder (default: the newest trained one)")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="list length")] = 10,
    exclude_seen: Annotated[bool, typer.Option(help="drop items the user has seen")] = True,
    engine: EngineOption = Engine.local,
    ray_address: AddressOption = None,
    workers: WorkersOption = 2,
    batch_size: BatchOption = 1024,
    fmt: Annotated[
        str,
        typer.Option("--format", help="parquet (parts), or also one csv or jsonl file of all rows"),
    ] = "parquet",
    db: Annotated[
        str | None,
        typer.Option(
            help="events store whose events since training the lists reflect "
            "(default: $LLMREC_HOME's, when there is one)"
        ),
    ] = None,
) -> None:
    """Top-k for every user of a saved model: user_id, rank, item_id, title, score, source.
    Like the service, the lists reflect the events stored since training (dislikes leave
    them, deleted users get none)."""
    from llmrec.jobs.recommend import batch_recommend

    run = _run(engine, ray_address, workers, batch_size)
    folder = model_folder(model)
    if db is None and not get_settings().events_db.exists():  # no store: the folder alone
        with err.status(f"recommending from {folder}"):
            result = batch_recommend(folder, out_dir, run, k=k, exclude_seen=exclude_seen, fmt=fmt)
        _report(result)
        return
    from llmrec.cli._options import open_store
    from llmrec.jobs.recommend import folder_titles
    from llmrec.service.live import LiveModel

    store = open_store(db, create=False)
    with err.status(f"loading {folder} and the events stored since"):
        live = LiveModel(folder, store, llm="off")
        blocked = live.exclusions()
        deleted = store.deleted_users()
        users = [u for u in live.model.users_.ids if u not in deleted]
    try:
        with err.status("recommending"):
            result = batch_recommend(
                live.model, out_dir, run, k=k, exclude_seen=exclude_seen, users=users,
                titles=folder_titles(folder), fmt=fmt, blocked=blocked,
            )  # fmt: skip
    finally:
        live.close()
    _report(result)


@app.command("embed")
def embed_command(
    out_dir: OutOption,
    dataset: Annotated[str, typer.Option(help="dataset name")] = "ml-100k",
    what: Annotated[What, typer.Option(help="item catalogue or user profiles")] = What.items,
    encoder: Annotated[str, typer.Option(help="minilm, minilm-static or hashing")] = "minilm",
    engine: EngineOption = Engine.local,
    ray_address: AddressOption = None,
    workers: WorkersOption = 2,
    batch_size: BatchOption = 1024,
) -> None:
    """Embed item texts or user profile texts: id, vector (L2-normalised float32)."""
    from llmrec.jobs.embed import embed_texts

    ds = store.load(get_settings().datasets_dir, dataset)
    run = _run(engine, ray_address, workers, batch_size)
    _report(embed_texts(ds, what.value, out_dir, run, encoder=encoder))


@app.command("features")
def features_command(
    out_dir: OutOption,
    model: Annotated[
        Path | None, typer.Option(help="saved ranker folder (default: the newest trained one)")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="CSV/TSV/Parquet of user_id,item_id pairs: adds a label column (1 = a pair)"
        ),
    ] = None,
    engine: EngineOption = Engine.local,
    ray_address: AddressOption = None,
    workers: WorkersOption = 2,
    batch_size: BatchOption = 256,
) -> None:
    """The ranker's candidates and features for every user: user_id, position, item_id,
    [label,] then the features; with --labels, training data for a ranker."""
    from llmrec.data.tables import read_table
    from llmrec.jobs.features import ranker_features

    pairs = read_table(labels) if labels is not None else None  # checked by the job
    run = _run(engine, ray_address, workers, batch_size)
    result = ranker_features(_load(model), out_dir, run, pairs, str(labels or "labels"))
    _report(result)
    if pairs is not None:
        p = result.params
        recall = "n/a" if p["label_recall"] is None else f"{p['label_recall']:.1%}"
        out.print(
            f"labels: {p['label_rows']:,} rows, {p['label_pairs']:,} pairs of known users and "
            f"items ({p['label_pairs_seen']:,} already seen); {p['labelled_candidates']:,} of "
            f"the {p['label_pairs_unseen']:,} unseen among the candidates ({recall})",
            highlight=False,
        )
