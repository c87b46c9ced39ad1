"""Known answers for the beyond-accuracy metrics and the rerankers (issue 26)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from llmrec.errors import ConfigError
from llmrec.eval.fairness import (
    age_band,
    awrf,
    beyond_accuracy,
    expected_exposure,
    exposure,
    group_gap,
    miscalibration,
    user_groups,
)
from llmrec.rerank import STRENGTHS, Reranked, RerankSpec, calibrated, item_groups, mmr, tail_boost

A, B = [1.0, 0.0], [0.0, 1.0]


def test_mmr_swaps_a_near_duplicate_below_a_different_item() -> None:
    rel = np.array([1.0, 0.95, 0.9])
    vectors = np.array([A, A, B])
    assert mmr(rel, vectors, 0.0, 3).tolist() == [0, 1, 2]
    assert mmr(rel, vectors, 0.5, 3).tolist() == [0, 2, 1]


def test_calibration_brings_the_history_genre_mix() -> None:
    rel = np.array([1.0, 0.9, 0.8])
    dist = np.array([A, A, B])
    target = np.array([0.5, 0.5])
    assert calibrated(rel, dist, target, 0.0, 2).tolist() == [0, 1]
    assert calibrated(rel, dist, target, 0.9, 2).tolist() == [0, 2]


def test_tail_boost_lifts_tail_items() -> None:
    rel = np.array([1.0, 0.9, 0.5])
    assert tail_boost(rel, np.array([0.0, 0.0, 1.0]), 0.6, 3).tolist() == [2, 0, 1]
    assert tail_boost(rel, np.array([0.0, 0.0, 1.0]), 0.0, 3).tolist() == [0, 1, 2]


def test_item_groups_split_training_interactions_in_thirds() -> None:
    assert item_groups(np.array([6.0, 3.0, 2.0, 1.0, 0.0])).tolist() == [0, 1, 2, 2, 2]


def test_exposure_is_position_discounted() -> None:
    out = exposure(np.array([[0, 1]]), 2, np.array([0, 2]), np.array([[1]]))
    assert out["exposure@2 head"] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert out["exposure@2 tail"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert out["relevance tail"] == 1.0 and out["relevance head"] == 0.0


def test_exposure_of_lists_shorter_than_k() -> None:
    """A stage with fewer candidates than k (cold-items on a small catalogue) has short lists."""
    out = exposure(np.array([[0, 1], [1, -1]]), 10, np.array([0, 2]), np.array([[0], [1]]))
    assert sum(out[f"exposure@10 {g}"] for g in ("head", "torso", "tail")) == pytest.approx(1.0)


# item 0 head, 1 torso, 2 tail; user 0 is shown [0, 1] and wants 1, user 1 [0, 2] and wants 2
LISTS, GROUPS, WANTED = np.array([[0, 1], [0, 2]]), np.array([0, 1, 2]), np.array([1, 2])


def test_expected_exposure_known_answers() -> None:
    """Patience 0.5: the system gives head 1, torso and tail 0.25 on average. The ideal shows
    the wanted item first (1) and shares position 2 (0.5) between the two others: head 0.25,
    torso and tail 0.625 on average."""
    out = expected_exposure(LISTS, 2, GROUPS, WANTED)
    system, ideal = np.array([1, 0.25, 0.25]), np.array([0.25, 0.625, 0.625])
    assert out["EE-D@2"] == pytest.approx(system @ system)
    assert out["EE-R@2"] == pytest.approx(2 * system @ ideal)
    assert out["EE-L@2"] == pytest.approx(0.75**2 + 2 * 0.375**2)
    # EE-L = EE-D - EE-R + |ideal|^2
    assert out["EE-L@2"] == pytest.approx(out["EE-D@2"] - out["EE-R@2"] + ideal @ ideal)
    # the ideal policy itself: distance 0
    ideal_lists = expected_exposure(np.array([[1, 0], [2, 0]]), 1, GROUPS, WANTED)
    assert ideal_lists["EE-L@1"] == pytest.approx(0.0)
    # a smaller pool (the candidates of a stage): the second position goes to the head item
    pooled = expected_exposure(LISTS, 2, GROUPS, WANTED, pool=np.array([0, 1, 2]))
    assert pooled == out
    only_head = expected_exposure(np.array([[1, 0]]), 2, GROUPS, np.array([1]), np.array([0, 1]))
    assert only_head["EE-L@2"] == pytest.approx(0.0)


def test_expected_exposure_shares_the_top_among_several_relevant_items() -> None:
    """Two relevant items share the first two positions: 0.75 each, whatever their order."""
    goal = np.array([[1, 2]])
    out = expected_exposure(np.array([[1, 2]]), 2, GROUPS, goal)
    assert out["EE-L@2"] == pytest.approx((1 - 0.75) ** 2 + (0.5 - 0.75) ** 2)
    swapped = expected_exposure(np.array([[2, 1]]), 2, GROUPS, goal)
    assert swapped["EE-L@2"] == pytest.approx(out["EE-L@2"])
    # users without a target are left out; short (-1 padded) lists give what they show
    short = expected_exposure(np.array([[1, -1], [0, 2]]), 2, GROUPS, np.array([1, -1]))
    assert short["EE-D@2"] == pytest.approx(1.0)


def test_awrf_known_answer_and_its_zero() -> None:
    """Attention [2/3, 1/3, 0] against target shares [0, 1/2, 1/2], by hand."""
    a, t = np.array([2 / 3, 1 / 3, 0.0]), np.array([0.0, 0.5, 0.5])
    mid = (a + t) / 2
    kl_a = sum(x * np.log2(x / m) for x, m in zip(a, mid, strict=True) if x > 0)
    kl_t = sum(x * np.log2(x / m) for x, m in zip(t, mid, strict=True) if x > 0)
    want = (kl_a + kl_t) / 2
    assert want == pytest.approx(0.5955, abs=1e-4)
    assert awrf(LISTS, 2, GROUPS, np.array([0.0, 1.0, 1.0])) == pytest.approx(want)
    # a list whose attention matches the target exactly: 0 (one head item alone)
    assert awrf(np.array([[0, -1]]), 2, GROUPS, np.array([1.0, 0.0, 0.0])) == pytest.approx(0)


def test_beyond_accuracy_reports_expected_exposure_and_awrf() -> None:
    pop = np.array([6.0, 3.0, 1.0])  # head, torso, tail as above
    history = sp.csr_matrix(np.zeros((2, 3)))
    out = beyond_accuracy(LISTS, None, WANTED, history, pop, None, k=2)
    assert out["EE-L@2"] == pytest.approx(0.84375)
    assert out["AWRF@2"] == pytest.approx(0.5955, abs=1e-4)
    assert "miscalibration@2" not in out  # no genres


def test_miscalibration_known_answers() -> None:
    vectors = np.array([A, A, B, B])
    history = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]))
    topk = np.array([[0, 1], [2, 3], [0, 2]])
    kl = miscalibration(history, topk, 2, vectors)
    assert kl[0] == pytest.approx(0.0)
    assert kl[1] == pytest.approx(np.log(1 / 0.01))
    assert np.isnan(kl[2])  # no history: no distribution to calibrate to


def test_one_group_is_the_overall_metric_and_bands_are_standard() -> None:
    values = np.random.default_rng(0).random(100)
    g = group_gap(values, np.array(["all"] * 100, dtype=object), "x")
    assert g.groups == {"all": (100, pytest.approx(values.mean()))} and g.gap == 0 and g.p == 1
    assert [age_band(a) for a in (1, 17, 18, 24, 25, 50, 56, float("nan"))] == [
        "<18", "<18", "18-24", "18-24", "25-34", "45-54", "55+", "unknown"
    ]  # fmt: skip
    table = pd.DataFrame({"user_id": ["1", "2", "3"], "gender": ["F", "", "M"]})
    labels = user_groups("gender", np.array(["3", "1", "2"]), table, np.zeros(3))
    assert labels.tolist() == ["M", "F", "unknown"]
    with pytest.raises(KeyError, match="have: gender"):
        user_groups("height", np.array(["1"]), table, np.zeros(1))


def test_bootstrap_interval_holds_the_true_gap_in_90_percent_of_cases() -> None:
    rng = np.random.default_rng(7)
    held = 0
    for case in range(60):
        a, b = rng.normal(0.3, 0.2, 150), rng.normal(0.2, 0.2, 150)
        labels = np.array(["a"] * 150 + ["b"] * 150, dtype=object)
        g = group_gap(np.concatenate([a, b]), labels, "x", n_boot=300, n_perm=50, seed=case)
        held += g.low <= 0.1 <= g.high
    assert held / 60 >= 0.9


def test_a_real_difference_has_a_small_p_and_none_a_large_one() -> None:
    rng = np.random.default_rng(3)
    labels = np.array(["a"] * 200 + ["b"] * 200, dtype=object)
    differ = np.concatenate([rng.normal(0.5, 0.2, 200), rng.normal(0.3, 0.2, 200)])
    same = rng.normal(0.4, 0.2, 400)
    assert group_gap(differ, labels, "x", n_perm=200).p < 0.01
    assert group_gap(same, labels, "x", n_perm=200).p > 0.05


class _Fixed:
    """A fitted model stand-in: fixed scores, user 0 saw item 0."""

    name = "fixed"
    history_ = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]]))

    def score(self, user_idx: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        return np.array([[5.0, 4.0, 3.9, 3.0, 1.0]])[
            :, candidates if candidates is not None else slice(None)
        ]


def test_reranked_scores_put_the_reranked_list_first_and_skip_seen_items() -> None:
    vectors = np.array([A, A, A, B, B])
    pop = np.array([10.0, 9.0, 8.0, 1.0, 1.0])
    plain = Reranked(_Fixed(), RerankSpec.parse("mmr=0"), vectors, pop)
    assert np.array_equal(plain.score(np.array([0])), _Fixed().score(np.array([0])))
    diverse = Reranked(_Fixed(), RerankSpec.parse("mmr=0.5"), vectors, pop, depth=3)
    s = diverse.score(np.array([0]))[0]
    order = [i for i in np.argsort(-s) if i != 0][:3]
    assert order == [1, 3, 2]  # item 3 (genre B) moves above item 2 (a second A)
    with pytest.raises(ConfigError, match="needs item genres"):
        Reranked(_Fixed(), RerankSpec.parse("mmr=0.5"), None, pop)
    for bad in ("mmr", "mmr=x", "mmr=2", "shuffle=0.1"):
        with pytest.raises(ConfigError):
            RerankSpec.parse(bad)


def test_eval_cli_reports_groups_exposure_and_a_reranked_run(home) -> None:  # noqa: ANN001
    """`llmrec eval --groups --rerank` on the shop fixture (age, country, genres): the group
    lines, the exposure line and the JSON document carry them; a bad attribute is refused."""

    from typer.testing import CliRunner

    from llmrec.cli import app
    from llmrec.data import dataset as store
    from llmrec.testing.fixtures import shop_dataset

    store.save(shop_dataset(), home / "datasets")
    runner = CliRunner()
    out = home / "r.json"
    args = ["eval", "--dataset", "shop", "--model", "ease", "--no-tune", "--json", str(out),
            "--reports", str(home / "reports")]  # fmt: skip
    res = runner.invoke(app, [*args, "--groups", "country,age,activity"])
    assert res.exit_code == 0, res.output
    assert "ease ndcg@10 by country:" in res.output and "exposure@10 head/torso/tail" in res.output
    plain = json.loads(out.read_text())
    assert set(plain["groups"]) == {"country", "age", "activity"}
    assert plain["rerank"] is None and "miscalibration@10" in plain["metrics"]
    assert "expected exposure@10 EE-L" in res.output and "AWRF@10" in plain["metrics"]
    res = runner.invoke(app, [*args, "--rerank", "calibrated=0.9"])
    assert res.exit_code == 0, res.output
    reranked = json.loads(out.read_text())
    assert reranked["rerank"] == "calibrated=0.9"
    assert reranked["metrics"]["miscalibration@10"] < plain["metrics"]["miscalibration@10"]
    res = runner.invoke(app, [*args, "--groups", "height"])
    assert res.exit_code != 0 and "not a user attribute" in str(res.exception)
    res = runner.invoke(app, [*args, "--rerank", "tail=auto"])
    assert res.exit_code == 0, res.output
    chosen = json.loads(out.read_text())["rerank"]
    assert chosen.startswith("tail=") and float(chosen[5:]) in STRENGTHS
    res = runner.invoke(app, [*args, "--rerank", "tail=auto", "--protocol", "cold-items"])
    assert res.exit_code != 0 and "refits after tuning" in str(res.exception)


def test_eval_tradeoffs_score_every_reranker_strength_and_draw_the_curves(home) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from llmrec.cli import app
    from llmrec.data import dataset as store
    from llmrec.testing.fixtures import shop_dataset

    store.save(shop_dataset(), home / "datasets")
    out, reports = home / "r.json", home / "reports"
    res = CliRunner().invoke(app, [
        "eval", "--dataset", "shop", "--model", "pop,ease", "--no-tune", "--tradeoffs",
        "--groups", "activity", "--json", str(out), "--reports", str(reports),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (reports / "shop-loo-tradeoffs.png").stat().st_size > 0
    assert (reports / "shop-loo-fairness.png").stat().st_size > 0  # exposure and groups
    assert "| ease | activity | activity low" in (reports / "shop-loo.md").read_text()
    for r in json.loads(out.read_text()):
        curves = r["tradeoffs"]
        assert set(curves) == {"mmr", "calibrated", "tail"}
        for points in curves.values():
            assert [p["strength"] for p in points] == list(STRENGTHS)
            # strength 0 is the model's own list
            assert points[0]["ndcg@10"] == pytest.approx(r["metrics"]["ndcg@10"])
        tail, mmr_ = curves["tail"], curves["mmr"]
        assert tail[-1]["exposure@10 tail"] >= tail[0]["exposure@10 tail"]
        assert mmr_[-1]["diversity@10"] >= mmr_[0]["diversity@10"]


def test_auto_strength_is_the_best_on_validation_before_the_validation_events() -> None:
    """``tail=auto`` picks the grid strength whose validation NDCG@10 is highest (the weaker on
    ties), judged with the model that has not observed the validation events."""
    from llmrec.data.matrix import genre_vectors
    from llmrec.eval.evaluate import evaluate
    from llmrec.eval.protocols import make_split
    from llmrec.eval.runner import choose_strength
    from llmrec.eval.tuning import tune
    from llmrec.models import get_model_class
    from llmrec.testing.fixtures import shop_dataset

    split = make_split(shop_dataset(), "loo", seed=0)
    model = tune(get_model_class("ease"), split, {"seed": 0}, search=False).model
    valid = {}
    vectors = genre_vectors(split.train.item_table)
    pop = np.asarray(split.train.matrix.sum(axis=0)).ravel()
    for strength in STRENGTHS:
        scored = Reranked(model, RerankSpec("tail", strength), vectors, pop)
        valid[strength] = evaluate(scored, split.valid, split.train, ks=(10,)).metrics["ndcg@10"]
    spec = choose_strength(model, split, "tail", vectors, pop)
    assert valid[spec.strength] == max(valid.values())
    assert all(valid[s] < valid[spec.strength] for s in STRENGTHS if s < spec.strength)
    assert not spec.auto and str(spec) == f"tail={spec.strength:g}"


def test_auto_is_refused_where_a_strength_is_served() -> None:
    assert RerankSpec.parse("mmr=auto", allow_auto=True).auto
    with pytest.raises(ConfigError, match="chosen on validation by llmrec eval"):
        RerankSpec.parse("mmr=auto")


@pytest.mark.parametrize("spec", ["mmr=0.5", "calibrated=0.7", "tail=0.4"])
def test_the_served_reranker_returns_what_the_evaluated_one_does(
    served_model_dir, tmp_path, spec: str
) -> None:  # noqa: ANN001
    """A list served with ``rerank`` equals the top of the evaluated ``Reranked`` scores for
    the same model state, and says which stage shaped it."""
    from fastapi.testclient import TestClient

    from llmrec.data.matrix import genre_vectors
    from llmrec.service.app import Service, create_app
    from llmrec.service.keys import create_key
    from llmrec.service.store import Store

    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    service = Service(store, served_model_dir, llm="off")
    live = service.live
    client = TestClient(create_app(service))
    h = {"Authorization": f"Bearer {create_key(store, 'read')}"}
    rs = RerankSpec.parse(spec)
    m = live.model
    table = pd.DataFrame({"genres": [live._facts[str(i)]["genres"] for i in m.items_.ids]})
    pop = np.asarray((m.history_ > 0).sum(axis=0)).ravel().astype(float)
    evaluated = Reranked(m, rs, genre_vectors(table), pop, depth=5)
    for user in ("u0", "u3", "u8"):
        u = m.users_.index([user])
        s = evaluated.score(u)[0]
        s[m.history_[u[0]].indices] = -np.inf
        want = [str(m.items_.ids[i]) for i in np.argsort(-s, kind="stable")[:5]]
        params = {"user_id": user, "k": 5, "rerank": spec.replace("=", ":")}
        r = client.get("/v1/recommendations", params=params, headers=h)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [x["item_id"] for x in items] == want, (user, spec)
        assert all(x["source"].endswith(f" · {rs}") for x in items)
    plain = client.get("/v1/recommendations", params={"user_id": "u0", "k": 5}, headers=h)
    assert all("·" not in x["source"] for x in plain.json()["items"])
    for bad in ("mmr:7", "shuffle:0.1", "mmr"):
        r = client.get("/v1/recommendations", params={"user_id": "u0", "rerank": bad}, headers=h)
        assert r.status_code == 422 and r.json()["error"]["field"] == "rerank", (bad, r.text)


def test_eval_over_seeds_prints_mean_sd_and_keeps_every_run(home) -> None:  # noqa: ANN001

    from typer.testing import CliRunner

    from llmrec.cli import app
    from llmrec.data import dataset as store
    from llmrec.testing.fixtures import shop_dataset

    store.save(shop_dataset(), home / "datasets")
    out = home / "s.json"
    res = CliRunner().invoke(
        app,
        ["eval", "--dataset", "shop", "--model", "pop,itemknn", "--no-tune", "--seeds", "0,1",
         "--protocol", "cold-users", "--json", str(out), "--reports", str(home / "reports")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "over seeds 0, 1: mean ± sd" in res.output and "best" in res.output
    docs = json.loads(out.read_text())
    assert sorted((d["model"], d["seed"]) for d in docs) == [
        ("itemknn", 0), ("itemknn", 1), ("pop", 0), ("pop", 1)
    ]  # fmt: skip
    bad = CliRunner().invoke(app, ["eval", "--dataset", "shop", "--model", "pop", "--seeds", "a"])
    assert bad.exit_code != 0 and "--seeds" in str(bad.exception)
