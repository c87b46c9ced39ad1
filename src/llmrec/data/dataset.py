"""The canonical tables of one dataset and their on-disk form (Parquet + manifest, atomic)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from llmrec.data import columns as C
from llmrec.errors import UnknownDatasetError

_TABLES = ("interactions", "items", "users", "kg", "item_entity")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass
class Dataset:
    """Canonical tables (docs/design.md). ``extra`` holds dataset-specific tables (a bandit log)."""

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    kg: pd.DataFrame | None = None
    item_entity: pd.DataFrame | None = None
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {t: getattr(self, t) for t in _TABLES if getattr(self, t) is not None}
        out.update(self.extra)
        return out

    SUMMARY: ClassVar[tuple[str, ...]] = ("interactions", "users", "items")

    def summary(self) -> dict[str, int]:
        return {
            "interactions": len(self.interactions),
            "users": int(self.interactions[C.USER_ID].nunique()),
            "items": len(self.items),
        }


MAX_NAME_LENGTH = 100  # a folder name, with room for the hidden staging prefix


def check_name(name: str) -> str:
    if not name or not set(name) <= _NAME_OK or name.startswith("."):
        raise UnknownDatasetError(
            f"invalid dataset name {name[:MAX_NAME_LENGTH]!r}: use letters, digits, '-', '_' "
            "and '.'"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise UnknownDatasetError(
            f"dataset name of {len(name)} characters: use at most {MAX_NAME_LENGTH}"
        )
    return name


def dataset_path(root: Path, name: str) -> Path:
    return root / check_name(name)


def exists(root: Path, name: str) -> bool:
    return (dataset_path(root, name) / "manifest.json").is_file()


def list_datasets(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if not p.name.startswith(".") and exists(root, p.name)
    )


def save(ds: Dataset, root: Path) -> Path:
    """Write ``ds`` under ``root/<name>`` atomically (see ``writing``)."""
    with writing(root, ds.name) as version:
        for table, df in ds.tables().items():
            df.to_parquet(version.path / f"{table}.parquet", index=False)
        # the counts are the tables' own, whatever a loaded dataset's meta still says
        version.manifest.update({**ds.meta, **ds.summary(), "tables": sorted(ds.tables())})
    return dataset_path(root, ds.name)


@dataclass
class Version:
    """A dataset version being written: its folder and the manifest the writer fills in
    (``tables``, the counts of ``Dataset.summary``, any meta)."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)


@contextmanager
def writing(root: Path, name: str) -> Iterator[Version]:
    """A fresh hidden version folder to write a dataset's ``<table>.parquet`` files into,
    table by table or chunk by chunk. On a clean exit the manifest is written and a symlink
    named after the dataset is swapped onto the folder with one ``os.replace``: readers see
    the old dataset or the new one, never a half-written one; an error removes the folder,
    and a crash leaves at most an orphan hidden folder (cleaned on next save)."""
    root.mkdir(parents=True, exist_ok=True)
    link = dataset_path(root, name)
    version = root / f".{name}@{uuid.uuid4().hex[:12]}"  # "@" never occurs in a name
    try:
        version.mkdir()
        written = Version(version)
        yield written
        if "tables" not in written.manifest:
            raise ValueError("dataset.writing: the writer set no manifest['tables']")
        manifest = {"name": name, **written.manifest}
        (version / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _fsync_dir(version)
        tmp_link = root / f".{name}@link-{uuid.uuid4().hex[:8]}"
        os.symlink(version.name, tmp_link)
        if link.exists() and not link.is_symlink():
            shutil.rmtree(link)  # a plain folder from a copy: replace it as a whole
        os.replace(tmp_link, link)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    _remove_stale_versions(root, name, keep=version.name)


def load(root: Path, name: str) -> Dataset:
    path = dataset_path(root, name)
    if not exists(root, name):
        have = ", ".join(list_datasets(root)) or "none"
        raise UnknownDatasetError(
            f"dataset {name!r} not found in {root} (have: {have}); "
            f"run `llmrec data fetch {name}` or `llmrec data import {name} ...`"
        )
    manifest = json.loads((path / "manifest.json").read_text())
    frames = {t: pd.read_parquet(path / f"{t}.parquet") for t in manifest["tables"]}
    core = {t: frames.pop(t, None) for t in _TABLES}
    derived = {"name", "tables", *Dataset.SUMMARY}  # recomputed from the tables on save
    meta = {k: v for k, v in manifest.items() if k not in derived}
    return Dataset(name=name, extra=frames, meta=meta, **core)  # type: ignore[arg-type]


def _remove_stale_versions(root: Path, name: str, keep: str) -> None:
    for p in root.glob(f".{name}@*"):
        if p.name == keep:
            continue
        if p.is_symlink():
            p.unlink(missing_ok=True)
        else:
            shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
