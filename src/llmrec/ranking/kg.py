"""Knowledge-graph relations between items: two items are related through the entities they
share (director, cast, genre, studio, sequel...), weighted by how rare each entity is.

``kg_item_similarity`` is one step of graph propagation item -> entity -> item; the ranker
scores a candidate by its similarity to the user's recent history through it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.data import columns as C
from llmrec.data.ids import IdMap
from llmrec.models.knn import cosine_neighbours


def item_entity_matrix(
    kg: pd.DataFrame | None, item_entity: pd.DataFrame | None, items: IdMap
) -> sp.csr_matrix:
    """(n_items, n_entities) binary: the KG entities one hop from each linked item, in either
    direction of a triple (Freebase KGs hold both ``film.film.x`` and ``x.film``)."""
    if kg is None or item_entity is None or kg.empty or item_entity.empty:
        return sp.csr_matrix((len(items), 0), dtype=np.float32)
    link = item_entity.assign(item_idx=items.index(item_entity[C.ITEM_ID].astype(str)))
    link = link[link["item_idx"] >= 0]
    film = dict(zip(link[C.ENTITY], link["item_idx"], strict=False))
    head_item = kg[C.HEAD].map(film)
    tail_item = kg[C.TAIL].map(film)
    pairs = pd.concat(
        [
            pd.DataFrame({"item": head_item, "entity": kg[C.TAIL]}),
            pd.DataFrame({"item": tail_item, "entity": kg[C.HEAD]}),
        ]
    ).dropna()
    pairs = pairs.drop_duplicates()
    ent = pd.Index(pairs["entity"].unique())
    return sp.csr_matrix(
        (
            np.ones(len(pairs), dtype=np.float32),
            (pairs["item"].to_numpy(dtype=np.int64), ent.get_indexer(pairs["entity"])),
        ),
        shape=(len(items), len(ent)),
    )


def kg_item_similarity(a: sp.csr_matrix, k: int = 100) -> sp.csr_matrix:
    """Item-item cosine over IDF-weighted shared entities, top ``k`` per item (sparse)."""
    n_items = a.shape[0]
    if a.shape[1] == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    df = np.asarray(a.sum(axis=0)).ravel()
    idf = np.log(n_items / np.maximum(df, 1.0)).astype(np.float32)
    weighted = sp.csr_matrix(a.multiply(idf[None, :]))
    # entities are the "users" of the item-item cosine: columns of the transposed matrix
    return cosine_neighbours(weighted.T.tocsr(), k, shrink=0.0).astype(np.float32)
