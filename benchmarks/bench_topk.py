"""Top-k selection of batch jobs: ``llmrec.models.topk.top_k`` against a stable argsort (the
reference order) and against its own earlier copy step, in the same run.

One batch of the batch-recommend job: 1024 users' dense float32 scores (ALS-like: users x 64
factors times items x 64) with 20 seen items per user excluded, k = 10. Each variant returns
the same lists (checked); the medians of 7 runs are reported.

    .venv/bin/python benchmarks/bench_topk.py
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _sections import write_section  # noqa: E402

BEGIN, END = "<!-- bench_topk:begin -->", "<!-- bench_topk:end -->"
USERS, K, SEEN, RUNS = 1024, 10, 20, 7


def stable_reference(scores: np.ndarray, excluded: sp.csr_matrix) -> np.ndarray:
    """What ``recommend`` used to do per batch: mask, then a stable argsort of every row."""
    key = scores.astype(np.float64)
    key[excluded.nonzero()] = -np.inf
    return np.argsort(-key, axis=1, kind="stable")[:, :K]


def torch_copy(scores: np.ndarray, excluded: sp.csr_matrix) -> np.ndarray:
    """The earlier selection: the scores copied by torch.nan_to_num, then the same steps."""
    import torch

    from llmrec.models import topk

    key = torch.nan_to_num(torch.from_numpy(scores), nan=-np.inf).numpy()
    key[excluded.nonzero()] = -np.inf
    vals, cols = topk._select(key, K + 1)
    order = np.lexsort((cols, -vals), axis=1)
    return np.take_along_axis(cols, order, axis=1)[:, :K]


def current(scores: np.ndarray, excluded: sp.csr_matrix) -> np.ndarray:
    from llmrec.models.topk import top_k

    _, cols = top_k(scores, K, excluded)
    return cols.reshape(len(scores), K)


def median_s(fn: Callable[..., object], *args: object) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import torch

    threads = int(os.environ.get("LLMREC_THREADS", "2"))
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    lines = [
        "## Top-k selection for batch jobs",
        "",
        "Command: `.venv/bin/python benchmarks/bench_topk.py` (part of `make bench-scale`; "
        f"{platform.machine()}, {threads} threads, torch {torch.__version__}). One batch of "
        f"the batch-recommend job: {USERS} users' float32 scores from 64 factors, {SEEN} seen "
        f"items per user excluded, k = {K}; medians of {RUNS} runs in one process, every "
        "variant's lists checked equal. `stable argsort`: mask and sort every row (the "
        "reference order); `torch copy`: the selection as first shipped (the scores copied "
        "by `torch.nan_to_num`); `top_k`: `llmrec.models.topk.top_k` (NaN checked in one "
        "pass, a numpy copy, selection of k + 1).",
        "",
        "| items | stable argsort s | torch copy s | top_k s | vs argsort | vs torch copy |",
        "|---|---|---|---|---|---|",
    ]
    for items in (10_000, 100_000):
        users = rng.standard_normal((USERS, 64), dtype=np.float32)
        factors = rng.standard_normal((items, 64), dtype=np.float32)
        scores = users @ factors.T
        seen = np.stack([rng.choice(items, SEEN, replace=False) for _ in range(USERS)])
        excluded = sp.csr_matrix(
            (np.ones(seen.size), (np.repeat(np.arange(USERS), SEEN), seen.ravel())),
            shape=scores.shape,
        )
        want = stable_reference(scores, excluded)
        times = {}
        for name, fn in (("argsort", stable_reference), ("torch", torch_copy), ("top_k", current)):
            assert (fn(scores, excluded) == want).all(), name
            times[name] = median_s(fn, scores, excluded)
        lines.append(
            f"| {items:,} | {times['argsort']:.3f} | {times['torch']:.3f} | "
            f"{times['top_k']:.3f} | {times['argsort'] / times['top_k']:.1f}× | "
            f"{times['torch'] / times['top_k']:.2f}× |"
        )
        print(lines[-1], flush=True)
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
