"""Exact late interaction: MaxSim (Chamfer similarity) of query token sets against stored document token sets.

``score(q, d) = Σ_i max_j <q_i, d_j>`` over the query's tokens ``i`` and the document's tokens ``j``.

Document tokens stay in their segments' memory-mapped ``mv_tokens.npy`` (float16, rows of a CSR layout:
``mv_indptr`` gives each document's token range). A full search reads the tokens a block of documents at a
time, converts the block to float32 and multiplies it with every query token of the batch at once (one
BLAS sgemm, both cores); a compiled kernel then takes each document's maximum per query token and sums per
query, skipping dead and filtered documents. Rescoring candidates (MUVERA's second step, the MaxSim rerank
stage) gathers only their tokens. No library does this over our segment layout with tombstones and filter
masks (PyLate and fastembed score in-memory tensors of one query against a list of documents).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["MaxSimIndex", "maxsim_scores", "query_batch"]

_TOKEN_BLOCK = 1 << 16  # document tokens converted and multiplied at a time


@nb.njit(cache=True, nogil=True, parallel=True)
def _reduce(sim, q_ptr, d_ptr, keep, out):  # pragma: no cover - compiled
    """``out[q, d] = Σ_{i in q} max_{j in d} sim[i, j]`` for documents ``d`` with ``keep[d]`` (else -inf).

    ``sim`` is ``(query tokens, document tokens)``; ``q_ptr``/``d_ptr`` are the token offsets (CSR) of the
    queries and of the documents within ``sim``'s columns."""
    nq, nd = q_ptr.shape[0] - 1, d_ptr.shape[0] - 1
    for d in nb.prange(nd):
        lo, hi = d_ptr[d], d_ptr[d + 1]
        if not keep[d]:
            for q in range(nq):
                out[q, d] = -np.inf
            continue
        for q in range(nq):
            total = 0.0
            for i in range(q_ptr[q], q_ptr[q + 1]):
                best = -np.inf
                for j in range(lo, hi):
                    if sim[i, j] > best:
                        best = sim[i, j]
                if hi > lo:
                    total += best
            out[q, d] = total


