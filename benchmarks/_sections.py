"""Shared by the benchmark scripts: rewrite one marked section of BENCHMARKS.md, the usual
dataset/seed arguments, and the paired test on per-user values pooled over seeds."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def seeds_parser(doc: str | None, datasets: Sequence[str] = ("ml-100k", "ibm-articles")):
    """``--datasets`` and ``--seeds 0 1 2``: what the multi-seed benchmarks take."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--datasets", nargs="*", default=list(datasets))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    return ap


def pooled_p(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Wilcoxon signed-rank p on per-user values, seeds pooled (1.0 when all equal)."""
    from scipy import stats

    x, y = np.concatenate(list(a)), np.concatenate(list(b))
    if not np.any(x != y):
        return 1.0
    return float(stats.wilcoxon(x, y, zero_method="zsplit").pvalue)


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
