"""``llmrec models``: a trained folder's versions, and which one is served; ``llmrec ab``: the
A/B report of two served versions from the impressions the service logged."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmrec import versions
from llmrec.cli._options import DbOption, model_folder, open_store
from llmrec.errors import ConfigError

app = typer.Typer(help="Model versions: list them, choose the one served.", no_args_is_help=True)
out = Console(width=None if Console().is_terminal else 130)  # piped: whole rows
ModelOption = Annotated[
    Path | None,
    typer.Option(help="folder of versions from `llmrec train` (default: the newest trained)"),
]


JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


@app.command("list")
def list_command(model: ModelOption = None, as_json: JsonOption = False) -> None:
    """The versions, oldest first; * marks the current one (what `llmrec serve` loads)."""
    home = _home(model)
    if as_json:
        typer.echo(json.dumps({"folder": str(home), "versions": versions.describe(home)}))
        return
    table = Table(title=str(home))
    for col in ("", "version", "created (UTC)", "model", "dataset", "events", "valid NDCG@10"):
        table.add_column(col, justify="right" if col in ("events", "valid NDCG@10") else "left")
    for row in versions.describe(home):
        created = row["created"]
        ndcg = row["valid_ndcg@10"]
        table.add_row(
            "*" if row["current"] else "",
            row["version"],
            dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%d %H:%M")
            if created
            else "",
            str(row["model"] or ""),
            str(row["dataset"] or ""),
            f"{row['n_events']:,}" if row["n_events"] is not None else "",
            f"{ndcg:.4f}" if isinstance(ndcg, float) else "",
        )
    out.print(table)


@app.command("use")
def use_command(
    version: Annotated[str, typer.Argument(help="the version to serve, e.g. v3")],
    model: ModelOption = None,
) -> None:
    """Make ``version`` the current one: `llmrec serve` loads it; a running service switches
    at its next reload (POST /v1/admin/reload), or at once with {"version": ...} there."""
    home = _home(model)
    versions.set_current(home, version)
    out.print(f"{home}: current version is now {version}", highlight=False)


def _home(model: Path | None) -> Path:
    home = model_folder(model)
    if not versions.is_home(home):
        raise ConfigError(f"{home}: a single model folder, not a folder of versions")
    return home


def ab_command(
    horizon: Annotated[
        int, typer.Option(min=1, help="seconds after an impression in which an action counts")
    ] = 3600,
    control: Annotated[
        str | None,
        typer.Option(help="model_version to compare against (default: the most shown)"),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Clicks per shown item of each served version, with 95% intervals (bootstrap over users)
    and each version against the control (difference interval, permutation p-value)."""
    from llmrec.online.ab import compare

    store = open_store(db, create=False)
    try:
        arms = compare(store.impressions_since(0), store.events_since(0), horizon, control)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"horizon": horizon, "arms": [asdict(a) for a in arms]}))
        return
    table = Table(title=f"A/B: reward = an action within {horizon} s of the impression")
    for col in ("version", "users", "lists", "shown", "clicks", "CTR [95% CI]", "lift"):
        table.add_column(col, justify="left" if col == "version" else "right", no_wrap=True)
    table.add_column("diff [95% CI]", justify="right", no_wrap=True)
    table.add_column("p", justify="right", no_wrap=True)
    for a in arms:
        table.add_row(
            a.version + (" (control)" if a.p_value is None else ""),
            f"{a.users:,}",
            f"{a.lists:,}",
            f"{a.shown:,}",
            f"{a.clicks:,}",
            f"{a.ctr:.4f} [{a.low:.4f}, {a.high:.4f}]",
            "" if a.lift is None else f"{a.lift:+.1%}",
            "" if a.diff_low is None else f"{a.diff_low:+.4f}, {a.diff_high:+.4f}",
            "" if a.p_value is None else f"{a.p_value:.3g}",
        )
    out.print(table)
