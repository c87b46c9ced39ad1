"""The encoder fine-tuned on behaviour (``encoders.finetune``) and the ``lm`` model on it.

The transition data below is built so that text similarity alone is wrong: whoever just
had an item of one topic next takes an item of the *next* topic (ocean -> music -> football
-> cooking -> ocean). The frozen encoder ranks the same topic first; only an encoder that
learnt from the behaviour ranks the next topic first.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.encoders import VectorCache, encode, get_encoder
from llmrec.encoders.finetune import (
    ContrastiveTrainer,
    FineTuneConfig,
    FineTunedEncoder,
    distinct_batches,
    query_texts,
    training_positions,
)
from llmrec.eval.protocols import loo
from llmrec.models import LM, Recommender, UserText
from llmrec.testing import RecommenderContract

TOPICS = (
    ("ocean", "sailing boat on the sea"),
    ("music", "piano and guitar songs"),
    ("football", "goals at the stadium"),
    ("cooking", "bread and soup recipes"),
)
PER_TOPIC = 6
FAST = {"epochs": 1, "examples": 48, "batch_size": 16, "history_items": 2}


@pytest.fixture(autouse=True)
def _home(home):  # text models cache vectors under $LLMREC_HOME
    return home


def topic_of(item: int) -> int:
    return item // PER_TOPIC


def transition_dataset(n_users: int = 60, length: int = 8, seed: int = 0) -> Dataset:
    """Each user walks the topics in order, one random item per step."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = int(rng.integers(len(TOPICS)))
        for step in range(length):
            topic = (t + step) % len(TOPICS)
            item = topic * PER_TOPIC + int(rng.integers(PER_TOPIC))
            rows.append((f"u{u}", str(item), step, "view"))
    inter = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT])
    inter = inter.drop_duplicates([C.USER_ID, C.ITEM_ID])
    n = len(TOPICS) * PER_TOPIC
    items = pd.DataFrame(
        {
            C.ITEM_ID: [str(i) for i in range(n)],
            C.TITLE: [f"{TOPICS[topic_of(i)][0].title()} {i}" for i in range(n)],
            "description": [TOPICS[topic_of(i)][1] for i in range(n)],
        }
    )
    return Dataset("transitions", inter, items)


def next_topic_hit_rate(model: Recommender, train) -> float:
    """Share of users whose top item is of the topic after their latest one."""
    log = train.log
    last = log.groupby("user_idx")["item_idx"].last()
    users = last.index.to_numpy()
    scores = model.score(users)
    scores[train.matrix[users].toarray() > 0] = -np.inf
    top = scores.argmax(axis=1)
    want = (np.array([topic_of(int(train.items.ids[i])) for i in last]) + 1) % len(TOPICS)
    got = np.array([topic_of(int(train.items.ids[i])) for i in top])
    return float((got == want).mean())


class TestLM(RecommenderContract):
    model_class = LM
    params = FAST


def test_positions_and_queries_never_show_the_target() -> None:
    train = loo(transition_dataset(n_users=3)).train
    rows = training_positions(train.log)
    first_rows = train.log.groupby("user_idx").head(1).index
    assert not set(rows) & set(np.flatnonzero(train.log.index.isin(first_rows)))
    titles = train.item_table[C.TITLE].to_numpy()
    queries = query_texts(train.log, rows, titles, None, history_items=2)
    items = train.log["item_idx"].to_numpy()
    for r, q in zip(rows, queries, strict=True):
        assert titles[items[r - 1]] in q  # the previous item is the newest shown
        assert titles[items[r]] not in q  # the target never is


def test_batches_never_repeat_a_positive() -> None:
    keys = np.array([0, 0, 0, 1, 2, 1, 3, 0])
    batches = distinct_batches(keys, 3, np.arange(len(keys)))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(keys)))
    for b in batches:
        assert len(set(keys[b])) == len(b) <= 3


