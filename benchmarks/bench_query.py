"""Requests in words (issue #25): does a request blended with the user's history find the
held-out item better than the history alone or the request alone?

Protocol ``loo`` (seed 0); the personal model (``--model``, default ``ease``) is tuned on the
validation item and observes the validation events. For each test user, one request per
template is written from the held-out item's own attributes (a genre of it, its decade, an
anchor: the item of the user's history nearest to it, see ``--anchor``). Each request is
answered three ways over the full catalogue, the user's history excluded: personal only (the
model's scores), request only (``query.score.blend`` without a user) and personal + request.
The blend weights are chosen on a random half of the test users (mean NDCG@10 over every
template) and reported on the other half, with Wilcoxon signed-rank tests on per-user NDCG@10.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.encoders import get_encoder  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.report import pooled_p  # noqa: E402
from llmrec.eval.tuning import tune  # noqa: E402
from llmrec.models import get_model_class  # noqa: E402
from llmrec.models.content import embed_catalogue  # noqa: E402
from llmrec.query.answer import item_rows  # noqa: E402
from llmrec.query.score import TRANSFORMS, QueryIndex  # noqa: E402

TEMPLATES = {
    "genre": "a {genre} {noun}",
    "decade": "a {noun} from the {decade}s",
    "anchor": "something like {anchor}",
    "genre+decade": "a {genre} {noun} from the {decade}s",
    "anchor+genre": "a {genre} {noun} like {anchor}",
}
PROTOCOL = (
    "Protocol `loo`; the personal model is tuned on the validation item and observes the "
    "validation events. Per test user, one request per template is written from the held-out "
    "item's attributes (one of its genres at random, its decade, and as anchor the item of the "
    "user's history nearest to it: by MiniLM text vector with `--anchor text`, by training "
    "co-occurrence with `--anchor cooc`); each is answered over the full "
    "catalogue with the user's history excluded: personal only (the model's scores), request "
    "only (constraints, anchor similarity and popularity), personal + request (the blend). The "
    "weights are chosen on a random half of the test users (mean NDCG@10 over all templates) "
    "and the numbers come from the other half; p = Wilcoxon signed-rank on per-user NDCG@10."
)
PERSONAL = np.round(np.arange(0, 1.0001, 0.1), 2)  # 0: the request alone
POPULARITY = (0.0, 0.1, 0.2, 0.4, 0.6)


def ndcg_of(scores: np.ndarray, allowed: np.ndarray, target: int) -> np.ndarray:
    """NDCG@10 of ``target`` per row of ``scores`` (G, n) among ``allowed``; ties go to the
    lower item position, as ``eval.metrics`` breaks them."""
    s = np.where(allowed, scores, -np.inf)
    t = s[:, target][:, None]
    before = (s > t).sum(axis=1) + (s[:, :target] == t).sum(axis=1)
    return np.where(before < 10, 1 / np.log2(before + 2), 0.0)


def requests(index: QueryIndex, similar: Callable[[np.ndarray, int], np.ndarray],
             history: np.ndarray, target: int, rng: np.random.Generator,
             noun: str) -> dict[str, str]:  # fmt: skip
    genres = [g for g, has in index._genres.items() if has[target]]
    year = index.years[target]
    anchor = history[np.argmax(similar(history, target))] if len(history) else None
    fill = {
        "noun": noun,
        "genre": str(rng.choice(sorted(genres))) if genres else None,
        "decade": int(year // 10 * 10) if np.isfinite(year) else None,
        "anchor": index.titles[index.ids[anchor]] if anchor is not None else None,
    }
    out = {}
    for name, template in TEMPLATES.items():
        needs = [k for k in fill if "{" + k + "}" in template]
        if all(fill[k] is not None for k in needs):
            out[name] = template.format(**fill)
    return out


def text_side(split, encoder: str, seed: int) -> tuple[np.ndarray, object, float]:  # noqa: ANN001
    """Item vectors and the encoder requests are matched with: the bundled MiniLM, or the
    ``lm`` model's fine-tuned one (tuned on the validation item like any model)."""
    if encoder == "minilm":
        return embed_catalogue(split.train, "minilm"), get_encoder("minilm"), 0.0
    t0 = time.perf_counter()
    lm = tune(get_model_class("lm"), split, {"seed": seed}).model
    return np.asarray(lm.item_vectors_), lm.text_encoder(), time.perf_counter() - t0


