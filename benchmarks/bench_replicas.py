"""Replicas on one events store (issue #23): what following the store costs a read, and how
fast another replica's write shows up.

Run: make bench-replicas (or: .venv/bin/python benchmarks/bench_replicas.py [--users 300])

In process, on the ml-100k default model (``llmrec train --dataset ml-100k``): replicas A and
B on one SQLite store, and one process alone on its own store. For each of ``--users`` users
(seeded draw), interleaved: an uncached list from the process alone and from B (following,
nothing new: the marks query only); then one event of the user given to the process alone
and its next list, and one given to A and B's next list (catching up: the event read from
the store and applied). Medians and p99; p = Wilcoxon signed-rank, paired per user.
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
    # one process alone (its own store): the baseline of a read and of a user's own event
    other = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-replicas-')) / 'events.db'}"
    alone = Service(Store(other), model_dir, **opts)
    log = pd.read_parquet(model_dir / "log.parquet")
    rng = np.random.default_rng(args.seed)
    users = sorted(log[C.USER_ID].astype(str).unique())
    users = [users[i] for i in rng.choice(len(users), min(args.users, len(users)), False)]
    items = log[C.ITEM_ID].astype(str).unique()
    times: dict[str, list[float]] = {"plain": [], "follow": [], "own": [], "catch_up": []}
    for n, u in enumerate(users):
        for name, service in (("plain", alone), ("follow", b)):
            t0 = time.perf_counter()
            service.follow()  # what every request with a key does first (a no-op alone)
            service.live_for(u).recommend(u, 10)
            times[name].append(time.perf_counter() - t0)
        for name, writer, reader in (("own", alone, alone), ("catch_up", a, b)):
            event = {C.USER_ID: u, C.ITEM_ID: str(rng.choice(items)), C.EVENT: "view",
                     C.VALUE: None, C.TIMESTAMP: 2_000_000_000 + n}  # fmt: skip
            writer.events.submit([event])
            t0 = time.perf_counter()
            reader.follow()
            reader.live_for(u).recommend(u, 10)
            times[name].append(time.perf_counter() - t0)
    ms = {k: np.array(v) * 1000 for k, v in times.items()}
    p = wilcoxon(ms["follow"], ms["plain"]).pvalue
    p2 = wilcoxon(ms["catch_up"], ms["own"]).pvalue
    med = {k: float(np.median(v)) for k, v in ms.items()}
    print({k: round(v, 2) for k, v in med.items()}, f"p={p:.2g}")
    labels = {
        "plain": "uncached list, not following (`shared_store` off)",
        "follow": "uncached list, following, nothing new (the marks query)",
        "own": "one process: the list right after the user's own event (applied first)",
        "catch_up": "replica B: the list right after replica A stored the user's event",
    }
    how = " ".join((__doc__ or "").split("\n\n")[2].split())
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
            f"(p = {p:.2g}). A list after the user's event costs "
            f"{med['own']:.2f} ms in one process (the event is applied to the user first) and "
            f"{med['catch_up']:.2f} ms from another replica (read from the store, then the "
            f"same): {med['catch_up'] - med['own']:+.2f} ms for following (p = {p2:.2g}). "
            "Every list from B after A stored the user's event reflects it "
            "(tests/test_replicas.py checks the same across two real servers).",
        ],
    )


if __name__ == "__main__":
    main()
