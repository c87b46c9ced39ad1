"""Per-user observation (#23, incremental state): a user's own events update that user's
state alone — the same scores as observing the whole new log — and the live model uses it
for the user's next read, leaving item-level statistics to the periodic refresh."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrec.data import columns as C
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData
from llmrec.data.splits import full_train
from llmrec.errors import LlmrecError
from llmrec.models import get_model_class
from llmrec.models.base import Recommender
from llmrec.ranking.ranker import Ranker
from llmrec.service.listing import COLD_SOURCES
from llmrec.service.live import LiveModel
from llmrec.service.store import Store
from llmrec.testing.fixtures import FAST_RANKER, shop_dataset
from llmrec.testing.server import train_model_dir

HASHING = {"encoder": "hashing"}
SUPPORTED: dict[str, dict[str, Any]] = {
    "pop": {},
    "itemknn": {},
    "userknn": {},
    "ease": {"reg": 50.0},
    "sasrec": {**HASHING, "epochs": 2, "embedding_size": 16, "max_len": 12},
    "content": HASHING,
    "hybrid": {"content_params": HASHING},
    "repeat": {},
}
UNSUPPORTED: dict[str, dict[str, Any]] = {
    "als": {"embedding_size": 8, "epochs": 2},
    "user-text": HASHING,
}


def _before_and_after() -> tuple[TrainData, TrainData, TrainData, np.ndarray]:
    """Shop data (custom events, repeats, context columns, numeric-looking ids) as known
    before, after a third of the users acted again and five new users arrived, and the
    part ``observe_users`` takes: the whole logs of the users who acted."""
    data = full_train(shop_dataset())
    log = data.log
    user = log["user_idx"].to_numpy()
    late = (np.random.default_rng(0).random(len(log)) < 0.3) & (user % 3 == 0)
    late |= user >= data.n_users - 5
    known = IdMap(data.users.ids[: data.n_users - 5])
    rules = data.rules
    before = TrainData.build(log[~late].reset_index(drop=True), known, data.items, rules=rules)
    after = TrainData.build(log.reset_index(drop=True), data.users, data.items, rules=rules)
    rows = np.unique(user[late])
    part_log = log[np.isin(user, rows)].reset_index(drop=True)
    part = TrainData.build(part_log, data.users, data.items, rules=rules)
    return before, after, part, rows


def _twins(model: Recommender, before: TrainData) -> tuple[Recommender, Recommender]:
    model.fit(before)
    return model, copy.deepcopy(model)


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_observing_users_alone_scores_as_observing_everything(name: str) -> None:
    before, after, part, rows = _before_and_after()
    whole, alone = _twins(get_model_class(name)(**SUPPORTED[name]), before)
    assert alone.can_observe_users()
    whole.observe(after)
    alone.observe_users(part, rows)
    users = np.arange(after.n_users)
    np.testing.assert_allclose(alone.score(users), whole.score(users), rtol=1e-5, atol=1e-6)
    ids = list(after.users.ids)
    assert alone.recommend(ids, k=5).item_ids == whole.recommend(ids, k=5).item_ids


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_models_with_learned_user_state_refuse_to_observe_users_alone(name: str) -> None:
    before, _, part, rows = _before_and_after()
    model = get_model_class(name)(**UNSUPPORTED[name]).fit(before)
    assert not model.can_observe_users()
    with pytest.raises(LlmrecError, match="observe_users"):
        model.observe_users(part, rows)


def test_the_ranker_updates_its_retrievers_and_each_users_events() -> None:
    before, after, part, rows = _before_and_after()
    whole, alone = _twins(Ranker(**FAST_RANKER), before)
    assert alone.can_observe_users()
    whole.observe(after)
    alone.observe_users(part, rows)
    users = np.arange(after.n_users)
    for name, retriever in alone.retrievers_.items():
        np.testing.assert_allclose(
            retriever.score(users), whole.retrievers_[name].score(users), rtol=1e-5, atol=1e-6
        )
    a, w = alone.events_, whole.events_
    assert np.array_equal(a.user_indptr, w.user_indptr)
    assert np.array_equal(a.items, w.items) and np.array_equal(a.ts, w.ts)
    assert a.context.keys() == w.context.keys()
    for col in a.context:
        assert np.array_equal(a.context[col], w.context[col])
    # item-level statistics wait for the next whole observation (the service's refresh)
    assert len(a.item_ts) == len(before.log) < len(w.item_ts)


def _event(user: str, item: str, event: str, ts: int) -> dict[str, Any]:
    return {C.USER_ID: user, C.ITEM_ID: item, C.TIMESTAMP: ts, C.EVENT: event, C.VALUE: None,
            **{c: None for c in C.CONTEXT_COLUMNS}}  # fmt: skip


def test_a_users_own_event_is_applied_alone_before_their_next_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    folder = train_model_dir(shop_dataset(), tmp_path / "shop-ranker")
    live = LiveModel(folder, Store(f"sqlite:///{tmp_path / 'e.db'}"), llm="off", refresh_every=3600)
    item_side = live.model.events_.item_key  # type: ignore[attr-defined]
    first = [r.item_id for r in live.recommend("042", 10)]
    t = 1_900_000_000
    live.add_events(
        [_event("042", first[0], "purchase", t), _event("someone new", "0001", "view", t)]
    )
    after = [r.item_id for r in live.recommend("042", 10)]
    assert first[0] not in after  # seen now: the user's own event counts at once
    assert live._dirty and live.model.events_.item_key is item_side  # type: ignore[attr-defined]
    assert not len(live.model.events_.new_key)  # type: ignore[attr-defined]  # the user alone
    sasrec = live.model.retrievers_["sasrec"]  # type: ignore[attr-defined]
    u = live._user_pos["042"]
    assert sasrec.seq_items_[sasrec.seq_indptr_[u + 1] - 1] - 1 == live.model.items_.position(
        first[0]
    )  # the sequence model's input ends with the new item
    newcomer = live.recommend("someone new", 5)
    assert newcomer and "0001" not in {r.item_id for r in newcomer}
    assert not {r.source for r in newcomer} & set(COLD_SOURCES)  # warm: the pipeline
    live.refresh()  # the periodic refresh then builds the same state from the whole log
    full = TrainData.build(
        live._log.frame(),
        IdMap(np.asarray(live._user_ids)),
        live.model.items_,
        rules=live.model.event_rules_,
    )
    assert (live.model.history_ != full.matrix).nnz == 0
    assert len(live.model.events_.new_key) == 2  # type: ignore[attr-defined]  # item side too
    assert first[0] not in [r.item_id for r in live.recommend("042", 10)]
