from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from llmrec.encoders import VectorCache, encode, get_encoder, prepare
from llmrec.encoders.fake import HashingEncoder
from llmrec.errors import ConfigError


def test_cache_hit_miss_and_invalidation(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / "v.sqlite")
    enc = HashingEncoder()
    a = encode(enc, ["red apple", "green pear", "red apple"], cache)
    assert enc.calls == 2  # duplicates encoded once
    assert a.shape == (3, enc.dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, rtol=1e-6)
    b = encode(enc, ["green pear", "red apple"], cache)
    assert enc.calls == 2  # all hits
    np.testing.assert_array_equal(b, a[[1, 0]])
    encode(enc, ["green pear!", "red apple"], cache)
    assert enc.calls == 3  # the changed text is a miss
    other = HashingEncoder(name="hashing-test@2")
    encode(other, ["red apple"], cache)
    assert other.calls == 1  # another model (or version) never reuses vectors
    assert cache.count("hashing-test@1") == 3 and cache.count() == 4


def test_empty_text_falls_back_to_title_and_unicode() -> None:
    assert prepare(["  ", "x"], ["The Title", "t"]) == ["The Title", "x"]
    assert prepare(["", ""]) == ["(no text)", "(no text)"]
    enc = HashingEncoder()
    v = encode(enc, ["", "Amélie — 東京物語 🎬"], fallbacks=["Amélie", "x"])
    assert np.all(np.isfinite(v)) and np.linalg.norm(v[1]) == pytest.approx(1)
    np.testing.assert_allclose(v[0], encode(enc, ["Amélie"])[0])


def test_truncation_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    enc = HashingEncoder(max_tokens=3)
    with caplog.at_level(logging.WARNING):
        encode(enc, ["one two three four five", "short text"])
    assert "1 of 2 texts exceed hashing-test@1's 3-token limit" in caplog.text


def test_unknown_encoder() -> None:
    with pytest.raises(ConfigError, match="unknown encoder 'gpt'"):
        get_encoder("gpt")


def test_static_encoder_is_torch_free_and_semantic() -> None:
    enc = get_encoder("minilm-static")
    v = encode(enc, ["space opera with starships", "starships in space", "a cooking show"])
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > v[0] @ v[2]


@pytest.mark.realdata
@pytest.mark.slow
def test_minilm_star_wars_neighbour_is_star_wars(ml100k, tmp_path: Path) -> None:
    from llmrec.text import item_texts

    items = ml100k.items
    wanted = [
        "Star Wars",
        "Return of the Jedi",
        "Empire Strikes Back, The",
        "Toy Story",
        "Fargo",
        "Sense and Sensibility",
        "Pulp Fiction",
        "Babe",
    ]
    subset = items[items["title"].isin(wanted)].reset_index(drop=True)
    vecs = encode(get_encoder("minilm"), item_texts(subset), VectorCache(tmp_path / "c.sqlite"))
    titles = subset["title"].tolist()
    sims = vecs @ vecs[titles.index("Star Wars")]
    sims[titles.index("Star Wars")] = -1
    assert titles[int(np.argmax(sims))] in {"Return of the Jedi", "Empire Strikes Back, The"}
