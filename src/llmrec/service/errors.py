"""The API's errors: every client mistake is ``{"error": {"code", "message", "field"?}}`` with a
4xx status naming the field; a 500 means a bug and is logged without user data."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmrec.errors import LlmrecError
from llmrec.service.redaction import log_internal

log = logging.getLogger("llmrec.service")


class UnknownUserError(LlmrecError):
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"user {user_id!r} has no events and no profile")


class UnknownItemError(LlmrecError):
    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(f"item {item_id!r} is not in the catalogue (PUT /v1/items/{{id}} first)")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(message)


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_CODES = {
    408: "timeout",
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.code, e.message, e.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = sorted(e.errors(), key=lambda x: x.get("type") in _WRONG_BRANCH)
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            pos = first["loc"][-1] if first.get("loc") else "?"
            return error_response(
                422, "invalid_json", f"the body is not valid JSON (at {pos})", "body"
            )
        return error_response(
            422, "invalid_request", str(first["msg"]), _field(first.get("loc", ()))
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(e.status_code, "error")
        response = error_response(e.status_code, code, str(e.detail))
        response.headers.update(e.headers or {})  # e.g. Allow on a 405
        return response

    @app.exception_handler(LlmrecError)
    async def user_error(_: Request, e: LlmrecError) -> JSONResponse:
        return error_response(400, "bad_request", str(e))

    @app.exception_handler(Exception)
    async def bug(_: Request, e: Exception) -> JSONResponse:
        log_internal(log, e)  # type and place only: messages can quote client data
        return error_response(500, "internal", "internal error")


# errors from the union branch that does not match the body's type (object vs list)
_WRONG_BRANCH = {"model_attributes_type", "list_type", "model_type", "dict_type"}


_UNION_TAGS = {"constrained-str", "str", "int", "float", "bool"}


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """("body", 0, "item_id") -> "body[0].item_id"; ("query", "k") -> "k"."""
    parts = list(loc)
    if parts and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    if len(parts) > 1 and parts[-1] in _UNION_TAGS:  # which branch of a union: not a field
        parts = parts[:-1]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p not in ("list[EventIn]", "EventIn", "function-after[...]"):
            out += f".{p}" if out else str(p)
    return out or None
