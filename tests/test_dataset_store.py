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


def test_a_loaded_dataset_saves_under_another_name_with_fresh_counts(tmp_path: Path) -> None:
    """load -> filter -> save as a new name (a held-out split, say): the manifest's counts
    are the new tables', the rest of the meta (checksums of a fetch) is kept."""
    import dataclasses
    import json

    ds = tiny_dataset()
    ds.meta["sha256"] = {"u.data": "abc"}
    store.save(ds, tmp_path)
    back = store.load(tmp_path, "tiny")
    assert "interactions" not in back.meta and back.meta["sha256"] == {"u.data": "abc"}
    part = dataclasses.replace(back, name="tiny-head", interactions=back.interactions.head(4))
    store.save(part, tmp_path)
    manifest = json.loads((store.dataset_path(tmp_path, "tiny-head") / "manifest.json").read_text())
    assert manifest["interactions"] == 4 and manifest["sha256"] == {"u.data": "abc"}
    assert manifest["users"] == part.interactions["user_id"].nunique()


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
