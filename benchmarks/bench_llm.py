"""Generative LLM on MovieLens-100K (issue #5): LLM rerank of the ranker's top-M on `loo`, and
explanations of the served pipeline (latency, share that passes the checks).

    .venv/bin/python benchmarks/bench_llm.py [--part rerank|explain|all] [--valid-users 200]
        [--test-users 300] [--explain-pairs 80]

The ranker is tuned as in `llmrec eval --model ranker`; the LLM rescores the top-M of a fixed
random sample of validation users to choose the blend weight, then the top-M of a sample of
test users. Both test columns rank the same candidates for the same users; the paired
Wilcoxon test is on per-user NDCG@10. Writes the "Generative LLM" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

sys.path.insert(0, str(Path(__file__).parent))
from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.splits import Split  # noqa: E402
from llmrec.eval.evaluate import evaluate_scores  # noqa: E402
from llmrec.eval.protocols import loo  # noqa: E402
from llmrec.ranking.llm_rerank import LLMRerank, blend  # noqa: E402

BEGIN, END = "<!-- bench_llm:begin -->", "<!-- bench_llm:end -->"
EXPLAIN_BEGIN, EXPLAIN_END = "<!-- bench_llm_explain:begin -->", "<!-- bench_llm_explain:end -->"


def rerank(split: Split, args: argparse.Namespace) -> dict:
    fixed = {"noun": "movie", "top_m": args.top_m, "tune_users": args.valid_users}
    tuned = LLMRerank.tune_on(split, fixed)
    model: LLMRerank = tuned.model  # type: ignore[assignment]
    model.observe(split.test_history)
    rng = np.random.default_rng(7)
    n = len(split.test.user_idx)
    rows = np.sort(rng.choice(n, min(args.test_users, n), replace=False))
    stage = split.test.subset(rows)
    users = stage.user_idx
    base = model.base_.score(users).astype(np.float64)
    top = model.top_candidates(users, base)
    per_user = []
    llm = np.empty(top.shape)
    for r, u in enumerate(users):
        t = time.perf_counter()
        llm[r] = model.llm_scores(np.array([u]), top[r : r + 1])[0]
        per_user.append(time.perf_counter() - t)
    w = model.config.weight

    def ndcg10(weight: float) -> np.ndarray:
        scores = blend(base, top, llm, weight)
        res = evaluate_scores(scores, stage, split.train, ks=(10,), catalogue_metrics=False)
        return res.per_user["ndcg@10"]

    without, with_llm, llm_only = ndcg10(0.0), ndcg10(w), ndcg10(1e6)
    trials = [t for t in tuned.trials if "top_m" in t.params]
    return {
        "weight": w,
        "valid": {t.params["weight"]: t.score for t in trials},
        "n": len(users),
        "without": without,
        "with": with_llm,
        "llm_only": llm_only,
        "latency": np.array(per_user),
        "hit_in_top": float(
            np.mean([np.isin(tg, t).any() for tg, t in zip(stage.targets, top, strict=True)])
        ),
    }


def explanations(model_dir: Path, n_pairs: int, noun: str, llm: Any = None) -> dict:
    """The top item of ``n_pairs`` random users of a served pipeline, explained as the
    service does (its evidence, its checks), with no time budget; by ``llm`` instead of the
    bundled model when given; ``sources``: each text's source, in user order."""
    from llmrec.service.live import LiveModel
    from llmrec.service.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        live = LiveModel(
            model_dir, Store(f"sqlite:///{tmp}/events.db"), llm="transformers", item_noun=noun
        )
        if llm is not None:
            live.explanations.explainer.llm = llm
        rng = np.random.default_rng(11)
        users = rng.choice(live.model.users_.ids, n_pairs, replace=False)
        out, seconds, rules, named, sources = Counter(), [], Counter(), [], []
        for u in users:
            item = live.recommend(str(u), 1)[0].item_id
            e = live._evidence(str(u), item)
            t = time.perf_counter()
            x = live.explanations.explainer.explain(str(u), e)
            seconds.append(time.perf_counter() - t)
            out[x.source] += 1
            sources.append(x.source)
            rules.update(p.split(":")[0] for p in x.problems)
            named += [p for p in x.problems if p.startswith("unsupported-name")]
        live.close()
    return {"counts": dict(out), "seconds": seconds, "rules": dict(rules), "n": n_pairs,
            "names": named[:5], "sources": sources}  # fmt: skip


