from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from llmrec.eval.metrics import accuracy, catalogue, gini, rank


def test_rank_by_score_then_lower_index() -> None:
    scores = np.array([[0.5, 0.9, 0.5, 0.1]])
    r = rank(scores, np.array([[2]]), None, kmax=4)
    assert r.topk.tolist() == [[1, 0, 2, 3]]  # item 0 beats item 2 on the tie
    assert r.target_ranks.tolist() == [[3]]


def test_tie_with_target_counts_lower_ids_only() -> None:
    scores = np.array([[1.0, 1.0, 1.0, 1.0]])
    assert rank(scores, np.array([[0]]), None, 4).target_ranks[0, 0] == 1
    assert rank(scores, np.array([[3]]), None, 4).target_ranks[0, 0] == 4


def test_excluded_items_never_listed_and_target_never_excluded() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6]])
    exclude = sp.csr_matrix(np.array([[True, False, True, True]]))
    r = rank(scores, np.array([[3]]), exclude, kmax=4)
    assert r.topk.tolist() == [[1, 3, -1, -1]]
    assert r.target_ranks[0, 0] == 2


def test_nan_scores_rank_last() -> None:
    scores = np.array([[np.nan, 0.1, 0.2]])
    r = rank(scores, np.array([[0]]), None, 3)
    assert r.topk.tolist() == [[2, 1, 0]] and r.target_ranks[0, 0] == 3


def test_one_candidate() -> None:
    r = rank(np.array([[0.3]]), np.array([[0]]), None, kmax=10)
    acc = accuracy(r, 10)
    assert acc["recall@10"][0] == 1 and acc["ndcg@10"][0] == 1 and acc["mrr@10"][0] == 1
    assert r.topk.shape == (1, 1)


def test_single_target_metrics_by_hand() -> None:
    # target at rank 3: recall 1, ndcg 1/log2(4) = 0.5, mrr 1/3; rank 12 is past k=10
    scores = np.array([np.linspace(1, 0, 20), np.linspace(1, 0, 20)])
    r = rank(scores, np.array([[2], [11]]), None, 20)
    acc = accuracy(r, 10)
    np.testing.assert_allclose(acc["recall@10"], [1, 0])
    np.testing.assert_allclose(acc["ndcg@10"], [0.5, 0])
    np.testing.assert_allclose(acc["mrr@10"], [1 / 3, 0])


def test_multi_target_metrics_by_hand() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    r = rank(scores, np.array([[1, 3, -1]]), None, 5)  # targets at ranks 2 and 4
    acc = accuracy(r, 3)
    assert acc["recall@3"][0] == pytest.approx(0.5)
    idcg = 1 + 1 / math.log2(3)
    assert acc["ndcg@3"][0] == pytest.approx((1 / math.log2(3)) / idcg)
    assert acc["mrr@3"][0] == pytest.approx(0.5)


def test_gini_by_hand() -> None:
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (n-1)/n for one item
    assert gini(np.array([0, 0])) == 0.0


def test_catalogue_by_hand() -> None:
    topk = np.array([[0, 1], [0, 2]])
    pop = np.array([4.0, 2.0, 0.0, 1.0])  # item 2 never seen in training: clipped to 1
    vectors = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    out = catalogue(topk, 2, pop, n_train_users=4, item_vectors=vectors)
    assert out["coverage@2"] == pytest.approx(3 / 4)
    expected_novelty = np.mean([-np.log2(4 / 4), -np.log2(2 / 4), -np.log2(4 / 4), -np.log2(1 / 4)])
    assert out["novelty@2"] == pytest.approx(expected_novelty)
    assert out["arp@2"] == pytest.approx((4 + 2 + 4 + 0) / 4)
    assert out["diversity@2"] == pytest.approx(0.5)  # identical pair: 0, orthogonal pair: 1
    assert out["gini@2"] == pytest.approx(gini(np.array([2, 1, 1, 0])))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 12)),
        elements=st.floats(-3, 3) | st.just(np.nan),
    ),
    st.data(),
)
def test_rank_invariants(scores: np.ndarray, data: st.DataObject) -> None:
    n, c = scores.shape
    targets = np.array([[data.draw(st.integers(0, c - 1))] for _ in range(n)])
    r = rank(scores, targets, None, kmax=c)
    for row, order in zip(scores, r.topk, strict=True):
        assert sorted(order.tolist()) == list(range(c))  # a permutation
        s = np.where(np.isnan(row), -np.inf, row)[order]
        assert np.all(s[:-1] >= s[1:])  # best first
    # the target's rank is its position in the list
    pos = [int(np.flatnonzero(r.topk[i] == targets[i, 0])[0]) + 1 for i in range(n)]
    assert r.target_ranks[:, 0].tolist() == pos
    for k in (1, 5, 10):
        acc = accuracy(r, k)
        assert np.all((acc[f"ndcg@{k}"] >= 0) & (acc[f"ndcg@{k}"] <= 1))
        assert np.all(acc[f"mrr@{k}"] <= acc[f"recall@{k}"])


