"""``llmrec eval``: tune on validation, test once, print and report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

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
from llmrec.errors import ConfigError
from llmrec.eval import report
from llmrec.eval.protocols import PROTOCOLS, make_split
from llmrec.eval.runner import EvalRun, run
from llmrec.eval.tuning import Trial, n_trials
from llmrec.jobs.engine import Engine
from llmrec.models import ALL_MODELS, EXTRA_MODELS, MODELS, PIPELINES, get_model_class
from llmrec.rerank import RerankSpec

out = Console(width=None if Console().is_terminal else 130)
err = Console(stderr=True)


def eval_command(
    dataset: Annotated[str, typer.Option(help="dataset name (see `llmrec data list`)")],
    model: Annotated[
        str,
        typer.Option(
            help=f"{', '.join([*MODELS, *EXTRA_MODELS, *PIPELINES])}, or a list; all = "
            "every single model (pipelines by name: all,ranker)"
        ),
    ],
    protocol: Annotated[str, typer.Option(help=" | ".join(PROTOCOLS))] = "loo",
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="fix a hyper-parameter: key=value (repeatable)")
    ] = None,
    tune: Annotated[bool, typer.Option(help="search hyper-parameters on validation")] = True,
    seed: Annotated[int | None, typer.Option(help="seed (default: $LLMREC_SEED)")] = None,
    tune_users: TuneUsersOption = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="several seeds, e.g. 0,1,2: every model once per seed; mean ± sd "
            "and a paired test against the best, per-user NDCG@10 pooled over seeds"
        ),
    ] = None,
    reports: Annotated[Path, typer.Option(help="folder for the --model all report")] = Path(
        "reports"
    ),
    groups: Annotated[
        str | None,
        typer.Option(
            help="NDCG@10 by user group, e.g. gender,age,activity (any user attribute; age in "
            "bands, numbers and activity in terciles): gap, 95% interval, permutation p"
        ),
    ] = None,
    rerank: Annotated[
        str | None,
        typer.Option(
            help="post-ranking stage for the test lists: mmr=S, calibrated=S or tail=S; "
            "S=auto picks the strength of best validation NDCG@10"
        ),
    ] = None,
    tradeoffs: Annotated[
        bool,
        typer.Option(
            "--tradeoffs",
            help="also score the test lists of each reranker at every strength: accuracy "
            "against diversity, calibration and tail exposure (report, chart, web page)",
        ),
    ] = False,
    engine: TrainEngineOption = Engine.local,
    workers: TrainWorkersOption = 2,
    ray_address: RayAddressOption = None,
    ray_storage: RayStorageOption = None,
) -> None:
    """Evaluate models: hyper-parameters chosen on the validation item, test item used once."""
    s = get_settings()
    names = [m.strip() for m in model.split(",") if m.strip()]
    names = list(dict.fromkeys(n for m in names for n in (ALL_MODELS if m == "all" else [m])))
    for n in names:
        get_model_class(n)  # fail fast on a typo, before any work
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    params = parse_params(param or [])
    if params and len(names) > 1:
        raise ConfigError("--param applies to a single --model")
    seed = s.seed if seed is None else seed
    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()] if seeds else [seed]
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: use integers, e.g. 0,1,2") from None
    spec = RerankSpec.parse(rerank, allow_auto=True) if rerank else None
    by = tuple(g.strip() for g in (groups or "").split(",") if g.strip())
    ds = store.load(s.datasets_dir, dataset)
    have = set() if ds.users is None else set(ds.users.columns) - {"user_id"}
    for g in by:
        if g != "activity" and g not in have:
            raise ConfigError(
                f"--groups {g!r}: not a user attribute of {dataset} "
                f"(have: {', '.join(sorted(have | {'activity'}))})"
            )
    on_engine, _ = training_engine(
        engine, workers, ray_address, ray_storage, [(n, params) for n in names], err
    )
    by_seed: dict[int, list[EvalRun]] = {}
    with (
        on_engine,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        for seed in seed_list:
            split = make_split(ds, protocol, seed=seed, tune_users=tune_users)
            if split.valid_users_all is not None:
                err.print(
                    f"tuning on {len(split.valid.user_idx):,} of {split.valid_users_all:,} "
                    f"validation users (seeded sample, --tune-users); the test stage is whole",
                    highlight=False,
                )
            runs = by_seed.setdefault(seed, [])
            for n in names:
                cls = get_model_class(n)
                total = (n_trials(cls, split, {**params, "seed": seed}) or None) if tune else 1
                label = f"{n} (seed {seed})" if len(seed_list) > 1 else n
                task = progress.add_task(f"{label}: tuning on validation", total=total)
                lines = _ProgressLines(label, total, enabled=not err.is_terminal)

                def on_trial(
                    trial: Trial, task: TaskID = task, lines: _ProgressLines = lines
                ) -> None:
                    progress.advance(task)
                    lines.trial(trial)

                lines.start()
                runs.append(
                    run(
                        ds, n, protocol, params, search=tune, seed=seed, split=split,
                        on_trial=on_trial, rerank=spec, groups=by, tradeoffs=tradeoffs,
                    )
                )  # fmt: skip
                progress.update(task, description=f"{label}: done")
                lines.done(runs[-1])
    runs = by_seed[seed_list[0]]
    out.print(_table(runs))
    if len(seed_list) > 1:
        out.print(report.seeds_table(by_seed))
    for line in repeat_lines(runs[0]) + [line for r in runs for line in group_lines(r)]:
        out.print(line, highlight=False)
    if len(runs) > 1 or model == "all":
        paths = report.write(runs, reports)
        out.print(f"report: {paths['markdown']}, chart: {paths['chart']}", highlight=False)
        for name in ("fairness", "tradeoffs"):
            if name in paths:
                out.print(f"{name} chart: {paths[name]}", highlight=False)
    else:
        r = runs[0]
        ranks = report.write_ranks(
            runs, reports / f"{r.dataset}-{r.protocol}-{r.model}.ranks.parquet"
        )
        out.print(f"per-user ranks: {ranks}", highlight=False)
    if json_out is not None:
        docs = [{**r.to_json(), "seed": sd} for sd, rs in by_seed.items() for r in rs]
        single = len(docs) == 1 and model != "all"
        report.write_json(docs[0] if single else docs, json_out)
        out.print(f"results: {json_out}", highlight=False)


class _ProgressLines:
    """Plain progress lines on stderr when it is not a terminal (a file, a pipe, CI), where
    the live bar shows nothing: one line per model start, per trial and per result."""

    def __init__(self, model: str, total: int | None, enabled: bool) -> None:
        self.model, self.total, self.enabled = model, total, enabled
        self.n, self.t0 = 0, time.perf_counter()

    def _say(self, text: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.t0
            err.print(f"[{elapsed:7.1f} s] {self.model}: {text}", highlight=False, soft_wrap=True)

    def start(self) -> None:
        self._say("tuning on validation" + (f" ({self.total} settings)" if self.total else ""))

    def trial(self, trial: Trial) -> None:
        self.n += 1
        of = f"/{self.total}" if self.total else ""
        self._say(f"trial {self.n}{of} valid ndcg@10 {trial.score:.4f} ({trial.fit_seconds:.1f} s)")

    def done(self, r: EvalRun) -> None:
        self._say(f"test ndcg@10 {r.metrics.get('ndcg@10', float('nan')):.4f}")


def group_lines(r: EvalRun) -> list[str]:
    """NDCG@10 by user group, one line per attribute, and the list's beyond-accuracy facts."""
    lines = []
    for attr, g in r.groups.items():
        parts = ", ".join(f"{k} {m:.4f} ({n})" for k, (n, m) in g.groups.items())
        lines.append(
            f"{r.model} ndcg@10 by {attr}: {parts}; gap {g.gap:.4f} "
            f"[{g.low:.4f}, {g.high:.4f}], p {g.p:.2g}"
        )
    m = r.metrics
    if "exposure@10 tail" in m:
        cal = (
            f", miscalibration@10 {m['miscalibration@10']:.3f}" if "miscalibration@10" in m else ""
        )
        stage = f" after {r.rerank}" if r.rerank else ""
        lines.append(
            f"{r.model}{stage}: exposure@10 head/torso/tail {m['exposure@10 head']:.2f}/"
            f"{m['exposure@10 torso']:.2f}/{m['exposure@10 tail']:.2f} (their share of test "
            f"items {m['relevance head']:.2f}/{m['relevance torso']:.2f}/"
            f"{m['relevance tail']:.2f}){cal}"
        )
        if "EE-L@10" in m:
            lines.append(
                f"{r.model}{stage}: expected exposure@10 EE-L {m['EE-L@10']:.3f} EE-D "
                f"{m['EE-D@10']:.3f} EE-R {m['EE-R@10']:.3f}, AWRF@10 {m.get('AWRF@10', 0):.3f}"
            )
    return lines


