"""scripts/check_layout.py (run by `make lint`) passes on src/ and catches what it is for."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_layout.py"


def _load():  # the script is not a package module
    spec = importlib.util.spec_from_file_location("check_layout", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_src_has_no_long_module_and_no_import_circle() -> None:
    assert _load().main() == 0


def test_it_finds_a_circle_and_a_long_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("import pkg.a\n")
    (pkg / "c.py").write_text("def f():\n    from pkg import a\n" + "x = 1\n" * 600)
    (pkg / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.e\n"
    )
    (pkg / "e.py").write_text("import pkg.d\n")
    mod = _load()
    monkeypatch.setattr(mod, "SRC", tmp_path)
    assert mod.main() == 1
    out = capsys.readouterr().out
    assert "import circle: pkg.a -> pkg.b -> pkg.a" in out
    assert "pkg/c.py: 602 lines > 500" in out
    assert "pkg.d" not in out.replace("pkg/", "")  # TYPE_CHECKING and function imports: not counted


def test_it_finds_a_package_circle_through_function_level_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Packages are layers: an import inside a function that runs back up is a circle too
    (the module-level check alone would let it through); annotations are not."""
    for sub in ("low", "high", "side"):
        (tmp_path / "pkg" / sub).mkdir(parents=True)
        (tmp_path / "pkg" / sub / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "low" / "a.py").write_text("def f():\n    from pkg.high import b\n")
    (tmp_path / "pkg" / "high" / "b.py").write_text("from pkg.low import a\n")
    (tmp_path / "pkg" / "side" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nfrom pkg.low import a\n"
        "if TYPE_CHECKING:\n    from pkg.high import b\n"
    )
    mod = _load()
    monkeypatch.setattr(mod, "SRC", tmp_path)
    assert mod.main() == 1
    out = capsys.readouterr().out
    assert "package circle: high -> low (" in out
    assert "pkg/high/b.py:1); low -> high (" in out and "pkg/low/a.py:2)" in out
    assert "import circle" not in out  # no module-level circle: only the package check sees it
    assert "side" not in out
