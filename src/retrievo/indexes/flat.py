"""Exact (flat) inner-product search over L2-normalised vectors.

Vectors stay in their segments' memory-mapped ``dense.npy`` files. A search multiplies blocks of queries
with blocks of rows (BLAS sgemm through numpy, both cores) and feeds each score block to per-query top-k
heaps in a compiled kernel that skips dead or filtered rows and spends one well-predicted comparison on
most scores — the structure of faiss ``IndexFlatIP``. Doing it here keeps tombstones and filter masks in
the same pass without copying the vectors into another library; the heap updates of one block run
while the matrix product of the next one is computed (the kernel and BLAS both release the GIL).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from retrievo.indexes._topk import drain_heaps, update_heaps

__all__ = ["FlatIndex"]

_ROW_BLOCK = 4096
_QUERY_BLOCK = 1024
_SUBSET_CHUNK = 8192  # allowed rows gathered and scored at a time
SUBSET_BELOW = 1 / 3  # filters allowing at most this fraction of rows score only those rows
_NO_ROWS = np.zeros(0, dtype=np.int64)  # update_heaps: a contiguous block of rows
_NO_MASK = np.zeros(1, dtype=np.bool_)


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="retrievo-flat")


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


_one_thread = {"depth": 0, "limiter": None}
_one_thread_lock = threading.Lock()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread meanwhile (~10 µs to enter). A few queries' products are memory-bound matrix-vector
    work: spread over BLAS threads right after the query encoder ran, they fight the encoder's still-spinning
    OpenMP threads for the cores (20 ms instead of 8 ms for one SciFact dense search on 2 cores). BLAS's thread
    count is process-wide, so nested and concurrent users share one limit: the last to leave restores it."""
    with _one_thread_lock:
        if _one_thread["depth"] == 0:
            _one_thread["limiter"] = _blas().limit(limits=1, user_api="blas")
        _one_thread["depth"] += 1
    try:
        yield
    finally:
        with _one_thread_lock:
            _one_thread["depth"] -= 1
            if _one_thread["depth"] == 0:
                _one_thread["limiter"].restore_original_limits()


