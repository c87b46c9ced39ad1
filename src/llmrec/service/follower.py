"""Replicas: several ``llmrec serve`` processes on one events store (``--shared-store``),
each applying what the others write before it answers.

Every request with a key first compares the store's marks (newest event, item count and
newest change, deleted users: one query) with what this process last saw; only when another
process wrote does it read the new rows: events after the newest applied one (on PostgreSQL
it reads back ``LOOKBACK`` sequence numbers, because PostgreSQL may commit number n+1 before
n; SQLite commits in order; an event already applied is skipped by its number), changed items
(an item this process applied itself is not applied again), and deletions (the store keeps
only digests of deleted ids, so the live users are hashed to find them). So a user's event
posted to one process shapes that user's next list from any other, and a user deleted
through one is gone from all. Admin changes (reload, rollback, A/B) go through the store
too: the process that made one stores what it now serves (``Store.set_serving_state``) and
the others load the same in the background, answering from what they served until the new
version is loaded, as the process itself does on reload. Rate limits stay per process.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.errors import LlmrecError
from llmrec.service.tables import user_digest

if TYPE_CHECKING:
    from llmrec.service.live import LiveModel
    from llmrec.service.serving import Service

LOOKBACK = 1000
log = logging.getLogger(__name__)


def _item_key(row: dict[str, Any]) -> str:
    """An item's content, the same whether the row stood alone (``item_frame``) or in the
    whole items table (where other items' attribute columns are empty for it)."""
    return repr(sorted((k, repr(_plain(v))) for k, v in row.items() if not _missing(v)))


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _plain(v: Any) -> Any:
    """1995, 1995.0 and numpy's 1995 alike (a table column with gaps is float)."""
    v = v.item() if isinstance(v, np.generic) else v
    return int(v) if isinstance(v, float) and v.is_integer() else v


class Follower:
    """What one process has seen of a shared store; ``poll`` catches up (under the write
    lock, so it never interleaves with this process's own writes)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        store = service.store
        self.marks = store.marks()
        self.items = {r[C.ITEM_ID]: _item_key(r) for r in store.items_table().to_dict("records")}
        self.deleted = set(store.deleted_users().digests)  # applied at load
        # SQLite commits one writer at a time, in sequence order: nothing to read back
        self.lookback = 0 if store.dialect == "sqlite" else LOOKBACK
        self.state_rev = 0  # the serving state applied (``Service`` adopts it at start)
        self._state_lock = threading.Lock()
        self._pending = False  # a newer serving state may be in the store
        self._applying: threading.Thread | None = None  # None once it has nothing left
        self._last: threading.Thread | None = None  # for ``wait``

    def poll(self) -> bool:
        """Apply other processes' writes; True when there were any."""
        store = self.service.store
        marks = store.marks()
        if marks == self.marks:
            return False
        with self.service.write_lock:
            marks = store.marks()
            if marks[1:3] != self.marks[1:3]:
                self._items()
            if marks[3] != self.marks[3]:
                self._deletions()
            for live in self.service.lives():
                self._events(live)
            self.marks = marks
        if marks[4] != self.state_rev:
            self._follow_serving()
        return True

    def published(self, rev: int) -> None:
        """This process stored serving state ``rev`` itself: nothing to apply."""
        self.state_rev = rev

    def wait(self, timeout: float | None = None) -> None:
        """Until the serving state seen so far is applied (tests; a clean shutdown)."""
        thread = self._last
        if thread is not None:
            thread.join(timeout)

    def _follow_serving(self) -> None:
        """Another process changed what is served: load the same in the background (one
        thread at a time; a change seen while it runs is applied after, never skipped)."""
        with self._state_lock:
            self._pending = True
            if self._applying is None:
                self._applying = threading.Thread(
                    target=self._apply_loop, name="llmrec-follow-serving", daemon=True
                )
                self._last = self._applying
                self._applying.start()

    def _apply_loop(self) -> None:
        while True:
            with self._state_lock:
                if not self._pending:
                    self._applying = None
                    return
                self._pending = False
            rev, state = self.service.store.serving_state()
            if state is None or rev == self.state_rev:
                continue
            try:
                self.service.adopt(state)
            except LlmrecError as e:  # e.g. a version this replica cannot load: keep serving
                log.warning("could not serve what another replica set (rev %d): %s", rev, e)
            self.state_rev = rev

    def saw_item(self, row: dict[str, Any]) -> None:
        """This process applied the item itself (its own PUT, or a poll): not again."""
        self.items[row[C.ITEM_ID]] = _item_key(row)

    def saw_deletion(self, user_id: str) -> None:
        """This process deleted the user itself: later events of the id count again."""
        self.deleted.add(user_digest(user_id))

    def _items(self) -> None:
        table = self.service.store.items_table()
        rows = table.to_dict("records")
        changed = [n for n, r in enumerate(rows) if self.items.get(r[C.ITEM_ID]) != _item_key(r)]
        if changed:  # put_item tells saw_item
            self.service.put_item(table.iloc[changed].reset_index(drop=True))

    def _deletions(self) -> None:
        """Users another process deleted since the last look (only those: a user deleted
        before who came back with new events stays)."""
        digests = set(self.service.store.deleted_users().digests)
        new = digests - self.deleted
        for live in self.service.lives() if new else ():
            for user in [u for u in live.user_ids() if user_digest(u) in new]:
                live.delete_user(user)
        self.deleted = digests

    def _events(self, live: LiveModel) -> None:
        rows = self.service.store.events_since(max(0, live.max_seq - self.lookback))
        # per row, not ``isin``: a few new rows against a big set of applied numbers and ids
        items = live.model.items_
        keep = [
            int(q) not in live.applied and str(i) in items  # a variant's own catalogue
            for q, i in zip(rows["seq"], rows[C.ITEM_ID], strict=True)
        ]
        live.add_events(rows[keep])
