"""Progress for long loops (epochs, blocks, batches), on stderr and only when the loop is long
enough to be worth watching, so tests and small data stay quiet: a transient bar on a
terminal; where stderr is a log (a pipe, a file, CI) a line every ``LINE_EVERY`` seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

QUIET = False  # `llmrec --quiet`: no bars at all
LINE_EVERY = 30.0  # seconds between progress lines in a log


@contextmanager
def steps(
    label: str, total: int, min_total: int = 1, console: Console | None = None
) -> Iterator[Callable[[int], None]]:
    """``with steps("sasrec epoch 3", n_batches, 50) as advance: ... advance(1)``: a bar
    with the count and the time left, shown when ``total >= min_total``."""
    if QUIET or total < min_total:  # nothing built: runs per evaluation and encoded query
        yield lambda n=1: None
        return
    console = console or Console(stderr=True)
    if not console.is_terminal:  # a bar there is only blank lines
        lines = _Lines(label, total, console)
        yield lines.advance
        lines.close()
        return
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=console,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


class _Lines:
    """Progress as plain lines: the count, the seconds so far and the time left, at most one
    line per ``LINE_EVERY`` seconds, and a last one where any was written."""

    def __init__(self, label: str, total: int, console: Console) -> None:
        self.label, self.total, self.console = label, total, console
        self.start = self.last = time.monotonic()
        self.done, self.written = 0, False

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last < LINE_EVERY or self.done >= self.total:
            return
        took = now - self.start
        left = took * (self.total - self.done) / max(self.done, 1)
        self._write(
            f"{self.label}: {self.done:,}/{self.total:,} ({self.done / self.total:.0%}), "
            f"{took:.0f} s, ~{left:.0f} s left"
        )
        self.last = now

    def close(self) -> None:
        if self.written:
            took = time.monotonic() - self.start
            self._write(f"{self.label}: {self.done:,}/{self.total:,} in {took:.0f} s")

    def _write(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        self.written = True
