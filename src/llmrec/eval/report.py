"""Comparison reports: a Markdown table, a PNG bar chart and a paired test on per-user ranks."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table
from scipy import stats

from llmrec.eval.fairness import ITEM_GROUPS
from llmrec.eval.runner import EvalRun

TABLE_METRICS = (
    "recall@10",
    "ndcg@10",
    "mrr@10",
    "recall@20",
    "ndcg@20",
    "coverage@10",
    "novelty@10",
    "diversity@10",
    "arp@10",
    "gini@10",
    "exposure@10 tail",  # eval.fairness: the tail's share of position-discounted exposure
    "miscalibration@10",
    "EE-L@10",  # expected exposure's distance to the ideal (head/torso/tail)
    "AWRF@10",
)
CHART_PANELS = (
    ("accuracy", ("recall@10", "ndcg@10", "mrr@10", "recall@20", "ndcg@20")),
    ("beyond accuracy", ("coverage@10", "diversity@10", "gini@10")),
)


def pooled_p(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Two-sided Wilcoxon signed-rank p on per-user values, the runs (seeds) of each side
    concatenated in the same order; 1.0 when they differ in length or nowhere."""
    x, y = np.concatenate(list(a)), np.concatenate(list(b))
    if len(x) != len(y) or not np.any(x != y):
        return 1.0
    return float(stats.wilcoxon(x, y, zero_method="zsplit").pvalue)


def paired_p(a: EvalRun, b: EvalRun, metric: str = "ndcg@10") -> float:
    """``pooled_p`` of one run each (same users, same split)."""
    return pooled_p([a.per_user[metric]], [b.per_user[metric]])


