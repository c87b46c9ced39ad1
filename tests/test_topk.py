from __future__ import annotations

import numpy as np
import pytest

from llmrec.models import topk
from llmrec.models.topk import top_k


def _reference(scores: np.ndarray, k: int) -> list[list[int]]:
    out = []
    for row in scores:
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
    """Ties (few distinct values), excluded (NaN) and -inf entries, short rows: the same
    lists as a stable argsort, whichever selection runs first."""
    monkeypatch.setattr(topk, "_HAS_TORCH", torch_select and topk._HAS_TORCH)
    for dtype in (np.float32, np.float64):
        s = rng.integers(0, 6, size=(50, 40)).astype(dtype)  # many ties
        s[rng.random(s.shape) < 0.3] = np.nan
        s[rng.random(s.shape) < 0.1] = -np.inf
        s[0] = np.nan  # nothing scorable
        s[1, :35] = np.nan  # fewer than k left
        s[2] = rng.standard_normal(40)  # no ties
        rows, cols = top_k(s, k)
        assert _lists(rows, cols, len(s)) == _reference(s, k)


def test_top_k_empty_inputs() -> None:
    for shape, k in (((0, 5), 3), ((4, 0), 3), ((4, 5), 0)):
        rows, cols = top_k(np.zeros(shape), k)
        assert rows.size == cols.size == 0