def rerank_section(split: Split, args: argparse.Namespace) -> list[str]:
    r = rerank(split, args)
    diff = r["with"] - r["without"]
    p_value = wilcoxon(r["with"], r["without"]).pvalue if np.any(diff != 0) else 1.0
    lat = r["latency"]
    valid = ", ".join(f"{w:g}: {s:.4f}" for w, s in r["valid"].items())
    body = f"""Command: `.venv/bin/python benchmarks/bench_llm.py --part rerank \
--valid-users {args.valid_users} --test-users {args.test_users} --top-m {args.top_m}` \
({platform.machine()}, 2 cores, 1 torch thread, SmolLM2-135M-Instruct on the transformers runtime, \
{time.strftime("%Y-%m-%d")}).

The ranker is tuned as `llmrec eval --model ranker` does (seed 42). The LLM rescores each \
user's top {args.top_m} (calibrated verbalizer scores, see README); the blend weight is chosen on \
{args.valid_users} random validation users (NDCG@10 per weight: {valid}); chosen weight \
**{r["weight"]:g}**. Test: {r["n"]} random test users, the same candidates in every column; the \
test item is among the top {args.top_m} for {r["hit_in_top"]:.1%} of them (the ceiling of any \
rerank).

| on the same {r["n"]} test users | NDCG@10 |
|---|---|
| ranker (no rerank) | {r["without"].mean():.4f} |
| ranker + LLM rerank (weight {r["weight"]:g}) | {r["with"].mean():.4f} |
| LLM order alone (within the top {args.top_m}) | {r["llm_only"].mean():.4f} |

Paired Wilcoxon test, rerank vs none: Δ {diff.mean():+.4f}, p = {p_value:.2g}.

LLM rescoring of {args.top_m} candidates per user: {np.median(lat):.2f} s median, \
{np.percentile(lat, 95):.2f} s p95 (2 cores, 1 thread).
"""
    return ["## Generative LLM rerank on MovieLens-100K (issue #5)", "", body]


def explain_section(args: argparse.Namespace) -> list[str]:
    runs = {}
    for spec in args.explain_models:
        folder, noun = spec.split(":")
        runs[folder] = explanations(
            get_settings().home / "models" / folder, args.explain_pairs, noun
        )
    if args.json:
        args.json.write_text(json.dumps(runs))
    before = json.loads(args.before.read_text()) if args.before else {}
    rows = []
    for folder, x in runs.items():
        for label, r in (("before", before.get(folder)), ("after", x)):
            if r is None:
                continue
            ok = r["counts"].get("llm", 0)
            rules = ", ".join(f"{k} {v}" for k, v in Counter(r["rules"]).most_common()) or "none"
            xs = np.array(r["seconds"])
            rows.append(
                f"| {folder} | {label} | **{ok} of {r['n']}** ({ok / r['n']:.0%}) | {rules} | "
                f"{np.median(xs):.2f} s | {np.percentile(xs, 95):.2f} s |"
            )
    names = [n for x in runs.values() for n in x["names"]]
    models = " ".join(args.explain_models)
    body = f"""Command: `.venv/bin/python benchmarks/bench_llm.py --part explain \
--explain-pairs {args.explain_pairs} --explain-models {models}` ({platform.machine()}, 2 cores, \
1 torch thread, SmolLM2-135M-Instruct on the transformers runtime, {time.strftime("%Y-%m-%d")}).

The top item of {args.explain_pairs} random users (seed 11) of each served pipeline (`llmrec \
train`), explained as the service does (its evidence and checks), without the time budget; a \
text that fails a check falls back to the template. "before": the same run on the revision \
before #21 item 5 (no item description among the facts, no invented-name check); "after": \
the item's description is a fact (ibm-articles has one per article; MovieLens none), the \
prompt asks for no names the facts do not hold, and a capitalised word that no fact and no \
catalogue title holds is rejected (`unsupported-name`).

| pipeline | revision | LLM texts passing every check | rules that rejected (a text can break \
several) | median | p95 |
|---|---|---:|---|---:|---:|
{chr(10).join(rows)}

Names the new check rejected (first five): {"; ".join(names) or "none"}.
"""
    return ["## Generative LLM explanations (issue #5, #21 item 5)", "", body]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=["rerank", "explain", "all"], default="all")
    p.add_argument("--valid-users", type=int, default=200)
    p.add_argument("--test-users", type=int, default=300)
    p.add_argument("--top-m", type=int, default=20)
    p.add_argument("--explain-pairs", type=int, default=80)
    p.add_argument(
        "--explain-models",
        nargs="*",
        default=["ml-100k-ranker:movie", "ibm-articles-ranker:article"],
    )
    p.add_argument("--json", type=Path, help="write the explanation counts here")
    p.add_argument("--before", type=Path, help="counts of a run on the revision before")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument(
        "--model-dir",
        type=Path,
        default=get_settings().home / "models" / "ml-100k-ranker",
        help="the served pipeline whose explanations are measured (llmrec train)",
    )
    args = p.parse_args()
    root = Path(__file__).resolve().parent.parent
    if args.part in ("rerank", "all"):
        split = loo(store.load(get_settings().datasets_dir, "ml-100k"))
        lines = rerank_section(split, args)
        write_section(root / "BENCHMARKS.md", BEGIN, END, lines)
        print("\n".join(lines))
    if args.part in ("explain", "all"):
        lines = explain_section(args)
        if not args.no_write:
            write_section(root / "BENCHMARKS.md", EXPLAIN_BEGIN, EXPLAIN_END, lines)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
