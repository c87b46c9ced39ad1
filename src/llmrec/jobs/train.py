"""Where ``llmrec train`` fits: every part in this process, or (``--engine ray``) the parts
that train data-parallel (SASRec) on Ray Train and the rest here (``eval.data_parallel``).

    with train_on_ray(Run(engine="ray", workers=2)):
        result = tune(Ranker, split, {})  # its SASRec trains on 2 Ray Train workers
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from llmrec.errors import LlmrecError
from llmrec.eval.data_parallel import RayTrain, fit_on_ray
from llmrec.eval.tuning import data_parallel_fit
from llmrec.jobs.engine import RAY_HINT, Engine, Run, ray_session, require_ray
from llmrec.models import get_model_class


def require_ray_train() -> None:
    """Ray with Ray Train and its torch backend, or a LlmrecError saying how to install it."""
    require_ray()
    try:
        import ray.train.torch  # noqa: F401
    except ImportError as e:
        raise LlmrecError(f"{RAY_HINT} ({e})") from None


@contextmanager
def train_on_ray(run: Run, storage: str | None = None) -> Iterator[None]:
    """Within the block ``eval.tuning.tune`` trains data-parallel models on ``run.workers``
    Ray Train workers: on the cluster at ``run.address``, or on a local one of that many CPUs
    started here and stopped after. ``storage``: the checkpoints' folder (a cluster of
    several machines needs one they all reach)."""
    if run.engine is not Engine.ray:
        raise LlmrecError("train_on_ray needs a Run with engine ray")
    require_ray_train()
    fit = partial(fit_on_ray, cfg=RayTrain(run.workers, storage))
    with ray_session(run), data_parallel_fit(fit):
        yield


def data_parallel_parts(name: str, params: dict[str, Any]) -> list[str]:
    """The parts of model ``name`` (itself, its retrievers, its base or CF model) that train
    data-parallel, e.g. ``["sasrec"]`` for the default ranker."""
    family = name.split("#", 1)[0]
    cls = get_model_class(family)
    if cls.data_parallel:
        return [name]
    config = cls(**params).config
    parts: list[tuple[str, dict[str, Any]]] = list(getattr(config, "retrievers", {}).items())
    for field in ("base", "cf"):  # llm-rerank's base model, hybrid's CF model
        if isinstance(getattr(config, field, None), str):
            parts.append((getattr(config, field), getattr(config, f"{field}_params", {}) or {}))
    return [p for part, kw in parts for p in data_parallel_parts(part, kw)]
