from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from llmrec.data import dataset as store
from llmrec.data.importer import import_dataset
from llmrec.errors import DataError

INTER = (
    "user_id,item_id,timestamp,rating_ignored,value\n"
    "u1,i1,100,x,4\nu1,i2,200,x,5\nu2,i1,2021-03-04T05:06:07Z,x,\n"
)
ITEMS = "item_id,title,genres,year\ni1,First,a|b,1999\ni2,,c,\n"


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def _import(
    tmp_path: Path, inter: str | bytes = INTER, items: str | bytes | None = ITEMS, **kw: object
):
    i = _write(tmp_path, "inter.csv", inter)
    it = _write(tmp_path, "items.csv", items) if items is not None else None
    return import_dataset("mine", i, tmp_path / "ds", it, **kw)  # type: ignore[arg-type]


def test_valid_import(tmp_path: Path) -> None:
    report = _import(tmp_path)
    ds = store.load(tmp_path / "ds", "mine")
    assert ds.interactions["timestamp"].tolist() == [100, 200, 1614834367]
    assert ds.interactions["event"].tolist() == ["rate"] * 3
    assert ds.interactions["value"].isna().tolist() == [False, False, True]
    assert ds.items["title"].tolist() == ["First", "i2"]  # empty title falls back to the id
    assert ds.items["genres"].map(list).tolist() == [["a", "b"], ["c"]]
    assert report.ignored_columns == {str(tmp_path / "inter.csv"): ["rating_ignored"]}


def test_parquet_and_tsv(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"user_id": [1, 2], "item_id": [7, 8], "timestamp": [5, 6], "event": ["click", "like"]}
    )
    df.to_parquet(tmp_path / "inter.parquet")
    report = import_dataset("pq", tmp_path / "inter.parquet", tmp_path / "ds")
    assert report.dataset.interactions["user_id"].tolist() == ["1", "2"]
    assert report.dataset.interactions["event"].tolist() == ["click", "like"]
    _write(tmp_path, "inter.tsv", "user_id\titem_id\ttimestamp\nu\ti\t1\n")
    assert (
        len(import_dataset("tsv", tmp_path / "inter.tsv", tmp_path / "ds").dataset.interactions)
        == 1
    )


@pytest.mark.parametrize(
    ("inter", "items", "match"),
    [
        ("user_id,item_id\nu1,i1\n", ITEMS, r"inter.csv, column 'timestamp': missing required"),
        (
            "user_id,item_id,timestamp\nu1,i1,100\nu1,i2,yesterday\n",
            ITEMS,
            r"inter.csv, row 2, column 'timestamp': cannot parse 'yesterday'",
        ),
        (
            "user_id,item_id,timestamp,value\nu1,i1,100,4\nu1,i2,5,five\n",
            ITEMS,
            r"row 2, column 'value': cannot parse 'five' as a number",
        ),
        (
            "user_id,item_id,timestamp\nu1,i1,100\n ,i2,5\n",
            ITEMS,
            r"row 2, column 'user_id': empty id",
        ),
        (
            "user_id,item_id,timestamp,event\nu1,i1,100,buy\n",
            ITEMS,
            r"row 1, column 'event': unknown event 'buy'",
        ),
        (
            INTER,
            "item_id,title\ni1,A\ni2,B\ni1,C\n",
            r"items.csv, row 3, column 'item_id': duplicate id 'i1' \(rows 1, 3\)",
        ),
        (INTER, "title\nA\n", r"items.csv, column 'item_id': missing required"),
        (
            INTER + "u3,i9,300,x,1\n",
            ITEMS,
            r"inter.csv, row 4, column 'item_id': item 'i9' is not in .*--drop-unknown",
        ),
        ("user_id,item_id,timestamp\n", ITEMS, "no interactions"),
        ('user_id,item_id,timestamp\nu1,i1,100\nu1,"i2,5\n', ITEMS, "cannot parse as CSV"),
    ],
)
def test_errors_name_file_row_column(tmp_path: Path, inter: str, items: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        _import(tmp_path, inter, items)
    assert not (tmp_path / "ds").exists() or store.list_datasets(tmp_path / "ds") == []


def test_encoding_error_names_line(tmp_path: Path) -> None:
    bad = b"user_id,item_id,timestamp\nu1,i1,100\nu\xe9,i2,200\n"
    with pytest.raises(DataError, match=r"line 3 is not valid UTF-8 .*byte 0xe9"):
        _import(tmp_path, bad)


def test_drop_unknown_counts(tmp_path: Path) -> None:
    report = _import(tmp_path, INTER + "u3,i9,300,x,1\nu3,i8,301,x,1\n", drop_unknown=True)
    assert report.dropped_unknown == 2
    assert len(report.dataset.interactions) == 3


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        import_dataset("x", tmp_path / "nope.csv", tmp_path / "ds")
    _write(tmp_path, "data.json", "{}")
    with pytest.raises(DataError, match="unsupported file type"):
        import_dataset("x", tmp_path / "data.json", tmp_path / "ds")
    _write(tmp_path, "bad.parquet", "not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        import_dataset("x", tmp_path / "bad.parquet", tmp_path / "ds")


def test_failed_import_keeps_previous_dataset(tmp_path: Path) -> None:
    _import(tmp_path)
    with pytest.raises(DataError):
        _import(tmp_path, "user_id,item_id,timestamp\nu1,i1,never\n")
    assert len(store.load(tmp_path / "ds", "mine").interactions) == 3


def test_users_file_duplicates(tmp_path: Path) -> None:
    i = _write(tmp_path, "inter.csv", INTER)
    u = _write(tmp_path, "users.csv", "user_id,age\nu1,20\nu1,30\n")
    with pytest.raises(DataError, match=r"users.csv, row 2, column 'user_id': duplicate id 'u1'"):
        import_dataset("mine", i, tmp_path / "ds", users=u)


def test_dataset_from_frames_checks_like_an_import() -> None:
    import llmrec

    frame = pd.DataFrame(
        {"user_id": [1, 2, 2], "item_id": [10, 10, 11], "timestamp": [5, 6, "soon"]}
    )
    with pytest.raises(DataError, match=r"interactions, row 3, column 'timestamp'"):
        llmrec.dataset_from_frames("f", frame)
    frame["timestamp"] = [5, 6, 7]
    items = pd.DataFrame({"item_id": [10], "title": ["Ten"], "year": [None]})
    with pytest.raises(DataError, match=r"item '11' is not in items"):
        llmrec.dataset_from_frames("f", frame, items)
    ds = llmrec.dataset_from_frames("f", frame, items, drop_unknown=True)
    assert ds.interactions["user_id"].tolist() == ["1", "2"]  # ids are strings, as imported
    assert ds.items["title"].tolist() == ["Ten"] and ds.items["year"].isna().all()
