"""Big interaction files are read a block at a time (``data/tables.py``): the blocks must
give exactly the table a whole-file parse gives, and every error must name the row of the
whole file, wherever the block boundaries fall."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrec.data import dataset as store
from llmrec.data import tables
from llmrec.data.importer import import_dataset
from llmrec.data.tables import iter_table, read_table
from llmrec.errors import DataError

HEAD = "user_id,item_id,timestamp,event\n"


def whole(path: Path) -> pd.DataFrame:
    """What one pandas parse of the whole file reads (the reference)."""
    text = path.read_bytes().decode("utf-8-sig")  # not read_text: it would turn \r\n into \n
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def chunked(path: Path, block: int) -> pd.DataFrame:
    return pd.concat(list(iter_table(path, block)), ignore_index=True)


def rows(n: int, bad: dict[int, str] | None = None) -> str:
    """``n`` data rows; ``bad`` replaces some (1-based) with other text."""
    out = [f"u{r % 7},i{r % 11},{1_600_000_000 + r},view" for r in range(1, n + 1)]
    for r, text in (bad or {}).items():
        out[r - 1] = text
    return HEAD + "\n".join(out) + "\n"


def test_quoted_newlines_quotes_and_separators_survive_any_block_size(tmp_path: Path) -> None:
    df = pd.DataFrame({
        "item_id": ["a", "b,c", 'say "hi"', "two\nlines", "é\r\nx", "", "last"],
        "title": ['"', "x" * 50, "\n\n", 'a ""quoted"" word', "tab\there", "z", "end\n"],
    })  # fmt: skip
    path = tmp_path / "items.csv"
    df.to_csv(path, index=False)
    want = whole(path)
    for block in (1, 2, 3, 5, 8, 13, 64, 10_000):
        pd.testing.assert_frame_equal(chunked(path, block), want, check_dtype=False)
    assert len(list(iter_table(path, 16))) > 1  # it did read in several blocks


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    cells=st.lists(
        st.tuples(*[st.text(alphabet=st.sampled_from('ab,"\n\r é\t'), max_size=6)] * 3),
        min_size=1,
        max_size=12,
    ),
    block=st.integers(min_value=1, max_value=40),
)
def test_blocks_equal_the_whole_file_for_any_text(tmp_path_factory, cells, block) -> None:  # noqa: ANN001
    path = tmp_path_factory.mktemp("fuzz") / "t.csv"
    pd.DataFrame(cells, columns=["a", "b", "c"]).to_csv(path, index=False)
    want = whole(path)
    got = chunked(path, block)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_index_type=False)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({777: "u1,i1,100,view,extra"}, r"row 777: 5 fields where the header has 4"),
        ({612: "u1,,100,view"}, r"row 612, column 'item_id': empty id"),
        ({905: "u1,i1,yesterday,view"}, r"row 905, column 'timestamp': cannot parse 'yesterday'"),
        ({433: "u\x00,i1,100,view"}, r"row 433: a NUL byte"),
    ],
)
def test_errors_name_the_row_of_the_whole_file(
    tmp_path: Path, bad: dict[int, str], message: str
) -> None:
    path = tmp_path / "inter.csv"
    path.write_text(rows(1_000, bad))
    for block in (97, 1 << 20):  # many blocks, and one
        with pytest.raises(DataError, match=message):
            import_dataset_in_blocks(path, tmp_path / "home", block)


def test_invalid_utf8_names_its_line_and_file_offset(tmp_path: Path) -> None:
    path = tmp_path / "inter.csv"
    text = rows(300).encode()
    at = text.index(b"u3,i8")  # a line some blocks in
    line = text[:at].count(b"\n") + 1
    path.write_bytes(text[:at] + b"\xe9" + text[at:])
    with pytest.raises(
        DataError, match=rf"line {line} is not valid UTF-8 \(byte 0xe9 at offset {at}\)"
    ):
        list(iter_table(path, 50))


def import_dataset_in_blocks(path: Path, root: Path, block: int) -> object:
    original = tables.BLOCK_BYTES
    tables.BLOCK_BYTES = block
    try:
        return import_dataset("streamed", path, root)
    finally:
        tables.BLOCK_BYTES = original


def test_an_import_in_small_blocks_stores_what_one_block_stores(tmp_path: Path) -> None:
    path = tmp_path / "inter.csv"
    path.write_text(HEAD.replace("\n", ",device\n") + "".join(
        f"{r % 13},{r % 17:03d},{1_600_000_000 + r},{('view', 'click', 'purchase')[r % 3]},"
        f"{'tv' if r % 2 else ''}\n" for r in range(2_000)
    ))  # fmt: skip
    small = import_dataset_in_blocks(path, tmp_path / "a", 101)
    big = import_dataset_in_blocks(path, tmp_path / "b", 1 << 20)
    a, b = store.load(tmp_path / "a", "streamed"), store.load(tmp_path / "b", "streamed")
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert len(a.interactions) == 2_000 and small.dropped_unknown == big.dropped_unknown == 0  # type: ignore[attr-defined]
    assert a.interactions["item_id"].iloc[0] == "000"  # numeric-looking ids stay text


def test_header_only_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "inter.csv"
    path.write_text(HEAD)
    assert list(read_table(path).columns) == ["user_id", "item_id", "timestamp", "event"]
    with pytest.raises(DataError, match="no interactions"):
        import_dataset("x", path, tmp_path / "h")
    path.write_text("")
    with pytest.raises(DataError, match="empty file"):
        list(iter_table(path))
