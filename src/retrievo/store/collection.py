"""A collection: the embedded on-disk store that every retrieval method searches.

Layout of a collection folder::

    manifest.json          format version, package version, the CollectionConfig (never pickle)
    collection.sqlite      documents, metadata, vocabulary, segment list (WAL; the commit point)
    segments/seg_*/        immutable .npy arrays (term frequencies, lengths, dense vectors), memory-mapped
    write.lock             held (flock) by the one process that writes

Writes follow Lucene's model: ``add``/``upsert``/``delete`` are buffered; ``commit`` writes the buffered
documents as a new immutable segment, then one SQLite transaction publishes the segment, replaces or
removes older versions (their rows become tombstones) and bumps the generation. Segments with many
tombstones, or too many small segments, are merged on commit; ``compact`` merges everything. A process
killed at any point leaves the collection at its last commit.

Dense vectors are looked up by content in a shared cache (``$RETRIEVO_CACHE_DIR/embeddings.sqlite``)
before encoding, so text that any collection already encoded with the same model is never encoded again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import write_json
from retrievo._paths import cache_root
from retrievo._version import __version__
from retrievo.analysis.analyzer import Analyzer
from retrievo.config import CollectionConfig, DenseIndexConfig, FusionConfig, PRFConfig, SparseConfig
from retrievo.encoders.cache import EmbeddingCache, encode_with_cache
from retrievo.errors import (
    CollectionExistsError,
    ConfigError,
    DuplicateIdError,
    FormatVersionError,
    InvalidInputError,
    NotFoundError,
    RetrievoError,
)
from retrievo.indexes.filters import compile_filter, parse_filter
from retrievo.indexes.flat import FlatIndex
from retrievo.indexes.inverted import InvertedIndex, term_frequencies
from retrievo.search.fusion import fuse
from retrievo.store.segments import Segment, SegmentData, segment_dirname, write_segment
from retrievo.store.sqlite import DocStore, value_kind
from retrievo.types import Document, SearchResults

__all__ = ["Collection", "FORMAT_VERSION", "METHODS", "SIGNALS", "method_signals"]

FORMAT_VERSION = 1
SIGNALS = ("bm25", "dense", "splade")
#: single signals, ``hybrid`` (= ``bm25+dense``) and any ``+``-joined set of signals, e.g. ``bm25+dense+splade``
METHODS = ("bm25", "dense", "splade", "hybrid", "bm25+splade", "dense+splade", "bm25+dense+splade")


def method_signals(method: str) -> tuple[str, ...]:
    """The signals a search method fuses: ``"hybrid"`` → ``("bm25", "dense")``, ``"a+b"`` → ``("a", "b")``."""
    if not isinstance(method, str):
        raise InvalidInputError(f"search: method must be a string, got {type(method).__name__}")
    parts = ("bm25", "dense") if method == "hybrid" else tuple(method.split("+"))
    bad = [p for p in parts if p not in SIGNALS]
    if bad or len(set(parts)) != len(parts):
        raise InvalidInputError(
            f"search: unknown method {method!r}; use one of {METHODS} or signals from {SIGNALS} joined by '+'"
        )
    return parts


class CollectionLockedError(RetrievoError):
    """Another process is writing to this collection."""


@dataclass
class _State:
    """What searches read: one committed generation, immutable once built."""

    generation: int
    segments: list[Segment]
    offsets: dict[int, int]
    n_rows: int
    ids: np.ndarray  # object array over global rows, "" for dead rows
    live: np.ndarray
    vocab: dict[str, int]
    inverted: InvertedIndex | None
    flat: FlatIndex | None
    sparse: Any = None  # SegmentedSparseIndex (exact postings per segment), when the collection has SPLADE
    compressed: dict[Any, Any] = field(default_factory=dict)  # derived indexes, built on first use

    @property
    def n_live(self) -> int:
        return int(self.live.sum())


def _doc_hash(doc: Document) -> str:
    h = hashlib.sha256()
    h.update(doc.title.encode("utf-8", "surrogatepass"))
    h.update(b"\x1f")
    h.update(doc.text.encode("utf-8", "surrogatepass"))
    h.update(b"\x1f")
    h.update(json.dumps(dict(doc.metadata), sort_keys=True).encode())
    return h.hexdigest()[:32]


class Collection:
    """A searchable, incrementally updatable set of documents stored in a folder.

    Use :meth:`create` or :meth:`open` rather than the constructor.
    """

    def __init__(self, path: Path, config: CollectionConfig, readonly: bool, encoder: Any = None) -> None:
        self.path = path
        self.config = config
        self.readonly = readonly
        self.store = DocStore(path / "collection.sqlite", readonly=readonly)
        self.analyzer = Analyzer(config.analyzer)
        self._encoder = encoder
        self._sparse_encoder: Any = None
        self._emb_cache: EmbeddingCache | None = None
        self._lock_fh: Any = None
        self._pending: dict[str, Document] = {}
        self._pending_deletes: set[str] = set()
        self._pending_vectors: dict[str, np.ndarray] = {}  # caller-supplied dense vectors of buffered documents
        self._learned: dict[tuple[str, ...], Any] = {}  # calibrators and the query adapter: (file mtime, object)
        self._state: _State = self._load_state()

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: CollectionConfig | None = None, encoder: Any = None) -> Collection:
        """Create an empty collection in ``path`` (which must not hold one already).

        Args:
            path: folder to create (parents are created too).
            config: components and parameters; defaults to BM25 + all-MiniLM-L6-v2.
            encoder: an already loaded dense encoder to use instead of building one from the config.
        """
        path = Path(path)
        config = config or CollectionConfig()
        if (path / "manifest.json").exists():
            raise CollectionExistsError(f"{path} already holds a collection; open it with Collection.open")
        path.mkdir(parents=True, exist_ok=True)
        (path / "segments").mkdir(exist_ok=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": config.to_dict(),
        }
        DocStore(path / "collection.sqlite").close()
        write_json(path / "manifest.json", manifest)
        return cls(path, config, readonly=False, encoder=encoder)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False, encoder: Any = None) -> Collection:
        """Open an existing collection.

        Raises:
            NotFoundError: ``path`` holds no collection.
            FormatVersionError: it was written by a newer retrievo.
        """
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.exists():
            raise NotFoundError(f"{path} is not a retrievo collection (no manifest.json); create one first")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise FormatVersionError(f"{manifest_path} is not valid JSON: {exc}") from exc
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise FormatVersionError(
                f"{path} has format version {version!r}, but this retrievo ({__version__}) reads up to "
                f"{FORMAT_VERSION}: upgrade retrievo (pip install -U retrievo) to open it"
            )
        config = CollectionConfig.from_dict(manifest.get("config"))
        return cls(path, config, readonly=readonly, encoder=encoder)

    @classmethod
    def open_or_create(cls, path: str | Path, config: CollectionConfig | None = None, encoder: Any = None) -> Collection:
        path = Path(path)
        if (path / "manifest.json").exists():
            return cls.open(path, encoder=encoder)
        return cls.create(path, config, encoder=encoder)

    def close(self) -> None:
        self.store.close()
        if self._emb_cache is not None:
            self._emb_cache.close()
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- properties --------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._state.generation

    def __len__(self) -> int:
        return self._state.n_live

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and bool(self.store.existing_ids([doc_id]))

    @property
    def has_dense(self) -> bool:
        return self.config.dense is not None

    @property
    def encoder(self) -> Any:
        if self.config.dense is None:
            raise InvalidInputError(f"{self.path}: this collection has no dense model (config.dense is None)")
        if self._encoder is None:
            from retrievo.encoders.dense import DenseEncoder

            self._encoder = DenseEncoder(self.config.dense)
        return self._encoder

    @property
    def has_sparse(self) -> bool:
        return self.config.sparse is not None

    @property
    def sparse_encoder(self) -> Any:
        """The SPLADE encoder of ``config.sparse`` (loaded on first use; vectors cached by content)."""
        if self.config.sparse is None:
            raise InvalidInputError(f"{self.path}: this collection has no sparse model (config.sparse is None)")
        if self._sparse_encoder is None:
            from retrievo.encoders.sparse import SparseVectorCache, SpladeEncoder

            c = self.config.sparse
            self._sparse_encoder = SpladeEncoder(c.model, backend=c.backend, max_length=c.max_length,
                                                 batch_size=c.batch_size, doc_top_n=c.doc_top_n,
                                                 cache=SparseVectorCache(cache_root() / "sparse.sqlite"))
        return self._sparse_encoder

    def set_sparse_encoder(self, encoder: Any) -> None:
        """Use ``encoder`` (e.g. one shared by several collections) instead of loading ``config.sparse``."""
        self._sparse_encoder = encoder

    # -- writes ------------------------------------------------------------------------------------
    def _acquire_write_lock(self) -> None:
        if self.readonly:
            raise InvalidInputError(f"{self.path} was opened read-only")
        if self._lock_fh is not None:
            return
        fh = open(self.path / "write.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            raise CollectionLockedError(f"{self.path} is being written by another process") from exc
        self._lock_fh = fh
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Remove segment folders that no commit references (left by a crash or a merge)."""
        live = {segment_dirname(s) for s, _ in self.store.segments()}
        root = self.path / "segments"
        for child in root.iterdir():
            if child.name not in live:
                shutil.rmtree(child, ignore_errors=True)

    def _validate(self, docs: Iterable[Document | Mapping[str, Any]], where: str) -> list[Document]:
        out: list[Document] = []
        seen: dict[str, int] = {}
        for i, obj in enumerate(docs):
            doc = Document.from_any(obj, where=f"{where}[{i}]")
            if doc.id in seen:
                raise DuplicateIdError(f"{where}: id {doc.id!r} appears twice in one batch (items {seen[doc.id]} and {i})")
            seen[doc.id] = i
            out.append(doc)
        return out

    def add(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any = None) -> int:
        """Buffer new documents; an id that already exists is an error (use :meth:`upsert` to replace).

        ``vectors``: optional dense vectors computed elsewhere, one row per document (``(n, dim)``); those
        documents are not encoded. Nothing changes if any document or vector is invalid. Returns the number
        buffered. Call :meth:`commit`.
        """
        batch = self._validate(docs, "add")
        vecs = None if vectors is None else self._check_vector_batch(vectors, batch, "add")
        self._acquire_write_lock()
        ids = [d.id for d in batch]
        clash = [i for i in ids if i in self._pending]
        committed = self.store.existing_ids(ids) - self._pending_deletes
        clash += sorted(committed)
        if clash:
            raise DuplicateIdError(
                f"add: {len(clash)} id(s) already exist, e.g. {clash[:3]}; use upsert to replace documents"
            )
        self._buffer(batch, vecs)
        return len(batch)

    def upsert(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any = None) -> int:
        """Buffer documents that add new ids or replace existing ones (``vectors`` as in :meth:`add`).

        Returns the number buffered.
        """
        batch = self._validate(docs, "upsert")
        vecs = None if vectors is None else self._check_vector_batch(vectors, batch, "upsert")
        self._acquire_write_lock()
        self._buffer(batch, vecs)
        for d in batch:
            self._pending_deletes.discard(d.id)
        return len(batch)

    def _buffer(self, batch: list[Document], vecs: np.ndarray | None) -> None:
        for i, d in enumerate(batch):
            self._pending[d.id] = d
            if vecs is None:
                self._pending_vectors.pop(d.id, None)
            else:
                self._pending_vectors[d.id] = vecs[i]

    def _dense_dim(self) -> int | None:
        """The dimension dense vectors must have: the stored one, else a buffered one, else the loaded encoder's."""
        if self._state.flat is not None and self._state.flat.dim:
            return self._state.flat.dim
        for v in self._pending_vectors.values():
            return int(v.shape[0])
        if self._encoder is None:
            return None
        try:
            return int(self._encoder.dim)
        except ConfigError:  # a model that cannot load here: only supplied vectors, any dimension so far
            return None

    def _check_vector_batch(self, vectors: Any, batch: list[Document], where: str) -> np.ndarray:
        """Validate caller-supplied dense vectors for ``batch``: shape, dimension, finite values."""
        if self.config.dense is None:
            raise InvalidInputError(f"{where}: vectors were given but {self.path} has no dense model configured")
        try:
            arr = np.array(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: vectors must be a numeric (n, dim) array: {exc}") from exc
        if arr.ndim != 2 or arr.shape[0] != len(batch) or arr.shape[1] == 0:
            raise InvalidInputError(
                f"{where}: vectors must have shape ({len(batch)}, dim), one row per document; got {arr.shape}")
        dim = self._dense_dim()
        if dim is not None and arr.shape[1] != dim:
            raise InvalidInputError(f"{where}: vectors have dimension {arr.shape[1]} but the collection's have {dim}")
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(f"{where}: vectors[{i}] (document {batch[i].id!r}) has a NaN or infinite value")
        return arr

    def delete(self, ids: Iterable[str]) -> int:
        """Buffer deletions; returns how many of ``ids`` exist (committed or buffered). Unknown ids are ignored."""
        ids = list(ids)
        bad = [i for i in ids if not isinstance(i, str)]
        if bad:
            raise InvalidInputError(f"delete: ids must be strings, got {bad[:3]!r}")
        self._acquire_write_lock()
        existing = self.store.existing_ids(ids)
        n = 0
        for i in dict.fromkeys(ids):
            found = i in existing or i in self._pending
            self._pending.pop(i, None)
            self._pending_vectors.pop(i, None)
            if i in existing:
                self._pending_deletes.add(i)
            n += found
        return n

    def rollback(self) -> None:
        """Drop every buffered change."""
        self._pending.clear()
        self._pending_deletes.clear()
        self._pending_vectors.clear()

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._pending_deletes)

    def _embedding_cache(self) -> EmbeddingCache:
        if self._emb_cache is None:
            self._emb_cache = EmbeddingCache(cache_root() / "embeddings.sqlite")
        return self._emb_cache

    def commit(self, show_progress: bool = False) -> int:
        """Make buffered changes durable and visible; returns the new generation."""
        if not self._pending and not self._pending_deletes:
            return self.generation
        self._acquire_write_lock()
        docs = list(self._pending.values())
        vocab = dict(self._state.vocab)
        start_vocab = len(vocab)
        seg_dir = None
        seg = int(self.store.get_meta("next_segment", "1") or 1)
        if docs:
            data = self._analyze(docs, vocab, show_progress)
            seg_dir = write_segment(self.path / "segments", seg, data)
            self._write_derived(seg_dir, data)
        new_terms = list(vocab)[start_vocab:]
        removed = set(self._pending_deletes) | {d.id for d in docs}
        kinds: dict[str, set[str]] = {}
        for d in docs:
            for key, value in d.metadata.items():
                kinds.setdefault(key, set()).add(value_kind(value))
        store = self.store
        try:
            store.begin()
            if new_terms:
                store.add_terms(start_vocab, new_terms)
            store.delete_ids(removed)
            if docs:
                store.add_segment(seg, len(docs))
                store.insert_docs([
                    (d.id, seg, row, d.title, d.text, json.dumps(dict(d.metadata), sort_keys=True), _doc_hash(d))
                    for row, d in enumerate(docs)
                ])
                store.set_meta("next_segment", str(seg + 1))
            self._drop_empty_segments()
            store.merge_fields(kinds)
            store.set_meta("generation", str(self.generation + 1))
            store.commit()
        except BaseException:
            store.rollback()
            if seg_dir is not None:
                shutil.rmtree(seg_dir, ignore_errors=True)
            raise
        self._pending.clear()
        self._pending_deletes.clear()
        self._pending_vectors.clear()
        self._collect_garbage()
        self._maybe_merge()
        self._state = self._load_state()
        return self.generation

    def _write_derived(self, seg_dir: Path, data: SegmentData) -> None:
        """Build the configured dense index (ANN structure or codes) of a new segment before it is committed."""
        cfg = self.config.index
        if data.dense is not None and cfg.kind in ("hnsw", "ivf", "ivfpq"):
            from retrievo.indexes.ann import build_segment_index, index_filename

            build_segment_index(data.dense, cfg, seg_dir / index_filename(cfg))
        elif data.dense is not None and cfg.kind in ("int8", "binary"):
            from retrievo.indexes.quantized import BinaryCodes, Int8Codes

            (Int8Codes if cfg.kind == "int8" else BinaryCodes).encode(data.dense).save(seg_dir)
        if self.config.sparse is not None and data.has_sparse:
            self._segment_sparse(seg_dir, data, None)
            if self.config.sparse.mode == "approx":  # the default mode's structures are ready at commit
                self._segment_sparse(seg_dir, data, self.config.sparse)

    def _drop_empty_segments(self) -> None:
        live = {s for (s,) in self.store.conn.execute("SELECT DISTINCT seg FROM docs")}
        dead = [s for s, _ in self.store.segments() if s not in live]
        if dead:
            self.store.drop_segments(dead)

    def _analyze(self, docs: list[Document], vocab: dict[str, int], show_progress: bool) -> SegmentData:
        fields = self.config.bm25.fields
        texts: Iterable[Document] = docs
        if show_progress:
            from tqdm.auto import tqdm

            texts = tqdm(docs, desc="analyse", unit="doc")
        indptr, terms, counts, doclen = term_frequencies(
            (self.analyzer.tokenize(d.content(fields)) for d in texts), vocab
        )
        dense = None
        if self.config.dense is not None:
            todo = [i for i, d in enumerate(docs) if d.id not in self._pending_vectors]
            given = [i for i, d in enumerate(docs) if d.id in self._pending_vectors]
            encoded = None
            if todo:  # documents without supplied vectors are encoded (the model loads only then)
                texts = [docs[i].content(("title", "text")) for i in todo]
                encoded = encode_with_cache(self.encoder, texts, self._embedding_cache(), show_progress=show_progress)
            if not given:
                dense = encoded
            else:
                dim = len(self._pending_vectors[docs[given[0]].id])
                if encoded is not None and encoded.shape[1] != dim:
                    raise InvalidInputError(
                        f"commit: supplied vectors have dimension {dim} but the encoder's have {encoded.shape[1]}")
                dense = np.empty((len(docs), dim), dtype=np.float32)
                dense[given] = np.stack([self._pending_vectors[docs[i].id] for i in given])
                if encoded is not None:
                    dense[todo] = encoded
            self._check_vectors(dense)
        data = SegmentData(tf_indptr=indptr, tf_terms=terms, tf_counts=counts, doclen=doclen, dense=dense)
        if self.config.sparse is not None:
            texts = [d.content(("title", "text")) for d in docs]
            csr = self.sparse_encoder.encode_documents(texts, show_progress=show_progress)
            self._check_sparse(csr)
            data.set_sparse(csr)
        return data

    def _check_vectors(self, dense: np.ndarray) -> None:
        if not np.isfinite(dense).all():
            raise InvalidInputError("the dense encoder returned NaN or inf vectors; nothing was committed")
        if self._state.flat is not None and self._state.flat.dim and dense.shape[1] != self._state.flat.dim:
            raise InvalidInputError(
                f"dense vectors have dimension {dense.shape[1]} but the collection holds {self._state.flat.dim}"
            )

    def _stored_sparse_vocab(self) -> int | None:
        for seg in self._state.segments:
            if seg.data.has_sparse:
                return seg.data.sparse_vocab
        return None

    def _check_sparse(self, csr: Any) -> None:
        if csr.nnz and (not np.isfinite(csr.data).all() or (csr.data < 0).any()):
            raise InvalidInputError("the sparse encoder returned negative, NaN or inf weights; nothing was committed")
        stored = self._stored_sparse_vocab()
        if stored is not None and csr.shape[1] != stored:
            raise InvalidInputError(
                f"sparse vectors have a vocabulary of {csr.shape[1]} terms but the collection's hold {stored}: "
                "the sparse encoder does not match the one the collection was built with"
            )

    # -- merging -----------------------------------------------------------------------------------
    def _maybe_merge(self) -> None:
        segs = self.store.segments()
        live = dict(self.store.conn.execute("SELECT seg, COUNT(*) FROM docs GROUP BY seg").fetchall())
        pick = {s for s, n in segs if n and 1 - live.get(s, 0) / n > self.config.max_deleted_fraction}
        if len(segs) > self.config.max_segments:
            by_size = sorted(segs, key=lambda sn: live.get(sn[0], 0))
            pick |= {s for s, _ in by_size[: len(segs) - self.config.max_segments // 2 + 1]}
        if pick:
            self._merge(sorted(pick))

    def compact(self) -> int:
        """Merge every segment into one without tombstones; returns the new generation."""
        self.commit()
        self._acquire_write_lock()
        segs = [s for s, _ in self.store.segments()]
        if len(segs) > 1 or (segs and self._state.n_live < self._state.n_rows):
            self._merge(segs)
            self._state = self._load_state()
        return self.generation

    def _merge(self, segs: list[int]) -> None:
        rows = self.store.conn.execute(
            f"SELECT seg, row, id FROM docs WHERE seg IN ({','.join('?' * len(segs))}) ORDER BY seg, row", segs
        ).fetchall()
        new_seg = int(self.store.get_meta("next_segment", "1") or 1)
        seg_dir = None
        if rows:
            parts = []
            by_seg: dict[int, list[int]] = {}
            for s, r, _ in rows:
                by_seg.setdefault(s, []).append(r)
            for s in sorted(by_seg):
                parts.append(Segment(self.path / "segments", s).data.take(np.array(by_seg[s])))
            merged = SegmentData.concat(parts)
            seg_dir = write_segment(self.path / "segments", new_seg, merged)
            self._write_derived(seg_dir, merged)
        try:
            self.store.begin()
            self.store.drop_segments(segs)
            if rows:
                self.store.add_segment(new_seg, len(rows))
                self.store.move_rows([(new_seg, i, doc_id) for i, (_, _, doc_id) in enumerate(rows)])
                self.store.set_meta("next_segment", str(new_seg + 1))
            self.store.set_meta("generation", str(self.store.generation() + 1))
            self.store.commit()
        except BaseException:
            self.store.rollback()
            if seg_dir is not None:
                shutil.rmtree(seg_dir, ignore_errors=True)
            raise
        self._collect_garbage()

    # -- state -------------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Reload if another process committed since this one last looked; returns whether it did."""
        if self.store.generation() != self._state.generation:
            self._state = self._load_state()
            return True
        return False

    def _load_state(self) -> _State:
        store = self.store
        store.conn.execute("BEGIN")  # one consistent snapshot of the SQLite side
        try:
            generation = store.generation()
            seg_rows = store.segments()
            rows = store.live_rows()
            vocab_list = store.vocab()
        finally:
            store.conn.execute("COMMIT")
        segments = [Segment(self.path / "segments", s) for s, _ in seg_rows]
        offsets: dict[int, int] = {}
        n = 0
        for seg in segments:
            offsets[seg.seg] = n
            n += seg.n_rows
        ids = np.full(n, "", dtype=object)
        live = np.zeros(n, dtype=bool)
        if rows:
            segs_a = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            rows_a = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
            off = np.array([offsets[s] for s in segs_a.tolist()], dtype=np.int64) if len(rows) else segs_a
            glob = off + rows_a
            ids[glob] = [r[2] for r in rows]
            live[glob] = True
        vocab = {t: i for i, t in enumerate(vocab_list)}
        inverted = None
        flat = None
        if segments:
            data = (SegmentData.concat([s.data for s in segments], with_dense=False) if len(segments) > 1
                    else segments[0].data)
            inverted = InvertedIndex(
                data.tf_indptr, data.tf_terms, data.tf_counts, data.doclen, live, len(vocab_list), self.config.bm25
            )
            if self.config.dense is not None and all(s.data.dense is not None for s in segments):
                flat = FlatIndex([(offsets[s.seg], s.data.dense) for s in segments], live)
        sparse = None
        if segments and self.config.sparse is not None and all(s.data.has_sparse for s in segments):
            from retrievo.indexes.sparse import SegmentedSparseIndex

            sparse = SegmentedSparseIndex([(offsets[s.seg], self._segment_sparse(s.path, s.data, None))
                                           for s in segments], live)
        return _State(generation, segments, offsets, n, ids, live, vocab, inverted, flat, sparse)

    # -- reads -------------------------------------------------------------------------------------
    def get(self, doc_id: str) -> Document:
        """The committed document with this id. Raises :class:`NotFoundError`."""
        found = self.store.get_docs([doc_id])
        if doc_id not in found:
            raise NotFoundError(f"no document with id {doc_id!r} in {self.path}")
        title, text, meta = found[doc_id]
        return Document(id=doc_id, title=title, text=text, metadata=meta)

    def get_many(self, ids: Sequence[str]) -> list[Document | None]:
        found = self.store.get_docs(list(ids))
        return [
            Document(id=i, title=found[i][0], text=found[i][1], metadata=found[i][2]) if i in found else None
            for i in ids
        ]

    def iter_documents(self) -> Iterable[Document]:
        for doc_id, title, text, meta in self.store.iter_docs():
            yield Document(id=doc_id, title=title, text=text, metadata=meta)

    def fields(self) -> dict[str, set[str]]:
        """Known metadata fields and the kinds of values they hold."""
        return self.store.fields()

    def filter_mask(self, flt: dict[str, Any] | str | None) -> np.ndarray | None:
        """Boolean mask over the current rows of documents that match ``flt`` (``None``: no filter)."""
        flt = parse_filter(flt)
        if flt is None:
            return None
        where, params = compile_filter(flt, self.store.fields())
        state = self._state
        mask = np.zeros(state.n_rows, dtype=bool)
        for seg, row in self.store.select_rows(where, params):
            off = state.offsets.get(seg)
            if off is not None:
                mask[off + row] = True
        return mask & state.live

    def search(
        self,
        queries: str | Sequence[str] | None,
        k: int = 10,
        method: str = "bm25",
        filter: dict[str, Any] | str | None = None,
        query_ids: Sequence[str] | None = None,
        fusion: FusionConfig | None = None,
        index: DenseIndexConfig | str | None = None,
        show_progress: bool = False,
        sparse: SparseConfig | dict[str, Any] | str | None = None,
        query_vectors: Any = None,
        prf: PRFConfig | bool | None = None,
        min_probability: float | None = None,
        correct_typos: bool = False,
        adapter: bool = False,
    ) -> SearchResults:
        """Search the last committed state.

        Args:
            queries: one query or a list of them (a single query is a batch of one).
            k: results per query.
            method: a signal (``"bm25"``, ``"dense"``, ``"splade"``), ``"hybrid"`` (= ``"bm25+dense"``), or
                signals joined by ``+`` and fused, e.g. ``"bm25+dense+splade"``.
            filter: a metadata filter (see :mod:`retrievo.indexes.filters`); top-k is exact within it.
            query_ids: ids for the result rows (default ``"0"``, ``"1"``, …).
            fusion: overrides the collection's fusion config for ``hybrid``.
            index: the dense index to use (a kind name or a :class:`DenseIndexConfig`); default: the
                collection's ``config.index``.
            sparse: SPLADE search settings: ``"exact"`` / ``"approx"``, or a dict / :class:`SparseConfig`
                overriding ``mode``, ``query_cut``, ``heap_factor`` of the collection's ``config.sparse``.
            query_vectors: dense query vectors computed elsewhere, ``(len(queries), dim)``; the dense signal
                uses them instead of encoding the query texts. With ``method="dense"`` the queries may be
                ``None`` (a batch of ``len(query_vectors)``).
            prf: pseudo-relevance feedback (``True`` for the defaults of :class:`PRFConfig`): the BM25
                signal searches again with its RM3-expanded query, the dense signal with its Rocchio-moved
                query vector (see :mod:`retrievo.search.prf`); the SPLADE signal is left as it is.
            min_probability: a calibrated cut-off: keep only results whose probability of relevance
                reaches it, by the calibrator :meth:`calibrate` fitted for this method (the results then
                carry ``probabilities``; search with the settings it was fitted with).
            correct_typos: BM25 signal: a query term that is not in the vocabulary is replaced by the
                vocabulary term one edit away that the most documents contain (see
                :mod:`retrievo.analysis.typos`; the lookup table is built on first use).
            adapter: dense signal: move the query vectors with the query adapter :meth:`fit_query_adapter`
                learnt for this collection (documents keep their vectors).

        Returns:
            :class:`SearchResults` shaped ``(len(queries), k)``.
        """
        if queries is None and query_vectors is not None:
            queries = [""] * (1 if np.ndim(query_vectors) == 1 else len(query_vectors))
        if isinstance(queries, str):
            queries = [queries]
        queries = list(queries)
        if any(not isinstance(q, str) for q in queries):
            raise InvalidInputError("search: every query must be a string")
        if not isinstance(k, int | np.integer) or k < 1:
            raise InvalidInputError(f"search: k must be a positive integer, got {k!r}")
        k = int(k)
        signals = method_signals(method)
        if query_ids is None:
            query_ids = [str(i) for i in range(len(queries))]
        elif len(query_ids) != len(queries):
            raise InvalidInputError(f"search: {len(query_ids)} query ids for {len(queries)} queries")
        if "dense" in signals and self.config.dense is None:
            raise InvalidInputError(f"search: method {method!r} needs a dense model, and {self.path} has none")
        if "splade" in signals and self.config.sparse is None:
            raise InvalidInputError(
                f"search: method {method!r} needs a sparse (SPLADE) model, and {self.path} has none; "
                "create the collection with CollectionConfig(sparse=SparseConfig()) or --splade"
            )
        qv = None
        if query_vectors is not None:
            if "dense" not in signals:
                raise InvalidInputError(f"search: query_vectors are for the dense signal, and method {method!r} has none")
            qv = self._check_query_vectors(query_vectors, len(queries))
        query_adapter = None
        if adapter:
            if "dense" not in signals:
                raise InvalidInputError(f"search: adapter is for the dense signal, and method {method!r} has none")
            query_adapter = self.query_adapter()
        calibrator = None
        if min_probability is not None:
            if not 0.0 <= float(min_probability) <= 1.0:
                raise InvalidInputError(f"search: min_probability must be in [0, 1], got {min_probability!r}")
            calibrator = self.calibrator(method)
        if prf is True:
            prf = PRFConfig()
        elif prf is False:
            prf = None
        elif prf is not None and not isinstance(prf, PRFConfig):
            raise InvalidInputError(f"search: prf must be a bool or a PRFConfig, got {type(prf).__name__}")
        index_cfg = self._index_config(index)
        sparse_cfg = self._sparse_config(sparse) if "splade" in signals else None
        allowed = self.filter_mask(filter)
        state = self._state
        nq = len(queries)
        if state.inverted is None or nq == 0:
            return SearchResults.from_lists([[] for _ in range(nq)], k, tuple(query_ids), method)
        def run(signal: str, depth: int):
            if signal == "bm25":
                return self._search_bm25(state, queries, depth, allowed, prf, correct_typos)
            if signal == "dense":
                return self._search_dense(state, queries, depth, allowed, index_cfg, qv, prf, query_adapter)
            return self._search_sparse(state, queries, depth, allowed, sparse_cfg)

        if len(signals) == 1:
            rows, scores, counts = run(signals[0], k)
        else:
            fusion = fusion or self.config.fusion
            weights = tuple(fusion.weights) if fusion.weights is not None else (1.0 / len(signals),) * len(signals)
            if len(weights) != len(signals):
                raise InvalidInputError(
                    f"fusion.weights needs {len(signals)} weights ({', '.join(signals)}), got {weights}"
                )
            depth = max(k, fusion.depth)
            lists = [run(sig, depth) for sig in signals]
            rows = np.full((nq, k), -1, dtype=np.int64)
            scores = np.full((nq, k), -np.inf, dtype=np.float32)
            counts = np.zeros(nq, dtype=np.int64)
            for i in range(nq):
                per = [(lst[0][i], lst[1][i], int(lst[2][i])) for lst in lists]
                keys, sc, n = fuse(per, weights, k, fusion.method, fusion.rrf_k)
                rows[i, :n], scores[i, :n], counts[i] = keys, sc, n
        ids = np.full((nq, k), "", dtype=object)
        valid = rows >= 0
        ids[valid] = state.ids[rows[valid]]
        probabilities = None
        if calibrator is not None:
            # probabilities fall with rank for a fitted calibrator only mostly: cut at the first result below
            probabilities = calibrator.probabilities(scores, counts)
            below = (probabilities < float(min_probability)) | ~valid
            counts = np.where(below.any(axis=1), below.argmax(axis=1), counts).astype(np.int64)
            cut = np.arange(k)[None, :] >= counts[:, None]
            ids[cut], scores[cut], probabilities[cut] = "", -np.inf, 0.0
        return SearchResults(ids=ids, scores=scores.astype(np.float32), counts=counts, query_ids=tuple(query_ids),
                             method=method, probabilities=probabilities)

    # -- calibrated relevance ------------------------------------------------------------------------
    def calibrate(self, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], method: str = "bm25",
                  depth: int = 20, save: bool = True, **search_kwargs: Any) -> Any:
        """Fit the probability of relevance of ``method``'s results on judged queries (see
        :mod:`retrievo.search.calibration`) and keep it in the collection for ``min_probability``.

        Args:
            queries: ``{query_id: text}`` of a training split (not the split you report).
            qrels: ``{query_id: {doc_id: relevance}}``; queries without judgements are skipped.
            method: the search method to calibrate.
            depth: results per query to fit on.
            save: write ``calibration/<method>.json`` into the collection folder.
            search_kwargs: further :meth:`search` settings (fusion, index, sparse, prf) to fit under.

        Returns:
            the :class:`~retrievo.search.calibration.ScoreCalibrator`.
        """
        from retrievo.search.calibration import ScoreCalibrator

        if save:
            self._check_can_save("calibration")
        qids = [q for q in queries if qrels.get(q)]
        if not qids:
            raise InvalidInputError("calibrate: no query has relevance judgements")
        res = self.search([queries[q] for q in qids], k=depth, method=method, query_ids=qids, **search_kwargs)
        labels = np.array([[int(qrels[q].get(str(d), 0) > 0) for d in row] for q, row in zip(qids, res.ids, strict=True)])
        cal = ScoreCalibrator.fit(res.scores, res.counts, labels, method)
        if save:
            cal.save(self._calibration_path(method))
        return cal

    def calibrator(self, method: str) -> Any:
        """The calibrator :meth:`calibrate` saved for ``method`` (read again when the file changes, e.g. a
        server's reader after another process re-calibrated); :class:`InvalidInputError` when none was."""
        from retrievo.search.calibration import ScoreCalibrator

        return self._learned_file(("calibration", method), self._calibration_path(method), ScoreCalibrator.load,
                                  f"no calibration for method {method!r}; fit one with Collection.calibrate() or "
                                  "`retrievo calibrate`")

    def _learned_file(self, key: tuple[str, ...], path: Path, load: Any, missing: str) -> Any:
        """What ``load(path)`` gives, kept in memory and read again when the file changes (a server's reader
        sees a calibration or adapter learnt by another process); :class:`InvalidInputError` (``missing``)
        when there is no such file."""
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise InvalidInputError(f"{self.path}: {missing}") from None
        cached = self._learned.get(key)
        if cached is None or cached[0] != stamp:
            cached = self._learned[key] = (stamp, load(path))
        return cached[1]

    def _check_can_save(self, what: str) -> None:
        if self.readonly:
            raise InvalidInputError(f"{self.path}: opened read-only; cannot save the {what}")

    # -- query adapter -----------------------------------------------------------------------------------
    def fit_query_adapter(self, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                          negatives: int = 30, save: bool = True, query_vectors: Any = None,
                          **train_kwargs: Any) -> Any:
        """Learn a query adapter for the dense signal from judged queries (see :mod:`retrievo.search.adapters`):
        each query's relevant documents against the dense index's top ``negatives`` results that are not
        judged relevant. Stored vectors are read, never re-encoded; ``search(..., adapter=True)`` uses it.

        Args:
            queries: ``{query_id: text}`` of a training split (not the split you report).
            qrels: ``{query_id: {doc_id: relevance}}``; queries whose relevant documents are not in the
                collection are skipped.
            negatives: hard negatives per query.
            save: keep it in the collection folder (``adapters/query_adapter.npy`` + ``.json``).
            query_vectors: the queries' vectors computed elsewhere, one row per entry of ``queries`` (in its
                order), for collections of supplied vectors; default: encode the texts.
            train_kwargs: :func:`~retrievo.search.adapters.fit_query_adapter` settings (epochs, lr, …).
        """
        from retrievo.search.adapters import fit_query_adapter

        if save:
            self._check_can_save("query adapter")
        state = self._state
        if state.flat is None:
            raise InvalidInputError(f"{self.path}: no dense vectors are stored; a query adapter needs them")
        row_of = {state.ids[r]: r for r in np.flatnonzero(state.live)}
        qids = [q for q in queries if any(v > 0 and d in row_of for d, v in qrels.get(q, {}).items())]
        if len(qids) < 5:
            raise InvalidInputError(f"fit_query_adapter: {len(qids)} queries have relevant documents here; 5 needed")
        if query_vectors is None:
            qv = self.encoder.encode_queries([queries[q] for q in qids])
        else:
            where = {q: i for i, q in enumerate(queries)}
            qv = self._check_query_vectors(query_vectors, len(where))[[where[q] for q in qids]]
        pos_rows = [np.array([row_of[d] for d, v in qrels[q].items() if v > 0 and d in row_of]) for q in qids]
        depth = negatives + max(len(p) for p in pos_rows)
        rows, _, counts = self.dense_index(None).search(qv, depth, state.live)
        neg_rows = [np.array([r for r in rows[i, :counts[i]] if r not in set(pos_rows[i].tolist())][:negatives],
                             dtype=np.int64) for i in range(len(qids))]
        adapter = fit_query_adapter(qv, [state.flat.gather(p) for p in pos_rows],
                                    [state.flat.gather(n) for n in neg_rows], **train_kwargs)
        if save:
            adapter.save(self.path / "adapters")
        return adapter

    def query_adapter(self) -> Any:
        """The query adapter :meth:`fit_query_adapter` saved (read again when the file changes)."""
        from retrievo.search.adapters import QueryAdapter

        return self._learned_file(("adapter",), self.path / "adapters" / "query_adapter.npy",
                                  lambda p: QueryAdapter.load(p.parent),
                                  "no query adapter; learn one with Collection.fit_query_adapter() or `retrievo adapt`")

    def _calibration_path(self, method: str) -> Path:
        return self.path / "calibration" / f"{method.replace('+', '_')}.json"

    def _search_bm25(self, state: _State, queries: list[str], k: int, allowed: np.ndarray | None,
                     prf: PRFConfig | None = None, correct_typos: bool = False):
        vocab = state.vocab
        inv = state.inverted
        assert inv is not None
        if correct_typos:
            fix = self._typo_corrector(state).correct
            q_terms = [np.array([i for i in map(fix, self.analyzer.tokenize(q)) if i is not None], dtype=np.int64)
                       for q in queries]
        else:
            q_terms = [np.array([vocab[t] for t in self.analyzer.tokenize(q) if t in vocab], dtype=np.int64)
                       for q in queries]
        if prf is None:
            return inv.search(q_terms, k, allowed)
        from retrievo.search.prf import rm3_query

        rows, scores, counts = inv.search(q_terms, prf.fb_docs, allowed)
        doc_freq = np.diff(inv.p_indptr)
        expanded = [rm3_query(q_terms[i], rows[i, :counts[i]], scores[i, :counts[i]],
                              lambda r: self._doc_terms(state, r), doc_freq, state.n_live, prf.fb_terms,
                              prf.original_weight) for i in range(len(q_terms))]
        return inv.search([t for t, _ in expanded], k, allowed, weights=[w for _, w in expanded])

    @staticmethod
    def _typo_corrector(state: _State) -> Any:
        """The generation's :class:`~retrievo.analysis.typos.TypoCorrector` (built once, on first use)."""
        from retrievo.analysis.typos import TypoCorrector

        tc = state.compressed.get("typos")
        if tc is None:
            assert state.inverted is not None
            terms = [""] * len(state.vocab)
            for t, i in state.vocab.items():
                terms[i] = t
            tc = state.compressed["typos"] = TypoCorrector(terms, np.diff(state.inverted.p_indptr))
        return tc

    @staticmethod
    def _doc_terms(state: _State, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Term ids and counts of the document at a global row (from its segment's term frequencies)."""
        for seg in state.segments:
            local = row - state.offsets[seg.seg]
            if 0 <= local < seg.n_rows:
                d = seg.data
                a, b = int(d.tf_indptr[local]), int(d.tf_indptr[local + 1])
                return np.asarray(d.tf_terms[a:b], dtype=np.int64), np.asarray(d.tf_counts[a:b])
        raise IndexError(f"row {row} is in no segment")

    def _sparse_config(self, sparse: SparseConfig | dict[str, Any] | str | None) -> SparseConfig:
        base = self.config.sparse
        assert base is not None
        if sparse is None:
            return base
        if isinstance(sparse, str):
            return base.replace(mode=sparse)
        if isinstance(sparse, SparseConfig):
            return sparse
        if isinstance(sparse, Mapping):
            allowed = {"mode", "query_cut", "heap_factor"}
            bad = sorted(set(sparse) - allowed)
            if bad:
                raise InvalidInputError(f"search: sparse settings {bad} are not search-time; use some of {sorted(allowed)}")
            return base.replace(**dict(sparse))
        raise InvalidInputError(f"search: sparse must be a mode name, a dict or a SparseConfig, got {type(sparse).__name__}")

    def sparse_index(self, mode: str = "exact") -> Any:
        """The SPLADE index of the current generation (the approximate one is built on first use)."""
        state = self._state
        if state.sparse is None:
            raise InvalidInputError(f"{self.path}: no sparse vectors are stored; create the collection with a SPLADE model")
        if mode == "exact":
            return state.sparse
        cfg = self.config.sparse
        assert cfg is not None
        key = ("seismic", cfg.n_postings, cfg.centroid_fraction, cfg.summary_energy)
        idx = state.compressed.get(key)
        if idx is None:
            from retrievo.indexes.sparse import SegmentedSparseIndex

            idx = state.compressed[key] = SegmentedSparseIndex(
                [(state.offsets[s.seg], self._segment_sparse(s.path, s.data, cfg)) for s in state.segments],
                state.live)
        return idx

    def _segment_sparse(self, seg_dir: Path, data: SegmentData, approx: SparseConfig | None) -> Any:
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
        index = SparseIndex(data.sparse_csr(), None, exact=params is None, approx=params or False)
        if not self.readonly:
            index.save(folder)
        return index

    def _search_sparse(self, state: _State, queries: list[str], k: int, allowed: np.ndarray | None,
                       cfg: SparseConfig | None):
        assert cfg is not None
        if state.sparse is None:
            raise InvalidInputError(f"{self.path}: no sparse vectors are stored; create the collection with a SPLADE model")
        qv = self.sparse_encoder.encode_queries(queries)
        if qv.shape[1] != state.sparse.vocab_size:
            raise InvalidInputError(
                f"the query encoder's vocabulary has {qv.shape[1]} terms but the collection's sparse vectors "
                f"use {state.sparse.vocab_size}: the sparse encoder does not match the collection's"
            )
        idx = self.sparse_index(cfg.mode) if state.segments else state.sparse
        if cfg.mode == "approx":
            return idx.search(qv, k, allowed, mode="approx", query_cut=cfg.query_cut, heap_factor=cfg.heap_factor)
        return idx.search(qv, k, allowed, mode="exact")

    def _index_config(self, index: DenseIndexConfig | str | None) -> DenseIndexConfig:
        if index is None:
            return self.config.index
        if isinstance(index, str):
            return self.config.index.replace(kind=index)
        if isinstance(index, DenseIndexConfig):
            return index
        raise InvalidInputError(f"search: index must be a kind name or a DenseIndexConfig, got {type(index).__name__}")

    def dense_index(self, index: DenseIndexConfig | str | None = None) -> Any:
        """The dense index of the current generation for ``index`` (compressed ones are built on first use)."""
        from retrievo.indexes.quantized import BinaryIndex, Int8Index, RescoringIndex

        state = self._state
        if state.flat is None:
            raise InvalidInputError(f"{self.path}: no dense vectors are stored; re-index with a dense model")
        cfg = self._index_config(index)
        if cfg.kind == "flat":
            return state.flat
        if cfg.kind in ("hnsw", "ivf", "ivfpq"):
            return self._ann_index(state, cfg)
        coarse = state.compressed.get(cfg.kind)
        if coarse is None:
            cls = Int8Index if cfg.kind == "int8" else BinaryIndex
            blocks = []
            for seg in state.segments:
                if seg.data.dense is None:
                    continue
                if all((seg.path / f).exists() for f in cls.codes_class.FILES):
                    codes = cls.codes_class.load(seg.path)
                else:  # encoded once per segment and kept with it (segments are immutable)
                    codes = cls.codes_class.encode(seg.data.dense)
                    if not self.readonly:
                        codes.save(seg.path)
                blocks.append((state.offsets[seg.seg], codes))
            coarse = state.compressed[cfg.kind] = cls.from_codes(blocks, state.live, state.flat.dim)
        return RescoringIndex(coarse, state.flat, cfg.rescore_multiplier)

    def _ann_index(self, state: _State, cfg: DenseIndexConfig) -> Any:
        from retrievo.indexes.ann import AnnIndex, build_segment_index, index_filename, load_segment_index

        name = index_filename(cfg)
        segs = state.compressed.get(name)
        if segs is None:
            segs = []
            for seg in state.segments:
                path = seg.path / name
                if path.exists():
                    index = load_segment_index(path)
                else:  # built once per segment and kept with it (segments are immutable)
                    index = build_segment_index(seg.data.dense, cfg, None if self.readonly else path)
                segs.append((state.offsets[seg.seg], index, seg.n_rows))
            state.compressed[name] = segs
        assert state.flat is not None
        key = ("searcher", cfg)  # one searcher per generation and search parameters (caches live counts)
        if key not in state.compressed:
            state.compressed[key] = AnnIndex(segs, state.flat, state.live, cfg)
        return state.compressed[key]

    def _search_dense(self, state: _State, queries: list[str], k: int, allowed: np.ndarray | None,
                      index: DenseIndexConfig | None = None, qv: np.ndarray | None = None,
                      prf: PRFConfig | None = None, query_adapter: Any = None):
        idx = self.dense_index(index)
        if qv is None:
            qv = self.encoder.encode_queries(queries)
        if query_adapter is not None:
            qv = query_adapter.apply(qv)
        if prf is not None and state.flat is not None:
            from retrievo.search.prf import rocchio

            rows, _, counts = idx.search(qv, prf.dense_fb_docs, allowed)
            fb = [state.flat.gather(rows[i, :counts[i]]) for i in range(len(rows))]
            qv = rocchio(qv, fb, prf.alpha, prf.beta)
        return idx.search(qv, k, allowed)

    def _check_query_vectors(self, query_vectors: Any, nq: int) -> np.ndarray:
        try:
            qv = np.array(query_vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"search: query_vectors must be a numeric (n, dim) array: {exc}") from exc
        if qv.ndim == 1:
            qv = qv[None, :]
        dim = self._state.flat.dim if self._state.flat is not None else None
        if qv.ndim != 2 or qv.shape[0] != nq or (dim is not None and qv.shape[1] != dim):
            raise InvalidInputError(
                f"search: query_vectors must have shape ({nq}, {dim if dim is not None else 'dim'}), got {qv.shape}")
        bad = ~np.isfinite(qv).all(axis=1)
        if bad.any():
            raise InvalidInputError(f"search: query_vectors[{int(np.flatnonzero(bad)[0])}] has a NaN or infinite value")
        return qv

    def plan_index(self, budget_bytes: int, sample_docs: int = 20_000, apply: bool = False) -> dict[str, Any]:
        """Choose the dense index that fits ``budget_bytes`` of RAM and report its expected recall@10.

        Calibrates on up to ``sample_docs`` stored vectors (see :mod:`retrievo.indexes.budget`). With
        ``apply=True`` the choice becomes the collection's default index (written to ``manifest.json``).
        """
        from retrievo.indexes.budget import plan_dense_index

        state = self._state
        if state.flat is None:
            raise InvalidInputError(f"{self.path}: no dense vectors are stored; nothing to plan")
        rows = np.flatnonzero(state.live)
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(rows, min(sample_docs, len(rows)), replace=False))
        sample = state.flat.gather(pick)
        chosen, plans = plan_dense_index(sample, len(rows), budget_bytes)
        if apply and chosen is not None:
            self._acquire_write_lock()
            self.config = self.config.replace(index=chosen.config)
            manifest = json.loads((self.path / "manifest.json").read_text())
            manifest["config"] = self.config.to_dict()
            write_json(self.path / "manifest.json", manifest)
        return {"budget_bytes": budget_bytes, "documents": len(rows), "calibration_vectors": len(pick),
                "chosen": None if chosen is None else chosen.to_dict(), "candidates": [p.to_dict() for p in plans],
                "applied": bool(apply and chosen is not None)}

    def info(self) -> dict[str, Any]:
        """A summary: counts, segments, vocabulary, model and index sizes (RAM and disk)."""
        state = self._state
        disk = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        live_per_seg = dict(self.store.conn.execute("SELECT seg, COUNT(*) FROM docs GROUP BY seg").fetchall())
        return {
            "path": str(self.path),
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "generation": state.generation,
            "documents": state.n_live,
            "segments": [
                {"segment": s.seg, "rows": s.n_rows, "live": int(live_per_seg.get(s.seg, 0))} for s in state.segments
            ],
            "vocabulary": len(state.vocab),
            "fields": {k: sorted(v) for k, v in self.store.fields().items()},
            "dense_model": None if self.config.dense is None else self.config.dense.model,
            "dense_dim": None if state.flat is None else state.flat.dim,
            "bm25_postings_bytes_in_ram": 0 if state.inverted is None else state.inverted.nbytes,
            "dense_bytes_on_disk_mmap": 0 if state.flat is None else state.flat.nbytes,
            "sparse_model": None if self.config.sparse is None else self.config.sparse.model,
            "sparse_vocabulary": None if state.sparse is None else state.sparse.vocab_size,
            "sparse_nnz_per_doc": None if state.sparse is None or not state.n_rows
            else round(sum(len(s.data.sp_terms) for s in state.segments) / state.n_rows, 1),
            "sparse_index_bytes_in_ram": 0 if state.sparse is None else int(state.sparse.nbytes),
            "dense_index": self.config.index.to_dict(),
            "dense_index_bytes_in_ram": 0 if state.flat is None or self.config.index.kind == "flat"
            else self.dense_index().nbytes,
            "bytes_on_disk": disk,
            "config": self.config.to_dict(),
        }
