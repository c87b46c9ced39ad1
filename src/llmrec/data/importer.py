"""Import a user's own data (CSV or Parquet) into the canonical tables, with row-level errors.

Rows are numbered from 1, counting data rows only (the CSV header is not a row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.data import dataset as store
from llmrec.data.dataset import Dataset
from llmrec.data.events import EventRules
from llmrec.data.tables import iter_table, read_table, shifted
from llmrec.data.validate import (
    TimestampUnit,
    first_row,
    ids,
    numbers,
    parse_numbers,
    timestamps,
)
from llmrec.errors import DataError


@dataclass
class ImportReport:
    """What an import did; printed by the CLI."""

    dataset: Dataset
    dropped_unknown: int = 0
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)
    # optional attributes that did not parse, kept as missing: "file: column" -> what happened
    unreadable: dict[str, str] = field(default_factory=dict)


def _require(df: pd.DataFrame, cols: tuple[str, ...], name: str) -> None:
    for col in cols:
        if col not in df.columns:
            found = ", ".join(map(str, df.columns)) or "no columns"
            raise DataError(f"missing required column (found: {found})", file=name, column=col)


def _first_bad(mask: np.ndarray) -> int:
    return first_row(mask) - 1


def _ids(df: pd.DataFrame, col: str, name: str) -> pd.Series:
    return ids(df[col], col, name)


def _no_duplicates(ids: pd.Series, col: str, name: str) -> None:
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        first = ids.iloc[rows[0]]
        again = rows[(ids.iloc[rows] == first).to_numpy()]
        raise DataError(
            f"duplicate id {first!r} (rows {', '.join(str(r + 1) for r in again[:5])})",
            file=name,
            row=int(again[1]) + 1,
            column=col,
        )


def parse_timestamps(
    s: pd.Series, name: str, col: str = C.TIMESTAMP, unit: TimestampUnit = "s"
) -> pd.Series:
    """Seconds since the epoch (see ``validate.timestamps``)."""
    return timestamps(s, name, col, unit)


def pairs(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """The (user_id, item_id) columns of ``df`` as stripped text; a missing column, no rows or
    an empty id is an error naming ``name`` (and the row)."""
    _require(df, (C.USER_ID, C.ITEM_ID), name)
    if df.empty:
        raise DataError("no rows", file=name)
    return pd.DataFrame({c: _ids(df, c, name) for c in (C.USER_ID, C.ITEM_ID)})


def interactions_table(
    df: pd.DataFrame, name: str, rules: EventRules, timestamp_unit: TimestampUnit = "s"
) -> tuple[pd.DataFrame, list[str]]:
    _require(df, (C.USER_ID, C.ITEM_ID, C.TIMESTAMP), name)
    if df.empty:
        raise DataError("no interactions", file=name)
    out = pd.DataFrame(
        {
            C.USER_ID: _ids(df, C.USER_ID, name),
            C.ITEM_ID: _ids(df, C.ITEM_ID, name),
            C.TIMESTAMP: parse_timestamps(df[C.TIMESTAMP], name, unit=timestamp_unit),
        }
    )
    has_value = C.VALUE in df.columns
    out[C.VALUE] = numbers(df[C.VALUE], C.VALUE, name, "a number") if has_value else np.nan
    default_event = "rate" if has_value else "view"
    if C.EVENT in df.columns:
        ev = df[C.EVENT].astype(str).str.strip().str.lower().replace("", default_event)
        rules.check(ev, file=name)
        out[C.EVENT] = ev
    else:
        out[C.EVENT] = default_event
    for col in C.CONTEXT_COLUMNS:
        if col in df.columns:
            out[col] = df[col].astype(str).str.strip()
    ignored = [str(c) for c in df.columns if c not in out.columns]
    return out[[c for c in C.INTERACTION_COLUMNS if c in out.columns]], ignored


def interactions_file(
    path: Path, rules: EventRules, timestamp_unit: TimestampUnit = "s"
) -> tuple[pd.DataFrame, list[str]]:
    """``interactions_table`` of a file, checked a chunk at a time (errors name rows of the
    whole file): only the checked columns (Arrow-backed text) stay, ~60 bytes a row."""
    name, parts, rows = str(path), [], 0
    ignored: list[str] = []
    frame = pd.DataFrame()
    for frame in iter_table(path):
        if frame.empty:
            continue
        try:
            part, ignored = interactions_table(frame, name, rules, timestamp_unit)
        except DataError as e:
            raise shifted(e, rows) from None
        parts.append(part)
        rows += len(frame)
    if not parts:  # a header only: the missing column, or "no interactions"
        interactions_table(frame, name, rules, timestamp_unit)
    return pd.concat(parts, ignore_index=True), ignored


def _optional_numbers(
    s: pd.Series, col: str, name: str, what: str, strict: bool, unreadable: dict[str, str] | None
) -> pd.Series:
    """An optional attribute column as numbers: values that do not parse are refused when
    ``strict``, else stored as missing and counted in ``unreadable`` (first rows named)."""
    if strict:
        return numbers(s, col, name, what)
    out, bad, text = parse_numbers(s)
    if bad.any() and unreadable is not None:
        rows = np.flatnonzero(bad)
        shown = ", ".join(f"{r + 1} ({text.iloc[r]!r})" for r in rows[:3])
        more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
        unreadable[f"{name}: {col}"] = (
            f"{len(rows)} values are not {what}, stored as missing: rows {shown}{more} "
            "(--strict refuses them)"
        )
    return out.astype(float)


def items_table(
    df: pd.DataFrame, name: str, strict: bool = False, unreadable: dict[str, str] | None = None
) -> pd.DataFrame:
    """The items table: ``item_id`` required and unique; ``year`` (optional) read as a number
    (see ``_optional_numbers`` for values that are not), ``genres`` split on '|'."""
    _require(df, (C.ITEM_ID,), name)
    out = df.copy()
    out[C.ITEM_ID] = _ids(df, C.ITEM_ID, name)
    _no_duplicates(out[C.ITEM_ID], C.ITEM_ID, name)
    if C.TITLE not in out.columns:
        out[C.TITLE] = out[C.ITEM_ID]
    out[C.TITLE] = out[C.TITLE].astype(str).where(out[C.TITLE].astype(str) != "", out[C.ITEM_ID])
    if C.YEAR in out.columns:
        year = _optional_numbers(out[C.YEAR], C.YEAR, name, "a year", strict, unreadable)
        out[C.YEAR] = year.round().astype("Int64")
    if C.GENRES in out.columns:
        out[C.GENRES] = [
            list(g)
            if isinstance(g, list | np.ndarray)
            else [t.strip() for t in str(g).split("|") if t.strip()]
            for g in out[C.GENRES]
        ]
    first = [C.ITEM_ID, C.TITLE]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)


def users_table(df: pd.DataFrame, name: str) -> pd.DataFrame:
    _require(df, (C.USER_ID,), name)
    out = df.copy()
    out[C.USER_ID] = _ids(df, C.USER_ID, name)
    _no_duplicates(out[C.USER_ID], C.USER_ID, name)
    return out.reset_index(drop=True)


def import_dataset(
    name: str,
    interactions: Path,
    root: Path,
    items: Path | None = None,
    users: Path | None = None,
    *,
    drop_unknown: bool = False,
    events: EventRules | None = None,
    strict: bool = False,
    timestamp_unit: TimestampUnit = "s",
) -> ImportReport:
    """Validate every file, then save the dataset atomically; on any error nothing is written.
    ``events`` declares custom event names and weights (kept in the dataset's manifest).
    Optional attributes that do not parse are stored as missing and reported (``strict``:
    refused). Numeric timestamps are in ``timestamp_unit``."""
    store.check_name(name)
    events = events or EventRules()
    inter, ignored = interactions_file(interactions, events, timestamp_unit)
    unreadable: dict[str, str] = {}
    item_table = None
    if items is not None:
        item_table = items_table(read_table(items), str(items), strict, unreadable)
    user_table = users_table(read_table(users), str(users)) if users is not None else None
    meta = {"source": "import", "implicit": True, **events.to_meta()}
    ds = Dataset(name, inter, item_table, user_table, meta=meta)  # type: ignore[arg-type]
    report = finish_import(ds, root, str(interactions), ignored, drop_unknown, items)
    report.unreadable = unreadable
    return report


def finish_import(
    ds: Dataset,
    root: Path,
    inter_file: str,
    ignored: list[str],
    drop_unknown: bool,
    items_file: Path | None,
) -> ImportReport:
    """Check the interactions against the items table (or make one from them), then save."""
    dropped = check_catalogue(ds, inter_file, drop_unknown, items_file)
    store.save(ds, root)
    return ImportReport(ds, dropped, {inter_file: ignored} if ignored else {})


def check_catalogue(
    ds: Dataset, inter_file: str, drop_unknown: bool, items_file: Path | str | None
) -> int:
    """Interactions whose item is not in ``ds.items`` are an error (or dropped: their count
    is returned); without an items table, one is made from the interactions' ids."""
    inter, dropped = ds.interactions, 0
    if ds.items is not None:
        unknown = (~inter[C.ITEM_ID].isin(ds.items[C.ITEM_ID])).to_numpy()
        if unknown.any():
            if not drop_unknown:
                i = _first_bad(unknown)
                raise DataError(
                    f"item {inter[C.ITEM_ID].iloc[i]!r} is not in {items_file} "
                    f"({int(unknown.sum())} interactions reference unknown items; "
                    "pass --drop-unknown to drop them)",
                    file=inter_file,
                    row=i + 1,
                    column=C.ITEM_ID,
                )
            inter = inter[~unknown].reset_index(drop=True)
            dropped = int(unknown.sum())
            if inter.empty:
                raise DataError(
                    "no interactions left after dropping unknown items", file=inter_file
                )
        ds.interactions = inter
    else:
        ids = pd.unique(inter[C.ITEM_ID])
        ds.items = pd.DataFrame({C.ITEM_ID: ids, C.TITLE: ids})
    return dropped
