"""The API's routes, one ``APIRouter`` per resource; ``create_app`` includes them in this
order (the page and health check first; admin last)."""

from __future__ import annotations

from llmrec.service.routes import (
    activity,
    admin,
    events,
    items,
    pages,
    recommendations,
    users,
)

ROUTERS = (
    pages.router,
    recommendations.router,
    users.router,
    items.router,
    events.router,
    admin.router,
    activity.router,
)

__all__ = ["ROUTERS"]
