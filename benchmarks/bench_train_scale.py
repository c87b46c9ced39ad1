"""Training the default pipeline as data grows (issue #24): ``make bench-train-scale``.

Each point is the real ``llmrec train --dataset NAME`` (the default pipeline, tuned on each
user's latest event, then fitted on everything and saved) in a fresh process, on data from
``llmrec data synth`` (power-law popularity and activity, taste clusters, generated item
texts) or on a bundled dataset (``--datasets book-crossing``). Measured: wall time, peak memory
of the process tree (PSS, sampled every 0.2 s), each stage's seconds and the path each
retriever took (from the model folder's ``training.json``). The text-vector cache is emptied
before every run, so the encoder's first pass over the catalogue is counted. A run past
``--timeout-min`` is stopped and reported as such, with the last stage it printed.

    .venv/bin/python benchmarks/bench_train_scale.py --sizes 10k            # a quick look
    .venv/bin/python benchmarks/bench_train_scale.py --report-only          # section from json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import LLMREC, run_measured, synth_command, write_section  # noqa: E402
from llmrec import versions  # noqa: E402

BEGIN, END = "<!-- bench_train_scale:begin -->", "<!-- bench_train_scale:end -->"
# users, items, events: the sizes (the last is its goal: <= 60 min, <= 16 GiB)
SIZES = {
    "10k": (10_000, 10_000, 200_000),
    "100k": (100_000, 100_000, 2_000_000),
    "1m": (1_000_000, 100_000, 20_000_000),
}
GOAL_MIN, GOAL_GIB = 60, 16


def train_point(
    name: str, home: Path, env: dict[str, str], timeout_min: float, base: dict[str, Any]
) -> dict[str, Any]:
    out = home / "models" / f"{name}-default"
    shutil.rmtree(out, ignore_errors=True)
    for f in (home / "cache").glob("embeddings.sqlite*"):
        f.unlink()  # cold: the encoder's pass over the catalogue is part of training
    log = home / f"train-{name}.log"
    step = run_measured(
        [*LLMREC, "train", "--dataset", name, "--out", str(out)],
        env,
        timeout=timeout_min * 60,
        log=log,
    )
    row = {**base, "wall_s": step["wall_s"], "peak_gib": step["peak_gib"], "rc": step["rc"]}
    info = versions.resolve(out) / "training.json"
    if step["rc"] == 0 and info.is_file():
        t = json.loads(info.read_text())
        row |= {
            "status": "done",
            "stages": t["stage_seconds"],
            "paths": t.get("paths"),
            "valid_ndcg@10": t["valid_ndcg@10"],
        }
    else:
        lines = [ln for ln in str(step["output"]).splitlines() if ln.strip()]
        row |= {
            "status": "stopped" if step["rc"] is None else f"failed ({step['rc']})",
            "last_output": lines[-3:],
        }
    print({k: v for k, v in row.items() if k != "stages"}, flush=True)
    return row


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(args.json.read_text()) if args.json.is_file() else []
    env = {**os.environ, "LLMREC_HOME": str(args.home), "LLMREC_THREADS": "2"}
    for size in args.sizes:
        users, items, events = SIZES[size]
        name = f"train-{size}"
        synth = run_measured(synth_command(name, users, items, events), env)
        if synth["rc"] != 0:
            raise SystemExit(f"synth {size} failed:\n{synth['output']}")
        base = {"point": f"synthetic {size}", "users": users, "items": items, "events": events}
        rows = [r for r in rows if r["point"] != base["point"]]
        rows.append(train_point(name, args.home, env, args.timeout_min, base))
        args.json.write_text(json.dumps(rows, indent=2))  # after every point
    for name in args.datasets:
        real_home = Path(os.environ.get("LLMREC_HOME", ROOT / ".llmrec"))
        manifest = json.loads((real_home / "datasets" / name / "manifest.json").read_text())
        base = {
            "point": name,
            "users": manifest["users"],
            "items": manifest["items"],
            "events": manifest["interactions"],
        }
        dst = args.home / "datasets" / name  # the same files, under the bench's home
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(real_home / "datasets" / name)
        rows = [r for r in rows if r["point"] != name]
        rows.append(train_point(name, args.home, env, args.timeout_min, base))
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    rows = sorted(rows, key=lambda r: r["events"])
    plot(rows, args.plot)
    lines = [
        "## Training the default pipeline as data grows (issue #24)",
        "",
        f"Command: `make bench-train-scale` (`benchmarks/bench_train_scale.py --sizes "
        f"{' '.join(args.sizes)}{' --datasets ' + ' '.join(args.datasets) if args.datasets else ''}"
        f" --timeout-min {args.timeout_min:g}`), 2 cores, LLMREC_THREADS=2, the default "
        "memory budget (LLMREC_MEMORY_GB=16). Each point is one `llmrec train --dataset NAME` "
        "of the default pipeline in a fresh process (tuning on the latest event included), the "
        "text-vector cache emptied first; `peak GiB` is the largest sum of PSS over the process "
        "tree. Synthetic data from `llmrec data synth` (seed 0). The issue's goal: 1M users x "
        f"100k items x 20M events in <= {GOAL_MIN} min at <= {GOAL_GIB} GiB.",
        "",
        "| data | users | items | events | status | minutes | peak GiB | valid NDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ndcg = r.get("valid_ndcg@10")
        lines.append(
            f"| {r['point']} | {r['users']:,} | {r['items']:,} | {r['events']:,} | "
            f"{r['status']} | {r['wall_s'] / 60:.1f} | {r['peak_gib']:.2f} | "
            f"{'' if ndcg is None else f'{ndcg:.4f}'} |"
        )
    lines += ["", "Seconds per stage, and the path each part took:", ""]
    for r in rows:
        if r["status"] == "done":
            stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stages"].items())
            lines.append(f"- {r['point']}: {stages}. Paths: {r.get('paths') or 'one path each'}.")
        else:
            last = " / ".join(r.get("last_output", [])) or "nothing printed"
            lines.append(f"- {r['point']}: {r['status']} after {r['wall_s'] / 60:.0f} min; "
                         f"its last output: `{last[-300:]}`.")  # fmt: skip
    done = [r for r in rows if r["status"] == "done"]
    if done:
        r = done[-1]
        total = sum(r["stages"].values())
        tuned = sum(v for k, v in r["stages"].items() if k.startswith("retriever"))
        top = sorted(r["stages"].items(), key=lambda kv: -kv[1])[:2]
        lines += [
            "",
            f"Where the time goes ({r['point']}): the retrievers, tuned on validation, "
            f"{tuned / total:.0%} of it; the largest stages {top[0][0]} ({top[0][1]:.0f} s) and "
            f"{top[1][0]} ({top[1][1]:.0f} s). A grid point is a fit plus the validation "
            "users scored and ranked over the catalogue, so tuning grows with users x items "
            "per grid point; sizes not in the table were not run.",
        ]
    shown = args.plot.relative_to(ROOT) if args.plot.is_relative_to(ROOT) else args.plot
    lines += ["", f"![training cost vs size]({shown})", ""]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, scale, goal, unit in (
        (axes[0], "wall_s", 60, GOAL_MIN, "minutes"),
        (axes[1], "peak_gib", 1, GOAL_GIB, "peak memory, GiB (PSS)"),
    ):
        for done, marker in ((True, "o"), (False, "x")):
            pts = [r for r in rows if (r["status"] == "done") == done]
            ax.loglog([r["events"] for r in pts], [r[key] / scale for r in pts], marker,
                      linestyle="-" if done else "none",
                      label="finished" if done else "stopped / failed")  # fmt: skip
            for r in pts:
                ax.annotate(r["point"], (r["events"], r[key] / scale), fontsize=7)
        ax.axhline(goal, color="grey", linestyle="--", label=f"goal ({goal} {unit.split()[0]})")
        ax.set(xlabel="events", ylabel=unit)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("llmrec train (default pipeline), 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", default=["10k", "100k"], choices=list(SIZES))
    ap.add_argument("--datasets", nargs="*", default=[], help="bundled, e.g. book-crossing")
    ap.add_argument("--timeout-min", type=float, default=GOAL_MIN)
    ap.add_argument("--home", type=Path, default=ROOT / "reports" / "train-scale-home")
    ap.add_argument("--json", type=Path, default=ROOT / "reports" / "train-scale.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "train-scale.png")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(args.json.read_text()) if args.report_only else measure(args)
    report(rows, args)


if __name__ == "__main__":
    main()
