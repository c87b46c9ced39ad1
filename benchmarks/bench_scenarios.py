"""Issue #8: multi-scenario learning: separate vs pooled vs multi-scenario models, per scenario.

Run: make bench-scenarios   (or: .venv/bin/python benchmarks/bench_scenarios.py [--seeds 0 1 2])

(a) MovieLens-100K split into three genre domains (``llmrec.scenarios.GENRE_DOMAINS``: an item
goes to the first domain listing one of its genres), each evaluated with ``loo`` on its own
events, ranking all its items; item text vectors (MiniLM) shared. (b) The Open Bandit
Dataset's campaigns: clicks split by time per campaign (70/15/15... see
``llmrec.scenarios.obd_campaigns``), each test click ranks its campaign's items.
The three modes are one model (``MultiScenarioMF``) that differs only in what it shares;
epochs stop on validation NDCG@10; every number is the test item's, per seed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.eval.evaluate import evaluate_scores  # noqa: E402
from llmrec.models.content import embed_items  # noqa: E402
from llmrec.models.ease import EASE  # noqa: E402
from llmrec.scenarios import MODES, MultiScenarioMF, genre_domains, obd_campaigns  # noqa: E402

BEGIN, END = "<!-- bench_scenarios:begin -->", "<!-- bench_scenarios:end -->"


TOWER_DECAYS = (0.0, 1.0, 10.0, 100.0)


def test_row(label: str, task, mode: str, seed: int, scores: np.ndarray, **extra) -> dict:  # type: ignore[no-untyped-def]
    """One result row: the test metrics of ``scores`` on ``task``, and what produced them."""
    res = evaluate_scores(scores, task.test, task.train, (10,), None, False)
    return {
        "data": label,
        "scenario": task.name,
        "mode": mode,
        "seed": seed,
        "ndcg@10": res.metrics["ndcg@10"],
        "recall@10": res.metrics["recall@10"],
        "train_events": len(task.train.log),
        "test_rows": len(task.test.user_idx),
        **extra,
    }


def tuned_multi(data, vectors, seed: int):  # type: ignore[no-untyped-def]
    """The multi-scenario model's own hyper-parameter, the decay of its scenario-specific
    parts, chosen on the mean validation NDCG@10 (first seed); returns it and that fit."""
    best = None
    for decay in TOWER_DECAYS:
        m = MultiScenarioMF("multi", seed=seed, tower_decay=decay).fit(data, vectors)
        v = m.best_validation[None]
        print(f"  tower_decay {decay:g}: validation NDCG@10 {v:.4f}", flush=True)
        if best is None or v > best[0]:
            best = (v, decay, m)
    assert best is not None
    return best[1], best[2]


def run(data, vectors, seeds: list[int], label: str) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = []
    decay, first = tuned_multi(data, vectors, seeds[0])
    for seed in seeds:
        for mode in MODES:
            t0 = time.perf_counter()
            if mode == "multi" and seed == seeds[0]:
                m = first
            else:
                m = MultiScenarioMF(mode, seed=seed, tower_decay=decay).fit(data, vectors)
            for i, t in enumerate(data.tasks):
                rows.append(
                    test_row(
                        label,
                        t,
                        mode,
                        seed,
                        m.score(i, t.test.user_idx),
                        valid_ndcg=m.validation_ndcg(i),
                        epochs=m.best_epoch[t.name if mode == "separate" else None],
                        tower_decay=decay,
                        seconds=time.perf_counter() - t0,
                    )
                )
            print(
                f"{label} seed {seed} {mode}: "
                + ", ".join(f"{r['scenario']} {r['ndcg@10']:.4f}" for r in rows[-len(data.tasks) :])
                + f" ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return rows


EASE_REGS = (10.0, 50.0, 200.0, 500.0, 1000.0)


def ease_rows(data, label: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """A strong single-domain baseline, deterministic: EASE per scenario (its lambda chosen on
    that scenario's validation) and EASE on the pooled events (lambda on the mean)."""

    def ndcg(scores: np.ndarray, stage, train) -> float:  # type: ignore[no-untyped-def]
        return evaluate_scores(scores, stage, train, (10,), None, False).metrics["ndcg@10"]

    rows = []
    pooled = data.pooled_train()
    fits = {reg: EASE(reg=reg).fit(pooled) for reg in EASE_REGS}

    def pooled_scores(m, t, stage) -> np.ndarray:  # type: ignore[no-untyped-def]
        return m.score(t.users[stage.user_idx], t.items)

    reg = max(
        EASE_REGS,
        key=lambda r: np.mean(
            [ndcg(pooled_scores(fits[r], t, t.valid), t.valid, t.train) for t in data.tasks]
        ),
    )
    for t in data.tasks:
        rows.append(
            test_row(label, t, "EASE pooled", 0, pooled_scores(fits[reg], t, t.test), reg=reg)
        )
        own = {r: EASE(reg=r).fit(t.train) for r in EASE_REGS}
        best = max(EASE_REGS, key=lambda r: ndcg(own[r].score(t.valid.user_idx), t.valid, t.train))
        rows.append(
            test_row(label, t, "EASE separate", 0, own[best].score(t.test.user_idx), reg=best)
        )
    print(
        label,
        "EASE:",
        [(r["scenario"], r["mode"], round(r["ndcg@10"], 4)) for r in rows],
        flush=True,
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    t0 = time.perf_counter()
    s = get_settings()
    ml = genre_domains(store.load(s.datasets_dir, "ml-100k"))
    label = "ml-100k genre domains"
    rows = ease_rows(ml, label) + run(ml, embed_items(ml.item_text, "minilm"), args.seeds, label)
    obd = obd_campaigns(store.load(s.datasets_dir, "obd"))
    rows += ease_rows(obd, "OBD campaigns") + run(obd, None, args.seeds, "OBD campaigns")
    out = ROOT / "reports"
    out.mkdir(exist_ok=True)
    (out / "scenarios.json").write_text(json.dumps(rows, indent=2))
    plot(rows, ROOT / "benchmarks" / "scenarios.png")
    lines = table(rows, args, time.perf_counter() - t0)
    print("\n".join(lines))
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def decays(rows: list[dict]) -> str:
    chosen = {r["data"]: r["tower_decay"] for r in rows if "tower_decay" in r}
    return ", ".join(f"{d}: {v:g}" for d, v in chosen.items())


def summary(
    rows: list[dict], data: str, scenario: str, mode: str, key: str = "ndcg@10"
) -> tuple[float, float]:
    v = [r[key] for r in rows if (r["data"], r["scenario"], r["mode"]) == (data, scenario, mode)]
    return float(np.mean(v)), float(np.std(v))


def table(rows: list[dict], args: argparse.Namespace, seconds: float) -> list[str]:
    seeds = " ".join(map(str, args.seeds))
    lines = [
        "## Multi-scenario learning (issue #8)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_scenarios.py --seeds {seeds}` "
        f"({seconds / 60:.0f} min on {platform.machine()}, 2 cores). Test NDCG@10, mean ± std "
        f"over {len(args.seeds)} seeds; best per scenario in bold. Same model and budget in "
        "every mode (`MultiScenarioMF`, dim 64, full softmax over the scenario's items, early "
        "stopping on validation NDCG@10); only what is shared differs. The multi-scenario model's "
        f"own hyper-parameter, the weight decay of its scenario-specific parts, is chosen from "
        f"{', '.join(f'{d:g}' for d in TOWER_DECAYS)} on the first seed's mean validation "
        f"NDCG@10 ({decays(rows)}). Bold: best of the three modes. EASE (deterministic; "
        "lambda chosen on validation) for reference.",
        "",
        "| data | scenario | train events | test rows | separate | pooled | multi-scenario "
        "| EASE separate | EASE pooled |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    seen = []
    for r in rows:
        if (r["data"], r["scenario"]) not in seen:
            seen.append((r["data"], r["scenario"]))
    for data, scen in seen:
        first = next(
            r for r in rows if (r["data"], r["scenario"], r["mode"]) == (data, scen, "multi")
        )
        stats = {m: summary(rows, data, scen, m) for m in MODES}
        best = max(stats, key=lambda m: stats[m][0])
        cells = [
            (f"**{mu:.4f}** ± {sd:.4f}" if m == best else f"{mu:.4f} ± {sd:.4f}")
            for m, (mu, sd) in stats.items()
        ]
        cells += [
            f"{summary(rows, data, scen, m)[0]:.4f}" for m in ("EASE separate", "EASE pooled")
        ]
        lines.append(
            f"| {data} | {scen} | {first['train_events']:,} | {first['test_rows']:,} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", "![multi-scenario](benchmarks/scenarios.png)"]
    return lines


def plot(rows: list[dict], path: Path) -> None:
    datas = list(dict.fromkeys(r["data"] for r in rows))
    fig, axes = plt.subplots(1, len(datas), figsize=(12, 4.5))
    for ax, data in zip(np.atleast_1d(axes), datas, strict=True):
        scens = list(dict.fromkeys(r["scenario"] for r in rows if r["data"] == data))
        x = np.arange(len(scens))
        for j, mode in enumerate(MODES):
            st = [summary(rows, data, s, mode) for s in scens]
            ax.bar(
                x + (j - 1) * 0.27,
                [m for m, _ in st],
                0.27,
                yerr=[sd for _, sd in st],
                capsize=3,
                label=mode,
            )
        ax.set_xticks(x, scens)
        ax.set_ylabel("test NDCG@10")
        ax.set_title(data)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
