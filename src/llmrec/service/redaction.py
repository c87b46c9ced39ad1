"""Server errors logged without user data.

An exception's message and a traceback's source lines can hold what a client sent (a
database driver quotes the failing row: ids, titles, text). The log gets the exception's type
and where it was raised (file, line, function), never its message. Starlette re-raises a
handled 500 so that servers log it; ``swallow_handled_errors`` stops that one copy, which
uvicorn would print with the message.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send


def where(e: BaseException) -> str:
    """'app.py:12 route <- live.py:40 recommend ...', innermost last; no messages, no source."""
    frames = traceback.extract_tb(e.__traceback__)
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-8:])


def log_internal(log: logging.Logger, e: BaseException) -> None:
    log.error("internal error: %s at %s", type(e).__name__, where(e))


def swallow_handled_errors(app: FastAPI) -> None:
    """Wrap the built middleware stack: an exception that reaches the outside has already
    been answered with a 500 and logged by ``log_internal``."""
    build = app.build_middleware_stack

    def stack() -> ASGIApp:
        inner = build()

        async def outer(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await inner(scope, receive, send)
            except Exception:  # noqa: BLE001 - answered and logged (redacted) already
                if scope["type"] != "http":
                    raise

        return outer

    app.build_middleware_stack = stack  # type: ignore[method-assign]
