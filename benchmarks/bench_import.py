"""Import time and memory (issue #22): ``make bench-import``.

Writes a synthetic interactions CSV (``user_id,item_id,timestamp,event``, 100k users, 20k
items, seeded) of each size, runs ``llmrec data import`` on it in a fresh process, and
records the wall time and the process's peak RSS; the same for a 1,000-row file gives the
libraries' share, so the rest per row is what an import costs. Median of 3 runs per size.
``--before REV`` measures that commit's importer too (a git worktree, runs interleaved), so
the two trees are compared in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import code_trees, compare_parser, write_section  # noqa: E402

BEGIN, END = "<!-- bench_import:begin -->", "<!-- bench_import:end -->"
# the child reports its own peak: a wrapper process per run, so runs do not share a maximum
PEAK = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
)


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    pd.DataFrame(
        {
            "user_id": np.char.add("u", rng.integers(0, 100_000, rows).astype(str)),
            "item_id": np.char.add("i", rng.integers(0, 20_000, rows).astype(str)),
            "timestamp": 1_600_000_000 + np.arange(rows),
            "event": rng.choice(["view", "click", "purchase"], rows),
        }
    ).to_csv(path, index=False)


def measure(path: Path, home: Path, src: Path | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one import in a fresh process (``src``: another tree's
    package)."""
    cmd = [sys.executable, "-c", PEAK, sys.executable, "-m", "llmrec.cli", "data", "import",
           "bench", "--interactions", str(path)]  # fmt: skip
    t0 = time.perf_counter()
    env = {"LLMREC_HOME": str(home), **({"PYTHONPATH": str(src)} if src else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return seconds, int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = compare_parser(__doc__)
    ap.add_argument("--rows", nargs="*", type=int, default=[1_000_000, 2_000_000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, code_trees(args.before, Path(tmp)) as trees:
        lines = run(args, Path(tmp), trees)
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def run(args: argparse.Namespace, tmp: Path, trees: dict[str, Path | None]) -> list[str]:
    before = f" --before {args.before}" if args.before else ""
    lines = [
        "## Import time and memory (issue #22)",
        "",
        f"Command: `make bench-import` (`benchmarks/bench_import.py --rows "
        f"{' '.join(map(str, args.rows))} --runs {args.runs}{before}`). Synthetic "
        "`user_id,item_id,timestamp,event` CSV (100k users, 20k items, seed 0); `llmrec data "
        "import` in a fresh process; median wall time and peak RSS over the runs (the trees "
        "interleaved); per row = (peak - the 1,000-row file's peak) / rows.",
        "",
        "| tree | rows | CSV MB | seconds | peak MiB | bytes per row |",
        "|---|---|---|---|---|---|",
    ]
    base_csv = tmp / "base.csv"
    write_csv(base_csv, 1_000)
    base = {
        t: statistics.median(measure(base_csv, tmp / "h", src)[1] for _ in range(args.runs))
        for t, src in trees.items()
    }
    for rows in args.rows:
        csv = tmp / f"{rows}.csv"
        write_csv(csv, rows)
        got: dict[str, list[tuple[float, float]]] = {t: [] for t in trees}
        for _ in range(args.runs):
            for t, src in trees.items():
                got[t].append(measure(csv, tmp / "h", src))
        for t, runs in got.items():
            sec = statistics.median(r[0] for r in runs)
            peak = statistics.median(r[1] for r in runs)
            per_row = (peak - base[t]) * 2**20 / rows
            print(f"{t}: {rows:,} rows: {sec:.1f} s, {peak:.0f} MiB peak", flush=True)
            lines.append(
                f"| {t} | {rows:,} | {csv.stat().st_size / 1e6:.0f} | {sec:.1f} | {peak:.0f} | "
                f"{per_row:.0f} |"
            )
    libs = ", ".join(f"{t} {b:.0f} MiB" for t, b in base.items())
    lines += ["", f"The 1,000-row import peaks at {libs} (the libraries).", ""]
    return lines


if __name__ == "__main__":
    main()
