"""Group commit of events (#23), before and after in the same run: ``make bench-group-commit``.

Two ``llmrec serve`` processes on the ml-100k default model and SQLite (``synchronous=FULL``):
one from this tree, one from ``--before`` (a git revision, checked out in a temporary worktree
and put first on PYTHONPATH). Each is loaded by 8 writers posting one event per request on
keep-alive connections with a minimal HTTP/1.1 client (httpx's CPU per request would measure
the client: both share the 2 cores with the server), as fast as answers come (closed loop),
for ``--seconds``; before and after alternate, ``--repeats`` times each; medians reported.
Afterwards every event id sent and acknowledged is checked to be stored exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec import versions  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.service.store import Store  # noqa: E402
from llmrec.testing.server import create_key, serve  # noqa: E402

BEGIN, END = "<!-- bench_group_commit:begin -->", "<!-- bench_group_commit:end -->"
WRITERS = 8


async def _post(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], host: str, auth: str, body: bytes
) -> int:
    reader, writer = conn
    writer.write(
        f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _load(url: str, auth: str, seconds: float, tag: str) -> tuple[float, list[str]]:
    """(events acknowledged per second, their ids)."""
    host, port = url.removeprefix("http://").split(":")
    acked: list[str] = []
    stop = time.perf_counter() + seconds

    async def writer(w: int) -> None:
        conn = await asyncio.open_connection(host, int(port))
        n = 0
        while time.perf_counter() < stop:
            eid = f"{tag}-{w}-{n}"
            body = (
                f'{{"user_id": "load-{w}-{n % 50}", "item_id": "{1 + (n * 7 + w) % 1682}", '
                f'"event": "view", "event_id": "{eid}"}}'
            ).encode()
            if await _post(conn, f"{host}:{port}", auth, body) == 202:
                acked.append(eid)
            n += 1
        conn[1].close()

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    return len(acked) / (time.perf_counter() - t0), acked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", required=True, help="git revision without group commit")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    s = get_settings()
    model_dir = versions.resolve(s.home / "models" / "ml-100k-ranker")
    if not (model_dir / "log.parquet").is_file():
        sys.exit(f"{model_dir}: train it first: llmrec train --dataset ml-100k")
    tmp = Path(tempfile.mkdtemp(prefix="bench-group-commit-"))
    old = tmp / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], check=True)
    rates: dict[str, list[float]] = {"before": [], "after": []}
    lost = duplicated = 0
    try:
        for rep in range(args.repeats):
            for variant in ("before", "after"):
                env_path = os.environ.get("PYTHONPATH")
                if variant == "before":  # the server process imports the old tree first
                    os.environ["PYTHONPATH"] = str(old / "src")
                db = f"sqlite:///{tmp / f'{variant}-{rep}.db'}"
                key = f"Bearer {create_key(db, 'admin', home=s.home)}"
                try:
                    with serve(model_dir, db, s.home) as srv:
                        rate, acked = asyncio.run(_load(srv.url, key, args.seconds, variant))
                finally:
                    if env_path is None:
                        os.environ.pop("PYTHONPATH", None)
                    else:
                        os.environ["PYTHONPATH"] = env_path
                stored = Store(db).events_since(0)["event_id"].tolist()
                lost += len(set(acked) - set(stored))
                duplicated += len(stored) - len(set(stored))
                rates[variant].append(rate)
                print(f"repeat {rep} {variant}: {rate:.0f} events/s", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], check=False)
    med = {v: statistics.median(r) for v, r in rates.items()}
    lines = [
        "## Events: group commit, before and after (issue #23)",
        "",
        f"Command: `make bench-group-commit` (`benchmarks/bench_group_commit.py --before "
        f"{args.before} --seconds {args.seconds:g} --repeats {args.repeats}`). "
        f"{WRITERS} writers, one event per request, closed loop, keep-alive connections, a "
        "minimal HTTP/1.1 client; `llmrec serve` on the ml-100k default model, SQLite in WAL "
        "mode with `synchronous=FULL`; the load generator shares the 2 cores with the server. "
        "Before = the same server without group commit (each request its own transaction and "
        "fsync), from the revision named; the two alternate, medians of the repeats.",
        "",
        "| server | events/s (median) | runs |",
        "|---|---|---|",
        *[
            f"| {v} | {med[v]:.0f} | {', '.join(f'{x:.0f}' for x in rates[v])} |"
            for v in ("before", "after")
        ],
        "",
        f"After / before: {med['after'] / med['before']:.2f}×. Every acknowledged event was "
        f"checked in the store afterwards: {lost} lost, {duplicated} stored twice.",
        "",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
