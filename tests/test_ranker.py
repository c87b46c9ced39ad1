"""Two-stage ranker: candidate merge, features (KG, time, context), no leakage, contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData
from llmrec.errors import ConfigError
from llmrec.eval.protocols import loo
from llmrec.eval.runner import run
from llmrec.models import get_model_class
from llmrec.ranking.candidates import Ranks, merge, rank_cap_for, ranks_of, smallest
from llmrec.ranking.features import EventIndex, Request
from llmrec.ranking.kg import item_entity_matrix, kg_item_similarity
from llmrec.ranking.ranker import Ranker
from llmrec.testing import FAST_RANKER, RecommenderContract, block_dataset
from llmrec.testing.fixtures import shop_dataset

FAST: dict[str, Any] = {**FAST_RANKER, "rounds": 50}


class TestRanker(RecommenderContract):
    model_class = Ranker
    params = FAST


def test_ranks_of_by_hand() -> None:
    s = np.array([[0.1, 0.9, 0.5, 0.9]])
    excluded = np.array([[False, False, True, False]])
    np.testing.assert_array_equal(ranks_of(s, excluded), [[3, 1, 4, 2]])  # tie: lower index


def test_merge_takes_each_retrievers_best_first() -> None:
    a = np.array([[1, 2, 3, 4, 5]])  # retriever A: item 0 best
    b = np.array([[5, 4, 3, 2, 1]])  # retriever B: item 4 best
    excluded = np.array([[False, False, False, False, False]])
    assert set(merge([a, b], excluded, 2)[0]) == {0, 4}
    excluded[0, 0] = True
    got = merge([a, b], excluded, 5)[0]
    assert 0 not in got and got[-1] == -1  # history never a candidate; padded


def _ties(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Scores with many exact ties (as quantised retriever scores have) and -inf/NaN."""
    s = rng.integers(0, 12, shape).astype(np.float64)
    s[rng.random(shape) < 0.05] = np.nan
    s[rng.random(shape) < 0.05] = -np.inf
    return s


def test_smallest_is_a_stable_argsort_head() -> None:
    rng = np.random.default_rng(0)
    for shape, n in [((7, 50), 1), ((7, 50), 13), ((3, 40), 40), ((5, 300), 120)]:
        a = np.nan_to_num(_ties(rng, shape), nan=np.inf)
        a[0] = 3.0  # a row all tied
        want = np.argsort(a, axis=1, kind="stable")[:, :n]
        np.testing.assert_array_equal(smallest(a, n), want)


def test_capped_ranks_are_exact_up_to_the_cap() -> None:
    rng = np.random.default_rng(1)
    s = _ties(rng, (9, 400))
    excluded = rng.random(s.shape) < 0.1
    exact = ranks_of(s, excluded)
    for cap in (1, 10, 150):
        capped = ranks_of(s, excluded, cap)
        np.testing.assert_array_equal(capped, np.where(exact <= cap, exact, cap + 1))
    np.testing.assert_array_equal(ranks_of(s, excluded, 400), exact)  # cap >= items: exact
    # merge of capped ranks: the same candidates when the cap holds each retriever's N best
    # (the order among equal best ranks may change: their fusion tie-break sees capped ranks;
    # with this seed no tie sits on the cut)
    a, b = rng.permutation(400)[None, :] + 1, rng.permutation(400)[None, :] + 1
    none = np.zeros((1, 400), bool)
    cut = lambda r, c: np.where(r <= c, r, c + 1)  # noqa: E731
    got = merge([cut(a, 60), cut(b, 60)], none, 30)
    assert set(got[0]) == set(merge([a, b], none, 30)[0])


def test_capped_ranks_kept_as_tops_give_the_dense_answers() -> None:
    """``Ranks`` keeps only each retriever's top ``cap`` when capped: its merge, its ranks at
    any pairs and every item's best rank and retriever equal those of dense capped ranks,
    with heavy ties, NaN, -inf and history; also where the union of the tops is smaller
    than N (the rest by item index) and where a retriever ranks everything excluded."""
    rng = np.random.default_rng(5)
    for cap, n in [(1, 5), (10, 30), (150, 390), (40, 100)]:
        scores = [_ties(rng, (6, 400)) for _ in range(3)]
        excluded = rng.random((6, 400)) < 0.1
        excluded[0, :395] = True  # a user who had almost everything
        dense = [ranks_of(s, excluded, cap) for s in scores]
        kept = Ranks.of(scores, excluded, cap)
        assert kept.dense is None and len(kept.tops) == 3
        np.testing.assert_array_equal(kept.merge(excluded, n), merge(dense, excluded, n))
        rows, items = rng.integers(0, 6, 500), rng.integers(0, 400, 500)
        np.testing.assert_array_equal(
            kept.at(rows, items), np.stack([d[rows, items] for d in dense])
        )
        best, source = kept.best()
        np.testing.assert_array_equal(best, np.stack(dense).min(axis=0))
        np.testing.assert_array_equal(source, np.stack(dense).argmin(axis=0))
    exact = Ranks.of(scores, excluded)
    assert exact.tops is None
    np.testing.assert_array_equal(exact.merge(excluded, 30), merge(exact.dense, excluded, 30))


