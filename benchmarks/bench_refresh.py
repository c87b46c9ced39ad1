"""Refresh cost against the size of the log (#23 "refresh cost per new event flat from 100k to
1M logged events"): the live default model of ml-100k (100k events) and ibm-articles (46k)
serving its log grown to 1, 3 and 10 times its size, then applying new events.

The log grows synthetically: each extra copy of the dataset's users is a new user (``id~k``)
with the same history shifted by ``k`` seconds (the same per-user history lengths and item
popularity, ten times the users at ten times the events). The live model starts on that log
(not refitted: the copies are users it observes, as the service does with new users). Then,
per size and turn, one new event or a burst of 100 (from 100 users) is added and the refresh
that brings them into every user's lists and the item statistics is timed; events continue
the log's clock. Each measured refresh is followed by a user's list, checked non-empty.

With ``--before REV`` the same measurement runs on that revision's code too (a temporary git
worktree on ``PYTHONPATH``, in a child process), in turn with this tree's.

    .venv/bin/python benchmarks/bench_refresh.py                      # 1x, 3x, 10x
    .venv/bin/python benchmarks/bench_refresh.py --before 1519b8e --sizes 1 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _sections import write_section  # noqa: E402

BEGIN, END = "<!-- bench_refresh:begin -->", "<!-- bench_refresh:end -->"
PLOT = ROOT / "benchmarks" / "refresh.png"
BURST = 100


def child(dataset: str, copies: int, turns: int) -> dict[str, object]:
    """Runs inside the measured tree: start the live model on the grown log, time refreshes."""
    import pandas as pd

    from llmrec import versions
    from llmrec.config import get_settings
    from llmrec.data import columns as C
    from llmrec.data.ids import IdMap
    from llmrec.data.matrix import TrainData
    from llmrec.service.folder import load_folder
    from llmrec.service.live import LiveModel
    from llmrec.service.store import Store

    home = get_settings().home / "models" / f"{dataset}-ranker"
    if not (home.exists() and (versions.resolve(home) / "log.parquet").is_file()):
        llmrec = Path(sys.executable).with_name("llmrec")
        subprocess.run([str(llmrec), "train", "--dataset", dataset], check=True)
    folder = load_folder(versions.resolve(home))
    log = folder.log
    parts = [log]
    for k in range(1, copies):
        p = log.copy()
        p[C.USER_ID] = p[C.USER_ID].astype(str) + f"~{k}"
        p[C.TIMESTAMP] = p[C.TIMESTAMP].astype(np.int64) + k
        parts.append(p)
    grown = pd.concat(parts, ignore_index=True)
    folder = dataclasses.replace(folder, log=grown)
    if copies > 1:  # the model observes the copies (new users after its own), not refitted
        model = folder.model
        known = model.users_.ids
        extra = pd.unique(grown[C.USER_ID].astype(str)[len(log) :])
        users = IdMap(np.concatenate([known, extra]))
        indexed = grown.assign(
            user_idx=users.index(grown[C.USER_ID].astype(str)),
            item_idx=model.items_.index(grown[C.ITEM_ID].astype(str)),
        )
        model.observe(TrainData.build(indexed, users, model.items_, rules=model.event_rules_))
    tmp = Path(tempfile.mkdtemp(prefix="bench-refresh-"))
    t0 = time.perf_counter()
    live = LiveModel(folder, Store(f"sqlite:///{tmp / 'e.db'}"), cache_size=0, llm="off")
    start_s = time.perf_counter() - t0
    live.refresh_every = 3600.0  # only the timed refreshes run
    users = np.array(live.user_ids(), dtype=object)
    items = live.model.items_.ids
    rng = np.random.default_rng(0)
    clock = int(folder.log[C.TIMESTAMP].max())
    ms: dict[str, list[float]] = {"one": [], "burst": []}
    for turn in range(turns):
        for kind in ("one", "burst") if turn % 2 == 0 else ("burst", "one"):
            n = 1 if kind == "one" else BURST
            who = rng.choice(users, size=n, replace=False)
            what = rng.choice(items, size=n)
            clock += 1
            live.add_events(
                [
                    {
                        C.USER_ID: str(u),
                        C.ITEM_ID: str(i),
                        C.TIMESTAMP: clock,
                        C.EVENT: "view",
                        C.VALUE: None,
                    }
                    for u, i in zip(who, what, strict=True)
                ]
            )
            t0 = time.perf_counter()
            live.refresh()
            ms[kind].append((time.perf_counter() - t0) * 1000)
            if not live.recommend(str(who[0]), 10):
                raise SystemExit("an empty list after a refresh")
    merges = _merges(live)
    live.close()
    return {
        "events": len(folder.log), "users": len(users), "start_s": start_s, "ms": ms,
        "merges": merges,
    }  # fmt: skip


def _merges(live: Any) -> dict[str, list[float]]:
    """This tree's periodic merges of arrived events into sorted arrays, each timed once on
    what the turns left: {what: [ms, events between two merges at this size]}."""
    if not hasattr(live, "_log"):  # code from before incremental refresh: none
        return {}
    from llmrec.ranking import features
    from llmrec.service import coldstart, eventlog

    out: dict[str, list[float]] = {}
    n = len(live._log)
    t0 = time.perf_counter()
    live._log.compact(force=True)
    out["event log"] = [ms_since(t0), max(eventlog.COMPACT_MIN, n // eventlog.COMPACT_SHARE)]
    ev = live.model.events_
    t0 = time.perf_counter()
    live.model.events_ = ev._merged()
    every = max(features.MERGE_MIN, len(ev.item_key) // features.MERGE_SHARE)
    out["ranker's per-item index"] = [ms_since(t0), every]
    rp = live._recent
    t0 = time.perf_counter()
    rp.merge()
    every = max(coldstart.TAIL_MIN, len(rp._sorted.ts) // coldstart.TAIL_SHARE)
    out["recent popularity"] = [ms_since(t0), every]
    return out


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def run_tree(src: Path, dataset: str, copies: int, turns: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src), "LLMREC_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", str(copies), "--turns", str(turns)]
    cmd += ["--datasets", dataset]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=["ml-100k", "ibm-articles"])
    ap.add_argument("--sizes", nargs="*", type=int, default=[1, 3, 10], help="copies of the log")
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--before", help="git revision measured too, in turn")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.datasets[0], args.child, args.turns)))
        return
    trees = [("this tree", ROOT / "src")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-refresh-trees-"))
    if args.before:
        old = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], check=True)
        trees.append((f"before ({args.before})", old / "src"))
    rows = []
    try:
        for dataset in args.datasets:
            for copies in args.sizes:
                for name, src in trees:
                    print(f"{dataset}, {copies}x log, {name} ...", flush=True)
                    r = run_tree(src, dataset, copies, args.turns)
                    rows.append({"tree": name, "dataset": dataset, "copies": copies, **r})
                    one, burst = (np.median(r["ms"][k]) for k in ("one", "burst"))
                    print(f"  {r['events']:,} events: one {one:.1f} ms, burst {burst:.1f} ms")
    finally:
        if args.before:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "before")])
    report(rows, args)


def _cell(values: list[float]) -> str:
    return f"{np.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def report(rows: list[dict], args: argparse.Namespace) -> None:
    command = "benchmarks/bench_refresh.py --datasets " + " ".join(args.datasets)
    command += " --sizes " + " ".join(map(str, args.sizes))
    command += f" --turns {args.turns}" + (f" --before {args.before}" if args.before else "")
    lines = [
        "## Refresh cost against the size of the log (issue #23)",
        "",
        f"`{command}` ({platform.machine()}, 1 thread, nothing else running). Each dataset's "
        "live default model on its log grown synthetically (each copy of the users a new user, "
        "history shifted by seconds; the model is not refitted), then per turn one new event, "
        f"or {BURST} from {BURST} users, and the refresh that applies them to every user's "
        f"lists and the item statistics; medians (min–max) of {args.turns} turns, seed 0.",
        "",
        "| dataset | code | events in the log | users | start s | refresh, 1 event ms | "
        f"refresh, {BURST} events ms | per event in a burst ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['tree']} | {r['events']:,} | {r['users']:,} | "
            f"{r['start_s']:.1f} | "
            f"{_cell(r['ms']['one'])} | {_cell(r['ms']['burst'])} | "
            f"{np.median(r['ms']['burst']) / BURST:.2f} |"
        )
    lines += ["", *findings(rows)]
    lines += [
        "",
        "Arrived events are kept apart and merged into sorted arrays now and then (this tree "
        "only): each merge timed once after the turns, how many events arrive between two "
        "merges at that size, and what that adds per event spread over them.",
        "",
        "| dataset | events in the log | merge | ms | every | per event ms |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        for what, (ms, every) in r.get("merges", {}).items():
            lines.append(
                f"| {r['dataset']} | {r['events']:,} | {what} | {ms:.0f} | {every:,} | "
                f"{ms / every:.4f} |"
            )
    lines += ["", f"![refresh]({PLOT.relative_to(ROOT)})"]
    plot(rows)
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def findings(rows: list[dict]) -> list[str]:
    """Per dataset and code: the one-event refresh at the largest log over the smallest."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        parts = []
        for tree in dict.fromkeys(r["tree"] for r in rows):
            mine = sorted(
                (r for r in rows if r["dataset"] == dataset and r["tree"] == tree),
                key=lambda r: r["events"],
            )
            if len(mine) < 2:
                continue
            lo, hi = (float(np.median(r["ms"]["one"])) for r in (mine[0], mine[-1]))
            grown = mine[-1]["events"] / mine[0]["events"]
            parts.append(
                f"{tree}: {lo:.1f} → {hi:.1f} ms ({hi / lo:.1f}× for {grown:.0f}× the log)"
            )
        if parts:
            out.append(f"- {dataset}, refresh after one event: " + "; ".join(parts) + ".")
    return out


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for line in dict.fromkeys((r["dataset"], r["tree"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["tree"]) == line]
        x = [r["events"] for r in mine]
        for kind, style in (("one", "o-"), ("burst", "s--")):
            y = [np.median(r["ms"][kind]) for r in mine]
            what = "1 event" if kind == "one" else f"{BURST} events"
            ax.plot(x, y, style, label=f"{line[0]}, {line[1]}, {what}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events in the log")
    ax.set_ylabel("refresh ms (median)")
    ax.set_title("Refresh after new events, default model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


if __name__ == "__main__":
    main()
