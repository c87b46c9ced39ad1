"""Issue #8: off-policy evaluation on the Open Bandit Dataset's logged random and BTS policies.

Run: make bench-ope   (or: .venv/bin/python benchmarks/bench_ope.py [--n-boot 2000])

Per campaign (all / men / women; 10,000 impressions per logging policy in the shipped sample):
1. BTS estimated from the random policy's logs vs BTS's own click rate (on-policy), for two
   readings of "the BTS policy": obp's BTS from the shipped prior (Monte Carlo), and BTS
   averaged over the logging period (the item x slot frequencies of the BTS log itself:
   the logged propensities vary over time, the policy was updated while logging).
2. The random policy estimated from BTS's logs vs random's own click rate.
3. Our policies, fitted on the first 70% of the random log and evaluated on the last 30% of
   it, against random's click rate on that same 30%: Bernoulli Thompson sampling from the
   Beta(1 + clicks, 1 + non-clicks) posterior of each item, and epsilon-greedy slates over a
   click model (logistic regression; C chosen on the last 20% of its training impressions).
DR's q̂ is cross-fitted (3 folds) on the log being evaluated for the logged policies and is
the 70% part's click model for ours; intervals: 95% bootstrap. "hits": rewarded impressions
the evaluated policy could have shown; with few, no interval is trustworthy.
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
from sklearn.metrics import log_loss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.eval.ope import Estimate, estimate, on_policy  # noqa: E402
from llmrec.online.logged import (  # noqa: E402
    CAMPAIGNS,
    SLOTS,
    BanditLog,
    ClickModel,
    bts_distribution,
    cross_fitted_rewards,
    greedy_distribution,
    obd_logs,
    uniform_distribution,
)
from llmrec.online.policies import EpsilonGreedySlate, bernoulli_ts_distribution  # noqa: E402

BEGIN, END = "<!-- bench_ope:begin -->", "<!-- bench_ope:end -->"


def tuned_click_model(train: BanditLog) -> tuple[ClickModel, float]:
    fit, valid = train.split_by_time(0.8)
    best = None
    for c in (0.01, 0.1, 1.0, 10.0):
        m = ClickModel(train.n_actions, c).fit(fit)
        p = m.predict_all(valid)[
            np.arange(len(valid)), valid.feedback.action, valid.feedback.position
        ]
        loss = log_loss(valid.feedback.reward, p, labels=[0, 1])
        if best is None or loss < best[0]:
            best = (loss, c)
    assert best is not None
    return ClickModel(train.n_actions, best[1]).fit(train), best[1]


def frequencies(log: BanditLog) -> np.ndarray:
    """(actions x slots): how often each item was shown at each slot."""
    fb = log.feedback
    f = np.zeros((log.n_actions, SLOTS))
    np.add.at(f, (fb.action, fb.position), 1.0)
    return f / f.sum(axis=0, keepdims=True)


def tile(dist: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(dist, (n, *dist.shape)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--share", type=float, default=0.1, help="our policy's exploration share")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = store.load(get_settings().datasets_dir, "obd")
    logs = obd_logs(ds)
    rows: list[dict] = []
    agreement: dict[str, float] = {}  # logged BTS propensities vs the prior's, per campaign

    def add(
        campaign: str, what: str, logs_of: str, truth: Estimate, est: dict[str, Estimate]
    ) -> None:
        rows.append(
            {
                "campaign": campaign,
                "policy": what,
                "logs": logs_of,
                "on_policy": truth.as_dict(),
                "estimates": {k: e.as_dict() for k, e in est.items()},
            }
        )

    for c in CAMPAIGNS:
        rand, bts = logs["random", c], logs["bts", c]
        v_rand, v_bts = on_policy(rand.feedback), on_policy(bts.feedback)
        q_rand = cross_fitted_rewards(rand)
        q_bts = cross_fitted_rewards(bts)
        kw = {"n_boot": args.n_boot}
        prior_dist = bts_distribution(ds, c)
        fb = bts.feedback
        agreement[c] = float(np.corrcoef(prior_dist[fb.action, fb.position], fb.pscore)[0, 1])
        prior = tile(prior_dist, len(rand))
        add(c, "BTS (shipped prior)", "random", v_bts, estimate(rand.feedback, prior, q_rand, **kw))
        averaged = tile(frequencies(bts), len(rand))
        add(
            c,
            "BTS (averaged over the log)",
            "random",
            v_bts,
            estimate(rand.feedback, averaged, q_rand, **kw),
        )
        uniform = uniform_distribution(len(bts), bts.n_actions)
        add(c, "random", "bts", v_rand, estimate(bts.feedback, uniform, q_bts, **kw))
        # our policies: trained on the first 70% of the random log, evaluated on the rest
        train, test = rand.split_by_time(0.7)
        model, chosen_c = tuned_click_model(train)
        q_test = model.predict_all(test)
        v_test = on_policy(test.feedback, n_boot=args.n_boot)
        clicks = np.bincount(train.feedback.action, train.feedback.reward, train.n_actions)
        shown = np.bincount(train.feedback.action, minlength=train.n_actions)
        ts = tile(bernoulli_ts_distribution(1 + clicks, 1 + shown - clicks, SLOTS), len(test))
        add(
            c,
            "ours: Thompson sampling",
            "random (last 30%)",
            v_test,
            estimate(test.feedback, ts, q_test, **kw),
        )
        for share in (0.0, args.share):
            pol = EpsilonGreedySlate(share, pool=test.n_actions)
            dist = greedy_distribution(q_test[:, :, 0], pol)
            name = f"ours: click model, explore {share:g} (C={chosen_c:g})"
            add(c, name, "random (last 30%)", v_test, estimate(test.feedback, dist, q_test, **kw))
        print(f"{c}: done ({time.perf_counter() - t0:.0f} s)", flush=True)

    out = ROOT / "reports"
    out.mkdir(exist_ok=True)
    (out / "ope-obd.json").write_text(json.dumps(rows, indent=2))
    plot(rows, ROOT / "benchmarks" / "ope-obd.png")
    lines = table(rows, args, time.perf_counter() - t0)
    lines.insert(
        -2,
        "Correlation of the BTS log's propensities with those of BTS from the shipped "
        "prior: "
        + ", ".join(f"{c} {v:.2f}" for c, v in agreement.items())
        + " (the logged policy was updated while logging).",
    )
    lines.insert(-2, "")
    print("\n".join(lines))
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


def fmt(e: dict) -> str:
    return f"{1000 * e['value']:.2f} [{1000 * e['low']:.2f}, {1000 * e['high']:.2f}]"


def table(rows: list[dict], args: argparse.Namespace, seconds: float) -> list[str]:
    lines = [
        "## Off-policy evaluation on the Open Bandit Dataset (issue #8)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_ope.py --n-boot {args.n_boot} --share "
        f"{args.share}` ({seconds:.0f} s on {platform.machine()}, 2 cores). Clicks per 1000 "
        "impressions, 95% bootstrap intervals; the obp 0.4.1 sample: 10,000 impressions per "
        "logging policy and campaign, 3 slots. ✓: the interval holds the on-policy value.",
        "",
        "| campaign | policy evaluated | from logs of | on-policy | IPS | SNIPS | DR | hits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        truth = r["on_policy"]
        cells = []
        for k in ("ips", "snips", "dr"):
            e = r["estimates"][k]
            ok = " ✓" if e["low"] <= truth["value"] <= e["high"] else ""
            cells.append(fmt(e) + ok)
        hits = r["estimates"]["ips"]["hits"]
        lines.append(
            f"| {r['campaign']} | {r['policy']} | {r['logs']} | {fmt(truth)} | "
            + " | ".join(cells)
            + f" | {hits} |"
        )
    lines += ["", "![OPE on OBD](benchmarks/ope-obd.png)"]
    return lines


def plot(rows: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, len(CAMPAIGNS), figsize=(15, 5), sharey=False)
    for ax, c in zip(axes, CAMPAIGNS, strict=True):
        mine = [r for r in rows if r["campaign"] == c]
        for i, r in enumerate(mine):
            for j, k in enumerate(("ips", "snips", "dr")):
                e = r["estimates"][k]
                y = i + (j - 1) * 0.2
                ax.errorbar(
                    1000 * e["value"],
                    y,
                    xerr=[[1000 * (e["value"] - e["low"])], [1000 * (e["high"] - e["value"])]],
                    fmt="o",
                    capsize=3,
                    color=f"C{j}",
                    label=k.upper() if i == 0 else None,
                )
            ax.plot(
                [1000 * r["on_policy"]["value"]] * 2,
                [i - 0.4, i + 0.4],
                "k-",
                lw=2,
                label="on-policy" if i == 0 else None,
            )
        ax.set_yticks(
            range(len(mine)), [f"{r['policy']}\n(logs: {r['logs']})" for r in mine], fontsize=7
        )
        ax.set_title(f"campaign: {c}")
        ax.set_xlabel("clicks per 1000 impressions")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
