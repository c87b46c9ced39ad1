"""Users: search, one user's profile and events, and deleting a user with all their data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from llmrec.service.deps import READ, WRITE, ServiceDep
from llmrec.service.errors import ApiError, UnknownUserError
from llmrec.service.schemas import ERRORS, Limit, PathID, Search, UserDeleted, UserOut, UsersOut

router = APIRouter(responses=ERRORS, tags=["users"])


@router.get("/v1/users", response_model=UsersOut, dependencies=[READ])
def find_users(service: ServiceDep, query: Search = "", limit: Limit = 20) -> dict[str, Any]:
    return {"users": service.live.find_users(query, limit)}


@router.get("/v1/users/{user_id}", response_model=UserOut, dependencies=[READ])
def get_user(
    service: ServiceDep,
    user_id: PathID,
    limit: Annotated[int, Query(ge=0, le=1000, description="latest events shown")] = 50,
) -> dict[str, Any]:
    try:
        return service.live_for(user_id).user(user_id, limit)
    except UnknownUserError as e:
        raise ApiError(404, "not_found", str(e), "user_id") from None


@router.delete("/v1/users/{user_id}", response_model=UserDeleted, dependencies=[WRITE])
def delete_user(service: ServiceDep, user_id: PathID) -> dict[str, Any]:
    n = service.delete_user(user_id)
    return {"user_id": user_id, "deleted_events": n}
