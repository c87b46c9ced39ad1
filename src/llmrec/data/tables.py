"""Reading imported files as text tables, in chunks, so a big interactions file never sits in
memory whole: raw bytes, decoded text and pandas' parse of every cell cost ~300 bytes a row,
the checked table ~60 (``make bench-import``).

CSV/TSV files are read in blocks of whole records (a block ends at a newline outside quotes),
each decoded and parsed on its own with the header's width; Parquet files batch by batch.
Every cell is text (Parquet list columns stay lists); errors name the file and the data row
(from 1, the header is not a row) across the whole file, not the block.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llmrec.data.validate import check_header, fields_error, holds_lists
from llmrec.errors import DataError

CSV_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": ","}
PARQUET_SUFFIXES = {".parquet", ".pq"}
BLOCK_BYTES = 8 << 20  # ~250k rows of a narrow interactions file
PARQUET_BATCH = 200_000


def iter_table(path: Path, block_bytes: int | None = None) -> Iterator[pd.DataFrame]:
    """The file's rows as text frames with the header's columns, a chunk at a time (at least
    one frame, empty for a header-only file); CSV blocks of ``block_bytes`` (default
    ``BLOCK_BYTES``)."""
    name = str(path)
    if not path.is_file():
        raise DataError("no such file", file=name)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        yield from _parquet_batches(path, name)
    elif suffix in CSV_SEPARATORS:
        with path.open("rb") as f:
            size = block_bytes or BLOCK_BYTES
            yield from _csv_blocks(f, CSV_SEPARATORS[suffix], name, suffix[1:].upper(), size)
    else:
        raise DataError(f"unsupported file type {suffix!r}: use .csv, .tsv or .parquet", file=name)


def read_table(path: Path) -> pd.DataFrame:
    """The whole file as one text frame (items, users, labels: tables that fit in memory)."""
    return pd.concat(list(iter_table(path)), ignore_index=True)


def as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Every column but lists as text, missing values as empty strings: what a CSV reads as,
    so a DataFrame passes the same checks as a file."""
    out = df.copy()
    for col in out.columns:
        values = out[col]
        if holds_lists(values).any():
            continue
        out[col] = values.astype(object).where(values.notna(), "").astype(str)
    out.columns = [str(c) for c in out.columns]
    return out.reset_index(drop=True)


def shifted(e: DataError, rows: int) -> DataError:
    """``e`` with its row counted from the file's start, not its chunk's."""
    row = e.row + rows if e.row is not None else None
    return DataError(e.detail, file=e.file, row=row, column=e.column)


def _parquet_batches(path: Path, name: str) -> Iterator[pd.DataFrame]:
    try:
        pf = pq.ParquetFile(path)
        check_header(pf.schema_arrow.names, name)
        batches = pf.iter_batches(batch_size=PARQUET_BATCH)
        empty = True
        for batch in batches:
            empty = False
            yield as_text(pa.Table.from_batches([batch]).to_pandas())
        if empty:
            yield as_text(pf.schema_arrow.empty_table().to_pandas())
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"not a readable Parquet file ({e})", file=name) from e


def _csv_blocks(
    f: BinaryIO, sep: str, name: str, kind: str, block_bytes: int
) -> Iterator[pd.DataFrame]:
    header: list[str] | None = None
    lines = offset = 0  # lines and bytes before the block (the header is line 1)
    carry = b""
    while True:
        data = f.read(block_bytes)
        block, done = carry + data, not data
        cut = len(block) if done else _record_end(block)
        if cut is None:  # one record longer than a block (a long quoted text): read on
            carry = block
            continue
        block, carry = block[:cut], block[cut:]
        if block or header is None:
            text = _decode(block, name, lines, offset, first=header is None)
            frame = _parse(text, sep, name, kind, lines, header)
            if header is None:
                header = [str(c) for c in frame.iloc[0]] if len(frame) else []
                if not header:
                    raise DataError("empty file: no header", file=name)
                check_header(header, name)
                frame = frame.iloc[1:].reset_index(drop=True)
            frame.columns = header
            yield frame
            lines += block.count(b"\n")
            offset += len(block)
        if done:
            return


def _record_end(block: bytes) -> int | None:
    """Just past the block's last newline outside quotes (an even number of quote characters
    before it: CSV escapes a quote by doubling it), None if there is none."""
    total = block.count(b'"')
    end, after = len(block), 0
    while (nl := block.rfind(b"\n", 0, end)) >= 0:
        after += block.count(b'"', nl, end)
        if (total - after) % 2 == 0:
            return nl + 1
        end = nl
    return None


def _decode(block: bytes, name: str, lines: int, offset: int, first: bool) -> str:
    nul = block.find(b"\x00")
    if nul >= 0:
        line = lines + block.count(b"\n", 0, nul) + 1
        raise DataError("a NUL byte: this is not a text table", file=name, row=max(line - 1, 1))
    try:
        return block.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as e:
        line = lines + block.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"line {line} is not valid UTF-8 (byte 0x{block[e.start]:02x} at offset "
            f"{offset + e.start}); save the file as UTF-8",
            file=name,
            row=max(line - 1, 1),
        ) from e


def _parse(
    text: str, sep: str, name: str, kind: str, lines: int, header: list[str] | None
) -> pd.DataFrame:
    """One block, every cell as text. The header is read as a row (and later blocks get its
    width) so that a row with more fields than the header is an error: pandas would otherwise
    take the first column as the index and shift every column. A shorter row reads its missing
    trailing fields as empty."""
    names = None if header is None else list(range(len(header)))
    try:
        return pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, header=None,
            index_col=False, names=names,
        )  # fmt: skip
    except pd.errors.ParserError as e:
        raise fields_error(e, name, kind, lines) from e
    except pd.errors.EmptyDataError as e:
        if header is not None:
            return pd.DataFrame(columns=names, dtype=str)
        raise DataError("empty file: no header", file=name) from e
