"""Data-parallel training of an iterative torch model (SASRec) on Ray Train.

``llmrec train --engine ray`` fits the models that can (``Recommender.data_parallel``) with
``TorchTrainer``: N workers, each with a copy of the network wrapped in DDP (gradients
averaged over the workers every step, gloo on CPU). Every worker draws the same batches from
the same seed and takes its share of each batch's rows, weighted so that the averaged
gradient is the whole batch's: N workers train what one worker would, in the same number of
steps. Worker 0 scores validation on the epochs the early-stopping rule checks
(``tuning.EarlyStopping``, the rule of the local loop), tells the others the score (so all
stop together), and reports the state of each improving epoch as a checkpoint; Ray keeps the
best one, and the caller's model takes its state: it saves, loads and serves as a locally
trained one does. The retrievers that are not data-parallel are fitted in this process.

The Ray session is the caller's (``jobs.train.train_on_ray`` opens it); checkpoints go to
``storage`` (default: a temporary folder here; a cluster of several machines needs one they
all reach, e.g. ``s3://`` or a shared mount).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import llmrec.progress as progress
from llmrec.data.splits import Split
from llmrec.errors import LlmrecError
from llmrec.eval.tuning import EarlyStopping, _scoring_params, best_scoring
from llmrec.models.base import Recommender

if TYPE_CHECKING:
    from ray.util.queue import Queue

SCORE = "valid_ndcg10"


@dataclass(frozen=True)
class RayTrain:
    """``workers``: Ray Train workers (one CPU and one thread each); ``storage``: where
    checkpoints go (None: a temporary folder on this machine)."""

    workers: int = 2
    storage: str | None = None


def fit_on_ray(
    model: Recommender, split: Split, stop: EarlyStopping, fixed: dict[str, Any], cfg: RayTrain
) -> tuple[float, int, float]:
    """``tuning._fit_early_stopped`` on ``cfg.workers`` Ray Train workers: (best validation
    score, its epoch, training seconds up to it); ``model`` ends with that epoch's state."""
    import ray
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    if not ray.is_initialized():
        raise LlmrecError("training on Ray needs a Ray session: use jobs.train.train_on_ray")
    model.prepare(split.valid_train)
    lines = Queue()  # worker 0's line per check, shown here while the run goes on
    config = {
        "lines": lines,
        "model": type(model),
        "params": model.config.model_dump(),
        "split": ray.put(split),
        "stop": stop,
        "fixed": fixed,
    }
    with tempfile.TemporaryDirectory(prefix="llmrec-ray-train-") as tmp:
        trainer = TorchTrainer(
            _worker,
            train_loop_config=config,
            scaling_config=ScalingConfig(
                num_workers=cfg.workers, use_gpu=False, resources_per_worker={"CPU": 1}
            ),
            run_config=RunConfig(
                name=f"{model.name}-{os.getpid()}-{time.time_ns()}",
                storage_path=cfg.storage or tmp,
                checkpoint_config=CheckpointConfig(
                    num_to_keep=1, checkpoint_score_attribute=SCORE, checkpoint_score_order="max"
                ),
            ),
        )
        try:
            with _relay(lines):
                result = trainer.fit()
        except Exception as e:  # a worker's LlmrecError is the user's error, not Ray's
            cause = _llmrec_cause(e)
            if cause is not None:
                raise type(cause)(str(cause)) from None
            raise
        kept = result.best_checkpoints or []
        if not kept:
            raise LlmrecError(f"{model.name}: Ray Train ended without a checkpoint")
        checkpoint, metrics = max(kept, key=lambda cm: (cm[1][SCORE], -cm[1]["epoch"]))
        with checkpoint.as_directory() as folder:
            with np.load(Path(folder) / "state.npz", allow_pickle=False) as npz:
                state = {k: npz[k] for k in npz.files}
            scoring = json.loads((Path(folder) / "scoring.json").read_text())
    model.check_fits(split.valid_train.n_users, split.valid_train.n_items)
    model._bind(split.valid_train)
    model._load_state(state)
    if scoring:
        model.config = model.config.model_copy(update=scoring)
    return float(metrics[SCORE]), int(metrics["epoch"]), float(metrics["seconds"])


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: train its share, check and checkpoint on worker 0."""
    import ray
    import ray.train
    from ray.train import Checkpoint
    from ray.train.collective import broadcast_from_rank_zero

    os.environ["LLMREC_THREADS"] = "1"  # one CPU per worker
    progress.QUIET = True  # no bars in a worker's log: worker 0 prints a line per check
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    split: Split = ray.get(config["split"])
    model: Recommender = config["model"](**config["params"])
    model.shard = (rank, world)  # type: ignore[attr-defined]
    stop: EarlyStopping = config["stop"]
    seconds, t0 = 0.0, time.perf_counter()
    for epoch in model.fit_epochs(split.valid_train):
        seconds += time.perf_counter() - t0
        if stop.due(epoch):
            score = best_scoring(model, split, config["fixed"]) if rank == 0 else None
            score = float(broadcast_from_rank_zero(score))
            improved, done = stop.check(epoch, score, getattr(model, "patience_", 0))
            if rank == 0:  # the driver shows it (progress of a run that takes minutes)
                config["lines"].put(
                    f"{model.name} epoch {epoch}: valid ndcg@10 {score:.4f}"
                    f"{' (best so far)' if improved else ''}, {seconds:.0f} s training"
                )
            metrics = {SCORE: stop.best, "epoch": epoch, "seconds": seconds}
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint = None
                if improved and rank == 0:
                    np.savez(Path(tmp) / "state.npz", **model._state())
                    (Path(tmp) / "scoring.json").write_text(json.dumps(_scoring_params(model)))
                    checkpoint = Checkpoint.from_directory(tmp)
                ray.train.report(metrics, checkpoint=checkpoint)  # every worker, every check
            if done:
                break
        t0 = time.perf_counter()


@contextmanager
def _relay(lines: Queue) -> Iterator[None]:
    """Print the workers' lines on stderr (unless ``--quiet``) while the block runs."""
    from ray.util.queue import Empty

    done = threading.Event()

    def pump() -> None:
        while True:
            try:
                line = lines.get(timeout=0.2)
            except Empty:
                if done.is_set():
                    return
                continue
            if not progress.QUIET:
                sys.stderr.write(line + "\n")

    thread = threading.Thread(target=pump, name="ray-train-lines", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)
        lines.shutdown()  # the queue's actor


def _llmrec_cause(e: BaseException | None) -> LlmrecError | None:
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, LlmrecError):
            return e
        inner = getattr(e, "cause", None) or getattr(e, "worker_failures", None)
        if isinstance(inner, dict):  # v2: {rank: exception}
            inner = next(iter(inner.values()), None)
        e, seen = inner or e.__cause__, seen + 1
    return None
