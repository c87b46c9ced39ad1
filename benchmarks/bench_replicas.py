"""Replicas on one events store (issue #23): what following the store costs a read, and how
fast another replica's write shows up.

Run: make bench-replicas (or: .venv/bin/python benchmarks/bench_replicas.py [--users 300])

In process, on the ml-100k default model (``llmrec train --dataset ml-100k``) and one SQLite
store: replica A posts, replica B reads. For each of ``--users`` users (seeded draw),
interleaved: an uncached list from B without following (``shared_store`` off), the same from
B following (nothing new: the marks query alone), and, after A stored one event of the user,
B's next list (catching up: reading and applying the event). Medians and p99; p = Wilcoxon
signed-rank, paired per user.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `llmrec serve` sets it
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec import versions  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import columns as C  # noqa: E402
from llmrec.service.serving import Service  # noqa: E402
from llmrec.service.store import Store  # noqa: E402

BEGIN, END = "<!-- bench_replicas:begin -->", "<!-- bench_replicas:end -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model_dir = versions.resolve(args.model or get_settings().models_dir / "ml-100k-ranker")
    if not (model_dir / "log.parquet").is_file():
        sys.exit(f"{model_dir}: train it first: llmrec train --dataset ml-100k")
    db = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-replicas-')) / 'events.db'}"
    opts = {"cache_size": 0, "llm": "off", "refresh_every": 3600.0}
    a = Service(Store(db), model_dir, **opts)
    b = Service(Store(db), model_dir, shared_store=True, **opts)
    alone = Service(Store(db), model_dir, **opts)  # the same process state, not following
    log = pd.read_parquet(model_dir / "log.parquet")
    rng = np.random.default_rng(args.seed)
    users = sorted(log[C.USER_ID].astype(str).unique())
    users = [users[i] for i in rng.choice(len(users), min(args.users, len(users)), False)]
    items = log[C.ITEM_ID].astype(str).unique()
    times: dict[str, list[float]] = {"plain": [], "follow": [], "catch_up": []}
    for n, u in enumerate(users):
        for name, service in (("plain", alone), ("follow", b)):
            t0 = time.perf_counter()
            service.live_for(u).recommend(u, 10)
            times[name].append(time.perf_counter() - t0)
        event = {C.USER_ID: u, C.ITEM_ID: str(rng.choice(items)), C.EVENT: "view",
                 C.VALUE: None, C.TIMESTAMP: 2_000_000_000 + n}  # fmt: skip
        a.events.submit([event])
        t0 = time.perf_counter()
        b.live_for(u).recommend(u, 10)
        times["catch_up"].append(time.perf_counter() - t0)
    ms = {k: np.array(v) * 1000 for k, v in times.items()}
    p = wilcoxon(ms["follow"], ms["plain"]).pvalue
    med = {k: float(np.median(v)) for k, v in ms.items()}
    print({k: round(v, 2) for k, v in med.items()}, f"p={p:.2g}")
    labels = {
        "plain": "uncached list, not following (`shared_store` off)",
        "follow": "uncached list, following, nothing new (the marks query)",
        "catch_up": "uncached list right after another replica stored the user's event",
    }
    how = " ".join((__doc__ or "").split("\n\n")[1].split())
    write_section(
        ROOT / "BENCHMARKS.md",
        BEGIN,
        END,
        [
            "## Replicas on one store: what following costs (issue #23)",
            "",
            f"Command: `make bench-replicas` (`benchmarks/bench_replicas.py --users "
            f"{args.users} --seed {args.seed}`). {how} {platform.machine()}, "
            f"LLMREC_THREADS={get_settings().threads}.",
            "",
            "| read | p50 | p99 |",
            "|---|---:|---:|",
            *(
                f"| {labels[k]} | {np.median(v):.2f} ms | {np.percentile(v, 99):.2f} ms |"
                for k, v in ms.items()
            ),
            "",
            f"Following costs {med['follow'] - med['plain']:+.2f} ms a read at the median "
            f"(p = {p:.2g}); catching up with one new event of the user "
            f"{med['catch_up'] - med['plain']:+.2f} ms. Every list from B after A stored the "
            "user's event includes it (tests/test_replicas.py checks the same across two "
            "real servers).",
        ],
    )


if __name__ == "__main__":
    main()
