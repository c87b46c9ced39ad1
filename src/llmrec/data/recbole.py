"""RecBole's atomic files (``.inter``, ``.item``, ``.user``, ``.kg``, ``.link``) as a dataset:
people move over from RecBole in one command (``llmrec data import NAME --format recbole``).

A file is tab-separated with a ``name:type`` header (types ``token``, ``token_seq``,
``float``, ``float_seq``). Columns map to ours by name: ``rating`` is the value of a ``rate``
event (no rating: ``view``), ``timestamp`` is kept (none: the row order, said in the
manifest); items' ``movie_title``/``title``, ``release_year``/``year`` and the first
``token_seq`` genre column (``class``, ``genre``, ``genres``) become title, year and genres;
every other column is kept as an attribute. Rows are validated by the CSV importer's rules,
so errors name the file, the row and the column.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.data import dataset as store
from llmrec.data.dataset import Dataset
from llmrec.data.events import EventRules
from llmrec.data.importer import (
    ImportReport,
    finish_import,
    interactions_table,
    items_table,
    users_table,
)
from llmrec.data.validate import TimestampUnit
from llmrec.errors import DataError

SUFFIXES = ("inter", "item", "user", "kg", "link")
_TITLE = ("movie_title", "title", "name")
_YEAR = ("release_year", "year")
_GENRES = ("class", "genre", "genres", "categories", "category")


def read_atomic(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """(table of text, column -> RecBole type); a header without types is an error."""
    try:
        df = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE,
            encoding="utf-8",
        )  # fmt: skip
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason})", file=str(path)) from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"cannot parse as a RecBole atomic file: {e}", file=str(path)) from e
    types: dict[str, str] = {}
    names = []
    for col in df.columns:
        name, sep, kind = str(col).strip().partition(":")
        if not sep or not name:
            raise DataError(
                "header fields must read name:type (e.g. user_id:token)",
                file=str(path),
                column=str(col),
            )
        names.append(name)
        types[name] = kind.strip()
    df.columns = names
    return df.apply(lambda s: s.str.strip().str.rstrip("\r")), types


def find_files(folder: Path) -> dict[str, Path]:
    """The atomic files of ``folder`` by suffix; exactly one ``.inter`` is required."""
    if not folder.is_dir():
        raise DataError("not a folder of RecBole atomic files", file=str(folder))
    found: dict[str, Path] = {}
    for suffix in SUFFIXES:
        paths = sorted(folder.glob(f"*.{suffix}"))
        if len(paths) > 1:
            raise DataError(
                f"{len(paths)} .{suffix} files: keep one per dataset "
                f"({', '.join(p.name for p in paths)})",
                file=str(folder),
            )
        if paths:
            found[suffix] = paths[0]
    if "inter" not in found:
        raise DataError("no .inter file (RecBole's interactions)", file=str(folder))
    return found


def _first(df: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in df.columns), None)


def import_recbole(
    name: str,
    folder: Path,
    root: Path,
    *,
    drop_unknown: bool = False,
    events: EventRules | None = None,
    strict: bool = False,
    timestamp_unit: TimestampUnit = "s",
) -> ImportReport:
    """Validate every atomic file of ``folder``, then save the dataset atomically."""
    store.check_name(name)
    files = find_files(folder)
    events = events or EventRules()
    inter, _ = read_atomic(files["inter"])
    meta: dict[str, object] = {"source": f"recbole:{folder.name}", "implicit": True}
    if C.TIMESTAMP in inter:  # RecBole writes float seconds; the rest is checked below
        ts = pd.to_numeric(inter[C.TIMESTAMP], errors="coerce")
        ok = np.isfinite(ts.fillna(np.inf)) & (ts.abs() < 1e17)
        inter[C.TIMESTAMP] = inter[C.TIMESTAMP].where(
            ~ok, ts.where(ok, 0).round().astype("int64").astype(str)
        )
    else:
        inter[C.TIMESTAMP] = np.arange(len(inter)).astype(str)
        meta["timestamps"] = "row order"
    if "rating" in inter and C.VALUE not in inter:
        inter = inter.rename(columns={"rating": C.VALUE})
        meta["implicit"] = False
    table, ignored = interactions_table(inter, str(files["inter"]), events, timestamp_unit)
    item_table = None
    unreadable: dict[str, str] = {}
    if "item" in files:
        it, types = read_atomic(files["item"])
        renames = {_first(it, _TITLE): C.TITLE, _first(it, _YEAR): C.YEAR}
        genre = next((g for g in _GENRES if types.get(g) == "token_seq"), None)
        renames[genre] = C.GENRES
        it = it.rename(columns={k: v for k, v in renames.items() if k is not None})
        if C.YEAR in it:  # RecBole writes 1995.0
            year = pd.to_numeric(it[C.YEAR], errors="coerce")
            it[C.YEAR] = year.round().astype("Int64").astype(str).where(year.notna(), it[C.YEAR])
        if C.GENRES in it:
            it[C.GENRES] = [g.split() for g in it[C.GENRES]]
        item_table = items_table(it, str(files["item"]), strict, unreadable)
    users = (
        users_table(read_atomic(files["user"])[0], str(files["user"])) if "user" in files else None
    )
    kg = link = None
    if "kg" in files:
        kg = read_atomic(files["kg"])[0].rename(
            columns={"head_id": C.HEAD, "relation_id": C.RELATION, "tail_id": C.TAIL}
        )
        _need(kg, (C.HEAD, C.RELATION, C.TAIL), files["kg"])
    if "link" in files:
        link = read_atomic(files["link"])[0].rename(columns={"entity_id": C.ENTITY})
        _need(link, (C.ITEM_ID, C.ENTITY), files["link"])
    ds = Dataset(name, table, item_table, users, kg, link, meta={**meta, **events.to_meta()})
    report = finish_import(ds, root, str(files["inter"]), ignored, drop_unknown, files.get("item"))
    report.unreadable = unreadable
    return report


def _need(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> None:
    for col in cols:
        if col not in df.columns:
            raise DataError(
                f"missing column (found: {', '.join(df.columns)})", file=str(path), column=col
            )
