"""``llmrec train``: fit a model on every event of a dataset and save it for serving."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmrec import versions
from llmrec.cli._options import (
    RayAddressOption,
    RayStorageOption,
    TrainEngineOption,
    TrainWorkersOption,
    TuneUsersOption,
    parse_params,
    training_engine,
)
from llmrec.config import get_settings
from llmrec.data import dataset as store
from llmrec.data.splits import full_train, holdout
from llmrec.eval.tuning import Trial, tune
from llmrec.jobs.engine import Engine
from llmrec.models import EXTRA_MODELS, MODELS, PIPELINES, get_model_class
from llmrec.service.folder import save_for_serving

out = Console(width=None if Console().is_terminal else 130)
err = Console(stderr=True)

DEFAULT_PIPELINE = "ranker"  # the best on ml-100k loo (BENCHMARKS.md)


def train_command(
    dataset: Annotated[str, typer.Option(help="dataset name (see `llmrec data list`)")],
    model: Annotated[
        str,
        typer.Option(
            help=f"default (= {DEFAULT_PIPELINE}), "
            f"{', '.join([*MODELS, *EXTRA_MODELS, *PIPELINES])}"
        ),
    ] = "default",
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="folder of model versions (default: $LLMREC_HOME/models/<dataset>-<model>)",
        ),
    ] = None,
    make_current: Annotated[
        bool,
        typer.Option(
            "--current/--candidate",
            help="make the new version the one served (default), or only write it (for an "
            "A/B test or a later `llmrec models use`)",
        ),
    ] = True,
    keep: Annotated[
        int, typer.Option(min=1, help="versions kept in the folder (the oldest are deleted)")
    ] = 5,
    param: Annotated[
        list[str] | None, typer.Option(help="fix a hyper-parameter: key=value (repeatable)")
    ] = None,
    tune_params: Annotated[
        bool, typer.Option("--tune/--no-tune", help="search hyper-parameters on validation")
    ] = True,
    seed: Annotated[int | None, typer.Option(help="seed (default: $LLMREC_SEED)")] = None,
    tune_users: TuneUsersOption = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="events store to add (default: $LLMREC_HOME/llmrec.db when it exists)"
        ),
    ] = None,
    engine: TrainEngineOption = Engine.local,
    workers: TrainWorkersOption = 2,
    ray_address: RayAddressOption = None,
    ray_storage: RayStorageOption = None,
) -> None:
    """Tune on each user's latest event, then deploy on all events (nothing is held back).

    Each run writes a new version (``--out``/versions/vN) beside the earlier ones; the folder
    loads with ``Recommender.load`` and is what ``llmrec serve`` serves (its current version).
    """
    s = get_settings()
    name = DEFAULT_PIPELINE if model == "default" else model
    cls = get_model_class(name)
    seed = s.seed if seed is None else seed
    params = {"seed": seed, **parse_params(param or [])}
    on_engine, on_ray = training_engine(
        engine, workers, ray_address, ray_storage, [(name, params)], err
    )
    ds = store.load(s.datasets_dir, dataset)
    store_seq = 0
    if db or s.events_db.is_file():
        from llmrec.cli._options import open_store
        from llmrec.service.store import with_store

        ds, store_seq = with_store(ds, open_store(db, create=False))
    target = out_dir or s.models_dir / f"{dataset}-{name}"
    stages: dict[str, float] = {}
    t_all = time.perf_counter()
    with err.status(f"{name}: preparing {dataset}") as status:
        t0 = time.perf_counter()
        data = full_train(ds)
        del ds  # its string ids (a GiB at 20M events) are not needed while training
        n_tune = s.tune_users if tune_users is None else tune_users
        # a model that may recommend what users had validates on their latest event
        split = holdout(data, tune_users=n_tune, seed=seed, repeats=bool(params.get("repeats")))
        said = split.repeats or {}
        if said.get("valid_targets_repeat") and split.protocol != "repeats":
            err.print(
                f"{name}: {said['valid_targets_repeat']:,} of {said['valid_users']:,} "
                "validation users' latest events repeat items they had: lists exclude "
                "history, so the ranker scores 0 on them and validation NDCG@10 here is "
                "below `llmrec eval`'s (loo validates on new items); --param repeats=true "
                "to recommend repeats",
                highlight=False,
                soft_wrap=True,
            )
        if split.valid_users_all is not None:
            err.print(
                f"{name}: tuning on {len(split.valid.user_idx):,} of "
                f"{split.valid_users_all:,} validation users (seeded sample, --tune-users)",
                highlight=False,
            )
        stages["prepare data"] = time.perf_counter() - t0
        probe = cls(**params)
        probe.check_fits(data.n_users, data.n_items)  # refuse before any fitting
        paths = probe.size_note(data.n_items)
        if paths:  # which path each part takes at this size
            err.print(f"{name} at {data.n_items:,} items: {paths}", highlight=False)

        def progress(trial: Trial) -> None:
            what = f"{trial.model} trial" if trial.model else "trial"
            status.update(f"{name}: tuning on validation, last {what} {trial.score:.4f}")
            if not err.is_terminal:  # a log or CI: the status line shows nothing there
                elapsed = time.perf_counter() - t_all
                err.print(
                    f"[{elapsed:7.1f} s] {name}: {what} valid ndcg@10 {trial.score:.4f} "
                    f"({trial.fit_seconds:.1f} s)",
                    highlight=False,
                    soft_wrap=True,
                )

        with on_engine:
            result = tune(cls, split, params, search=tune_params, on_trial=progress)
        stages.update(getattr(result.model, "stage_seconds_", {}) or {"fit": result.fit_seconds})
        status.update(f"{name}: observing all {len(data.log):,} events")
        t0 = time.perf_counter()
        result.model.observe(data)
        info = {
            "dataset": dataset,
            "model": name,
            "params": result.params,
            "valid_ndcg@10": result.valid_score,
            "stage_seconds": stages,  # filled in as stages end
            "n_users": data.n_users,
            "n_items": data.n_items,
            "n_events": len(data.log),
            "tune_users": len(split.valid.user_idx),  # validation users tuning looked at
            "holdout": split.repeats,  # repeat consumption around the held-out items
            "paths": result.model.size_note(data.n_items),
            "engine": {"name": str(engine), "workers": workers, "data_parallel": on_ray}
            if on_ray
            else {"name": "local"},
            "store_seq": store_seq,  # the service replays stored events after this one
            "created": int(time.time()),
        }
        stages["observe all events"] = time.perf_counter() - t0

        def write(folder: Path) -> None:  # the version, whole, before anyone can see it
            t0 = time.perf_counter()
            save_for_serving(result.model, data, folder, info)
            stages["save"] = time.perf_counter() - t0
            info["total_seconds"] = time.perf_counter() - t_all
            _write_json(folder / "training.json", info)

        status.update(f"{name}: saving a new version in {target}")
        version = versions.publish(target, write, make_current=make_current, keep=keep)
    total = info["total_seconds"]
    out.print(
        f"{name} on {dataset}: {total:.0f} s, validation NDCG@10 {result.valid_score:.4f}",
        highlight=False,
    )
    table = Table()
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, sec in stages.items():
        table.add_row(stage, f"{sec:.1f}")
    out.print(table)
    role = "current" if make_current else "candidate (not served until chosen)"
    out.print(f"saved: {target} version {version}, {role}", highlight=False)


def _write_json(path: Path, info: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=2, default=str))
    os.replace(tmp, path)
