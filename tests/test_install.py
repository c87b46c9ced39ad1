"""A plain ``pip install llmrec`` (the core, no extras) into a fresh venv: every command either
works or exits 2 with one line naming the ``pip install 'llmrec[extra]'`` that fixes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmrec.cli._extras import MODULE_EXTRA, install_hint

ROOT = Path(__file__).resolve().parents[1]

# command -> the extra it needs (None: works with the core alone)
COMMANDS = {
    ("train", "--dataset", "tiny", "--model", "ease", "--no-tune"): None,
    ("eval", "--dataset", "tiny", "--model", "pop,itemknn", "--no-tune"): None,
    ("models", "list"): None,
    ("serve",): "serve",
    ("recommend", "--user", "1"): "serve",
    ("keys", "list"): "serve",
    ("ope",): "serve",
    ("ab",): "serve",
    ("eval", "--dataset", "tiny", "--model", "content", "--no-tune"): "embed",
    ("eval", "--dataset", "tiny", "--model", "sasrec", "--no-tune"): "embed",
    ("jobs", "embed", "--dataset", "tiny", "--what", "items", "--out", "vectors"): "embed",
    ("jobs", "recommend", "--out", "recs", "--engine", "ray"): "ray",
}


def test_each_missing_module_names_its_extra() -> None:
    for module, extra in MODULE_EXTRA.items():
        hint = install_hint(ModuleNotFoundError(f"No module named '{module}'", name=module))
        assert hint is not None and hint.endswith(f"pip install 'llmrec[{extra}]'")
    assert install_hint(ModuleNotFoundError("No module named 'nope'", name="nope")) is None
    extras = (ROOT / "pyproject.toml").read_text()
    for extra in set(MODULE_EXTRA.values()):  # every extra named exists in the project
        assert f"\n{extra} = [" in extras


@pytest.mark.slow
def test_core_install_in_a_fresh_venv(tmp_path: Path) -> None:
    wheels, venv, home = tmp_path / "wheels", tmp_path / "venv", tmp_path / "home"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(wheels.glob("llmrec-*.whl"))
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", str(wheel)],
        check=True,
    )  # fmt: skip
    llmrec = str(venv / "bin" / "llmrec")
    env = {"LLMREC_HOME": str(home), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "HOME"):
        if k in os.environ:
            env[k] = os.environ[k]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [llmrec, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
        )

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("llmrec ")
    from llmrec.data import dataset as store
    from llmrec.testing import tiny_dataset

    store.save(tiny_dataset(), home / "datasets")
    for args, extra in COMMANDS.items():
        done = run(*args)
        said = done.stdout + done.stderr
        assert "Traceback" not in said, (args, said)
        if extra is None:
            assert done.returncode == 0, (args, said)
            continue
        errors = [ln for ln in done.stderr.splitlines() if "error" in ln]  # progress lines aside
        assert done.returncode == 2 and len(errors) == 1, (args, said)
        assert errors[0].startswith("error: "), (args, said)
        assert f"pip install 'llmrec[{extra}]'" in errors[0], (args, said)
