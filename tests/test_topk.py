from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from llmrec.models import topk
from llmrec.models.topk import top_k


def _reference(scores: np.ndarray, excluded: np.ndarray, k: int) -> list[list[int]]:
    """What recommend did before selection: a stable argsort of each row, NaN ranking as
    -inf, excluded entries dropped."""
    out = []
    for row, ex in zip(scores, excluded, strict=True):
        row = np.where(np.isnan(row), -np.inf, row.astype(np.float64))
        row[ex] = np.nan
        o = np.argsort(-row, kind="stable")
        out.append(o[~np.isnan(row[o])][:k].tolist())
    return out


def _lists(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> list[list[int]]:
    assert np.all(np.diff(rows) >= 0)
    return [cols[rows == r].tolist() for r in range(n_rows)]


@pytest.mark.parametrize("torch_select", [True, False])
@pytest.mark.parametrize("k", [1, 3, 10, 39, 40, 60])
def test_top_k_equals_a_stable_sort(
    torch_select: bool, k: int, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ties (few distinct values), excluded entries, NaN and -inf scores, rows with nothing
    or fewer than k left: the same lists as a stable argsort, whichever selection runs
    first; the scores are not modified."""
    monkeypatch.setattr(topk, "_HAS_TORCH", torch_select and topk._HAS_TORCH)
    for dtype in (np.float32, np.float64):
        s = rng.integers(0, 6, size=(50, 40)).astype(dtype)  # many ties
        s[rng.random(s.shape) < 0.1] = np.nan
        s[rng.random(s.shape) < 0.1] = -np.inf
        s[2] = rng.standard_normal(40)  # no ties
        ex = rng.random(s.shape) < 0.3
        ex[0] = True  # nothing left
        ex[1, :35] = True  # fewer than k left
        before = s.copy()
        rows, cols = top_k(s, k, sp.csr_matrix(ex))
        assert _lists(rows, cols, len(s)) == _reference(s, ex, k)
        np.testing.assert_array_equal(s, before)
        rows, cols = top_k(s, k)  # nothing excluded
        assert _lists(rows, cols, len(s)) == _reference(s, np.zeros_like(ex), k)


def test_top_k_of_integer_scores_and_empty_inputs() -> None:
    rows, cols = top_k(np.array([[1, 3, 3, 2, 0]]), 2)
    assert cols.tolist() == [1, 2]
    for shape, k in (((0, 5), 3), ((4, 0), 3), ((4, 5), 0)):
        rows, cols = top_k(np.zeros(shape), k)
        assert rows.size == cols.size == 0
