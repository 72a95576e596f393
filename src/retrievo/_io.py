"""Durable file writes: the one place that writes a file so that a crash leaves the old file or the new one.

Every file a collection keeps outside SQLite (manifest, segment arrays, derived indexes, calibrators, query
adapters) is written through :func:`write_atomic`: to ``<name>.tmp`` beside the target, flushed and
fsynced, renamed over the target, and the folder fsynced so the rename itself survives a power cut.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["fsync_dir", "save_npy", "write_atomic", "write_json", "write_synced"]


def fsync_dir(path: str | Path) -> None:
    """fsync a folder, so that the names created or renamed in it are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Create ``path`` with ``write(fh)`` and fsync it (no rename: for files inside a folder that is itself
    published by a rename, such as a segment)."""
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any], sync_dir: bool = True) -> None:
    """Replace ``path`` atomically with what ``write(fh)`` writes: temporary file, fsync, rename, folder fsync."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write_synced(tmp, write)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def write_json(path: str | Path, obj: Any, indent: int | None = 2, sync_dir: bool = True) -> None:
    """Replace ``path`` atomically with ``obj`` as JSON (keys sorted, a final newline)."""
    data = (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode()
    write_atomic(path, lambda fh: fh.write(data), sync_dir=sync_dir)


def save_npy(path: str | Path, arr: np.ndarray, sync_dir: bool = True) -> None:
    """Replace ``path`` atomically with ``arr`` in ``.npy`` format (never pickled)."""
    write_atomic(path, lambda fh: np.save(fh, np.ascontiguousarray(arr), allow_pickle=False), sync_dir=sync_dir)