def test_fine_tuning_learns_the_transitions_the_frozen_encoder_misses() -> None:
    train = loo(transition_dataset()).train
    frozen = UserText(encoder="minilm", history_items=1).fit(train)
    tuned = LM(epochs=3, examples=240, batch_size=16, history_items=1, lr=2e-4).fit(train)
    before, after = next_topic_hit_rate(frozen, train), next_topic_hit_rate(tuned, train)
    assert before < 0.35  # the frozen encoder mostly stays on the same topic
    assert after > 0.8 and after > before + 0.4


def test_loss_falls_and_training_is_seeded() -> None:
    train = loo(transition_dataset()).train
    titles = train.item_table[C.TITLE].to_numpy()
    rows = training_positions(train.log)[:96]
    queries = query_texts(train.log, rows, titles, None, history_items=1)
    items = train.log["item_idx"].to_numpy()[rows]
    from llmrec.models.lm import _item_texts

    texts = _item_texts(train)
    positives = [texts[i] for i in items]
    cfg = FineTuneConfig(batch_size=16, lr=2e-4, seed=3)
    names = []
    for _ in range(2):
        enc = FineTunedEncoder.from_base()
        trainer = ContrastiveTrainer(enc, cfg)
        losses = [trainer.epoch(queries, positives, items, progress=False) for _ in range(3)]
        assert losses[-1] < losses[0]
        names.append(enc.name)
    assert names[0] == names[1]  # same seed, same data: the same weights, bit for bit
    assert names[0] != FineTunedEncoder.from_base().name


def test_save_load_offline_identical_and_cache_kept_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = loo(transition_dataset(n_users=20)).train
    model = LM(**FAST).fit(train)
    model.save(tmp_path / "m")
    folder = tmp_path / "m" / "encoder"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    manifest = (folder / "llmrec-encoder.json").read_text()
    assert model.encoder_.sha256 in manifest and "data_sha256" in manifest

    def no_network(*args, **kwargs):
        raise AssertionError("loading a saved model must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    loaded = Recommender.load(tmp_path / "m")
    assert isinstance(loaded, LM) and loaded.encoder_.name == model.encoder_.name
    text = ["Ocean 99. a new item about sailing"]
    np.testing.assert_array_equal(
        loaded.encoder_.encode_batch(text), model.encoder_.encode_batch(text)
    )
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))

    # the cache keeps each encoder's vectors under its own name: never the base's for a tune
    from llmrec.config import get_settings

    cache = VectorCache(get_settings().cache_dir / "embeddings.sqlite")
    base = get_encoder("minilm")
    via_base = encode(base, text, cache, progress=False)
    via_tuned = encode(loaded.encoder_, text, cache, progress=False)
    assert base.name != loaded.encoder_.name
    assert not np.allclose(via_base, via_tuned)
    np.testing.assert_allclose(via_tuned, encode(loaded.encoder_, text, None), atol=1e-6)


def test_a_tampered_encoder_folder_is_refused(tmp_path: Path) -> None:
    from llmrec.errors import LlmrecError

    train = loo(transition_dataset(n_users=20)).train
    model = LM(**FAST).fit(train)
    model.save(tmp_path / "m")
    manifest = tmp_path / "m" / "encoder" / "llmrec-encoder.json"
    manifest.write_text(manifest.read_text().replace(model.encoder_.sha256, "0" * 64))
    with pytest.raises(LlmrecError, match="do not match its manifest"):
        Recommender.load(tmp_path / "m")


