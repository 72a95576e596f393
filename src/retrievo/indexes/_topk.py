"""Top-k selection helpers shared by the indexes (numpy and numba)."""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["drain_heaps", "heap_drain_sorted", "heap_push", "topk_rows", "update_heaps"]


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a 2-D score matrix, best first; ties broken by lower column index.

    Entries equal to ``-inf`` are excluded by the caller through the returned scores.
    """
    n = scores.shape[1]
    k_eff = min(k, n)
    if k_eff == 0:
        return np.zeros((scores.shape[0], 0), np.int64), np.zeros((scores.shape[0], 0), np.float32)
    if k_eff < n:
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.tile(np.arange(n), (scores.shape[0], 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx.astype(np.int64), np.take_along_axis(part_scores, order, axis=1)


@nb.njit(cache=True, inline="always")
def heap_push(h_scores, h_idx, size, k, score, idx):  # pragma: no cover - compiled
    """Push into a min-heap of capacity ``k`` kept in two arrays; returns the new size.

    The heap root is the current k-th best; ties prefer the lower index (kept = better).
    """
    if size < k:
        pos = size
        size += 1
    else:
        # reject if not better than the root
        if score < h_scores[0] or (score == h_scores[0] and idx > h_idx[0]):
            return size
        pos = 0
        # sift down from the root with the new element
        while True:
            left = 2 * pos + 1
            if left >= size:
                break
            child = left
            right = left + 1
            if right < size and (
                h_scores[right] < h_scores[left] or (h_scores[right] == h_scores[left] and h_idx[right] > h_idx[left])
            ):
                child = right
            if h_scores[child] < score or (h_scores[child] == score and h_idx[child] > idx):
                h_scores[pos] = h_scores[child]
                h_idx[pos] = h_idx[child]
                pos = child
            else:
                break
        h_scores[pos] = score
        h_idx[pos] = idx
        return size
    # sift up
    while pos > 0:
        parent = (pos - 1) // 2
        if h_scores[parent] > score or (h_scores[parent] == score and h_idx[parent] < idx):
            h_scores[pos] = h_scores[parent]
            h_idx[pos] = h_idx[parent]
            pos = parent
        else:
            break
    h_scores[pos] = score
    h_idx[pos] = idx
    return size


@nb.njit(cache=True, inline="always")
def heap_drain_sorted(h_scores, h_idx, size, out_scores, out_idx):  # pragma: no cover - compiled
    """Empty a heap built by :func:`heap_push` into ``out_*[:size]``, best first (ties: lower index)."""
    for r in range(size - 1, -1, -1):
        out_scores[r] = h_scores[0]
        out_idx[r] = h_idx[0]
        last_s = h_scores[r]
        last_i = h_idx[r]
        pos = 0
        while True:
            left = 2 * pos + 1
            if left >= r:
                break
            child = left
            right = left + 1
            if right < r and (h_scores[right] < h_scores[left]
                              or (h_scores[right] == h_scores[left] and h_idx[right] > h_idx[left])):
                child = right
            if h_scores[child] < last_s or (h_scores[child] == last_s and h_idx[child] > last_i):
                h_scores[pos] = h_scores[child]
                h_idx[pos] = h_idx[child]
                pos = child
            else:
                break
        h_scores[pos] = last_s
        h_idx[pos] = last_i


@nb.njit(nogil=True, cache=True)
def update_heaps(scores, base, mask, use_mask, h_scores, h_idx, sizes, q0, q1):  # pragma: no cover - compiled
    """Offer the score block ``scores[q, j]`` (rows ``base + j``) to the running top-k heaps of queries q0..q1.

    Columns must be offered in increasing row order across calls, so that on equal scores the earlier
    (lower) row is kept. One well-predicted comparison per score in the common case.
    """
    k = h_scores.shape[1]
    n = scores.shape[1]
    for qi in range(q0, q1):
        hs = h_scores[qi]
        hi = h_idx[qi]
        size = sizes[qi]
        thresh = hs[0] if size == k else -np.inf
        for j in range(n):
            s = scores[qi, j]
            if s <= thresh:
                continue
            if use_mask and not mask[j]:
                continue
            size = heap_push(hs, hi, size, k, s, base + j)
            if size == k:
                thresh = hs[0]
        sizes[qi] = size


@nb.njit(nogil=True, cache=True)
def drain_heaps(h_scores, h_idx, sizes, out_scores, out_idx):  # pragma: no cover - compiled
    for qi in range(h_scores.shape[0]):
        heap_drain_sorted(h_scores[qi], h_idx[qi], sizes[qi], out_scores[qi], out_idx[qi])
