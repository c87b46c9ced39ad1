"""Replacing a folder as a whole: readers see the old one or the new one, never a mix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def replace_folder(tmp: Path, path: Path) -> None:
    """Move the finished folder ``tmp`` onto ``path`` (same filesystem), the old one aside
    first and removed after."""
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
