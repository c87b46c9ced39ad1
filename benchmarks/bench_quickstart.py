"""The README's quick start, timed as a newcomer meets it: ``git clone`` of the committed tree
into a fresh folder (no .venv, no data), then ``make quickstart`` (install, fetch ml-100k, train
EASE with its validation search, print user 1's top 5). Writes the wall time of each step and
the printed list to BENCHMARKS.md "Quick start timing" (``make bench-quickstart``).

``--cold`` gives pip an empty download cache (every wheel fetched again, as on a new
machine); without it the user's cache is used as it is."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402

BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cold", action="store_true", help="an empty pip cache")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="quickstart-"))
    clone = tmp / "llmrec"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMREC_", "VIRTUAL_ENV"))}
    if args.cold:
        env["PIP_CACHE_DIR"] = str(tmp / "pip-cache")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    t0 = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    steps: list[tuple[str, float]] = [("git clone", time.perf_counter() - t0)]
    out = subprocess.run(
        ["make", "quickstart"], cwd=clone, env=env, capture_output=True, text=True, check=False
    )
    total = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"make quickstart failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    steps.append(("make quickstart", total - steps[0][1]))
    listing = out.stdout[out.stdout.rindex("llmrec recommend") :].splitlines()[1:]
    print("\n".join(listing))
    lines = [
        "## Quick start timing",
        "",
        "`make bench-quickstart` (benchmarks/bench_quickstart.py): `git clone` of the committed",
        "tree into an empty folder, then `make quickstart` (venv + install of every extra, fetch",
        "ml-100k, `llmrec train --model ease` with its validation search, `llmrec recommend`).",
        f"Commit {commit}, {platform.machine()} with {os.cpu_count()} cores, pip cache "
        f"{'empty (--cold)' if args.cold else 'warm'}, {time.strftime('%Y-%m-%d')}:",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {name} | {sec:.0f} |" for name, sec in steps],
        f"| **clone to first printed recommendation** | **{total:.0f}** ({total / 60:.1f} min) |",
        "",
        "What it printed:",
        "",
        "```",
        *listing,
        "```",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
