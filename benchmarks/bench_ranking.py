"""Issue #4: SASRec and the two-stage ranker on MovieLens-100K ``loo``, with the ablation.

Run: make bench-ranking   (or: .venv/bin/python benchmarks/bench_ranking.py [--seeds 42 0 1])

Per seed, every retriever is tuned on the validation item once (SASRec twice: with and
without text-initialised items); the ranker variants share those fitted retrievers and differ
only in stage two, so the ablation isolates what each part adds. The test item is scored once
per variant, after the models observe the validation events (no refit).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import wilcoxon  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.matrix import genre_vectors  # noqa: E402
from llmrec.eval.evaluate import evaluate  # noqa: E402
from llmrec.eval.protocols import loo  # noqa: E402
from llmrec.eval.tuning import tune  # noqa: E402
from llmrec.models import get_model_class  # noqa: E402
from llmrec.ranking.features import GROUPS  # noqa: E402
from llmrec.ranking.ranker import Ranker  # noqa: E402

BEGIN, END = "<!-- bench_ranking:begin -->", "<!-- bench_ranking:end -->"
PEER = ("RecBole 1.2.1 SASRec, 8 epochs", 0.0733, 0.1389)
RETRIEVERS = ("ease", "itemknn", "content", "pop")
VARIANTS = {  # name -> (sasrec with text init? or "both", feature groups)
    "ranker (full)": (True, GROUPS),
    "ranker without text init": (False, GROUPS),
    "ranker without KG features": (True, tuple(g for g in GROUPS if g != "kg")),
    "ranker without context features": (True, tuple(g for g in GROUPS if g != "context")),
    "ranker with both SASRecs": ("both", GROUPS),  # an ensemble of the two sequence models
}
SINGLE = ("sasrec", "sasrec (no text init)", "ease", "itemknn", "content", "pop")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1])
    args = ap.parse_args()
    s = get_settings()
    ds = store.load(s.datasets_dir, "ml-100k")
    split = loo(ds)
    vectors = genre_vectors(split.train.item_table)
    results: dict[str, list[dict]] = {}
    stage_times: dict[str, list[float]] = {}

    def record(name: str, model) -> None:
        model.observe(split.test_history)
        r = evaluate(model, split.test, split.train, item_vectors=vectors)
        results.setdefault(name, []).append({"metrics": r.metrics, "per_user": r.per_user})
        print(f"  {name}: ndcg@10 {r.metrics['ndcg@10']:.4f}", flush=True)

    for seed in args.seeds:
        print(f"seed {seed}", flush=True)
        fitted, seconds = {}, {}
        for name in ("sasrec", "sasrec (no text init)", *RETRIEVERS):
            cls = get_model_class(name.split()[0])
            fixed = {"seed": seed, **({"text_init": False} if "no text" in name else {})}
            t0 = time.perf_counter()
            fitted[name] = tune(cls, split, fixed).model
            seconds[name] = time.perf_counter() - t0
            print(f"  tuned {name} in {seconds[name]:.0f} s", flush=True)
        rankers = {}
        for variant, (text_init, groups) in VARIANTS.items():
            parts = {n: fitted[n] for n in RETRIEVERS}
            if text_init == "both":
                parts |= {
                    "sasrec": fitted["sasrec"],
                    "sasrec_plain": fitted["sasrec (no text init)"],
                }
            else:
                parts["sasrec"] = fitted["sasrec" if text_init else "sasrec (no text init)"]
            t0 = time.perf_counter()
            rankers[variant] = Ranker(seed=seed, groups=list(groups)).fit_ranker(split, parts)
            seconds[variant] = time.perf_counter() - t0
        for name, secs in seconds.items():
            stage_times.setdefault(name, []).append(secs)
        # test: every model observes the validation events, then ranks the test item once
        for variant, model in rankers.items():
            record(variant, model)
        for name in SINGLE:
            record(name, fitted[name])

    write_markdown(results, stage_times, args)
    plot(results, ROOT / "benchmarks" / "ranking-ml100k.png")


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def write_markdown(results, stage_times, args) -> None:
    seeds = args.seeds
    best_single = max(SINGLE, key=lambda n: np.mean([r["metrics"]["ndcg@10"] for r in results[n]]))
    lines = [
        "## Sequential model and two-stage ranker on MovieLens-100K, protocol `loo` (issue #4)",
        "",
        "Command: `make bench-ranking` (= `.venv/bin/python benchmarks/bench_ranking.py "
        f"--seeds {' '.join(map(str, seeds))}`). Machine: {platform.machine()}, 2 cores, "
        f"Python {platform.python_version()}, `LLMREC_THREADS={get_settings().threads}`, CPU only.",
        "",
        "Every retriever is tuned on the validation item per seed; the ranker (a listwise "
        "linear model with LightGBM LambdaRank trees boosted from it, over 100 merged "
        "candidates) learns from the validation items, its L2 and number of trees (0 allowed) "
        "chosen by 5-fold cross-validation over users. At test time every model "
        "observes the validation events (no refit) and the test item is ranked once. "
        f"Mean ± standard deviation over seeds {', '.join(map(str, seeds))}.",
        "",
        "| system | NDCG@10 | Recall@10 | MRR@10 | NDCG@20 | coverage@10 | novelty@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in results.items():
        m = {k: [r["metrics"][k] for r in rs] for k in rs[0]["metrics"]}
        lines.append(
            f"| {name} | {_ms(m['ndcg@10'])} | {_ms(m['recall@10'])} | {_ms(m['mrr@10'])} "
            f"| {_ms(m['ndcg@20'])} | {_ms(m['coverage@10'])} | {_ms(m['novelty@10'])} |"
        )
    lines.append(f"| peer: {PEER[0]} | {PEER[1]:.4f} | {PEER[2]:.4f} | | | | |")
    lines += [
        "",
        "Per-seed NDCG@10: "
        + "; ".join(
            f"{n}: " + ", ".join(f"{r['metrics']['ndcg@10']:.4f}" for r in rs)
            for n, rs in results.items()
        ),
        "",
        "Paired Wilcoxon signed-rank tests on per-user NDCG@10 (943 test users), per seed:",
        "",
        "| comparison | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for other in dict.fromkeys([best_single, "sasrec", "ease"]):
        cells = []
        for i in range(len(seeds)):
            a = results["ranker (full)"][i]["per_user"]["ndcg@10"]
            b = results[other][i]["per_user"]["ndcg@10"]
            p = wilcoxon(a, b).pvalue if np.any(a != b) else 1.0
            cells.append(f"Δ {np.mean(a) - np.mean(b):+.4f}, p = {p:.2g}")
        lines.append(f"| ranker (full) vs {other} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Training time per stage (seconds, median over seeds; tuning included: the grid "
        "search of each retriever, SASRec's epochs with early stopping on validation):",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    for name, secs in stage_times.items():
        lines.append(f"| {name} | {np.median(secs):.0f} |")
    default = ["sasrec", *RETRIEVERS, "ranker (full)"]
    total = sum(np.median(stage_times[n]) for n in default)
    lines += [
        "",
        f"The default pipeline (SASRec with text init + {', '.join(RETRIEVERS)} + the ranker) "
        f"trains in {total:.0f} s here (sum of its stages' medians).",
        "",
        "![ranking ablation](benchmarks/ranking-ml100k.png)",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def plot(results, path: Path) -> None:
    names = list(results)
    means = [np.mean([r["metrics"]["ndcg@10"] for r in results[n]]) for n in names]
    sds = [np.std([r["metrics"]["ndcg@10"] for r in results[n]]) for n in names]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    y = np.arange(len(names))[::-1]
    ax.barh(y, means, xerr=sds, color=["C0" if n.startswith("ranker") else "C7" for n in names])
    ax.axvline(PEER[1], color="C3", ls="--", label=f"{PEER[0]}: {PEER[1]}")
    ax.set_yticks(y, names)
    ax.set_xlabel("NDCG@10 (mean ± sd over seeds)")
    ax.set_title("ml-100k loo: two-stage ranker, its ablations and single models")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
