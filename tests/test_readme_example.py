"""The README's and the getting-started page's examples, run as written: the Python blocks
(and the README's printed output), and the README's key + curl lines against a real server."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"


def test_readme_python_block_prints_what_the_readme_shows(
    home: Path, capsys: pytest.CaptureFixture
) -> None:
    text = README.read_text()
    found = re.search(
        r"## Your data, in Python.*?```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", text, re.S
    )
    assert found, "the README lost its Python example or its printed output"
    tree = ast.parse(found.group(1))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {m for m in imported if m and m.startswith("llmrec")} == {"llmrec"}  # the face only
    used = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "llmrec"
    }
    import llmrec

    assert used and used <= set(llmrec.__all__)
    exec(compile(found.group(1), "README.md", "exec"), {})
    assert capsys.readouterr().out == found.group(2)


def test_getting_started_python_example_runs(
    real_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    text = GETTING_STARTED.read_text()
    block = re.search(r"## Python API.*?```python\n(.*?)```", text, re.S)
    assert block, "the getting-started page lost its Python example"
    monkeypatch.setenv("LLMREC_HOME", str(real_settings.home))  # ml-100k as fetched by make
    monkeypatch.chdir(tmp_path)  # models/ease is written here
    # the shop dataset goes to a private data dir, not the project's
    import llmrec.api

    original = llmrec.api.save_dataset
    monkeypatch.setattr(llmrec.api, "save_dataset", lambda ds: original(ds, tmp_path / "ds"))
    monkeypatch.setattr("llmrec.save_dataset", llmrec.api.save_dataset)
    exec(compile(block.group(1), "getting-started.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert 0.05 < float(out[0]) < 0.2  # EASE's NDCG@10 on ml-100k (docs: 0.0735)
    assert (tmp_path / "models" / "ease" / "manifest.json").is_file()
    assert (tmp_path / "ds" / "shop" / "manifest.json").is_file()
    assert out[-1].startswith("[[") and len(ast.literal_eval(out[-1])[0]) == 2  # ann: 2 items


def test_readme_curl_lines_run_against_a_real_server(real_settings, tmp_path: Path) -> None:
    """The key line and the two curl lines, as written, against `llmrec serve` of an EASE
    model on ml-100k (the README's user 1 and item 50); only the port differs."""
    from llmrec.api import load_dataset
    from llmrec.data.splits import full_train
    from llmrec.models import EASE
    from llmrec.service.folder import save_for_serving
    from llmrec.testing.server import serve

    block = re.search(r"## Serve it\n\n```bash\n(.*?)```", README.read_text(), re.S)
    assert block, "the README lost its serving example"
    lines = block.group(1).replace("\\\n", "").splitlines()
    key_line = next(ln for ln in lines if ln.startswith("KEY="))
    curls = [ln.split("  #")[0] for ln in lines if ln.startswith("curl ")]
    assert len(curls) == 2 and any(ln.startswith("llmrec serve") for ln in lines)
    home = tmp_path / "home"
    data = full_train(load_dataset("ml-100k", real_settings.datasets_dir))
    model_dir = home / "models" / "ml-100k-ease"
    save_for_serving(EASE(reg=500.0).fit(data), data, model_dir, {"dataset": "ml-100k"})
    env = {**os.environ, "LLMREC_HOME": str(home)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # `llmrec` as the venv has it
    with serve(model_dir, f"sqlite:///{home / 'llmrec.db'}", home) as srv:
        port = srv.url.rsplit(":", 1)[1]
        script = "\n".join(
            ["set -euo pipefail", key_line]
            + [f"{c.replace('127.0.0.1:8000', f'127.0.0.1:{port}')}; echo" for c in curls]
        )
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    listed, stored = (json.loads(x) for x in done.stdout.strip().splitlines())
    assert listed["user_id"] == "1" and len(listed["items"]) == 3
    assert stored == {"stored": 1, "duplicates": 0}
