"""Shared by the benchmark scripts: rewrite one marked section of BENCHMARKS.md, and the usual
dataset/seed arguments (the paired test is ``llmrec.eval.report.pooled_p``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def seeds_parser(doc: str | None, datasets: Sequence[str] = ("ml-100k", "ibm-articles")):
    """``--datasets`` and ``--seeds 0 1 2``: what the multi-seed benchmarks take."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--datasets", nargs="*", default=list(datasets))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    return ap


def compare_parser(doc: str | None, runs: int = 3) -> argparse.ArgumentParser:
    """``--runs`` and ``--before REV``: what the this-tree-against-a-revision benchmarks take
    (with ``code_trees``)."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--before", help="a git revision to compare with, e.g. HEAD~1")
    return ap


def write_section(path: Path, begin: str, end: str, lines: list[str]) -> None:
    """Replace the text between ``begin`` and ``end`` (markers included) or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    block = "\n".join([begin, *lines, end])
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")


def run_measured(
    cmd: list[str], env: dict[str, str], timeout: float | None = None, log: Path | None = None
) -> dict[str, object]:
    """Run ``cmd``: wall seconds, peak memory (GiB: the largest sum of PSS, shared pages split
    between the processes that map them, over the child and all its descendants, sampled
    every 0.2 s), return code (None when stopped at ``timeout``) and the output's tail. The
    output goes to ``log`` as it comes when given."""
    import psutil

    t0 = time.perf_counter()
    sink = log.open("wb") if log else subprocess.PIPE
    child = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(child.pid)
        while not done.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    total += p.memory_full_info().pss
                except psutil.Error:
                    pass
            peak = max(peak, total / 2**30)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc: int | None
    try:
        output, _ = child.communicate(timeout=timeout)
        rc = child.returncode
    except subprocess.TimeoutExpired:
        for p in psutil.Process(child.pid).children(recursive=True):
            p.kill()
        child.kill()
        output, _ = child.communicate()
        rc = None
    done.set()
    sampler.join()
    if log:
        sink.close()  # type: ignore[union-attr]
        output = log.read_bytes()
    tail = (output or b"").decode(errors="replace")[-4000:]
    return {
        "wall_s": round(time.perf_counter() - t0, 2),
        "peak_gib": round(peak, 3),
        "rc": rc,
        "output": tail,
    }


# the CLI in a child process, on this interpreter (the venv's)
LLMREC = [sys.executable, "-c", "from llmrec.cli import main; main()"]


def run_script(script: str, *args: str, env: dict[str, str]) -> dict[str, Any]:
    """Run a Python ``script`` in a fresh process with ``args``: the JSON object it prints
    last (the --before benchmarks' measurements); its stderr's tail if it fails."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def tree_env(env: dict[str, str], src: Path | None) -> dict[str, str]:
    """``env`` running the code of ``src`` (a ``code_trees`` value; None: this tree)."""
    return env | ({"PYTHONPATH": str(src)} if src else {})


def synth_command(name: str, users: int, items: int, events: int) -> list[str]:
    """``llmrec data synth`` of one size (the scale benchmarks' data)."""
    return [*LLMREC, "data", "synth", name, "--users", str(users), "--items", str(items),
            "--interactions", str(events)]  # fmt: skip


@contextmanager
def code_trees(before: str | None, tmp: Path) -> Iterator[dict[str, Path | None]]:
    """{"this tree": None} and, with ``before``, {REV: that revision's ``src``} (a git
    worktree under ``tmp``, removed afterwards): what a ``--before REV`` benchmark puts first
    on PYTHONPATH to run the old code on the same data in the same run."""
    trees: dict[str, Path | None] = {"this tree": None}
    if not before:
        yield trees
        return
    root = Path(__file__).resolve().parents[1]
    work = tmp / "before"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(work), before],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield {**trees, before: work / "src"}
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(work)],
                       check=False)  # fmt: skip
