"""Top-k selection shared by the indexes: heap kernels (numba) and the merge of per-segment lists (numpy)."""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["accumulator_topk", "drain_heaps", "heap_drain_sorted", "heap_push", "select_topk", "update_heaps"]


@nb.njit(cache=True, inline="always")
def _worse(s1, i1, s2, i2):  # pragma: no cover - compiled
    """Whether entry (s1, i1) ranks below (s2, i2): lower score, or equal score and higher index."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@nb.njit(cache=True, inline="always")
def _sift_down(h_scores, h_idx, size, score, idx):  # pragma: no cover - compiled
    """Place (score, idx) at the root of a min-heap of ``size`` entries and sift it down."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _worse(h_scores[right], h_idx[right], h_scores[child], h_idx[child]):
            child = right
        if not _worse(h_scores[child], h_idx[child], score, idx):
            break
        h_scores[pos] = h_scores[child]
        h_idx[pos] = h_idx[child]
        pos = child
    h_scores[pos] = score
    h_idx[pos] = idx


@nb.njit(cache=True, inline="always")
def heap_push(h_scores, h_idx, size, k, score, idx):  # pragma: no cover - compiled
    """Push into a min-heap of capacity ``k`` kept in two arrays; returns the new size.

    The heap root is the current k-th best; ties prefer the lower index (kept = better).
    """
    if size == k:
        if not _worse(h_scores[0], h_idx[0], score, idx):
            return size  # not better than the current k-th best
        _sift_down(h_scores, h_idx, size, score, idx)
        return size
    pos = size
    while pos > 0:  # sift up
        parent = (pos - 1) // 2
        if not _worse(score, idx, h_scores[parent], h_idx[parent]):
            break
        h_scores[pos] = h_scores[parent]
        h_idx[pos] = h_idx[parent]
        pos = parent
    h_scores[pos] = score
    h_idx[pos] = idx
    return size + 1


@nb.njit(cache=True, inline="always")
def heap_drain_sorted(h_scores, h_idx, size, out_scores, out_idx):  # pragma: no cover - compiled
    """Empty a heap built by :func:`heap_push` into ``out_*[:size]``, best first (ties: lower index)."""
    for r in range(size - 1, -1, -1):
        out_scores[r] = h_scores[0]
        out_idx[r] = h_idx[0]
        _sift_down(h_scores, h_idx, r, h_scores[r], h_idx[r])


@nb.njit(nogil=True, cache=True)
def update_heaps(scores, base, rows, mask, use_mask, h_scores, h_idx, sizes, q0, q1):  # pragma: no cover - compiled
    """Offer the score block ``scores[q - q0, j]`` to the running top-k heaps of queries q0..q1.

    Column ``j`` is row ``rows[j]`` when ``rows`` is not empty (scattered rows), else row ``base + j``
    (a contiguous block, where ``mask[j]`` filters when ``use_mask``). Rows must increase within and across
    calls, so that on equal scores the earlier (lower) row is kept. One well-predicted comparison per
    score in the common case.
    """
    k = h_scores.shape[1]
    n = scores.shape[1]
    scattered = len(rows) > 0
    for qi in range(q0, q1):
        hs = h_scores[qi]
        hi = h_idx[qi]
        size = sizes[qi]
        thresh = hs[0] if size == k else -np.inf
        for j in range(n):
            s = scores[qi - q0, j]
            if s <= thresh:
                continue
            if use_mask and not mask[j]:
                continue
            size = heap_push(hs, hi, size, k, s, rows[j] if scattered else base + j)
            if size == k:
                thresh = hs[0]
        sizes[qi] = size


@nb.njit(nogil=True, cache=True)
def drain_heaps(h_scores, h_idx, sizes, out_scores, out_idx):  # pragma: no cover - compiled
    for qi in range(h_scores.shape[0]):
        heap_drain_sorted(h_scores[qi], h_idx[qi], sizes[qi], out_scores[qi], out_idx[qi])


@nb.njit(nogil=True, cache=True)
def accumulator_topk(acc, touched, q_lo, q_hi, q_terms, p_indptr, p_docs, allowed, use_allowed,
                     h_scores, h_idx, k):  # pragma: no cover - compiled
    """Top-k of a term-at-a-time accumulator (scores >= 0) into a fresh heap; returns its size.

    ``touched`` postings (of query terms ``q_terms[q_lo:q_hi]``) were added up. When they cover a good part
    of the rows, one sequential scan is cheapest; otherwise the postings are revisited, each document
    once. Either way ``acc`` is left all zeros for the next query.
    """
    size = 0
    n_rows = len(acc)
    if touched * 4 >= n_rows:
        thresh = np.float32(0.0)
        for d in range(n_rows):
            s = acc[d]
            acc[d] = 0.0  # cleared unconditionally: a sequential store costs less than a mispredicted branch
            if s <= thresh:  # one well-predicted branch per row: zero or below the current k-th best
                continue
            if use_allowed and not allowed[d]:
                continue
            size = heap_push(h_scores, h_idx, size, k, s, d)
            if size == k:
                thresh = h_scores[0]
    else:
        for j in range(q_lo, q_hi):
            t = q_terms[j]
            for p in range(p_indptr[t], p_indptr[t + 1]):
                d = p_docs[p]
                s = acc[d]
                if s != 0.0:
                    acc[d] = 0.0  # visit each document once
                    if use_allowed and not allowed[d]:
                        continue
                    size = heap_push(h_scores, h_idx, size, k, s, d)
    return size


def select_topk(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best ``k`` of each query's candidates, e.g. the top-k lists of several segments side by side.

    Args:
        rows: ``(n_queries, m)`` global rows, ``-1`` where a slot holds no candidate.
        scores: ``(n_queries, m)`` their scores (``-inf`` for empty slots).
        k: results wanted per query.

    Returns:
        ``(rows, scores, counts)`` shaped ``(n, k), (n, k), (n,)``: best score first, equal scores by the lower
        row, empty slots last; padded with ``-1`` / ``-inf`` when fewer than ``k`` candidates are real.
    """
    nq = rows.shape[0]
    keys = np.where(rows >= 0, rows, np.iinfo(np.int64).max)
    order = np.lexsort((keys, -scores), axis=1)[:, :k]
    width = order.shape[1]
    out_rows = np.full((nq, k), -1, dtype=np.int64)
    out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
    out_rows[:, :width] = np.take_along_axis(rows, order, axis=1)
    out_scores[:, :width] = np.take_along_axis(scores, order, axis=1)
    counts = (out_rows >= 0).sum(axis=1).astype(np.int64)
    return out_rows, out_scores, counts
