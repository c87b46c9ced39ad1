"""Process-wide settings: the one place defaults live (env vars ``LLMREC_*`` override them)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
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
