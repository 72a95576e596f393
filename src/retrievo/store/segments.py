"""Immutable on-disk segments.

A segment is a folder of ``.npy`` arrays written once and then only read (memory-mapped):

- ``tf_indptr.npy`` (int64, n+1), ``tf_terms.npy`` (int32, global term ids), ``tf_counts.npy`` (int32):
  each row's term frequencies in CSR layout (document-major, as Lucene's forward index);
- ``doclen.npy`` (int32): analysed length of each row, BM25's ``|d|``;
- ``dense.npy`` (float32, n × dim, L2-normalised), when the collection has a dense model;
- ``sp_indptr.npy`` / ``sp_terms.npy`` (int32, the sparse model's vocabulary ids) / ``sp_weights.npy``
  (float32, >= 0): each row's learned sparse (SPLADE) vector in CSR layout, when the collection has one;
- ``segment.json``: row count, dimension and format version.

Statistics that depend on the whole collection (document frequencies, average length) are never stored
in a segment: they are recomputed from the live rows of all segments, so segments can later be spread
over shards whose statistics are summed. A segment is written to ``<name>.tmp`` and renamed only after
every file is fsynced; a folder that no commit references is garbage and is removed on the next write.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrievo._io import fsync_dir, write_synced

__all__ = ["Segment", "SegmentData", "write_segment", "segment_dirname"]

SEGMENT_FORMAT = 1


def segment_dirname(seg: int) -> str:
    return f"seg_{seg:08d}"


@dataclass
class SegmentData:
    """The arrays of one segment (in memory before writing, memory-mapped after)."""

    tf_indptr: np.ndarray
    tf_terms: np.ndarray
    tf_counts: np.ndarray
    doclen: np.ndarray
    dense: np.ndarray | None = None
    sp_indptr: np.ndarray | None = None
    sp_terms: np.ndarray | None = None
    sp_weights: np.ndarray | None = None
    sparse_vocab: int | None = None

    @property
    def n_rows(self) -> int:
        return int(len(self.doclen))

    @property
    def has_sparse(self) -> bool:
        return self.sp_indptr is not None

    def sparse_csr(self):
        """The sparse vectors as a ``scipy.sparse.csr_matrix`` (rows × sparse vocabulary), or ``None``."""
        if self.sp_indptr is None:
            return None
        import scipy.sparse as sp

        return sp.csr_matrix((self.sp_weights, self.sp_terms, self.sp_indptr), shape=(self.n_rows, self.sparse_vocab))

    def take(self, rows: np.ndarray) -> SegmentData:
        """A new segment made of ``rows`` (in that order); used by merges."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.tf_indptr[rows]
        ends = self.tf_indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        if len(rows):
            pos = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        else:
            pos = np.zeros(0, dtype=np.int64)
        out = SegmentData(
            tf_indptr=indptr,
            tf_terms=np.asarray(self.tf_terms[pos], dtype=np.int32),
            tf_counts=np.asarray(self.tf_counts[pos], dtype=np.int32),
            doclen=np.asarray(self.doclen[rows], dtype=np.int32),
            dense=None if self.dense is None else np.asarray(self.dense[rows], dtype=np.float32),
        )
        if self.has_sparse:
            out.set_sparse(self.sparse_csr()[rows])
        return out

    def set_sparse(self, csr) -> None:
        """Store a ``scipy.sparse`` matrix (one row per document) as this segment's sparse vectors."""
        csr = csr.tocsr()
        csr.sort_indices()
        self.sp_indptr = np.asarray(csr.indptr, dtype=np.int64)
        self.sp_terms = np.asarray(csr.indices, dtype=np.int32)
        self.sp_weights = np.asarray(csr.data, dtype=np.float32)
        self.sparse_vocab = int(csr.shape[1])

    @staticmethod
    def concat(parts: list[SegmentData], with_dense: bool = True) -> SegmentData:
        """One segment's arrays made of ``parts`` in order (``with_dense=False`` skips copying vectors)."""
        indptrs = [np.zeros(1, dtype=np.int64)]
        offset = 0
        for p in parts:
            indptrs.append(np.asarray(p.tf_indptr[1:], dtype=np.int64) + offset)
            offset += int(p.tf_indptr[-1])
        dense = None
        if with_dense and parts and all(p.dense is not None for p in parts):
            dense = np.concatenate([np.asarray(p.dense) for p in parts]).astype(np.float32)
        out = SegmentData(
            tf_indptr=np.concatenate(indptrs),
            tf_terms=np.concatenate([np.asarray(p.tf_terms) for p in parts] or [np.zeros(0, np.int32)]).astype(np.int32),
            tf_counts=np.concatenate([np.asarray(p.tf_counts) for p in parts] or [np.zeros(0, np.int32)]).astype(np.int32),
            doclen=np.concatenate([np.asarray(p.doclen) for p in parts] or [np.zeros(0, np.int32)]).astype(np.int32),
            dense=dense,
        )
        if parts and all(p.has_sparse for p in parts):
            import scipy.sparse as sp

            out.set_sparse(sp.vstack([p.sparse_csr() for p in parts], format="csr"))
        return out


_ARRAYS = ("tf_indptr", "tf_terms", "tf_counts", "doclen", "dense", "sp_indptr", "sp_terms", "sp_weights")


def write_segment(root: Path, seg: int, data: SegmentData) -> Path:
    """Write ``data`` as segment ``seg`` under ``root`` durably (tmp folder, fsync, rename)."""
    final = root / segment_dirname(seg)
    tmp = root / (segment_dirname(seg) + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    if final.exists():  # left by a crash before its commit: it is garbage, replace it
        shutil.rmtree(final)
    tmp.mkdir(parents=True)
    for name in _ARRAYS:
        arr = getattr(data, name)
        if arr is None:
            continue
        write_synced(tmp / f"{name}.npy", lambda fh, a=arr: np.save(fh, np.ascontiguousarray(a), allow_pickle=False))
    meta = {
        "format": SEGMENT_FORMAT,
        "n_rows": data.n_rows,
        "dim": None if data.dense is None else int(data.dense.shape[1]),
        "sparse_vocab": data.sparse_vocab if data.has_sparse else None,
    }
    write_synced(tmp / "segment.json", lambda fh: fh.write(json.dumps(meta).encode()))
    fsync_dir(tmp)
    os.rename(tmp, final)
    fsync_dir(root)
    return final


class Segment:
    """A committed segment opened read-only; arrays are memory-mapped."""

    def __init__(self, root: Path, seg: int, mmap: bool = True) -> None:
        self.seg = seg
        self.path = root / segment_dirname(seg)
        with open(self.path / "segment.json") as fh:
            self.meta = json.load(fh)
        mode = "r" if mmap else None
        arrays = {}
        for name in _ARRAYS:
            p = self.path / f"{name}.npy"
            arrays[name] = np.load(p, mmap_mode=mode, allow_pickle=False) if p.exists() else None
        self.data = SegmentData(**arrays, sparse_vocab=self.meta.get("sparse_vocab"))

    @property
    def n_rows(self) -> int:
        return int(self.meta["n_rows"])
