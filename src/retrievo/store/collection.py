"""A collection: the embedded on-disk store that every retrieval method searches.

Layout of a collection folder::

    manifest.json          format version, package version, the CollectionConfig (never pickle)
    collection.sqlite      documents, metadata, vocabulary, segment list (WAL; the commit point)
    segments/seg_*/        immutable .npy arrays of each signal (term frequencies, vectors, …), memory-mapped
    calibration/, adapters/  what was learnt from judged queries (see :mod:`retrievo.search.artefacts`)
    write.lock             held (flock) by the one process that writes

Writes follow Lucene's model: ``add``/``upsert``/``delete`` are buffered; ``commit`` has every signal of the
collection (:mod:`retrievo.signals`) encode the buffered documents into a new immutable segment, then one
SQLite transaction publishes the segment, replaces or removes older versions (their rows become
tombstones) and bumps the generation. Segments with many tombstones, or too many small segments, are
merged on commit; ``compact`` merges everything. A process killed at any point leaves the collection at
its last commit.

This module is the store only: what a search reads is a :class:`~retrievo.store.snapshot.Snapshot` (one
generation), and searching it is the searcher's work (:class:`~retrievo.search.searcher.Searcher`,
reached through :attr:`Collection.searcher`); :meth:`Collection.search` and the other search methods here
are thin shims over it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import save_npy, write_json
from retrievo._version import __version__
from retrievo.analysis.analyzer import Analyzer
from retrievo.config import CollectionConfig
from retrievo.errors import (
    CollectionExistsError,
    ConfigError,
    DuplicateIdError,
    FormatVersionError,
    InvalidInputError,
    NotFoundError,
    RetrievoError,
)
from retrievo.eval.gate_shims import QuarantineShims
from retrievo.indexes.filters import compile_filter, evaluate, parse_filter, plan_filter
from retrievo.search.shims import SearchShims
from retrievo.signals.base import EncodeBatch, Signal
from retrievo.signals.registry import METHODS, parse_method, signal_class, signal_names
from retrievo.store.columns import write_columns
from retrievo.store.merge import merge_segments, segments_to_merge
from retrievo.store.segments import (
    STORED,
    Segment,
    SegmentData,
    segment_dirname,
    stored_arrays,
    write_segment,
)
from retrievo.store.snapshot import Snapshot
from retrievo.store.sqlite import DocStore, value_kind
from retrievo.types import Document

__all__ = ["Collection", "CollectionLockedError", "FORMAT_VERSION", "METHODS", "SIGNALS", "method_signals"]

FORMAT_VERSION = 1
#: set by ``retrievo serve`` for its worker processes: a lock held by a sibling worker is told apart
SERVER_ID_ENV = "RETRIEVO_SERVER_ID"
#: the built-in signals
SIGNALS = ("bm25", "dense", "splade")


def method_signals(method: str) -> tuple[str, ...]:
    """The signals a search method fuses: ``"hybrid"`` → ``("bm25", "dense")``, ``"a+b"`` → ``("a", "b")``."""
    return parse_method(method)


class CollectionLockedError(RetrievoError):
    """Another process is writing to this collection."""


def _doc_hash(doc: Document) -> str:
    h = hashlib.sha256()
    h.update(doc.title.encode("utf-8", "surrogatepass"))
    h.update(b"\x1f")
    h.update(doc.text.encode("utf-8", "surrogatepass"))
    h.update(b"\x1f")
    h.update(json.dumps(dict(doc.metadata), sort_keys=True).encode())
    return h.hexdigest()[:32]


class Collection(SearchShims, QuarantineShims):
    """A searchable, incrementally updatable set of documents stored in a folder.

    Use :meth:`create` or :meth:`open` rather than the constructor.
    """

    def __init__(self, path: Path, config: CollectionConfig, readonly: bool, encoder: Any = None) -> None:
        self.path = path
        self.config = config
        self.readonly = readonly
        self.store = DocStore(path / "collection.sqlite", readonly=readonly)
        self.analyzer = Analyzer(config.analyzer)
        self._signals = self._bind_signals(encoder)
        self._layouts = [STORED] + [layout for sig in self._signals.values() for layout in sig.layouts]
        self._lock_fh: Any = None
        self._pending: dict[str, Document] = {}
        self._pending_deletes: set[str] = set()
        self._gate: Any = None  # the admission gate of add(screen=True) (see retrievo.eval.audit.Gate)
        self._releasing: set[str] = set()  # quarantined ids released into the buffer: forgotten there at commit
        self._pending_vectors: dict[str, np.ndarray] = {}  # caller-supplied dense vectors of buffered documents
        self._searcher: Any = None
        self._state: Snapshot = self._load_snapshot()

    def _bind_signals(self, encoder: Any) -> dict[str, Signal]:
        """An instance of every registered signal this collection's config turns on, in registry order."""
        known = signal_names()
        missing = [name for name in self.config.signals if name not in known]
        if missing and not self.readonly:  # its data would be missing from every new segment
            self.store.close()
            raise ConfigError(
                f"{self.path} computes the signal(s) {missing}, which no loaded plugin registers: import the module "
                "that registers them (retrievo --plugin MODULE, or RETRIEVO_PLUGINS=MODULE)")
        out: dict[str, Signal] = {}
        for name in known:
            cls = signal_class(name)
            if cls.enabled(self.config):
                out[name] = cls(self)
        if encoder is not None and "dense" in out:
            out["dense"].encoder = encoder  # type: ignore[attr-defined]
        return out

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
        known = signal_names()
        for name in [n for n in config.signals if n in known]:
            config = signal_class(name).complete(config)
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
        if self._gate is not None:
            self._gate.close()
            self._gate = None
        self.store.close()
        for sig in self._signals.values():
            sig.close()
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
    def signals(self) -> dict[str, Signal]:
        """The signals this collection computes (bound to it), by name."""
        return self._signals

    def signal(self, name: str) -> Signal:
        """The bound signal ``name``; :class:`InvalidInputError` when this collection does not compute it."""
        try:
            return self._signals[name]
        except KeyError:
            raise InvalidInputError(f"{self.path} does not compute the {name!r} signal") from None

    def snapshot(self) -> Snapshot:
        """The last committed generation this handle loaded (see :meth:`refresh`); immutable."""
        return self._state

    @property
    def searcher(self) -> Any:
        """The :class:`~retrievo.search.searcher.Searcher` of this collection."""
        if self._searcher is None:
            from retrievo.search.searcher import Searcher

            self._searcher = Searcher(self)
        return self._searcher

    @property
    def has_dense(self) -> bool:
        return self.config.dense is not None

    @property
    def encoder(self) -> Any:
        """The dense encoder (loaded on first use)."""
        if self.config.dense is None:
            raise InvalidInputError(f"{self.path}: this collection has no dense model (config.dense is None)")
        return self._signals["dense"].encoder  # type: ignore[attr-defined]

    @property
    def dense_dim(self) -> int | None:
        """The dimension dense vectors must have: the stored one, else a buffered one, else the loaded
        encoder's (``None`` while nothing fixes it, or without a dense model)."""
        dense = self._signals.get("dense")
        return None if dense is None else dense.dim(self._state, self._pending_vectors)  # type: ignore[attr-defined]

    @property
    def has_sparse(self) -> bool:
        return self.config.sparse is not None

    @property
    def sparse_encoder(self) -> Any:
        """The SPLADE encoder of ``config.sparse`` (loaded on first use; vectors cached by content)."""
        if self.config.sparse is None:
            raise InvalidInputError(f"{self.path}: this collection has no sparse model (config.sparse is None)")
        return self._signals["splade"].encoder  # type: ignore[attr-defined]

    def set_sparse_encoder(self, encoder: Any) -> None:
        """Use ``encoder`` (e.g. one shared by several collections) instead of loading ``config.sparse``."""
        self.signal("splade").encoder = encoder  # type: ignore[attr-defined]

    def share_models(self, other: Collection) -> None:
        """Use the models ``other`` (another handle on the same collection) has loaded, so that one copy of
        each is in memory (the server's writer and reader)."""
        for name, sig in self._signals.items():
            if name in other.signals:
                sig.share_from(other.signals[name])

    # -- writes ------------------------------------------------------------------------------------
    def lock_for_writing(self) -> None:
        """Take the collection's write lock (one writing process per collection); done by every write."""
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
        fh.seek(0)
        fh.truncate()  # who holds it, for other processes to read (a server's workers tell a sibling apart)
        fh.write(json.dumps({"pid": os.getpid(), "server": os.environ.get(SERVER_ID_ENV)}))
        fh.flush()
        self._lock_fh = fh
        self._collect_garbage()
        self._add_missing_columns()

    def lock_holder(self) -> dict[str, Any] | None:
        """Who last took the write lock and is still running (``{"pid", "server"}``), or ``None``. Ask it after
        :meth:`lock_for_writing` failed: the holder wrote its name into the lock file when it took it."""
        try:
            holder = json.loads((self.path / "write.lock").read_text() or "null")
            pid = int(holder["pid"])
            os.kill(pid, 0)  # still running?
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return {"pid": pid, "server": holder.get("server")}

    def _add_missing_columns(self) -> None:
        """Give the segments written before metadata columns and stored documents existed their columns and
        documents (from SQLite, which the writer alone changes; rows deleted since are not live, so the empty
        placeholders they get are never read)."""
        todo = [s for s in self._state.segments if s.columns is None or not s.data.has(STORED)]
        for seg in todo:
            docs = [Document(id="-", text="-") for _ in range(seg.n_rows)]
            for row, doc_id, title, text, meta in self.store.conn.execute(
                    "SELECT row, id, title, text, metadata FROM docs WHERE seg = ?", (seg.seg,)):
                docs[row] = Document(id=doc_id, title=title, text=text, metadata=json.loads(meta))
            if seg.columns is None:
                write_columns(seg.path, [d.metadata for d in docs])
            if not seg.data.has(STORED):
                arrays = stored_arrays(docs)
                save_npy(seg.path / "stored_bytes.npy", arrays["stored_bytes"])
                save_npy(seg.path / "stored_ptr.npy", arrays["stored_ptr"])  # last: both are there
        if todo:
            self._state = self._load_snapshot()

    _acquire_write_lock = lock_for_writing

    def _collect_garbage(self) -> None:
        """Remove segment folders that no commit references (left by a crash or a merge)."""
        live = {segment_dirname(s) for s, _ in self.store.segments()}
        root = self.path / "segments"
        for child in root.iterdir():
            if child.name not in live:
                shutil.rmtree(child, ignore_errors=True)

    @staticmethod
    def validate_documents(docs: Iterable[Document | Mapping[str, Any]], where: str) -> list[Document]:
        """Documents from mappings, each validated (errors name ``where[i]`` and the field); ids unique."""
        out: list[Document] = []
        seen: dict[str, int] = {}
        for i, obj in enumerate(docs):
            doc = Document.from_any(obj, where=f"{where}[{i}]")
            if doc.id in seen:
                raise DuplicateIdError(f"{where}: id {doc.id!r} appears twice in one batch (items {seen[doc.id]} and {i})")
            seen[doc.id] = i
            out.append(doc)
        return out

    _validate = validate_documents

    def add(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any = None, screen: bool = False,
            max_fpr: float = 0.01) -> int:
        """Buffer new documents; an id that already exists is an error (use :meth:`upsert` to replace).

        ``vectors``: optional dense vectors computed elsewhere, one row per document (``(n, dim)``); those
        documents are not encoded. Nothing changes if any document or vector is invalid. ``screen``: pass them
        through the admission gate first (:class:`~retrievo.eval.audit.Gate`, calibrated on this generation):
        suspects are quarantined with their reasons (:meth:`quarantined`, :meth:`release`) instead of buffered;
        ``max_fpr``: the gate's bound on the share of ordinary documents held back. Returns the number buffered.
        Call :meth:`commit`.
        """
        if screen:
            return self._screened(docs, vectors, "add", max_fpr)
        batch = self.validate_documents(docs, "add")
        vecs = None if vectors is None else self.check_vectors(vectors, batch, "add")
        self.lock_for_writing()
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

    def upsert(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any = None, screen: bool = False,
               max_fpr: float = 0.01) -> int:
        """Buffer documents that add new ids or replace existing ones (``vectors``, ``screen`` and ``max_fpr`` as
        in :meth:`add`).

        Returns the number buffered.
        """
        if screen:
            return self._screened(docs, vectors, "upsert", max_fpr)
        batch = self.validate_documents(docs, "upsert")
        vecs = None if vectors is None else self.check_vectors(vectors, batch, "upsert")
        self.lock_for_writing()
        self._buffer(batch, vecs)
        for d in batch:
            self._pending_deletes.discard(d.id)
        return len(batch)

    def update_metadata(self, updates: Mapping[str, Mapping[str, Any]]) -> int:
        """Change documents' metadata without resending their text: ``{id: {key: value}}`` merged in (``None``
        removes a key); nothing is re-encoded (see :mod:`retrievo.store.patch`). Buffered; call :meth:`commit`."""
        from retrievo.store.patch import update_metadata

        return update_metadata(self, updates)

    def _buffer(self, batch: list[Document], vecs: np.ndarray | None) -> None:
        for i, d in enumerate(batch):
            self._pending[d.id] = d
            if vecs is None:
                self._pending_vectors.pop(d.id, None)
            else:
                self._pending_vectors[d.id] = vecs[i]

    def check_vectors(self, vectors: Any, batch: Sequence[Document], where: str) -> np.ndarray:
        """Validate caller-supplied dense vectors for ``batch``: shape, dimension, finite values."""
        if self.config.dense is None:
            raise InvalidInputError(f"{where}: vectors were given but {self.path} has no dense model configured")
        return self._signals["dense"].check_vectors(  # type: ignore[attr-defined]
            vectors, [d.id for d in batch], where, self.dense_dim)

    _check_vector_batch = check_vectors

    def delete(self, ids: Iterable[str]) -> int:
        """Buffer deletions; returns how many of ``ids`` exist (committed or buffered). Unknown ids are ignored."""
        ids = list(ids)
        bad = [i for i in ids if not isinstance(i, str)]
        if bad:
            raise InvalidInputError(f"delete: ids must be strings, got {bad[:3]!r}")
        self.lock_for_writing()
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
        """Drop every buffered change (released documents stay in the quarantine)."""
        self._pending.clear()
        self._pending_deletes.clear()
        self._pending_vectors.clear()
        self._releasing.clear()

    @property
    def changes(self) -> int:
        """Documents written (added or replaced) and deleted by all commits so far: how much the collection moved
        (the admission gate recalibrates on it)."""
        return int(self.store.get_meta("changes", "0") or 0)

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._pending_deletes)

    def commit(self, show_progress: bool = False) -> int:
        """Make buffered changes durable and visible; returns the new generation."""
        if not self._pending and not self._pending_deletes:
            return self.generation
        self.lock_for_writing()
        docs = list(self._pending.values())
        vocab = dict(self._state.vocab)
        start_vocab = len(vocab)
        seg_dir = None
        seg = int(self.store.get_meta("next_segment", "1") or 1)
        if docs:
            data = self._encode(docs, vocab, show_progress)
            seg_dir = write_segment(self.path / "segments", seg, data, [d.metadata for d in docs])
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
            store.set_meta("changes", str(self.changes + len(docs) + len(self._pending_deletes)))
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
        if self._releasing:
            from retrievo.eval.audit import forget_released

            forget_released(self)
        self._collect_garbage()
        self._maybe_merge()
        self._state = self._load_snapshot()
        return self.generation

    def _encode(self, docs: list[Document], vocab: dict[str, int], show_progress: bool) -> SegmentData:
        """Every signal's arrays of the new segment (each may refuse the batch: then nothing is written)."""
        data = SegmentData(len(docs))
        data.put([STORED], stored_arrays(docs), {})
        batch = EncodeBatch(docs, vocab, {"dense": self._pending_vectors}, self._state, show_progress)
        for sig in self._signals.values():
            arrays, meta = sig.encode(batch)
            data.put(sig.layouts, arrays, meta)
        return data

    def _write_derived(self, seg_dir: Path, data: SegmentData) -> None:
        """What each signal keeps beside a new segment, built before the segment is committed."""
        for sig in self._signals.values():
            sig.write_derived(seg_dir, data)

    def _drop_empty_segments(self) -> None:
        live = {s for (s,) in self.store.conn.execute("SELECT DISTINCT seg FROM docs")}
        dead = [s for s, _ in self.store.segments() if s not in live]
        if dead:
            self.store.drop_segments(dead)

    def update_config(self, **changes: Any) -> CollectionConfig:
        """Change search-time parts of the config (``index``, ``fusion``) and write them to the manifest."""
        bad = sorted(set(changes) - {"index", "fusion"})
        if bad:
            raise InvalidInputError(f"update_config: {bad} cannot change once documents are stored; only index, fusion")
        self.lock_for_writing()
        self.config = self.config.replace(**changes)
        manifest = json.loads((self.path / "manifest.json").read_text())
        manifest["config"] = self.config.to_dict()
        write_json(self.path / "manifest.json", manifest)
        return self.config

    # -- merging -----------------------------------------------------------------------------------
    def _maybe_merge(self) -> None:
        pick = segments_to_merge(self.store, self.config)
        if pick:
            self._merge(pick)

    def backup(self, dest: str | Path) -> dict[str, Any]:
        """Copy the last commit into the new folder ``dest`` (a collection that opens anywhere; see
        :mod:`retrievo.store.backup`); safe while this or another process writes."""
        from retrievo.store.backup import backup

        return backup(self.path, dest)

    def compact(self) -> int:
        """Merge every segment into one without tombstones; returns the new generation."""
        self.commit()
        self.lock_for_writing()
        segs = [s for s, _ in self.store.segments()]
        if len(segs) > 1 or (segs and self._state.n_live < self._state.n_rows):
            self._merge(segs)
            self._state = self._load_snapshot()
        return self.generation

    def _merge(self, segs: list[int]) -> None:
        merge_segments(self.path, self.store, segs, self._layouts, self._write_derived)
        self._collect_garbage()

    # -- snapshots ---------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Reload if another process committed since this one last looked (or ``force``: also when a writer
        only added what older segments lacked); returns whether it did."""
        if force or self.store.generation() != self._state.generation:
            self._state = self._load_snapshot()
            return True
        return False

    def _load_snapshot(self) -> Snapshot:
        """The last committed generation. A writer in another process or thread may commit and remove the
        segments this reads in the meantime: then the next generation is read instead."""
        for attempt in range(20):
            try:
                return self._read_snapshot()
            except FileNotFoundError:
                if self._lock_fh is not None:  # the writer itself: a file is really missing
                    raise
                time.sleep(0.005 * (attempt + 1))
        return self._read_snapshot()

    def _read_snapshot(self) -> Snapshot:
        store = self.store
        store.conn.execute("BEGIN")  # one consistent snapshot of the SQLite side
        try:
            generation = store.generation()
            seg_rows = store.segments()
            rows = store.live_rows()
            vocab_list = store.vocab()
        finally:
            store.conn.execute("COMMIT")
        segments = [Segment(self.path / "segments", s, self._layouts) for s, _ in seg_rows]
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
            off = np.array([offsets[s] for s in segs_a.tolist()], dtype=np.int64)
            glob = off + rows_a
            ids[glob] = [r[2] for r in rows]
            live[glob] = True
        vocab = {t: i for i, t in enumerate(vocab_list)}
        snap = Snapshot(generation, segments, offsets, n, ids, live, vocab)
        for name, sig in self._signals.items():
            snap.signals[name] = sig.load(snap) if segments else None
        return snap

    # -- reads -------------------------------------------------------------------------------------
    def get(self, doc_id: str) -> Document:
        """The committed document with this id. Raises :class:`NotFoundError`."""
        found = self.store.get_docs([doc_id])
        if doc_id not in found:
            raise NotFoundError(f"no document with id {doc_id!r} in {self.path}")
        title, text, meta = found[doc_id]
        return Document(id=doc_id, title=title, text=text, metadata=meta)

    def documents_at(self, rows: Sequence[int], snapshot: Snapshot | None = None) -> list[Document | None]:
        """The stored documents of global ``rows`` of ``snapshot`` (default: the current one) — as they were in
        that generation, even when they have been replaced or deleted since (``None`` for a padding row)."""
        state = snapshot or self._state
        out: list[Document | None] = []
        fallback: dict[int, str] = {}
        for i, row in enumerate(rows):
            if row < 0:
                out.append(None)
                continue
            seg, local = state.segment_of(int(row))
            stored = seg.data.stored(local)
            if stored is None:  # a segment from before documents were kept in segments: SQLite, by id
                fallback[i] = str(state.ids[row])
                out.append(None)
            else:
                out.append(Document(id=stored["id"], title=stored["title"], text=stored["text"],
                                    metadata=stored["metadata"]))
        if fallback:
            found = self.get_many(list(fallback.values()))
            for i, doc in zip(fallback, found, strict=True):
                out[i] = doc
        return out

    def get_many(self, ids: Sequence[str]) -> list[Document | None]:
        found = self.store.get_docs(list(ids))
        return [
            Document(id=i, title=found[i][0], text=found[i][1], metadata=found[i][2]) if i in found else None
            for i in ids
        ]

    def count(self, filter: dict[str, Any] | str | None = None) -> int:
        """How many documents of the current generation match ``filter`` (all live ones without it)."""
        mask = self.filter_mask(filter, self._state)
        return int(self._state.n_live if mask is None else mask.sum())

    def scroll(self, filter: dict[str, Any] | str | None = None, batch: int = 1000,
               after: str | None = None) -> Iterator[list[Document]]:
        """The documents of the current generation that match ``filter``, ``batch`` at a time, in id order; resume
        after the id ``after`` (the last id of a page read before). One generation throughout, whatever commits
        happen meanwhile."""
        if batch < 1:
            raise InvalidInputError(f"scroll: batch must be >= 1, got {batch}")
        state = self._state
        mask = self.filter_mask(filter, state)
        rows = np.flatnonzero(state.live if mask is None else mask & state.live)
        ids = state.ids[rows].astype(str)
        order = np.argsort(ids, kind="stable")
        rows, ids = rows[order], ids[order]
        start = 0 if after is None else int(np.searchsorted(ids, after, side="right"))
        for i in range(start, len(rows), batch):
            yield [d for d in self.documents_at(rows[i:i + batch].tolist(), state) if d is not None]

    def iter_documents(self) -> Iterable[Document]:
        for doc_id, title, text, meta in self.store.iter_docs():
            yield Document(id=doc_id, title=title, text=text, metadata=meta)

    def fields(self) -> dict[str, set[str]]:
        """Known metadata fields and the kinds of values they hold."""
        return self.store.fields()

    def filter_mask(self, flt: dict[str, Any] | str | None, snapshot: Snapshot | None = None) -> np.ndarray | None:
        """Boolean mask over the rows of ``snapshot`` (default: the current one) of documents that match
        ``flt`` (``None``: no filter), evaluated on that generation's metadata columns alone (see
        :mod:`retrievo.indexes.filters`)."""
        flt = parse_filter(flt)
        if flt is None:
            return None
        plan = plan_filter(flt, self.store.fields())
        state = snapshot or self._state
        mask = np.zeros(state.n_rows, dtype=bool)
        legacy: set[int] = set()
        for seg in state.segments:
            off = state.offsets[seg.seg]
            if seg.columns is None:
                legacy.add(seg.seg)
            else:
                mask[off:off + seg.n_rows] = evaluate(plan, seg.columns, seg.n_rows)
        if legacy:  # segments from before metadata columns, until a writer opens the collection: SQLite
            where, params = compile_filter(plan, self.store.fields())
            for seg, row in self.store.select_rows(where, params):
                if seg in legacy:
                    mask[state.offsets[seg] + row] = True
        return mask & state.live

    def facets(self, fields: Sequence[str] | str | None = None, filter: dict[str, Any] | str | None = None,
               limit: int = 10) -> dict[str, dict[str, Any]]:
        """Per metadata field (default: all), its most frequent values and their document counts among the
        documents that pass ``filter``, with ``min``/``max`` for numbers (see :mod:`retrievo.store.facets`)."""
        from retrievo.store.facets import facets

        return facets(self, fields, filter, limit)

    def browse_tree(self, node: int = 0, documents: int = 20) -> dict[str, Any]:
        """A node of the semantic tree over the dense vectors (built on first use; :mod:`retrievo.signals.tree`):
        ``{id, depth, parent, size, summary (keywords), children: [{id, size, summary, leaf}], documents (a leaf's
        ids, at most ``documents``)}``. Node 0 is the root."""
        return self.signal("tree").browse(self._state, node, documents)  # type: ignore[attr-defined]

    def info(self) -> dict[str, Any]:
        """A summary: counts, segments, vocabulary, each signal's model and index sizes (RAM and disk)."""
        state = self._state
        disk = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        live_per_seg = dict(self.store.conn.execute("SELECT seg, COUNT(*) FROM docs GROUP BY seg").fetchall())
        out: dict[str, Any] = {
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
            "signals": list(self._signals),
        }
        for name in signal_names():
            sig = self._signals.get(name)
            out.update(sig.info(state) if sig is not None else signal_class(name).absent_info(self.config))
        out["bytes_on_disk"] = disk
        out["config"] = self.config.to_dict()
        return out
