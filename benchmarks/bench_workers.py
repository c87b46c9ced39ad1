"""Uncached lists from one server process against several: ``make bench-workers`` (#23).

`llmrec serve --cache-size 0` (every request runs the two-stage pipeline) on the ml-100k
default model, once with ``--workers 1`` and once with ``--workers 2``, taking turns within
each repeat; the open-loop generator of ``bench_service`` (request i due at i / rate, latency
counted from when it was due) offers each rate for ``--seconds``. The load generator shares
the machine's cores with the servers. Medians over repeats; the ratio of achieved rates is
per repeat (paired), then its median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from bench_service import _open_loop  # noqa: E402
from llmrec import versions  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.testing.server import create_key, serve  # noqa: E402

BEGIN, END = "<!-- bench_workers:begin -->", "<!-- bench_workers:end -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rates", nargs="*", type=int, default=[40, 80, 120])
    ap.add_argument("--workers", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    s = get_settings()
    model = s.models_dir / "ml-100k-ranker"
    if not versions.resolve(model).exists():
        raise SystemExit("train the default model first: llmrec train --dataset ml-100k")
    import pandas as pd

    users = sorted(pd.read_parquet(versions.resolve(model) / "log.parquet")["user_id"]
                   .astype(str).unique())  # fmt: skip
    runs: dict[tuple[int, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for n in args.workers:
                db = f"sqlite:///{Path(tmp) / f'w{n}-{rep}.db'}"
                key = {"Authorization": f"Bearer {create_key(db, 'admin', home=s.home)}"}
                extra = ["--cache-size", "0", "--workers", str(n)]
                with serve(model, db, s.home, extra) as srv:
                    for rate in args.rates:
                        seed = 11 + 1000 * rep + rate
                        r = asyncio.run(_open_loop(srv.url, key, users, rate, args.seconds, seed))
                        runs.setdefault((n, rate), []).append(r)
                        print(f"workers {n} rep {rep}:", {k: round(v, 1) for k, v in r.items()},
                              flush=True)  # fmt: skip
    base = min(args.workers)
    rows = []
    for (n, rate), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
        ratios = [
            r["achieved"] / b["achieved"] for r, b in zip(rs, runs[(base, rate)], strict=True)
        ]
        rows.append(
            f"| {rate} | {n} | {med['achieved']:.1f} | {float(np.median(ratios)):.2f} | "
            f"{med['p50']:.0f} | {med['p99']:.0f} | {sum(r['errors'] for r in rs):.0f} |"
        )
    lines = [
        "## Uncached lists: one server process against several (issue #23)",
        "",
        f"Command: `make bench-workers` (`benchmarks/bench_workers.py --rates "
        f"{' '.join(map(str, args.rates))} --seconds {args.seconds:g} --repeats "
        f"{args.repeats}`), {platform.machine()} with {os.cpu_count()} cores shared by the "
        "servers and the load generator. `llmrec serve --cache-size 0 --workers N` on the "
        "ml-100k default model: every request runs the two-stage pipeline. Open loop (request "
        "i due at i / rate, latency from when it was due), users drawn at random; N=1 and "
        "N=2 take turns in each repeat. Medians of the repeats; `vs 1` = the median of the "
        "per-repeat ratios of achieved rates.",
        "",
        "| offered/s | workers | achieved/s | vs 1 | p50 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