def seeds_table(by_seed: Mapping[int, Sequence[EvalRun]]) -> Table:
    """Mean ± sd over seeds per model, and a Wilcoxon test against the best model on per-user
    NDCG@10 pooled over seeds (the same users and splits for every model of a seed)."""
    models = [r.model for r in next(iter(by_seed.values()))]
    runs = {m: [next(r for r in rs if r.model == m) for rs in by_seed.values()] for m in models}
    mean = {m: float(np.mean([r.metrics["ndcg@10"] for r in rs])) for m, rs in runs.items()}
    best = max(mean, key=mean.__getitem__)
    t = Table(title=f"over seeds {', '.join(map(str, by_seed))}: mean ± sd")
    for col in ("model", "ndcg@10", "recall@10", "p vs best"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m, rs in runs.items():
        cells = []
        for metric in ("ndcg@10", "recall@10"):
            v = [r.metrics[metric] for r in rs]
            cells.append(f"{np.mean(v):.4f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.4f}")
        if m == best:
            p = "best"
        else:
            mine = [r.per_user["ndcg@10"] for r in rs]
            p = f"{pooled_p(mine, [r.per_user['ndcg@10'] for r in runs[best]]):.2g}"
        t.add_row(m, *cells, p)
    return t


def table(runs: Sequence[EvalRun]) -> pd.DataFrame:
    best = max(runs, key=lambda r: r.metrics["ndcg@10"])
    rows = []
    for r in runs:
        row = {"model": r.model}
        row.update({m: r.metrics.get(m, float("nan")) for m in TABLE_METRICS})
        row["p vs best"] = float("nan") if r is best else paired_p(r, best)
        row["fit s"] = r.fit_seconds
        row["tune s"] = r.tune_seconds
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(runs: Sequence[EvalRun]) -> str:
    df = table(runs)
    head = runs[0]
    lines = [
        f"# {head.dataset}, protocol `{head.protocol}`",
        "",
        f"{head.n_users} test users, {head.n_items} items; hyper-parameters chosen on the "
        "validation item (NDCG@10). `p vs best`: Wilcoxon signed-rank test on per-user "
        "NDCG@10 against the best model.",
        "",
        "| " + " | ".join(df.columns) + " |",
        "|" + "---|" * len(df.columns),
    ]
    for _, row in df.iterrows():
        cells = [str(row["model"])]
        for col in df.columns[1:]:
            v = row[col]
            cells.append("" if pd.isna(v) else _fmt(col, float(v)))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Chosen parameters:", ""]
    lines += [f"- `{r.model}`: `{json.dumps(r.params, sort_keys=True)}`" for r in runs]
    if any(r.groups for r in runs):
        lines += ["", "NDCG@10 by user group (best minus worst group of 20+ users, 95% bootstrap "
                  "interval, permutation p):", "", "| model | attribute | groups (users) | gap "
                  "| p |", "|---|---|---|---|---|"]  # fmt: skip
        for r in runs:
            for attr, g in r.groups.items():
                parts = ", ".join(f"{k} {m:.4f} ({n})" for k, (n, m) in g.groups.items())
                lines.append(f"| {r.model} | {attr} | {parts} | {g.gap:.4f} [{g.low:.4f}, "
                             f"{g.high:.4f}] | {g.p:.2g} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _fmt(col: str, v: float) -> str:
    if col.startswith(("arp", "fit", "tune")):
        return f"{v:.1f}"
    if col.startswith("p vs"):
        return f"{v:.2g}"
    return f"{v:.4f}"


def run_styles(n: int) -> list[tuple[tuple[float, ...], str]]:
    """(colour, hatch) per model: distinct for up to 80 models (the default cycle repeats its
    10 colours, so 12 models gave two pairs the same bar colour)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    k = 10 if n <= 10 else 20
    hatches = ["", "//", "..", "xx"]
    return [(tuple(cmap(i % k)), hatches[(i // k) % len(hatches)]) for i in range(n)]


def chart(runs: Sequence[EvalRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [5, 3]}, squeeze=False
    )
    width = 0.8 / len(runs)
    styles = run_styles(len(runs))
    for ax, (title, metric_names) in zip(axes[0], CHART_PANELS, strict=True):
        x = np.arange(len(metric_names))
        for j, r in enumerate(runs):
            vals = [r.metrics.get(m, np.nan) for m in metric_names]
            colour, hatch = styles[j]
            ax.bar(x + j * width, vals, width, label=r.model, color=colour, hatch=hatch)
        ax.set_xticks(x + width * (len(runs) - 1) / 2, metric_names)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("higher is better (gini: lower is more even)")
    axes[0][0].legend(ncols=min(len(runs), 5), fontsize=8)
    fig.suptitle(f"{runs[0].dataset} — protocol {runs[0].protocol}")
    fig.tight_layout()
    _atomic(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def fairness_chart(runs: Sequence[EvalRun], path: Path) -> None:
    """Exposure of head/torso/tail items per model (stacked, with each group's share of the
    test items as the last bar), and NDCG@10 per user group for each ``--groups`` attribute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attrs = list(dict.fromkeys(a for r in runs for a in r.groups))
    fig, axes = plt.subplots(1, 1 + len(attrs), figsize=(5 + 4.5 * len(attrs), 4.5), squeeze=False)
    ax = axes[0][0]
    rows = [(r.model, [r.metrics.get(f"exposure@10 {g}", 0.0) for g in ITEM_GROUPS])
            for r in runs if "exposure@10 head" in r.metrics]  # fmt: skip
    if rows:
        shares = [runs[0].metrics.get(f"relevance {g}", 0.0) for g in ITEM_GROUPS]
        rows.append(("share of test items", shares))
        bottom = np.zeros(len(rows))
        for j, g in enumerate(ITEM_GROUPS):
            vals = np.array([v[j] for _, v in rows])
            ax.barh([n for n, _ in rows], vals, left=bottom, label=g, color=f"C{j}")
            bottom += vals
        ax.invert_yaxis()
        ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    ax.set_title("exposure@10 of head / torso / tail items")
    styles = run_styles(len(runs))
    for ax, attr in zip(axes[0][1:], attrs, strict=True):
        labels = list(
            dict.fromkeys(k for r in runs if attr in r.groups for k in r.groups[attr].groups)
        )
        if not labels:
            ax.text(0.5, 0.5, "no group of 20+ users", ha="center", transform=ax.transAxes)
        x = np.arange(len(labels))
        width = 0.8 / len(runs)
        for j, r in enumerate(runs):
            g = r.groups.get(attr)
            vals = [g.groups[k][1] if g and k in g.groups else np.nan for k in labels]
            ax.bar(
                x + j * width, vals, width, label=r.model, color=styles[j][0], hatch=styles[j][1]
            )
        ax.set_xticks(x + width * (len(runs) - 1) / 2, labels, fontsize=8, rotation=20)
        ax.set_title(f"NDCG@10 by {attr}")
        ax.grid(axis="y", alpha=0.3)
    if attrs:
        axes[0][1].legend(ncols=2, fontsize=7)
    fig.suptitle(f"{runs[0].dataset} — protocol {runs[0].protocol}: who gets served, what is shown")
    fig.tight_layout()
    _atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


TRADEOFF_PANELS = (  # reranker -> what it trades NDCG@10 for
    ("mmr", "diversity@10", "diversity@10 (MMR)"),
    ("calibrated", "miscalibration@10", "miscalibration@10 (calibrated; lower is better)"),
    ("tail", "exposure@10 tail", "tail exposure@10 (tail boost)"),
)


def tradeoff_chart(runs: Sequence[EvalRun], path: Path) -> None:
    """NDCG@10 against what each reranker buys, one line per model, strength 0 to 0.9."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    styles = run_styles(len(runs))
    for ax, (name, metric, label) in zip(axes, TRADEOFF_PANELS, strict=True):
        for r, (color, hatch) in zip(runs, styles, strict=True):
            points = r.tradeoffs.get(name, [])
            if points and metric in points[0]:
                ax.plot([p[metric] for p in points], [p["ndcg@10"] for p in points],
                        marker="o", ms=3, color=color, label=r.model,
                        ls="--" if hatch else "-")  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel("NDCG@10")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncols=2)
    fig.suptitle(f"{runs[0].dataset} — rerankers from strength 0 (the model's list) to 0.9")
    fig.tight_layout()
    _atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def write(runs: Sequence[EvalRun], out_dir: Path) -> dict[str, Path]:
    """``<dataset>-<protocol>.{md,png,json}`` and per-user ranks ``.ranks.parquet``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{runs[0].dataset}-{runs[0].protocol}"
    paths = {
        "markdown": out_dir / f"{stem}.md",
        "chart": out_dir / f"{stem}.png",
        "json": out_dir / f"{stem}.json",
        "ranks": out_dir / f"{stem}.ranks.parquet",
    }
    _atomic(paths["markdown"], lambda p: Path(p).write_text(markdown(runs)))
    chart(runs, paths["chart"])
    if any("exposure@10 head" in r.metrics or r.groups for r in runs):
        paths["fairness"] = out_dir / f"{stem}-fairness.png"
        fairness_chart(runs, paths["fairness"])
    if any(r.tradeoffs for r in runs):
        paths["tradeoffs"] = out_dir / f"{stem}-tradeoffs.png"
        tradeoff_chart(runs, paths["tradeoffs"])
    write_json([r.to_json() for r in runs], paths["json"])
    write_ranks(runs, paths["ranks"])
    return paths


def write_ranks(runs: Sequence[EvalRun], path: Path) -> Path:
    """Per test user, each run's best target rank (1-based, 0 = none): one column per model,
    the same layout for one run or many, so any two files give a paired test."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ranks = pd.DataFrame({"user_id": runs[0].user_ids, **{r.model: r.ranks for r in runs}})
    _atomic(path, lambda p: ranks.to_parquet(p, index=False))
    return path


def write_json(doc: object, path: Path) -> None:
    _atomic(path, lambda p: Path(p).write_text(json.dumps(doc, indent=2, sort_keys=True)))


def _atomic(path: Path, write_to: Callable[[str], object]) -> None:
    """Write via a temp file in the same folder, then rename: no half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write_to(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
