"""The events store: events, items, API keys and user deletions, in SQLite or PostgreSQL.

One schema for both (SQLAlchemy Core), created and upgraded by the numbered migrations
below, each in its own transaction. SQLite runs in WAL mode with ``synchronous=FULL``: a
commit has reached the disk when ``add_events`` returns, so a 202 survives a killed process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from llmrec.config import get_settings
from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.errors import ConfigError, LlmrecError

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


# (version, step): append new steps, never edit an applied one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1), (2, _v2), (3, _v3), (4, _v4)
]  # fmt: skip
EVENT_COLUMNS = (
    "event_id",
    C.USER_ID,
    C.ITEM_ID,
    C.EVENT,
    C.VALUE,
    C.TIMESTAMP,
    *C.CONTEXT_COLUMNS,
)


def user_digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()


class DeletedUsers:
    """The users deleted so far, held as SHA-256 digests of their ids: the store knows that
    an id was deleted (to drop the training events that carry it) without keeping the id."""

    def __init__(self, digests: set[str]) -> None:
        self.digests = digests

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and user_digest(user_id) in self.digests

    def mask(self, user_ids: pd.Series) -> np.ndarray:
        """True where the id is a deleted user's."""
        if not self.digests:
            return np.zeros(len(user_ids), dtype=bool)
        # each distinct id hashed once: a log has far more events than users
        codes, uniques = pd.factorize(user_ids.astype(str))
        deleted = np.fromiter((user_digest(u) in self.digests for u in uniques), bool, len(uniques))
        return deleted[codes] if len(codes) else np.zeros(0, dtype=bool)


@dataclass(frozen=True)
class Stored:
    """What ``add_events`` did with one event: its sequence number, and whether it was
    already stored (a retry with the same ``event_id``)."""

    seq: int
    duplicate: bool


def default_url() -> str:
    return f"sqlite:///{get_settings().events_db.resolve()}"


