"""Where a batch job runs: in this process (default; Ray is never imported) or on Ray Data.

A job is a callable class over partitions (pandas in, Arrow table out): the local engine
builds it once and feeds it the partitions in order; the Ray engine maps it over a Ray
Dataset with a pool of actors (each builds it once, so an encoder or a model is loaded once
per worker; large ``shared`` objects go to the object store once). Both write Parquet parts
into a hidden folder next to ``out`` and swap it in when every part is written.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from llmrec.atomic import replace_folder
from llmrec.config import get_settings
from llmrec.errors import ConfigError, LlmrecError

RAY_HINT = (
    "the Ray engine needs Ray: pip install 'llmrec[ray]' (on this machine and on every "
    "worker of the cluster), or run with --engine local"
)


class Engine(StrEnum):
    local = "local"
    ray = "ray"


@dataclass(frozen=True)
class Run:
    """How to run a job. ``workers``: Ray actors (each one CPU and one thread; a local
    cluster gets that many CPUs); the local engine uses ``LLMREC_THREADS`` threads.
    ``address``: an existing Ray cluster ("auto", "ray://host:10001"); None starts a
    local one for the job and stops it after."""

    engine: Engine = Engine.local
    address: str | None = None
    workers: int = 2
    batch_size: int = 1024
    progress: bool = False

    def __post_init__(self) -> None:
        try:  # the Python API may pass "ray"
            object.__setattr__(self, "engine", Engine(self.engine))
        except ValueError:
            raise ConfigError(f"unknown engine {self.engine!r}: local or ray") from None
        if self.workers < 1 or self.batch_size < 1:
            raise ConfigError("workers and batch_size must be at least 1")
        if self.address and self.engine is not Engine.ray:
            raise ConfigError("--ray-address needs --engine ray")


@dataclass
class JobResult:
    """What a job wrote (also saved as ``_job.json`` in ``out``)."""

    job: str
    out: str
    engine: str
    rows: int
    inputs: int
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)


class BatchFn(Protocol):
    def __call__(self, batch: pd.DataFrame) -> pa.Table: ...


def require_ray() -> ModuleType:
    """``ray`` with Ray Data, or a LlmrecError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra, not just the core)
    except ImportError as e:
        raise LlmrecError(f"{RAY_HINT} ({e})") from None
    return ray


def resolve(value: Any) -> Any:
    """A shared object inside a worker: fetched from the object store when it is a reference."""
    ray = sys.modules.get("ray")  # a worker of the Ray engine has it imported
    if ray is not None and isinstance(value, ray.ObjectRef):
        return ray.get(value)
    return value


def run_job(
    name: str,
    inputs: pd.DataFrame,
    fn: Callable[..., BatchFn],
    kwargs: dict[str, Any],
    out: Path,
    run: Run,
    shared: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    summary: tuple[list[str], Callable[[list[pa.Table]], dict[str, Any]]] | None = None,
) -> JobResult:
    """``fn(**kwargs, **shared)`` mapped over ``inputs`` in ``run.batch_size`` rows, written
    as Parquet parts under ``out`` (replaced atomically on a local or shared filesystem).
    ``summary`` = (columns, fn): ``fn`` turns those columns of every part into more
    ``params`` (recorded in ``_job.json``)."""
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    t0 = time.perf_counter()
    try:
        if run.engine is Engine.ray:
            _run_ray(inputs, fn, kwargs, shared or {}, tmp, run)
        else:
            _run_local(inputs, fn(**kwargs, **(shared or {})), tmp, run)
        parts = sorted(tmp.glob("*.parquet"))
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        params = dict(params or {})
        if summary is not None:
            columns, fn = summary
            params.update(fn([pq.read_table(p, columns=columns) for p in parts]))
        seconds = round(time.perf_counter() - t0, 3)
        result = JobResult(name, str(out), run.engine, rows, len(inputs), seconds, params)
        (tmp / "_job.json").write_text(json.dumps(asdict(result), indent=2, default=str))
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def read_output(out: Path) -> pd.DataFrame:
    """Every Parquet part of a job's output as one frame."""
    parts = sorted(Path(out).glob("*.parquet"))
    if not parts:
        raise LlmrecError(f"{out}: no job output (Parquet parts) here")
    return pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()


def _run_local(inputs: pd.DataFrame, fn: BatchFn, tmp: Path, run: Run) -> None:
    from rich.progress import Progress

    threads = get_settings().threads
    writer: pq.ParquetWriter | None = None
    bar = Progress(transient=True, disable=not run.progress)
    try:
        with threadpool_limits(limits=threads), _torch_threads(threads), bar:
            task = bar.add_task("batches", total=len(inputs))
            for lo in range(0, len(inputs), run.batch_size):
                table = fn(inputs.iloc[lo : lo + run.batch_size].reset_index(drop=True))
                if writer is None:
                    writer = pq.ParquetWriter(tmp / "part-00000.parquet", table.schema)
                writer.write_table(table)
                bar.advance(task, min(run.batch_size, len(inputs) - lo))
    finally:
        if writer is not None:
            writer.close()


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Torch's intra-op threads for the job (top-k selection, encoders), restored after."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_ray(
    inputs: pd.DataFrame,
    fn: Callable[..., BatchFn],
    kwargs: dict[str, Any],
    shared: dict[str, Any],
    tmp: Path,
    run: Run,
) -> None:
    ray = require_ray()
    with ray_session(run) if not ray.is_initialized() else nullcontext():
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = run.progress
        refs = {k: ray.put(v) for k, v in shared.items()}  # once, whatever the actor count
        # a few blocks per actor (a slow one does not hold the rest), each of whole batches:
        # the partitions are the local engine's, so a model sees the same batches
        n_batches = -(-len(inputs) // run.batch_size)
        per_block = -(-n_batches // max(1, min(n_batches, 8 * run.workers))) * run.batch_size
        ds = ray.data.from_pandas(_split(inputs, per_block) or [inputs])
        mapped = ds.map_batches(
            fn,
            fn_constructor_kwargs={**kwargs, **refs},
            batch_size=run.batch_size,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=run.workers),
            num_cpus=1,
        )
        try:
            mapped.write_parquet(str(tmp))
        except Exception as e:  # a worker's LlmrecError is the user's error, not Ray's
            cause = getattr(e, "cause", None) or e.__cause__
            if isinstance(cause, LlmrecError):
                raise type(cause)(str(cause)) from None
            raise


@contextmanager
def ray_session(run: Run) -> Iterator[None]:
    """Connect to ``run.address``, or start a local cluster of ``run.workers`` CPUs."""
    ray = require_ray()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if run.address:
        try:
            ray.init(address=run.address, log_to_driver=False, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise LlmrecError(f"cannot reach the Ray cluster at {run.address!r}: {e}") from None
    else:
        ray.init(
            num_cpus=run.workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="WARNING",
            # workers import llmrec from this environment, with this process's settings
            runtime_env={"env_vars": _llmrec_env()},
        )
    try:
        yield
    finally:
        ray.shutdown()


def _llmrec_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("LLMREC_")}
    env["LLMREC_THREADS"] = "1"  # one CPU per actor
    # workers start in another folder: a relative home would be another (cold) cache
    env["LLMREC_HOME"] = str(get_settings().home.resolve())
    return env


def _split(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [df.iloc[lo : lo + size].reset_index(drop=True) for lo in range(0, len(df), size)]


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an earlier job's output (or an empty folder)."""
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and ((out / "_job.json").is_file() or not any(out.iterdir())):
        return
    raise LlmrecError(f"{out} exists and is not a job's output: choose another --out")