def test_rank_cap_follows_the_catalogue_and_is_kept(tmp_path) -> None:
    assert rank_cap_for(20_000) == 0 and rank_cap_for(20_001) == 2_000
    split = loo(shop_dataset())  # context columns, custom events, repeats, odd ids
    exact = Ranker(**FAST).fit(split.train)
    assert exact.config.rank_cap == 0  # decided at fitting, saved with the model
    capped = Ranker(**{**FAST, "rank_cap": 5}).fit(split.train)
    users = np.arange(split.train.n_users)
    _, _, _, ranks = capped.candidates(users)
    assert ranks.cap == 5 and all(t.shape == (len(users), 5) for t in ranks.tops)
    best, _ = ranks.best()
    assert int(best.max()) == 6  # everything past each retriever's 5th: 6
    capped.save(tmp_path / "m")
    again = Ranker.load(tmp_path / "m")
    assert again.config.rank_cap == 5
    np.testing.assert_allclose(again.score(users), capped.score(users), rtol=1e-6)
    assert "top 5 of" in again.size_note(split.train.n_items)


@pytest.mark.parametrize("params", [{}, {"rank_cap": 5}, {"repeats": True}])
def test_lists_from_the_candidates_are_the_lists_over_every_item(params: dict) -> None:
    """The ranker's ``top_k`` lists from its candidates alone (no users x items scores):
    the items, scores and sources of the base class's ranking of every item, exact and with
    capped ranks, with repeats among the candidates, with context, seen items kept or
    dropped, and past the candidates (k > N: every item, as before)."""
    from llmrec.models.base import Recommender

    split = loo(shop_dataset())  # context columns, custom events, repeats, odd ids
    m = Ranker(**{**FAST, "n_candidates": 20, **params}).fit(split.train)
    users = np.arange(split.train.n_users)
    for k, seen, ctx in [(3, True, None), (3, False, None), (5, True, {"device": "mobile"}),
                         (30, True, None)]:  # fmt: skip
        got = m.top_k(users, k, seen, ctx)
        want = Recommender.top_k(m, users, k, seen, ctx)
        np.testing.assert_array_equal(got.row, want.row)
        np.testing.assert_array_equal(got.item_idx, want.item_idx)
        np.testing.assert_array_equal(got.score, want.score)
        assert got.sources == want.sources
    assert len(set(got.sources)) > 1  # the sources say which retriever


def test_kg_similarity_links_items_through_shared_entities() -> None:
    items = IdMap(np.array(["1", "2", "3"]))
    link = pd.DataFrame({C.ITEM_ID: ["1", "2", "3"], C.ENTITY: ["f1", "f2", "f3"]})
    kg = pd.DataFrame(
        {
            C.HEAD: ["f1", "f2", "d9", "f3"],
            C.RELATION: ["film.film.directed_by", "film.film.directed_by", "x.film", "y"],
            C.TAIL: ["d1", "d1", "f3", "g7"],
        }
    )
    a = item_entity_matrix(kg, link, items)
    assert a.shape == (3, 3)  # entities d1, d9 (via the reverse triple), g7
    sim = kg_item_similarity(a).toarray()
    assert sim[0, 1] > 0 and sim[1, 0] > 0
    assert sim[0, 2] == 0 and sim[2, 2] == 0


def _data(rows: list[tuple[int, int, int]], n_users: int, n_items: int, **ctx: list) -> TrainData:
    log = pd.DataFrame(rows, columns=["user_idx", "item_idx", C.TIMESTAMP])
    log[C.EVENT], log[C.VALUE] = "view", np.nan
    for k, v in ctx.items():
        log[k] = v
    users = IdMap(np.array([f"u{i}" for i in range(n_users)]))
    items = IdMap(np.array([str(i) for i in range(n_items)]))
    return TrainData.build(log, users, items)


