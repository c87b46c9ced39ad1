"""The README's Python example, run as written (top-level names only)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(
    real_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    text = README.read_text()
    block = re.search(r"Python API \(top-level names only.*?```python\n(.*?)```", text, re.S)
    assert block, "the README lost its Python example"
    monkeypatch.setenv("LLMREC_HOME", str(real_settings.home))  # ml-100k as fetched by make
    monkeypatch.chdir(tmp_path)  # models/ease is written here
    # the shop dataset goes to a private data dir, not the project's
    import llmrec.api

    original = llmrec.api.save_dataset
    monkeypatch.setattr(llmrec.api, "save_dataset", lambda ds: original(ds, tmp_path / "ds"))
    monkeypatch.setattr("llmrec.save_dataset", llmrec.api.save_dataset)
    exec(compile(block.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert 0.05 < float(out[0]) < 0.2  # EASE's NDCG@10 on ml-100k (README: 0.0735)
    assert (tmp_path / "models" / "ease" / "manifest.json").is_file()
    assert (tmp_path / "ds" / "shop" / "manifest.json").is_file()
    assert out[-1].startswith("[[") and len(ast.literal_eval(out[-1])[0]) == 2  # ann: 2 items
