"""Generative LLM on MovieLens-100K (issue #5): LLM rerank of the ranker's top-M on `loo`, and
explanations (latency, share that passes the checks).

    .venv/bin/python benchmarks/bench_llm.py [--valid-users 200] [--test-users 400]

The ranker is tuned as in `llmrec eval --model ranker`; the LLM rescores the top-M of a fixed
random sample of validation users to choose the blend weight, then the top-M of a sample of
test users. Both test columns rank the same candidates for the same users; the paired
Wilcoxon test is on per-user NDCG@10. Writes the "Generative LLM" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

sys.path.insert(0, str(Path(__file__).parent))
from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.eval import metrics  # noqa: E402
from llmrec.eval.protocols import Split, loo  # noqa: E402
from llmrec.llm import LLMConfig, load_llm  # noqa: E402
from llmrec.llm.explain import Evidence, Explainer  # noqa: E402
from llmrec.llm.safety import OutputChecker, natural_title  # noqa: E402
from llmrec.ranking.llm_rerank import LLMRerank, blend  # noqa: E402

BEGIN, END = "<!-- bench_llm:begin -->", "<!-- bench_llm:end -->"


def ndcg10(scores: np.ndarray, split: Split, rows: np.ndarray) -> np.ndarray:
    st = split.test
    exclude = st.exclude[rows] if st.exclude is not None else None
    ranking = metrics.rank(scores, st.targets[rows], exclude, 10, None)
    return metrics.accuracy(ranking, 10)["ndcg@10"]


def rerank(split: Split, args: argparse.Namespace) -> tuple[dict, LLMRerank]:
    t0 = time.perf_counter()
    fixed = {"noun": "movie", "top_m": args.top_m, "tune_users": args.valid_users}
    tuned = LLMRerank.tune_on(split, fixed)
    tune_s = time.perf_counter() - t0
    model: LLMRerank = tuned.model  # type: ignore[assignment]
    model.observe(split.test_history)
    rng = np.random.default_rng(7)
    n = len(split.test.user_idx)
    rows = np.sort(rng.choice(n, min(args.test_users, n), replace=False))
    users = split.test.user_idx[rows]
    base = model.base_.score(users).astype(np.float64)
    top = model.top_candidates(users, base)
    per_user = []
    llm = np.empty(top.shape)
    for r, u in enumerate(users):
        t = time.perf_counter()
        llm[r] = model.llm_scores(np.array([u]), top[r : r + 1])[0]
        per_user.append(time.perf_counter() - t)
    w = model.config.weight
    without = ndcg10(blend(base, top, llm, 0.0), split, rows)
    with_llm = ndcg10(blend(base, top, llm, w), split, rows)
    llm_only = ndcg10(blend(base, top, llm, 1e6), split, rows)
    trials = [t for t in tuned.trials if "top_m" in t.params]
    return {
        "weight": w,
        "valid": {t.params["weight"]: t.score for t in trials},
        "n": len(users),
        "without": without,
        "with": with_llm,
        "llm_only": llm_only,
        "latency": np.array(per_user),
        "tune_s": tune_s,
        "hit_in_top": float(
            np.mean(
                [np.isin(split.test.targets[r], t).any() for r, t in zip(rows, top, strict=True)]
            )
        ),
    }, model


def explanations(model: LLMRerank, split: Split, n_pairs: int) -> dict:
    """The top-1 reranked item of ``n_pairs`` test users, explained with the evidence the
    service uses (most similar history item by the content retriever's vectors)."""
    data = split.test_history
    titles = [natural_title(str(t)) for t in data.item_table["title"]]
    checker = OutputChecker(titles)
    explainer = Explainer(load_llm(LLMConfig()), checker, noun="movie")
    vecs = model.base_.retrievers_["content"].item_vectors_
    genres = [tuple(g) if g is not None else () for g in data.item_table["genres"]]
    rng = np.random.default_rng(11)
    users = rng.choice(split.test.user_idx, n_pairs, replace=False)
    scores = model.base_.score(users)
    seen = model.history_[users].toarray().astype(bool)
    scores[seen] = -np.inf
    log = data.log
    out, seconds, rules = Counter(), [], Counter()
    for u, row in zip(users, scores, strict=True):
        i = int(np.argmax(row))
        hist = model.history_[u].indices
        j = int(hist[np.argmax(vecs[hist] @ vecs[i])])
        mine = log[(log["user_idx"] == u) & (log["item_idx"] == j)]
        rating = float(mine["value"].iloc[-1]) if len(mine) else None
        e = Evidence(
            str(i), titles[i], genres[i], str(j), titles[j], rating,
            rating is not None and rating >= 4, tuple(g for g in genres[i] if g in genres[j]),
        )  # fmt: skip
        t = time.perf_counter()
        x = explainer.explain(str(u), e)
        seconds.append(time.perf_counter() - t)
        out[x.source] += 1
        rules.update(p.split(":")[0] for p in x.problems)
    return {"counts": out, "seconds": np.array(seconds), "rules": rules, "n": n_pairs}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--valid-users", type=int, default=200)
    p.add_argument("--test-users", type=int, default=400)
    p.add_argument("--top-m", type=int, default=20)
    p.add_argument("--explain-pairs", type=int, default=100)
    args = p.parse_args()
    ds = store.load(get_settings().datasets_dir, "ml-100k")
    split = loo(ds)
    t0 = time.perf_counter()
    r, model = rerank(split, args)
    print(f"rerank done in {time.perf_counter() - t0:.0f} s", flush=True)
    x = explanations(model, split, args.explain_pairs)
    diff = r["with"] - r["without"]
    p_value = wilcoxon(r["with"], r["without"]).pvalue if np.any(diff != 0) else 1.0
    lat, xs = r["latency"], x["seconds"]
    valid = ", ".join(f"{w:g}: {s:.4f}" for w, s in r["valid"].items())
    passed = x["counts"]["llm"]
    rules = ", ".join(f"{k} {v}" for k, v in x["rules"].most_common())
    body = f"""Command: `.venv/bin/python benchmarks/bench_llm.py --valid-users {args.valid_users} \
--test-users {args.test_users} --top-m {args.top_m} --explain-pairs {args.explain_pairs}` \
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

| latency on 2 cores, 1 thread | median | p95 |
|---|---|---|
| LLM rescoring of {args.top_m} candidates, per user | {np.median(lat):.2f} s | \
{np.percentile(lat, 95):.2f} s |
| one explanation (generation + checks) | {np.median(xs):.2f} s | {np.percentile(xs, 95):.2f} s |

Explanations of {x["n"]} (test user, top item) pairs: **{passed} of {x["n"]}** \
({passed / x["n"]:.0%}) LLM texts passed every check; the rest fell back to the template. \
Rules that rejected (a text can break several): {rules or "none"}.
"""
    root = Path(__file__).resolve().parent.parent
    lines = ["## Generative LLM: rerank and explanations on MovieLens-100K (issue #5)", "", body]
    write_section(root / "BENCHMARKS.md", BEGIN, END, lines)
    print(body)


if __name__ == "__main__":
    main()
