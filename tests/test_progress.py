"""Progress where stderr is a log: timed lines instead of a bar's blank lines."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from llmrec import progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> tuple[Clock, Console, io.StringIO]:
    """A fake clock for ``progress`` and a console that is not a terminal (a log file)."""
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    out = io.StringIO()
    return clock, Console(file=out, force_terminal=False, width=200), out


def test_a_log_gets_a_line_every_interval_and_a_last_one(
    log: tuple[Clock, Console, io.StringIO],
) -> None:
    clock, console, out = log
    with progress.steps("sasrec epoch 1/200 [train]", 100, 10, console=console) as advance:
        for i in range(100):
            clock.now += 1.0  # 1 s a step: a line after 30, 60 and 90 of them
            advance(1)
            if i == 20:
                assert out.getvalue() == ""  # nothing before the first interval
    lines = out.getvalue().splitlines()
    assert lines == [
        "sasrec epoch 1/200 [train]: 30/100 (30%), 30 s, ~70 s left",
        "sasrec epoch 1/200 [train]: 60/100 (60%), 60 s, ~40 s left",
        "sasrec epoch 1/200 [train]: 90/100 (90%), 90 s, ~10 s left",
        "sasrec epoch 1/200 [train]: 100/100 in 100 s",
    ]


def test_a_short_loop_writes_nothing(log: tuple[Clock, Console, io.StringIO]) -> None:
    clock, console, out = log
    with progress.steps("blocks", 1000, 10, console=console) as advance:
        for _ in range(1000):
            clock.now += 0.01
            advance(1)
    with progress.steps("too few to show", 3, 10, console=console) as advance:
        clock.now += 100
        advance(3)
    assert out.getvalue() == ""


def test_quiet_writes_nothing(
    log: tuple[Clock, Console, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, console, out = log
    monkeypatch.setattr(progress, "QUIET", True)
    with progress.steps("epochs", 100, 1, console=console) as advance:
        for _ in range(100):
            clock.now += 10
            advance(1)
    assert out.getvalue() == ""