class Store:
    """Events and items by sequence number; every write is one transaction."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ConfigError(f"--db {url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        self.url = url
        self.engine = _engine(url)
        try:
            self.migrate()
        except sa.exc.OperationalError as e:
            raise LlmrecError(f"cannot open the events store {_safe(url)}: {e.orig}") from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> int:
        """Apply the migrations not yet applied; returns the schema version."""
        with self.engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
        done = 0
        for version, step in MIGRATIONS:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":  # one migrator at a time
                    conn.execute(sa.text("LOCK TABLE schema_version IN EXCLUSIVE MODE"))
                have = conn.execute(
                    sa.select(schema_version.c.version).where(schema_version.c.version == version)
                ).first()
                if have is None:
                    step(conn)
                    conn.execute(schema_version.insert().values(version=version, applied_at=_now()))
            done = version
        return done

    def close(self) -> None:
        self.engine.dispose()

    # --- events ------------------------------------------------------------------------
    def add_events(self, rows: list[dict[str, Any]]) -> list[Stored]:
        """Store ``rows`` (dicts with EVENT_COLUMNS) in one transaction; a row whose
        ``event_id`` is already stored is not stored again. Returns one ``Stored`` per row."""
        for attempt in range(3):
            try:
                return self._add_events(rows)
            except sa.exc.IntegrityError:  # a concurrent retry stored an event_id first
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _add_events(self, rows: list[dict[str, Any]]) -> list[Stored]:
        ids = [r["event_id"] for r in rows if r.get("event_id")]
        with self.engine.begin() as conn:
            known: dict[str, int] = {}
            for chunk in _chunks(ids, 500):
                q = sa.select(events.c.event_id, events.c.seq).where(events.c.event_id.in_(chunk))
                known.update({e: s for e, s in conn.execute(q)})
            out: list[Stored] = []
            for r in rows:
                eid = r.get("event_id")
                if eid and eid in known:
                    out.append(Stored(known[eid], True))
                    continue
                res = conn.execute(events.insert().values(**{c: r.get(c) for c in EVENT_COLUMNS}))
                seq = int(res.inserted_primary_key[0])
                if eid:
                    known[eid] = seq  # the same id twice in one batch is stored once
                out.append(Stored(seq, False))
        return out

    def events_since(
        self, seq: int = 0, user_id: str | None = None, event: str | None = None
    ) -> pd.DataFrame:
        """Events with sequence number > ``seq``, in order (all users or one, all kinds
        or one)."""
        q = sa.select(events).where(events.c.seq > seq).order_by(events.c.seq)
        if user_id is not None:
            q = q.where(events.c.user_id == user_id)
        if event is not None:
            q = q.where(events.c.event == event)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        cols = ["seq", *EVENT_COLUMNS]
        return pd.DataFrame([dict(r) for r in rows], columns=cols)

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0)

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)

    # --- impressions -------------------------------------------------------------------
    def add_impressions(self, rows: list[dict[str, Any]]) -> None:
        """Store one slate's shown items (dicts with IMPRESSION_COLUMNS) in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(
                impressions.insert(), [{c: r[c] for c in IMPRESSION_COLUMNS} for r in rows]
            )

    def impressions_since(self, seq: int = 0) -> pd.DataFrame:
        """Logged impressions with sequence number > ``seq``, in order."""
        q = sa.select(impressions).where(impressions.c.seq > seq).order_by(impressions.c.seq)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=["seq", *IMPRESSION_COLUMNS])

    # --- users -------------------------------------------------------------------------
    def delete_user(self, user_id: str) -> int:
        """Delete the user's events, impressions and conversations and remember the deletion
        by the id's digest (so the events the model was trained on are dropped too). On
        SQLite the freed pages are zeroed (``secure_delete``) and the WAL checkpointed and
        truncated, so the files keep no bytes of them. Returns how many stored events were
        deleted."""
        digest = user_digest(user_id)
        with self.engine.begin() as conn:
            conn.execute(impressions.delete().where(impressions.c.user_id == user_id))
            conn.execute(conversations.delete().where(conversations.c.user_id == user_id))
            n = conn.execute(events.delete().where(events.c.user_id == user_id)).rowcount
            conn.execute(deleted_users.delete().where(deleted_users.c.user_id == digest))
            conn.execute(deleted_users.insert().values(user_id=digest, deleted_at=_now()))
        if self.dialect == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(n or 0)

    def deleted_users(self) -> DeletedUsers:
        """Users deleted so far (their training events are dropped wherever they appear;
        events stored after the deletion count again)."""
        with self.engine.connect() as conn:
            return DeletedUsers({u for (u,) in conn.execute(sa.select(deleted_users.c.user_id))})

    # --- conversations -------------------------------------------------------------------
    def save_conversation(
        self, conversation_id: str, user_id: str, state: dict[str, Any], ttl: float
    ) -> None:
        """Keep a conversation's state; conversations idle for ``ttl`` seconds are dropped."""
        now = _now()
        c = conversations.c
        with self.engine.begin() as conn:
            conn.execute(conversations.delete().where(c.updated_at < now - ttl))
            conn.execute(conversations.delete().where(c.conversation_id == conversation_id))
            conn.execute(conversations.insert().values(
                conversation_id=conversation_id, user_id=user_id, state=json.dumps(state),
                updated_at=now,
            ))  # fmt: skip

    def conversation(self, conversation_id: str, user_id: str, ttl: float) -> dict | None:
        """The state of ``user_id``'s conversation, unless it is unknown, another user's, or
        idle for ``ttl`` seconds."""
        c = conversations.c
        query = sa.select(c.state).where(
            c.conversation_id == conversation_id, c.user_id == user_id,
            c.updated_at >= _now() - ttl,
        )  # fmt: skip
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else json.loads(row[0])

    # --- items -------------------------------------------------------------------------
    def put_item(self, item: dict[str, Any]) -> None:
        """Insert or replace one item (item_id, title, text, genres, year, attributes)."""
        row = {
            "item_id": item[C.ITEM_ID],
            "title": item[C.TITLE],
            "text": item.get("text"),
            "genres": json.dumps(item.get(C.GENRES) or []),
            "year": item.get(C.YEAR),
            "attributes": json.dumps(item.get("attributes") or {}),
            "updated_at": _now(),
        }
        with self.engine.begin() as conn:
            conn.execute(items.delete().where(items.c.item_id == row["item_id"]))
            conn.execute(items.insert().values(**row))

    def items_table(self) -> pd.DataFrame:
        """Stored items as a catalogue table (item_id, title, text, genres, year, attributes
        spread into columns)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(items).order_by(items.c.item_id)).mappings().all()
        return item_frame(
            {
                **r,
                C.GENRES: json.loads(r[C.GENRES] or "[]"),
                "attributes": json.loads(r["attributes"] or "{}"),
            }
            for r in rows
        )

    # --- keys --------------------------------------------------------------------------
    def add_key(self, name: str, prefix: str, digest: str, role: str, rate_limit: float) -> int:
        with self.engine.begin() as conn:
            res = conn.execute(
                api_keys.insert().values(
                    name=name,
                    prefix=prefix,
                    hash=digest,
                    role=role,
                    rate_limit=rate_limit,
                    created_at=_now(),
                )
            )
            return int(res.inserted_primary_key[0])

    def key_by_hash(self, digest: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.hash == digest)).mappings()
            first = row.first()
            return dict(first) if first else None

    def keys(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).mappings().all()
            return [dict(r) for r in rows]

    def revoke_key(self, key_id: int) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            return bool(res.rowcount)


def with_store(ds: Dataset, store: Store) -> tuple[Dataset, int]:
    """``ds`` plus what the service stored (events, items), minus deleted users; and the
    last sequence number included. Dislikes are not training positives: the service keeps
    them as exclusions."""
    last = store.last_seq()
    ev = store.events_since(0)
    ev = ev[(ev["seq"] <= last) & (ev[C.EVENT] != "dislike")]
    inter = ds.interactions
    deleted = store.deleted_users()
    if deleted:
        inter = inter[~deleted.mask(inter[C.USER_ID])]
    if len(ev):
        inter = pd.concat([inter, ev[[c for c in EVENT_COLUMNS if c != "event_id"]]])
    catalogue = ds.items
    stored = store.items_table()
    if len(stored):
        keep = ~catalogue[C.ITEM_ID].astype(str).isin(stored[C.ITEM_ID])
        catalogue = pd.concat([catalogue[keep], stored], ignore_index=True)
    out = dataclasses.replace(ds, interactions=inter.reset_index(drop=True), items=catalogue)
    return out, last


def item_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Items (item_id, title, text, genres list, year, attributes dict) -> a catalogue
    table, attributes spread into columns (what models' ``add_items`` take)."""
    out = [
        {
            **{f: r.get(f) for f in ITEM_FIELDS},
            C.GENRES: list(r.get(C.GENRES) or []),
            **{k: v for k, v in (r.get("attributes") or {}).items() if k not in ITEM_FIELDS},
        }
        for r in rows
    ]
    return pd.DataFrame(out, columns=None if out else list(ITEM_FIELDS))


ITEM_FIELDS = (C.ITEM_ID, C.TITLE, "text", C.GENRES, C.YEAR)  # the rest are attributes


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path == ":memory:":  # one shared connection: every thread sees the same tables
            return sa.create_engine(
                url, connect_args={"check_same_thread": False}, poolclass=sa.pool.StaticPool
            )
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA secure_delete=ON")  # deleted rows' bytes are overwritten
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8)


def _chunks(xs: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


def _now() -> int:
    return int(time.time())


def _safe(url: str) -> str:
    """The URL without a password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)
