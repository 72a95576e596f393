"""A write-ahead log of acknowledged changes that are not yet committed to a collection.

The HTTP server acknowledges a write as soon as it is in this log, long before the (slow, encoding)
commit that makes it searchable. On restart every logged operation is replayed in order and committed,
so an acknowledged write survives a crash at any point:

- an operation is appended in its own SQLite transaction (WAL journal, ``synchronous=FULL``: fsynced
  before :meth:`WriteAheadLog.append` returns, which is before the client hears "accepted");
- after the collection has committed every operation up to ``seq``, :meth:`truncate` drops them. A crash
  between the two re-applies already committed operations, which is harmless: upserts and deletes are
  idempotent and are replayed in their original order, so the final state is the same.

Operations: ``upsert``, ``screen`` (an upsert through the admission gate: suspects are quarantined, the rest
upserted; replayed, the gate's hold is idempotent too) and ``delete``. Payloads are JSON (documents as
``{"id", "title", "text", "metadata"}`` objects, deletes as id lists): nothing is pickled, and the log is readable
with the ``sqlite3`` shell.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["WriteAheadLog", "WAL_FILENAME"]

WAL_FILENAME = "wal.sqlite"
OPS = ("upsert", "screen", "delete")


class WriteAheadLog:
    """Append-only, fsynced log of ``(seq, op, payload)`` records; safe to call from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS ops (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, "
            "payload TEXT NOT NULL)"
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def append(self, op: str, payload: list[Any]) -> int:
        """Durably log one operation; returns its sequence number (increasing)."""
        if op not in OPS:
            raise ValueError(f"unknown WAL operation {op!r}; expected one of {OPS}")
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            cur = self._conn.execute("INSERT INTO ops (op, payload) VALUES (?, ?)", (op, text))
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def last_seq(self) -> int:
        """The sequence number of the newest record ever appended (0 when none)."""
        with self._lock:
            row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'ops'").fetchone()
        return int(row[0]) if row else 0

    def read(self, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, str, list[Any]]]:
        """Records with ``after < seq <= upto`` in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, op, payload FROM ops WHERE seq > ? AND seq <= ? ORDER BY seq",
                (after, upto if upto is not None else 2**62),
            ).fetchall()
        for seq, op, payload in rows:
            yield int(seq), op, json.loads(payload)

    def pending_items(self) -> int:
        """Documents and ids in the log (each record is a list of them)."""
        with self._lock:
            return int(self._conn.execute("SELECT COALESCE(SUM(json_array_length(payload)), 0) FROM ops").fetchone()[0])

    def count_upto(self, seq: int) -> int:
        """Records with ``seq`` at most this still in the log (not committed yet)."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM ops WHERE seq <= ?", (seq,)).fetchone()[0])

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM ops").fetchone()[0])

    def truncate(self, upto: int) -> None:
        """Forget every record with ``seq <= upto`` (they are committed to the collection)."""
        with self._lock:
            self._conn.execute("DELETE FROM ops WHERE seq <= ?", (upto,))
