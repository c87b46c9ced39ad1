"""Language-model layer on MovieLens-100K: embedding throughput, cold start, loo.

Run: make bench-text  (or: .venv/bin/python benchmarks/bench_text.py)
Writes the text-models section of BENCHMARKS.md and benchmarks/text-ml100k.png.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _sections import write_section
from llmrec.config import get_settings
from llmrec.data import dataset as store
from llmrec.encoders import VectorCache, encode, get_encoder
from llmrec.eval.protocols import make_split
from llmrec.eval.report import paired_p
from llmrec.eval.runner import run
from llmrec.text import item_texts

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- text:begin -->", "<!-- text:end -->"
SEED = 42
COLD_MODELS = ("random", "pop", "itemknn", "ease", "content", "user-text", "hybrid")
LOO_MODELS = ("pop", "itemknn", "ease", "als", "content", "user-text", "hybrid")


def throughput(name: str, texts: list[str], repeats: int = 3) -> tuple[float, float, float]:
    """(texts/s uncached, seconds for the catalogue uncached, seconds from the cache)."""
    enc = get_encoder(name)
    firsts, cached = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cache = VectorCache(Path(tmp) / "v.sqlite")
            t0 = time.perf_counter()
            encode(enc, texts, cache, progress=False)
            firsts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            encode(enc, texts, cache, progress=False)
            cached.append(time.perf_counter() - t0)
    first = statistics.median(firsts)
    return len(texts) / first, first, statistics.median(cached)


def main() -> None:
    s = get_settings()
    ds = store.load(s.datasets_dir, "ml-100k")
    texts = item_texts(ds.items)
    tput = {
        name: throughput(name, texts, 3 if name != "minilm" else 1)
        for name in ("minilm-static", "minilm")
    }
    for name, (tps, first, cached) in tput.items():
        print(f"{name}: {tps:.0f} texts/s, catalogue {first:.1f} s, cached {cached:.3f} s")

    results: dict[str, dict[str, object]] = {}
    for protocol, models in (
        ("cold-items", COLD_MODELS),
        ("cold-users", COLD_MODELS),
        ("loo", LOO_MODELS),
    ):
        split = make_split(ds, protocol, seed=SEED)
        results[protocol] = {}
        for m in models:
            t0 = time.perf_counter()
            results[protocol][m] = run(ds, m, protocol, split=split, seed=SEED)
            r = results[protocol][m]
            print(
                f"{protocol} {m}: ndcg@10 {r.metrics['ndcg@10']:.4f} "
                f"({time.perf_counter() - t0:.0f} s)"
            )
    write_markdown(tput, results, len(texts))
    plot(results, ROOT / "benchmarks" / "text-ml100k.png")


def write_markdown(tput, results, n_texts: int) -> None:
    lines = [
        "## Language-model layer on MovieLens-100K",
        "",
        "Command: `make bench-text` (= `.venv/bin/python benchmarks/bench_text.py`), seed "
        f"{SEED}, `LLMREC_THREADS={get_settings().threads}` (torch on 1 thread).",
        "",
        f"### Embedding the catalogue ({n_texts} item texts: title, year, genres)",
        "",
        "| encoder | texts/s (uncached) | whole catalogue, first time | from the cache |",
        "|---|---|---|---|",
    ]
    for name, (tps, first, cached) in tput.items():
        lines.append(f"| `{name}` | {tps:.0f} | {first:.1f} s | {cached:.3f} s |")
    lines += [
        "",
        "Medians of 3 runs for `minilm-static`, one run for `minilm` (each run starts "
        "from an empty cache).",
    ]
    for protocol, title in (
        ("cold-items", "Cold items (`--protocol cold-items`)"),
        ("cold-users", "Cold users (`--protocol cold-users`)"),
        ("loo", "Warm users (`--protocol loo`)"),
    ):
        runs = results[protocol]
        best = max(runs.values(), key=lambda r: r.metrics["ndcg@10"])
        head = next(iter(runs.values()))
        lines += [
            "",
            f"### {title}: {head.n_users} test users",
            "",
            "| model | NDCG@10 | Recall@10 | MRR@10 | coverage@10 | novelty@10 | p vs best "
            "| chosen parameters |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in runs.items():
            p = "—" if r is best else f"{paired_p(r, best):.2g}"
            params = {k: v for k, v in r.params.items() if k != "seed"}
            lines.append(
                f"| {name} | {r.metrics['ndcg@10']:.4f} | {r.metrics['recall@10']:.4f} | "
                f"{r.metrics['mrr@10']:.4f} | {r.metrics['coverage@10']:.4f} | "
                f"{r.metrics['novelty@10']:.2f} | {p} | `{params}` |"
            )
    lines += [
        "",
        "`p vs best`: Wilcoxon signed-rank test on per-user NDCG@10 against the best row. "
        "Under `cold-items` every collaborative model scores never-seen items alike; ties are "
        "broken in a seeded random order, so they land exactly on each other (and near "
        "`random`): they cannot rank unseen items at all. `cold-users` keeps only the 5 latest "
        "training interactions of a seeded 10% of users and evaluates those users.",
        "",
        "![NDCG@10 per protocol](benchmarks/text-ml100k.png)",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (protocol, runs) in zip(axes, results.items(), strict=True):
        names = list(runs)
        vals = [runs[n].metrics["ndcg@10"] for n in names]
        colors = [
            "tab:orange" if n in ("content", "user-text", "hybrid") else "tab:blue" for n in names
        ]
        ax.bar(np.arange(len(names)), vals, color=colors)
        ax.set_xticks(np.arange(len(names)), names, rotation=40, ha="right")
        ax.set_title(protocol)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("NDCG@10 (test)")
    fig.suptitle("MovieLens-100K: collaborative (blue) vs language-model (orange) recommenders")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
