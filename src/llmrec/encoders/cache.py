"""On-disk vector cache: SQLite, one row per (encoder name, sha256 of the text)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    encoder TEXT NOT NULL,
    text_sha TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (encoder, text_sha)
) WITHOUT ROWID
"""
_CHUNK = 500  # keys per query (SQLite's variable limit)


class VectorCache:
    """Safe for several processes (SQLite WAL); writes are one transaction per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get_many(self, encoder: str, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._connect() as con:
            for lo in range(0, len(unique), _CHUNK):
                chunk = unique[lo : lo + _CHUNK]
                marks = ",".join("?" * len(chunk))
                query = "SELECT text_sha, vec FROM vectors WHERE encoder = ? AND text_sha IN "
                rows = con.execute(f"{query}({marks})", [encoder, *chunk])
                out.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        return out

    def put_many(self, encoder: str, vectors: dict[str, np.ndarray]) -> None:
        with self._connect() as con:
            con.executemany(
                "INSERT OR REPLACE INTO vectors (encoder, text_sha, vec) VALUES (?, ?, ?)",
                [(encoder, k, np.asarray(v, np.float32).tobytes()) for k, v in vectors.items()],
            )

    def count(self, encoder: str | None = None) -> int:
        with self._connect() as con:
            if encoder is None:
                return int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
            q = "SELECT COUNT(*) FROM vectors WHERE encoder = ?"
            return int(con.execute(q, [encoder]).fetchone()[0])