def test_tie_order_breaks_ties_and_maps_back() -> None:
    scores = np.array([[1.0, 1.0, 1.0, 2.0]])
    tie = np.array([2, 0, 3, 1])  # among ties: position 2 first, then 0, then 1
    r = rank(scores, np.array([[1]]), None, 4, tie_order=tie)
    assert r.topk.tolist() == [[3, 2, 0, 1]]
    assert r.target_ranks[0, 0] == 4
    exclude = sp.csr_matrix(np.array([[False, False, True, False]]))
    r = rank(scores, np.array([[0]]), exclude, 4, tie_order=tie)
    assert r.topk.tolist() == [[3, 0, 1, -1]] and r.target_ranks[0, 0] == 2


def _sorted_reference(scores: np.ndarray, targets: np.ndarray, exclude: np.ndarray, k: int):
    """The definition: one stable sort per user (descending score, ties to the lower position,
    NaN scores after real ones, excluded items after everything, the target never excluded)."""
    topk, ranks = [], []
    for row, tgt, ex in zip(scores, targets, exclude, strict=True):
        ex = ex.copy()
        ex[tgt[tgt >= 0]] = False
        key = [(bool(ex[j]), np.isnan(row[j]) or row[j] == -np.inf, -row[j], j)
               for j in range(len(row))]  # fmt: skip
        order = [j for *_, j in sorted(key, key=lambda x: (x[0], x[1], 0 if x[1] else x[2]))]
        topk.append([j if not ex[j] else -1 for j in order[:k]])
        ranks.append([order.index(t) + 1 if t >= 0 else 0 for t in tgt])
    return np.array(topk), np.array(ranks)


def test_rank_equals_a_full_stable_sort_with_ties_nan_inf_and_exclusions() -> None:
    """rank() finds the top-k by partition and the target's rank by counting (no sort of the
    catalogue): on ties, NaN, ±inf and exclusions it must give what a full sort gives."""
    rng = np.random.default_rng(0)
    for case in range(400):
        n, c, k = int(rng.integers(1, 12)), int(rng.integers(1, 40)), int(rng.integers(1, 50))
        # float32 scores take the packed-key path, float64 ones the comparisons
        dtype = np.float32 if case % 4 < 2 else np.float64
        if case % 2:
            scores = rng.integers(-1, 3, (n, c)).astype(dtype)  # many ties
            scores[(scores == 0) & (rng.random((n, c)) < 0.5)] = -0.0  # ties with +0.0
        else:
            scores = rng.normal(size=(n, c)).astype(dtype)
        scores[rng.random((n, c)) < 0.1] = np.nan
        scores[rng.random((n, c)) < 0.05] = -np.inf
        scores[rng.random((n, c)) < 0.05] = np.inf
        targets = rng.integers(-1, c, (n, int(rng.integers(1, 4))))
        exclude = rng.random((n, c)) < rng.random()
        r = rank(scores, targets, sp.csr_matrix(exclude), k)
        want_topk, want_ranks = _sorted_reference(scores, targets, exclude, min(k, c))
        np.testing.assert_array_equal(r.topk, want_topk, err_msg=f"case {case}")
        np.testing.assert_array_equal(r.target_ranks, want_ranks, err_msg=f"case {case}")
        # kmax 0 (tuning): the same ranks, no list
        r0 = rank(scores, targets, sp.csr_matrix(exclude), 0)
        assert r0.topk.shape == (n, 0)
        np.testing.assert_array_equal(r0.target_ranks, want_ranks, err_msg=f"case {case}")
