"""Batch embedding of item and user-profile texts with a bundled text encoder, as Parquet.

Texts are built on the driver (the templates of ``llmrec.text``: what the content models
embed); each worker loads the encoder once and embeds its partitions in batches. Output:
the id and an L2-normalised float32 vector (fixed-size list) per row, in input order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.encoders.base import encode
from llmrec.encoders.models import ENCODERS, get_encoder
from llmrec.errors import ConfigError
from llmrec.jobs.engine import JobResult, Run, run_job
from llmrec.models.content import items_frame
from llmrec.text.templates import item_texts, user_texts


class EmbedBatch:
    """One partition of (``id``, ``text``) rows -> (``id_column``, ``vector``)."""

    def __init__(self, encoder: str, id_column: str, encode_batch: int) -> None:
        self.encoder = get_encoder(encoder)
        self.id_column, self.encode_batch = id_column, encode_batch

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        vecs = encode(
            self.encoder, batch["text"].tolist(), batch_size=self.encode_batch, progress=False
        )
        dim = self.encoder.dim
        flat = pa.array(np.ascontiguousarray(vecs, np.float32).ravel(), pa.float32())
        return pa.table(
            {
                self.id_column: pa.array(batch["id"].astype(str).to_numpy()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            }
        )


def texts_of(ds: Dataset, what: Literal["items", "users"]) -> pd.DataFrame:
    """(id, text) rows: every item of the catalogue, or every user with events."""
    from llmrec.data.splits import full_train

    if what not in ("items", "users"):
        raise ConfigError(f"embed: what is 'items' or 'users', not {what!r}")
    if what == "items":
        items = ds.items.drop_duplicates(C.ITEM_ID)
        texts = item_texts(items, None, ds.kg, ds.item_entity)
        return pd.DataFrame({"id": items[C.ITEM_ID].astype(str).to_numpy(), "text": texts})
    data = full_train(ds)  # the user-text model's profiles: demographics + recent items
    titles = items_frame(data)[C.TITLE].astype(str).to_numpy()
    texts = user_texts(data.log, data.n_users, titles, data.user_table)
    return pd.DataFrame({"id": data.users.ids, "text": texts})


def embed_texts(
    ds: Dataset,
    what: Literal["items", "users"],
    out: Path,
    run: Run | None = None,
    encoder: str = "minilm",
    encode_batch: int = 64,
) -> JobResult:
    """Embed the item catalogue or the user profiles of ``ds`` into ``out``."""
    run = run or Run()
    if encoder not in ENCODERS:
        raise ConfigError(f"unknown encoder {encoder!r}: choose one of {', '.join(ENCODERS)}")
    texts = texts_of(ds, what)
    id_column = C.ITEM_ID if what == "items" else C.USER_ID
    params = {"dataset": ds.name, "what": what, "encoder": encoder}
    return run_job(
        f"embed {what}",
        texts,
        EmbedBatch,
        {"encoder": encoder, "id_column": id_column, "encode_batch": encode_batch},
        out,
        run,
        params=params,
    )
