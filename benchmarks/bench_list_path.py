"""What one uncached list of the default pipeline costs, by the path it takes (#23, #24).

The ranker's list used to come from scores for every item: each retriever's ranks as dense
users x items arrays, their stack for the merge and for every item's best rank, then a top-k
over the catalogue. Now capped ranks keep each retriever's top only (``ranking.candidates.
Ranks``) and ``Ranker.top_k`` lists from the candidates. Three variants of one trained model,
timed alternately user by user on 1 thread (median ms of one user's top 10):

- ``every item, dense ranks``: the ranks exact over the catalogue (``rank_cap`` 0), the list
  through ``Recommender.top_k`` (every item scored), as before both changes;
- ``every item, capped``: ``rank_cap`` 2,000 (the default above 20,000 items), still
  every item scored;
- ``from candidates``: ``rank_cap`` as the model has it, ``Ranker.top_k``.

The second and third must give identical lists (checked on every timed user); the first
differs only where capping changes the candidates. Models: the trained folders under
``$LLMREC_HOME/models`` (``llmrec train``; the 100k-item one from ``make bench-catalogue``).

    LLMREC_THREADS=1 .venv/bin/python benchmarks/bench_list_path.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec import versions  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.models.base import Recommender  # noqa: E402
from llmrec.ranking.candidates import RANK_CAP  # noqa: E402

BEGIN, END = "<!-- bench_list_path:begin -->", "<!-- bench_list_path:end -->"
VARIANTS = ("every item, dense ranks", "every item, capped", "from candidates")


def measure(name: str, users: int, seed: int) -> dict[str, object]:
    import torch
    from threadpoolctl import threadpool_limits

    folder = versions.resolve(get_settings().models_dir / name)
    model = Recommender.load(folder)
    cap = model.config.rank_cap or RANK_CAP
    n_items = len(model.items_)
    cap = cap if n_items > cap else 0  # a small catalogue ranks exactly either way
    rng = np.random.default_rng(seed)
    warm = np.flatnonzero(np.diff(model.history_.indptr) > 0)
    picked = rng.choice(warm, size=min(users, len(warm)), replace=False)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    same = 0
    torch.set_num_threads(1)
    with threadpool_limits(1):
        for n, u in enumerate(picked):
            lists = {}
            for v in VARIANTS:
                model.config = model.config.model_copy(
                    update={"rank_cap": 0 if v == VARIANTS[0] else cap}
                )
                t0 = time.perf_counter()
                if v == "from candidates":
                    top = model.top_k(np.array([u]), 10)
                else:
                    top = Recommender.top_k(model, np.array([u]), 10)
                if n:  # the first user warms caches
                    times[v].append(1000 * (time.perf_counter() - t0))
                lists[v] = (top.item_idx.tolist(), top.score.tolist(), top.sources)
            same += lists[VARIANTS[1]] == lists[VARIANTS[2]]
    out = {v: statistics.median(t) for v, t in times.items()}
    print(f"{name}: {n_items:,} items, cap {cap}, ms {out}, identical {same}/{len(picked)}")
    return {"name": name, "items": n_items, "cap": cap, "ms": out, "same": same,
            "users": len(picked)}  # fmt: skip


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--models", nargs="*", default=["ml-100k-ranker", "ibm-articles-ranker",
                                        "synth-100k-items-ranker"],
    )  # fmt: skip
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = [measure(m, args.users, args.seed) for m in args.models]
    lines = [
        "## One uncached list by the path it takes (issues #23, #24)",
        "",
        f"Command: `make bench-list-path` (`benchmarks/bench_list_path.py --models "
        f"{' '.join(args.models)} --users {args.users} --seed {args.seed}`), x86_64, 1 thread. "
        "One trained default pipeline per dataset (`llmrec train`), three variants timed "
        "alternately user by user on the same seeded warm users: `every item, dense ranks` "
        "(ranks exact over the catalogue, the list from every item's score: the path before "
        "capped ranks), `every item, capped` (each retriever's top "
        f"{RANK_CAP:,} kept, as the default does above 20,000 items; still every item "
        "scored), `from candidates` (the ranker's `top_k` from its candidates: what the "
        "service and `recommend` now take). Median ms of one user's top 10; identical = "
        "users whose items, scores and sources are the same by the last two paths.",
        "",
        "| model | items | cap | every item, dense ranks | every item, capped | from candidates "
        "| speed-up | identical |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ms = r["ms"]
        lines.append(
            f"| {r['name']} | {r['items']:,} | {r['cap'] or 'exact'} | "
            f"{ms[VARIANTS[0]]:.1f} | {ms[VARIANTS[1]]:.1f} | {ms[VARIANTS[2]]:.1f} | "
            f"{ms[VARIANTS[0]] / ms[VARIANTS[2]]:.2f}x | {r['same']} of {r['users']} |"
        )
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, [*lines, ""])


if __name__ == "__main__":
    main()
