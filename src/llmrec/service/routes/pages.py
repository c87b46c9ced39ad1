"""The page, the health check and the reports the page shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from llmrec.service.deps import READ, ServiceDep
from llmrec.service.schemas import ERRORS, Health, ReportsOut

WEB = Path(__file__).parents[1] / "web"  # the page's static files (no key needed, no CDN)

router = APIRouter()


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/healthz", response_model=Health, tags=["service"])
def healthz(service: ServiceDep) -> dict[str, Any]:
    return {"status": "ok", **service.live.stats()}


@router.get(
    "/v1/reports",
    response_model=ReportsOut,
    responses=ERRORS,
    dependencies=[READ],
    tags=["reports"],
)
def reports(service: ServiceDep) -> dict[str, Any]:
    """The evaluation reports of `llmrec eval` (the server's `--reports` folder)."""
    return service.reports.latest()
