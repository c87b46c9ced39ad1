"""Shared by the benchmark scripts: rewrite one marked section of BENCHMARKS.md, and the usual
dataset/seed arguments (the paired test is ``llmrec.eval.report.pooled_p``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def seeds_parser(doc: str | None, datasets: Sequence[str] = ("ml-100k", "ibm-articles")):
    """``--datasets`` and ``--seeds 0 1 2``: what the multi-seed benchmarks take."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--datasets", nargs="*", default=list(datasets))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    return ap


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
