"""Model versions on disk: ``llmrec train`` writes a new version beside the old ones.

A model home is a folder ``HOME/`` with ``versions/v1``, ``versions/v2``, … (each a complete
model folder: manifest, arrays, training events, catalogue, ``training.json``) and ``CURRENT``,
the name of the version that is served by default. A version folder is written under a
temporary name and renamed into place (a reader sees it whole or not at all); ``CURRENT`` is
replaced atomically. A plain model folder (``Recommender.save``, or ``llmrec train`` before
versions) still loads everywhere; training into one turns it into a home whose ``v1`` it is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmrec.errors import ConfigError

VERSIONS = "versions"
CURRENT = "CURRENT"
_NAME = re.compile(r"^v([1-9][0-9]{0,8})$")


class UnknownVersionError(ConfigError):
    """The folder has no version of that name."""


class NotVersionedError(ConfigError):
    """A version was asked of a plain model folder (or of no model folder at all)."""


def is_home(path: Path) -> bool:
    return (Path(path) / VERSIONS).is_dir()


def names(home: Path) -> list[str]:
    """The home's versions, oldest first."""
    root = Path(home) / VERSIONS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in root.iterdir() if (m := _NAME.match(p.name))]
    return [name for _, name in sorted(found)]


def current(home: Path) -> str | None:
    """The version ``CURRENT`` names, else the newest (``CURRENT`` lost or naming a pruned one)."""
    have = names(home)
    try:
        name = (Path(home) / CURRENT).read_text().strip()
    except OSError:
        name = ""
    if name in have:
        return name
    return have[-1] if have else None


def resolve(path: str | Path, version: str | None = None) -> Path:
    """The model folder to load: ``version`` of the home ``path`` (its current one when
    None), or ``path`` itself when it is a plain model folder (or not a home at all: the
    caller's own checks then name what is missing)."""
    path = Path(path)
    try:
        return _resolve(path, version)
    except OSError as e:  # e.g. a name too long: the caller's input, not a bug
        raise ConfigError(f"{str(path)[:200]}: {e.strerror or e}") from None


def _resolve(path: Path, version: str | None) -> Path:
    if version is None:
        if (path / "manifest.json").is_file() or not is_home(path):
            return path
        version = current(path)
        if version is None:
            raise ConfigError(f"{path}: no model versions in it; train one with `llmrec train`")
        return path / VERSIONS / version
    if not is_home(path):
        raise NotVersionedError(
            f"{path}: not a folder of model versions (written by `llmrec train`)"
        )
    if version not in names(path):
        have = ", ".join(names(path)) or "none"
        raise UnknownVersionError(f"{path}: no version {version!r} (have: {have})")
    return path / VERSIONS / version


def label(folder: Path) -> str:
    """How a served version is named in responses, metrics and impressions: ``home/vN`` for
    a version, ``name@mtime`` for a plain folder."""
    folder = Path(folder)
    if folder.parent.name == VERSIONS and _NAME.match(folder.name):
        return f"{folder.parent.parent.name}/{folder.name}"
    return f"{folder.name}@{int((folder / 'manifest.json').stat().st_mtime)}"


def set_current(home: Path, version: str) -> None:
    """Make ``version`` the one served by default (atomic replace of ``CURRENT``)."""
    resolve(home, version)  # exists
    tmp = Path(home) / f".{CURRENT}.{os.getpid()}"
    tmp.write_text(version + "\n")
    os.replace(tmp, Path(home) / CURRENT)


def previous(home: Path, version: str) -> str | None:
    """The version before ``version``, or None."""
    have = names(home)
    at = have.index(version) if version in have else len(have)
    return have[at - 1] if at > 0 else None


def publish(
    home: Path, write: Callable[[Path], None], make_current: bool = True, keep: int = 0
) -> str:
    """Write a new version with ``write(folder)`` (``folder`` does not exist yet: ``write``
    creates it, e.g. ``Recommender.save``) and rename it into ``home/versions`` under the
    next free name; then, if ``make_current``, point ``CURRENT`` at it. ``keep`` > 0 prunes
    the oldest versions beyond that many (never the current one). Returns the name."""
    home = Path(home)
    _adopt_plain(home)
    root = home / VERSIONS
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging.", dir=root))
    try:
        write(staging / "model")
        while True:  # two trainings at once: each claims its own name
            have = names(home)
            name = f"v{int(have[-1][1:]) + 1 if have else 1}"
            try:
                os.rename(staging / "model", root / name)
                break
            except OSError:
                if not (root / name).exists():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if make_current:
        set_current(home, name)
    if keep > 0:
        prune(home, keep)
    return name


def prune(home: Path, keep: int) -> list[str]:
    """Delete the oldest versions beyond ``keep`` (the current one always stays)."""
    have, now = names(home), current(home)
    gone = [v for v in have[: max(0, len(have) - keep)] if v != now]
    for v in gone:
        aside = Path(home) / VERSIONS / f".gone.{v}"
        os.replace(Path(home) / VERSIONS / v, aside)  # out of sight first, then deleted
        shutil.rmtree(aside, ignore_errors=True)
    return gone


def describe(home: Path) -> list[dict[str, Any]]:
    """One row per version: name, whether current, and its ``training.json`` facts."""
    now = current(home)
    rows = []
    for v in names(home):
        folder = Path(home) / VERSIONS / v
        try:
            info = json.loads((folder / "training.json").read_text())
        except (OSError, ValueError):
            info = {}
        rows.append(
            {
                "version": v,
                "current": v == now,
                "created": int((folder / "manifest.json").stat().st_mtime)
                if (folder / "manifest.json").is_file()
                else None,
                "dataset": info.get("dataset"),
                "model": info.get("model"),
                "valid_ndcg@10": info.get("valid_ndcg@10"),
                "n_events": info.get("n_events"),
            }
        )
    return rows


def _adopt_plain(home: Path) -> None:
    """A plain model folder at ``home`` becomes the home's ``v1`` (never lost: it is moved
    into a new home built beside it, which then takes its place)."""
    if not (home / "manifest.json").is_file():
        return
    new = Path(tempfile.mkdtemp(prefix=f".{home.name}.home.", dir=home.parent))
    (new / VERSIONS).mkdir()
    os.rename(home, new / VERSIONS / "v1")
    (new / CURRENT).write_text("v1\n")
    os.rename(new, home)
