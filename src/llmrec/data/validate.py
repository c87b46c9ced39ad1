"""The checks every imported table passes before anything is stored, in one place so that CSV,
Parquet and RecBole imports agree: header shape, ids, finite numbers and timestamps in range.

Every failure is a ``DataError`` naming the file, the row (data rows from 1) and the column.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from llmrec.errors import DataError

MAX_ID_LENGTH = 256
# 1970-01-01 to 2100-01-01 UTC: outside it a number is almost surely in another unit
TS_MIN, TS_MAX = 0, 4_102_444_800
TimestampUnit = Literal["s", "ms", "us", "auto"]
TIMESTAMP_UNITS: tuple[str, ...] = ("s", "ms", "us", "auto")
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000}
_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "auto": "its magnitude"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def fields_error(e: pd.errors.ParserError, name: str, kind: str, lines: int) -> DataError:
    """pandas' parse error as a ``DataError``: a row with more fields than the header names
    its data row (``lines``: the file's lines before the parsed text)."""
    m = _FIELDS.search(str(e))
    if m is None:
        return DataError(f"cannot parse as {kind}: {e}", file=name)
    expected, line, saw = map(int, m.groups())
    return DataError(
        f"{saw} fields where the header has {expected}", file=name, row=lines + line - 1
    )


def check_header(columns: list[str], name: str) -> None:
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise DataError(
                f"the header names this column {columns.count(c)} times", file=name, column=c
            )
        seen.add(c)


def first_row(mask: np.ndarray) -> int:
    """The 1-based row of the first True."""
    return int(np.flatnonzero(mask)[0]) + 1


def holds_lists(s: pd.Series) -> np.ndarray:
    """Where ``s`` holds a list (a Parquet list column). A column pandas types as plain
    strings or numbers (every CSV column) is answered without visiting each value."""
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        return np.zeros(len(s), dtype=bool)
    return s.map(lambda v: isinstance(v, list | tuple | np.ndarray)).to_numpy()


def ids(s: pd.Series, col: str, name: str) -> pd.Series:
    """Ids as stripped text: non-empty, no control characters, at most ``MAX_ID_LENGTH``
    characters, never a list (a Parquet list column is not an id)."""
    is_list = holds_lists(s)
    if is_list.any():
        raise DataError("a list where an id belongs", file=name, row=first_row(is_list), column=col)
    out = s.astype(str).str.strip()
    for bad, what in (
        ((out == "").to_numpy(), "empty id"),
        (out.str.contains(_CONTROL).to_numpy(), "id with a control character"),
        ((out.str.len() > MAX_ID_LENGTH).to_numpy(), f"id longer than {MAX_ID_LENGTH} characters"),
    ):
        if bad.any():
            raise DataError(
                f"{what} ({int(bad.sum())} rows)", file=name, row=first_row(bad), column=col
            )
    return out


def numbers(s: pd.Series, col: str, name: str, what: str) -> pd.Series:
    """Finite numbers; an empty cell is missing (NaN)."""
    out, bad, text = parse_numbers(s)
    if bad.any():
        i = first_row(bad)
        raise DataError(
            f"cannot parse {text.iloc[i - 1]!r} as {what} (finite)", file=name, row=i, column=col
        )
    return out


def parse_numbers(s: pd.Series) -> tuple[pd.Series, np.ndarray, pd.Series]:
    """(numbers with NaN for empty or unreadable cells, mask of unreadable cells, the text);
    infinities and 'nan' written out count as unreadable."""
    text = s.astype(str).str.strip()
    out = pd.to_numeric(text.where(text != ""), errors="coerce").astype(float)
    out = out.where(np.isfinite(out))
    return out, (out.isna() & (text != "")).to_numpy(), text


def timestamps(
    s: pd.Series, name: str, col: str = "timestamp", unit: TimestampUnit = "s"
) -> pd.Series:
    """Whole seconds since the epoch from numbers in ``unit`` ('auto': seconds, milliseconds or
    microseconds by magnitude, per value) or ISO 8601 date-times; every value must fall in
    1970–2100 (UTC), where a number in another unit would not."""
    text = s.astype(str).str.strip()
    num = pd.to_numeric(text, errors="coerce").astype(float)
    if not np.isfinite(num.fillna(0)).all():
        i = first_row(~np.isfinite(num.fillna(0).to_numpy()))
        raise DataError(f"{text.iloc[i - 1]!r} is not a timestamp", file=name, row=i, column=col)
    if unit == "auto":
        scale = np.select([num.abs() >= 1e14, num.abs() >= 1e11], [1e6, 1e3], 1.0)
    else:
        scale = np.full(len(num), float(_PER_SECOND[unit]))
    secs = num / scale
    todo = (num.isna() & (text != "")).to_numpy()
    if todo.any():
        secs[todo] = _dates(text[todo]).to_numpy()
    bad = secs.isna().to_numpy()
    if bad.any():
        i = first_row(bad)
        raise DataError(
            f"cannot parse {text.iloc[i - 1]!r} as a timestamp (a number or ISO 8601)",
            file=name,
            row=i,
            column=col,
        )
    out = ((secs < TS_MIN) | (secs >= TS_MAX)).to_numpy()
    if out.any():
        i = first_row(out)
        value = num.iloc[i - 1]
        hint = ""
        if unit != "auto" and np.isfinite(value) and abs(value) >= 1e11:
            hint = " (milliseconds or microseconds? pass --timestamp-unit ms, us or auto)"
        raise DataError(
            f"{text.iloc[i - 1]!r} is outside 1970–2100 read as "
            f"{'a date' if np.isnan(value) else _UNIT_WORDS[unit]}"
            f"{hint}",
            file=name,
            row=i,
            column=col,
        )
    return np.floor(secs).astype("int64")


def _dates(text: pd.Series) -> pd.Series:
    """Seconds of ISO 8601 date-times: pandas' vectorised parser, then Python's for what it
    could not read (years past 2262 among them), NaN where neither can."""
    try:
        dt = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        secs = (dt - pd.Timestamp(0, tz="UTC")) / pd.Timedelta("1s")
    except (ValueError, OverflowError):
        secs = pd.Series(np.nan, index=text.index)
    left = secs.isna()
    if left.any():
        secs[left] = [_iso_seconds(t) for t in text[left]]
    return secs.astype(float)


def _iso_seconds(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 date-time (naive = UTC), NaN if not one. Python's
    parser, not pandas': it reads any year 1–9999, so the range check can name a far date."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return float("nan")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp()
    except (OverflowError, OSError, ValueError):
        return float("nan")
