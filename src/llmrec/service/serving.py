"""What the routes share: the store, the served model version(s), keys and rate limits.

One version serves every request unless an A/B split is on: then a stable hash of the user
id sends a share of users to a second version (``Split``), both versions take every write
(events, items, deletions), and the lists of both are logged as impressions with their
version, for ``llmrec ab``. Reload, rollback and the split each load the new version beside
the old one, which keeps answering, and swap under the write lock.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec import versions
from llmrec.config import SERVE
from llmrec.errors import ConfigError
from llmrec.service.folder import load_folder
from llmrec.service.follower import Follower
from llmrec.service.group_commit import GroupCommit, commit_events
from llmrec.service.keys import Key, digest, lookup
from llmrec.service.live import LiveModel
from llmrec.service.reports import Reports
from llmrec.service.store import Store

MISSING = object()


class SplitConflict(ConfigError):
    """The variant cannot be compared with the served version (another catalogue)."""


@dataclass(frozen=True)
class Split:
    """Users whose hash falls below ``share`` see ``live`` (variant B)."""

    live: LiveModel
    share: float

    def takes(self, user_id: str) -> bool:
        # salted by the version: a new experiment reshuffles who is in which arm
        h = hashlib.sha256(f"{self.live.version}\x00{user_id}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2.0**64 < self.share


class Service:
    """The live model (swapped whole on reload), an optional A/B split, keys."""

    def __init__(
        self,
        store: Store,
        model_dir: Path,
        reports_dir: Path = SERVE.reports,
        shared_store: bool = SERVE.shared_store,
        **live_options: Any,
    ) -> None:
        """``shared_store``: other processes serve from the same store; apply what they
        write before every request (``service.follower``)."""
        self.store = store
        self.reports = Reports(reports_dir)
        self.model_dir = Path(model_dir)  # a folder of versions, or a plain model folder
        self.live_options = live_options
        # told each batch's size (lists scored in one pass); read at call time, so the app
        # can set it after the first model loads
        self.on_batch: Callable[[int], None] = lambda n: None
        # what the store holds before the model loads: a write that lands while it loads is
        # applied by the first poll (again, if the load saw it too: each write is idempotent)
        self.follower = Follower(self) if shared_store else None
        self.live = self._load(self.model_dir)
        self.split: Split | None = None
        self.write_lock = threading.Lock()  # store commit + live apply, atomic w.r.t. reload
        self.reload_id = ""  # changes with every reload: replicas reload when it does
        if self.follower is not None:
            self._adopt_at_start()
        self.events = GroupCommit(lambda batches: commit_events(self, batches))
        self._keys: dict[str, tuple[Key | None, float]] = {}
        self._buckets: dict[int, tuple[float, float]] = {}
        self._bucket_lock = threading.Lock()

    # --- versions ------------------------------------------------------------------------
    def _load(self, folder: Path) -> LiveModel:
        live = LiveModel(load_folder(folder), self.store, **self.live_options)
        live.batches.on_run = lambda n: self.on_batch(n)
        return live

    def follow(self) -> None:
        """Catch up with other processes' writes to a shared store (no-op otherwise): every
        request with a key does, before its route runs (``deps.role``)."""
        if self.follower is not None:
            self.follower.poll()

    def live_for(self, user_id: str) -> LiveModel:
        """The version that answers this user (the same one every time while a split runs)."""
        split = self.split
        return split.live if split is not None and split.takes(user_id) else self.live

    def lives(self) -> list[LiveModel]:
        """Every loaded version: each takes every write."""
        return [self.live] if self.split is None else [self.live, self.split.live]

    def shares(self) -> dict[str, float]:
        """Served version -> share of users it answers."""
        split = self.split
        if split is None:
            return {self.live.version: 1.0}
        return {self.live.version: 1.0 - split.share, split.live.version: split.share}

    def reload(
        self, model_dir: Path | None = None, version: str | None = None, publish: bool = True
    ) -> str:
        """Serve ``version`` of ``model_dir`` (defaults: the served folder, its current
        version) and make it the folder's current one. The new model loads beside the old,
        which keeps answering reads; writes wait for the load (seconds), so the new model
        starts from exactly what the store holds and nothing falls between the two."""
        home = Path(model_dir) if model_dir else self.model_dir
        with self.write_lock:
            fresh = self._load(versions.resolve(home, version))
            if version is not None:
                versions.set_current(home, version)
            old, self.live, self.model_dir = self.live, fresh, home
            old.close()
        if publish:
            self.reload_id = uuid.uuid4().hex
            self._publish()
        return fresh.version

    # --- what replicas on a shared store serve (``follower``) -----------------------------
    def serving(self) -> dict[str, Any]:
        """What this process serves, as the replicas of a shared store compare it."""
        split = self.split
        return {
            "model_dir": str(self.model_dir.resolve()),
            "version": self.live.folder.name if versions.is_home(self.model_dir) else None,
            "reload_id": self.reload_id,
            "split": None
            if split is None
            else {"version": split.live.folder.name, "share": split.share},
        }

    def _publish(self) -> None:
        if self.follower is not None:
            self.follower.published(self.store.set_serving_state(self.serving()))

    def adopt(self, state: dict[str, Any]) -> None:
        """Serve what another replica set (``serving()`` of it), without publishing back."""
        if state["reload_id"] != self.reload_id:
            self.reload(Path(state["model_dir"]), state["version"], publish=False)
            self.reload_id = state["reload_id"]
        split, mine = state["split"], self.split
        if split is None and mine is not None:
            self.stop_split(publish=False)
        elif split is not None and (
            mine is None
            or (mine.live.folder.name, mine.share) != (split["version"], split["share"])
        ):
            self.start_split(split["version"], split["share"], publish=False)

    def _adopt_at_start(self) -> None:
        """A replica that starts after admin changes serves what the others do, when it
        was started on the same model folder (else its own ``--model``, until the next
        change)."""
        assert self.follower is not None
        rev, state = self.store.serving_state()
        if state is not None and Path(state["model_dir"]) == self.model_dir.resolve():
            if state["version"] in (None, self.live.folder.name):
                self.reload_id = state["reload_id"]  # loaded already: no second load
            self.adopt(state)
        self.follower.published(rev)

    def rollback(self) -> str:
        """Serve the version before the one served now (and make it current)."""
        home, served = self.model_dir, self.live.folder
        if not versions.is_home(home):
            raise versions.NotVersionedError(
                f"{home.name} is a single model folder: no versions to roll back"
            )
        before = versions.previous(home, served.name)
        if before is None:
            raise versions.UnknownVersionError(f"no version before {served.name} in {home.name}")
        return self.reload(version=before)

    def start_split(self, version: str, share: float, publish: bool = True) -> Split:
        """Send ``share`` of users to ``version`` of the served folder (replaces any split)."""
        folder = versions.resolve(self.model_dir, version)
        fresh = self._load(folder)
        if fresh.dataset != self.live.dataset:
            fresh.close()
            raise SplitConflict(
                f"version {version} was trained on {fresh.dataset!r}, the served one on "
                f"{self.live.dataset!r}: an A/B test needs the same catalogue"
            )
        with self.write_lock:
            old, self.split = self.split, Split(fresh, share)
        if old is not None:
            old.live.close()
        if publish:
            self._publish()
        return self.split

    def stop_split(self, publish: bool = True) -> None:
        with self.write_lock:
            old, self.split = self.split, None
        if old is not None:
            old.live.close()
        if publish:
            self._publish()

    def put_item(self, item: pd.DataFrame) -> None:
        for live in self.lives():
            live.put_item(item)
        if self.follower is not None:  # applied here: a poll need not apply it again
            for row in item.to_dict("records"):
                self.follower.saw_item(row)

    def delete_user(self, user_id: str) -> int:
        with self.write_lock:
            n = self.store.delete_user(user_id)
            if self.follower is not None:
                self.follower.saw_deletion(user_id)
            for live in self.lives():
                live.delete_user(user_id)
        return n

    # --- keys ----------------------------------------------------------------------------
    def cached_key(self, secret: str) -> Key | None | object:
        """The key from memory, or ``MISSING`` when it must be read from the store."""
        hit = self._keys.get(digest(secret))
        if hit is None or hit[1] < time.monotonic():
            return MISSING
        return hit[0]

    def key(self, secret: str) -> Key | None:
        """Keys are re-read after 5 s, so a revocation takes effect within 5 s."""
        hit = self.cached_key(secret)
        if hit is not MISSING:
            return hit  # type: ignore[return-value]
        key = lookup(self.store, secret)
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[digest(secret)] = (key, time.monotonic() + 5.0)
        return key

    def allow(self, key: Key) -> float | None:
        """Token bucket per key (capacity = one second's worth): None, or seconds to wait."""
        if key.rate_limit <= 0:
            return None
        now = time.monotonic()
        with self._bucket_lock:
            tokens, last = self._buckets.get(key.id, (key.rate_limit, now))
            tokens = min(key.rate_limit, tokens + (now - last) * key.rate_limit)
            if tokens < 1.0:
                self._buckets[key.id] = (tokens, now)
                return (1.0 - tokens) / key.rate_limit
            self._buckets[key.id] = (tokens - 1.0, now)
            return None
