"""Beyond accuracy: who a model serves worse, which items it exposes, how calibrated its lists are.

- **Groups**: any per-user metric by user group (an attribute such as gender; age in the usual
  bands; any other numeric attribute and activity in terciles), with the gap between the best
  and worst group, a bootstrap interval for it and a permutation p-value.
- **Exposure**: the share of position-discounted exposure (1/log2(rank+1)) that head, torso and
  tail items get, against their share of the test targets. Head/torso/tail: the most popular
  items holding the first third of training interactions, the next third, the rest.
- **Miscalibration** (Steck, RecSys 2018): KL(p || q~) between the genre distribution p of a
  user's history and q of their list, q~ = (1 - a) q + a p with a = 0.01; mean over users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.ranking.rerank import CALIBRATION_ALPHA, genre_distribution, item_groups

AGE_BANDS = (18, 25, 35, 45, 55)  # <18, 18-24, 25-34, 35-44, 45-54, 55+
ITEM_GROUPS = ("head", "torso", "tail")  # ranking.rerank.item_groups' 0, 1, 2


@dataclass(frozen=True)
class GroupGap:
    attribute: str
    groups: dict[str, tuple[int, float]]  # label -> (users, mean)
    gap: float  # best group's mean minus the worst's
    low: float  # bootstrap 95% interval of the gap
    high: float
    p: float  # permutation p-value: no difference between groups


def age_band(age: float) -> str:
    if not np.isfinite(age):
        return "unknown"
    cuts = np.searchsorted(AGE_BANDS, age, side="right")
    labels = ("<18", "18-24", "25-34", "35-44", "45-54", "55+")
    return labels[int(cuts)]


def terciles(values: np.ndarray, name: str) -> np.ndarray:
    """'low', 'mid', 'high' by the value's tercile (ties kept together)."""
    lo, hi = np.quantile(values, [1 / 3, 2 / 3])
    out = np.where(values <= lo, "low", np.where(values <= hi, "mid", "high"))
    return np.array([f"{name} {x}" for x in out], dtype=object)


def user_groups(
    attribute: str, user_ids: np.ndarray, user_table: pd.DataFrame | None, activity: np.ndarray
) -> np.ndarray:
    """One label per user: ``activity`` (training events) in terciles, ``age`` in bands, other
    numeric attributes in terciles, the rest as they are ('unknown' where missing)."""
    if attribute == "activity":
        return terciles(activity.astype(float), "activity")
    if user_table is None or attribute not in user_table:
        have = [] if user_table is None else [c for c in user_table.columns if c != "user_id"]
        raise KeyError(f"no user attribute {attribute!r} (have: {', '.join(have) or 'none'})")
    values = user_table.set_index(user_table["user_id"].astype(str))[attribute]
    col = values.reindex(pd.Index(user_ids).astype(str))
    num = pd.to_numeric(col, errors="coerce")
    if attribute == "age":
        return np.array([age_band(v) for v in num.to_numpy(dtype=float)], dtype=object)
    if num.notna().mean() > 0.9 and num.nunique() > 6:
        return terciles(num.fillna(num.median()).to_numpy(), attribute)
    return col.fillna("unknown").astype(str).replace("", "unknown").to_numpy(dtype=object)


_ORDER = ["<18", "18-24", "25-34", "35-44", "45-54", "55+", "low", "mid", "high", "unknown"]


def _order(label: str) -> tuple[int, str]:
    last = label.rsplit(" ", 1)[-1]
    return (_ORDER.index(last) if last in _ORDER else len(_ORDER) - 1, label)


