"""Backups: a consistent copy of a collection's last commit, itself a collection that opens anywhere.

SQLite's online backup API copies the database — documents, vocabulary and the segment list, which is the
commit point — as one consistent state, even while a writer in another process commits. The segment folders
that state names are immutable once published, so they are hard-linked where the destination is on the same
file system (no bytes copied, and a later merge that removes the source folder leaves the link intact) and
copied elsewhere. A writer that merges and removes a named folder between the two steps makes the copy start
again (the copy is opened before it is renamed into place: a folder listed half-removed is caught there
too). The learned artefacts beside the data (calibrators, the query adapter, the query map, the quarantine)
come along; the server's write-ahead log (acknowledged, not yet committed writes) and the write lock do not:
a backup is the last commit. It is written into a temporary folder beside the destination and renamed into
place, so a backup is whole or absent; restoring is opening (or moving) that folder.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from retrievo.errors import CollectionExistsError, RetrievoError

__all__ = ["backup"]

_SKIP = {"collection.sqlite", "collection.sqlite-wal", "collection.sqlite-shm", "segments", "write.lock",
         "wal.sqlite", "wal.sqlite-wal", "wal.sqlite-shm"}
_TRIES = 3


def _link_or_copy(src: Path, dst: Path, link: bool = True) -> int:
    """``src`` folder into ``dst``, file by file: hard links where possible (``link``; immutable files only),
    else copies. Returns bytes."""
    total = 0

    def gone(exc: OSError) -> None:  # os.walk would skip a folder removed meanwhile: the copy must start again
        raise FileNotFoundError(f"{src} changed under the copy") from exc

    for root, _dirs, files in os.walk(src, onerror=gone):
        out = dst / Path(root).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            s, d = Path(root) / name, out / name
            try:
                if not link:
                    raise OSError
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)
            total += d.stat().st_size
    return total


def backup(path: str | Path, dest: str | Path) -> dict[str, Any]:
    """Copy the last commit of the collection in ``path`` to the new folder ``dest``.

    Returns:
        ``{"path", "generation", "documents", "segments", "bytes"}`` of the backup (checked by opening it).
    """
    from retrievo.store.collection import Collection
    from retrievo.store.segments import segment_dirname

    src, dest = Path(path), Path(dest)
    if dest.exists():
        raise CollectionExistsError(f"backup: {dest} exists; give a new folder")
    if not (src / "collection.sqlite").exists():
        raise RetrievoError(f"backup: {src} is not a collection (no collection.sqlite)")
    for attempt in range(_TRIES):
        tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            source = sqlite3.connect(f"file:{src / 'collection.sqlite'}?mode=ro", uri=True)
            target = sqlite3.connect(tmp / "collection.sqlite")
            try:
                source.backup(target)
                segs = [s for (s,) in target.execute("SELECT seg FROM segments ORDER BY seg")]
            finally:
                source.close()
                target.close()
            size = (tmp / "collection.sqlite").stat().st_size
            (tmp / "segments").mkdir()
            for seg in segs:
                size += _link_or_copy(src / "segments" / segment_dirname(seg), tmp / "segments" / segment_dirname(seg))
            for child in src.iterdir():
                if child.name in _SKIP or child.name.endswith(".tmp") or child.name.startswith("."):
                    continue
                if child.is_dir():  # artefacts may be rewritten in place: copied, never linked
                    size += _link_or_copy(child, tmp / child.name, link=False)
                else:
                    shutil.copy2(child, tmp / child.name)
                    size += child.stat().st_size
            # a segment folder a merge was removing may have been listed without some of its files: the copy is
            # whole only if it opens (the commit's segments all readable); else start again
            check = Collection.open(tmp, readonly=True)
            try:
                info = {"generation": check.generation, "documents": len(check)}
            finally:
                check.close()
        except FileNotFoundError:
            shutil.rmtree(tmp, ignore_errors=True)
            if attempt == _TRIES - 1:
                raise RetrievoError(f"backup: {src} kept changing under the copy ({_TRIES} attempts)") from None
            continue
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.replace(tmp, dest)
        return {"path": str(dest), **info, "segments": len(segs), "bytes": size}
    raise AssertionError("unreachable")  # pragma: no cover
