"""Group commit of events: concurrent writers share one transaction and one fsync.

Each ``POST /v1/events`` used to commit on its own, so eight writers queued behind eight
fsyncs. Now a request queues its rows and waits for the single flusher
(``batching.Batcher``): whoever takes the flush lock commits everything queued by then in one
transaction, then wakes each request with its own result. No timer: under no load a request
is flushed at once, under load batches form by themselves. A request still returns only
after the transaction holding its rows has committed, so every 202 is durable.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from llmrec.data import columns as C
from llmrec.service.batching import Batcher
from llmrec.service.errors import UnknownItemError
from llmrec.service.live import LiveModel
from llmrec.service.store import Store, Stored

Rows = list[dict[str, Any]]
Result = list[Stored] | UnknownItemError


class _Shared(Protocol):  # what the service gives the writer (the live model swaps on reload)
    store: Store
    live: LiveModel
    write_lock: threading.Lock

    def lives(self) -> list[LiveModel]: ...


class GroupCommit(Batcher[Rows, list[Stored]]):
    """``submit(rows)`` -> the rows' ``Stored`` results, or raises what their commit raised
    (``UnknownItemError`` for a request naming an item not in the catalogue: only that
    request fails, the others in its batch are stored). ``on_run(n)``: n requests shared a
    transaction."""


def commit_events(shared: _Shared, batches: list[Rows]) -> list[Result]:
    """Store the requests' rows in one transaction and apply the new ones to the live model
    (under the write lock: atomic with respect to a reload). A request naming an unknown
    item is left out with its error; the others are committed."""
    with shared.write_lock:
        live = shared.live
        out: list[Result | None] = [None] * len(batches)
        kept: list[int] = []
        for i, rows in enumerate(batches):
            try:
                live.check_items([r[C.ITEM_ID] for r in rows])
                kept.append(i)
            except UnknownItemError as e:
                out[i] = e
        flat = [r for i in kept for r in batches[i]]
        stored = shared.store.add_events(flat) if flat else []
        new = [{**r, "seq": s.seq} for r, s in zip(flat, stored, strict=True) if not s.duplicate]
        live.add_events(new)
        for other in shared.lives()[1:]:  # an A/B variant: the items it knows
            other.add_events([r for r in new if r[C.ITEM_ID] in other.model.items_])
        at = 0
        for i in kept:
            out[i], at = stored[at : at + len(batches[i])], at + len(batches[i])
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]
