"""What a model is fitted on: the training interactions over fixed user and item indices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.data import columns as C
from llmrec.data.ids import IdMap


@dataclass(frozen=True)
class TrainData:
    """Training interactions indexed densely; item index order is the protocol's id order.

    ``matrix`` is binary (implicit feedback: every interaction counts once per user-item pair);
    ``recency`` has the same pattern, valued 1 for the user's latest item, 2 for the one before...
    (by each pair's last interaction), so models can weigh recent history more;
    ``log`` keeps every event, sorted by (user, timestamp, item), for sequence-aware models.
    ``items``/``users`` are the side tables aligned to the indices (rows may be missing values).
    """

    users: IdMap
    items: IdMap
    matrix: sp.csr_matrix
    recency: sp.csr_matrix
    log: pd.DataFrame  # columns user_idx, item_idx, timestamp, event, value
    item_table: pd.DataFrame | None = None
    user_table: pd.DataFrame | None = None
    kg: pd.DataFrame | None = None  # head, relation, tail (text facts for items)
    item_entity: pd.DataFrame | None = None

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @classmethod
    def build(
        cls,
        log: pd.DataFrame,
        users: IdMap,
        items: IdMap,
        item_table: pd.DataFrame | None = None,
        user_table: pd.DataFrame | None = None,
        kg: pd.DataFrame | None = None,
        item_entity: pd.DataFrame | None = None,
    ) -> TrainData:
        """``log`` has user_idx/item_idx columns already (see ``eval.protocols``)."""
        order = np.lexsort((log["item_idx"], log[C.TIMESTAMP], log["user_idx"]))
        log = log.iloc[order].reset_index(drop=True)
        pairs = log.drop_duplicates(["user_idx", "item_idx"], keep="last")
        rank = pairs.groupby("user_idx").cumcount(ascending=False).to_numpy() + 1
        recency = sp.csr_matrix(
            (rank.astype(np.float32), (pairs["user_idx"], pairs["item_idx"])),
            shape=(len(users), len(items)),
        )
        recency.sort_indices()
        matrix = recency.copy()
        matrix.data[:] = 1.0
        return cls(users, items, matrix, recency, log, item_table, user_table, kg, item_entity)

    def subset(self, keep_rows: np.ndarray) -> TrainData:
        """Same indices, fewer interactions (used to carve a validation fold out of training)."""
        return self.with_log(self.log[keep_rows])

    def with_log(self, log: pd.DataFrame) -> TrainData:
        """Same indices and side tables over another event log (e.g. training + validation)."""
        return TrainData.build(
            log,
            self.users,
            self.items,
            self.item_table,
            self.user_table,
            self.kg,
            self.item_entity,
        )


def aligned_table(table: pd.DataFrame | None, key: str, ids: IdMap) -> pd.DataFrame | None:
    """``table`` reindexed so row i describes id ``ids.ids[i]`` (missing ids get empty rows)."""
    if table is None:
        return None
    t = table.copy()
    t[key] = t[key].astype(str)
    return t.set_index(key).reindex(pd.Index(ids.ids, name=key)).reset_index()
