"""``llmrec serve`` and ``llmrec keys``: the HTTP service and its API keys."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmrec.cli._options import DbOption, LlmChoice, LlmOption, NounOption, model_folder, open_store
from llmrec.config import SERVE
from llmrec.errors import ConfigError
from llmrec.service.keys import DEFAULT_RATE, ROLES, create_key

out = Console(width=None if Console().is_terminal else 130)
err = Console(stderr=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)


def serve_command(
    model: Annotated[
        Path | None,
        typer.Option(help="model folder from `llmrec train` (default: the newest trained one)"),
    ] = None,
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="address to bind")] = SERVE.host,
    port: Annotated[int, typer.Option(help="port")] = SERVE.port,
    cache_size: Annotated[
        int, typer.Option(min=0, help="recommendation lists kept (0: no cache)")
    ] = SERVE.cache_size,
    max_batch: Annotated[
        int,
        typer.Option(min=1, help="most uncached lists scored in one model pass (1: one at a time)"),
    ] = SERVE.max_batch,
    refresh_every: Annotated[
        float, typer.Option(help="seconds before other users' events reach item statistics")
    ] = SERVE.refresh_every,
    reports: Annotated[
        Path, typer.Option(help="evaluation reports shown on the web page (`llmrec eval`)")
    ] = SERVE.reports,
    llm: LlmOption = LlmChoice.auto,
    explain_budget: Annotated[
        float, typer.Option(min=0, help="seconds a request waits for LLM explanations")
    ] = SERVE.explain_budget,
    item_noun: NounOption = SERVE.item_noun,
    explore: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="share of list positions that explore (0: the ranker's list; "
            "impressions and propensities are logged for `llmrec ope`)",
        ),
    ] = SERVE.explore,
    explore_pool: Annotated[
        int, typer.Option(min=1, help="how many items below the list exploration draws from")
    ] = SERVE.explore_pool,
    demo: Annotated[
        bool, typer.Option(help="create a write key and print the page's URL and curl examples")
    ] = False,
    max_in_flight: Annotated[
        int,
        typer.Option(min=1, help="requests served at once; past it 503 with Retry-After"),
    ] = SERVE.max_in_flight,
    body_timeout: Annotated[
        float,
        typer.Option(min=0.01, help="seconds a client may take between two parts of a body (408)"),
    ] = SERVE.body_timeout,
    rerank: Annotated[
        str | None,
        typer.Option(help="post-ranking stage for every list: mmr=S, calibrated=S or tail=S"),
    ] = None,
    shared_store: Annotated[
        bool,
        typer.Option(
            help="other `llmrec serve` processes use the same --db (replicas behind one "
            "address): apply their events, items and deletions before every request"
        ),
    ] = SERVE.shared_store,
    ask_llm: Annotated[
        bool,
        typer.Option(
            help="the LLM reads a request in words that names no genre as one of the "
            "catalogue's (needs --llm; better lists where it reads, ~0.8 s a request: "
            "BENCHMARKS.md)"
        ),
    ] = SERVE.ask_llm,
    header_timeout: Annotated[
        float,
        typer.Option(min=0.01, help="seconds a client may take to send a request's headers"),
    ] = SERVE.header_timeout,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="server processes behind the address (each holds the model; they follow "
            "one store as --shared-store replicas do)",
        ),
    ] = 1,
) -> None:
    """Serve recommendations over HTTP (OpenAPI at /docs); events take effect at once."""
    import os

    # OpenMP threads (LightGBM, torch) that spin after each parallel region hold the cores a
    # request needs next: p99 of an uncached list 112 -> 14 ms (BENCHMARKS "latency in
    # process"). Read when the runtimes load, which is after this line.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    from llmrec.rerank import RerankSpec
    from llmrec.service.app import Service, create_app
    from llmrec.service.store import default_url

    spec = RerankSpec.parse(rerank) if rerank else None
    folder = model_folder(model)
    if workers > 1 and demo:
        raise ConfigError("--demo runs one process: leave out --workers")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with err.status(f"loading {folder}"):
        service = Service(
            open_store(db),
            folder,
            reports_dir=reports,
            shared_store=shared_store or workers > 1,
            cache_size=cache_size,
            max_batch=max_batch,
            refresh_every=refresh_every,
            llm=llm.value,
            explain_budget=explain_budget,
            item_noun=item_noun,
            explore=explore,
            explore_pool=explore_pool,
            rerank=spec,
            ask_llm=ask_llm,
        )
    if spec is not None and spec.strength > 0:
        service.live.check_rerank(spec)  # fail at start, not on the first request
    if workers > 1:  # loaded once here to fail early; each worker loads its own copy
        from llmrec.service.workers import ENV, worker_options

        st = service.live.stats()
        service.live.close()
        del service
        gc.collect()
        os.environ[ENV] = worker_options(
            folder, db or default_url(), max_in_flight, body_timeout, header_timeout, rerank,
            reports_dir=reports, cache_size=cache_size, max_batch=max_batch,
            refresh_every=refresh_every, llm=llm.value, explain_budget=explain_budget,
            item_noun=item_noun, explore=explore, explore_pool=explore_pool, ask_llm=ask_llm,
        )  # fmt: skip
        err.print(
            f"serving {st['model_version']} ({st['users']:,} users, {st['items']:,} items) "
            f"from {workers} processes at http://{host}:{port}",
            highlight=False,
        )
        uvicorn.run(
            "llmrec.service.workers:app_from_env",
            factory=True,
            workers=workers,
            http="llmrec.service.workers:HeaderTimeout",
            host=host,
            port=port,
            access_log=False,
            log_level="warning",
            timeout_keep_alive=30,
        )
        return
    # the loaded model is long-lived: keep the collector from re-scanning it (p99 pauses)
    gc.collect()
    gc.freeze()
    st = service.live.stats()
    url = f"http://{host}:{port}"
    err.print(
        f"serving {st['model_version']} ({st['users']:,} users, {st['items']:,} items) "
        f"at {url}  (web page: {url}/, API docs: {url}/docs)",
        highlight=False,
    )
    if demo:
        key = create_key(service.store, "write", "demo")
        auth = f'-H "Authorization: Bearer {key}"'
        user = str(service.live.model.users_.ids[0])
        seen = set(service.live.model.history_[0].indices.tolist())
        unseen = next(i for i in range(len(service.live.model.items_)) if i not in seen)
        item = str(service.live.model.items_.ids[unseen])  # a like that changes the list
        event = f'{{"user_id": "{user}", "item_id": "{item}", "event": "like"}}'
        out.print(
            f"demo key (role write): {key}\n"
            f"open the web page (the key is in the link): {url}/#key={key}\n"
            f"or try:\n  curl {auth} '{url}/v1/recommendations?user_id={user}&k=5&explain=true'\n"
            f"  curl {auth} -H 'content-type: application/json' -d '{event}' {url}/v1/events\n"
            "(stop with Ctrl-C)",
            highlight=False,
            soft_wrap=True,
        )
    from llmrec.service.protocol import header_timeout_protocol

    uvicorn.run(
        create_app(service, max_in_flight=max_in_flight, body_timeout=body_timeout),
        http=header_timeout_protocol(header_timeout),
        host=host,
        port=port,
        access_log=False,  # ours has no ids in it (llmrec.service logger)
        log_level="warning",
        timeout_keep_alive=30,
    )


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="a label for listings")] = "",
    rate: Annotated[
        float, typer.Option(help="requests per second for this key (0: unlimited)")
    ] = DEFAULT_RATE,
    db: DbOption = None,
) -> None:
    """Create a key; the secret is printed once, alone on the last line."""
    secret = create_key(open_store(db), role, name, rate)
    err.print(f"created a {role} key (shown once; only its hash is stored):")
    print(secret)  # noqa: T201 - the one machine-readable output


@keys_app.command("list")
def keys_list(db: DbOption = None) -> None:
    """Keys by id: prefix, role, rate limit, created, revoked."""
    table = Table()
    for col in ("id", "name", "prefix", "role", "rate/s", "revoked"):
        table.add_column(col)
    for k in open_store(db, create=False).keys():
        revoked = "yes" if k["revoked_at"] else ""
        table.add_row(
            str(k["id"]), k["name"], k["prefix"] + "…", k["role"], f"{k['rate_limit']:g}", revoked
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="id from `llmrec keys list`")], db: DbOption = None
) -> None:
    """Revoke a key (takes effect in a running server within 5 seconds)."""
    from llmrec.errors import LlmrecError

    if not open_store(db).revoke_key(key_id):
        raise LlmrecError(f"no active key with id {key_id}")
    err.print(f"revoked key {key_id}")
