"""``python -m llmrec.cli``: the same as the ``llmrec`` command."""

from __future__ import annotations

from llmrec.cli import main

main()
