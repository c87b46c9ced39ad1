"""Admin routes for model versions: list, reload (a named version), rollback, and A/B splits.

Every change loads the new version beside the served one and swaps (``serving.Service``); a
version that cannot be loaded is a 422 naming it and the old one keeps serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from llmrec import versions
from llmrec.errors import LlmrecError
from llmrec.service.deps import ADMIN, ServiceDep
from llmrec.service.errors import ApiError
from llmrec.service.schemas import (
    ERRORS,
    ModelVersionOut,
    Reload,
    SplitIn,
    SplitOut,
    VersionsOut,
)
from llmrec.service.serving import SplitConflict


def _status(e: LlmrecError, field: str | None) -> ApiError:
    """Unknown version: 404; asked of a plain folder or another catalogue: 409; a version
    that does not load: 422."""
    if isinstance(e, versions.UnknownVersionError):
        return ApiError(404, "not_found", str(e), field)
    if isinstance(e, versions.NotVersionedError | SplitConflict):
        return ApiError(409, "conflict", str(e), field)
    return ApiError(422, "invalid_model", str(e), field)


router = APIRouter(responses=ERRORS, dependencies=[ADMIN], tags=["admin"])


@router.get("/v1/admin/versions", response_model=VersionsOut)
def list_versions(service: ServiceDep) -> dict[str, Any]:
    """The served folder's versions, which one answers, and the A/B split if one runs."""
    split = service.split
    return {
        "served": service.live.version,
        "split": None
        if split is None
        else {"model_version": split.live.version, "share": split.share},
        "versions": versions.describe(service.model_dir),
    }


@router.post("/v1/admin/reload", response_model=ModelVersionOut)
async def reload(service: ServiceDep, body: Reload | None = None) -> dict[str, str]:
    """Load again (the folder's current version, e.g. after `llmrec train`), or serve
    ``version`` (it becomes the folder's current one), or another ``model_dir``."""
    target = Path(body.model_dir) if body and body.model_dir else None
    version = body.version if body else None
    try:
        served = await run_in_threadpool(service.reload, target, version)
    except LlmrecError as e:
        by_version = isinstance(e, versions.UnknownVersionError) or (version and not target)
        raise _status(e, "version" if by_version else "model_dir") from None
    return {"model_version": served}


@router.post("/v1/admin/rollback", response_model=ModelVersionOut)
async def rollback(service: ServiceDep) -> dict[str, str]:
    """Serve the version before the served one, and make it the folder's current one."""
    try:
        served = await run_in_threadpool(service.rollback)
    except (versions.UnknownVersionError, versions.NotVersionedError) as e:
        raise ApiError(409, "conflict", str(e)) from None  # nothing to roll back to
    except LlmrecError as e:
        raise _status(e, None) from None
    return {"model_version": served}


@router.put("/v1/admin/ab", response_model=SplitOut)
async def start_split(service: ServiceDep, body: SplitIn) -> dict[str, Any]:
    """Send ``share`` of users (a stable hash of the user id) to ``version``; both
    versions' lists are logged as impressions for `llmrec ab`."""
    try:
        split = await run_in_threadpool(service.start_split, body.version, body.share)
    except LlmrecError as e:
        raise _status(e, "version") from None
    return {"model_version": split.live.version, "share": split.share}


@router.delete("/v1/admin/ab", status_code=204)
async def stop_split(service: ServiceDep) -> None:
    """Every user back on the served version (impressions stay for `llmrec ab`)."""
    await run_in_threadpool(service.stop_split)
