"""The SPLADE signal: a learned sparse vector per document, exact or Seismic-style approximate search.

At commit documents are encoded by the collection's SPLADE model (:mod:`retrievo.encoders.sparse`,
vectors cached by content); each new segment gets its exact posting lists (and, when the collection's
default mode is ``approx``, its Seismic structures) beside it. A generation searches one
:class:`~retrievo.indexes.sparse.SparseIndex` per segment merged into one top-k; approximate structures
of older segments are built on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from retrievo.config import CollectionConfig, SparseConfig
from retrievo.errors import InvalidInputError
from retrievo.signals.base import Candidates, EncodeBatch, SearchContext, Signal, prepared
from retrievo.store.segments import Layout, SegmentData
from retrievo.store.snapshot import Snapshot

__all__ = ["SpladeSignal", "csr_arrays", "segment_csr"]


def csr_arrays(csr: Any) -> dict[str, np.ndarray]:
    """A ``scipy.sparse`` matrix (one row per document) as the SPLADE arrays of a segment."""
    csr = csr.tocsr()
    csr.sort_indices()
    return {"sp_indptr": np.asarray(csr.indptr, dtype=np.int64), "sp_terms": np.asarray(csr.indices, dtype=np.int32),
            "sp_weights": np.asarray(csr.data, dtype=np.float32)}


def segment_csr(data: SegmentData) -> Any:
    """A segment's SPLADE vectors as a ``scipy.sparse.csr_matrix`` (rows × sparse vocabulary)."""
    import scipy.sparse as sp

    return sp.csr_matrix((data.sp_weights, data.sp_terms, data.sp_indptr), shape=(data.n_rows, data.meta["sparse_vocab"]))


