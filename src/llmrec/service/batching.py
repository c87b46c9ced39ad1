"""Leader/follower batching with no timer: concurrent callers share one run of the work.

A caller queues its item and takes the run lock. Whoever gets the lock first runs everything
queued by then (its own item and those that arrived while the previous run was going) in one
call, then wakes each caller with its own result. Under no load an item runs at once; under
load batches form by themselves, the callers' own wait being the window, so nobody is delayed
to fill a batch. Used for events (one transaction and one fsync for concurrent writers,
``group_commit``) and for uncached recommendation lists (one vectorised model call for
concurrent readers, ``live``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Pending(Generic[T]):
    item: T
    result: Any = None  # R, or the exception to raise in the caller
    done: bool = False


class Batcher(Generic[T, R]):
    """``submit(item)`` -> its result from ``run(batch)``, which returns one result per item
    in order; a result that is an exception is raised in that caller only (the others in its
    batch succeed); an exception out of ``run`` fails every caller in the batch.

    ``lock``: the lock runs hold (by default its own; the live model passes its model lock so
    a run excludes writes); ``max_batch``: the most items one run takes (0: all queued);
    ``on_run(n)`` is told each run's size (for ``/metrics``)."""

    def __init__(
        self,
        run: Callable[[list[T]], list[R | BaseException]],
        lock: AbstractContextManager[Any] | None = None,
        max_batch: int = 0,
    ) -> None:
        self._run = run
        self._lock: AbstractContextManager[Any] = lock if lock is not None else threading.Lock()
        self._max = max_batch
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending[T]] = []
        self.on_run: Callable[[int], None] = lambda n: None

    def submit(self, item: T) -> R:
        mine = _Pending(item)
        with self._queue_lock:
            self._queue.append(mine)
        with self._lock:
            while not mine.done:  # nobody ran it while we waited: run the queue's head
                with self._queue_lock:
                    cut = self._max or len(self._queue)
                    batch, self._queue = self._queue[:cut], self._queue[cut:]
                self._serve(batch)
        if isinstance(mine.result, BaseException):
            raise mine.result
        return mine.result  # type: ignore[no-any-return]

    def _serve(self, batch: list[_Pending[T]]) -> None:
        try:
            results = self._run([p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(results)} results")
        except BaseException as e:  # the whole run failed: so did every caller in it
            for p in batch:
                p.result, p.done = e, True
            return
        for p, r in zip(batch, results, strict=True):
            p.result, p.done = r, True
        self.on_run(len(batch))
