"""A served model folder: the model plus what ``llmrec serve`` needs beside it (the training
events by id, the catalogue, the users' profiles, ``training.json``), written atomically."""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.data.matrix import TrainData
from llmrec.errors import LlmrecError
from llmrec.models.base import Recommender
from llmrec.versions import label, resolve

LOG_FILE = "log.parquet"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"  # profiles (optional): shown by the web page, never scored here


@dataclass(frozen=True)
class ModelFolder:
    """A served model folder, read: what ``LiveModel`` starts from."""

    path: Path  # the version's own folder
    version: str  # its label (``versions.label``)
    model: Recommender
    info: dict[str, Any]  # training.json ({} when absent)
    log: pd.DataFrame  # the training events by id (LOG_FILE)
    catalogue: pd.DataFrame  # every item with every column (ITEMS_FILE)

    @property
    def dataset(self) -> str | None:
        return self.info.get("dataset")

    @property
    def store_seq(self) -> int:
        """The last stored event the model was trained on."""
        return int(self.info.get("store_seq", 0))

    def profiles(self, deleted: Container[str]) -> dict[str, dict[str, Any]]:
        return read_profiles(self.path / USERS_FILE, deleted)


def load_folder(path: Path) -> ModelFolder:
    """Read a folder written by ``save_for_serving`` (a folder of versions: its current one);
    a clear error naming the missing file for any other folder."""
    path = resolve(path)
    for f in ("manifest.json", LOG_FILE, ITEMS_FILE):
        try:
            found = (path / f).is_file()
        except OSError as e:  # e.g. a name too long
            raise LlmrecError(f"{str(path)[:200]}: {e.strerror}") from None
        if not found:
            raise LlmrecError(f"{path}: no {f}; serve a folder written by `llmrec train`")
    model = Recommender.load(path)
    info_path = path / "training.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return ModelFolder(
        path,
        label(path),
        model,
        info,
        pd.read_parquet(path / LOG_FILE),
        pd.read_parquet(path / ITEMS_FILE),
    )


def save_for_serving(
    model: Recommender, data: TrainData, folder: Path, info: dict[str, Any]
) -> None:
    """Save ``model`` (fitted on ``data``) as a folder ``llmrec serve`` loads, atomically:
    the model, its training events and catalogue (``write_serving_files``), and
    ``training.json`` = ``info`` (``store_seq``: the last stored event it includes)."""

    def extra(tmp: Path) -> None:
        write_serving_files(tmp, data)
        (tmp / "training.json").write_text(json.dumps(info, indent=2, default=str))

    model.save(folder, extra=extra)


def write_serving_files(folder: Path, data: TrainData) -> None:
    """What ``serve`` needs besides the model: the training events by id, and the catalogue."""
    log = data.log
    out = pd.DataFrame(
        {
            C.USER_ID: data.users.ids[log["user_idx"].to_numpy()],
            C.ITEM_ID: data.items.ids[log["item_idx"].to_numpy()],
            C.TIMESTAMP: log[C.TIMESTAMP].to_numpy(dtype=np.int64),
            C.EVENT: log[C.EVENT].astype(str).to_numpy(),
            C.VALUE: log[C.VALUE].to_numpy(dtype=float),
            **{
                c: log[c].astype("string").to_numpy() if c in log else pd.NA
                for c in C.CONTEXT_COLUMNS
            },
        }
    )
    out.to_parquet(folder / LOG_FILE, index=False)
    table = data.item_table
    if table is None:
        table = pd.DataFrame({C.ITEM_ID: data.items.ids, C.TITLE: data.items.ids})
    table.to_parquet(folder / ITEMS_FILE, index=False)  # every column: requests in words read them
    if data.user_table is not None:
        users = data.user_table.copy()
        users[C.USER_ID] = users[C.USER_ID].astype(str)
        users.to_parquet(folder / USERS_FILE, index=False)


def read_profiles(path: Path, deleted: Container[str]) -> dict[str, dict[str, Any]]:
    """user id -> profile fields (JSON-safe scalars, missing ones left out), from the folder's
    optional users file, without the deleted users."""
    if not path.is_file():
        return {}
    table = pd.read_parquet(path)
    out = {}
    for row in table.to_dict("records"):
        user = str(row.pop(C.USER_ID))
        if user in deleted:
            continue
        fields = {
            str(k): (v.item() if isinstance(v, np.generic) else v)
            for k, v in row.items()
            if np.isscalar(v) and not pd.isna(v)  # the table is aligned: users without fields
        }
        if fields:
            out[user] = fields
    return out
