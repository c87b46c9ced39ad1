"""The evaluation reports (``llmrec eval`` writes ``<dataset>-<protocol>.json``) for the web page.

A file that is not a report (bad JSON, wrong shape) is listed under ``problems`` with the
reason instead of failing the whole answer: one broken file must not hide the others.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from llmrec.eval.fairness import group_order
from llmrec.eval.report import TABLE_METRICS

MAX_FILES = 100
MAX_BYTES = 5 << 20  # a report of 12 models is ~20 KB


class Reports:
    """Reads ``folder`` on request; files are parsed again only when their mtime changes."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._parsed: dict[Path, tuple[float, dict[str, Any] | str]] = {}
        self._lock = threading.Lock()

    def latest(self) -> dict[str, Any]:
        reports, problems = [], []
        files = sorted(self.folder.glob("*.json"))[:MAX_FILES] if self.folder.is_dir() else []
        with self._lock:
            for path in files:
                got = self._read(path)
                if isinstance(got, str):
                    problems.append({"file": path.name, "message": got})
                else:
                    reports.append(got)
        reports.sort(key=lambda r: (r["protocol"] != "loo", r["name"]))
        return {
            "folder": str(self.folder),
            "metrics": list(TABLE_METRICS),
            "reports": reports,
            "problems": problems,
        }

    def _read(self, path: Path) -> dict[str, Any] | str:
        try:
            stat = path.stat()
        except OSError as e:
            return e.strerror or "unreadable"
        hit = self._parsed.get(path)
        if hit is not None and hit[0] == stat.st_mtime:
            return hit[1]
        got = _parse(path, stat.st_size, stat.st_mtime)
        self._parsed[path] = (stat.st_mtime, got)
        return got


def _parse(path: Path, size: int, mtime: float) -> dict[str, Any] | str:
    """One report, or why the file is not one."""
    if size > MAX_BYTES:
        return f"over {MAX_BYTES} bytes"
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"not JSON: {e}"
    runs = doc if isinstance(doc, list) else [doc]
    models = []
    for n, run in enumerate(runs):
        if not isinstance(run, dict) or not isinstance(run.get("metrics"), dict):
            return f"entry {n}: not an evaluation result (no 'metrics' object)"
        for key in ("dataset", "protocol", "model"):
            if not isinstance(run.get(key), str):
                return f"entry {n}: field {key!r} missing or not a string"
        metrics = {
            str(k): float(v)
            for k, v in run["metrics"].items()
            if isinstance(v, int | float) and math.isfinite(v)
        }
        models.append(
            {
                "model": run["model"],
                "metrics": metrics,
                "params": run.get("params") if isinstance(run.get("params"), dict) else {},
                "fit_seconds": _number(run.get("fit_seconds")),
                "valid_ndcg@10": _number(run.get("valid_ndcg@10")),
                "rerank": run["rerank"] if isinstance(run.get("rerank"), str) else None,
                "groups": _groups(run.get("groups")),
                "tradeoffs": _tradeoffs(run.get("tradeoffs")),
            }
        )
    if not models:
        return "no results in it"
    head = runs[0]
    return {
        "name": path.stem,
        "dataset": head["dataset"],
        "protocol": head["protocol"],
        "n_users": _count(head.get("n_users")),
        "n_items": _count(head.get("n_items")),
        "modified": int(mtime),
        "models": models,
    }


def _groups(doc: object) -> dict[str, Any]:
    """``llmrec eval --groups``: NDCG@10 per user group and the gap; malformed parts dropped."""
    out: dict[str, Any] = {}
    for attr, g in (doc if isinstance(doc, dict) else {}).items():
        if not isinstance(g, dict) or not isinstance(g.get("groups"), dict):
            continue
        groups = {  # in band order (the report's JSON has its keys sorted by name)
            str(label): {"users": _count(v.get("users")), "ndcg@10": _number(v.get("ndcg@10"))}
            for label, v in sorted(g["groups"].items(), key=lambda kv: group_order(str(kv[0])))
            if isinstance(v, dict)
        }
        interval = g.get("interval")
        low, high = interval if isinstance(interval, list) and len(interval) == 2 else (None, None)
        out[str(attr)] = {
            "groups": groups,
            "gap": _number(g.get("gap")),
            "interval": [_number(low), _number(high)],
            "p": _number(g.get("p")),
        }
    return out


def _tradeoffs(doc: object) -> dict[str, list[dict[str, float]]]:
    """``llmrec eval --tradeoffs``: per reranker, the metrics at each strength (finite only)."""
    out: dict[str, list[dict[str, float]]] = {}
    for name, points in (doc if isinstance(doc, dict) else {}).items():
        if isinstance(points, list):
            kept = [
                {str(k): float(v) for k, v in pt.items()
                 if isinstance(v, int | float) and math.isfinite(v)}
                for pt in points
                if isinstance(pt, dict)
            ]  # fmt: skip
            out[str(name)] = [pt for pt in kept if "strength" in pt and "ndcg@10" in pt]
    return out


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _count(v: object) -> int | None:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None