def test_time_lookups_use_only_events_before_the_request() -> None:
    day = 86_400
    ev = EventIndex.build(_data([(0, 0, 1 * day), (1, 0, 5 * day), (1, 1, 9 * day)], 2, 2))
    items = np.array([0, 0, 1])
    t = np.array([5 * day, 5 * day + 1, 9 * day])
    np.testing.assert_array_equal(ev.item_events_between(items, t - 30 * day, t), [1, 2, 0])
    np.testing.assert_array_equal(ev.last_seen_before(items, t)[:2], [1 * day, 5 * day])
    assert np.isnan(ev.last_seen_before(items, t)[2])
    req = Request.latest(ev, np.array([0, 1]))
    np.testing.assert_array_equal(req.time, [1 * day, 9 * day])


def test_context_share_feature_follows_the_request_device() -> None:
    from llmrec.ranking.features import ItemSide, build_features

    rows = [(0, 0, 1), (0, 1, 2), (1, 0, 3), (1, 1, 4)]
    data = _data(rows, 2, 2, device=["tv", "phone", "tv", "phone"])
    ev = EventIndex.build(data)
    side = ItemSide(
        np.full(2, np.nan), np.zeros((2, 1), np.float32), data.matrix * 0, None, np.ones(2)
    )
    cand = np.array([[0, 1]])
    s = {"pop": np.zeros((1, 2))}
    r = {"pop": np.ones(2, dtype=np.int64)}  # per (user, candidate) pair
    for device, better in (("tv", 0), ("phone", 1)):
        req = Request(np.array([10]), {"device": np.array([device])})
        x, names = build_features(np.array([0]), cand, s, r, side, ev, req)
        share = x[:, names.index("item_share_device")]
        assert share[better] > share[1 - better]


def _with_changed_test_items(ds: Dataset, seed: int) -> Dataset:
    """Each user's last interaction (the loo test item) replaced by another random item,
    one new to the user (loo's target is the latest new item: a repeat would move it)."""
    inter = ds.interactions.copy()
    inter["_t"] = inter[C.ITEM_ID].astype(int)
    inter = inter.sort_values([C.USER_ID, C.TIMESTAMP, "_t"])
    last = ~inter[C.USER_ID].duplicated(keep="last")
    rng = np.random.default_rng(seed)
    earlier = inter[~last].groupby(C.USER_ID)[C.ITEM_ID].agg(set)
    new = [
        str(rng.choice(sorted(set(range(len(ds.items))) - {int(i) for i in earlier[u]})))
        for u in inter.loc[last, C.USER_ID]
    ]
    inter.loc[last, C.ITEM_ID] = new
    return Dataset(ds.name, inter.drop(columns="_t").reset_index(drop=True), ds.items)


def test_no_leakage_test_items_do_not_reach_training_or_features() -> None:
    """Change every user's test item: the trained ranker (retrievers, booster, validation
    score and validation features) must be identical. Any leak of the test item (or later
    events) into training or features would make them differ."""
    base = block_dataset(n_users=40, n_items=20)
    fitted = []
    for seed in (1, 2):
        split = loo(_with_changed_test_items(base, seed))
        res = Ranker.tune_on(split, {**FAST, "seed": 0})
        model = res.model
        assert isinstance(model, Ranker)
        feats = model._features(split.valid)[0]
        fitted.append((model, res.valid_score, feats, split))
    (m1, v1, f1, s1), (m2, v2, f2, s2) = fitted
    assert not np.array_equal(s1.test.targets, s2.test.targets)  # the test items did change
    assert v1 == v2
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(m1.linear_.weights, m2.linear_.weights)
    b1, b2 = m1.booster_, m2.booster_
    assert (b1 and b1.model_to_string()) == (b2 and b2.model_to_string())
    for name in m1.retrievers_:
        for k, v in m1.retrievers_[name]._state().items():
            np.testing.assert_array_equal(v, m2.retrievers_[name]._state()[k], err_msg=k)


def test_ranker_learns_to_ignore_a_useless_retriever() -> None:
    ds = block_dataset(n_users=60, n_items=30)
    params = {"retrievers": {"random": {}, "itemknn": {}}, "n_candidates": 15}
    ranker = run(ds, "ranker", params={**params, "min_data_in_leaf": 5})
    knn = run(ds, "itemknn")
    rnd = run(ds, "random")
    assert ranker.metrics["ndcg@10"] >= knn.metrics["ndcg@10"] - 0.05
    assert ranker.metrics["ndcg@10"] > rnd.metrics["ndcg@10"] + 0.1


