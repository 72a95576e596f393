"""SQLite (WAL) storage for documents, metadata, the vocabulary and the segment list.

SQLite is the single commit point of a collection: segment files are written and fsynced first, then
one SQLite transaction makes them, their documents and the new vocabulary visible together. A crash
before that transaction commits leaves the previous commit intact (WAL mode with ``synchronous=FULL``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["DocStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (seg INTEGER PRIMARY KEY, n_rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    seg INTEGER NOT NULL,
    row INTEGER NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS docs_seg_row ON docs (seg, row);
CREATE TABLE IF NOT EXISTS vocab (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS fields (name TEXT PRIMARY KEY, kinds TEXT NOT NULL);
"""


def value_kind(value: Any) -> str:
    """The filter type of a metadata value: ``bool``, ``number``, ``string``, ``list`` or ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    return "object"


class DocStore:
    """Thin wrapper over the collection's SQLite database."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._conn = self._local.conn = self._connect()
        if not readonly:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        with self._all_lock:
            self._all.append(conn)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection to use from this thread.

        A writable store has one connection (its owner serialises writes). A read-only store gives each
        thread its own, so concurrent readers (the HTTP server's request threads) never share a cursor
        or see another thread's snapshot transaction.
        """
        if not self.readonly:
            return self._conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    # -- reads -----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def generation(self) -> int:
        return int(self.get_meta("generation", "0") or 0)

    def segments(self) -> list[tuple[int, int]]:
        return [tuple(r) for r in self.conn.execute("SELECT seg, n_rows FROM segments ORDER BY seg")]  # type: ignore[misc]

    def live_rows(self) -> list[tuple[int, int, str]]:
        """``(seg, row, id)`` of every live document, ordered by segment and row."""
        return self.conn.execute("SELECT seg, row, id FROM docs ORDER BY seg, row").fetchall()

    def vocab(self) -> list[str]:
        rows = self.conn.execute("SELECT id, term FROM vocab ORDER BY id").fetchall()
        terms = [t for _, t in rows]
        if rows and rows[-1][0] != len(rows) - 1:
            raise RuntimeError(f"{self.path}: vocabulary ids are not contiguous")
        return terms

    def fields(self) -> dict[str, set[str]]:
        return {n: set(json.loads(k)) for n, k in self.conn.execute("SELECT name, kinds FROM fields")}

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        ids = list(ids)
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = f"SELECT id FROM docs WHERE id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.conn.execute(q, chunk))
        return found

    def get_docs(self, ids: list[str]) -> dict[str, tuple[str, str, dict[str, Any]]]:
        out: dict[str, tuple[str, str, dict[str, Any]]] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = f"SELECT id, title, text, metadata FROM docs WHERE id IN ({','.join('?' * len(chunk))})"
            for doc_id, title, text, meta in self.conn.execute(q, chunk):
                out[doc_id] = (title, text, json.loads(meta))
        return out

    def hashes(self, ids: list[str]) -> dict[str, tuple[str, int, int]]:
        """``id -> (hash, seg, row)`` of the committed documents among ``ids``."""
        out: dict[str, tuple[str, int, int]] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = f"SELECT id, hash, seg, row FROM docs WHERE id IN ({','.join('?' * len(chunk))})"
            for doc_id, h, seg, row in self.conn.execute(q, chunk):
                out[doc_id] = (h, seg, row)
        return out

    def iter_docs(self, batch: int = 1000) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        cur = self.conn.execute("SELECT id, title, text, metadata FROM docs ORDER BY seg, row")
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                return
            for doc_id, title, text, meta in rows:
                yield doc_id, title, text, json.loads(meta)

    def select_rows(self, where_sql: str, params: list[Any]) -> list[tuple[int, int]]:
        q = f"SELECT seg, row FROM docs WHERE {where_sql}"
        return self.conn.execute(q, params).fetchall()

    # -- writes (inside one transaction) ---------------------------------------------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def add_terms(self, start_id: int, terms: list[str]) -> None:
        self.conn.executemany(
            "INSERT INTO vocab (id, term) VALUES (?, ?)", [(start_id + i, t) for i, t in enumerate(terms)]
        )

    def add_segment(self, seg: int, n_rows: int) -> None:
        self.conn.execute("INSERT INTO segments (seg, n_rows) VALUES (?, ?)", (seg, n_rows))

    def drop_segments(self, segs: list[int]) -> None:
        self.conn.executemany("DELETE FROM segments WHERE seg = ?", [(s,) for s in segs])

    def delete_ids(self, ids: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM docs WHERE id = ?", [(i,) for i in ids])

    def insert_docs(self, rows: list[tuple[str, int, int, str, str, str, str]]) -> None:
        self.conn.executemany(
            "INSERT INTO docs (id, seg, row, title, text, metadata, hash) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
        )

    def move_rows(self, moves: list[tuple[int, int, str]]) -> None:
        """``(new_seg, new_row, id)`` for every document rewritten by a merge."""
        self.conn.executemany("UPDATE docs SET seg = ?, row = ? WHERE id = ?", moves)

    def merge_fields(self, kinds: dict[str, set[str]]) -> None:
        current = self.fields()
        for name, ks in kinds.items():
            merged = sorted(current.get(name, set()) | ks)
            self.conn.execute(
                "INSERT OR REPLACE INTO fields (name, kinds) VALUES (?, ?)", (name, json.dumps(merged))
            )
