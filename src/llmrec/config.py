"""Process-wide settings: the one place defaults live (env vars ``LLMREC_*`` override them)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where llmrec keeps its data and how much of the machine it may use."""

    model_config = SettingsConfigDict(env_prefix="LLMREC_")

    home: Path = Field(default=Path(".llmrec"), description="data dir ($LLMREC_HOME)")
    threads: int = Field(default=1, ge=1, description="threads for BLAS and model training")
    seed: int = Field(default=42, description="default seed for training and tuning")
    memory_gb: float = Field(
        default=16.0,
        gt=0,
        description="memory budget of a training run: models whose dense state would exceed "
        "it are refused before fitting, and left out of the default pipeline",
    )

    tune_users: int = Field(
        default=10_000,
        ge=0,
        description="validation users hyper-parameters are chosen on: above it a seeded "
        "sample of this many (0: all of them)",
    )

    @property
    def models_dir(self) -> Path:
        """Where ``llmrec train`` writes model folders and commands look for the newest."""
        return self.home / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def events_db(self) -> Path:
        """The service's default events store (SQLite)."""
        return self.home / "llmrec.db"


def get_settings() -> Settings:
    return Settings()


class ServeSettings(BaseModel):
    """How ``llmrec serve`` runs: the one home of these defaults (the command's options,
    ``LiveModel``, ``create_app`` and the middleware read them from ``SERVE``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    cache_size: int = Field(50_000, ge=0, description="recommendation lists kept (0: no cache)")
    max_batch: int = Field(64, ge=1, description="most uncached lists scored in one model pass")
    refresh_every: float = Field(1.0, description="seconds before others' events reach items")
    reports: Path = Path("reports")
    llm: str = "auto"
    explain_budget: float = Field(1.5, ge=0, description="seconds a request waits for the LLM")
    item_noun: str = "item"
    explore: float = Field(0.0, ge=0, le=1, description="share of list positions that explore")
    explore_pool: int = Field(50, ge=1, description="items below the list exploration draws from")
    near_duplicate: float = Field(0.9, description="text similarity that hides near-duplicates")
    shared_store: bool = Field(False, description="other processes serve from the same store")
    ask_llm: bool = Field(False, description="the LLM reads a request naming no genre as one")
    max_in_flight: int = Field(64, ge=1, description="requests served at once (then 503)")
    max_body: int = Field(1 << 20, description="bytes in a request body (then 413)")
    body_timeout: float = Field(30.0, gt=0, description="seconds between two parts of a body")
    header_timeout: float = Field(10.0, gt=0, description="seconds to send a request's headers")


SERVE = ServeSettings()


def available_memory() -> int | None:
    """Bytes the kernel says a new allocation can take now (Linux ``MemAvailable``), or
    None where it does not say. A budget larger than the machine is no promise: a fit that
    touches more pages than there are is killed (or faults) halfway, so checks take the lower
    of the two."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def hub_offline() -> None:
    """Weights come from installed packages only: never let transformers reach for a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def quiet_transformers() -> None:
    """No warnings or progress bars from transformers on our users' terminals."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
