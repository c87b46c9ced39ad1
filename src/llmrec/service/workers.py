"""``llmrec serve --workers N``: N server processes behind one address, on one machine.

A Python process serves on one core at a time (the GIL), so one process saturates near one
core's worth of uncached lists. Here uvicorn's supervisor binds the address once and spawns N
fresh processes that accept from the same socket (the kernel hands each connection to one
of them) and restarts one that dies. Each worker builds its own service from the options the
command put in ``LLMREC_SERVE_WORKER`` (spawned, not forked: nothing of the parent's
threads or loaded libraries is inherited) and follows the one events store as a replica
does (``follower``): events, items, deletions and admin changes told to any worker reach
all. Each worker holds its own copy of the model (memory grows with N).
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from llmrec.config import SERVE
from llmrec.service.protocol import header_timeout_protocol

ENV = "LLMREC_SERVE_WORKER"
# uvicorn imports the protocol by name in each worker: the timeout travels in the options
HeaderTimeout = header_timeout_protocol(
    float(json.loads(os.environ.get(ENV, "{}")).get("header_timeout", SERVE.header_timeout))
)


def worker_options(
    model_dir: Path, db_url: str, max_in_flight: int, body_timeout: float, header_timeout: float,
    rerank: str | None, **service: Any,
) -> str:  # fmt: skip
    """The JSON every worker builds its service from (paths made absolute)."""
    return json.dumps(
        {
            "model_dir": str(Path(model_dir).resolve()),
            "db": db_url,
            "max_in_flight": max_in_flight,
            "body_timeout": body_timeout,
            "header_timeout": header_timeout,
            "rerank": rerank,
            "service": {k: str(v) if isinstance(v, Path) else v for k, v in service.items()},
        }
    )


def app_from_env() -> FastAPI:
    """The app of one worker (uvicorn calls this factory in each spawned process)."""
    from llmrec.rerank import RerankSpec
    from llmrec.service.app import Service, create_app
    from llmrec.service.store import Store

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `llmrec serve` (cli/serve.py)
    opts = json.loads(os.environ[ENV])
    spec = RerankSpec.parse(opts["rerank"]) if opts["rerank"] else None
    options = dict(opts["service"])
    options["reports_dir"] = Path(options.pop("reports_dir"))
    service = Service(
        Store(opts["db"]), Path(opts["model_dir"]), shared_store=True, rerank=spec, **options
    )
    app = create_app(
        service, max_in_flight=opts["max_in_flight"], body_timeout=opts["body_timeout"]
    )
    gc.collect()
    gc.freeze()  # the loaded model is long-lived (as in one process)
    return app
