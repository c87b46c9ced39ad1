"""Preparing the training data as the log grows (issue #24): ``make bench-prepare-scale``.

What ``llmrec train`` does before any model fits: load the dataset, index its ids, build the
training matrices (``full_train``) and hold out each user's latest event for tuning
(``holdout``, 2,000 tuning users). Each run is a fresh process on data from ``llmrec data
synth`` (the train-scale sizes); it reports each phase's seconds and its own peak RSS
(``ru_maxrss``: exact, not sampled). ``--before REV`` runs that commit's code on the same
data (a git worktree; runs interleaved), so the two trees are compared in the same run.
Median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import (  # noqa: E402
    code_trees,
    compare_parser,
    run_script,
    synth_command,
    tree_env,
    write_section,
)

BEGIN, END = "<!-- bench_prepare_scale:begin -->", "<!-- bench_prepare_scale:end -->"
SIZES = {  # users, items, events (bench_train_scale's sizes)
    "10k": (10_000, 10_000, 200_000),
    "100k": (100_000, 100_000, 2_000_000),
    "1m": (1_000_000, 100_000, 20_000_000),
}
PREPARE = """
import json, resource, sys, time
from llmrec.config import get_settings
from llmrec.data import dataset as store
from llmrec.data.splits import full_train, holdout
t = [time.perf_counter()]
def lap():
    t.append(time.perf_counter())
    return round(t[-1] - t[-2], 2)
ds = store.load(get_settings().datasets_dir, sys.argv[1])
load_s = lap()
data = full_train(ds)
train_s = lap()
split = holdout(data, tune_users=2000, seed=0)
holdout_s = lap()
print(json.dumps({"load_s": load_s, "full_train_s": train_s, "holdout_s": holdout_s,
    "total_s": round(t[-1] - t[0], 2), "events": int(data.log.shape[0]),
    "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def main() -> None:
    ap = compare_parser(__doc__)
    ap.add_argument("--sizes", nargs="*", choices=sorted(SIZES), default=["100k", "1m"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, code_trees(args.before, Path(tmp)) as trees:
        lines = run(args, Path(tmp), trees)
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def run(args: argparse.Namespace, tmp: Path, trees: dict[str, Path | None]) -> list[str]:
    before = f" --before {args.before}" if args.before else ""
    lines = [
        "## Preparing the training data at scale (issue #24)",
        "",
        f"Command: `make bench-prepare-scale` (`benchmarks/bench_prepare_scale.py --sizes "
        f"{' '.join(args.sizes)} --runs {args.runs}{before}`). `llmrec data synth` data (seeded); "
        "a fresh process loads it, builds the training matrices (`full_train`) and holds out "
        "the tuning events (`holdout`, 2,000 tuning users), as `llmrec train` does before any "
        "model fits. Median over the runs (the trees interleaved); peak = the process's "
        "maximum RSS.",
        "",
        "| tree | users | items | events | load s | full_train s | holdout s | total s | "
        "peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    home = tmp / "home"
    notes: list[str] = []
    base = {**os.environ, "LLMREC_HOME": str(home), "OMP_NUM_THREADS": "2"}
    for size in args.sizes:
        users, items, events = SIZES[size]
        name = f"synth-{size}"
        print(f"{name}: generating {events:,} events", flush=True)
        subprocess.run(synth_command(name, users, items, events), env=base, check=True,
                       capture_output=True)  # fmt: skip
        got: dict[str, list[dict[str, float]]] = {t: [] for t in trees}
        for _ in range(args.runs):
            for t, src in trees.items():
                got[t].append(run_script(PREPARE, name, env=tree_env(base, src)))
                print(f"{t}: {name}: {got[t][-1]}", flush=True)
        meds = {t: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                for t, runs in got.items()}  # fmt: skip
        for t, med in meds.items():
            lines.append(
                f"| {t} | {users:,} | {items:,} | {int(med['events']):,} | {med['load_s']:.2f} "
                f"| {med['full_train_s']:.2f} | {med['holdout_s']:.2f} | {med['total_s']:.2f} "
                f"| {med['peak_gib']:.2f} |"
            )
        if len(meds) == 2:
            now, was = meds.values()
            notes.append(
                f"- {events:,} events: {was['total_s'] / now['total_s']:.1f}x faster than "
                f"{args.before}, peak {now['peak_gib']:.2f} GiB against {was['peak_gib']:.2f} "
                f"({now['peak_gib'] * 2**30 / events:.0f} bytes per event)."
            )
        subprocess.run(["rm", "-rf", str(home / "datasets" / name)], check=False)
    return [*lines, "", *notes, *([""] if notes else [])]


if __name__ == "__main__":
    main()
