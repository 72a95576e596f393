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
from dataclasses import asdict, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from retrievo._io import load_npy, save_npy, write_json
from retrievo.errors import InvalidInputError
from retrievo.indexes.inverted import term_at_a_time
from retrievo.indexes.sparse.build import (
    _checkpoints,
    _cluster_lists,
    _doc_cut,
    _invert,
    _pack_extents,
    _prune,
    _quantise_rows_u8,
    _summaries,
)
from retrievo.indexes.sparse.kernels import _approx_serial
from retrievo.indexes.sparse.params import _F32_FORWARD_MAX, FORMAT, SeismicParams, as_csr

__all__ = ["SparseIndex"]

_CPUS = os.cpu_count() or 1  # read once: os.cpu_count() costs microseconds a call


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
        m = as_csr(docs, "documents")
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
        threads = max(1, int(threads or _CPUS))
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
        q = as_csr(queries, "queries", self.vocab_size)
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
        threads = max(1, int(threads or _CPUS))
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
            arr = load_npy(path / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
            setattr(self, name, np.asarray(arr))
        if self.params is not None and not hasattr(self, "pr_pack"):
            self.pr_pack = _pack_extents(self.pr_docs, self.f_indptr)
        return self