def group_gap(
    values: np.ndarray,
    labels: np.ndarray,
    attribute: str,
    n_boot: int = 1000,
    n_perm: int = 1000,
    seed: int = 0,
    min_users: int = 20,
) -> GroupGap:
    """Per-group means of a per-user metric and the best-minus-worst gap over groups with at
    least ``min_users`` users; the interval resamples users within each group, the p-value
    shuffles the labels."""
    values = np.asarray(values, dtype=float)
    names, codes = np.unique(labels.astype(str), return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    keep = sizes >= min_users
    groups = {str(n): (int(s), float(values[codes == g].mean())) for g, (n, s) in
              enumerate(zip(names, sizes, strict=True)) if keep[g]}  # fmt: skip
    groups = dict(sorted(groups.items(), key=lambda kv: _order(kv[0])))
    kept = np.flatnonzero(keep)
    if len(kept) < 2:
        return GroupGap(attribute, groups, 0.0, 0.0, 0.0, 1.0)

    def means(v: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.bincount(c, weights=v, minlength=len(names)) / np.maximum(
            np.bincount(c, minlength=len(names)), 1
        )

    def spread(v: np.ndarray, c: np.ndarray) -> float:
        m = means(v, c)[kept]
        return float(m.max() - m.min())

    rng = np.random.default_rng(seed)
    observed_means = means(values, codes)
    best = kept[np.argmax(observed_means[kept])]
    worst = kept[np.argmin(observed_means[kept])]
    observed = float(observed_means[best] - observed_means[worst])
    # the interval is for the difference between the groups found best and worst (a max-min
    # over resamples would be biased upward); the test is for any difference at all
    boots = np.empty(n_boot)
    pair = [np.flatnonzero(codes == best), np.flatnonzero(codes == worst)]
    for b in range(n_boot):
        boots[b] = (
            values[rng.choice(pair[0], len(pair[0]))].mean()
            - values[rng.choice(pair[1], len(pair[1]))].mean()
        )
    mask = np.isin(codes, kept)
    v, c = values[mask], codes[mask]
    perms = np.array([spread(v, rng.permutation(c)) for _ in range(n_perm)])
    p = (1 + int((perms >= observed - 1e-12).sum())) / (1 + n_perm)
    low, high = np.quantile(boots, [0.025, 0.975])
    return GroupGap(attribute, groups, observed, float(low), float(high), p)


def exposure(topk: np.ndarray, k: int, groups: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Position-discounted exposure share of each item group in the top-``k`` lists
    (``topk``: item positions, -1 padded) and each group's share of the test targets."""
    lists = topk[:, :k]  # fewer than k columns when the stage has fewer candidates
    weight = 1.0 / np.log2(np.arange(2, lists.shape[1] + 2))
    w = np.broadcast_to(weight, lists.shape)[lists >= 0]
    g = groups[lists[lists >= 0]]
    total = w.sum()
    t = targets[targets >= 0]
    out: dict[str, float] = {}
    for j, name in enumerate(ITEM_GROUPS):
        out[f"exposure@{k} {name}"] = float(w[g == j].sum() / total) if total else 0.0
        out[f"relevance {name}"] = float((groups[t] == j).mean()) if len(t) else 0.0
    return out


def miscalibration(
    history: sp.csr_matrix, topk: np.ndarray, k: int, vectors: np.ndarray
) -> np.ndarray:
    """Per user, KL(p || q~) of history ``p`` against the top-``k`` list's ``q``; users
    without genred history get NaN."""
    n = len(topk)
    lists = topk[:, :k]
    rows, cols = np.nonzero(lists >= 0)
    listed = sp.csr_matrix(
        (np.ones(len(rows)), (rows, lists[rows, cols])), shape=(n, vectors.shape[0])
    )
    p = genre_distribution((history > 0).astype(np.float64).tocsr(), vectors)
    q = genre_distribution(listed, vectors)
    q = (1 - CALIBRATION_ALPHA) * q + CALIBRATION_ALPHA * p
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    out = terms.sum(axis=1)
    out[p.sum(axis=1) == 0] = np.nan
    return out


def beyond_accuracy(
    topk: np.ndarray,
    candidates: np.ndarray | None,
    targets: np.ndarray,
    history: sp.csr_matrix,
    popularity: np.ndarray,
    vectors: np.ndarray | None,
    k: int = 10,
) -> dict[str, float]:
    """Exposure shares by item group and mean miscalibration at ``k`` (without genres, none)
    for one stage's lists (``topk`` in candidate positions)."""
    items = topk if candidates is None else np.where(topk >= 0, candidates[topk], -1)
    goal = targets if candidates is None else np.where(targets >= 0, candidates[targets], -1)
    out = exposure(items, k, item_groups(popularity), goal)
    if vectors is not None:
        out[f"miscalibration@{k}"] = float(np.nanmean(miscalibration(history, items, k, vectors)))
    return out
