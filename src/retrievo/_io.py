"""Durable file writes: the one place that writes a file so that a crash leaves the old file or the new one.

Every file a collection keeps outside SQLite (manifest, segment arrays, derived indexes, calibrators, query
adapters) is written through :func:`write_atomic`: to ``<name>.tmp`` beside the target, flushed and
fsynced, renamed over the target, and the folder fsynced so the rename itself survives a power cut. A
folder written as a whole (a trained model, a query encoder) is built beside its place and renamed into it
(:func:`staged_folder`), so a failed or interrupted run leaves no half-written folder under the name. Arrays
are read back through :func:`load_npy`, one header parse at a time (a CPython 3.11 thread-safety bug).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["check_new_folder", "fsync_dir", "save_npy", "staged_folder", "write_atomic", "write_json", "write_synced"]


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


def check_new_folder(path: str | Path, overwrite: bool, what: str) -> None:
    """Refuse (:class:`~retrievo.errors.InvalidInputError`) to write a folder over an existing file or a
    non-empty folder, unless ``overwrite``."""
    from retrievo.errors import InvalidInputError

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise InvalidInputError(f"{what}: {path} exists and is not empty (choose another folder or overwrite)")


@contextmanager
def staged_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to build in; when the block ends without an error it replaces
    ``path`` (renamed into place, the parent fsynced); otherwise it is removed and ``path`` is untouched."""
    path = Path(path)
    stage = path.parent / f".{path.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        stage.rename(path)
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


_NPY_LOCK = threading.Lock()


def load_npy(path: Any, mmap_mode: str | None = None, allow_pickle: bool = False) -> Any:
    """``numpy.load`` of a ``.npy`` file, one at a time in the process: numpy parses an array's header with
    ``ast.literal_eval``, and CPython 3.11's AST recursion counter is not thread-safe — two threads loading at
    once (a writer's commit beside a reader's refresh or a backup) fail with "SystemError: AST constructor
    recursion depth mismatch". Opening is cheap (a header and a memory map), so the lock costs nothing."""
    with _NPY_LOCK:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=allow_pickle)
