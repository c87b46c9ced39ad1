"""The ONNX Runtime twin of the MiniLM encoder (encoders/onnx.py): the torch encoder's vectors,
exported once per weights file, written whole or not at all, and torch whenever it cannot be."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.encoders import encode, get_encoder
from llmrec.encoders import onnx as twin_module
from llmrec.encoders.fake import HashingEncoder
from llmrec.encoders.onnx import OnnxMiniLM, fast_twin
from llmrec.query.parse import parse
from llmrec.query.score import QueryIndex

TEXTS = [
    "light space adventure",
    "dark psychological thriller with a twist, slow and long " * 3,
    "",  # encode() puts a placeholder in
    "ünïcödé 😀 שלום مرحبا",
    "word " * 400,  # past the 256-token limit: truncated alike
]


@pytest.fixture
def fresh(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache and no twin loaded in this process yet."""
    monkeypatch.setattr(twin_module, "_twins", {})
    return home / "cache" / "onnx"


def test_twin_gives_the_torch_encoders_vectors(fresh: Path) -> None:
    base = get_encoder("minilm")
    twin = fast_twin(base)
    assert isinstance(twin, OnnxMiniLM)
    assert (twin.name, twin.dim, twin.max_tokens) == (base.name, base.dim, base.max_tokens)
    want = encode(base, TEXTS, cache=None, progress=False)
    got = encode(twin, TEXTS, cache=None, progress=False)  # one padded batch
    np.testing.assert_allclose(got, want, atol=1e-5)
    one = encode(twin, [TEXTS[0]], cache=None, progress=False)  # alone: no padding
    np.testing.assert_allclose(one[0], want[0], atol=1e-5)
    graphs = list(fresh.iterdir())
    assert len(graphs) == 1 and graphs[0].suffix == ".onnx"  # no temporary file left


def test_the_graph_is_exported_once_and_reused(
    fresh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = get_encoder("minilm")
    assert fast_twin(base) is fast_twin(base)  # one per process
    graph = next(fresh.iterdir())
    stamp = graph.stat().st_mtime_ns
    monkeypatch.setattr(twin_module, "_twins", {})  # as a new process would start

    def no_export(*a: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(twin_module, "_export", no_export)
    assert isinstance(fast_twin(base), OnnxMiniLM)
    assert graph.stat().st_mtime_ns == stamp


def test_a_failed_export_leaves_nothing_and_torch_serves(
    fresh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    def broken(model: object, args: object, path: str, **kw: object) -> None:
        Path(path).write_bytes(b"half a graph")  # then the exporter dies
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    base = get_encoder("minilm")
    assert fast_twin(base) is base
    assert not fresh.exists() or list(fresh.iterdir()) == []


def test_torch_without_the_runtime_or_for_other_encoders(
    fresh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashing = HashingEncoder()
    assert fast_twin(hashing) is hashing
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    base = get_encoder("minilm")
    assert fast_twin(base) is base


def test_requests_in_words_encode_free_words_with_the_twin(fresh: Path) -> None:
    base = get_encoder("minilm")
    items = pd.DataFrame(
        {
            C.ITEM_ID: ["1", "2", "3"],
            C.TITLE: ["Star Voyage", "Quiet Farm", "Laugh Riot"],
            C.GENRES: [["Sci-Fi"], ["Drama"], ["Comedy"]],
        }
    )
    texts = ["a voyage among the stars", "a quiet farm life", "a riot of laughs"]
    vectors = encode(base, texts, cache=None, progress=False)
    index = QueryIndex(items, np.ones(3), vectors, base)
    assert isinstance(index.encoder, OnnxMiniLM)
    q = parse("something about stars and spaceships", index.vocab)
    want = vectors @ encode(base, [q.intent], cache=None, progress=False)[0]
    got = index.intent(q)
    assert got is not None
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert int(np.argmax(got)) == 0
