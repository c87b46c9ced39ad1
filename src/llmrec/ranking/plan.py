"""Which retrievers the pipeline fits at a given size, and the path each one takes."""

from __future__ import annotations

from typing import Any

from llmrec.errors import ConfigError


def family(retriever: str) -> str:
    """``sasrec#plain`` -> ``sasrec``: a suffix names a second retriever of one family."""
    return retriever.split("#", 1)[0]


def plan(
    retrievers: dict[str, dict[str, Any]], repeats: bool, seed: int, n_users: int, n_items: int
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(the retrievers to fit with their parameters, a note per retriever on its path). One
    whose state would not fit the memory budget is left out (the pipeline adapts to the
    catalogue); when none fits, the first refusal is raised."""
    from llmrec.models import get_model_class

    wanted = dict(retrievers)
    if repeats and not any(family(n) == "repeat" for n in wanted):
        wanted["repeat"] = {}
    kept: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    refused: ConfigError | None = None
    for name, p in sorted(wanted.items()):
        probe = get_model_class(family(name))(**{"seed": seed, **p})
        try:
            probe.check_fits(n_users, n_items)
        except ConfigError as e:
            refused = refused or e
            notes[name] = f"left out: {e}"
            continue
        kept[name] = p
        note = probe.size_note(n_items)
        if note:
            notes[name] = note
    if not kept and refused is not None:
        raise refused
    return kept, notes
