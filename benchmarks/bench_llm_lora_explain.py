"""Explanations written by the LLM as it ships against the LLM LoRA-fine-tuned on behaviour:
``make bench-llm-lora-explain`` (issue #21 item 4, the second half).

The fine-tune (``llmrec.llm.lora``, the settings ``llm-rerank lora=on`` uses) learns a
user's next title from their profile; this measures what it does to the other thing the
LLM writes. Per served pipeline (``llmrec train`` of the dataset): the adapter is trained on
the dataset's ``loo`` training part (seed 0), then the top item of the same random users
(seed 11) is explained twice as the service does (its evidence, its checks, no time budget),
once per LLM: texts passing every check, the rules that rejected the others, and seconds per
explanation. Pairs of outcomes per user give McNemar's exact test on pass/fail.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from bench_llm import explanations  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.llm.lora import adapted_lm  # noqa: E402
from llmrec.ranking.llm_rerank import LLMRerank  # noqa: E402

BEGIN, END = "<!-- bench_llm_lora_explain:begin -->", "<!-- bench_llm_lora_explain:end -->"
OUT = ROOT / "reports" / "bench-llm-lora-explain.json"


def adapter(dataset: str, noun: str, examples: int) -> tuple[Any, dict[str, Any]]:
    """The fine-tuned LLM for ``dataset``, trained by ``llm-rerank lora=on`` itself on the
    dataset's ``loo`` training part (its base model is irrelevant here: popularity)."""
    s = get_settings()
    train = make_split(store.load(s.datasets_dir, dataset), "loo", seed=0).train
    config = {"base": "pop", "lora": "on", "noun": noun, "lora_examples": examples, "seed": 0}
    model = LLMRerank(**config).fit(train)
    c = model.config
    info = {"fine_tune_s": model.lora_seconds_, "loss": model.lora_loss_}
    return adapted_lm(model.lora_, c.lora_rank, c.lora_alpha), info


def measure(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    folder, noun, dataset = spec.split(":")
    model_dir = get_settings().models_dir / folder
    shipped = explanations(model_dir, args.pairs, noun)
    lm, info = adapter(dataset, noun, args.examples)
    tuned = explanations(model_dir, args.pairs, noun, llm=lm)
    print(f"{folder}: shipped {shipped['counts']}, fine-tuned {tuned['counts']}", flush=True)
    return {"folder": folder, "shipped": shipped, "fine_tuned": tuned, **info}


def _mcnemar(a: list[bool], b: list[bool]) -> float:
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    return 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b).pvalue


def section(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        "## Explanations by the fine-tuned LLM (issue #21 item 4)",
        "",
        f"Command: `make bench-llm-lora-explain` (`benchmarks/bench_llm_lora_explain.py "
        f"--models {' '.join(args.models)} --pairs {args.pairs} --examples {args.examples}`), "
        f"{platform.machine()}, 1 torch thread, SmolLM2-135M-Instruct on the transformers "
        "runtime. The LoRA adapter as `llm-rerank lora=on` trains it (rank 8 on the query and "
        "value projections, one epoch, lr 3e-4, batch 8) on the dataset's `loo` training part; "
        "then the top item of the same random users (seed 11) of the served pipeline is "
        "explained by each LLM as the service does (evidence, checks, no time budget; a text "
        "failing a check falls back to the template). p = McNemar's exact test on the paired "
        "pass/fail outcomes.",
        "",
        "| pipeline | LLM | texts passing every check | rules that rejected (a text can break "
        "several) | median s | p95 s | p |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        passed = {arm: [s == "llm" for s in r[arm]["sources"]] for arm in ("shipped", "fine_tuned")}
        p = _mcnemar(passed["shipped"], passed["fine_tuned"])
        for arm, label in (("shipped", "shipped"), ("fine_tuned", "fine-tuned")):
            x = r[arm]
            ok, n = sum(passed[arm]), x["n"]
            rules = ", ".join(f"{k} {v}" for k, v in Counter(x["rules"]).most_common()) or "none"
            secs = np.asarray(x["seconds"])
            lines.append(
                f"| {r['folder']} | {label} | **{ok} of {n}** ({ok / n:.0%}) | {rules} | "
                f"{np.median(secs):.2f} | {np.percentile(secs, 95):.2f} | "
                f"{'—' if arm == 'shipped' else f'{p:.2g}'} |"
            )
    lines += ["", "Fine-tuning: " + ", ".join(
        f"{r['folder']} {r['fine_tune_s']:.0f} s (mean loss {r['loss'][-1]:.2f})" for r in results
    ) + "."]  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--models",
        nargs="*",
        default=["ml-100k-ranker:movie:ml-100k", "ibm-articles-ranker:article:ibm-articles"],
        help="FOLDER:NOUN:DATASET (the served pipeline, its item noun, its dataset)",
    )
    ap.add_argument("--pairs", type=int, default=80)
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    results: list[dict[str, Any]] = json.loads(OUT.read_text()) if OUT.is_file() else []
    if not args.report_only:
        for spec in args.models:
            if any(r["folder"] == spec.split(":")[0] for r in results):
                continue
            results.append(measure(spec, args))
            OUT.parent.mkdir(exist_ok=True)
            OUT.write_text(json.dumps(results))
    lines = section(results, args)
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
