"""Inverted index for learned sparse vectors (SPLADE and the like): exact and Seismic-style approximate top-k.

Documents and queries are non-negative sparse vectors over a fixed vocabulary (a scipy CSR matrix, one row
per document); the score of a document is the inner product ``q · d``.

Exact mode ("term-at-a-time"): the postings of every query term are scanned and ``q_t · w_{t,d}`` is added
into an accumulator, then a bounded heap takes the top k — the very kernel BM25 runs
(:func:`retrievo.indexes.inverted.term_at_a_time`, which takes a weight per query term).

Approximate mode follows Seismic (Bruch, Nardini, Rulli, Venturini, "Efficient Inverted Indexes for
Approximate Retrieval over Learned Sparse Representations", SIGIR 2024):

- static pruning: each posting list keeps only its largest entries. ``pruning="global"`` (Seismic's
  default) keeps the ``n_postings × vocab_size`` largest entries of the whole collection with at most
  ``max_fraction × n_postings`` per list; ``pruning="fixed"`` keeps the top ``n_postings`` (λ) of each list;
- blocking: each pruned list is clustered into ``centroid_fraction × length`` (β) blocks: random documents
  of the list are the centroids, and each document joins the centroid with the largest inner product,
  computed on the document's ``doc_cut`` largest entries (Seismic's ``RandomKmeansInvertedIndexApprox``);
  clusters under ``min_cluster_size`` are dissolved into the others;
- summaries: each block gets the per-term maximum over its documents, pruned to the largest entries that
  hold ``summary_energy`` (α) of its L1 mass and quantised to 8 bits (``code × step``, a step per block).
  A list's summaries are stored transposed — its summary terms ascending (uint16 term, uint8 count, an
  absolute offset every 64 terms) and their entries ``block << 8 | code`` — so scoring all the blocks of a
  list touches only the entries of the query's terms (found by a short scan, then binary search; their
  cold entries are prefetched before they are added up);
- search: every block of the lists of the query's ``query_cut`` largest terms gets its summary score, and
  a block is skipped when that score is below ``heap_factor × (current k-th best)`` — as in Seismic's code,
  a larger ``heap_factor`` prunes more (1.0 trusts the summaries as upper bounds; below 1 is safer).
  As in Seismic the lists are visited one after the other, the first list's blocks best summary first;
  ``global_order=True`` instead visits the blocks of all those lists together, best summary first, so the
  k-th best score rises as fast as it can and the first skipped block ends the query (on the 500k
  benchmark corpus 5–10 % more queries/s at the same settings and accuracy within 0.001–0.004, but on
  SciFact 0.006 lower accuracy at the same settings, so it is not the default). The query's terms are
  found among a list's summary terms by galloping search from a moving lower bound. Each posting carries
  its document's forward row as ``offset << 24 | length`` (as Seismic's packed postings do), so a row is
  prefetched straight from the posting without first loading the bounds of a random document. Documents of a
  visited block are scored against the forward index (the full document vectors, with a dense query) and
  pushed into the heap, each document once per query (uint8 epoch marks). Documents to score pass through
  a short queue whose rows are prefetched, so memory latency overlaps the scoring of the previous ones,
  across block and list boundaries. On CPUs with AVX2/AVX-512 a row is scored 16 entries at a time (a
  vector load of terms and weights, a gather of the query weights; :func:`_gather_dot`), else one entry at
  a time. The forward weights are float16 (as in Seismic: half the memory
  traffic; scores within ~1e-3 relative) once terms + float32 weights would exceed 32 MiB, float32 below
  (``forward_precision="auto"``; "float16"/"float32" force either). Approximate results therefore carry
  scores computed from those weights; the exact mode uses its own float32 postings.

Both modes return ``(rows, scores, counts)`` arrays shaped ``(n, k), (n, k), (n,)`` padded with -1/-inf,
best first, ties broken by the lower row, and honour an ``allowed`` row mask (deleted rows, metadata
filters). All per-posting and per-document work is compiled with numba (``nogil``); a batch of queries is
split over Python threads as in :mod:`retrievo.indexes.inverted` (numba's OpenMP layer is avoided because its
spinning threads stall PyTorch's pool in the same process).

Persistence: :meth:`SparseIndex.save` writes plain ``.npy`` arrays and a ``meta.json`` (no pickle);
:meth:`SparseIndex.load` reopens them memory-mapped, so an index can be kept beside an immutable segment.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numba as nb
import numpy as np
import scipy.sparse as sp
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from retrievo._io import save_npy, write_json
from retrievo.errors import InvalidInputError
from retrievo.indexes._topk import heap_drain_sorted, heap_push, select_topk
from retrievo.indexes.inverted import term_at_a_time

__all__ = ["SeismicParams", "SegmentedSparseIndex", "SparseIndex"]

FORMAT = 1
_MAX_BLOCKS = 65535  # block ids inside a list are uint16
_F32_FORWARD_MAX = 32 << 20  # "auto" keeps float32 forward weights while terms + weights take at most this


@dataclass(frozen=True)
class SeismicParams:
    """Build parameters of the approximate structures (names as in Seismic).

    Attributes:
        n_postings: λ — postings kept per list (on average for ``pruning="global"``, at most for "fixed").
        centroid_fraction: β — blocks per pruned list, as a fraction of its length.
        summary_energy: α — fraction of a block summary's L1 mass that is kept.
        min_cluster_size: blocks smaller than this are dissolved into the other blocks of the list.
        doc_cut: entries of a document (its largest) used when assigning it to a centroid.
        max_fraction: with global pruning, a list keeps at most ``max_fraction × n_postings`` entries.
        pruning: "global" (Seismic's default) or "fixed".
        seed: seed of the centroid choice.
    """

    n_postings: int = 1000
    centroid_fraction: float = 0.1
    summary_energy: float = 0.4
    min_cluster_size: int = 2
    doc_cut: int = 15
    max_fraction: float = 1.5
    pruning: str = "global"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_postings < 1:
            raise InvalidInputError(f"n_postings must be >= 1, got {self.n_postings}")
        if not 0.0 < self.centroid_fraction <= 1.0:
            raise InvalidInputError(f"centroid_fraction must be in (0, 1], got {self.centroid_fraction}")
        if not 0.0 < self.summary_energy <= 1.0:
            raise InvalidInputError(f"summary_energy must be in (0, 1], got {self.summary_energy}")
        if self.min_cluster_size < 1 or self.doc_cut < 1:
            raise InvalidInputError("min_cluster_size and doc_cut must be >= 1")
        if self.max_fraction < 1.0:
            raise InvalidInputError(f"max_fraction must be >= 1, got {self.max_fraction}")
        if self.pruning not in ("global", "fixed"):
            raise InvalidInputError(f"pruning must be 'global' or 'fixed', got {self.pruning!r}")


# --------------------------------------------------------------------------------------------- input checks


def _first_bad(m: sp.csr_matrix, bad: np.ndarray) -> tuple[int, int]:
    pos = int(np.flatnonzero(bad)[0])
    row = int(np.searchsorted(m.indptr, pos, side="right") - 1)
    return row, int(m.indices[pos])


def _as_csr(x, what: str, n_cols: int | None = None) -> sp.csr_matrix:
    """A canonical float32 CSR (sorted, summed duplicates, no explicit zeros) of finite non-negative values."""
    if isinstance(x, np.ndarray) and x.ndim == 1:
        x = x[None, :]
    if not (sp.issparse(x) or isinstance(x, np.ndarray)):
        raise InvalidInputError(f"{what} must be a scipy sparse matrix (CSR), got {type(x).__name__}")
    if x.ndim != 2:
        raise InvalidInputError(f"{what} must be 2-dimensional, got shape {x.shape}")
    if n_cols is not None and x.shape[1] != n_cols:
        raise InvalidInputError(
            f"{what} have {x.shape[1]} columns but the index vocabulary has {n_cols} terms; "
            "encode them with the same model/vocabulary as the documents")
    # may share the caller's arrays: copied below before anything is changed
    m = x if isinstance(x, sp.csr_matrix) and x.dtype == np.float32 else sp.csr_matrix(x, dtype=np.float32)
    if not np.all(np.isfinite(m.data)):
        row, term = _first_bad(m, ~np.isfinite(m.data))
        raise InvalidInputError(f"{what}: row {row} has a NaN or infinite weight at term {term}")
    if np.any(m.data < 0):
        row, term = _first_bad(m, m.data < 0)
        raise InvalidInputError(
            f"{what}: row {row} has a negative weight at term {term}; learned sparse weights must be >= 0")
    if not m.has_canonical_format or (m.data == 0).any():
        m = m.copy()
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
    return m


# ------------------------------------------------------------------------------------------- build kernels


@nb.njit(nogil=True, cache=True)
def _invert(f_indptr, f_terms, f_w, vocab_size):  # pragma: no cover - compiled
    """Term-major postings of a document-major CSR, documents ascending inside each list."""
    ptr = np.zeros(vocab_size + 1, dtype=np.int64)
    for j in range(len(f_terms)):
        ptr[np.int64(f_terms[j]) + 1] += 1
    for t in range(vocab_size):
        ptr[t + 1] += ptr[t]
    pos = ptr[:-1].copy()
    docs = np.empty(len(f_terms), dtype=np.int32)
    w = np.empty(len(f_terms), dtype=np.float32)
    for d in range(len(f_indptr) - 1):
        for j in range(f_indptr[d], f_indptr[d + 1]):
            t = np.int64(f_terms[j])
            p = pos[t]
            docs[p] = d
            w[p] = f_w[j]
            pos[t] = p + 1
    return ptr, docs, w


@nb.njit(nogil=True, cache=True)
def _prune(p_indptr, p_docs, p_w, thr, cap):  # pragma: no cover - compiled
    """Keep the entries >= thr of each list, at most its ``cap`` largest; documents stay ascending."""
    v = len(p_indptr) - 1
    longest = 0
    for t in range(v):
        longest = max(longest, p_indptr[t + 1] - p_indptr[t])
    buf = np.empty(longest, dtype=np.float32)
    kth = np.empty(v, dtype=np.float32)
    ptr = np.zeros(v + 1, dtype=np.int64)
    for t in range(v):
        n = 0
        for p in range(p_indptr[t], p_indptr[t + 1]):
            if p_w[p] >= thr:
                buf[n] = p_w[p]
                n += 1
        if n > cap:
            kth[t] = np.partition(buf[:n], n - cap)[n - cap]
            ptr[t + 1] = cap
        else:
            kth[t] = thr
            ptr[t + 1] = n
    for t in range(v):
        ptr[t + 1] += ptr[t]
    out = np.empty(ptr[v], dtype=np.int32)
    for t in range(v):
        c = kth[t]
        above = 0
        for p in range(p_indptr[t], p_indptr[t + 1]):
            if p_w[p] > c:
                above += 1
        ties = ptr[t + 1] - ptr[t] - above  # entries equal to the cut that still fit
        o = ptr[t]
        for p in range(p_indptr[t], p_indptr[t + 1]):
            w = p_w[p]
            if w > c or (w == c and ties > 0):
                if w == c:
                    ties -= 1
                out[o] = p_docs[p]
                o += 1
    return ptr, out


@nb.njit(nogil=True, cache=True)
def _doc_cut(f_indptr, f_terms, f_w, cut):  # pragma: no cover - compiled
    """Each row's ``cut`` largest entries (term -1 pads)."""
    n = len(f_indptr) - 1
    ct = np.full((n, cut), -1, dtype=np.int32)
    cw = np.zeros((n, cut), dtype=np.float32)
    for d in range(n):
        s, e = f_indptr[d], f_indptr[d + 1]
        if e - s <= cut:
            for j in range(s, e):
                ct[d, j - s] = f_terms[j]
                cw[d, j - s] = f_w[j]
        else:
            order = np.argsort(-f_w[s:e])
            for r in range(cut):
                ct[d, r] = f_terms[s + order[r]]
                cw[d, r] = f_w[s + order[r]]
    return ct, cw


@nb.njit(nogil=True, cache=True)
def _cluster_lists(t0, t1, pr_indptr, pr_docs, f_indptr, f_terms, f_w, cut_t, cut_w, beta, min_size, seed,
                   vocab_size, n_blocks, block_of):  # pragma: no cover - compiled
    """Cluster the pruned lists t0..t1 in place: documents reordered by block (ascending inside a block),
    ``block_of[p]`` the block of posting p, ``n_blocks[t]`` the number of blocks of list t."""
    longest = 1
    for t in range(t0, t1):
        longest = max(longest, pr_indptr[t + 1] - pr_indptr[t])
    cnt = np.zeros(vocab_size, dtype=np.int64)
    start = np.zeros(vocab_size, dtype=np.int64)
    perm = np.empty(longest, dtype=np.int64)
    assign = np.empty(longest, dtype=np.int64)
    tmp = np.empty(longest, dtype=np.int32)
    scores = np.zeros(min(longest, _MAX_BLOCKS), dtype=np.float32)
    sizes = np.zeros(min(longest, _MAX_BLOCKS) + 1, dtype=np.int64)
    removed = np.zeros(min(longest, _MAX_BLOCKS), dtype=np.bool_)
    touched = np.empty(16, dtype=np.int64)
    bc = np.empty(16, dtype=np.int32)
    bw = np.empty(16, dtype=np.float32)
    for t in range(t0, t1):
        s, e = pr_indptr[t], pr_indptr[t + 1]
        n = e - s
        m = min(max(1, int(beta * n)), n, _MAX_BLOCKS)
        if n == 0:
            n_blocks[t] = 0
            continue
        if m == 1:
            n_blocks[t] = 1
            block_of[s:e] = 0
            continue
        # m distinct random centroids (partial Fisher-Yates)
        np.random.seed(seed * 1000003 + t)
        for i in range(n):
            perm[i] = i
        for i in range(m):
            j = np.random.randint(i, n)
            perm[i], perm[j] = perm[j], perm[i]
        # inverted index over the centroids' full vectors: term -> (centroid, weight)
        n_t = 0
        total = 0
        for c in range(m):
            d = pr_docs[s + perm[c]]
            for j in range(f_indptr[d], f_indptr[d + 1]):
                u = np.int64(f_terms[j])
                if cnt[u] == 0:
                    if n_t == len(touched):
                        grown = np.empty(2 * n_t, dtype=np.int64)
                        grown[:n_t] = touched
                        touched = grown
                    touched[n_t] = u
                    n_t += 1
                cnt[u] += 1
                total += 1
        if total > len(bc):
            bc = np.empty(2 * total, dtype=np.int32)
            bw = np.empty(2 * total, dtype=np.float32)
        run = 0
        for i in range(n_t):
            u = touched[i]
            start[u] = run
            run += cnt[u]
            cnt[u] = 0
        for c in range(m):
            d = pr_docs[s + perm[c]]
            for j in range(f_indptr[d], f_indptr[d + 1]):
                u = np.int64(f_terms[j])
                q = start[u] + cnt[u]
                bc[q] = c
                bw[q] = f_w[j]
                cnt[u] += 1
        removed[:m] = False
        for rnd in range(2):
            for i in range(n):
                if rnd == 1 and not removed[assign[i]]:
                    continue
                d = pr_docs[s + i]
                scores[:m] = 0.0
                for r in range(cut_t.shape[1]):
                    u = cut_t[d, r]
                    if u < 0:
                        break
                    c_n = cnt[u]
                    if c_n == 0:
                        continue
                    w = cut_w[d, r]
                    b0 = start[u]
                    for q in range(b0, b0 + c_n):
                        scores[bc[q]] += w * bw[q]
                best = -1
                best_s = np.float32(-1.0)
                for c in range(m):
                    if scores[c] > best_s and not removed[c]:
                        best_s = scores[c]
                        best = c
                assign[i] = best
            if rnd == 1 or min_size <= 1:
                break
            sizes[:m] = 0
            for i in range(n):
                sizes[assign[i]] += 1
            n_keep = 0
            for c in range(m):
                if sizes[c] >= min_size:
                    n_keep += 1
            if n_keep == 0:
                break  # every cluster is small: keep them as they are
            any_removed = False
            for c in range(m):
                if 0 < sizes[c] < min_size:
                    removed[c] = True
                    any_removed = True
            if not any_removed:
                break
        for i in range(n_t):
            cnt[touched[i]] = 0
        # number the non-empty clusters 0..nb-1 (centroid order) and sort the postings by block, stably
        sizes[: m + 1] = 0
        for i in range(n):
            sizes[assign[i] + 1] += 1
        nb_ = 0
        for c in range(m):
            if sizes[c + 1] > 0:
                nb_ += 1
        n_blocks[t] = nb_
        for c in range(m):
            sizes[c + 1] += sizes[c]
        bid = np.empty(m, dtype=np.int64)
        b = 0
        for c in range(m):
            if sizes[c + 1] > sizes[c]:
                bid[c] = b
                b += 1
        for i in range(n):
            c = assign[i]
            q = sizes[c]
            tmp[q] = pr_docs[s + i]
            block_of[s + q] = bid[c]
            sizes[c] = q + 1
        pr_docs[s:e] = tmp[:n]


@nb.njit(nogil=True, cache=True, inline="always")
def _grow(a, need):  # pragma: no cover - compiled
    if need <= len(a):
        return a
    b = np.empty(max(need, 2 * len(a)), dtype=a.dtype)
    b[: len(a)] = a
    return b


_NBUCKETS = 256


@nb.njit(nogil=True, cache=True)
def _summaries(t0, t1, block_ptr, block_off, pr_docs, f_indptr, f_terms, f_w, alpha, vocab_size,
               n_uterms, b_step, blk_template):  # pragma: no cover - compiled
    """Quantised, energy-pruned block summaries of lists t0..t1, stored transposed per list.

    Returns ``(uterms, ucount, e_block, e_code)`` for these lists, in list order: each list's summary terms
    ascending with how many entries each has (a term with more than 255 entries is repeated), and the
    entries (block inside the list, 8-bit code) grouped by term, blocks ascending inside a term.
    ``n_uterms[t]`` (rows of ``uterms`` of list t) and ``b_step[block]`` (quantisation step) are filled.
    """
    mx = np.zeros(vocab_size, dtype=np.float32)
    cnt = np.zeros(vocab_size, dtype=np.int64)
    touched = np.empty(vocab_size, dtype=np.int64)
    vals = np.empty(vocab_size, dtype=np.float32)
    b_mass = np.zeros(_NBUCKETS, dtype=np.float64)
    b_of = np.empty(vocab_size, dtype=np.int32)
    edge = np.empty(vocab_size, dtype=np.int64)
    l_term = np.empty(1024, dtype=np.int64)
    l_block = np.empty(1024, dtype=blk_template.dtype)
    l_code = np.empty(1024, dtype=np.uint8)
    uterms = np.empty(1024, dtype=np.int32)
    ucount = np.empty(1024, dtype=np.uint8)
    e_block = np.empty(4096, dtype=blk_template.dtype)
    e_code = np.empty(4096, dtype=np.uint8)
    n_u = 0
    n_e = 0
    for t in range(t0, t1):
        n_l = 0
        for bi in range(block_ptr[t], block_ptr[t + 1]):
            # per-term maximum over the block's documents
            n_t = 0
            for p in range(block_off[bi], block_off[bi + 1]):
                d = pr_docs[p]
                for j in range(f_indptr[d], f_indptr[d + 1]):
                    u = np.int64(f_terms[j])
                    w = f_w[j]
                    m0 = mx[u]
                    if m0 == 0.0:
                        touched[n_t] = u
                        n_t += 1
                    mx[u] = max(m0, w)
            if n_t == 0:
                b_step[bi] = 0.0
                continue
            total = 0.0
            vmax = np.float32(0.0)
            for i in range(n_t):
                v = mx[touched[i]]
                vals[i] = v
                total += v
                vmax = max(vmax, v)
            # keep the largest entries until they hold alpha of the mass (inclusive): bucket the values
            # linearly below vmax, take whole buckets, sort only the boundary bucket
            b_mass[:] = 0.0
            scale = (_NBUCKETS - 1) / vmax
            for i in range(n_t):
                b = int((vmax - vals[i]) * scale)
                b_of[i] = b
                b_mass[b] += vals[i]
            until = alpha * total
            acc = 0.0
            cut = _NBUCKETS - 1
            for b in range(_NBUCKETS):
                if acc + b_mass[b] >= until:
                    cut = b
                    break
                acc += b_mass[b]
            l_term = _grow(l_term, n_l + n_t)
            l_block = _grow(l_block, n_l + n_t)
            l_code = _grow(l_code, n_l + n_t)
            step = vmax / np.float32(255.0)
            b_step[bi] = step
            local = bi - block_ptr[t]
            n_edge = 0
            for i in range(n_t):
                b = b_of[i]
                if b < cut:
                    code = int(vals[i] / step + 0.5)
                    if code > 0:
                        l_term[n_l] = touched[i]
                        l_block[n_l] = local
                        l_code[n_l] = min(code, 255)
                        n_l += 1
                elif b == cut:
                    edge[n_edge] = i
                    n_edge += 1
            ev = np.empty(n_edge, dtype=np.float32)
            for r in range(n_edge):
                ev[r] = vals[edge[r]]
            order = np.argsort(-ev)
            for r in range(n_edge):
                i = edge[order[r]]
                v = vals[i]
                code = int(v / step + 0.5)
                if code > 0:
                    l_term[n_l] = touched[i]
                    l_block[n_l] = local
                    l_code[n_l] = min(code, 255)
                    n_l += 1
                acc += v
                if acc >= until:
                    break
            for i in range(n_t):
                mx[touched[i]] = 0.0
        # transpose this list's entries: term -> (block, code), terms ascending, blocks ascending per term
        n_t = 0
        for i in range(n_l):
            u = l_term[i]
            if cnt[u] == 0:
                touched[n_t] = u
                n_t += 1
            cnt[u] += 1
        terms_sorted = np.sort(touched[:n_t])
        n_rows_l = 0
        for i in range(n_t):
            n_rows_l += (cnt[terms_sorted[i]] + 254) // 255
        uterms = _grow(uterms, n_u + n_rows_l)
        ucount = _grow(ucount, n_u + n_rows_l)
        e_block = _grow(e_block, n_e + n_l)
        e_code = _grow(e_code, n_e + n_l)
        run = n_e
        r = n_u
        for i in range(n_t):
            u = terms_sorted[i]
            c = cnt[u]
            cnt[u] = run  # becomes the fill position
            run += c
            while c > 0:
                uterms[r] = u
                ucount[r] = min(c, 255)
                c -= 255
                r += 1
        for i in range(n_l):
            u = l_term[i]
            q = cnt[u]
            e_block[q] = l_block[i]
            e_code[q] = l_code[i]
            cnt[u] = q + 1
        for i in range(n_t):
            cnt[touched[i]] = 0
        n_uterms[t] = n_rows_l
        n_u += n_rows_l
        n_e += n_l
    return uterms[:n_u].copy(), ucount[:n_u].copy(), e_block[:n_e].copy(), e_code[:n_e].copy()


_CK = 64  # one absolute entry offset per this many summary terms


@nb.njit(nogil=True, cache=True)
def _checkpoints(s_counts):  # pragma: no cover - compiled
    out = np.empty((len(s_counts) + _CK - 1) // _CK + 1, dtype=np.int64)
    off = 0
    for i in range(len(s_counts)):
        if i % _CK == 0:
            out[i // _CK] = off
        off += s_counts[i]
    out[-1] = off
    return out


@nb.njit(nogil=True, cache=True)
def _quantise_rows_u8(f_indptr, f_w):  # pragma: no cover - compiled
    """Each row's weights as 8-bit codes of ``row max / 255`` steps (rounded), and that step per row."""
    n = len(f_indptr) - 1
    codes = np.empty(len(f_w), dtype=np.uint8)
    scale = np.zeros(n, dtype=np.float32)
    for d in range(n):
        s, e = f_indptr[d], f_indptr[d + 1]
        top = np.float32(0.0)
        for j in range(s, e):
            top = max(top, f_w[j])
        step = top / np.float32(255.0) if top > 0 else np.float32(1.0)
        scale[d] = step
        for j in range(s, e):
            codes[j] = np.uint8(min(255.0, np.floor(f_w[j] / step + np.float32(0.5))))
    return codes, scale


# ------------------------------------------------------------------------------------------ approx search


@intrinsic
def _prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
    """Hint the CPU to fetch ``arr[idx]`` into cache (LLVM's prefetch intrinsic; no effect on results)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _as_f32(typingctx, x):  # pragma: no cover - compiled
    """A weight as float32: float32 as is, uint16 read as the bits of a float16 (IEEE half)."""
    if x == types.float32:
        return types.float32(x), lambda context, builder, signature, args: args[0]
    if x == types.uint16:
        def codegen(context, builder, signature, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return types.float32(x), codegen
    if x == types.uint8:  # an 8-bit code, scaled per row by the caller
        def codegen_u8(context, builder, signature, args):
            return builder.uitofp(args[0], ir.FloatType())

        return types.float32(x), codegen_u8
    return None


@nb.njit(nogil=True, cache=True, inline="always")
def _dot_row_scalar(qd, f_terms, f_w, s, e):  # pragma: no cover - compiled
    """Dense query · one forward row, one entry at a time; four accumulators keep the additions (and the
    float16 conversions, which LLVM otherwise chains to the accumulator register) independent."""
    a0 = np.float32(0.0)
    a1 = np.float32(0.0)
    a2 = np.float32(0.0)
    a3 = np.float32(0.0)
    j = s
    while j + 4 <= e:
        a0 += qd[f_terms[j]] * _as_f32(f_w[j])
        a1 += qd[f_terms[j + 1]] * _as_f32(f_w[j + 1])
        a2 += qd[f_terms[j + 2]] * _as_f32(f_w[j + 2])
        a3 += qd[f_terms[j + 3]] * _as_f32(f_w[j + 3])
        j += 4
    while j < e:
        a0 += qd[f_terms[j]] * _as_f32(f_w[j])
        j += 1
    return (a0 + a1) + (a2 + a3)


_LANES = 16  # entries per gather: measured best on AVX-512 (8 and 32 lanes were 5-10 % slower)


class _VectorGEP(ir.instructions.Instruction):
    """``getelementptr T, ptr %base, <n x i32> %idx``: a vector of addresses from one base and a vector of
    indices, which the x86 backend lowers to a gather with 32-bit indices (vgatherdps). llvmlite's builder
    only takes scalar indices; the ptrtoint/add/inttoptr spelling it does take becomes two gathers with
    64-bit addresses, ~8 % slower on the whole search."""

    def __init__(self, parent, ptr, idx):
        super().__init__(parent, ir.VectorType(ptr.type, idx.type.count), "getelementptr", [ptr, idx])

    def descr(self, buf):
        ptr, idx = self.operands
        buf.append(f"getelementptr {ptr.type.pointee}, {ptr.type} {ptr.get_reference()}, "
                   f"{idx.type} {idx.get_reference()}\n")


@intrinsic
def _gather_dot(typingctx, qd, f_terms, f_w, s, e):  # pragma: no cover - compiled
    """Dense query · forward row ``[s, e)``, 16 entries at a time: a vector load of the terms, a gather of
    their query weights (``llvm.masked.gather``), a vector load and conversion of the weights (float32,
    float16 bits or uint8 codes) and a multiply-add into 16 lanes; the last partial block is masked. LLVM
    emits AVX-512/AVX2 gathers where the CPU has them and scalar loads elsewhere."""
    if not (qd.dtype == types.float32 and f_terms.dtype in (types.uint16, types.int32)
            and f_w.dtype in (types.float32, types.uint16, types.uint8)):
        return None
    sig = types.float32(qd, f_terms, f_w, s, e)

    def codegen(context, builder, signature, args):
        n_l = _LANES
        qa, ta, wa = (context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:3], args[:3], strict=True))
        i1, i32, i64, f32 = ir.IntType(1), ir.IntType(32), ir.IntType(64), ir.FloatType()
        vf, vi32, vm = ir.VectorType(f32, n_l), ir.VectorType(i32, n_l), ir.VectorType(i1, n_l)
        t_el = ir.IntType(16) if signature.args[1].dtype == types.uint16 else i32
        w_dt = signature.args[2].dtype
        w_el = {types.float32: f32, types.uint16: ir.IntType(16), types.uint8: ir.IntType(8)}[w_dt]
        vt, vw = ir.VectorType(t_el, n_l), ir.VectorType(w_el, n_l)
        t_al, w_al = t_el.width // 8, (32 if w_dt == types.float32 else w_el.width) // 8
        mod = builder.module

        def masked_load(vec, el):
            name = f"llvm.masked.load.v{n_l}{'f32' if el == f32 else f'i{el.width}'}.p0"
            return cgutils.get_or_insert_function(mod, ir.FunctionType(vec, [vec.as_pointer(), i32, vm, vec]), name)

        gather = cgutils.get_or_insert_function(
            mod, ir.FunctionType(vf, [ir.VectorType(f32.as_pointer(), n_l), i32, vm, vf]),
            f"llvm.masked.gather.v{n_l}f32.v{n_l}p0")
        load_t, load_w = masked_load(vt, t_el), masked_load(vw, w_el)
        zero = ir.Constant(vf, [0.0] * n_l)
        acc = cgutils.alloca_once_value(builder, zero)

        def block(j, mask):
            tp = builder.bitcast(builder.gep(ta.data, [j]), vt.as_pointer())
            wp = builder.bitcast(builder.gep(wa.data, [j]), vw.as_pointer())
            if mask is None:
                tv, wv = builder.load(tp, align=t_al), builder.load(wp, align=w_al)
                mask = ir.Constant(vm, [1] * n_l)
            else:
                tv = builder.call(load_t, [tp, i32(t_al), mask, ir.Constant(vt, [0] * n_l)])
                wv = builder.call(load_w, [wp, i32(w_al), mask, ir.Constant(vw, [0] * n_l)])
            idx = builder.zext(tv, vi32) if t_el != i32 else tv
            ptrs = _VectorGEP(builder.block, qa.data, idx)
            builder._insert(ptrs)
            g = builder.call(gather, [ptrs, i32(4), mask, zero])
            if w_dt == types.uint16:
                w = builder.fpext(builder.bitcast(wv, ir.VectorType(ir.HalfType(), n_l)), vf)
            elif w_dt == types.uint8:
                w = builder.uitofp(wv, vf)
            else:
                w = wv
            builder.store(builder.fadd(builder.load(acc), builder.fmul(g, w)), acc)

        s_, e_ = args[3], args[4]
        n = builder.sub(e_, s_)
        full = builder.udiv(n, i64(n_l))
        with cgutils.for_range(builder, full) as loop:
            block(builder.add(s_, builder.mul(loop.index, i64(n_l))), None)
        rest = builder.sub(n, builder.mul(full, i64(n_l)))
        with builder.if_then(builder.icmp_signed(">", rest, i64(0))):
            r = builder.insert_element(ir.Constant(vi32, ir.Undefined), builder.trunc(rest, i32), i32(0))
            r = builder.shuffle_vector(r, ir.Constant(vi32, ir.Undefined), ir.Constant(vi32, [0] * n_l))
            block(builder.add(s_, builder.mul(full, i64(n_l))),
                  builder.icmp_unsigned("<", ir.Constant(vi32, list(range(n_l))), r))
        v = builder.load(acc)
        tot = builder.extract_element(v, i32(0))
        for i in range(1, n_l):
            tot = builder.fadd(tot, builder.extract_element(v, i32(i)))
        return tot

    return sig, codegen


@nb.njit(nogil=True, cache=True, inline="always")
def _dot_row_gather(qd, f_terms, f_w, s, e):  # pragma: no cover - compiled
    return _gather_dot(qd, f_terms, f_w, s, e)


def _host_has_gather() -> bool:
    """AVX2 or AVX-512 on this CPU: the gathered dot product is then 15-25 % faster per search (measured on
    AMD EPYC Zen 4, SciFact and the 500k benchmark corpus); elsewhere LLVM would split the gather into
    scalar loads, and the scalar kernel with four accumulators is the better choice. (numba's on-disk cache
    is keyed by the CPU's name and features, so a cached kernel always matches this choice.)"""
    from llvmlite import binding

    feats = binding.get_host_cpu_features()
    return bool(feats.get("avx2", False) or feats.get("avx512f", False))


_dot_row = _dot_row_gather if _host_has_gather() else _dot_row_scalar


_AHEAD = 4  # documents fetched ahead of the one being scored
_QMASK = 7  # ring buffer of the documents waiting to be scored (size a power of 2 > _AHEAD)


_LEN_BITS = 24  # a posting's packed row extent: forward offset << 24 | row length


@nb.njit(nogil=True, cache=True, inline="always")
def _prefetch_row(f_terms, f_w, s, e):  # pragma: no cover - compiled
    for j in range(s, e, 32):
        _prefetch(f_terms, j)
    for j in range(s, e, 64 // f_w.itemsize):
        _prefetch(f_w, j)


@nb.njit(nogil=True, cache=True, inline="always")
def _score_queued(qd, f_terms, f_w, f_scale, scaled, pend, pend_s, pend_e, i, h_scores, h_idx, size, k):  # pragma: no cover
    """Score the queued document in slot ``i`` (its row was prefetched when it was queued) into the heap."""
    e = pend[i]
    s = _dot_row(qd, f_terms, f_w, pend_s[i], pend_e[i])
    if scaled:
        s *= f_scale[e]
    return heap_push(h_scores, h_idx, size, k, s, e)


def _pack_extents(pr_docs: np.ndarray, f_indptr: np.ndarray) -> np.ndarray:
    """Each posting's forward row as ``offset << 24 | length`` (uint64), as Seismic keeps it: the scoring
    loop then prefetches a document's row straight from the posting, without first loading the row
    bounds of a random document."""
    start = f_indptr[pr_docs]
    length = f_indptr[pr_docs + 1] - start
    if len(length) and (int(length.max()) >= 1 << _LEN_BITS or int(f_indptr[-1]) >= 1 << (64 - _LEN_BITS)):
        raise InvalidInputError("a document has too many non-zeros for the approximate index (2^24 at most)")
    return (start.astype(np.uint64) << np.uint64(_LEN_BITS)) | length.astype(np.uint64)


@nb.njit(nogil=True, cache=True)
def _approx_serial(q_indptr, q_terms, q_w, f_terms, f_w, f_scale, pr_docs, pr_pack, block_ptr, block_off, b_step,
                   s_list_ptr, s_terms, s_counts, s_ck, s_entries, allowed, use_allowed, qd, visited, state,
                   max_blocks, k, query_cut, heap_factor, first_sorted, global_order):  # pragma: no cover - compiled
    """Seismic search of a batch of queries. ``qd`` (zeros, one per term), ``visited`` (epoch marks, one per
    row) and ``state`` (the last epoch) are per-thread scratch reused across calls; qd is left zeroed."""
    nq = len(q_indptr) - 1
    out_idx = np.full((nq, k), -1, dtype=np.int64)
    out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
    counts = np.zeros(nq, dtype=np.int64)
    dots = np.zeros(max(max_blocks, 1) * max(query_cut, 1), dtype=np.float32)  # every visited list's blocks
    gblk = np.empty(len(dots), dtype=np.int64)  # their global block ids
    longest_q = 1
    for qi in range(nq):
        longest_q = max(longest_q, q_indptr[qi + 1] - q_indptr[qi])
    m_off = np.empty(longest_q, dtype=np.int64)  # summary terms of a list matching the query
    m_cnt = np.empty(longest_q, dtype=np.int64)
    m_w = np.empty(longest_q, dtype=np.float32)
    h_scores = np.empty(k, dtype=np.float32)
    h_idx = np.empty(k, dtype=np.int64)
    hf = np.float32(heap_factor)
    scaled = len(f_scale) > 0  # uint8 codes: weight = code × f_scale[row]
    pend = np.empty(_QMASK + 1, dtype=np.int64)
    pend_s = np.empty(_QMASK + 1, dtype=np.int64)
    pend_e = np.empty(_QMASK + 1, dtype=np.int64)
    lbits = np.uint64(_LEN_BITS)
    lmask = np.uint64((1 << _LEN_BITS) - 1)
    for qi in range(nq):
        qs, qe = q_indptr[qi], q_indptr[qi + 1]
        if qe == qs:
            continue
        epoch = state[0] + 1
        if epoch > 255:  # uint8 marks (small enough to stay in cache): clear them every 255 queries
            visited[:] = 0
            epoch = 1
        state[0] = epoch
        for j in range(qs, qe):
            qd[q_terms[j]] = q_w[j]
        order = np.argsort(-q_w[qs:qe], kind="mergesort")
        size = 0
        head = 0
        tail = 0
        # 1. summary scores of the blocks of the query's query_cut largest terms' lists
        tot = 0
        first_n = 0
        for r in range(min(query_cut, qe - qs)):
            t = q_terms[qs + order[r]]
            b0 = block_ptr[t]
            nb_ = block_ptr[t + 1] - b0
            if nb_ == 0:
                continue
            if tot == 0:
                first_n = nb_
            bd = dots[tot : tot + nb_]
            bd[:] = 0.0
            # find the query's terms among the list's summary terms (galloping search, moving lower bound),
            # prefetch their entries, then add them up: the entries are cold, so their loads overlap
            lo = s_list_ptr[t]
            hi = s_list_ptr[t + 1]
            n_m = 0
            for j in range(qs, qe):
                u = q_terms[j]
                # the next summary term >= u: galloping search from the moving lower bound (probes at
                # lo+1, lo+2, lo+4, ... then a binary search inside the last step): the query's next term is
                # usually a few hundred positions on, so the probes stay on nearby cache lines instead of
                # jumping across the whole list as a plain binary search would
                a = lo
                if a < hi and s_terms[a] < u:
                    step = 1
                    while a + step < hi and s_terms[a + step] < u:
                        a += step
                        step <<= 1
                    b = min(a + step, hi)
                    a += 1
                    while a < b:
                        mid = (a + b) >> 1
                        if s_terms[mid] < u:
                            a = mid + 1
                        else:
                            b = mid
                lo = a
                if a == hi:
                    break
                if s_terms[a] != u:
                    continue
                x = s_ck[a // _CK]  # entry offset of summary term a: checkpoint + the counts since
                for i in range(a - a % _CK, a):
                    x += s_counts[i]
                c = 0
                while a < hi and s_terms[a] == u:  # a term with more than 255 entries spans rows
                    c += s_counts[a]
                    a += 1
                lo = a
                _prefetch(s_entries, x)
                m_off[n_m] = x
                m_cnt[n_m] = c
                m_w[n_m] = q_w[j]
                n_m += 1
            for i in range(n_m):
                w = m_w[i]
                for y in range(m_off[i], m_off[i] + m_cnt[i]):
                    e = s_entries[y]
                    bd[e >> 8] += w * np.float32(e & 255)
            for b in range(nb_):
                bd[b] *= b_step[b0 + b]
                gblk[tot + b] = b0 + b
            tot += nb_
        # 2. the visiting order: Seismic's (list by list, the first list's blocks best summary first), or
        # every block of every visited list best summary first (global_order) — then the k-th best score
        # rises fastest, and the first block whose summary falls below it ends the query
        if global_order:
            border = np.argsort(-dots[:tot], kind="mergesort")
        else:
            border = np.arange(tot)
            if first_sorted and first_n:
                border[:first_n] = np.argsort(-dots[:first_n], kind="mergesort")
        for bi in range(tot):
            b = border[bi]
            if size == k and dots[b] < hf * h_scores[0]:
                if global_order:
                    break
                continue
            p0, p1 = block_off[gblk[b]], block_off[gblk[b] + 1]
            for p in range(p0, p1):
                d = pr_docs[p]
                if visited[d] == epoch:
                    continue
                visited[d] = epoch
                if use_allowed and not allowed[d]:
                    continue
                # documents to score go through a short queue: the rows of the next ones are being
                # fetched (prefetch) while one is scored, across block and list boundaries
                pk = pr_pack[p]
                rs = np.int64(pk >> lbits)
                re = rs + np.int64(pk & lmask)
                _prefetch_row(f_terms, f_w, rs, re)
                pend[tail & _QMASK] = d
                pend_s[tail & _QMASK] = rs
                pend_e[tail & _QMASK] = re
                tail += 1
                if tail - head > _AHEAD:
                    size = _score_queued(qd, f_terms, f_w, f_scale, scaled, pend, pend_s, pend_e, head & _QMASK,
                                         h_scores, h_idx, size, k)
                    head += 1
        while head < tail:
            size = _score_queued(qd, f_terms, f_w, f_scale, scaled, pend, pend_s, pend_e, head & _QMASK,
                                 h_scores, h_idx, size, k)
            head += 1
        for j in range(qs, qe):
            qd[q_terms[j]] = 0.0
        heap_drain_sorted(h_scores, h_idx, size, out_scores[qi], out_idx[qi])
        counts[qi] = size
    return out_idx, out_scores, counts


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="retrievo-sparse")


def _split_by_cost(cost: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Contiguous ranges of items with about equal total cost."""
    n = len(cost)
    if n == 0:
        return []
    cum = np.cumsum(cost, dtype=np.float64)
    total = cum[-1] if cum[-1] > 0 else 1.0
    cuts = np.searchsorted(cum, total * np.arange(1, parts) / parts, side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [n]]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


_EXACT = ("p_indptr", "p_docs", "p_w")
_APPROX = ("f_indptr", "f_terms", "f_w", "f_scale", "pr_docs", "pr_pack", "block_ptr", "block_off", "b_step", "s_list_ptr", "s_terms", "s_counts", "s_ck",
           "s_entries")


class SparseIndex:
    """Exact and approximate top-k inner-product search over non-negative sparse vectors.

    Args:
        docs: documents × vocabulary matrix (scipy sparse, converted to float32 CSR); weights must be finite
            and >= 0; empty rows are allowed. Rows are numbered as given (globally across segments).
        live: optional boolean mask of live rows; the others are left out of every structure.
        exact: build the term-major postings of exact search.
        approx: build the Seismic structures of approximate search: True (default parameters), False, or
            a :class:`SeismicParams`.
        forward_precision: weights of the forward vectors that approximate search scores: "auto" (float32
            while terms + weights take at most 32 MiB, float16 above), "float16" or "float32".
        threads: threads for the approximate build (default: all cores).

    ``nbytes`` / :meth:`nbytes_by_part` give the memory held; :meth:`save` / :meth:`load` persist it.
    """

    def __init__(self, docs, live: np.ndarray | None = None, *, exact: bool = True,
                 approx: bool | SeismicParams = True, forward_precision: str = "auto",
                 threads: int | None = None) -> None:
        if forward_precision not in ("auto", "float16", "float32", "uint8"):
            raise InvalidInputError(
                f"forward_precision must be 'auto', 'float16', 'float32' or 'uint8', got {forward_precision!r}")
        self.params: SeismicParams | None = (SeismicParams() if approx is True else approx) or None
        self.has_exact = bool(exact)
        if not (self.has_exact or self.params is not None):
            raise InvalidInputError("SparseIndex needs exact=True or approx structures (or both)")
        m = _as_csr(docs, "documents")
        self.n_rows, self.vocab_size = m.shape
        if live is not None:
            live = np.asarray(live, dtype=bool)
            if live.shape != (self.n_rows,):
                raise InvalidInputError(f"live mask has shape {live.shape}, expected ({self.n_rows},)")
            if not live.all():
                m = sp.csr_matrix(sp.diags(live.astype(np.float32)) @ m)
                m.eliminate_zeros()
                m.sort_indices()
        tdt = np.uint16 if self.vocab_size <= 65536 else np.int32
        f_indptr = m.indptr.astype(np.int64)
        f_terms = m.indices.astype(tdt)
        f_w = m.data.astype(np.float32, copy=False)
        del m
        self.max_blocks = 0
        ptr, docs_, w = _invert(f_indptr, f_terms, f_w, self.vocab_size)
        if self.params is not None:
            self.f_indptr, self.f_terms = f_indptr, f_terms
            self._build_approx(ptr, docs_, w, f_w, self.params, threads)
            # the forward vectors score the candidates of approximate search. Half precision halves the
            # memory traffic of their values (Seismic does the same), which wins once they no longer fit
            # in cache; small collections keep float32 (exact scores, no conversions). Weights beyond
            # float16's range stay float32.
            if forward_precision == "auto":
                forward_precision = "float32" if len(f_w) * 6 <= _F32_FORWARD_MAX else "float16"
            self.f_scale = np.zeros(0, dtype=np.float32)
            if forward_precision == "uint8":
                self.f_w, self.f_scale = _quantise_rows_u8(f_indptr, f_w)
            elif forward_precision == "float16" and (len(f_w) == 0 or f_w.max() < 65000.0):
                self.f_w = f_w.astype(np.float16).view(np.uint16)
            else:
                self.f_w = f_w
        del f_w
        if exact:
            self.p_indptr, self.p_docs, self.p_w = ptr, docs_, w

    # --------------------------------------------------------------------------------------------- build

    def _build_approx(self, ptr, docs_, w, f_w, prm: SeismicParams, threads: int | None) -> None:
        threads = max(1, int(threads or os.cpu_count() or 1))
        v = self.vocab_size
        if prm.pruning == "fixed":
            thr, cap = 0.0, prm.n_postings
        else:
            cap = max(1, int(prm.n_postings * prm.max_fraction))
            budget = prm.n_postings * v
            thr = 0.0
            if budget < len(w):
                sample = w
                if len(w) > 4_000_000:
                    sample = np.random.default_rng(prm.seed).choice(w, 4_000_000)
                thr = float(np.quantile(sample, 1.0 - budget / len(w)))
        pr_ptr, pr_docs = _prune(ptr, docs_, w, np.float32(thr), cap)
        cut_t, cut_w = _doc_cut(self.f_indptr, self.f_terms, f_w, prm.doc_cut)
        n_blocks = np.zeros(v, dtype=np.int64)
        block_of = np.empty(len(pr_docs), dtype=np.int32)
        lengths = np.diff(pr_ptr).astype(np.float64)
        pool = _pool(threads)
        ranges = _split_by_cost(lengths * np.maximum(1.0, lengths * prm.centroid_fraction), threads * 8)
        list(pool.map(lambda ab: _cluster_lists(
            ab[0], ab[1], pr_ptr, pr_docs, self.f_indptr, self.f_terms, f_w, cut_t, cut_w,
            prm.centroid_fraction, prm.min_cluster_size, prm.seed, v, n_blocks, block_of), ranges))
        cut_t = cut_w = None  # free them before the summaries
        block_ptr = np.zeros(v + 1, dtype=np.int64)
        np.cumsum(n_blocks, out=block_ptr[1:])
        # block boundaries: starts of lists with blocks plus every change of block id inside a list
        starts = np.zeros(len(pr_docs), dtype=bool)
        if len(pr_docs):
            starts[pr_ptr[:-1][n_blocks > 0]] = True
            starts[1:] |= block_of[1:] != block_of[:-1]
        block_off = np.append(np.flatnonzero(starts), len(pr_docs)).astype(np.int64)
        block_of = starts = None
        assert len(block_off) == block_ptr[-1] + 1
        n_uterms = np.zeros(v, dtype=np.int64)
        b_step = np.zeros(block_ptr[-1], dtype=np.float32)
        ranges = _split_by_cost(lengths, threads * 8)
        blk = np.empty(0, dtype=np.uint8 if n_blocks.max(initial=0) <= 256 else np.uint16)
        parts = list(pool.map(lambda ab: _summaries(
            ab[0], ab[1], block_ptr, block_off, pr_docs, self.f_indptr, self.f_terms, f_w,
            prm.summary_energy, v, n_uterms, b_step, blk), ranges))
        tdt = self.f_terms.dtype
        self.s_list_ptr = np.zeros(v + 1, dtype=np.int64)
        np.cumsum(n_uterms, out=self.s_list_ptr[1:])

        def cat(parts, i, dtype):
            return np.concatenate([p[i] for p in parts]).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

        self.s_terms = cat(parts, 0, tdt)
        self.s_counts = cat(parts, 1, np.uint8)
        # an entry packs its block (inside the list) and its 8-bit code: block << 8 | code
        edt = np.uint16 if blk.dtype == np.uint8 else np.uint32
        self.s_entries = (cat(parts, 2, edt) << 8) | cat(parts, 3, edt)
        del parts
        self.s_ck = _checkpoints(self.s_counts)
        self.pr_docs, self.block_ptr, self.block_off, self.b_step = pr_docs, block_ptr, block_off, b_step
        self.pr_pack = _pack_extents(pr_docs, self.f_indptr)
        self.max_blocks = int(n_blocks.max()) if v else 0

    def _scratch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This thread's dense query buffer, visited marks and epoch, kept between calls (a single-query
        call then allocates and page-faults nothing)."""
        tls = self.__dict__.setdefault("_tls", threading.local())
        sc = getattr(tls, "scratch", None)
        if sc is None:
            sc = tls.scratch = (np.zeros(self.vocab_size, dtype=np.float32),
                                np.zeros(self.n_rows, dtype=np.uint8), np.zeros(1, dtype=np.int64))
        return sc

    # --------------------------------------------------------------------------------------------- info

    def _arrays_names(self) -> tuple[str, ...]:
        return (_EXACT if self.has_exact else ()) + (_APPROX if self.params is not None else ())

    def _arrays(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in self._arrays_names()}

    @property
    def nbytes(self) -> int:
        """Bytes of every array the index holds (forward vectors, postings, blocks and summaries)."""
        return sum(a.nbytes for a in self._arrays().values())

    def nbytes_by_part(self) -> dict[str, int]:
        """Bytes of the exact postings, and of the approximate structures with their forward vectors."""
        arrs = self._arrays()
        fwd = ("f_indptr", "f_terms", "f_w")
        return {"exact": sum(arrs[n].nbytes for n in _EXACT if n in arrs),
                "forward": sum(arrs[n].nbytes for n in fwd if n in arrs),
                "approx": sum(arrs[n].nbytes for n in _APPROX if n in arrs and n not in fwd)}

    # --------------------------------------------------------------------------------------------- search

    def search(self, queries, k: int, allowed: np.ndarray | None = None, mode: str = "exact",
               threads: int | None = None, *, query_cut: int = 10, heap_factor: float = 0.9,
               first_sorted: bool = True, global_order: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k rows by inner product for each query row.

        Args:
            queries: queries × vocabulary sparse matrix (same vocabulary as the documents), weights >= 0.
            k: results per query.
            allowed: optional boolean mask over rows; only rows where it is true are returned.
            mode: "exact", or "approx" (Seismic: needs the index built with ``approx``).
            threads: worker threads for a batch (default: all cores).
            query_cut: approx — the query's largest terms whose lists are visited.
            heap_factor: approx — a block is skipped when its summary score is below ``heap_factor × the
                current k-th best score``; larger is faster and less accurate.
            first_sorted: approx — visit the first list's blocks best summary score first.
            global_order: approx — visit the blocks of all ``query_cut`` lists together, best summary score
                first, and stop at the first one skipped, instead of Seismic's list-by-list order (the
                default, with ``first_sorted``).

        Returns:
            ``(rows, scores, counts)`` shaped ``(n, k)``, ``(n, k)``, ``(n,)``, best first; padding rows are
            -1/-inf. In exact mode ``counts`` is ``min(k, allowed rows sharing a term with the query)``.
        """
        if mode not in ("exact", "approx"):
            raise InvalidInputError(f"mode must be 'exact' or 'approx', got {mode!r}")
        if mode == "exact" and not self.has_exact:
            raise InvalidInputError("this SparseIndex was built with exact=False; exact search is unavailable")
        if mode == "approx" and self.params is None:
            raise InvalidInputError("this SparseIndex was built without approx structures; pass approx=True")
        if int(query_cut) < 1 or not heap_factor > 0:
            raise InvalidInputError("query_cut must be >= 1 and heap_factor > 0")
        q = _as_csr(queries, "queries", self.vocab_size)
        k = max(int(k), 1)
        use_allowed = allowed is not None
        if use_allowed:
            mask = np.asarray(allowed, dtype=np.bool_)
            if mask.shape != (self.n_rows,):
                raise InvalidInputError(f"allowed mask has shape {mask.shape}, expected ({self.n_rows},)")
        else:
            mask = np.zeros(1, dtype=np.bool_)
        q_indptr = q.indptr.astype(np.int64)
        q_terms = q.indices.astype(np.int64)
        q_w = q.data
        if mode == "exact":
            def run(a: int, b: int):
                return term_at_a_time(q_indptr[a:b + 1] - q_indptr[a], q_terms[q_indptr[a]:q_indptr[b]],
                                     q_w[q_indptr[a]:q_indptr[b]], self.p_indptr, self.p_docs, self.p_w,
                                     mask, use_allowed, self.n_rows, k)
        else:
            def run(a: int, b: int):
                return _approx_serial(
                    q_indptr[a:b + 1] - q_indptr[a], q_terms[q_indptr[a]:q_indptr[b]],
                    q_w[q_indptr[a]:q_indptr[b]], self.f_terms, self.f_w, self.f_scale, self.pr_docs, self.pr_pack,
                    self.block_ptr, self.block_off, self.b_step, self.s_list_ptr, self.s_terms,
                    self.s_counts, self.s_ck, self.s_entries, mask, use_allowed, *self._scratch(),
                    self.max_blocks, k, int(query_cut), float(heap_factor), bool(first_sorted), bool(global_order))
        nq = q.shape[0]
        threads = max(1, int(threads or os.cpu_count() or 1))
        if threads == 1 or nq < 2 * threads:
            return run(0, nq)
        bounds = np.linspace(0, nq, threads + 1).astype(int)
        parts = list(_pool(threads).map(lambda ab: run(*ab), zip(bounds[:-1], bounds[1:], strict=True)))
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Write the index under folder ``path`` as ``.npy`` arrays and ``meta.json`` (each file atomically)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, arr in self._arrays().items():
            save_npy(path / f"{name}.npy", arr, sync_dir=False)
        meta = {"format": FORMAT, "kind": "sparse", "n_rows": self.n_rows, "vocab_size": self.vocab_size,
                "exact": self.has_exact, "max_blocks": self.max_blocks,
                "approx": None if self.params is None else asdict(self.params)}
        write_json(path / "meta.json", meta, indent=None)  # written last: it marks the index complete

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> SparseIndex:
        """Reopen an index written by :meth:`save`; arrays are memory-mapped read-only when ``mmap``."""
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text())
        except FileNotFoundError:
            raise InvalidInputError(f"no sparse index under {path} (meta.json missing)") from None
        if meta.get("kind") != "sparse" or int(meta.get("format", -1)) > FORMAT:
            raise InvalidInputError(f"{path} holds an unknown sparse index format {meta.get('format')!r}")
        self = cls.__new__(cls)
        self.n_rows = int(meta["n_rows"])
        self.vocab_size = int(meta["vocab_size"])
        self.has_exact = bool(meta["exact"])
        self.max_blocks = int(meta["max_blocks"])
        prm = meta["approx"]
        names = {f.name for f in fields(SeismicParams)}
        self.params = None if prm is None else SeismicParams(**{k: v for k, v in prm.items() if k in names})
        for name in self._arrays_names():
            if name == "f_scale" and not (path / "f_scale.npy").exists():  # written before uint8 rows existed
                self.f_scale = np.zeros(0, dtype=np.float32)
                continue
            if name == "pr_pack" and not (path / "pr_pack.npy").exists():  # written before packed extents
                continue
            arr = np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
            setattr(self, name, np.asarray(arr))
        if self.params is not None and not hasattr(self, "pr_pack"):
            self.pr_pack = _pack_extents(self.pr_docs, self.f_indptr)
        return self


class SegmentedSparseIndex:
    """Sparse search over immutable segments, each with its own :class:`SparseIndex`, merged into one top-k.

    Each segment's index is built once over all of its rows (so a commit builds only the new segment's)
    and kept beside it; rows deleted later are masked at search time through ``live``.

    Args:
        parts: ``(offset, index)`` per segment, in row order; index rows are ``offset .. offset + n_rows``.
        live: boolean mask over all rows; dead rows are never returned.
    """

    def __init__(self, parts: list[tuple[int, SparseIndex]], live: np.ndarray) -> None:
        self.parts = parts
        self.live = np.asarray(live, dtype=bool)
        self.n_rows = len(self.live)
        self.vocab_size = parts[0][1].vocab_size if parts else 0
        self.has_exact = all(ix.has_exact for _, ix in parts)
        self.params = parts[0][1].params if parts else None

    @property
    def nbytes(self) -> int:
        return sum(ix.nbytes for _, ix in self.parts)

    def search(self, queries, k: int, allowed: np.ndarray | None = None, mode: str = "exact",
               threads: int | None = None, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`SparseIndex.search`, over every segment; ties across segments go to the lower row."""
        q = _as_csr(queries, "queries", self.vocab_size if self.parts else None)
        k = max(int(k), 1)
        nq = q.shape[0]
        mask = self.live if allowed is None else self.live & np.asarray(allowed, dtype=bool)
        rows_l, scores_l = [], []
        for offset, ix in self.parts:
            seg = mask[offset : offset + ix.n_rows]
            if not seg.any():
                continue
            r, sc, _ = ix.search(q, k, None if seg.all() else seg, mode, threads, **kwargs)
            rows_l.append(np.where(r >= 0, r + offset, -1))
            scores_l.append(sc)
        if not rows_l:
            return (np.full((nq, k), -1, np.int64), np.full((nq, k), -np.inf, np.float32), np.zeros(nq, np.int64))
        if len(rows_l) == 1:
            return rows_l[0], scores_l[0], (rows_l[0] >= 0).sum(axis=1).astype(np.int64)
        return select_topk(np.concatenate(rows_l, axis=1), np.concatenate(scores_l, axis=1), k)
