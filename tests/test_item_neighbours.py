"""ItemKNN's neighbours: the sparse, blocked top-k against a dense sorted reference, and
tuning's derivation of smaller k from one fit at the largest."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from llmrec.eval.protocols import loo
from llmrec.eval.tuning import tune, valid_score
from llmrec.models import ItemKNN, knn
from llmrec.models.knn import cosine_neighbours, truncate_neighbours
from llmrec.testing.fixtures import shop_dataset


def reference(x: sp.csr_matrix, k: int, shrink: float) -> np.ndarray:
    """Every pair's shrunk cosine, each row sorted best first (stable: ties by the lower
    column), the first k positive ones kept."""
    xc = x.tocsc().astype(np.float64)
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    sim = (xc.T @ xc).toarray() / (np.outer(norms, norms) + shrink + 1e-12)
    np.fill_diagonal(sim, 0.0)
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    v = np.take_along_axis(sim, order, axis=1)
    out = np.zeros_like(sim)
    np.put_along_axis(out, order, np.where(v > 0, v, 0.0), axis=1)
    return out


def tied_matrix() -> sp.csr_matrix:
    """Users x items where ties abound (items 20-39 copy items 0-19 for most users),
    weighted events (2: a purchase, -1: a dislike), an item nobody saw, one seen once."""
    rng = np.random.default_rng(3)
    x = (rng.random((80, 40)) < 0.2).astype(np.float64)
    x[:70, 20:] = x[:70, :20]
    x[rng.random(x.shape) < 0.05] *= 2.0
    x[rng.random(x.shape) < 0.03] *= -1.0
    x[:, 5] = 0.0
    x[:, 7] = 0.0
    x[0, 7] = 1.0
    return sp.csr_matrix(x)


@pytest.mark.parametrize("dense", [0.0, 2.0])  # every block cut dense / every one sparse
@pytest.mark.parametrize("budget", [40, 1 << 23])
@pytest.mark.parametrize("shrink", [0.0, 10.0])
@pytest.mark.parametrize("k", [1, 3, 7, 39, 100])
def test_neighbours_equal_the_sorted_reference(
    monkeypatch: pytest.MonkeyPatch, dense: float, budget: int, shrink: float, k: int
) -> None:
    x = tied_matrix()
    monkeypatch.setattr(knn, "_BLOCK_PAIRS", budget)
    monkeypatch.setattr(knn, "_DENSE_SHARE", dense)
    if budget == 40:  # the small budget cuts the items into many blocks
        assert len(knn._pair_blocks(x.tocsc().T.tocsr())) > 10
    got = cosine_neighbours(x, k, shrink)
    np.testing.assert_array_equal(got.toarray(), reference(x, k, shrink))
    assert got.nnz == np.count_nonzero(got.toarray())  # no stored zeros


def test_top_per_row_takes_the_first_of_equal_values() -> None:
    vals = np.array([1.0, 3.0, 3.0, 3.0, 2.0, 5.0, 5.0, 0.5])
    counts = np.array([5, 0, 1, 2])  # a row of 5, an empty row, one of 1, one of 2
    take = knn.top_per_row(counts, vals, 2)
    assert take.tolist() == [False, True, True, False, False, True, True, True]


def test_a_smaller_k_is_the_first_k_of_a_larger_one() -> None:
    x = tied_matrix()
    for shrink in (0.0, 10.0):
        wide = cosine_neighbours(x, 30, shrink)
        for k in (1, 4, 12, 30):
            np.testing.assert_array_equal(
                truncate_neighbours(wide, k).toarray(), cosine_neighbours(x, k, shrink).toarray()
            )


def test_derive_equals_a_fit_and_refuses_what_it_cannot_give() -> None:
    train = loo(shop_dataset()).train
    parent = ItemKNN(k=40, shrink=10.0).fit(train)
    assert not parent.derives({"k": 41, "shrink": 10.0})
    assert not parent.derives({"k": 20, "shrink": 0.0})
    assert not parent.derives({"k": 20, "shrink": 10.0, "weighting": "events"})
    users = np.arange(train.n_users)
    for params in ({"k": 40, "shrink": 10.0}, {"k": 5, "shrink": 10.0, "half_life": 5.0}):
        assert parent.derives(params)
        fitted = ItemKNN(**params).fit(train)
        np.testing.assert_array_equal(parent.derive(params).score(users), fitted.score(users))


def test_tune_fits_each_shrink_once_and_scores_every_setting_as_a_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    split = loo(shop_dataset())
    fits: list[tuple[int, float, str]] = []
    real_fit = ItemKNN._fit

    def counted(self: ItemKNN, train: object) -> None:
        fits.append((self.config.k, self.config.shrink, self.config.weighting))
        real_fit(self, train)  # type: ignore[arg-type]

    monkeypatch.setattr(ItemKNN, "_fit", counted)
    result = tune(ItemKNN, split)
    shrinks = ItemKNN.search_space["shrink"]
    # one fit per shrink at the largest k, one with event weights, the refit on train
    assert fits[: len(shrinks)] == [(400, s, "binary") for s in shrinks]
    assert len(fits) == len(shrinks) + 1 and fits[-1][2] == "events"
    assert len(result.trials) == len(ItemKNN.search_space["k"]) * len(shrinks) + 1
    for trial in result.trials:
        refit = ItemKNN(**trial.params).fit(split.valid_train)
        assert valid_score(refit, split) == trial.score
