"""The language model fine-tuned on behaviour (``lm``) against the frozen one and CF:
``make bench-lm``.

Per dataset and seed (protocol ``loo``): ``pop``, ``ease``, ``content`` and ``user-text``
(the frozen encoder on the user's profile text: the language model alone, before learning)
are tuned on validation as usual; ``lm`` fine-tunes the bundled MiniLM on pairs (profile text
before an event, the event's item text) sampled from the training log, its epochs and its
popularity prior chosen on validation. Writes median NDCG@10 over seeds, the paired Wilcoxon
p of ``lm`` against ``user-text`` and ``pop`` (per-user NDCG@10, seeds pooled) and the
fine-tuning time to BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import seeds_parser, write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.dataset import Dataset  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.eval.evaluate import evaluate  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.report import pooled_p  # noqa: E402
from llmrec.eval.runner import run  # noqa: E402
from llmrec.eval.tuning import tune  # noqa: E402
from llmrec.models import get_model_class  # noqa: E402
from llmrec.ranking.plan import family  # noqa: E402
from llmrec.ranking.ranker import DEFAULT_RETRIEVERS, Ranker  # noqa: E402

BEGIN, END = "<!-- bench_lm:begin -->", "<!-- bench_lm:end -->"
RANKER_BEGIN, RANKER_END = "<!-- bench_lm_ranker:begin -->", "<!-- bench_lm_ranker:end -->"
MODELS = ("pop", "ease", "content", "user-text", "lm")


def load(dataset: str) -> Dataset:
    s = get_settings()
    fetch(dataset, s.datasets_dir, s.cache_dir / "wheels")
    return store.load(s.datasets_dir, dataset)


def measure(dataset: str, seeds: list[int]) -> dict[str, dict[str, list]]:
    ds = load(dataset)
    out: dict[str, dict[str, list]] = {
        m: {"ndcg": [], "per_user": [], "fit": [], "params": []} for m in MODELS
    }
    for seed in seeds:
        split = make_split(ds, "loo", seed=seed)
        for model in MODELS:
            t0 = time.perf_counter()
            r = run(ds, model, "loo", seed=seed, split=split)
            o = out[model]
            o["ndcg"].append(r.metrics["ndcg@10"])
            o["per_user"].append(r.per_user["ndcg@10"])
            o["fit"].append(r.fit_seconds)
            o["params"].append(r.params)
            print(
                f"{dataset} seed {seed} {model}: ndcg@10 {r.metrics['ndcg@10']:.4f} "
                f"(valid {r.valid_ndcg10:.4f}, fit {r.fit_seconds:.0f} s, "
                f"{time.perf_counter() - t0:.0f} s in all)",
                flush=True,
            )
    return out


def ranker_pair(ds: Dataset, seed: int) -> dict[str, Any]:
    """The default pipeline with and without an ``lm`` retriever, from the same tuned
    retrievers (only the second stage differs), both ranked on the same test items."""
    dataset = ds.name
    split = make_split(ds, "loo", seed=seed)
    fold = dataclasses.replace(split, train=split.valid_train)
    retrievers, seconds = {}, {}
    for name, p in sorted({**DEFAULT_RETRIEVERS, "lm": {}}.items()):
        t0 = time.perf_counter()
        cls = get_model_class(family(name))
        retrievers[name] = tune(cls, fold, {"seed": seed, **p}, search=not p).model
        seconds[name] = time.perf_counter() - t0
        print(f"{dataset} seed {seed}: {name} tuned in {seconds[name]:.0f} s", flush=True)
    rankers = {
        "ranker": Ranker(seed=seed).fit_ranker(
            split, {n: m for n, m in retrievers.items() if n != "lm"}
        ),
        "ranker+lm": Ranker(seed=seed).fit_ranker(split, retrievers),
    }
    out: dict[str, Any] = {"lm seconds": seconds["lm"]}
    for tag, model in rankers.items():  # both fitted before either observes the test history
        model.observe(split.test_history)
        res = evaluate(model, split.test, split.train)
        out[tag] = res.per_user["ndcg@10"]
        print(f"{dataset} seed {seed} {tag}: ndcg@10 {res.metrics['ndcg@10']:.4f}", flush=True)
    return out


def ranker_section(datasets: list[str], seeds: list[int]) -> None:
    lines = [
        "## The default pipeline with the fine-tuned language model as a retriever",
        "",
        f"Command: `make bench-lm-ranker` (`benchmarks/bench_lm.py --ranker --datasets "
        f"{' '.join(datasets)} --seeds {' '.join(map(str, seeds))}`), CPU. Protocol `loo`. The "
        "retrievers (SASRec, EASE, ItemKNN, content, pop, and `lm`) are tuned once per seed on "
        "the validation item; the second stage is trained twice on the same validation items, "
        "without and with `lm` (its candidates and its score as a feature). p = Wilcoxon "
        "signed-rank on per-user NDCG@10 of the same test users.",
        "",
        "| dataset | seed | ranker | ranker + lm | Δ | p | lm tuning s |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for seed in seeds:
            o = ranker_pair(load(dataset), seed)
            a, b = o["ranker"], o["ranker+lm"]
            lines.append(
                f"| {dataset} | {seed} | {a.mean():.4f} | {b.mean():.4f} | "
                f"{b.mean() - a.mean():+.4f} | {pooled_p([b], [a]):.2g} | "
                f"{o['lm seconds']:.0f} |"
            )
    lines += [
        "",
        "A difference with p above 0.05 is no evidence either way: `lm` stays out of the "
        "default pipeline until a run shows it pays.",
        "",
    ]
    write_section(ROOT / "BENCHMARKS.md", RANKER_BEGIN, RANKER_END, lines)


def main() -> None:
    ap = seeds_parser(__doc__)
    ap.add_argument("--ranker", action="store_true", help="the pipeline with and without lm")
    args = ap.parse_args()
    if args.ranker:
        ranker_section(args.datasets, args.seeds)
        return
    s = get_settings()
    lines = [
        "## The language model fine-tuned on behaviour (`lm`)",
        "",
        f"Command: `make bench-lm` (`benchmarks/bench_lm.py --datasets {' '.join(args.datasets)} "
        f"--seeds {' '.join(map(str, args.seeds))}`), {s.threads} thread(s), CPU. Protocol "
        "`loo`, full ranking, history excluded; every model tuned on the validation item. "
        "`user-text` is the frozen encoder on the user's profile text (10 latest items: the "
        "language model alone before learning); `lm` fine-tunes it (defaults: 1,000 pairs per "
        "epoch, up to 5 epochs, 5 latest items in the profile, batch 32, lr 1e-4; epochs and "
        "the popularity prior chosen on validation). Median over seeds; p = Wilcoxon "
        "signed-rank on per-user NDCG@10, seeds pooled. `lm fit s` = fine-tuning up to the "
        "chosen epoch, with the per-epoch re-embedding of users and items (other jobs shared "
        "the 2 cores at times: upper bounds).",
        "",
        "| dataset | pop | ease | content | user-text | lm | lm vs user-text p | "
        "lm vs pop p | lm fit s | lm epochs, prior |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in args.datasets:
        o = measure(dataset, args.seeds)
        med = {m: statistics.median(o[m]["ndcg"]) for m in MODELS}
        p_text = pooled_p(o["lm"]["per_user"], o["user-text"]["per_user"])
        p_pop = pooled_p(o["lm"]["per_user"], o["pop"]["per_user"])
        chosen = ", ".join(f"{p['epochs']}/{p['pop_prior']:g}" for p in o["lm"]["params"])
        lines.append(
            f"| {dataset} | "
            + " | ".join(f"{med[m]:.4f}" for m in MODELS)
            + f" | {p_text:.2g} | {p_pop:.2g} | {statistics.median(o['lm']['fit']):.0f} "
            f"| {chosen} |"
        )
    lines.append("")
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
