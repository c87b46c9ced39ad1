"""Shared by the benchmark scripts: rewrite one marked section of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, begin: str, end: str, lines: list[str]) -> None:
    """Replace the text between ``begin`` and ``end`` (markers included) or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    block = "\n".join([begin, *lines, end])
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")
