"""Requests in words (issue #25): the latency of a request with ``q`` against an ordinary
uncached request, in process, on the ml-100k default model (``llmrec train --dataset
ml-100k``).

Run: make bench-query (or: .venv/bin/python benchmarks/bench_query_latency.py [--users 300])

For each of ``--users`` users (seeded draw), one ordinary list and one request in words
(the templates of ``bench_query``, filled from a random catalogue item), interleaved so both
see the same machine state; the live model's cache is off. The first request in words builds
the request index (vectors, encoder): timed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `llmrec serve` sets it
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from bench_query import TEMPLATES  # noqa: E402
from llmrec import versions  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import columns as C  # noqa: E402
from llmrec.service.live import LiveModel  # noqa: E402
from llmrec.service.store import Store  # noqa: E402

BEGIN, END = "<!-- bench_query_latency:begin -->", "<!-- bench_query_latency:end -->"


def requests(items: pd.DataFrame, n: int, rng: np.random.Generator) -> list[str]:
    out = []
    for j in range(n):
        item = items.iloc[int(rng.integers(len(items)))]
        genres = list(item[C.GENRES]) if isinstance(item[C.GENRES], list | np.ndarray) else []
        fill = {
            "noun": "movie",
            "genre": genres[0] if genres else "drama",
            "decade": int(item[C.YEAR]) // 10 * 10 if pd.notna(item[C.YEAR]) else 1990,
            "anchor": item[C.TITLE],
        }
        out.append(list(TEMPLATES.values())[j % len(TEMPLATES)].format(**fill))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--times-only", action="store_true", help="print the times as JSON")
    args = ap.parse_args()
    model_dir = versions.resolve(args.model or get_settings().home / "models" / "ml-100k-ranker")
    if not (model_dir / "log.parquet").is_file():
        sys.exit(f"{model_dir}: train it first: llmrec train --dataset ml-100k")
    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-query-"))
    live = LiveModel(model_dir, Store(f"sqlite:///{tmp / 'events.db'}"), cache_size=0, llm="off")
    users = sorted(pd.read_parquet(model_dir / "log.parquet")[C.USER_ID].unique().tolist())
    users = [users[i] for i in rng.choice(len(users), min(args.users, len(users)), False)]
    texts = requests(pd.read_parquet(model_dir / "items.parquet"), len(users), rng)
    t0 = time.perf_counter()
    live.ask(users[0], texts[0], 10)
    first = time.perf_counter() - t0
    moods = ("light and funny", "dark, slow burning", "with a strong heroine", "about space")
    # two words from other titles make every intent new: no request hits the vector cache
    words = [w for t in pd.read_parquet(model_dir / "items.parquet")[C.TITLE] for w in
             str(t).lower().split() if w.isalpha() and len(w) > 3]  # fmt: skip
    index = live._qindex  # built by the first request
    assert index is not None and index.encoder is not None
    twin = index.encoder  # ONNX Runtime when installed (encoders/onnx.py)
    eager = getattr(twin, "base", twin)  # the torch encoder it runs the graph of
    plain, asked, free, free_torch = [], [], [], []
    for n, (u, q) in enumerate(zip(users, texts, strict=True)):
        t0 = time.perf_counter()
        live.recommend(u, 10)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        live.ask(u, q, 10)
        asked.append(time.perf_counter() - t0)
        t0 = time.perf_counter()  # words left for the text match: one encoder call
        extra = " ".join(rng.choice(words, 2))
        live.ask(u, f"{q}, {moods[n % len(moods)]} {extra}", 10)
        free.append(time.perf_counter() - t0)
        index.encoder = eager  # the same with torch running the encoder (before #25's twin)
        extra = " ".join(rng.choice(words, 2))
        t0 = time.perf_counter()
        live.ask(u, f"{q}, {moods[n % len(moods)]} {extra}", 10)
        free_torch.append(time.perf_counter() - t0)
        index.encoder = twin
    p, a, f = np.array(plain) * 1000, np.array(asked) * 1000, np.array(free) * 1000
    ft = np.array(free_torch) * 1000
    runtime = "ONNX Runtime" if twin is not eager else "torch (no ONNX Runtime installed)"
    rows = {
        "ordinary list (k=10, uncached)": p,
        "request in words (k=10), constraints and anchors": a,
        f"request in words with free words (one encoder call, {runtime})": f,
        "request in words with free words (one encoder call, torch)": ft,
    }
    if args.times_only:
        print(json.dumps({k: v.tolist() for k, v in rows.items()}))
        return
    # the same run with spinning OpenMP threads (the runtimes' default), in a fresh process:
    # the policy is read once, when a runtime loads
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    cmd = [sys.executable, __file__, "--users", str(args.users), "--seed", str(args.seed),
           "--times-only", *(["--model", str(args.model)] if args.model else [])]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    spinning = {k: np.array(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    ratio = np.median(a) / np.median(p)
    print(f"ordinary p50 {np.median(p):.1f} ms, in words p50 {np.median(a):.1f} ms ({ratio:.2f}x)")
    lines = [
        "## Requests in words: latency in process (issue #25)",
        "",
        f"Command: `make bench-query` (`benchmarks/bench_query_latency.py --users {args.users} "
        f"--seed {args.seed}`). ml-100k default model (`llmrec train --dataset ml-100k`), "
        f"the live model in process with its cache off, {platform.machine()}, "
        f"LLMREC_THREADS={get_settings().threads}, OMP_WAIT_POLICY="
        f"{os.environ['OMP_WAIT_POLICY']} (as `llmrec serve` sets it). Each of {len(users)} "
        "users gets one ordinary "
        "list, one request in words (the templates above, filled from a random catalogue item) "
        'and the same request with free words added ("light and funny", "about space", and two '
        "words from other titles, so that no request hits the intent-vector cache), "
        "interleaved.",
        "",
        "| request | p50 | p99 |",
        "|---|---:|---:|",
        *(
            f"| {name} | {np.median(ms):.1f} ms | {np.percentile(ms, 99):.1f} ms |"
            for name, ms in rows.items()
        ),
        *(
            f"| {name}, OMP_WAIT_POLICY=ACTIVE | {np.median(ms):.1f} ms | "
            f"{np.percentile(ms, 99):.1f} ms |"
            for name, ms in spinning.items()
        ),
        "",
        f"Request in words ÷ ordinary, medians: **{ratio:.2f}×** (constraints and anchors), "
        f"**{np.median(f) / np.median(p):.2f}×** (with free words, {runtime}; "
        f"{np.median(ft) / np.median(p):.2f}× with torch running the same encoder, the path "
        f"before; per user paired, Wilcoxon p = {wilcoxon(f, ft).pvalue:.1g}; the vectors are "
        "equal to 1e-5, `tests/test_onnx_encoder.py`). "
        "The first request in words "
        f"builds the request index (item vectors, encoder, vocabulary): {first:.1f} s, once per "
        "loaded model or catalogue change.",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