def anchor_similarity(split, how: str) -> Callable[[np.ndarray, int], np.ndarray]:  # noqa: ANN001
    """How the anchor of a request is picked among the user's items: nearest to the held-out
    item by MiniLM text vector (``text``), or by who had both in training (``cooc``, which
    favours neither encoder)."""
    if how == "text":
        v = embed_catalogue(split.train, "minilm")
        return lambda h, t: v[h] @ v[t]
    b = (split.train.matrix > 0).astype(np.float32).tocsc()
    n = np.asarray(b.sum(axis=0)).ravel()
    return lambda h, t: (
        (b[:, h].T @ b[:, t]).toarray().ravel() / np.sqrt(np.maximum(n[h] * n[t], 1e-12))
    )


def measure(
    dataset: str, model: str, max_users: int, seed: int, encoder: str, anchor: str = "text"
) -> dict:
    s = get_settings()
    fetch(dataset, s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, dataset)
    split = make_split(ds, "loo", seed=seed)
    t0 = time.perf_counter()
    tuned = tune(get_model_class(model), split, {"seed": seed})
    tuned.model.observe(split.test_history)
    fit_s = time.perf_counter() - t0
    train = split.train
    rows = item_rows(train.item_table, train.items.ids)
    vectors, enc, lm_s = text_side(split, encoder, seed)
    similar = anchor_similarity(split, anchor)  # the requests are the same for every encoder
    pop = np.asarray(train.matrix.sum(axis=0)).ravel()
    index = QueryIndex(rows, pop, vectors, enc)
    pop_t = {k: f(pop) for k, f in TRANSFORMS.items()}
    stage = split.test
    rng = np.random.default_rng(seed)
    users = np.arange(len(stage.user_idx))
    if len(users) > max_users:
        users = np.sort(rng.choice(users, max_users, replace=False))
    half = rng.permutation(len(users)) < len(users) // 2  # True: the validation half
    hist = split.test_history.matrix
    w = PERSONAL[:, None, None]  # (P, 1, 1) x (1, A, 1)
    a = np.asarray(POPULARITY)[None, :, None]
    # per template: (users, 1 + P*A) NDCG@10, column 0 personal only
    res: dict[str, list[np.ndarray]] = {t: [] for t in TEMPLATES}
    owner: dict[str, list[int]] = {t: [] for t in TEMPLATES}
    t0 = time.perf_counter()
    noun = "book" if "book" in dataset else "movie"
    for n, r in enumerate(users):
        u, target = int(stage.user_idx[r]), int(stage.targets[r, 0])
        seen = stage.exclude[r].indices
        scores = tuned.model.score(np.array([u]))[0]
        personal = {k: f(scores) for k, f in TRANSFORMS.items()}
        history = hist[u].indices
        unseen = np.ones(len(scores), bool)
        unseen[seen] = False
        for name, text in requests(index, similar, history, target, rng, noun).items():
            q = index.parse(text)
            allowed = index.allowed(q.constraints) & unseen
            if not allowed[target]:  # the anchor is the target's twin title: skip
                continue
            intent = index.intent(q)
            row = [ndcg_of(scores[None, :], unseen, target)]
            for k, f in TRANSFORMS.items():  # (P, A, n) blends, flattened
                req = (
                    np.broadcast_to(pop_t[k], (1, len(POPULARITY), len(pop)))
                    if (intent is None)
                    else (1 - a) * f(intent)[None, None, :] + a * pop_t[k][None, None, :]
                )
                grid = (w * personal[k][None, None, :] + (1 - w) * req).reshape(-1, len(pop))
                row.append(ndcg_of(grid, allowed, target))
            res[name].append(np.concatenate(row))
            owner[name].append(n)
        if n % 200 == 0:
            print(
                f"{dataset}: {n}/{len(users)} users, {time.perf_counter() - t0:.0f} s", flush=True
            )
    mats = {t: np.array(v) for t, v in res.items() if v}
    who = {t: np.array(owner[t]) for t in mats}
    valid = {t: half[who[t]] for t in mats}
    all_valid = np.concatenate([mats[t][valid[t]] for t in mats]).mean(axis=0)
    grid_shape = (len(TRANSFORMS), len(PERSONAL), len(POPULARITY))
    grid = all_valid[1:].reshape(grid_shape)
    with_history = grid[:, 1:, :]  # the blend has some history in it; request-only is [:, 0]
    ti, pi, ai = np.unravel_index(np.argmax(with_history), with_history.shape)
    pi += 1
    qt, qa = np.unravel_index(np.argmax(grid[:, 0, :]), grid[:, 0, :].shape)
    col = 1 + np.ravel_multi_index((ti, pi, ai), grid_shape)
    qcol = 1 + np.ravel_multi_index((qt, 0, qa), grid_shape)
    names = list(TRANSFORMS)
    out = {
        "fit_s": fit_s, "lm_s": lm_s, "users": len(users),
        "weights": (names[ti], PERSONAL[pi], POPULARITY[ai]),
        "query_weights": (names[qt], POPULARITY[qa]), "valid_grid": grid, "rows": {},
    }  # fmt: skip
    tests = {t: (mats[t][~valid[t]]) for t in mats}
    tests["all"] = np.concatenate(list(tests.values()))
    for t, m in tests.items():
        p_only, q_only, both = m[:, 0], m[:, qcol], m[:, col]
        out["rows"][t] = {
            "n": len(m), "personal": p_only.mean(), "query": q_only.mean(), "both": both.mean(),
            "p_vs_personal": pooled_p([both], [p_only]), "p_vs_query": pooled_p([both], [q_only]),
        }  # fmt: skip
        print(f"{dataset} {t}: {out['rows'][t]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=["ml-100k", "ml-1m"])
    ap.add_argument("--model", default="ease")
    ap.add_argument("--encoder", default="minilm", choices=["minilm", "lm"])
    ap.add_argument("--anchor", default="text", choices=["text", "cooc"])
    ap.add_argument("--max-users", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = {
        d: measure(d, args.model, args.max_users, args.seed, args.encoder, args.anchor)
        for d in args.datasets
    }
    lines = [
        f"## Requests in words: personal ({args.model}) + request vs each alone, "
        f"{'MiniLM' if args.encoder == 'minilm' else 'the fine-tuned lm encoder'} (issue #25)",
        "",
        f"Command: `make bench-query` (`benchmarks/bench_query.py --datasets "
        f"{' '.join(args.datasets)} --model {args.model} --encoder {args.encoder} "
        f"--anchor {args.anchor} "
        f"--max-users {args.max_users} "
        f"--seed {args.seed}`). {PROTOCOL}",
        "",
        "Templates: " + "; ".join(f"{k}: `{v}`" for k, v in TEMPLATES.items()) + ".",
        "",
        "| dataset | template | test users | personal only | request only | personal + request "
        "| ÷ personal | ÷ request | p vs personal | p vs request |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d, r in results.items():
        for t, row in r["rows"].items():
            lines.append(
                f"| {d} | {t} | {row['n']} | {row['personal']:.4f} | {row['query']:.4f} | "
                f"**{row['both']:.4f}** | {row['both'] / max(row['personal'], 1e-9):.2f}× | "
                f"{row['both'] / max(row['query'], 1e-9):.2f}× | {row['p_vs_personal']:.1e} | "
                f"{row['p_vs_query']:.1e} |"
            )
    lines.append("")
    for d, r in results.items():
        wt, wp, wa = r["weights"]
        qt, qa = r["query_weights"]
        lines.append(
            f"- {d}: {r['users']} test users ({'all' if r['users'] < args.max_users else 'sampled'}"
            f", half for choosing weights); {args.model} tuned and fitted in {r['fit_s']:.0f} s"
            + (f", lm in {r['lm_s']:.0f} s" if r["lm_s"] else "")
            + "; "
            f"chosen on the validation half: {wt}, personal weight {wp}, popularity {wa} "
            f"(request only: {qt}, popularity {qa})."
        )
        best = r["valid_grid"].max(axis=(1, 2))
        lines.append(
            "  Best validation NDCG@10 per transform: "
            + ", ".join(f"{k} {v:.4f}" for k, v in zip(TRANSFORMS, best, strict=True))
            + "."
        )
    suffix = ("" if args.encoder == "minilm" else f"+{args.encoder}") + (
        "" if args.anchor == "text" else f"+{args.anchor}-anchor"
    )
    tag = f"<!-- bench_query:{args.model}{suffix}"
    begin, end = f"{tag}:begin -->", f"{tag}:end -->"
    write_section(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", begin, end, lines)


if __name__ == "__main__":
    main()
