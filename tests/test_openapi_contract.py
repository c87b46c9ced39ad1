"""The API's contract: the OpenAPI document equals the committed one (tests/data/openapi.json).

A refactor must leave it identical; an intended change to a route is made by regenerating the
file (``LLMREC_UPDATE_OPENAPI=1 pytest tests/test_openapi_contract.py``) and reviewing its
diff in the same commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llmrec.service.app import Service, create_app
from llmrec.service.store import Store

SNAPSHOT = Path(__file__).parent / "data" / "openapi.json"


def test_openapi_document_is_the_committed_one(served_model_dir: Path, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'events.db'}")
    doc = create_app(Service(store, served_model_dir, llm="off")).openapi()
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if os.environ.get("LLMREC_UPDATE_OPENAPI"):
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.is_file(), "no snapshot: run with LLMREC_UPDATE_OPENAPI=1 and commit it"
    want = json.loads(SNAPSHOT.read_text())
    changed = sorted(
        p
        for p in set(want["paths"]) | set(doc["paths"])
        if want["paths"].get(p) != doc["paths"].get(p)
    )
    assert doc == want, f"OpenAPI changed; paths: {changed}"
