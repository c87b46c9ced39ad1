"""A/B comparison of served model versions from the impressions the service logged.

Reward as for off-policy evaluation (``feedback.rewards``): a shown item counts as clicked
when the user acted on it (any event but ``view`` and ``dislike``) within ``horizon``
seconds. The unit of randomisation is the user (the service splits by a hash of the user
id), so intervals come from a bootstrap over users and the p-value from permuting users
between the two arms: a user's impressions are not independent of each other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.errors import DataError
from llmrec.online.feedback import rewards

CELLS = 2_000_000  # draws x users computed at once (bootstrap, permutations)


@dataclass(frozen=True)
class Arm:
    version: str
    users: int
    lists: int
    shown: int
    clicks: int
    ctr: float  # clicks per shown item
    low: float  # 95% bootstrap interval of ctr
    high: float
    lift: float | None = None  # ctr / the control's ctr - 1 (None: the control)
    diff_low: float | None = None  # 95% interval of ctr - control's ctr
    diff_high: float | None = None
    p_value: float | None = None  # two-sided permutation test against the control


def compare(
    impressions: pd.DataFrame,
    events: pd.DataFrame,
    horizon: int = 3600,
    control: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[Arm]:
    """One ``Arm`` per logged model version, the control first (default: the version with
    the most shown items, the first by name on a tie); each other arm against it."""
    if impressions.empty:
        raise DataError("no impressions logged: start an A/B split (PUT /v1/admin/ab) first")
    clicked = rewards(impressions, events, horizon)
    units = (
        pd.DataFrame(
            {
                "version": impressions["model_version"].to_numpy(),
                C.USER_ID: impressions[C.USER_ID].to_numpy(),
                "list": impressions["impression_id"].to_numpy(),
                "clicked": clicked,
            }
        )
        .groupby(["version", C.USER_ID], sort=True)
        .agg(shown=("clicked", "size"), clicks=("clicked", "sum"), lists=("list", "nunique"))
        .reset_index()
    )
    by_version = {v: g for v, g in units.groupby("version", sort=True)}
    if control is None:
        control = min(by_version, key=lambda v: (-by_version[v]["shown"].sum(), v))
    elif control not in by_version:
        have = ", ".join(by_version)
        raise DataError(f"--control {control!r}: no impressions of that version (have: {have})")
    rng = np.random.default_rng(seed)
    base = by_version[control]
    base_boot = _boot(base, n_boot, rng)
    out = [_arm(control, base, base_boot)]
    for version, g in by_version.items():
        if version == control:
            continue
        boot = _boot(g, n_boot, rng)
        arm = _arm(version, g, boot)
        diff = boot - base_boot
        base_ctr = out[0].ctr
        out.append(
            replace(
                arm,
                lift=arm.ctr / base_ctr - 1.0 if base_ctr > 0 else None,
                diff_low=float(np.quantile(diff, 0.025)),
                diff_high=float(np.quantile(diff, 0.975)),
                p_value=_permutation_p(base, g, n_boot, rng),
            )
        )
    return out


def _arm(version: str, g: pd.DataFrame, boot: np.ndarray) -> Arm:
    shown, clicks = int(g["shown"].sum()), int(g["clicks"].sum())
    return Arm(
        version=str(version),
        users=len(g),
        lists=int(g["lists"].sum()),
        shown=shown,
        clicks=clicks,
        ctr=clicks / shown,
        low=float(np.quantile(boot, 0.025)),
        high=float(np.quantile(boot, 0.975)),
    )


def _boot(g: pd.DataFrame, n: int, rng: np.random.Generator) -> np.ndarray:
    """Clicks per shown item of ``n`` resamples of the arm's users."""
    shown, clicks = g["shown"].to_numpy(float), g["clicks"].to_numpy(float)
    out, chunk = [], max(1, CELLS // len(g))
    for start in range(0, n, chunk):
        pick = rng.integers(0, len(g), size=(min(chunk, n - start), len(g)))
        out.append(clicks[pick].sum(1) / shown[pick].sum(1))
    return np.concatenate(out)


def _permutation_p(a: pd.DataFrame, b: pd.DataFrame, n: int, rng: np.random.Generator) -> float:
    """Two-sided: how often randomly re-assigning the users to the arms (sizes kept) gives a
    difference in clicks per shown item at least as large as the observed one."""
    shown = np.concatenate([a["shown"].to_numpy(float), b["shown"].to_numpy(float)])
    clicks = np.concatenate([a["clicks"].to_numpy(float), b["clicks"].to_numpy(float)])
    n_a = len(a)

    def diff(in_a: np.ndarray) -> np.ndarray:  # rows of booleans: user -> arm a
        ctr_a = (clicks * in_a).sum(-1) / (shown * in_a).sum(-1)
        ctr_b = (clicks * ~in_a).sum(-1) / (shown * ~in_a).sum(-1)
        return ctr_b - ctr_a

    observed = abs(float(diff(np.arange(len(shown)) < n_a)))
    hits, chunk = 0, max(1, CELLS // len(shown))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        order = rng.random((m, len(shown))).argsort(1)
        hits += int((np.abs(diff(order < n_a)) >= observed - 1e-12).sum())
    return (hits + 1) / (n + 1)
