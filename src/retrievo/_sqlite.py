"""Opening the SQLite files several processes share (the content caches under ``$RETRIEVO_CACHE_DIR``).

``PRAGMA journal_mode = WAL`` on a file another process is switching at the same moment fails at once with
"database is locked" — SQLite's busy timeout does not cover that lock — so two processes opening a fresh cache
together (Ray shard actors committing at once, server workers) could fail a commit. :func:`connect_shared`
retries it within the busy timeout.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["connect_shared"]


def connect_shared(path: str | Path, synchronous: str = "NORMAL", timeout: float = 10.0) -> sqlite3.Connection:
    """A connection (autocommit, usable from any thread) to ``path`` in WAL mode, waiting up to ``timeout``
    seconds for other processes, also while they create the file."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.02)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn
