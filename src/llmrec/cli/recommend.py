"""``llmrec recommend``: one user's list from a trained model folder, with explanations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmrec.cli._options import model_folder
from llmrec.cli.serve import DbOption, LlmChoice, LlmOption, NounOption, open_store

out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True)


def recommend_command(
    user: Annotated[str, typer.Option(help="user id")],
    model: Annotated[
        Path | None,
        typer.Option(help="model folder from `llmrec train` (default: the newest trained one)"),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="without --model: the newest model trained on it")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="list length")] = 10,
    explain: Annotated[bool, typer.Option(help="explain each item")] = False,
    pitch: Annotated[bool, typer.Option(help="a short personalised pitch per item")] = False,
    llm: LlmOption = LlmChoice.auto,
    item_noun: NounOption = "item",
    budget: Annotated[
        float, typer.Option(min=0, help="seconds to wait for the LLM per list (then templates)")
    ] = 120.0,
    db: DbOption = None,
) -> None:
    """Top-k for one user, as the service computes it (stored live events included);
    --explain / --pitch add the LLM's checked text, or the template when it fails a check."""
    from llmrec.service.live import COLD_SOURCES, LiveModel

    folder = model_folder(model, dataset)
    with err.status(f"loading {folder}"):
        live = LiveModel(
            folder,
            open_store(db, create=False),  # a read: never creates the store
            llm=llm.value,
            explain_budget=budget,
            item_noun=item_noun,
        )
    try:
        with err.status("recommending" + (" and explaining" if explain or pitch else "")):
            items = live.recommend(user, k, explain=explain)
            pitches = [live.explain(user, r.item_id, "pitch") for r in items] if pitch else []
    finally:
        live.close()
    table = Table(title=f"user {user}")
    for col in ("#", "item", "title", "score", "source"):
        table.add_column(col)
    if explain:
        table.add_column("explanation (by)")
    if pitch:
        table.add_column("pitch (by)")
    for n, r in enumerate(items):
        row = [str(n + 1), r.item_id, r.title, f"{r.score:.3f}", r.source or ""]
        if explain:
            row.append(f"{r.explanation} ({r.explanation_source})")
        if pitch:
            row.append(f"{pitches[n].text} ({pitches[n].source})")
        table.add_row(*row)
    out.print(table)
    if items and all(r.source in COLD_SOURCES for r in items):
        err.print(
            f"note: this user has no events in {folder.name} nor in the events store: "
            "a cold-start list (popular and text-neighbour items)",
            highlight=False,
        )