def test_feature_groups_switch_features_off() -> None:
    train = loo(block_dataset()).train
    m = Ranker(**{**FAST, "groups": ["retrievers"]}).fit(train)
    assert not any(n.startswith(("kg_", "genre", "hour", "item_pop_30d")) for n in m.feature_names_)
    with pytest.raises(ConfigError, match="feature groups"):
        Ranker(**{**FAST, "groups": ["nope"]}).fit(train)


def test_ranker_is_registered() -> None:
    assert get_model_class("ranker") is Ranker


def test_quantise_makes_float_noise_ties_exact() -> None:
    from llmrec.ranking.candidates import quantise

    s = np.array([[0.5, 0.5 + 6e-8, 0.25], [100.0, 99.99999, 3.0]])
    q = quantise(s)
    assert q[0, 0] == q[0, 1] and q[1, 0] == q[1, 1] and q[0, 2] == 0.25


def test_listwise_model_puts_weight_on_the_informative_feature() -> None:
    from llmrec.ranking.listwise import fit_listwise

    rng = np.random.default_rng(0)
    n_q, per = 200, 10
    qid = np.repeat(np.arange(n_q), per)
    x = rng.normal(size=(n_q * per, 3))
    x[:, 2] = np.nan  # a missing feature is harmless
    label = np.zeros(n_q * per)
    best = np.argmax(x[:, 0].reshape(n_q, per) + 0.3 * rng.normal(size=(n_q, per)), axis=1)
    label[np.arange(n_q) * per + best] = 1
    m = fit_listwise(x, qid, label, l2=0.01)
    assert m.weights[0] > 1.0 and abs(m.weights[1]) < 0.3 * m.weights[0]
    s = m.predict(x).reshape(n_q, per)
    assert np.mean(s.argmax(axis=1) == best) > 0.6


def test_two_retrievers_of_one_family_by_suffix(tmp_path) -> None:
    from llmrec.models import Recommender

    train = loo(block_dataset()).train
    retrievers = {"ease": {"reg": 100.0}, "ease#strong": {"reg": 1000.0}}
    m = Ranker(retrievers=retrievers, n_candidates=10, rounds=0).fit(train)
    assert {"ease_score", "ease#strong_score"} <= set(m.feature_names_)
    m.save(tmp_path / "m")
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(Recommender.load(tmp_path / "m").score(users), m.score(users))


def test_ranker_on_cold_items_refits_its_retrievers_on_all_training() -> None:
    """cold-items tunes on an inner fold, then refits the chosen retrievers on the training
    part; the content retriever ranks never-seen items far above random."""
    ds = block_dataset(n_users=60, n_items=120)
    r = run(ds, "ranker", protocol="cold-items", params=FAST)
    rnd = run(ds, "random", protocol="cold-items")
    assert r.metrics["ndcg@10"] > rnd.metrics["ndcg@10"] + 0.2


def test_recommend_reads_the_request_context() -> None:
    """A device-aware ranker reads the device of the request (its learned weight may go
    either way; the feature values themselves are tested above)."""
    from llmrec.errors import LlmrecError

    ds = block_dataset(n_users=40, n_items=20)
    inter = ds.interactions.copy()
    inter[C.DEVICE] = np.where(inter[C.ITEM_ID].astype(int) < 10, "tv", "phone")
    ds = Dataset(ds.name, inter, ds.items)
    train = loo(ds).train
    m = Ranker(**{**FAST, "rounds": 0}).fit(train)
    assert "item_share_device" in m.feature_names_
    uid = train.users.ids[0]
    assert m.linear_.weights[m.feature_names_.index("item_share_device")] != 0
    tv = m.recommend([uid], k=5, context={"device": "tv"})
    phone = m.recommend([uid], k=5, context={"device": "phone"})
    assert not np.allclose(tv.scores[0], phone.scores[0])
    at = m.recommend([uid], k=3, context={"timestamp": "1700000000"})
    assert len(at.item_ids[0]) == 3
    with pytest.raises(LlmrecError, match="unknown"):
        m.recommend([uid], k=3, context={"weather": "rain"})
    with pytest.raises(LlmrecError, match="timestamp"):
        m.recommend([uid], k=3, context={"timestamp": "soon"})
