"""Progress bars for long loops (epochs, blocks, batches): on stderr, transient, and only
when the loop is long enough to be worth watching, so tests and small data stay quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

QUIET = False  # `llmrec --quiet`: no bars at all


@contextmanager
def steps(
    label: str, total: int, min_total: int = 1, console: Console | None = None
) -> Iterator[Callable[[int], None]]:
    """``with steps("sasrec epoch 3", n_batches, 50) as advance: ... advance(1)``: a bar
    with the count and the time left, shown when ``total >= min_total``."""
    if QUIET or total < min_total:  # nothing built: runs per evaluation and encoded query
        yield lambda n=1: None
        return
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=console or Console(stderr=True),
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)