def test_lm_serves_shop_data_and_embeds_live_items_with_its_own_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train -> save -> load -> serve on the shop data (custom events, repeats, context,
    numeric-looking ids): an item PUT live is embedded by the fine-tuned encoder."""
    from fastapi.testclient import TestClient

    from llmrec.data.splits import full_train
    from llmrec.service.app import Service, create_app
    from llmrec.service.folder import save_for_serving
    from llmrec.service.keys import create_key
    from llmrec.service.store import Store
    from llmrec.testing.fixtures import shop_dataset

    shop = shop_dataset()
    data = full_train(shop)
    model = LM(epochs=1, examples=64, batch_size=16, pop_prior=0.05).fit(data)
    folder = tmp_path / "models" / "shop-lm"
    save_for_serving(model, data, folder, {"model": "lm", "store_seq": 0})
    db = Store(f"sqlite:///{tmp_path / 'events.db'}")
    service = Service(db, folder, refresh_every=0.0, llm="off")
    client = TestClient(create_app(service))
    h = {"Authorization": f"Bearer {create_key(db, 'write')}"}
    r = client.get("/v1/recommendations", params={"user_id": "7.0", "k": 5}, headers=h)
    assert r.status_code == 200 and len(r.json()["items"]) == 5, r.text
    item = {"title": "The Fog Detective", "text": "A detective story with a murder in the fog."}
    assert client.put("/v1/items/new-mystery", json=item, headers=h).status_code in (200, 201)
    served = service.live.model
    assert isinstance(served, LM)
    j = served.items_.position("new-mystery")
    expected = served.encoder_.encode_batch(["The Fog Detective. A detective story with a "
                                             "murder in the fog."])[0]  # fmt: skip
    np.testing.assert_allclose(served.item_vectors_[j], expected, atol=1e-5)
    new = client.get("/v1/recommendations", params={"user_id": "visitor", "k": 80}, headers=h)
    assert new.status_code == 200 and "new-mystery" in [x["item_id"] for x in new.json()["items"]]


def test_ranker_with_an_lm_retriever_saves_its_encoder_as_files(tmp_path: Path) -> None:
    from llmrec.ranking.ranker import Ranker
    from llmrec.testing import FAST_RANKER, block_dataset

    split = loo(block_dataset())
    params = {**FAST_RANKER, "retrievers": {"ease": {"reg": 100.0}, "lm": {**FAST}}}
    model = Ranker(**params)
    model.fit(split.train)
    model.save(tmp_path / "r")
    assert (tmp_path / "r" / "r.lm" / "encoder" / "model.safetensors").is_file()
    assert not (tmp_path / "r" / "r.ease").exists()  # only retrievers with files get a folder
    with np.load(tmp_path / "r" / "arrays.npz") as z:
        assert not [k for k in z.files if ".encoder." in k]  # weights are not in the arrays
    loaded = Recommender.load(tmp_path / "r")
    users = np.arange(split.train.n_users)
    np.testing.assert_allclose(loaded.score(users), model.score(users), atol=1e-6)
    lm = loaded.retrievers_["lm"]  # type: ignore[attr-defined]
    assert lm.encoder_.name == model.retrievers_["lm"].encoder_.name
    assert "data_sha256" in lm.encoder_.meta


def test_a_log_without_sequences_is_a_clear_error() -> None:
    from llmrec.data.splits import full_train
    from llmrec.errors import LlmrecError

    ds = transition_dataset(n_users=5, length=1)
    with pytest.raises(LlmrecError, match="no user has two events"):
        LM(**FAST).fit(full_train(ds))


def test_hard_negatives_are_near_misses_never_the_positive() -> None:
    from llmrec.encoders.finetune import hard_negatives

    train = loo(transition_dataset()).train
    log = train.log
    rows = training_positions(log)
    items = log["item_idx"].to_numpy()
    negs = hard_negatives(log, rows, train.n_items, np.random.default_rng(0))
    assert len(negs) == len(rows) and (negs != items[rows]).all()
    topic = np.array([topic_of(int(i)) for i in train.items.ids])
    # they follow the previous item as the positives do: mostly the same (next) topic
    assert (topic[negs] == topic[items[rows]]).mean() > 0.8
    tuned = LM(**{**FAST, "hard_negatives": True}).fit(train)  # trains with the third column
    assert np.isfinite(tuned.score(np.arange(3))).all()