def repeat_lines(r: EvalRun) -> list[str]:
    """What the protocol did about repeat consumption, in words (empty when nothing)."""
    n = r.repeats or {}
    if r.protocol == "repeats":
        lines = [
            f"repeats: {n.get('test_targets_repeat', 0)} of {r.n_users} test targets are items "
            "the user had before (nothing is excluded from the ranking)"
        ]
        for part in ("repeat", "new"):
            lines.append(
                f"  {part} targets: "
                + ", ".join(f"{m} {r.metrics.get(f'{m} {part}', float('nan')):.4f}"
                            for m in ("recall@10", "ndcg@10"))
            )  # fmt: skip
        return lines
    if n.get("users_latest_event_repeat"):
        return [
            f"repeats: {n['users_latest_event_repeat']} of {r.n_users} users' latest events "
            f"repeat items they had; they are evaluated on their latest new item "
            f"({n['events_after_test_left_out']} later events left out; "
            "`--protocol repeats` scores repeat targets)"
        ]
    return []


def _table(runs: list[EvalRun], width: int | None = None) -> Table:
    """The results as wide as the terminal allows: the model name always, then as many of the
    metrics (in ``report.TABLE_METRICS`` order) and timings as fit; the report file has all."""
    head = runs[0]
    width = width or out.width
    name = max(len("model"), *(len(r.model) for r in runs))
    # a column takes its header (or a 6-digit number) plus 3 for padding and border
    used, cols = name + 4, []
    for c in report.TABLE_METRICS[:8]:
        if used + max(len(c), 6) + 3 > width and len(cols) >= 2:
            break
        cols.append(c)
        used += max(len(c), 6) + 3
    timings = used + 2 * 9 <= width
    t = Table(
        title=f"{head.dataset} · {head.protocol} · {head.n_users} test users · {head.n_items} items"
    )
    t.add_column("model", no_wrap=True, min_width=name)
    for c in cols:
        t.add_column(c, justify="right", no_wrap=True)
    if timings:
        t.add_column("fit s", justify="right", no_wrap=True)
        t.add_column("tune s", justify="right", no_wrap=True)
    for r in runs:
        cells = [f"{r.metrics.get(c, float('nan')):.4f}" for c in cols]
        if timings:
            cells += [f"{r.fit_seconds:.2f}", f"{r.tune_seconds:.1f}"]
        t.add_row(r.model, *cells)
    return t
