"""Issue #23: what request batching saves per uncached list, on two datasets.

Run: make bench-batching   (or: .venv/bin/python benchmarks/bench_batching.py [--users 512])

The default pipeline from ``llmrec train`` (trained first when its folder is missing), loaded
as the service loads it (``LiveModel``, no cache, no LLM), in this process, one thread of
work. The same sampled users (seed 0) are listed in batches of 1, 4, 16 and 64 (one model pass
per batch: what the service does with the uncached requests that queue while a pass runs);
the batch sizes take turns within each repeat, so drift on the noisy machine hits all alike.
Reported: milliseconds of model time per list, the median over repeats, and the speed-up over
batches of 1 as the median of the per-repeat ratios (paired by repeat).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `llmrec serve` runs
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec import versions  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.progress import steps  # noqa: E402

BEGIN, END = "<!-- bench_batching:begin -->", "<!-- bench_batching:end -->"
SIZES = (1, 4, 16, 64)
PLOT = ROOT / "benchmarks" / "batching.png"


def _model(dataset: str) -> Path:
    home = get_settings().home / "models" / f"{dataset}-ranker"
    if not (home.exists() and (versions.resolve(home) / "log.parquet").is_file()):
        llmrec = Path(sys.executable).with_name("llmrec")
        subprocess.run([str(llmrec), "train", "--dataset", dataset], check=True)
    return versions.resolve(home)


def measure(dataset: str, n_users: int, repeats: int) -> dict[str, object]:
    import pandas as pd

    from llmrec.service.listing import Ask
    from llmrec.service.live import LiveModel
    from llmrec.service.store import Store

    folder = _model(dataset)
    log = pd.read_parquet(folder / "log.parquet", columns=["user_id", "item_id"])
    everyone = np.array(sorted(log["user_id"].unique().tolist()), dtype=object)
    users = np.random.default_rng(0).choice(
        everyone, size=min(n_users, len(everyone)), replace=False
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    live = LiveModel(folder, Store(f"sqlite:///{tmp / 'events.db'}"), cache_size=0, llm="off")
    asks = [Ask(str(u), 10, ()) for u in users]
    with live._lock:  # the service holds it for a pass; nothing else runs here
        live._lists(asks[:8])  # warm-up: lazy loads, first-call allocations
        ms: dict[int, list[float]] = {b: [] for b in SIZES}
        with steps(f"{dataset}: batch sizes × repeats", repeats * len(SIZES), 1) as advance:
            for rep in range(repeats):
                for b in SIZES[rep % len(SIZES) :] + SIZES[: rep % len(SIZES)]:
                    t0 = time.perf_counter()
                    for start in range(0, len(asks), b):
                        out = live._lists(asks[start : start + b])
                        bad = [x for x in out if isinstance(x, BaseException)]
                        if bad:
                            raise bad[0]
                    ms[b].append((time.perf_counter() - t0) * 1000 / len(asks))
                    advance(1)
    live.close()
    return {
        "dataset": dataset,
        "users": len(everyone),
        "items": int(log["item_id"].nunique()),
        "events": len(log),
        "sampled": len(asks),
        "ms": ms,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=["ml-100k", "ibm-articles"])
    ap.add_argument("--users", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    results = [measure(d, args.users, args.repeats) for d in args.datasets]

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ms = r["ms"]
        ax.plot(SIZES, [np.median(ms[b]) for b in SIZES], "o-", label=str(r["dataset"]))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("lists per model pass")
    ax.set_ylabel("ms of model time per list (median)")
    ax.set_title("request batching: cost per uncached list")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)

    command = "make bench-batching"
    if sys.argv[1:]:
        command = "python benchmarks/bench_batching.py " + " ".join(sys.argv[1:])
    lines = [
        "## Request batching (issue #23)",
        "",
        f"`{command}`: the default pipeline of `llmrec train` per dataset, loaded as the service "
        f"loads it (no cache, no LLM), {platform.machine()}, OMP_WAIT_POLICY="
        f"{os.environ['OMP_WAIT_POLICY']}. The same {args.users} sampled users (seed 0; all "
        "when fewer) listed 10 items each in batches of 1–64 lists per model pass, "
        f"{args.repeats} repeats with the batch sizes taking turns; median ms per list "
        "(min–max over repeats), speed-up = median of the per-repeat ratios to batches of 1.",
        "",
        "| dataset | users / items with events / events | lists per pass | ms per list "
        "| speed-up |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        ms = r["ms"]
        shape = f"{r['users']:,} / {r['items']:,} / {r['events']:,}"
        for b in SIZES:
            ratio = np.median(np.array(ms[1]) / np.array(ms[b]))
            lines.append(
                f"| {r['dataset']} | {shape} | {b} | {np.median(ms[b]):.2f} "
                f"({min(ms[b]):.2f}–{max(ms[b]):.2f}) | {ratio:.1f}× |"
            )
    lines += [
        "",
        "![batching](benchmarks/batching.png)",
        "",
        'What a refresh after new events costs: `make bench-refresh` (section "Refresh cost '
        'against the size of the log").',
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
