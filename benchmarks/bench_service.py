"""Issue #6: load on ``llmrec serve`` over loopback with the ml-100k default model.

Run: make bench-service   (or: .venv/bin/python benchmarks/bench_service.py [--seconds 10])

A real server process (SQLite store, one key without rate limit) and an open-loop load
generator in this process: request i is due at i / rate; its latency counts from when it
was due, so a server that falls behind is charged for the queue too (no coordinated
omission). Users are drawn uniformly from the 943 ml-100k users. Both share the 2 cores.

- ``GET /v1/recommendations`` (k=10, no explanations) with the recommendation cache (after a
  warm-up pass over every user) and without it (``--cache-size 0``: every request runs the
  two-stage ranker);
- ``POST /v1/events``: events stored and applied per second, one event per request and 100
  per request, from 8 concurrent writers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the in-process part, as `serve` runs
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec import versions  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import columns as C  # noqa: E402
from llmrec.testing.server import create_key, serve  # noqa: E402

SPINNING = "no cache, OMP_WAIT_POLICY=ACTIVE"
ONE_AT_A_TIME = "no cache, --max-batch 1"
BEGIN, END = "<!-- bench_service:begin -->", "<!-- bench_service:end -->"
EVENTS_BEGIN, EVENTS_END = (
    "<!-- bench_service_events:begin -->",
    "<!-- bench_service_events:end -->",
)
MIXED_BEGIN, MIXED_END = "<!-- bench_service_mixed:begin -->", "<!-- bench_service_mixed:end -->"
LIVE_BEGIN, LIVE_END = "<!-- bench_service_live:begin -->", "<!-- bench_service_live:end -->"


class _Connections:
    """Keep-alive HTTP/1.1 connections with a minimal client: httpx costs milliseconds of
    CPU per request, which on 2 shared cores would measure the client, not the server."""

    def __init__(self, host: str, port: int, auth: str, size: int) -> None:
        self.host, self.port, self.auth, self.size = host, port, auth, size
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def get(self, path: str) -> int:
        return await self._send(f"GET {path} HTTP/1.1\r\n".encode())

    async def post(self, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        return await self._send(head.encode(), body)

    async def _send(self, line: bytes, body: bytes = b"") -> int:
        reader, writer = await self.free.get()
        try:
            writer.write(
                line + f"Host: {self.host}\r\nAuthorization: {self.auth}\r\n\r\n".encode() + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            return status
        finally:
            self.free.put_nowait((reader, writer))

    async def close(self) -> None:
        while not self.free.empty():
            _, writer = self.free.get_nowait()
            writer.close()


async def _open_loop(
    url: str,
    headers: dict[str, str],
    users: list[str],
    rate: float,
    seconds: float,
    seed: int,
    in_order: bool = False,
    events_on: list[str] | None = None,
) -> dict[str, float]:
    """Request i is due at i / rate (user drawn at random, or every user once in order);
    latency counts from when it was due. ``events_on`` (item ids): each request is that user's
    event on one of them (POST) and then their list (GET), timed together."""
    rng = np.random.default_rng(seed)
    n = len(users) if in_order else int(rate * seconds)
    items = rng.choice(events_on or ["-"], size=n)
    picks = np.asarray(users) if in_order else rng.choice(users, size=n)
    host, port = url.split("//")[1].split(":")
    pool = _Connections(host, int(port), headers["Authorization"], 64)
    await pool.open()
    latencies = np.zeros(n)
    errors = 0
    # the first request is due after every task exists (creating thousands takes a while)
    t0 = time.perf_counter() + 0.5 + n * 2e-5

    async def one(i: int) -> None:
        nonlocal errors
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            ok = True
            if events_on:  # the user's own event first: their list must reflect it
                event = (
                    f'{{"user_id": "{picks[i]}", "item_id": "{items[i]}", "event": "view", '
                    f'"event_id": "mixed-{seed}-{i}"}}'
                )
                ok = await pool.post("/v1/events", event.encode()) == 202
            ok &= await pool.get(f"/v1/recommendations?user_id={picks[i]}&k=10") == 200
        except (OSError, asyncio.IncompleteReadError):
            ok = False
        latencies[i] = time.perf_counter() - due
        errors += not ok

    gc.collect()
    gc.disable()  # the load generator's own collector pauses would count as server latency
    try:
        await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        gc.enable()
    wall = time.perf_counter() - t0
    await pool.close()
    assert (latencies > -1e-3).all()
    lat = latencies * 1000
    return {
        "target": rate,
        "achieved": n / wall,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "errors": errors,
    }


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    """Open-loop runs at one rate: medians, the p99's range, the errors summed."""
    return {
        **{k: float(np.median([r[k] for r in runs])) for k in runs[0]},
        "p99_min": min(r["p99"] for r in runs),
        "p99_max": max(r["p99"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


def load_rows(label: str, rows: list[dict[str, float]]) -> list[str]:
    """Markdown rows (label, offered, achieved, p50, p99 with its range, errors)."""
    return [
        f"| {label} | {r['target']:.0f} | {r['achieved']:.0f} | {r['p50']:.1f} | "
        f"{r['p99']:.1f} ({r['p99_min']:.1f}–{r['p99_max']:.1f}) | {r['errors']:.0f} |"
        for r in rows
    ]


async def _events(
    url: str, headers: dict[str, str], batch: int, seconds: float, raw: bool
) -> float:
    """Events per second from 8 concurrent writers, ``batch`` events per request, with
    httpx or (``raw``) the minimal keep-alive client: httpx's own CPU per request, on the
    2 cores the server uses too, can be what limits the rate."""
    stored = 0
    stop = time.perf_counter() + seconds
    host, port = url.split("//")[1].split(":")
    pool = _Connections(host, int(port), headers["Authorization"], 8)
    await pool.open()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:

        async def writer(w: int) -> None:
            nonlocal stored
            n = 0
            while time.perf_counter() < stop:
                body = [
                    {"user_id": f"load-{w}-{n % 50}", "item_id": str(1 + (n * 7 + j) % 1682),
                     "event": "view", "event_id": f"{raw}-w{w}-{n}-{j}"}
                    for j in range(batch)
                ]  # fmt: skip
                if raw:  # fresh ids: a 202 stored them all
                    ok = await pool.post("/v1/events", json.dumps(body).encode()) == 202
                    stored += batch * ok  # after the await: `x += await f()` loses updates
                else:
                    r = await c.post("/v1/events", json=body)
                    if r.status_code == 202:
                        stored += r.json()["stored"]
                n += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(8)))
        rate = stored / (time.perf_counter() - t0)
    await pool.close()
    return rate


EVENT_RUNS = ((1, False), (1, True), (100, True))  # (events per request, raw client)


def _events_lines(events: dict[tuple[int, bool], float], command: str) -> list[str]:
    return [
        "## Events over HTTP (issue #23)",
        "",
        f"`{command}`: `POST /v1/events` from 8 concurrent writers for 10 s each, SQLite with "
        "synchronous=FULL (group commit: concurrent requests share a transaction and an "
        "fsync), ml-100k default model, the server and the load generator on the same 2 cores. "
        "With httpx as the client, and with the minimal keep-alive HTTP/1.1 client the load "
        "tests use (httpx spends milliseconds of CPU per request on those same cores).",
        "",
        "| events per request | client | events stored per second |",
        "|---:|---|---:|",
        *[f"| {b} | {'minimal' if raw else 'httpx'} | {v:.0f} |" for (b, raw), v in events.items()],
    ]


def _events_only(model_dir: Path, tmp: Path, args: argparse.Namespace) -> list[str]:
    s = get_settings()
    db = f"sqlite:///{tmp / 'events.db'}"
    key = {"Authorization": f"Bearer {create_key(db, 'admin', home=s.home)}"}
    events = {}
    with serve(model_dir, db, s.home) as srv:
        for batch, raw in EVENT_RUNS:
            events[(batch, raw)] = asyncio.run(_events(srv.url, key, batch, args.seconds, raw))
            print(f"events, {batch} per request, raw={raw}: {events[(batch, raw)]:.0f}/s")
    return _events_lines(events, "python benchmarks/bench_service.py --events-only")


def _in_process(model_dir: Path, users: list[str], tmp: Path) -> list[str]:
    """The live model without HTTP: loading the folder, one uncached recommendation, a
    user's own event applied alone, a refresh after one new event (spliced, and built whole)
    in turn, the web page's reads."""
    from llmrec.service.live import LiveModel
    from llmrec.service.store import Store

    store = Store(f"sqlite:///{tmp / 'in-process.db'}")
    t0 = time.perf_counter()
    live = LiveModel(model_dir, store, cache_size=0, llm="off")
    load = time.perf_counter() - t0
    rec = []
    for u in users[:300]:
        t0 = time.perf_counter()
        live.recommend(u, 10)
        rec.append(time.perf_counter() - t0)
    refresh: dict[str, list[float]] = {"own": [], "incremental": [], "full": []}
    live.refresh_every = 3600.0  # no periodic refresh in between: each way timed alone
    for n in range(30):  # three ways in turn, each after one new event
        user = users[n]
        event = {C.USER_ID: user, C.ITEM_ID: str(live.model.items_.ids[n]),
                 C.TIMESTAMP: 10**9, C.EVENT: "view", C.VALUE: None}  # fmt: skip
        live.add_events([event])
        way = ("own", "incremental", "full")[n % 3]
        if way == "full":
            live._whole = True  # observe the whole log: every refresh before bench_refresh
        t0 = time.perf_counter()
        if way == "own":  # the user's next read: their state alone (observe_users)
            with live._lock:
                live._current(user)
        else:
            live.refresh()
        refresh[way].append(time.perf_counter() - t0)
        live.refresh()
    live.refresh()
    page = {  # the web page's reads (issue #7), 100 times each
        "search users by id (`GET /v1/users?query=`)": lambda n: live.find_users(str(n), 12),
        "a user's profile and latest 50 events (`GET /v1/users/{id}`)": lambda n: live.user(
            users[n], 50
        ),
        "search the catalogue by title (`GET /v1/items?query=`)": lambda n: live.find_items(
            ["the", "star", "love", "man", "war"][n % 5], 20
        ),
    }
    page_ms = {}
    for name, read in page.items():
        times = []
        for n in range(100):
            t0 = time.perf_counter()
            read(n)
            times.append(time.perf_counter() - t0)
        page_ms[name] = np.array(times) * 1000
    rec_ms, ref_ms = np.array(rec) * 1000, np.array(refresh["incremental"]) * 1000
    full_ms, own_ms = np.array(refresh["full"]) * 1000, np.array(refresh["own"]) * 1000
    print(f"load {load:.1f} s, recommend p50 {np.median(rec_ms):.1f} ms, "
          f"refresh p50 {np.median(ref_ms):.0f} ms")  # fmt: skip
    return [
        "## Live model in process (issues #6, #7)",
        "",
        "`make bench-service` (or `--in-process-only`), ml-100k default model, no HTTP, "
        f"{platform.machine()}, 1 thread, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}:",
        "",
        "| step | median | p95 |",
        "|---|---:|---:|",
        f"| load the model folder (LiveModel) | {load:.1f} s | |",
        f"| recommend 10 for one user, uncached (300 users) | {np.median(rec_ms):.1f} ms | "
        f"{np.percentile(rec_ms, 95):.1f} ms |",
        f"| a user's own new event applied before their next list (that user's state alone, "
        f"`observe_users`; 10 times) | {np.median(own_ms):.1f} ms | "
        f"{np.percentile(own_ms, 95):.1f} ms |",
        f"| refresh after one event: that user's state and the item statistics take it "
        f"(incremental, 10 times, {live.stats()['events']:,} events in the log) | "
        f"{np.median(ref_ms):.0f} ms | {np.percentile(ref_ms, 95):.0f} ms |",
        f"| the same with the model observing the whole log (every refresh before "
        f"`make bench-refresh`'s change; the 10 turns between) | {np.median(full_ms):.0f} ms | "
        f"{np.percentile(full_ms, 95):.0f} ms |",
        *(
            f"| web page: {name} | {np.median(ms):.2f} ms | {np.percentile(ms, 95):.2f} ms |"
            for name, ms in page_ms.items()
        ),
    ]


MIXED_RATES = (5, 10, 20, 40, 100, 200)


def _mixed(model_dir: Path, users: list[str], tmp: Path, args: argparse.Namespace) -> list[str]:
    """Real-time traffic: each request is a user's event and then that user's list, which the
    event has made stale (the cache holds every other user's). With ``--before REV`` the same
    load also goes to a server from that revision (a temporary git worktree), in turn."""
    import pandas as pd

    s = get_settings()
    items = sorted(pd.read_parquet(model_dir / "log.parquet")[C.ITEM_ID].astype(str).unique())
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    variants: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.before:
        old = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], check=True)
        variants.append((f"before ({args.before})", old))
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        for rep in range(args.repeats):
            for name, tree in variants:
                env_path = os.environ.get("PYTHONPATH")
                if tree is not None:  # the server process imports the old tree first
                    os.environ["PYTHONPATH"] = str(tree / "src")
                db = f"sqlite:///{tmp / f'mixed-{rep}-{tree is None}.db'}"
                key = {"Authorization": f"Bearer {create_key(db, 'admin', home=s.home)}"}
                try:
                    with serve(model_dir, db, s.home) as srv:
                        warm = _open_loop(srv.url, key, users, 40, 0, 0, in_order=True)
                        asyncio.run(warm)  # every other user's list cached
                        for rate in MIXED_RATES:
                            seed = 7 + 1000 * rep + rate
                            r = asyncio.run(
                                _open_loop(
                                    srv.url, key, users, rate, args.seconds, seed, events_on=items
                                )
                            )
                            runs.setdefault((name, rate), []).append(r)
                            print("mixed", name, rep, {k: round(v, 1) for k, v in r.items()})
                finally:
                    if env_path is None:
                        os.environ.pop("PYTHONPATH", None)
                    else:
                        os.environ["PYTHONPATH"] = env_path
    finally:
        if args.before:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "before")])
    rows = []
    for (name, rate), rs in runs.items():
        med = {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
        p99s = [r["p99"] for r in rs]
        rows.append(
            f"| {name} | {rate} | {med['achieved']:.1f} | {med['p50']:.0f} | {med['p99']:.0f} "
            f"({min(p99s):.0f}–{max(p99s):.0f}) | {sum(r['errors'] for r in rs):.0f} |"
        )
    rows.sort(key=lambda row: row.split("|")[1] != " this tree ")
    command = "make bench-service" if not args.mixed_only else "bench_service.py --mixed-only"
    if args.before:
        command += f" --before {args.before}"
    return [
        "## Real-time traffic: an event, then the list (issue #23)",
        "",
        f"`{command}` ({args.repeats} runs of {args.seconds:g} s per level, medians; "
        f"{platform.machine()}, 2 cores shared with the load generator; ml-100k default model, "
        "`llmrec serve` defaults: cache on, refresh every 1 s). Each request is a user's `POST "
        "/v1/events` (a view of a random item, one fsync) and then that user's `GET "
        "/v1/recommendations`, timed together from when it was due. The event makes the user's "
        "list stale, and their next read applies it at once, under the model's lock, then "
        "scores the list: this tree updates that user's state alone (`observe_users`) and, once "
        "a second, applies the other users' new events to item statistics (`make "
        "bench-refresh`); up to 1519b8e that refresh observed the whole log each second, and "
        "up to cd55b05 a whole refresh ran on every such read. With `--before`, a server from "
        "that revision took the same load in turn.",
        "",
        "| server | event + list pairs/s offered | achieved | p50 ms | p99 ms (min–max) | errors |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--in-process-only", action="store_true")
    ap.add_argument("--mixed-only", action="store_true")
    ap.add_argument("--events-only", action="store_true")
    ap.add_argument("--before", help="git revision also served in the real-time traffic part")
    args = ap.parse_args()
    s = get_settings()
    model_dir = versions.resolve(args.model or s.home / "models" / "ml-100k-ranker")
    if not (model_dir / "log.parquet").is_file():
        sys.exit(f"{model_dir}: train it first: llmrec train --dataset ml-100k")
    import pandas as pd

    users = sorted(pd.read_parquet(model_dir / "log.parquet")["user_id"].unique().tolist())
    tmp = Path(tempfile.mkdtemp(prefix="bench-service-"))
    if args.events_only:
        lines = _events_only(model_dir, tmp, args)
        write_section(ROOT / "BENCHMARKS.md", EVENTS_BEGIN, EVENTS_END, lines)
        return
    if args.mixed_only:
        write_section(
            ROOT / "BENCHMARKS.md", MIXED_BEGIN, MIXED_END, _mixed(model_dir, users, tmp, args)
        )
        return
    live_lines = _in_process(model_dir, users, tmp)
    write_section(ROOT / "BENCHMARKS.md", LIVE_BEGIN, LIVE_END, live_lines)
    if args.in_process_only:
        return
    results: dict[str, list[dict[str, float]]] = {}
    events: dict[tuple[int, bool], float] = {}
    no_cache = (10, 25, 40, 60, 100, 150, 200, 300)
    for mode, rates, extra, omp in (
        ("cache", (100, 200, 500, 1000), [], "PASSIVE"),
        ("no cache", no_cache, ["--cache-size", "0"], "PASSIVE"),
        # the same server scoring one list per model call: the before of request batching
        (ONE_AT_A_TIME, no_cache[:6], ["--cache-size", "0", "--max-batch", "1"], "PASSIVE"),
        # the same server with OpenMP threads spinning after each parallel region (the
        # runtimes' default, which `llmrec serve` overrides): the before of that change
        (SPINNING, no_cache[:5], ["--cache-size", "0"], "ACTIVE"),
    ):
        os.environ["OMP_WAIT_POLICY"] = omp  # the server process inherits it
        db = f"sqlite:///{tmp / (mode.split(',')[0].replace(' ', '-') + omp + '.db')}"
        key = {"Authorization": f"Bearer {create_key(db, 'admin', home=s.home)}"}
        with serve(model_dir, db, s.home, extra) as srv:
            if mode == "cache":  # warm-up: every user once, then a settling run
                asyncio.run(_open_loop(srv.url, key, users, 40, 0, 0, in_order=True))
                asyncio.run(_open_loop(srv.url, key, users, 100, 5, 0))
            results[mode] = []
            for rate in rates:  # each level 3 times (round robin); medians reported
                runs = []
                for rep in range(args.repeats):
                    seed = 1000 * rep + rate
                    r = asyncio.run(_open_loop(srv.url, key, users, rate, args.seconds, seed))
                    runs.append(r)
                    print(mode, rep, {k: round(v, 1) for k, v in r.items()}, flush=True)
                results[mode].append(summarise(runs))
            if mode == "no cache":
                for batch, raw in EVENT_RUNS:
                    rate = asyncio.run(_events(srv.url, key, batch, args.seconds, raw))
                    events[(batch, raw)] = rate
                    print(f"events, {batch} per request, raw={raw}: {rate:.0f}/s")

    plot = ROOT / "benchmarks" / "service-ml100k.png"
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4))
    for ax, mode in zip(axes, results, strict=True):
        rs = results[mode]
        x = [r["target"] for r in rs]
        ax.plot(x, [r["p50"] for r in rs], "o-", label="p50")
        ax.plot(x, [r["p99"] for r in rs], "s-", label="p99")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered load (requests/s)")
        ax.set_ylabel("latency (ms, from when due)")
        ax.set_title(f"GET /v1/recommendations, {mode}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(plot, dpi=110)

    lines = [
        "## Service load (issue #6)",
        "",
        f"`make bench-service` ({args.repeats} runs of {args.seconds:g} s per level, medians; "
        f"{platform.machine()}, 2 cores shared by the server and the load generator; ml-100k "
        "default model from `llmrec train`). Open loop: latency counts from when a request "
        "was due, so queueing is charged. The server runs as `llmrec serve` does, with "
        "OMP_WAIT_POLICY=PASSIVE and scores the uncached lists that wait meanwhile in one "
        "model pass (request batching, `--max-batch 64`). Measured in the same run: the "
        "`--max-batch 1` rows are the same uncached server scoring one list per pass (before "
        "batching), the last rows the same uncached server with OpenMP's default spinning "
        "(ACTIVE).",
        "",
        "| GET /v1/recommendations | offered req/s | achieved req/s | p50 ms | p99 ms "
        "(min–max) | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, rs in results.items():
        lines += load_rows(mode, rs)
    lines += [
        "",
        "![service latency](benchmarks/service-ml100k.png)",
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)
    events_lines = _events_lines(events, "make bench-service")
    write_section(ROOT / "BENCHMARKS.md", EVENTS_BEGIN, EVENTS_END, events_lines)
    write_section(
        ROOT / "BENCHMARKS.md", MIXED_BEGIN, MIXED_END, _mixed(model_dir, users, tmp, args)
    )


if __name__ == "__main__":
    main()
