"""Quality and speed of the classic baselines on MovieLens-100K, protocol loo.

Run: make bench   (or: .venv/bin/python benchmarks/bench_baselines.py [--seeds 42 0 1])
Writes BENCHMARKS.md (the baselines section) and benchmarks/baselines-ml100k.png.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from _sections import write_section
from llmrec.config import get_settings
from llmrec.data import dataset as store
from llmrec.data.matrix import genre_vectors
from llmrec.eval import metrics
from llmrec.eval.evaluate import evaluate, scores
from llmrec.eval.protocols import loo
from llmrec.eval.runner import run
from llmrec.eval.tuning import tune
from llmrec.models import get_model_class

ROOT = Path(__file__).resolve().parent.parent
# RESOURCES.md: peers under exactly this protocol (NDCG@10, Recall@10)
PEERS = {
    "pop": ("popularity", 0.0254, 0.0498),
    "itemknn": ("RecBole ItemKNN", 0.0351, 0.0689),
    "ease": ("RecBole EASE", 0.0376, 0.0838),
    "bpr": ("RecBole BPR-MF", 0.0407, 0.0827),
    "als": ("implicit ALS, tuned", 0.0413, 0.0817),
}
CLASSIC = ("random", "pop", "itemknn", "userknn", "ease", "als", "bpr")
BEGIN, END = "<!-- baselines:begin -->", "<!-- baselines:end -->"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    s = get_settings()
    ds = store.load(s.datasets_dir, "ml-100k")
    split_time = median_time(lambda: loo(ds), 3)
    split = loo(ds)
    vectors = genre_vectors(split.train.item_table)

    runs: dict[str, list] = {m: [] for m in CLASSIC}
    t_all = {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        for name in CLASSIC:
            runs[name].append(run(ds, name, split=split, seed=seed))
            print(f"seed {seed} {name}: ndcg@10 {runs[name][-1].metrics['ndcg@10']:.4f}")
        t_all[seed] = time.perf_counter() - t0

    # speed of the chosen configuration (first seed): fit, score, rank + every metric
    speed = {}
    for name in CLASSIC:
        r = runs[name][0]
        cls = get_model_class(name)
        fit_s = median_time(lambda cls=cls, p=r.params: cls(**p).fit(split.train), args.repeats)
        model = cls(**r.params).fit(split.train)
        score_s = median_time(lambda m=model: scores(m, split.test), args.repeats)
        eval_s = median_time(
            lambda m=model: evaluate(m, split.test, split.train, item_vectors=vectors),
            args.repeats,
        )
        speed[name] = (fit_s, score_s, eval_s)
    pop = get_model_class("pop")(**runs["pop"][0].params).fit(split.train)
    s_pop = scores(pop, split.test)
    rank_s = median_time(
        lambda: metrics.rank(s_pop, split.test.targets, split.test.exclude, 20), args.repeats
    )

    # ablation: the same search with recency weighting switched off (half_life = None)
    ablation = {
        name: run(ds, name, split=split, seed=args.seeds[0], params={"half_life": None})
        for name in ("itemknn", "userknn", "ease", "als")
    }
    # ablation: the test ranking without observing the validation events first (how RecBole
    # evaluates its general models): same tuned model, history = training only
    blind = {}
    for name in ("itemknn", "userknn", "ease", "als"):
        model = tune(get_model_class(name), split, {"seed": args.seeds[0]}).model
        blind[name] = evaluate(model, split.test, split.train)
    write_markdown(runs, speed, rank_s, split_time, t_all, args, ablation, blind)
    plot(runs, ROOT / "benchmarks" / "baselines-ml100k.png")


def _ablation_rows(without, runs, extra=lambda w: "") -> list[str]:
    """Rows "| model | NDCG@10 without | with | Recall@10 without | with |" (+ extra cell)."""
    out = []
    for name, r in without.items():
        w = runs[name][0]
        out.append(
            f"| {name} | {r.metrics['ndcg@10']:.4f} | {w.metrics['ndcg@10']:.4f} | "
            f"{r.metrics['recall@10']:.4f} | {w.metrics['recall@10']:.4f} |" + extra(w)
        )
    return out


def write_markdown(runs, speed, rank_s, split_time, t_all, args, ablation, blind) -> None:
    seeds = args.seeds
    lines = [
        "## Classic baselines on MovieLens-100K, protocol `loo`",
        "",
        "Command: `make bench` (= `.venv/bin/python benchmarks/bench_baselines.py "
        f"--seeds {' '.join(map(str, seeds))} --repeats {args.repeats}`). "
        f"Machine: {platform.machine()}, 2 cores, Python {platform.python_version()}, "
        f"`LLMREC_THREADS={get_settings().threads}`.",
        "",
        "Hyper-parameters are searched on the validation item (NDCG@10) for each seed; the "
        "model then observes the validation events (no refit) and the test item is scored "
        "once. NDCG@10 and Recall@10 are the mean over seeds "
        f"{', '.join(map(str, seeds))} (± standard deviation; deterministic models have 0).",
        "",
        "| model | NDCG@10 | Recall@10 | MRR@10 | NDCG@20 | coverage@10 | novelty@10 | "
        "peer (same family) NDCG@10 / Recall@10 | chosen parameters (seed "
        f"{seeds[0]}) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in runs.items():

        def ms(key: str, rs=rs) -> str:
            v = [r.metrics[key] for r in rs]
            return f"{np.mean(v):.4f} ± {np.std(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"

        peer = PEERS.get(name)
        peer_s = f"{peer[0]}: {peer[1]:.4f} / {peer[2]:.4f}" if peer else "—"
        params = {k: v for k, v in rs[0].params.items() if k != "seed"}
        lines.append(
            f"| {name} | {ms('ndcg@10')} | {ms('recall@10')} | {ms('mrr@10')} | {ms('ndcg@20')} "
            f"| {ms('coverage@10')} | {ms('novelty@10')} | {peer_s} | `{params}` |"
        )
    lines += [
        "",
        "Per-seed NDCG@10: "
        + "; ".join(
            f"{n}: " + ", ".join(f"{r.metrics['ndcg@10']:.4f}" for r in rs)
            for n, rs in runs.items()
        ),
        "",
        f"### Speed (median of {args.repeats} runs, seconds)",
        "",
        "| model | fit (chosen params) | score 943 users × 1682 items | score + rank + all metrics "
        "| tuning (whole grid, seed "
        f"{seeds[0]}) | score+rank+metrics ÷ pop's |",
        "|---|---|---|---|---|---|",
    ]
    pop_eval = speed["pop"][2]
    for name, (fit_s, score_s, eval_s) in speed.items():
        tune = runs[name][0].tune_seconds
        lines.append(
            f"| {name} | {fit_s:.3f} | {score_s:.3f} | {eval_s:.3f} | {tune:.1f} | "
            f"{fit_s / pop_eval:.1f}× |"
        )
    lines += [
        "",
        f"### Ablation: recency weighting of the history (`half_life`), seed {seeds[0]}",
        "",
        "The same validation search with `half_life` fixed to None (every history item weighs "
        "the same), against the search that may choose it:",
        "",
        "| model | NDCG@10 without | NDCG@10 with | Recall@10 without | Recall@10 with | "
        "chosen half_life |",
        "|---|---|---|---|---|---|",
    ]
    lines += _ablation_rows(ablation, runs, lambda w: f" {w.params.get('half_life')} |")
    lines += [
        "",
        f"### Ablation: observing the validation events before the test ranking, seed {seeds[0]}",
        "",
        "The same tuned model ranking the test item from the training history only (RecBole's "
        "way for its general models; its sequential models do observe), against observing the "
        "validation events first (our protocol for every model):",
        "",
        "| model | NDCG@10 training history only | NDCG@10 observed | Recall@10 only | "
        "Recall@10 observed |",
        "|---|---|---|---|---|",
    ]
    lines += _ablation_rows(blind, runs)
    lines += [
        "",
        f"- Ranking all 1,682 items for 943 users with exclusion and tie rule "
        f"(`eval.metrics.rank`): **{rank_s:.3f} s** (median).",
        f"- loo split of 100,000 interactions: {split_time:.2f} s (median of 3).",
        "- Tuning + test of these seven models per seed: "
        + ", ".join(f"seed {k}: {v:.0f} s" for k, v in t_all.items())
        + ".",
        "",
        "![NDCG@10 per model](benchmarks/baselines-ml100k.png)",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def plot(runs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    means = [np.mean([r.metrics["ndcg@10"] for r in runs[n]]) for n in names]
    stds = [np.std([r.metrics["ndcg@10"] for r in runs[n]]) for n in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(names))
    ax.bar(x, means, yerr=stds, capsize=4, label="llmrec (mean ± sd over seeds)")
    px = [i for i, n in enumerate(names) if n in PEERS]
    ax.scatter(
        px,
        [PEERS[names[i]][1] for i in px],
        color="crimson",
        marker="_",
        s=600,
        linewidths=3,
        label="peer, same family (RESOURCES.md)",
        zorder=3,
    )
    ax.axhline(0.0733, color="gray", ls="--", lw=1, label="best peer: RecBole SASRec 0.0733")
    ax.set_xticks(x, names)
    ax.set_ylabel("NDCG@10 (test, loo)")
    ax.set_title("MovieLens-100K, temporal leave-one-out, full ranking")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
