"""The API's contract: the OpenAPI document matches the committed one (tests/data/openapi.json).

What is compared is the contract, not the rendering: every path and method with its
parameters (where, name, required), request body, response codes, and every schema's
properties, required fields and types. A FastAPI or pydantic upgrade that renders the same
contract differently passes; a route that changes fails. An intended change is made by
regenerating the file (``LLMREC_UPDATE_OPENAPI=1 pytest tests/test_openapi_contract.py``) and
reviewing its diff in the same commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmrec.service.app import Service, create_app
from llmrec.service.store import Store

SNAPSHOT = Path(__file__).parent / "data" / "openapi.json"


def _types(schema: dict[str, Any]) -> list[str]:
    """The JSON types (and $refs) a property may take, flattened over anyOf/oneOf."""
    out: list[str] = []
    for part in schema.get("anyOf", []) + schema.get("oneOf", []) + [schema]:
        if "$ref" in part:
            out.append(part["$ref"].rsplit("/", 1)[-1])
        if "type" in part:
            out.append(str(part["type"]))
        if "items" in part:
            out += [f"items:{t}" for t in _types(part["items"])]
    return sorted(set(out))


def contract(doc: dict[str, Any]) -> dict[str, Any]:
    paths = {
        f"{method.upper()} {path}": {
            "params": sorted(
                (p["in"], p["name"], bool(p.get("required"))) for p in op.get("parameters", [])
            ),
            "body": _types(
                op.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
            ),  # fmt: skip
            "responses": sorted(op.get("responses", {})),
        }
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    schemas = {
        name: {
            "required": sorted(s.get("required", [])),
            "properties": {k: _types(v) for k, v in s.get("properties", {}).items()},
            "enum": sorted(map(str, s.get("enum", []))),
        }
        for name, s in doc.get("components", {}).get("schemas", {}).items()
    }
    return {"paths": paths, "schemas": schemas}


def test_openapi_contract_is_the_committed_one(served_model_dir: Path, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'events.db'}")
    doc = create_app(Service(store, served_model_dir, llm="off")).openapi()
    if os.environ.get("LLMREC_UPDATE_OPENAPI"):
        SNAPSHOT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    assert SNAPSHOT.is_file(), "no snapshot: run with LLMREC_UPDATE_OPENAPI=1 and commit it"
    want, got = contract(json.loads(SNAPSHOT.read_text())), contract(doc)
    changed = [
        k
        for part in ("paths", "schemas")
        for k in sorted(set(want[part]) | set(got[part]))
        if want[part].get(k) != got[part].get(k)
    ]
    assert got == want, f"the API contract changed: {changed}"


def test_the_contract_projection_sees_a_changed_route() -> None:
    """The comparison is not blind: a new required parameter, a dropped response code or a
    renamed property all change the projection."""
    doc = json.loads(SNAPSHOT.read_text())
    base = contract(doc)
    op = doc["paths"]["/v1/recommendations"]["get"]
    op["parameters"].append({"in": "query", "name": "new", "required": True, "schema": {}})
    assert contract(doc) != base
    doc = json.loads(SNAPSHOT.read_text())
    doc["paths"]["/v1/recommendations"]["get"]["responses"].pop("422")
    assert contract(doc) != base
    doc = json.loads(SNAPSHOT.read_text())
    props = doc["components"]["schemas"]["EventIn"]["properties"]
    props["who"] = props.pop("user_id")
    assert contract(doc) != base
