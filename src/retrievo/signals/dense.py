"""The dense signal: one embedding per document, searched through the collection's dense index.

At commit, documents are encoded by the collection's sentence-embedding model (or take vectors a caller
supplied), looked up by content in the shared embedding cache first; the configured index's per-segment
structure (faiss HNSW/IVF, int8 or binary codes) is built beside each new segment. A generation's
:class:`~retrievo.indexes.flat.FlatIndex` reads the memory-mapped vectors; compressed and approximate
indexes are opened (or built) on first use. Queries may be moved by the query adapter
(:mod:`retrievo.search.adapters`) and by Rocchio feedback (:mod:`retrievo.search.prf`), and be encoded by a
newer model and mapped into the stored vectors' space (:mod:`retrievo.search.query_maps`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retrievo.config import CollectionConfig, DenseIndexConfig, PRFConfig
from retrievo.errors import ConfigError, InvalidInputError
from retrievo.indexes.flat import FlatIndex
from retrievo.signals.base import Candidates, EncodeBatch, SearchContext, Signal, prepared
from retrievo.store.segments import Layout, SegmentData
from retrievo.store.snapshot import Snapshot

__all__ = ["DenseSignal", "build_derived", "vector_index"]

ANN_KINDS = ("hnsw", "ivf", "ivfpq")
CODE_KINDS = ("int8", "binary")


class DenseSignal(Signal):
    """Dense retrieval with the collection's sentence-embedding model (``CollectionConfig.dense``)."""

    name = "dense"
    layouts = (Layout("rows", ("dense",)),)
    takes_query_vectors = True

    def __init__(self, host: Any, encoder: Any = None) -> None:
        super().__init__(host)
        self._encoder = encoder
        self._cache: Any = None

    @classmethod
    def enabled(cls, config: CollectionConfig) -> bool:
        return config.dense is not None

    @classmethod
    def configure(cls, config: CollectionConfig, use: bool) -> CollectionConfig:
        return config if use else config.replace(dense=None)

    @classmethod
    def missing(cls, method: str, where: Any) -> str:
        return f"search: method {method!r} needs a dense model, and {where} has none"

    # -- the model -----------------------------------------------------------------------------------
    @property
    def encoder(self) -> Any:
        """The collection's :class:`~retrievo.encoders.dense.DenseEncoder` (loaded on first use)."""
        if self._encoder is None:
            from retrievo.encoders.dense import DenseEncoder

            self._encoder = DenseEncoder(self.host.config.dense)
        return self._encoder

    @encoder.setter
    def encoder(self, encoder: Any) -> None:
        self._encoder = encoder

    def share_from(self, other: Signal) -> None:
        if isinstance(other, DenseSignal) and other._encoder is not None:
            self._encoder = other._encoder

    def embedding_cache(self) -> Any:
        """The shared content-addressed embedding cache (texts already encoded by a model are not encoded again)."""
        if self._cache is None:
            from retrievo._paths import cache_root
            from retrievo.encoders.cache import EmbeddingCache

            self._cache = EmbeddingCache(cache_root() / "embeddings.sqlite")
        return self._cache

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def dim(self, snapshot: Snapshot, supplied: dict[str, np.ndarray] | None = None) -> int | None:
        """The dimension vectors must have: the stored one, else a supplied one, else the loaded model's
        (``None`` while nothing fixes it)."""
        flat = snapshot.signals.get("dense")
        if flat is not None and flat.dim:
            return int(flat.dim)
        for v in (supplied or {}).values():
            return int(v.shape[0])
        if self._encoder is None:
            return None
        try:
            return int(self._encoder.dim)
        except ConfigError:  # a model that cannot load here: only supplied vectors, any dimension so far
            return None

    def check_vectors(self, vectors: Any, ids: list[str], where: str, dim: int | None) -> np.ndarray:
        """Caller-supplied vectors for documents ``ids``: shape, dimension, finite values."""
        try:
            arr = np.array(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: vectors must be a numeric (n, dim) array: {exc}") from exc
        if arr.ndim != 2 or arr.shape[0] != len(ids) or arr.shape[1] == 0:
            raise InvalidInputError(
                f"{where}: vectors must have shape ({len(ids)}, dim), one row per document; got {arr.shape}")
        if dim is not None and arr.shape[1] != dim:
            raise InvalidInputError(f"{where}: vectors have dimension {arr.shape[1]} but the collection's have {dim}")
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(f"{where}: vectors[{i}] (document {ids[i]!r}) has a NaN or infinite value")
        return arr

    def check_query_vectors(self, query_vectors: Any, nq: int, snapshot: Snapshot) -> np.ndarray:
        try:
            qv = np.array(query_vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"search: query_vectors must be a numeric (n, dim) array: {exc}") from exc
        if qv.ndim == 1:
            qv = qv[None, :]
        flat = snapshot.signals.get("dense")
        dim = flat.dim if flat is not None else None
        if qv.ndim != 2 or qv.shape[0] != nq or (dim is not None and qv.shape[1] != dim):
            raise InvalidInputError(
                f"search: query_vectors must have shape ({nq}, {dim if dim is not None else 'dim'}), got {qv.shape}")
        bad = ~np.isfinite(qv).all(axis=1)
        if bad.any():
            raise InvalidInputError(f"search: query_vectors[{int(np.flatnonzero(bad)[0])}] has a NaN or infinite value")
        return qv

    # -- commit --------------------------------------------------------------------------------------
    def encode(self, batch: EncodeBatch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from retrievo.encoders.cache import encode_with_cache

        docs = batch.docs
        given_map = batch.supplied.get("dense", {})
        todo = [i for i, d in enumerate(docs) if d.id not in given_map]
        given = [i for i, d in enumerate(docs) if d.id in given_map]
        encoded = None
        if todo:  # documents without supplied vectors are encoded (the model loads only then)
            texts = [docs[i].content(self.host.config.dense.fields) for i in todo]
            encoded = encode_with_cache(self.encoder, texts, self.embedding_cache(), show_progress=batch.show_progress)
        if not given:
            dense = encoded
        else:
            dim = len(given_map[docs[given[0]].id])
            if encoded is not None and encoded.shape[1] != dim:
                raise InvalidInputError(
                    f"commit: supplied vectors have dimension {dim} but the encoder's have {encoded.shape[1]}")
            dense = np.empty((len(docs), dim), dtype=np.float32)
            dense[given] = np.stack([given_map[docs[i].id] for i in given])
            if encoded is not None:
                dense[todo] = encoded
        assert dense is not None
        if not np.isfinite(dense).all():
            raise InvalidInputError("the dense encoder returned NaN or inf vectors; nothing was committed")
        flat = batch.snapshot.signals.get("dense")
        if flat is not None and flat.dim and dense.shape[1] != flat.dim:
            raise InvalidInputError(
                f"dense vectors have dimension {dense.shape[1]} but the collection holds {flat.dim}")
        return {"dense": dense}, {"dim": int(dense.shape[1])}

    def write_derived(self, seg_dir: Any, data: SegmentData) -> None:
        """Build the configured dense index (ANN structure or codes) of a new segment before it is committed."""
        build_derived(seg_dir, data.get("dense"), self.host.config.index)

    # -- load ----------------------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> FlatIndex | None:
        if not all(s.data.get("dense") is not None for s in snapshot.segments):
            return None
        return FlatIndex([(snapshot.offsets[s.seg], s.data.dense) for s in snapshot.segments], snapshot.live)

    def index(self, snapshot: Snapshot, cfg: DenseIndexConfig | None = None) -> Any:
        """The generation's dense index for ``cfg`` (default: the collection's); compressed and approximate
        ones are read from their segments or built there on first use (segments are immutable)."""
        flat = snapshot.signals.get("dense")
        if flat is None:
            raise InvalidInputError(f"{self.host.path}: no dense vectors are stored; re-index with a dense model")
        return vector_index(snapshot, flat, cfg or self.host.config.index, "dense", readonly=self.host.readonly)

    # -- search --------------------------------------------------------------------------------------
    def prepare(self, ctx: SearchContext) -> None:
        if ctx.request.adapter:
            ctx.scratch[("dense", "adapter")] = ctx.artefacts.query_adapter()
        if ctx.request.query_map:
            if ctx.query_vectors is not None:
                raise InvalidInputError("search: query_map encodes the queries itself; do not pass query_vectors")
            ctx.scratch[("dense", "query_map")] = ctx.artefacts.query_map()

    def query_vectors(self, ctx: SearchContext) -> np.ndarray:
        """The queries' vectors: the caller's, or encoded (by the query map's newer model and mapped, when asked),
        then moved by the query adapter when asked."""
        def make() -> np.ndarray:
            qmap = ctx.scratch.get(("dense", "query_map"))
            if ctx.query_vectors is not None:
                qv = ctx.query_vectors
            else:
                qv = qmap.encode_queries(ctx.queries) if qmap is not None else self.encoder.encode_queries(ctx.queries)
            adapter = ctx.scratch.get(("dense", "adapter"))
            return adapter.apply(qv) if adapter is not None else qv

        return prepared(ctx, self, make)

    def search(self, ctx: SearchContext, depth: int) -> Candidates:
        idx = self.index(ctx.snapshot, ctx.request.index)
        return Candidates.of(idx.search(self.query_vectors(ctx), depth, ctx.allowed))

    def feedback_depth(self, prf: PRFConfig) -> int:
        return prf.dense_fb_docs

    def feedback(self, ctx: SearchContext, first: Candidates, depth: int, prf: PRFConfig) -> Candidates:
        """Rocchio: each query vector moved towards the mean of its first results' stored vectors."""
        from retrievo.search.prf import rocchio

        flat = ctx.snapshot.signals["dense"]
        fb = [flat.gather(first.rows[i, :first.counts[i]]) for i in range(len(first))]
        qv = rocchio(self.query_vectors(ctx), fb, prf.alpha, prf.beta)
        idx = self.index(ctx.snapshot, ctx.request.index)
        return Candidates.of(idx.search(qv, depth, ctx.allowed))

    # -- planning and reporting ----------------------------------------------------------------------
    def plan(self, snapshot: Snapshot, budget_bytes: int, sample_docs: int = 20_000) -> tuple[Any, list[Any], int]:
        """The dense index that fits ``budget_bytes`` of RAM (see :mod:`retrievo.indexes.budget`), measured
        on up to ``sample_docs`` stored vectors: ``(chosen or None, every candidate, vectors measured)``."""
        from retrievo.indexes.budget import plan_dense_index

        flat = snapshot.signals.get("dense")
        if flat is None:
            raise InvalidInputError(f"{self.host.path}: no dense vectors are stored; nothing to plan")
        rows = np.flatnonzero(snapshot.live)
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(rows, min(sample_docs, len(rows)), replace=False))
        chosen, plans = plan_dense_index(flat.gather(pick), len(rows), budget_bytes)
        return chosen, plans, len(pick)

    @staticmethod
    def absent_info(config: CollectionConfig) -> dict[str, Any]:
        return {"dense_model": None, "dense_dim": None, "dense_bytes_on_disk_mmap": 0,
                "dense_index": config.index.to_dict(), "dense_index_bytes_in_ram": 0}

    def info(self, snapshot: Snapshot) -> dict[str, Any]:
        flat = snapshot.signals.get("dense")
        cfg = self.host.config
        return {"dense_model": cfg.dense.model, "dense_dim": None if flat is None else flat.dim,
                "dense_bytes_on_disk_mmap": 0 if flat is None else flat.nbytes, "dense_index": cfg.index.to_dict(),
                "dense_index_bytes_in_ram": 0 if flat is None or cfg.index.kind == "flat"
                else self.index(snapshot).nbytes}


def vector_index(snapshot: Snapshot, flat: FlatIndex, cfg: DenseIndexConfig, array: str, folder: str = "",
                 readonly: bool = False) -> Any:
    """The index of kind ``cfg.kind`` over the per-row vectors ``array`` of a generation (``flat``: its exact
    index). Codes and ANN structures are read from each segment (under ``folder`` when given, so two signals'
    files never meet) or built there on first use and kept (segments are immutable), once per generation."""
    from retrievo.indexes.quantized import BinaryIndex, Int8Index, RescoringIndex

    if cfg.kind == "flat":
        return flat
    if cfg.kind in ANN_KINDS:
        return _ann_index(snapshot, flat, cfg, array, folder, readonly)
    coarse = snapshot.derived.get((array, cfg.kind))
    if coarse is None:
        cls = Int8Index if cfg.kind == "int8" else BinaryIndex
        blocks = []
        for seg in snapshot.segments:
            vectors = seg.data.get(array)
            if vectors is None:
                continue
            where = seg.path / folder if folder else seg.path
            if all((where / f).exists() for f in cls.codes_class.FILES):
                codes = cls.codes_class.load(where)
            else:  # encoded once per segment and kept with it (segments are immutable)
                codes = cls.codes_class.encode(vectors)
                if not readonly:
                    where.mkdir(exist_ok=True)
                    codes.save(where)
            blocks.append((snapshot.offsets[seg.seg], codes))
        coarse = snapshot.derived[(array, cfg.kind)] = cls.from_codes(blocks, snapshot.live, flat.dim)
    return RescoringIndex(coarse, flat, cfg.rescore_multiplier)


def _ann_index(snapshot: Snapshot, flat: FlatIndex, cfg: DenseIndexConfig, array: str, folder: str,
               readonly: bool) -> Any:
    from retrievo.indexes.ann import AnnIndex, build_segment_index, index_filename, load_segment_index

    name = index_filename(cfg)
    segs = snapshot.derived.get((array, name))
    if segs is None:
        segs = []
        for seg in snapshot.segments:
            where = seg.path / folder if folder else seg.path
            path = where / name
            if path.exists():
                index = load_segment_index(path)
            else:  # built once per segment and kept with it (segments are immutable)
                if not readonly:
                    where.mkdir(exist_ok=True)
                index = build_segment_index(seg.data.get(array), cfg, None if readonly else path)
            segs.append((snapshot.offsets[seg.seg], index, seg.n_rows))
        snapshot.derived[(array, name)] = segs
    key = (array, "searcher", cfg)  # one searcher per generation and search parameters (caches live counts)
    if key not in snapshot.derived:
        snapshot.derived[key] = AnnIndex(segs, flat, snapshot.live, cfg)
    return snapshot.derived[key]


def build_derived(seg_dir: Any, vectors: np.ndarray | None, cfg: DenseIndexConfig, folder: str = "") -> None:
    """Build the index structure of ``cfg`` (ANN graph or codes) over a new segment's ``vectors``."""
    if vectors is None:
        return
    where = seg_dir / folder if folder else seg_dir
    if cfg.kind in ANN_KINDS:
        from retrievo.indexes.ann import build_segment_index, index_filename

        where.mkdir(exist_ok=True)
        build_segment_index(vectors, cfg, where / index_filename(cfg))
    elif cfg.kind in CODE_KINDS:
        from retrievo.indexes.quantized import BinaryCodes, Int8Codes

        where.mkdir(exist_ok=True)
        (Int8Codes if cfg.kind == "int8" else BinaryCodes).encode(vectors).save(where)
