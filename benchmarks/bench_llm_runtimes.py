"""The two runtimes of the bundled instruct LLM side by side, in one process (issue #5).

    .venv/bin/python benchmarks/bench_llm_runtimes.py [--repeats 7]

Per runtime: load time, verbalizer scoring of 20 candidate titles after a ~200-token profile
prompt, and generation of up to 40 tokens; medians. llama-cpp is measured only when
`llama-cpp-python` is installed (it compiles for 12+ minutes). Writes the "LLM runtimes"
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _sections import write_section  # noqa: E402
from llmrec.llm import LLMConfig, chat_prompt, load_llm  # noqa: E402
from llmrec.llm.prompts import rerank_prompt  # noqa: E402

BEGIN, END = "<!-- bench_llm_runtimes:begin -->", "<!-- bench_llm_runtimes:end -->"
HISTORY = [
    "Star Wars (1977) (rated 5/5)", "Return of the Jedi (1983) (rated 5/5)",
    "Alien (1979) (rated 4/5)", "Blade Runner (1982) (rated 5/5)",
    "The Terminator (1984) (rated 4/5)", "Aliens (1986) (rated 5/5)",
    "The Empire Strikes Back (1980) (rated 5/5)", "Contact (1997) (rated 3/5)",
    "Fargo (1996) (rated 4/5)", "Twelve Monkeys (1995) (rated 4/5)",
]  # fmt: skip
CANDIDATES = [
    "Star Trek: The Wrath of Khan (1982)", "Titanic (1997)", "Sense and Sensibility (1995)",
    "Jurassic Park (1993)", "Terminator 2: Judgment Day (1991)", "Babe (1995)",
    "Mission: Impossible (1996)", "The English Patient (1996)", "Independence Day (ID4) (1996)",
    "Scream (1996)", "The Rock (1996)", "Toy Story (1995)", "Braveheart (1995)",
    "Twister (1996)", "Men in Black (1997)", "Contact (1997)", "Liar Liar (1997)",
    "The Full Monty (1997)", "Air Force One (1997)", "Evita (1996)",
]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    profile = "A 24-year-old man technician. Recently, newest first: " + "; ".join(HISTORY) + "."
    prompt = rerank_prompt(profile, "movie")
    ask = chat_prompt("Answer in one sentence.", f"{profile} Which movie should they watch?")
    runtimes = ["transformers"]
    if importlib.util.find_spec("llama_cpp") is not None:
        runtimes.append("llama-cpp")
    rows, scores = [], {}
    for rt in runtimes:
        t0 = time.perf_counter()
        lm = load_llm(LLMConfig(runtime=rt, threads=1))  # type: ignore[arg-type]
        load = time.perf_counter() - t0
        lm.score_candidates(prompt, CANDIDATES[:2])  # warm-up
        s, g = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            scores[rt] = lm.score_candidates(prompt, CANDIDATES)
            s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            lm.generate(ask, 40)
            g.append(time.perf_counter() - t0)
        rows.append(f"| {rt} | {load:.2f} s | {np.median(s):.2f} s | {np.median(g):.2f} s |")
        print(rows[-1], flush=True)
    agree = ""
    if len(scores) == 2:
        a, b = scores["transformers"], scores["llama-cpp"]
        agree = (
            f"\nThe two runtimes' candidate scores correlate at {np.corrcoef(a, b)[0, 1]:.3f} "
            f"(largest difference {np.abs(a - b).max():.2f} nats: Q4_1 kernels vs the "
            "dequantised weights).\n"
        )
    else:
        agree = "\nllama-cpp-python was not installed for this run.\n"
    lines = [
        "## LLM runtimes (issue #5)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_llm_runtimes.py --repeats {args.repeats}` "
        f"({platform.machine()}, 2 cores, 1 thread, SmolLM2-135M-Instruct, "
        f"{time.strftime('%Y-%m-%d')}); medians of {args.repeats}; the transformers load reads "
        "the converted safetensors (the one-time conversion is not in it).",
        "",
        "| runtime | load | score 20 candidates (~200-token prompt) | generate ≤ 40 tokens |",
        "|---|---|---|---|",
        *rows,
        agree,
    ]
    write_section(Path(__file__).resolve().parent.parent / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
