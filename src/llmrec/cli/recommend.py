"""``llmrec recommend``: one user's list from a trained model folder, with explanations."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmrec.cli._options import DbOption, LlmChoice, LlmOption, NounOption, model_folder, open_store

if TYPE_CHECKING:
    from llmrec.service.live import LiveModel

out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True)


def _check_query(text: str | None) -> str | None:
    from llmrec.query.parse import MAX_QUERY_CHARS

    if text is not None and len(text) > MAX_QUERY_CHARS:
        raise typer.BadParameter(f"at most {MAX_QUERY_CHARS} characters, got {len(text)}")
    return text


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
    query: Annotated[
        str | None,
        typer.Option(
            "--query",
            "-q",
            help='a request in words ("a light 80s space adventure", "like Fargo but no '
            "horror\"), blended with the user's history",
            callback=_check_query,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the list as JSON (the HTTP API's shape)")
    ] = False,
) -> None:
    """Top-k for one user, as the service computes it (stored live events included);
    --explain / --pitch add the LLM's checked text, or the template when it fails a check."""
    from llmrec.service.listing import COLD_SOURCES

    folder = model_folder(model, dataset)
    from llmrec.service.live import LiveModel

    with err.status(f"loading {folder}"):
        live = LiveModel(
            folder,
            open_store(db, create=False),  # a read: never creates the store
            llm=llm.value,
            explain_budget=budget,
            item_noun=item_noun,
        )
    if query is not None:
        try:
            _ask(live, user, query, k)
        finally:
            live.close()
        return
    try:
        with err.status("recommending" + (" and explaining" if explain or pitch else "")):
            items = live.recommend(user, k, explain=explain)
            pitches = [live.explain(user, r.item_id, "pitch") for r in items] if pitch else []
    finally:
        live.close()
    if as_json:
        rows = [{k: v for k, v in asdict(r).items() if v is not None} for r in items]
        for row, p in zip(rows, pitches, strict=False):
            row["pitch"], row["pitch_source"] = p.text, p.source
        doc = {"user_id": user, "items": rows, "model_version": live.version}
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
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


def _ask(live: LiveModel, user: str, query: str, k: int) -> None:
    with err.status("reading the request and recommending"):
        answer = live.ask(user, query, k)
    chips = ", ".join(f"{c['kind']}: {c['value']}" for c in answer.chips) or "none"
    err.print(f"constraints: {chips}; text matched: {answer.query.intent or '-'}", markup=False)
    table = Table(title=f"user {user}")
    for col in ("#", "item", "title", "score", "why"):
        table.add_column(col)
    for n, r in enumerate(answer.items):
        table.add_row(str(n + 1), r.item_id, r.title, f"{r.score:.3f}", r.explanation or "")
    out.print(table)
    if answer.reason:
        err.print(f"empty list: {answer.reason}", highlight=False)
