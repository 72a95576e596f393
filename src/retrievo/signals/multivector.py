"""The multi-vector signal: token vectors per document, searched by exact late interaction (MaxSim) or through
MUVERA fixed-dimensional encodings (FDEs) and a dense index, then rescored exactly.

A collection computes it when its config names it: ``CollectionConfig(signals={"multivector": {...}})`` with
the fields of :class:`~retrievo.config.MultiVectorConfig` (the manifest keeps them all written out, FDE seed
included). At commit each document's token vectors (:mod:`retrievo.encoders.tokens`, cached by content) are
stored in the segment as float16 in a CSR layout (``mv_indptr``, ``mv_tokens``), and with ``fde`` set, each
document's FDE (``mv_fde``, float32) beside them; the configured FDE index (codes or an ANN graph) is built
into the segment's ``mv_fde/`` folder. Merges carry both arrays like any other signal's, so they stay
consistent with a fresh build.

Search (``method="multivector"``, alone or fused with ``+``):

* exact (default): MaxSim of the query's tokens with every live, allowed document
  (:class:`~retrievo.indexes.maxsim.MaxSimIndex`);
* ``fde=True``: the query's FDE searched in the FDE index (flat, int8, binary, HNSW, IVF — any dense index
  kind, filters and deletions as for dense), and its top ``fde_candidates`` (at least the results asked for)
  rescored by exact MaxSim; in a fused search this signal's list ends there, whatever the fusion depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievo.config import CollectionConfig, MultiVectorConfig
from retrievo.errors import InvalidInputError
from retrievo.request import MULTIVECTOR_OPTIONS
from retrievo.signals.base import Candidates, EncodeBatch, SearchContext, Signal, prepared
from retrievo.store.segments import Layout, SegmentData
from retrievo.store.snapshot import Snapshot

__all__ = ["MultiVectorSignal", "MultiVectorState"]

TOKENS = Layout("csr", ("mv_indptr", "mv_tokens"))
FDES = Layout("rows", ("mv_fde",))
FDE_FOLDER = "mv_fde"
CENTROIDS_FILE = "mv_fde_centroids.npy"  # the FDEs' sampled partitions (partitions="sampled")


@dataclass
class MultiVectorState:
    """A generation's multi-vector structures: exact MaxSim over the token vectors, and the flat index over
    the FDEs (``None`` without them)."""

    maxsim: Any
    fde_flat: Any


class MultiVectorSignal(Signal):
    """Late interaction over token vectors (see the module docstring)."""

    name = "multivector"
    options = MULTIVECTOR_OPTIONS

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        settings = dict(self.settings)
        if isinstance(settings.get("fde"), dict) and "partitions" not in settings["fde"]:
            # a manifest written before FDEConfig.partitions existed: its FDEs are SimHash's (now not the default)
            settings["fde"] = {**settings["fde"], "partitions": "simhash"}
        self.config = MultiVectorConfig.from_dict(settings)
        self.layouts = (TOKENS, FDES) if self.config.fde is not None else (TOKENS,)
        self._encoder: Any = None
        self._cache: Any = None
        self._fde: Any = None

    @classmethod
    def complete(cls, config: CollectionConfig) -> CollectionConfig:
        settings = MultiVectorConfig.from_dict(dict(config.signals.get(cls.name, {}))).to_dict()
        return config.replace(signals={**config.signals, cls.name: settings})

    @classmethod
    def missing(cls, method: str, where: Any) -> str:
        return (f"search: method {method!r} needs token vectors, and {where} has none; create the collection "
                "with CollectionConfig(signals={'multivector': {}}) or --multivector")

    # -- the model -----------------------------------------------------------------------------------
    @property
    def encoder(self) -> Any:
        """The collection's :class:`~retrievo.encoders.tokens.TokenEncoder` (loaded on first use)."""
        if self._encoder is None:
            from retrievo.encoders.tokens import TokenEncoder

            self._encoder = TokenEncoder(self.config)
        return self._encoder

    def share_from(self, other: Signal) -> None:
        if isinstance(other, MultiVectorSignal) and other._encoder is not None and other.config == self.config:
            self._encoder = other._encoder

    def token_cache(self) -> Any:
        if self._cache is None:
            from retrievo._paths import cache_root
            from retrievo.encoders.tokens import TokenCache

            self._cache = TokenCache(cache_root() / "tokens.sqlite")
        return self._cache

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def fde_encoder(self, dim: int, fit_on: np.ndarray | None = None) -> Any:
        """The collection's FDE encoder for tokens of dimension ``dim`` (its random matrices drawn once; sampled
        partitions read from the collection, or drawn from ``fit_on`` — the tokens of the first documents
        committed — when there are none yet)."""
        if self.config.fde is None:
            raise InvalidInputError(f"{self.host.path}: this collection keeps no MUVERA encodings (its multivector "
                                    "settings have fde=None); search without fde")
        if self._fde is None or self._fde.dim != dim:
            from retrievo.indexes.muvera import FixedDimensionalEncoder

            centroids = self._centroids(dim, fit_on) if self.config.fde.partitions == "sampled" else None
            self._fde = FixedDimensionalEncoder(dim, self.config.fde, centroids)
        return self._fde

    def _centroids(self, dim: int, fit_on: np.ndarray | None) -> np.ndarray:
        """The sampled partitions of the FDEs, in :data:`CENTROIDS_FILE` beside the collection: written once,
        before the first segment that uses them is committed, and never changed (every segment's FDEs, and every
        query's, use the same cells; a backup copies the file with the collection)."""
        from retrievo._io import save_npy
        from retrievo.indexes.muvera import sample_centroids

        cfg, path = self.config.fde, self.host.path / CENTROIDS_FILE
        want = (cfg.repetitions, 1 << cfg.simhash, dim)
        if path.exists():
            centroids = np.load(path, allow_pickle=False)
            if centroids.shape != want:
                raise InvalidInputError(f"{path}: FDE centroids shaped {centroids.shape}, the collection's settings "
                                        f"need {want}")
            return centroids
        if fit_on is None or not len(fit_on) or self.host.readonly:
            raise InvalidInputError(f"{self.host.path}: the FDE partitions are drawn from the first documents "
                                    f"committed, and there are none yet ({CENTROIDS_FILE})")
        centroids = sample_centroids(fit_on, cfg)
        save_npy(path, centroids)
        return centroids

    # -- commit --------------------------------------------------------------------------------------
    def encode(self, batch: EncodeBatch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from retrievo.encoders.tokens import encode_documents_cached

        texts = [d.content(("title", "text")) for d in batch.docs]
        sets = encode_documents_cached(self.encoder, texts, self.token_cache(), show_progress=batch.show_progress)
        dim = int(self.encoder.dim)
        stored = batch.snapshot.signals.get(self.name)
        if stored is not None and stored.maxsim.dim and stored.maxsim.dim != dim:
            raise InvalidInputError(f"token vectors have dimension {dim} but the collection holds {stored.maxsim.dim}")
        indptr = np.zeros(len(sets) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in sets], out=indptr[1:])
        tokens = (np.concatenate(sets).astype(np.float16, copy=False) if indptr[-1]
                  else np.zeros((0, dim), dtype=np.float16))
        if not np.isfinite(tokens).all():
            raise InvalidInputError("the token encoder returned NaN or inf vectors; nothing was committed")
        arrays = {"mv_indptr": indptr, "mv_tokens": tokens}
        if self.config.fde is not None:
            fde = self.config.fde
            if len(tokens) or fde.partitions != "sampled" or (self.host.path / CENTROIDS_FILE).exists():
                arrays["mv_fde"] = self.fde_encoder(dim, fit_on=tokens).documents(indptr, tokens)
            else:  # not one token yet: nothing to draw partitions from, and every encoding is zero
                arrays["mv_fde"] = np.zeros((len(sets), fde.out_dim(dim)), dtype=np.float32)
        return arrays, {"mv_dim": dim}

    def write_derived(self, seg_dir: Path, data: SegmentData) -> None:
        if self.config.storage != "float16" and data.get("mv_tokens") is not None:
            from retrievo.indexes.maxsim import TokenCodes

            TokenCodes.encode(self.config.storage, data.mv_tokens).save(seg_dir)
        if self.config.fde is not None:
            from retrievo.signals.dense import build_derived

            build_derived(seg_dir, data.get("mv_fde"), self.config.fde_index, folder=FDE_FOLDER)

    # -- load ----------------------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> MultiVectorState | None:
        from retrievo.indexes.flat import FlatIndex
        from retrievo.indexes.maxsim import MaxSimIndex

        segs = snapshot.segments
        if not all(s.data.has(TOKENS) for s in segs):
            return None
        scan = None
        if self.config.storage != "float16":
            scan = [self._codes(s) for s in segs]
        maxsim = MaxSimIndex([(snapshot.offsets[s.seg], s.data.mv_indptr, s.data.mv_tokens) for s in segs],
                             snapshot.live, scan, self.config.rescore_multiplier)
        fde_flat = None
        if self.config.fde is not None and all(s.data.get("mv_fde") is not None for s in segs):
            fde_flat = FlatIndex([(snapshot.offsets[s.seg], s.data.mv_fde) for s in segs], snapshot.live)
        return MultiVectorState(maxsim, fde_flat)

    def _codes(self, seg: Any) -> Any:
        """A segment's compressed tokens for the full scan: read from its folder, or made there on first use
        (a segment written before ``storage`` was set; segments are immutable)."""
        from retrievo.indexes.maxsim import TokenCodes

        kind, tokens = self.config.storage, seg.data.mv_tokens
        codes = TokenCodes.load(kind, seg.path, tokens.shape[1])
        if codes is None:
            codes = TokenCodes.encode(kind, tokens)
            if not self.host.readonly:
                codes.save(seg.path)
        return codes

    def state(self, snapshot: Snapshot) -> MultiVectorState:
        st = snapshot.signals.get(self.name)
        if st is None:
            raise InvalidInputError(f"{self.host.path}: no token vectors are stored; re-index with the multivector "
                                    "signal on")
        return st

    def fde_index(self, snapshot: Snapshot, kind: str | None = None) -> Any:
        """The generation's index over the FDEs (the collection's kind, or ``kind``)."""
        from retrievo.signals.dense import vector_index

        st = self.state(snapshot)
        if st.fde_flat is None:
            self.fde_encoder(st.maxsim.dim)  # raises: no FDEs configured
            raise InvalidInputError(f"{self.host.path}: some segments hold no MUVERA encodings; re-index")
        cfg = self.config.fde_index if kind is None else self.config.fde_index.replace(kind=kind)
        return vector_index(snapshot, st.fde_flat, cfg, "mv_fde", FDE_FOLDER, readonly=self.host.readonly)

    # -- search --------------------------------------------------------------------------------------
    def prepare(self, ctx: SearchContext) -> None:
        if ctx.request.options.get("fde") and self.config.fde is None:
            self.fde_encoder(0)  # no encodings configured: refused before any retrieval
        if ctx.snapshot.segments:
            self.state(ctx.snapshot)  # segments without token vectors: refused too

    def query_tokens(self, ctx: SearchContext) -> list[np.ndarray]:
        """The queries' token vectors (encoded once per search)."""
        return prepared(ctx, self, lambda: self.encoder.encode_queries(ctx.queries))

    def search(self, ctx: SearchContext, depth: int) -> Candidates:
        st = self.state(ctx.snapshot)
        queries = self.query_tokens(ctx)
        opts = ctx.request.options
        if not opts.get("fde"):
            return Candidates.of(st.maxsim.search(queries, depth, ctx.allowed))
        # the top fde_candidates are rescored (more when the results asked for are more); a fused search's
        # deeper list is cut there too, rather than rescoring its whole depth
        n = max(ctx.request.width(), int(opts.get("fde_candidates") or self.config.fde_candidates))
        depth = min(depth, n)
        q_ptr = np.zeros(len(queries) + 1, dtype=np.int64)
        np.cumsum([len(q) for q in queries], out=q_ptr[1:])
        q_tok = np.concatenate(queries) if queries else np.zeros((0, st.maxsim.dim), np.float32)
        q_fde = self.fde_encoder(st.maxsim.dim).queries(q_ptr, q_tok)
        first = Candidates.of(self.fde_index(ctx.snapshot, opts.get("fde_index")).search(q_fde, n, ctx.allowed))
        return self.rescore(st, queries, first, depth)

    @staticmethod
    def rescore(st: MultiVectorState, queries: list[np.ndarray], first: Candidates, depth: int) -> Candidates:
        """``first``'s rows of each query ordered by exact MaxSim, the best ``depth`` kept."""
        rows = [first.rows[i, :first.counts[i]] for i in range(len(first))]
        scores = st.maxsim.score(queries, rows)
        out = Candidates.empty(len(first), depth)
        for i, (r, s) in enumerate(zip(rows, scores, strict=True)):
            order = np.lexsort((r, -s))[:depth]
            out.rows[i, :len(order)] = r[order]
            out.scores[i, :len(order)] = s[order]
            out.counts[i] = len(order)
        return out

    # -- reporting -----------------------------------------------------------------------------------
    @staticmethod
    def absent_info(config: CollectionConfig) -> dict[str, Any]:
        return {"multivector_model": None, "multivector_dim": None, "multivector_tokens_per_doc": None,
                "multivector_bytes_on_disk_mmap": 0, "multivector_scan_bytes": 0, "fde_dim": None}

    def info(self, snapshot: Snapshot) -> dict[str, Any]:
        st = snapshot.signals.get(self.name)
        out = {**self.absent_info(self.host.config), "multivector_model": self.config.model}
        if st is None:
            return out
        n_rows = max(snapshot.n_rows, 1)
        out.update(multivector_dim=st.maxsim.dim, multivector_tokens_per_doc=round(st.maxsim.n_tokens / n_rows, 1),
                   multivector_bytes_on_disk_mmap=int(st.maxsim.nbytes + (st.fde_flat.nbytes if st.fde_flat else 0)),
                   multivector_scan_bytes=int(st.maxsim.scan_nbytes),
                   fde_dim=None if st.fde_flat is None else st.fde_flat.dim)
        return out