def query_batch(queries: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Query token sets as ``(indptr, float32 tokens)``."""
    ptr = np.zeros(len(queries) + 1, dtype=np.int64)
    np.cumsum([len(q) for q in queries], out=ptr[1:])
    dim = queries[0].shape[1] if queries else 0
    tokens = np.concatenate([np.asarray(q, np.float32).reshape(-1, dim) for q in queries]) if queries else \
        np.zeros((0, 0), np.float32)
    return ptr, np.ascontiguousarray(tokens, dtype=np.float32)


def maxsim_scores(q_ptr: np.ndarray, q_tok: np.ndarray, d_ptr: np.ndarray, d_tok: np.ndarray,
                  keep: np.ndarray | None = None) -> np.ndarray:
    """MaxSim of every query against every document given as CSR token sets: ``(n_queries, n_docs)``."""
    nd = len(d_ptr) - 1
    out = np.empty((len(q_ptr) - 1, nd), dtype=np.float32)
    if nd == 0:
        return out
    sim = q_tok @ np.asarray(d_tok, dtype=np.float32).T
    keep = np.ones(nd, dtype=np.bool_) if keep is None else keep
    _reduce(np.ascontiguousarray(sim), q_ptr, np.asarray(d_ptr, np.int64) - int(d_ptr[0]), keep, out)
    return out


class MaxSimIndex:
    """Exact MaxSim over token blocks that together number rows ``0..n-1``.

    Args:
        blocks: ``(offset, indptr, tokens)`` per segment; ``tokens`` is ``(n_tokens, dim)`` (float16,
            memory-mapped) and ``indptr`` the ``n_rows + 1`` token offsets of its rows.
        live: boolean mask over all rows; dead rows are never returned.
    """

    def __init__(self, blocks: list[tuple[int, np.ndarray, np.ndarray]], live: np.ndarray) -> None:
        self.blocks = blocks
        self.live = np.asarray(live, dtype=bool)
        self.n_rows = len(self.live)
        self.dim = int(blocks[0][2].shape[1]) if blocks else 0
        self._offsets = np.array([o for o, _, _ in blocks], dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return sum(int(t.nbytes) + int(p.nbytes) for _, p, t in self.blocks)

    @property
    def n_tokens(self) -> int:
        return sum(int(p[-1]) for _, p, _ in self.blocks)

    def tokens(self, row: int) -> np.ndarray:
        """The stored token vectors of one row (float32)."""
        b = int(np.searchsorted(self._offsets, row, side="right") - 1)
        offset, ptr, tok = self.blocks[b]
        local = row - offset
        return np.asarray(tok[ptr[local]:ptr[local + 1]], dtype=np.float32)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token sets of global ``rows`` as ``(indptr, float32 tokens)`` in the order given."""
        rows = np.asarray(rows, dtype=np.int64)
        parts = [self.tokens(int(r)) for r in rows]
        return query_batch(parts) if parts else (np.zeros(1, np.int64), np.zeros((0, self.dim), np.float32))

    def score(self, queries: list[np.ndarray], rows: list[np.ndarray]) -> list[np.ndarray]:
        """MaxSim of query ``i`` with each of its candidate ``rows[i]``."""
        out = []
        for q, r in zip(queries, rows, strict=True):
            r = np.asarray(r, dtype=np.int64)
            if len(r) == 0:
                out.append(np.zeros(0, np.float32))
                continue
            d_ptr, d_tok = self.gather(r)
            q_ptr = np.array([0, len(q)], dtype=np.int64)
            out.append(maxsim_scores(q_ptr, np.ascontiguousarray(q, np.float32), d_ptr, d_tok)[0])
        return out

    def all_scores(self, queries: list[np.ndarray], allowed: np.ndarray | None = None) -> np.ndarray:
        """MaxSim of every query with every row (``-inf`` for dead or disallowed rows): ``(n_queries, n_rows)``."""
        q_ptr, q_tok = query_batch(queries)
        keep_all = self.live if allowed is None else (self.live & np.asarray(allowed, dtype=bool))
        out = np.full((len(queries), self.n_rows), -np.inf, dtype=np.float32)
        for offset, ptr, tok in self.blocks:
            n = len(ptr) - 1
            keep = keep_all[offset:offset + n]
            start = 0
            while start < n:
                if not keep[start]:
                    start += 1
                    continue
                # documents [start, end) whose tokens fit one block (at least one document)
                end = int(np.searchsorted(ptr, ptr[start] + _TOKEN_BLOCK, side="right")) - 1
                end = min(max(end, start + 1), n)
                lo, hi = int(ptr[start]), int(ptr[end])
                out[:, offset + start:offset + end] = maxsim_scores(
                    q_ptr, q_tok, ptr[start:end + 1], tok[lo:hi], np.ascontiguousarray(keep[start:end]))
                start = end
        return out

    def search(self, queries: list[np.ndarray], k: int, allowed: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top ``k`` rows of each query by exact MaxSim: ``(rows, scores, counts)`` padded with -1 / -inf."""
        from retrievo.indexes._topk import select_topk

        scores = self.all_scores(queries, allowed)
        nq, n = scores.shape
        rows = np.broadcast_to(np.arange(n, dtype=np.int64), (nq, n))
        if n > 4 * k:  # keep a superset of each query's top k (ties at the boundary included), then sort
            kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
            width = int((scores >= kth).sum(axis=1).max())
            pick = np.argpartition(-scores, min(width, n) - 1, axis=1)[:, :width]
            rows, scores = pick.astype(np.int64), np.take_along_axis(scores, pick, axis=1)
        rows = np.where(np.isfinite(scores), rows, -1)
        return select_topk(rows, scores, k)
