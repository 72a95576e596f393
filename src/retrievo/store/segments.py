"""Immutable on-disk segments.

A segment is a folder of ``.npy`` arrays written once and then only read (memory-mapped), plus
``segment.json`` (format version, row count, and metadata the signals add). Each signal declares its
arrays as :class:`Layout` groups, so the store writes, slices (merges drop deleted rows) and concatenates
any signal's data without knowing what it means. The built-in signals keep:

- BM25 (:mod:`retrievo.signals.bm25`): ``tf_indptr`` (int64, n+1), ``tf_terms`` (int32, term ids of the
  collection's vocabulary), ``tf_counts`` (int32): each row's term frequencies in CSR layout (document-major,
  as Lucene's forward index); ``doclen`` (int32): analysed length of each row, BM25's ``|d|``;
- dense (:mod:`retrievo.signals.dense`): ``dense`` (float32, n × dim, L2-normalised); metadata ``dim``;
- SPLADE (:mod:`retrievo.signals.splade`): ``sp_indptr`` / ``sp_terms`` (int32, the sparse model's
  vocabulary ids) / ``sp_weights`` (float32, >= 0) in CSR layout; metadata ``sparse_vocab``.

The store itself keeps the documents (``stored_ptr`` / ``stored_bytes``: one JSON object per row, the
:data:`STORED` layout) and their metadata as filter columns (``meta/``, see :mod:`retrievo.store.columns`).

Derived structures (ANN graphs, codes, sparse posting lists) are written beside the arrays by their
signal. Statistics that depend on the whole collection (document frequencies, average length) are never
stored in a segment: they are recomputed from the live rows of all segments, so segments can later be
spread over shards whose statistics are summed. A segment is written to ``<name>.tmp`` and renamed only
after every file is fsynced; a folder that no commit references is garbage and is removed on the next write.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import fsync_dir, load_npy, write_synced
from retrievo.errors import InvalidInputError
from retrievo.store.columns import SegmentColumns, write_columns

__all__ = ["STORED", "Layout", "Segment", "SegmentData", "segment_dirname", "stored_arrays", "write_segment"]

SEGMENT_FORMAT = 1
LAYOUT_KINDS = ("rows", "csr")


@dataclass(frozen=True)
class Layout:
    """How a group of a segment's arrays is indexed by row.

    Args:
        kind: ``"rows"`` — the first axis of each array is the row (vectors, lengths); ``"csr"`` — the first
            array is an int64 ``indptr`` of ``n + 1`` offsets and the others hold the entries of row ``i`` at
            ``indptr[i]:indptr[i + 1]`` (term ids and counts, sparse vectors).
        arrays: the arrays' names (file names without ``.npy``), unique within a collection.
    """

    kind: str
    arrays: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in LAYOUT_KINDS or not self.arrays or (self.kind == "csr" and len(self.arrays) < 2):
            raise InvalidInputError(f"Layout: kind must be one of {LAYOUT_KINDS} with its arrays, got {self!r}")


#: the documents themselves (title, text, metadata as one JSON object per row), kept with the segment so that
#: a search returns the stored fields of the generation it searched
STORED = Layout("csr", ("stored_ptr", "stored_bytes"))


def stored_arrays(docs: Sequence[Any]) -> dict[str, np.ndarray]:
    """The :data:`STORED` arrays of documents (anything with ``to_dict()``), in row order."""
    blobs = [json.dumps(d.to_dict(), ensure_ascii=False, separators=(",", ":")).encode() for d in docs]
    ptr = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=ptr[1:])
    return {"stored_ptr": ptr, "stored_bytes": np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()}


class SegmentData:
    """The arrays of one segment (in memory before writing, memory-mapped after) and its metadata.

    An array is read as ``data.get(name)`` or as an attribute (``data.dense``).
    """

    def __init__(self, n_rows: int, arrays: Mapping[str, np.ndarray] | None = None,
                 meta: Mapping[str, Any] | None = None) -> None:
        self.n_rows = int(n_rows)
        self.arrays: dict[str, np.ndarray] = dict(arrays or {})
        self.meta: dict[str, Any] = dict(meta or {})

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"this segment has no array {name!r}")

    def get(self, name: str) -> np.ndarray | None:
        return self.arrays.get(name)

    def stored(self, row: int) -> dict[str, Any] | None:
        """The stored document of a row (``None`` for a segment written before documents were kept in it)."""
        ptr, blob = self.arrays.get("stored_ptr"), self.arrays.get("stored_bytes")
        if ptr is None or blob is None:
            return None
        return json.loads(bytes(blob[int(ptr[row]):int(ptr[row + 1])]))

    def has(self, layout: Layout) -> bool:
        return all(a in self.arrays for a in layout.arrays)

    def put(self, layouts: Iterable[Layout], arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Add a signal's arrays (checked against its layouts: every array, one entry per row) and metadata."""
        for layout in layouts:
            for name in layout.arrays:
                if name not in arrays:
                    raise InvalidInputError(f"segment data: array {name!r} of layout {layout} is missing")
            first = np.asarray(arrays[layout.arrays[0]])
            want = self.n_rows + 1 if layout.kind == "csr" else self.n_rows
            if len(first) != want:
                raise InvalidInputError(f"segment data: {layout.arrays[0]!r} has {len(first)} entries, expected {want}")
            if layout.kind == "csr":
                n = int(first[-1]) if len(first) else 0
                short = [a for a in layout.arrays[1:] if len(arrays[a]) != n]
                if short:
                    raise InvalidInputError(f"segment data: {short} must hold the {n} entries {layout.arrays[0]!r} counts")
            else:
                short = [a for a in layout.arrays[1:] if len(arrays[a]) != self.n_rows]
                if short:
                    raise InvalidInputError(f"segment data: {short} must hold one entry per row ({self.n_rows})")
            for name in layout.arrays:
                self.arrays[name] = arrays[name]
        self.meta.update(meta)

    def take(self, rows: np.ndarray, layouts: Sequence[Layout]) -> SegmentData:
        """A new segment made of ``rows`` (in that order) of the arrays of ``layouts`` (used by merges)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = SegmentData(len(rows), meta=self.meta)
        for layout in layouts:
            if not self.has(layout):
                continue
            if layout.kind == "rows":
                for name in layout.arrays:
                    out.arrays[name] = np.asarray(self.arrays[name][rows])
                continue
            indptr = self.arrays[layout.arrays[0]]
            starts, ends = indptr[rows], indptr[rows + 1]
            lengths = ends - starts
            new_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(lengths, out=new_ptr[1:])
            pos = (np.repeat(starts - new_ptr[:-1], lengths) + np.arange(new_ptr[-1]) if len(rows)
                   else np.zeros(0, dtype=np.int64))
            out.arrays[layout.arrays[0]] = new_ptr
            for name in layout.arrays[1:]:
                out.arrays[name] = np.asarray(self.arrays[name][pos])
        return out

    @staticmethod
    def concat(parts: Sequence[SegmentData], layouts: Sequence[Layout]) -> SegmentData:
        """One segment's arrays made of ``parts`` in order, for each layout that every part has."""
        out = SegmentData(sum(p.n_rows for p in parts), meta=parts[0].meta if parts else None)
        for layout in layouts:
            if not parts or not all(p.has(layout) for p in parts):
                continue
            if layout.kind == "rows":
                for name in layout.arrays:
                    out.arrays[name] = np.concatenate([np.asarray(p.arrays[name]) for p in parts])
                continue
            ptrs = [np.zeros(1, dtype=np.int64)]
            offset = 0
            for p in parts:
                ptr = p.arrays[layout.arrays[0]]
                ptrs.append(np.asarray(ptr[1:], dtype=np.int64) + offset)
                offset += int(ptr[-1])
            out.arrays[layout.arrays[0]] = np.concatenate(ptrs)
            for name in layout.arrays[1:]:
                out.arrays[name] = np.concatenate([np.asarray(p.arrays[name]) for p in parts])
        return out


