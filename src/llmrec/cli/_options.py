"""Options and look-ups shared by several commands (one home, no command imports another
for them)."""

from __future__ import annotations

import json
from pathlib import Path

from llmrec import versions
from llmrec.config import get_settings
from llmrec.errors import ConfigError


def model_folder(model: Path | None, dataset: str | None = None) -> Path:
    """``model``, else the newest trained model of ``dataset`` (``llmrec train`` records it),
    else the newest trained model in $LLMREC_HOME/models; a clear error listing the models
    there when none fits."""
    if model is not None:
        return model
    root = get_settings().models_dir
    found = sorted(
        (p for p in root.glob("*") if _trained(p) and not p.name.startswith(".")),
        key=lambda p: (versions.resolve(p) / "manifest.json").stat().st_mtime,
        reverse=True,
    )
    if dataset is not None:
        found = [p for p in found if _trained_on(p) == dataset]
    if found:
        return found[0]
    have = ", ".join(p.name for p in sorted(root.glob("*")) if _trained(p))
    what = f" trained on {dataset!r}" if dataset else ""
    raise ConfigError(
        f"no model{what} in {root} (have: {have or 'none'}); train one with "
        f"`llmrec train --dataset {dataset or 'NAME'}` or pass --model FOLDER"
    )


def _trained(folder: Path) -> bool:
    """A plain model folder, or a home with at least one version."""
    try:
        return (versions.resolve(folder) / "manifest.json").is_file()
    except ConfigError:
        return False


def _trained_on(folder: Path) -> str | None:
    try:
        info = versions.resolve(folder) / "training.json"
        return json.loads(info.read_text()).get("dataset")
    except (OSError, ValueError, AttributeError, ConfigError):
        return None
