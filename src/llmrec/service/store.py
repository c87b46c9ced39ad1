"""The events store: events, items, API keys and user deletions, in SQLite or PostgreSQL.

One schema for both (SQLAlchemy Core), created and upgraded by the numbered migrations
below, each in its own transaction. SQLite runs in WAL mode with ``synchronous=FULL``: a
commit has reached the disk when ``add_events`` returns, so a 202 survives a killed process.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmrec.config import get_settings
from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.errors import ConfigError, LlmrecError
from llmrec.service.tables import (
    IMPRESSION_COLUMNS,
    MIGRATIONS,
    api_keys,
    conversations,
    deleted_users,
    events,
    impressions,
    items,
    schema_version,
    serving,
    user_digest,
)

EVENT_COLUMNS = (
    "event_id",
    C.USER_ID,
    C.ITEM_ID,
    C.EVENT,
    C.VALUE,
    C.TIMESTAMP,
    *C.CONTEXT_COLUMNS,
)


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
        self,
        seq: int = 0,
        user_id: str | None = None,
        event: str | None = None,
        since_ts: int | None = None,
    ) -> pd.DataFrame:
        """Events with sequence number > ``seq``, in order (all users or one, all kinds
        or one; with ``since_ts``, only those at or after that time)."""
        q = sa.select(events).where(events.c.seq > seq).order_by(events.c.seq)
        if since_ts is not None:
            q = q.where(events.c.timestamp >= since_ts)
        if user_id is not None:
            q = q.where(events.c.user_id == user_id)
        if event is not None:
            q = q.where(events.c.event == event)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        cols = ["seq", *EVENT_COLUMNS]
        return pd.DataFrame([dict(r) for r in rows], columns=cols)

    def marks(self) -> tuple[int, int, int, int, int]:
        """(newest event seq, items, newest item change, deleted users, serving changes) in
        one query: what a process following this store compares to see whether another one
        wrote."""
        q = sa.select(
            sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0)).scalar_subquery(),
            sa.select(sa.func.count()).select_from(items).scalar_subquery(),
            sa.select(sa.func.coalesce(sa.func.max(items.c.updated_at), 0)).scalar_subquery(),
            sa.select(sa.func.count()).select_from(deleted_users).scalar_subquery(),
            sa.select(sa.func.coalesce(sa.func.max(serving.c.rev), 0)).scalar_subquery(),
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).one()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4])

    def serving_state(self) -> tuple[int, dict[str, Any] | None]:
        """(rev, state) of what the replicas serve; (0, None) before any admin change."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(serving.c.rev, serving.c.state)).first()
        return (0, None) if row is None else (int(row[0]), json.loads(row[1]))

    def set_serving_state(self, state: dict[str, Any]) -> int:
        """Store what every replica should serve; returns its new rev. The increment is one
        UPDATE (atomic under concurrent admins: the last one wins everywhere)."""
        doc, now = json.dumps(state, sort_keys=True), int(time.time())
        for _ in range(2):  # the first change inserts the row; a racing insert retries
            try:
                with self.engine.begin() as conn:
                    bump = serving.update().where(serving.c.id == 1)
                    done = conn.execute(
                        bump.values(rev=serving.c.rev + 1, state=doc, updated_at=now)
                    )
                    if done.rowcount == 0:
                        conn.execute(serving.insert().values(id=1, rev=1, state=doc,
                                                             updated_at=now))  # fmt: skip
                    return int(conn.execute(sa.select(serving.c.rev)).scalar_one())
            except sa.exc.IntegrityError:
                continue
        raise LlmrecError("could not store the serving state")

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

    def impressions_since(self, seq: int = 0, since_ts: int | None = None) -> pd.DataFrame:
        """Logged impressions with sequence number > ``seq`` (and time at or after
        ``since_ts``), in order."""
        q = sa.select(impressions).where(impressions.c.seq > seq).order_by(impressions.c.seq)
        if since_ts is not None:
            q = q.where(impressions.c.timestamp >= since_ts)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=["seq", *IMPRESSION_COLUMNS])

    def last_impression_time(self) -> int | None:
        with self.engine.connect() as conn:
            t = conn.execute(sa.select(sa.func.max(impressions.c.timestamp))).scalar()
        return None if t is None else int(t)

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
