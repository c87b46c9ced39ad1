"""Training data from ``llmrec jobs features --labels`` on ml-100k (``make bench-labels``).

Each user's latest event is held out; a ranker is trained on the rest with the real command
(``llmrec train --no-tune``, in a private $LLMREC_HOME), then the features job runs with the
held-out pairs as labels, locally and on a local Ray cluster of 2 CPUs. Reports the rows,
the candidates' recall of the held-out items, the job seconds of both engines and whether
their frames are equal. Writes BENCHMARKS.md's "Ranker training data" section.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import columns as C  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.jobs import read_output  # noqa: E402

BEGIN, END = "<!-- bench_labels:begin -->", "<!-- bench_labels:end -->"
LLMREC = [sys.executable, "-c", "from llmrec.cli import main; main()"]


def llmrec(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([*LLMREC, *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"llmrec {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return r.stdout


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-labels-"))
    env = {**os.environ, "LLMREC_HOME": str(tmp)}
    ds = store.load(get_settings().datasets_dir, "ml-100k")
    log = ds.interactions.sort_values([C.USER_ID, C.TIMESTAMP], kind="stable")
    latest = log.groupby(C.USER_ID).tail(1)
    past = dataclasses.replace(ds, name="ml-100k-past", interactions=log.drop(latest.index))
    store.save(past, tmp / "datasets")
    labels = tmp / "latest.csv"
    latest[[C.USER_ID, C.ITEM_ID]].to_csv(labels, index=False)
    model = tmp / "models" / "past-ranker"
    t0 = time.perf_counter()
    llmrec(env, "train", "--dataset", "ml-100k-past", "--no-tune", "--out", str(model))
    train_s = time.perf_counter() - t0
    jobs: dict[str, dict[str, object]] = {}
    for engine in ("local", "ray"):
        out = tmp / f"features-{engine}"
        printed = llmrec(env, "jobs", "features", "--model", str(model), "--out", str(out),
                         "--labels", str(labels), "--engine", engine)  # fmt: skip
        jobs[engine] = json.loads((out / "_job.json").read_text())
        print(printed.strip(), flush=True)
    keys = [C.USER_ID, "position"]
    a = read_output(tmp / "features-local").sort_values(keys, ignore_index=True)
    b = read_output(tmp / "features-ray").sort_values(keys, ignore_index=True)
    same = "equal" if a.equals(b) else "DIFFERENT"
    p = jobs["local"]["params"]
    assert isinstance(p, dict)
    lines = [
        "## Ranker training data: `jobs features --labels` (issue #9)",
        "",
        "Command: `make bench-labels` (`.venv/bin/python benchmarks/bench_labels.py`). ml-100k "
        f"with each user's latest event held out ({len(latest):,} events); a ranker trained "
        f"on the other {len(past.interactions):,} with `llmrec train --no-tune` "
        f"({train_s:.0f} s); then `llmrec jobs features --labels latest.csv` on each engine.",
        "",
        "| what | value |",
        "|---|---|",
        f"| rows (users × candidates) | {jobs['local']['rows']:,} |",
        f"| features per row | {len(p['features'])} |",  # type: ignore[arg-type]
        f"| label pairs (known users and items; already seen) | {p['label_pairs']:,}; "
        f"{p['label_pairs_seen']:,} |",
        f"| held-out items among the candidates (first stage's recall) | "
        f"{p['labelled_candidates']:,} of {p['label_pairs_unseen']:,} "
        f"({p['label_recall']:.1%}) |",
        f"| job seconds, local / Ray (local cluster of 2 CPUs) | {jobs['local']['seconds']:.1f} "
        f"/ {jobs['ray']['seconds']:.1f} |",
        f"| Ray frame vs local frame | {same} |",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)
    shutil.rmtree(tmp, ignore_errors=True)
    if same != "equal":
        raise SystemExit("the Ray engine's rows differ from the local engine's")


if __name__ == "__main__":
    main()
