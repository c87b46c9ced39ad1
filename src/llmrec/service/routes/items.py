"""Items: search, adding or changing one (it is recommendable at once), similar items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from llmrec.data import columns as C
from llmrec.service.deps import READ, WRITE, ServiceDep
from llmrec.service.errors import ApiError, UnknownItemError
from llmrec.service.schemas import (
    ERRORS,
    ItemIn,
    ItemsOut,
    ItemStored,
    Limit,
    PathID,
    Search,
    SimilarOut,
    items_out,
)
from llmrec.service.store import ITEM_FIELDS, item_frame

router = APIRouter(responses=ERRORS, tags=["items"])


@router.get(
    "/v1/items", response_model=ItemsOut, response_model_exclude_none=True, dependencies=[READ]
)
def find_items(service: ServiceDep, query: Search = "", limit: Limit = 20) -> dict[str, Any]:
    return {"items": service.live.find_items(query, limit)}


@router.put("/v1/items/{item_id}", response_model=ItemStored, dependencies=[WRITE])
def put_item(service: ServiceDep, item_id: PathID, item: ItemIn) -> dict[str, Any]:
    reserved = set(item.attributes) & set(ITEM_FIELDS)
    if reserved:
        name = sorted(reserved)[0]
        raise ApiError(
            422, "invalid_request", f"{name!r} is a field, not an attribute", "attributes"
        )
    row = {C.ITEM_ID: item_id, **item.model_dump()}
    with service.write_lock:
        created = item_id not in service.live.model.items_
        service.store.put_item(row)
        service.put_item(item_frame([row]))
    return {"item_id": item_id, "created": created}


@router.get(
    "/v1/items/{item_id}/similar",
    response_model=SimilarOut,
    response_model_exclude_none=True,
    dependencies=[READ],
)
def similar(
    service: ServiceDep, item_id: PathID, k: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    live = service.live
    try:
        items = live.similar(item_id, k)
    except UnknownItemError as e:
        raise ApiError(404, "not_found", str(e), "item_id") from None
    return {"item_id": item_id, "items": items_out(items), "model_version": live.version}