class SpladeSignal(Signal):
    """Learned sparse retrieval with the collection's SPLADE model (``CollectionConfig.sparse``)."""

    name = "splade"
    layouts = (Layout("csr", ("sp_indptr", "sp_terms", "sp_weights")),)

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._encoder: Any = None

    @classmethod
    def enabled(cls, config: CollectionConfig) -> bool:
        return config.sparse is not None

    @classmethod
    def configure(cls, config: CollectionConfig, use: bool) -> CollectionConfig:
        if not use:
            return config.replace(sparse=None)
        return config if config.sparse is not None else config.replace(sparse=SparseConfig())

    @classmethod
    def missing(cls, method: str, where: Any) -> str:
        return (f"search: method {method!r} needs a sparse (SPLADE) model, and {where} has none; "
                "create the collection with CollectionConfig(sparse=SparseConfig()) or --splade")

    # -- the model -----------------------------------------------------------------------------------
    @property
    def encoder(self) -> Any:
        """The SPLADE encoder of ``config.sparse`` (loaded on first use; vectors cached by content)."""
        if self._encoder is None:
            from retrievo._paths import cache_root
            from retrievo.encoders.sparse import SparseVectorCache, SpladeEncoder

            c = self.host.config.sparse
            self._encoder = SpladeEncoder(c.model, backend=c.backend, max_length=c.max_length,
                                          batch_size=c.batch_size, doc_top_n=c.doc_top_n,
                                          cache=SparseVectorCache(cache_root() / "sparse.sqlite"))
        return self._encoder

    @encoder.setter
    def encoder(self, encoder: Any) -> None:
        self._encoder = encoder

    def share_from(self, other: Signal) -> None:
        if isinstance(other, SpladeSignal):
            self._encoder = other.encoder

    # -- commit --------------------------------------------------------------------------------------
    def encode(self, batch: EncodeBatch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        texts = [d.content(("title", "text")) for d in batch.docs]
        csr = self.encoder.encode_documents(texts, show_progress=batch.show_progress)
        if csr.nnz and (not np.isfinite(csr.data).all() or (csr.data < 0).any()):
            raise InvalidInputError("the sparse encoder returned negative, NaN or inf weights; nothing was committed")
        stored = next((s.data.meta.get("sparse_vocab") for s in batch.snapshot.segments
                       if s.data.has(self.layouts[0])), None)
        if stored is not None and csr.shape[1] != stored:
            raise InvalidInputError(
                f"sparse vectors have a vocabulary of {csr.shape[1]} terms but the collection's hold {stored}: "
                "the sparse encoder does not match the one the collection was built with"
            )
        return csr_arrays(csr), {"sparse_vocab": int(csr.shape[1])}

    def write_derived(self, seg_dir: Path, data: SegmentData) -> None:
        cfg = self.host.config.sparse
        if not data.has(self.layouts[0]):
            return
        self._segment_index(seg_dir, data, None)
        if cfg.mode == "approx":  # the default mode's structures are ready at commit
            self._segment_index(seg_dir, data, cfg)

    def _segment_index(self, seg_dir: Path, data: SegmentData, approx: SparseConfig | None) -> Any:
        """One segment's sparse index — exact postings, or (``approx``) Seismic structures with those
        parameters — read memory-mapped from the segment's folder, or built over all its rows and kept there
        (segments are immutable; deleted rows are masked at search time)."""
        from retrievo.indexes.sparse import SeismicParams, SparseIndex

        if approx is None:
            folder, params = seg_dir / "sparse_exact", None
        else:
            params = SeismicParams(n_postings=approx.n_postings, centroid_fraction=approx.centroid_fraction,
                                   summary_energy=approx.summary_energy)
            folder = seg_dir / (f"sparse_approx_l{params.n_postings}_b{params.centroid_fraction:g}"
                                f"_a{params.summary_energy:g}")
        if (folder / "meta.json").exists():  # written last: a crash mid-save leaves no meta.json
            return SparseIndex.load(folder)
        index = SparseIndex(segment_csr(data), None, exact=params is None, approx=params or False)
        if not self.host.readonly:
            index.save(folder)
        return index

    # -- load ----------------------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> Any:
        from retrievo.indexes.sparse import SegmentedSparseIndex

        if not all(s.data.has(self.layouts[0]) for s in snapshot.segments):
            return None
        return SegmentedSparseIndex([(snapshot.offsets[s.seg], self._segment_index(s.path, s.data, None))
                                     for s in snapshot.segments], snapshot.live)

    def index(self, snapshot: Snapshot, mode: str = "exact") -> Any:
        """The generation's SPLADE index (the approximate one is built on first use)."""
        exact = snapshot.signals.get("splade")
        if exact is None:
            raise InvalidInputError(f"{self.host.path}: no sparse vectors are stored; create the collection with a "
                                    "SPLADE model")
        if mode == "exact":
            return exact
        from retrievo.indexes.sparse import SegmentedSparseIndex

        cfg = self.host.config.sparse
        key = ("splade", "seismic", cfg.n_postings, cfg.centroid_fraction, cfg.summary_energy)
        idx = snapshot.derived.get(key)
        if idx is None:
            idx = snapshot.derived[key] = SegmentedSparseIndex(
                [(snapshot.offsets[s.seg], self._segment_index(s.path, s.data, cfg)) for s in snapshot.segments],
                snapshot.live)
        return idx

    # -- search --------------------------------------------------------------------------------------
    def search(self, ctx: SearchContext, depth: int) -> Candidates:
        exact = ctx.snapshot.signals.get("splade")
        if exact is None:
            raise InvalidInputError(f"{self.host.path}: no sparse vectors are stored; create the collection with a "
                                    "SPLADE model")
        cfg = ctx.request.sparse
        qv = prepared(ctx, self, lambda: self.encoder.encode_queries(ctx.queries))
        if qv.shape[1] != exact.vocab_size:
            raise InvalidInputError(
                f"the query encoder's vocabulary has {qv.shape[1]} terms but the collection's sparse vectors "
                f"use {exact.vocab_size}: the sparse encoder does not match the collection's"
            )
        idx = self.index(ctx.snapshot, cfg.mode)
        if cfg.mode == "approx":
            return Candidates.of(idx.search(qv, depth, ctx.allowed, mode="approx", query_cut=cfg.query_cut,
                                            heap_factor=cfg.heap_factor))
        return Candidates.of(idx.search(qv, depth, ctx.allowed, mode="exact"))

    @staticmethod
    def absent_info(config: CollectionConfig) -> dict[str, Any]:
        return {"sparse_model": None, "sparse_vocabulary": None, "sparse_nnz_per_doc": None,
                "sparse_index_bytes_in_ram": 0}

    def info(self, snapshot: Snapshot) -> dict[str, Any]:
        exact = snapshot.signals.get("splade")
        if exact is None:
            return {**self.absent_info(self.host.config), "sparse_model": self.host.config.sparse.model}
        nnz = sum(len(s.data.sp_terms) for s in snapshot.segments)
        return {"sparse_model": self.host.config.sparse.model, "sparse_vocabulary": exact.vocab_size,
                "sparse_nnz_per_doc": round(nnz / snapshot.n_rows, 1) if snapshot.n_rows else None,
                "sparse_index_bytes_in_ram": int(exact.nbytes)}
