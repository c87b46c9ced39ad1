"""The events store's SQL tables (SQLAlchemy Core, one schema for SQLite and PostgreSQL) and
the numbered migrations that create and upgrade them, each in its own transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def user_digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()


metadata = sa.MetaData()
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(128), unique=True, nullable=True),
    sa.Column("user_id", sa.String(128), nullable=False, index=True),
    sa.Column("item_id", sa.String(128), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("device", sa.String(64), nullable=True),
    sa.Column("location", sa.String(64), nullable=True),
    sa.Column("scenario", sa.String(64), nullable=True),
)
items = sa.Table(
    "items",
    metadata,
    sa.Column("item_id", sa.String(128), primary_key=True),
    sa.Column("title", sa.String(512), nullable=False),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("genres", sa.Text, nullable=True),  # JSON list
    sa.Column("year", sa.Integer, nullable=True),
    sa.Column("attributes", sa.Text, nullable=True),  # JSON object
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("rate_limit", sa.Float, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)
deleted_users = sa.Table(
    "deleted_users",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("deleted_at", sa.BigInteger, nullable=False),
)
# What an exploring service showed: one row per shown item, with the policy's probability of
# showing that item at that position (``llmrec.online.policies``), for off-policy evaluation.
impressions = sa.Table(
    "impressions",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("impression_id", sa.String(36), nullable=False, index=True),
    sa.Column("user_id", sa.String(128), nullable=False, index=True),
    sa.Column("item_id", sa.String(128), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),  # 0-based slot
    sa.Column("rank", sa.Integer, nullable=False),  # 0-based, in the ranker's list
    sa.Column("propensity", sa.Float, nullable=False),
    sa.Column("explored", sa.Boolean, nullable=False),
    sa.Column("policy", sa.String(64), nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("pool", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String(256), nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
)
IMPRESSION_COLUMNS = tuple(c.name for c in impressions.columns if c.name != "seq")
conversations = sa.Table(  # requests in words: the state between follow-ups
    "conversations",
    metadata,
    sa.Column("conversation_id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False, index=True),
    sa.Column("state", sa.Text, nullable=False),  # JSON: constraints, intent, list shown
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
# What every replica on this store serves (``--shared-store``): one row (id 1), rewritten by
# each admin change (reload, rollback, A/B), its ``rev`` counting the changes
serving = sa.Table(
    "serving",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("rev", sa.BigInteger, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # JSON: model_dir, version, split
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.BigInteger, nullable=False),
)


def _v1(conn: Connection) -> None:
    for table in (events, items, api_keys, deleted_users):
        table.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    impressions.create(conn, checkfirst=True)


def _v3(conn: Connection) -> None:
    """Deleted users are remembered by the digest of their id, not the id."""
    rows = conn.execute(sa.select(deleted_users)).all()
    conn.execute(deleted_users.delete())
    for user_id, at in rows:
        conn.execute(deleted_users.insert().values(user_id=user_digest(user_id), deleted_at=at))


def _v4(conn: Connection) -> None:
    conversations.create(conn, checkfirst=True)


# reads by time (the Dashboard's last days) instead of whole tables
EVENTS_BY_TIME = sa.Index("ix_events_timestamp", events.c.timestamp)
IMPRESSIONS_BY_TIME = sa.Index("ix_impressions_timestamp", impressions.c.timestamp)


def _v5(conn: Connection) -> None:
    EVENTS_BY_TIME.create(conn, checkfirst=True)
    IMPRESSIONS_BY_TIME.create(conn, checkfirst=True)


def _v6(conn: Connection) -> None:
    serving.create(conn, checkfirst=True)


# (version, step): append new steps, never edit an applied one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1), (2, _v2), (3, _v3), (4, _v4), (5, _v5), (6, _v6)
]  # fmt: skip
