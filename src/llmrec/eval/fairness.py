"""Beyond accuracy: who a model serves worse, which items it exposes, how calibrated its lists are.

- **Groups**: any per-user metric by user group (an attribute such as gender; age in the usual
  bands; any other numeric attribute and activity in terciles), with the gap between the best
  and worst group, a bootstrap interval for it and a permutation p-value.
- **Exposure**: the share of position-discounted exposure (1/log2(rank+1)) that head, torso and
  tail items get, against their share of the test targets. Head/torso/tail: the most popular
  items holding the first third of training interactions, the next third, the rest.
- **Expected exposure** (Diaz et al., CIKM 2020), item groups as the units and users as the
  draws of the ranking policy (as Raj & Ekstrand, 2022, apply it to recommendation): the
  system's exposure of each group (geometric browsing, patience 0.5), averaged over users,
  against the ideal where each user's relevant items share the top positions and every other
  item an equal part of the rest (equal exposure for equal relevance). EE-L is the
  squared distance (lower is better), EE-D the disparity (squared norm of the system's
  exposure, lower is more equal), EE-R the relevance term (higher is better);
  EE-L = EE-D - EE-R + |ideal|^2.
- **AWRF** (Sapiezynski et al., WWW 2019): per list, the Jensen-Shannon divergence (base 2)
  between the attention each item group gets (same geometric weights) and the groups' share
  of the test targets; mean over users, 0 when every list gives each group its share.
- **Miscalibration** (Steck, RecSys 2018): KL(p || q~) between the genre distribution p of a
  user's history and q of their list, q~ = (1 - a) q + a p with a = 0.01; mean over users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.rerank import CALIBRATION_ALPHA, genre_distribution, item_groups

AGE_BANDS = (18, 25, 35, 45, 55)  # <18, 18-24, 25-34, 35-44, 45-54, 55+
ITEM_GROUPS = ("head", "torso", "tail")  # rerank.item_groups' 0, 1, 2
PATIENCE = 0.5  # geometric browsing model of expected exposure and AWRF (Diaz et al.)


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


def group_order(label: str) -> tuple[int, str]:
    """Age bands young to old, terciles low to high, 'unknown' last, the rest by name."""
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
    groups = dict(sorted(groups.items(), key=lambda kv: group_order(kv[0])))
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


def _group_attention(lists: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per list, the geometric attention (``PATIENCE`` ** position) each item group gets."""
    weight = PATIENCE ** np.arange(lists.shape[1], dtype=float)
    w = np.where(lists >= 0, weight, 0.0)
    g = groups[np.maximum(lists, 0)]
    out = np.zeros((len(lists), n_groups))
    np.add.at(out, (np.repeat(np.arange(len(lists)), lists.shape[1]), g.ravel()), w.ravel())
    return out


def expected_exposure(
    topk: np.ndarray,
    k: int,
    groups: np.ndarray,
    targets: np.ndarray,
    pool: np.ndarray | None = None,
) -> dict[str, float]:
    """Group-level EE-L, EE-D and EE-R at ``k`` over the users with a target (``topk``:
    item positions, -1 padded; ``targets``: one per user or -1-padded rows; ``pool``: the
    rankable items, default every item of ``groups``).

    The ideal policy shows a user's m relevant items first, sharing the exposure of the top m
    positions equally, and the other rankable items in random order after them, sharing the
    rest of the top ``k`` equally (Diaz et al.'s target for binary relevance); items the user
    has seen count as rankable (a small overstatement of the pool).
    """
    lists = topk[:, :k]
    goal = targets.reshape(len(targets), -1)
    has = (goal >= 0).any(axis=1)
    lists, goal = lists[has], goal[has]
    n_groups = len(ITEM_GROUPS)
    in_pool = np.bincount(groups if pool is None else groups[pool], minlength=n_groups)
    system = _group_attention(lists, groups, n_groups).mean(axis=0) if len(lists) else 0.0
    # before[j]: the exposure of the top j positions
    before = np.concatenate([[0.0], np.cumsum(PATIENCE ** np.arange(k, dtype=float))])
    m = (goal >= 0).sum(axis=1)
    rel = np.zeros((len(goal), n_groups))
    rows, cols = np.nonzero(goal >= 0)
    np.add.at(rel, (rows, groups[goal[rows, cols]]), 1.0)
    top = np.minimum(m, k)
    others = in_pool[None, :] - rel
    n_others = others.sum(axis=1)
    rest = np.where(n_others > 0, (before[k] - before[top]) / np.maximum(n_others, 1), 0.0)
    per_user = rel * (before[top] / np.maximum(m, 1))[:, None] + others * rest[:, None]
    ideal = per_user.mean(axis=0) if len(goal) else np.zeros(n_groups)
    diff = system - ideal
    return {
        f"EE-L@{k}": float(diff @ diff),
        f"EE-D@{k}": float(np.dot(system, system)),
        f"EE-R@{k}": float(2 * np.dot(system, ideal)),
    }


def awrf(topk: np.ndarray, k: int, groups: np.ndarray, target_share: np.ndarray) -> float:
    """Mean over non-empty lists of JSD(attention share of each group || ``target_share``)."""
    attention = _group_attention(topk[:, :k], groups, len(target_share))
    total = attention.sum(axis=1)
    share = attention[total > 0] / total[total > 0, None]
    if not len(share):
        return 0.0
    t = np.broadcast_to(target_share / target_share.sum(), share.shape)
    mid = (share + t) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / mid), 0.0).sum(axis=1)

    return float(((kl(share) + kl(t)) / 2).mean())


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
    """Exposure shares by item group, expected exposure, AWRF and mean miscalibration at ``k``
    (without genres, no miscalibration) for one stage's lists (``topk`` in candidate positions)."""
    items = topk if candidates is None else np.where(topk >= 0, candidates[topk], -1)
    goal = targets if candidates is None else np.where(targets >= 0, candidates[targets], -1)
    groups = item_groups(popularity)
    out = exposure(items, k, groups, goal)
    out.update(expected_exposure(items, k, groups, goal, candidates))
    share = np.array([out[f"relevance {g}"] for g in ITEM_GROUPS])
    if share.sum() > 0:
        out[f"AWRF@{k}"] = awrf(items, k, groups, share)
    if vectors is not None:
        out[f"miscalibration@{k}"] = float(np.nanmean(miscalibration(history, items, k, vectors)))
    return out