class FlatIndex:
    """Exact search over one or more row blocks that together number rows ``0..n-1``.

    Args:
        blocks: ``(offset, matrix)`` pairs; ``matrix`` is ``(rows, dim)`` float32 (may be memory-mapped).
        live: boolean mask over all rows; dead rows are never returned.
    """

    def __init__(self, blocks: list[tuple[int, np.ndarray]], live: np.ndarray) -> None:
        self.blocks = blocks
        self.live = np.asarray(live, dtype=bool)
        self.all_live = bool(self.live.all())
        self.dim = int(blocks[0][1].shape[1]) if blocks else 0

    @property
    def nbytes(self) -> int:
        """Bytes of the vector data this index scans (memory-mapped from disk for the flat index)."""
        return sum(int(m.nbytes) for _, m in self.blocks)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of global ``rows`` (read from the memory maps in increasing order)."""
        rows = np.asarray(rows, dtype=np.int64)
        offsets = np.array([o for o, _ in self.blocks], dtype=np.int64)
        out = np.empty((len(rows), self.blocks[0][1].shape[1] if self.blocks else 0), dtype=self.blocks[0][1].dtype
                       if self.blocks else np.float32)
        which = np.searchsorted(offsets, rows, side="right") - 1
        for b in np.unique(which):
            sel = np.flatnonzero(which == b)
            offset, mat = self.blocks[b]
            local = rows[sel] - offset
            order = np.argsort(local, kind="stable")
            out[sel[order]] = np.asarray(mat[local[order]])
        return out

    def _take(self, mat, local: np.ndarray):
        """Rows ``local`` (increasing) of one block, in the form :meth:`_block_scores` scores."""
        return np.asarray(mat[local])

    def _search_subset(self, q: np.ndarray, k: int, rows: np.ndarray):
        """Top-k over a subset of rows (increasing): read their stored rows (vectors or codes) a chunk at a
        time, score each chunk with one product and feed it to the heaps — work and memory grow with the
        subset, not the collection."""
        nq = q.shape[0]
        h_scores = np.empty((nq, k), dtype=np.float32)
        h_idx = np.empty((nq, k), dtype=np.int64)
        sizes = np.zeros(nq, dtype=np.int64)
        bounds = np.searchsorted(rows, [o for o, _ in self.blocks] + [np.iinfo(np.int64).max])
        for (offset, mat), b0, b1 in zip(self.blocks, bounds[:-1], bounds[1:], strict=True):
            for c0 in range(b0, b1, _SUBSET_CHUNK):
                chunk = rows[c0 : min(b1, c0 + _SUBSET_CHUNK)]
                taken = self._take(mat, chunk - offset)
                for q0 in range(0, nq, _QUERY_BLOCK):
                    qb = q[q0 : q0 + _QUERY_BLOCK]
                    scores = self._block_scores(qb, taken, 0, len(chunk))
                    update_heaps(scores, 0, chunk, _NO_MASK, False, h_scores, h_idx, sizes, q0, q0 + len(qb))
        out_idx = np.full((nq, k), -1, dtype=np.int64)
        out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
        drain_heaps(h_scores, h_idx, sizes, out_scores, out_idx)
        return out_idx, out_scores, sizes.copy()

    def _prepare(self, queries: np.ndarray) -> np.ndarray:
        """Queries in the form :meth:`_block_scores` takes (subclasses quantise them)."""
        return queries

    def _block_scores(self, qb: np.ndarray, mat: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Scores of a query block against rows ``start:stop`` of one block, ``(len(qb), stop - start)``."""
        return qb @ np.asarray(mat[start:stop]).T

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k rows by inner product for each query row.

        Returns:
            ``(rows, scores, counts)`` with padding ``-1`` / ``-inf`` where fewer than k rows qualify.
        """
        q = self._prepare(np.ascontiguousarray(queries, dtype=np.float32))
        nq = q.shape[0]
        k = max(int(k), 1)
        if allowed is None:
            mask = None if self.all_live else self.live
        else:
            mask = self.live & np.asarray(allowed, dtype=bool)
        if mask is not None:
            allowed_rows = np.flatnonzero(mask)
            if len(allowed_rows) <= SUBSET_BELOW * len(mask):  # selective: score only the allowed rows
                return self._search_subset(q, k, allowed_rows)
        h_scores = np.empty((nq, k), dtype=np.float32)
        h_idx = np.empty((nq, k), dtype=np.int64)
        sizes = np.zeros(nq, dtype=np.int64)
        use_mask = mask is not None
        dummy = np.zeros(1, dtype=np.bool_)
        # the row blocks, in increasing row order (update_heaps relies on it)
        tasks = []
        for offset, mat in self.blocks:
            for start in range(0, mat.shape[0], _ROW_BLOCK):
                stop = min(mat.shape[0], start + _ROW_BLOCK)
                m = dummy if mask is None else mask[offset + start : offset + stop]
                if not use_mask or m.any():
                    tasks.append((mat, start, stop, offset, m))
        # software pipeline: the next block's matrix product (BLAS, GIL released) runs on a helper
        # thread while this thread feeds the current block to the heaps
        pool = _pool(1)
        for q0 in range(0, nq, _QUERY_BLOCK):
            qb = q[q0 : q0 + _QUERY_BLOCK]
            hs, hi, sz = h_scores[q0 : q0 + len(qb)], h_idx[q0 : q0 + len(qb)], sizes[q0 : q0 + len(qb)]
            pipelined = len(tasks) > 1 and len(qb) >= 8  # a thread hand-off costs more than a tiny product
            pending = pool.submit(self._block_scores, qb, *tasks[0][:3]) if pipelined else None
            with nullcontext() if pipelined else one_blas_thread():
                self._scan(qb, tasks, pipelined, pending, pool, use_mask, hs, hi, sz)
        out_idx = np.full((nq, k), -1, dtype=np.int64)
        out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
        drain_heaps(h_scores, h_idx, sizes, out_scores, out_idx)
        return out_idx, out_scores, sizes.copy()

    def _scan(self, qb, tasks, pipelined, pending, pool, use_mask, hs, hi, sz) -> None:
        """One query block over every row block, into its heaps."""
        for t in range(len(tasks)):
            if pipelined:
                scores = pending.result()
                if t + 1 < len(tasks):
                    pending = pool.submit(self._block_scores, qb, *tasks[t + 1][:3])
            else:
                scores = self._block_scores(qb, *tasks[t][:3])
            _, start, _, offset, m = tasks[t]
            update_heaps(scores, offset + start, _NO_ROWS, m, use_mask, hs, hi, sz, 0, len(qb))
