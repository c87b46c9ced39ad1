"""Column names of the canonical tables (docs/design.md). Use these, never string literals."""

from __future__ import annotations

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
EVENT = "event"
VALUE = "value"
DEVICE = "device"
LOCATION = "location"
SCENARIO = "scenario"
CONTEXT_COLUMNS = (DEVICE, LOCATION, SCENARIO)

TITLE = "title"
GENRES = "genres"
YEAR = "year"

HEAD = "head"
RELATION = "relation"
TAIL = "tail"
ENTITY = "entity"

# the canonical event types (``data.events``: their weights, declared custom names)
EVENTS = ("view", "click", "cart", "purchase", "rate", "like", "dislike")

INTERACTION_COLUMNS = (USER_ID, ITEM_ID, TIMESTAMP, EVENT, VALUE, *CONTEXT_COLUMNS)