def segment_dirname(seg: int) -> str:
    return f"seg_{seg:08d}"


def write_segment(root: Path, seg: int, data: SegmentData, metadata: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write ``data`` as segment ``seg`` under ``root`` durably (tmp folder, fsync, rename), with the metadata
    columns of its rows' ``metadata`` (see :mod:`retrievo.store.columns`)."""
    final = root / segment_dirname(seg)
    tmp = root / (segment_dirname(seg) + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    if final.exists():  # left by a crash before its commit: it is garbage, replace it
        shutil.rmtree(final)
    tmp.mkdir(parents=True)
    for name, arr in data.arrays.items():
        write_synced(tmp / f"{name}.npy", lambda fh, a=arr: np.save(fh, np.ascontiguousarray(a), allow_pickle=False))
    if metadata is not None:
        write_columns(tmp, metadata)
    # "arrays" and "columns" let a reader tell a file it must find from one the segment never had
    meta = {**data.meta, "format": SEGMENT_FORMAT, "n_rows": data.n_rows, "arrays": sorted(data.arrays),
            "columns": metadata is not None}
    write_synced(tmp / "segment.json", lambda fh: fh.write(json.dumps(meta).encode()))
    fsync_dir(tmp)
    os.rename(tmp, final)
    fsync_dir(root)
    return final


class Segment:
    """A committed segment opened read-only; the arrays of ``layouts`` that it holds are memory-mapped."""

    def __init__(self, root: Path, seg: int, layouts: Sequence[Layout], mmap: bool = True) -> None:
        self.seg = seg
        self.path = root / segment_dirname(seg)
        with open(self.path / "segment.json") as fh:
            self.meta = json.load(fh)
        mode = "r" if mmap else None
        written = self.meta.get("arrays")  # None: a segment from before the list was kept
        arrays = {}
        for layout in layouts:
            for name in layout.arrays:
                p = self.path / f"{name}.npy"
                if written is not None and name not in written:
                    continue
                if written is None and not p.exists():
                    continue
                # a file the segment has but that is gone: a merge removed the folder since it was listed
                arrays[name] = load_npy(p, mmap_mode=mode, allow_pickle=False)
        meta = {k: v for k, v in self.meta.items() if k not in ("format", "n_rows", "arrays", "columns")}
        self.data = SegmentData(self.n_rows, arrays, meta)
        self.columns = SegmentColumns.open(self.path, self.n_rows)  # None: written before metadata columns
        if self.columns is None and self.meta.get("columns"):
            raise FileNotFoundError(f"{self.path}: its metadata columns are gone (a merge removed the segment)")

    @property
    def n_rows(self) -> int:
        return int(self.meta["n_rows"])
