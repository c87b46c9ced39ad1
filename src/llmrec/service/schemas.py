"""The API's request and response models, and the constraints on what clients send."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from llmrec.data import columns as C
from llmrec.query.parse import MAX_QUERY_CHARS

if TYPE_CHECKING:
    from llmrec.service.listing import Recommended

MAX_EVENTS = 1000  # per request
ID = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
Short = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]
# no control characters in anything stored or shown: PostgreSQL refuses NUL in text (a 500
# before this), and a terminal or log reader should not get escape sequences
PathID = Annotated[str, PathParam(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Title = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]+$")]
# free text keeps tabs and line breaks
Text = Annotated[str, Field(max_length=10_000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
Search = Annotated[str, Query(max_length=128, description="part of the id (or title)")]
Limit = Annotated[int, Query(ge=1, le=100)]
RequestText = Annotated[
    str | None,
    Query(
        max_length=MAX_QUERY_CHARS,
        description='a request in words ("a light 80s space adventure", "like Fargo but no '
        "horror\"), blended with the user's history; the list then ignores rerank and "
        "exploration",
    ),
]
UserQuery = Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Context(Strict):
    device: Short | None = None
    location: Short | None = None
    scenario: Short | None = None


class EventIn(Strict):
    user_id: ID
    item_id: ID
    event: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="a built-in type (" + ", ".join(C.EVENTS) + ") or a custom name the "
        "served dataset declares (e.g. add_to_cart)",
    )
    value: float | None = Field(None, ge=-1e6, le=1e6, description="the rating for 'rate'")
    timestamp: int | None = Field(None, ge=0, le=2**33, description="unix seconds; now if absent")
    event_id: ID | None = Field(None, description="makes a retry idempotent")
    context: Context | None = None


class EventsAccepted(BaseModel):
    stored: int
    duplicates: int


class ItemIn(Strict):
    title: Title
    text: Text | None = None
    genres: Annotated[list[Short], Field(max_length=20)] = []
    year: int | None = Field(None, ge=0, le=3000)
    attributes: Annotated[
        dict[
            Short,
            Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
            | int
            | float
            | bool,
        ],
        Field(max_length=20),
    ] = {}


class ItemOut(BaseModel):
    item_id: str
    score: float
    title: str
    explanation: str | None = None
    source: str | None = Field(
        None, description="the retriever (or cold-start rule) that proposed the item"
    )
    explanation_source: Literal["llm", "template", "query"] | None = Field(
        None,
        description="who wrote the explanation: the LLM (checked), the template (the LLM is "
        "off, failed a check, or was not ready within the budget), or, for a request in "
        "words, what the item matches (the constraint, the anchor, the user's history)",
    )
    propensity: float | None = Field(
        None,
        description="exploring service: the probability that this item is shown at this "
        "position (logged with the impression)",
    )
    explored: bool | None = Field(
        None, description="exploring service: the position shows an item from below the list"
    )


class ExplanationOut(BaseModel):
    user_id: str
    item_id: str
    kind: Literal["explanation", "pitch"]
    text: str
    source: Literal["llm", "template"]


class Chip(BaseModel):
    kind: str = Field(
        max_length=64, description="years, genre, not-genre, like, not, or a catalogue column"
    )
    value: str = Field(max_length=512)
    item_id: str | None = Field(None, max_length=128)


class QueryOut(BaseModel):
    constraints: list[Chip] = Field(description="the hard constraints understood, in order")
    intent: str = Field(description="the words matched by text (empty: none were left)")
    reason: str | None = Field(None, description="why the list is empty")


class AskIn(Strict):
    user_id: ID
    q: str = Field(
        "", max_length=MAX_QUERY_CHARS,
        description='a request in words, or a follow-up to the conversation ("more like the '
        'second one", "no horror", "older")',
    )  # fmt: skip
    k: int = Field(10, ge=1, le=100)
    conversation_id: str | None = Field(
        None, pattern=r"^[0-9a-f]{32}$", description="continue this conversation (from a "
        "previous answer); absent: start one",
    )  # fmt: skip
    remove: Annotated[list[Chip], Field(max_length=20)] = Field(
        default_factory=list, description="constraints (chips of the previous answer) to drop"
    )


class RecommendationsOut(BaseModel):
    user_id: str
    items: list[ItemOut]
    model_version: str
    query: QueryOut | None = Field(None, description="with q: how the request was read")
    conversation_id: str | None = Field(
        None, description="POST: the conversation a follow-up continues (expires when idle)"
    )
    impression_id: str | None = Field(
        None, description="exploring service: the id under which this list was logged"
    )


class SimilarOut(BaseModel):
    item_id: str
    items: list[ItemOut]
    model_version: str


class UserHit(BaseModel):
    user_id: str
    events: int


class UsersOut(BaseModel):
    users: list[UserHit]


class HistoryEvent(BaseModel):
    item_id: str
    title: str
    event: str
    value: float | None = None
    timestamp: int


class UserOut(BaseModel):
    user_id: str
    profile: dict[str, str | int | float | bool]
    events: int
    history: list[HistoryEvent]


class CatalogueItem(BaseModel):
    item_id: str
    title: str
    genres: list[str] = []
    year: int | None = None
    events: int


class ItemsOut(BaseModel):
    items: list[CatalogueItem]


class Examples(BaseModel):  # the page's hints, from the served catalogue
    user: str | None = None
    title: str | None = None
    genres: list[str] = []


class ContextValues(BaseModel):
    device: list[str]
    location: list[str]
    scenario: list[str]
    item_noun: str = "item"  # the server's --item-noun
    examples: Examples = Examples()


class GroupNdcg(BaseModel):
    users: int | None
    ndcg_10: float | None = Field(alias="ndcg@10")


class GroupGap(BaseModel):
    """NDCG@10 per group of one user attribute (``llmrec eval --groups``)."""

    groups: dict[str, GroupNdcg]
    gap: float | None
    interval: list[float | None]  # 95% bootstrap interval of the best-minus-worst gap
    p: float | None  # permutation p-value


class ReportModel(BaseModel):
    model: str
    metrics: dict[str, float]
    params: dict[str, Any]
    fit_seconds: float | None
    valid_ndcg_10: float | None = Field(alias="valid_ndcg@10")
    rerank: str | None = None  # the post-ranking stage of ``llmrec eval --rerank``
    groups: dict[str, GroupGap] = {}
    # ``llmrec eval --tradeoffs``: per reranker, {"strength", "ndcg@10", ...} at each strength
    tradeoffs: dict[str, list[dict[str, float]]] = {}


class Report(BaseModel):
    name: str
    dataset: str
    protocol: str
    n_users: int | None
    n_items: int | None
    modified: int
    models: list[ReportModel]


class ReportProblem(BaseModel):
    file: str
    message: str


class ReportsOut(BaseModel):
    folder: str
    metrics: list[str]
    reports: list[Report]
    problems: list[ReportProblem]


class ItemStored(BaseModel):
    item_id: str
    created: bool


class UserDeleted(BaseModel):
    user_id: str
    deleted_events: int


Version = Annotated[str, Field(pattern=r"^v[1-9][0-9]{0,8}$", description="e.g. v3")]


class Reload(Strict):
    model_dir: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    version: Version | None = None  # of the folder; it becomes the folder's current version


class ModelVersionOut(BaseModel):
    model_version: str


class SplitIn(Strict):
    version: Version
    share: Annotated[float, Field(gt=0.0, lt=1.0, description="share of users sent to it")]


class SplitOut(BaseModel):
    model_version: str
    share: float


class VersionRow(BaseModel):
    version: str
    current: bool
    created: int | None = None
    dataset: str | None = None
    model: str | None = None
    valid_ndcg_at_10: float | None = Field(None, alias="valid_ndcg@10")
    n_events: int | None = None


class VersionsOut(BaseModel):
    served: str  # model_version of the version answering users outside a split
    split: SplitOut | None = None
    versions: list[VersionRow]  # of the served folder, oldest first (empty: a plain folder)


class Health(BaseModel):
    status: str
    model_version: str
    users: int
    items: int
    events: int
    live_events: int


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut} for s in (400, 401, 403, 404, 408, 409, 413, 422, 429, 503)
}


def event_names_in_schema(app: FastAPI, names: Callable[[], list[str]]) -> None:
    """The OpenAPI document lists the served model's event names (built-in and declared) as
    ``EventIn.event``'s enum, so clients and fuzzers see what the 422 check accepts; ``names``
    is read at each call, since a reload may bring a dataset with other declared names."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        props = schema.get("components", {}).get("schemas", {}).get("EventIn", {})
        event = props.get("properties", {}).get("event")
        if event is not None:
            event["enum"] = names()
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def items_out(items: list[Recommended]) -> list[dict[str, Any]]:
    """``ItemOut`` rows (``None`` fields are left out of the response)."""
    return [
        {
            "item_id": r.item_id,
            "score": r.score,
            "title": r.title,
            "explanation": r.explanation,
            "source": r.source,
            "explanation_source": r.explanation_source,
            "propensity": r.propensity,
            "explored": r.explored,
        }
        for r in items
    ]
