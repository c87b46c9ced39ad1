"""A real ``llmrec serve`` process on loopback, for tests and the load benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from llmrec.data.dataset import Dataset
from llmrec.data.splits import full_train
from llmrec.testing.fixtures import FAST_RANKER


def train_model_dir(ds: Dataset, folder: Path, params: dict[str, Any] | None = None) -> Path:
    """Fit a ranker on every event of ``ds`` and save it as ``llmrec train`` does."""
    from llmrec.ranking.ranker import Ranker
    from llmrec.service.folder import save_for_serving

    data = full_train(ds)
    model = Ranker(**(params or FAST_RANKER)).fit(data)
    save_for_serving(model, data, folder, {"model": "ranker", "store_seq": 0})
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run (the durability test's crash)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def create_key(db: str, role: str, rate: float = 0.0, home: Path | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "llmrec.cli", "keys", "create", "--role", role,
         "--rate", str(rate), "--db", db],
        check=True, capture_output=True, text=True, env=_env(home),
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def serve(
    model_dir: Path, db: str, home: Path, extra_args: list[str] | None = None, timeout: float = 120
) -> Iterator[Server]:
    """Start ``llmrec serve`` on a free port; wait for /healthz; stop it afterwards.
    Explanations are templates unless ``extra_args`` names an ``--llm``."""
    port = free_port()
    extra_args = list(extra_args or [])
    if "--llm" not in extra_args:
        extra_args += ["--llm", "off"]
    log = home / f"serve-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "llmrec.cli", "serve", "--model", str(model_dir),
           "--db", db, "--port", str(port), *(extra_args or [])]  # fmt: skip
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(home))
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _env(home: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if home is not None:
        env["LLMREC_HOME"] = str(home)
    return env
