from __future__ import annotations

from pathlib import Path

import pytest

from llmrec.data import dataset as store
from llmrec.errors import UnknownDatasetError
from llmrec.testing import tiny_dataset


def test_round_trip(tmp_path: Path) -> None:
    ds = tiny_dataset()
    store.save(ds, tmp_path)
    back = store.load(tmp_path, "tiny")
    assert back.interactions.shape == ds.interactions.shape
    assert back.items["genres"].map(list).tolist() == ds.items["genres"].tolist()
    assert store.list_datasets(tmp_path) == ["tiny"]


def test_replace_keeps_one_version(tmp_path: Path) -> None:
    ds = tiny_dataset()
    store.save(ds, tmp_path)
    ds.interactions = ds.interactions.head(5)
    store.save(ds, tmp_path)
    assert len(store.load(tmp_path, "tiny").interactions) == 5
    hidden = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(hidden) == 1  # the old version was removed


def test_failed_save_leaves_old_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save(tiny_dataset(), tmp_path)
    broken = tiny_dataset()

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(broken.items, "to_parquet", boom)
    with pytest.raises(OSError):
        store.save(broken, tmp_path)
    assert len(store.load(tmp_path, "tiny").interactions) == 16
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".")]) == 1


def test_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(UnknownDatasetError, match="invalid dataset name"):
        store.load(tmp_path, "../etc")
    with pytest.raises(UnknownDatasetError, match="not found"):
        store.load(tmp_path, "missing")
