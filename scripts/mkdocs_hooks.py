"""MkDocs hook: the site's home is README.md, and it shows BENCHMARKS.md (kept at the root,
where the benchmarks write it) with the charts it links, without copies in docs/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "index.md", content=_home_page()))
    text = (ROOT / "BENCHMARKS.md").read_text()
    files.append(File.generated(config, "benchmarks.md", content=text))
    for png in sorted((ROOT / "benchmarks").glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{png.name}", abs_src_path=str(png)))
    return files


def _home_page() -> str:
    """README.md is the site's home: its links point into docs/ from the root; here from docs."""
    text = (ROOT / "README.md").read_text()
    text = text.replace("](docs/", "](").replace("](BENCHMARKS.md", "](benchmarks.md")
    return text
