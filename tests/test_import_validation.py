"""One test per class of malformed import (issue 22): each is refused with the file, row and
column named, and nothing is written; plus a seeded hypothesis fuzz of the CSV parser."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrec.data import dataset as store
from llmrec.data.importer import import_dataset
from llmrec.data.validate import MAX_ID_LENGTH
from llmrec.errors import DataError, UnknownDatasetError

HEAD = "user_id,item_id,timestamp,value\n"


def _import(tmp_path: Path, text: str | bytes, name: str = "mine", **kw: object):
    p = tmp_path / "inter.csv"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return import_dataset(name, p, tmp_path / "ds", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # every row one field more than the header: pandas would shift the columns silently
        (HEAD + "u1,i1,100,4,x\nu2,i2,200,5,y\n", r"row 1: 5 fields where the header has 4"),
        (HEAD + "u1,i1,100,4\nu2,i2,200,5,y\n", r"row 2: 5 fields where the header has 4"),
        ("user_id,item_id,timestamp,item_id\nu1,i1,100,i2\n", r"column 'item_id': the header"),
        (HEAD + "u1,i1,1614834367000,4\n", r"row 1, column 'timestamp'.*outside 1970.*--timestamp"),
        (HEAD + "u1,i1,100,4\nu1,i2,99999999999999999999999,4\n", r"row 2.*outside 1970"),
        (HEAD + "u1,i1,2300-01-01T00:00:00,4\n", r"row 1.*'2300-01-01T00:00:00' is outside"),
        (HEAD + "u1,i1,1969-12-31,4\n", r"row 1.*outside 1970"),
        (HEAD + "u1,i1,inf,4\n", r"row 1, column 'timestamp': 'inf' is not a timestamp"),
        (HEAD + "u1,i1,inf-01-01,4\n", r"row 1.*cannot parse 'inf-01-01' as a timestamp"),
        (HEAD + "u1,i1,-5,4\n", r"row 1.*outside 1970"),
        (HEAD + "u1,i1,100,inf\n", r"row 1, column 'value': cannot parse 'inf'"),
        (HEAD + "u1,i1,100,nan\n", r"row 1, column 'value': cannot parse 'nan'"),
        (HEAD + "u1,i1,100,4\nu\x00x,i1,100,4\n", r"row 2: a NUL byte"),
        (HEAD + "u1,i\x07x,100,4\n", r"row 1, column 'item_id': id with a control character"),
        (HEAD + f"u1,{'i' * (MAX_ID_LENGTH + 1)},100,4\n", r"row 1.*id longer than 256"),
        ("", r"empty file"),
    ],
)
def test_malformed_interactions_are_refused_and_nothing_written(
    tmp_path: Path, text: str, match: str
) -> None:
    with pytest.raises(DataError, match=match):
        _import(tmp_path, text)
    assert not store.exists(tmp_path / "ds", "mine")


def test_a_refused_import_leaves_the_old_dataset(tmp_path: Path) -> None:
    _import(tmp_path, HEAD + "u1,i1,100,4\n")
    with pytest.raises(DataError):
        _import(tmp_path, HEAD + "u1,i1,100,4,extra\n")
    assert store.load(tmp_path / "ds", "mine").interactions["item_id"].tolist() == ["i1"]


@pytest.mark.parametrize(
    ("unit", "raw", "seconds"),
    [
        ("ms", "1614834367123", 1614834367),
        ("us", "1614834367123456", 1614834367),
        ("s", "1614834367.9", 1614834367),
        ("auto", "1614834367", 1614834367),
        ("auto", "1614834367123", 1614834367),
        ("auto", "1614834367123456", 1614834367),
    ],
)
def test_timestamp_units_are_converted_only_when_asked(
    tmp_path: Path, unit: str, raw: str, seconds: int
) -> None:
    ds = _import(tmp_path, HEAD + f"u1,i1,{raw},4\n", timestamp_unit=unit).dataset
    assert ds.interactions["timestamp"].tolist() == [seconds]


def test_a_short_row_reads_its_missing_trailing_fields_as_empty(tmp_path: Path) -> None:
    ds = _import(tmp_path, HEAD + "u1,i1,100\nu1,i2,200,5\n").dataset
    assert ds.interactions["value"].isna().tolist() == [True, False]


def test_parquet_lists_and_control_characters_are_not_ids(tmp_path: Path) -> None:
    p = tmp_path / "inter.parquet"
    pd.DataFrame({"user_id": [["a", "b"]], "item_id": ["i"], "timestamp": [1]}).to_parquet(p)
    with pytest.raises(DataError, match=r"row 1, column 'user_id': a list where an id belongs"):
        import_dataset("pq", p, tmp_path / "ds")
    pd.DataFrame({"user_id": ["a\x00b"], "item_id": ["i"], "timestamp": [1]}).to_parquet(p)
    with pytest.raises(DataError, match=r"column 'user_id': id with a control character"):
        import_dataset("pq", p, tmp_path / "ds")


def test_an_infinite_optional_year_is_missing_and_reported(tmp_path: Path) -> None:
    inter = tmp_path / "inter.csv"
    inter.write_text(HEAD + "u1,i1,100,4\nu1,i2,200,5\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,year\ni1,A,inf\ni2,B,1999\n")
    report = import_dataset("y", inter, tmp_path / "ds", items)
    assert report.dataset.items["year"].isna().tolist() == [True, False]
    assert any("not a year" in v and "'inf'" in v for v in report.unreadable.values())


def test_dataset_names_are_checked_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(UnknownDatasetError, match="250 characters: use at most 100"):
        import_dataset("n" * 250, tmp_path / "absent.csv", tmp_path / "ds")


def test_a_file_size_limit_is_one_line_and_keeps_the_old_dataset(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the save fail mid-write (EFBIG): one line, no traceback, exit 1,
    and the dataset imported before is still there."""
    home = tmp_path / "home"
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text(HEAD + "u1,i1,100,4\n")
    big.write_text(HEAD + "".join(f"user{u},item{u * 7 % 997},{100 + u},4\n" for u in range(50000)))
    cmd = [sys.executable, "-c", "from llmrec.cli import main; main()", "data", "import", "shop"]
    env = {"LLMREC_HOME": str(home), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([*cmd, "--interactions", str(small)], env=env, capture_output=True)
    assert ok.returncode == 0, ok.stderr

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    res = subprocess.run(
        [*cmd, "--interactions", str(big)],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=limit,
    )
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("error:") and "Traceback" not in res.stderr, res.stderr
    assert "internal error" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert store.load(home / "datasets", "shop").interactions["item_id"].tolist() == ["i1"]


_CELL = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(["", "inf", "-1", "1e400", "2300-01-01", "1614834367000", "nan", '"'])


@settings(
    max_examples=150, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(rows=st.lists(st.lists(_CELL, min_size=2, max_size=5), min_size=1, max_size=6))
def test_fuzz_any_csv_imports_or_is_refused_with_a_data_error(
    tmp_path: Path, rows: list[list[str]]
) -> None:
    """Whatever the cells, an import either stores a dataset whose rows all parsed or raises
    DataError; never another exception, never a half-written dataset."""
    text = HEAD + "\n".join(",".join(r) for r in rows) + "\n"
    try:
        report = _import(tmp_path, text, name="fuzz")
    except DataError:
        return
    inter = report.dataset.interactions
    assert inter["timestamp"].between(0, 4_102_444_800).all()
    assert inter["user_id"].str.len().gt(0).all() and inter["item_id"].str.len().gt(0).all()
    assert store.load(tmp_path / "ds", "fuzz").interactions.shape == inter.shape
