"""Partial metadata updates: change a document's metadata without resending (or re-encoding) its text.

``{doc_id: {key: value}}`` is merged into each document's metadata as a JSON merge patch (RFC 7396) merges an
object's top level: a key is set, or removed when its value is ``None``. The document is then buffered as an
upsert of its current version (a buffered one first, else the committed one) with the new metadata and the
dense vector it already has (the buffered vector a caller supplied, else the stored one), so no dense model
runs; learned sparse and token vectors come from their content caches, since the text is the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError, NotFoundError
from retrievo.types import Document

__all__ = ["merge_metadata", "update_metadata"]


def merge_metadata(metadata: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` with ``patch``'s keys set, those whose value is ``None`` removed (a JSON merge patch of
    the top level)."""
    out = dict(metadata)
    for key, value in patch.items():
        if value is None:
            out.pop(str(key), None)
        else:
            out[str(key)] = value
    return out


def update_metadata(coll: Any, updates: Mapping[str, Mapping[str, Any]]) -> int:
    """Merge ``updates`` into the documents' metadata in ``coll`` (buffered; see the module docstring).

    Raises :class:`NotFoundError` for an id the collection does not have, and changes nothing then."""
    if not isinstance(updates, Mapping):
        raise InvalidInputError("update_metadata: expected {document id: {metadata key: value}}")
    for doc_id, patch in updates.items():
        if not isinstance(patch, Mapping):
            raise InvalidInputError(f"update_metadata[{doc_id!r}]: expected an object of metadata keys, "
                                    f"got {type(patch).__name__}")
    ids = [str(i) for i in updates]
    snap = coll.snapshot()
    pending = {i: coll._pending[i] for i in ids if i in coll._pending}
    committed = dict(zip(ids, coll.get_many(ids), strict=True)) if len(pending) < len(ids) else {}
    missing = [i for i in ids if i not in pending and committed.get(i) is None]
    if missing:
        raise NotFoundError(f"update_metadata: no document with id {missing[0]!r}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    with_vec: list[tuple[Document, np.ndarray]] = []
    without: list[Document] = []
    flat = snap.signals.get("dense") if coll.config.dense is not None else None
    for i in ids:
        old = pending.get(i) or committed[i]
        meta = merge_metadata(old.metadata, updates[i])
        doc = Document.from_any({"id": old.id, "title": old.title, "text": old.text, "metadata": meta},
                                where=f"update_metadata[{i!r}]")
        vec = coll._pending_vectors.get(i) if i in pending else None
        if vec is None and i not in pending and flat is not None and snap.row_of(i) is not None:
            vec = np.asarray(flat.gather(np.array([snap.row_of(i)])))[0]
        if vec is None:
            without.append(doc)
        else:
            with_vec.append((doc, vec))
    n = 0
    if with_vec:
        n += coll.upsert([d for d, _ in with_vec], vectors=np.stack([v for _, v in with_vec]))
    if without:
        n += coll.upsert(without)
    return n
