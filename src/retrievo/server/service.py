"""The collections a server holds: safe names, a reader and a writer per collection, and a committer.

Each served collection has

- a **reader** (the folder opened read-only, one SQLite connection per request thread) that answers
  searches and document reads from the last committed generation; a search works on one snapshot, so no
  request ever sees a half-written commit. Reads never open the writer;
- a **writer** (:class:`~retrievo.store.collection.Collection` opened for writing, which takes the
  collection's process lock), opened when the server starts and otherwise by the first write. When another
  process holds the lock (a ``retrievo index`` running), the collection is served read-only, reported as
  ``locked``, and its writes answer 409 until the lock is free; the other collections are not affected.
  The writer is touched only by the collection's committer thread;
- a :class:`~retrievo.store.wal.WriteAheadLog`. A write request is validated, appended to the log
  (fsynced) and only then acknowledged with ``202``; the committer drains the log into the writer and
  commits (every ``commit_interval`` seconds, or at once when a client calls ``/commit``), refreshes the
  reader, then truncates the log. At start-up whatever the log still holds is replayed and committed
  before the first request is served, so an acknowledged write is never lost, whenever the process dies.
  When the log holds more than ``max_pending`` uncommitted documents and ids, writes are answered 429
  (with ``Retry-After``) until the committer catches up; a log that cannot be written (a full disk)
  answers 503 and makes ``/v1/health`` fail until a write succeeds again.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrievo.config import CollectionConfig
from retrievo.encoders.batching import QueryBatcher
from retrievo.errors import (
    CollectionExistsError,
    ConfigError,
    DuplicateIdError,
    InvalidInputError,
    NotFoundError,
    RetrievoError,
)
from retrievo.store.collection import SERVER_ID_ENV, Collection, CollectionLockedError
from retrievo.store.patch import merge_metadata
from retrievo.store.wal import WAL_FILENAME, WriteAheadLog
from retrievo.types import Document

__all__ = ["BusyError", "CollectionService", "Registry", "UnavailableError", "check_name"]

log = logging.getLogger("retrievo.server")

#: the longest a ``commit`` request waits for a committer that keeps working (a huge batch, a first model load)
COMMIT_WAIT_MAX = 30 * 60.0

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UnavailableError(RetrievoError):
    """The collection cannot take the request now (its committer failed, or the server is stopping)."""


class BusyError(RetrievoError):
    """Too many acknowledged writes wait for a commit; retry after :attr:`retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def check_name(name: str) -> str:
    """A collection name that is one plain folder name: letters, digits, ``_ . -``; no ``..``."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InvalidInputError(
            f"collection name {name!r} is not allowed: use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or digit, and no '..'"
        )
    return name


@dataclass
class _Waiter:
    seq: int
    event: threading.Event


class CollectionService:
    """One collection behind the server: reads, logged writes and a background committer.

    Args:
        writable: open the writer now (and replay the log); otherwise on the first write.
        max_pending: uncommitted documents and ids beyond which writes are refused with 429 (``None``: no bound).
    """

    def __init__(self, name: str, path: Path, commit_interval: float = 1.0, retry_max: float = 30.0,
                 writable: bool = True, max_pending: int | None = None, screen_max_fpr: float = 0.01,
                 screen: bool = False) -> None:
        self.name = name
        self.path = path
        self.commit_interval = commit_interval
        self.retry_max = retry_max  # a failed commit is retried after commit_interval, doubling up to this
        self.max_pending = max_pending
        self.screen_max_fpr = screen_max_fpr  # the admission gate's bound on ordinary documents held back
        self.screen = screen  # writes are screened by default: the committer calibrates the gate at start
        self.reader = Collection.open(path, readonly=True)
        dense = self.reader.signals.get("dense")
        if dense is not None:
            try:  # one model, its queries batched across concurrent searches (and lent to the writer)
                dense.encoder = QueryBatcher(dense.encoder)  # type: ignore[attr-defined]
            except ConfigError:  # a model that cannot load here: supplied vectors still work, and a
                pass  # text that needs encoding gets the loader's error when it comes
        self.writer: Collection | None = None
        self.wal: WriteAheadLog | None = None
        self.locked: str | None = None  # why the writer could not be opened (another process writes)
        self.error: str | None = None  # the last commit's failure, until a commit succeeds
        self.disk_error: str | None = None  # the last log write's failure, until one succeeds
        self._open_lock = threading.Lock()
        self._add_lock = threading.Lock()
        self._vec_lock = threading.Lock()
        self._vec_dim: int | None = None  # dimension of supplied vectors acknowledged before any commit
        self._model_dim: int | None = None
        self._applied = 0  # highest WAL seq committed to the collection
        self._working_since: float | None = None  # when the committer's current work (a commit, warm-up) began
        self._pending_items = 0  # documents and ids in the log, not committed yet
        self._cond = threading.Condition()
        self._stop = False
        self._kick = False
        self._thread: threading.Thread | None = None
        self._shared_wal: WriteAheadLog | None = None  # the log, when a sibling worker holds the collection
        self.replayed = 0
        if writable:
            self.open_writer(raise_locked=False)

    def open_writer(self, raise_locked: bool = True) -> bool:
        """Open the writer (take the collection's lock), replay the log and start the committer; ``False``
        (or :class:`CollectionLockedError` with ``raise_locked``) when another process writes the collection."""
        with self._open_lock:
            if self.writer is not None:
                return True
            if self._stop:
                raise UnavailableError("the server is shutting down")
            writer = Collection.open(self.path)
            try:
                writer.lock_for_writing()  # one writing process per collection: fail now, not at commit
            except CollectionLockedError as exc:
                writer.close()
                self.locked = f"{exc}; served read-only until it is done"
                if raise_locked:
                    raise CollectionLockedError(f"collection {self.name!r} is being written by another process "
                                                "(e.g. `retrievo index`); retry when it is done") from None
                return False
            except Exception:
                writer.close()
                raise
            self.locked = None
            writer.share_models(self.reader)  # one copy of each model in memory, shared by both views
            self.reader.refresh(force=True)  # the writer may have given older segments columns and documents
            self.writer = writer
            self.wal = WriteAheadLog(self.path / WAL_FILENAME)
            self._pending_items = self.wal.pending_items()
            try:  # replay what a previous process acknowledged, up to its first screened write: screening needs
                # the gate calibrated (an audit: seconds to minutes), which the committer does after start, so the
                # server answers meanwhile (reads see the last commit; the rest commits in the log's order)
                self.replayed = self._commit_pending(defer_screens=True)
                self._kick = len(self.wal) > 0  # what was deferred: committed as soon as the committer runs
            except Exception as exc:  # kept in the log; the committer retries it, and writes wait till then
                log.exception("replay of %s failed", self.name)
                self.error = f"{type(exc).__name__}: {exc}"
                self.replayed = 0
            self._thread = threading.Thread(target=self._run, name=f"retrievo-commit-{self.name}", daemon=True)
            self._thread.start()
            return True

    def view(self) -> Collection:
        """The reader, refreshed first when another process may have committed (no writer of ours)."""
        if self.writer is None:
            self.reader.refresh()
        return self.reader

    # -- writes --------------------------------------------------------------------------------------
    def sibling_writes(self) -> bool:
        """Whether the lock holder is another worker process of this same server (then it commits our log)."""
        me = os.environ.get(SERVER_ID_ENV)
        holder = self.reader.lock_holder()
        return bool(me and holder and holder.get("server") == me and holder.get("pid") != os.getpid())

    def _check_available(self, items: int = 0) -> tuple[Collection, WriteAheadLog]:
        """Where a write of ``items`` documents or ids goes: this process's writer and log (opened if need be),
        or — when a sibling worker of the same server holds the collection — the reader (to validate) and the
        shared log, which the sibling's committer drains."""
        if self._stop:
            raise UnavailableError("the server is shutting down")
        if not self.open_writer(raise_locked=False):
            if not self.sibling_writes():
                self.open_writer()  # raises CollectionLockedError: another program writes the collection
            if self._shared_wal is None:
                self._shared_wal = WriteAheadLog(self.path / WAL_FILENAME)
            pending = self._shared_wal.pending_items() if self.max_pending is not None and items else 0
            self._refuse_if_busy(pending, items)
            return self.view(), self._shared_wal
        if self.error is not None:
            raise UnavailableError(f"collection {self.name!r} cannot take writes: {self.error}")
        self._refuse_if_busy(self._pending_items, items)
        assert self.writer is not None and self.wal is not None  # opened above
        return self.writer, self.wal

    def _refuse_if_busy(self, pending: int, items: int) -> None:
        if self.max_pending is not None and items and pending + items > self.max_pending:
            raise BusyError(f"collection {self.name!r} has {pending} acknowledged documents and ids waiting for a "
                            f"commit (the bound is {self.max_pending}); retry shortly",
                            retry_after=max(1.0, self.commit_interval))

    def _log(self, wal: WriteAheadLog, op: str, payload: list[Any]) -> int:
        """Append to the log; a log that cannot be written (disk full, I/O error) is a 503, reported by health."""
        try:
            seq = wal.append(op, payload)
        except (OSError, sqlite3.Error) as exc:
            self.disk_error = f"{type(exc).__name__}: {exc}"
            log.error("write-ahead log of %s failed: %s", self.name, exc)
            raise UnavailableError(f"collection {self.name!r} cannot log writes: {exc}") from None
        self.disk_error = None
        with self._cond:
            self._pending_items += len(payload)
        return seq

    def upsert(self, docs: Iterable[Any], if_absent: bool = False, screen: bool = False) -> tuple[int, int]:
        """Validate, log durably and acknowledge; returns ``(count, seq)``. Committed in the background.

        Documents may carry a ``vector`` (computed elsewhere): every document of the request or none, all
        checked (shape, dimension, finite values) before anything is logged. ``if_absent``: refuse the
        request (:class:`DuplicateIdError`) when an id exists, committed or acknowledged (``Collection.add``).
        ``screen``: the committer passes the documents through the admission gate
        (:class:`~retrievo.eval.audit.Gate`): suspects go to the quarantine, stored, instead of the collection.
        """
        if if_absent:
            with self._add_lock:  # the check and the append together: two adds of one id cannot both pass
                return self._upsert(docs, if_absent=True, screen=screen)
        return self._upsert(docs, screen=screen)

    def _existing(self, writer: Collection, wal: WriteAheadLog, ids: list[str]) -> set[str]:
        """Which of ``ids`` exist once the acknowledged but uncommitted operations are applied."""
        live = writer.store.existing_ids(ids)
        wanted = set(ids)
        # what the log still holds (the writer's committer removes records once they are committed; records
        # it has applied but not removed yet are in the collection already, and reapplying them is harmless)
        for _seq, op, payload in wal.read(self._applied if wal is self.wal else 0):
            if op in ("upsert", "screen"):  # a screened document may end in the quarantine: taken all the same
                live |= {d["id"] for d in payload if d["id"] in wanted}
            else:
                live -= set(payload)
        return live

    def _upsert(self, docs: Iterable[Any], if_absent: bool = False, screen: bool = False) -> tuple[int, int]:
        docs = list(docs)
        writer, wal = self._check_available(len(docs))
        if screen:
            self._check_screenable(self.view())  # the committed state; the writer is the committer's alone
        vectors = [d.get("vector") if isinstance(d, dict) else None for d in docs]
        docs = [{k: v for k, v in d.items() if k != "vector"} if isinstance(d, dict) else d for d in docs]
        batch = writer.validate_documents(docs, "documents")
        if not batch:
            raise InvalidInputError("documents: the request holds no documents")
        if if_absent:
            taken = self._existing(writer, wal, [d.id for d in batch])
            if taken:
                raise DuplicateIdError(f"documents: {len(taken)} id(s) already exist, e.g. {sorted(taken)[:3]}; "
                                       "upsert replaces documents")
        payload = [d.to_dict() for d in batch]
        if any(v is not None for v in vectors):
            missing = [i for i, v in enumerate(vectors) if v is None]
            if missing:
                raise InvalidInputError(
                    f"documents[{missing[0]}]: no 'vector', while other documents of the request have one; "
                    "give a vector for every document of a request or for none")
            with self._vec_lock:
                arr = writer.check_vectors(vectors, batch, "documents")
                dim = self._vector_dim(writer)
                if dim is not None and arr.shape[1] != dim:
                    raise InvalidInputError(
                        f"documents: vectors have dimension {arr.shape[1]} but the collection's have {dim}")
                self._vec_dim = arr.shape[1]
                for d, v in zip(payload, arr.tolist(), strict=True):
                    d["vector"] = v
        seq = self._log(wal, "screen" if screen else "upsert", payload)
        return len(batch), seq

    def _check_screenable(self, coll: Collection) -> None:
        """The gate compares documents with the collection under its dense model: refuse a screened write at
        once (nothing logged) when it cannot work, rather than fail at every commit."""
        if not coll.has_dense:
            raise InvalidInputError(f"screen: collection {self.name!r} has no dense model, and the admission gate "
                                    "reads dense vectors; write without screen")
        if not len(coll):
            raise InvalidInputError(f"screen: collection {self.name!r} holds no documents yet, and the admission "
                                    "gate is calibrated on the documents it holds; add a trusted set without "
                                    "screen first")

    def release(self, ids: list[str]) -> tuple[int, int]:
        """Move quarantined documents into the collection (an explicit decision): logged as an upsert (durable,
        acknowledged) and then removed from the quarantine; returns ``(count, seq)``. An id the quarantine
        does not hold is a :class:`NotFoundError` and nothing changes."""
        from retrievo.eval.audit import Quarantine

        _, wal = self._check_available(len(ids))
        with Quarantine(self.path) as q:
            docs = q.documents(list(dict.fromkeys(ids)))
            seq = self._log(wal, "upsert", [d.to_dict() for d in docs])
            # after the log has them: a crash between leaves both, losing nothing
            q.remove([d.id for d in docs], released=True)
        return len(docs), seq

    def drop_quarantined(self, ids: list[str]) -> int:
        """Forget quarantined documents for good (an explicit decision); an unknown id changes nothing."""
        from retrievo.eval.audit import Quarantine

        self._check_available()
        with Quarantine(self.path) as q:
            return q.drop(ids)

    def _vector_dim(self, coll: Collection) -> int | None:
        """The dimension supplied vectors must have: committed vectors', else the model's (when it loads),
        else that of vectors this process already acknowledged."""
        flat = coll.snapshot().signals.get("dense")
        if flat is not None and flat.dim:
            return int(flat.dim)
        if self._model_dim is None:
            try:
                self._model_dim = int(coll.encoder.dim)
            except ConfigError:  # a model that cannot load here: only supplied vectors are possible
                self._model_dim = 0
        return self._model_dim or self._vec_dim

    def patch(self, doc_id: str, metadata: dict[str, Any]) -> tuple[int, int]:
        """Merge ``metadata`` into a document's (``None`` removes a key) and log it as an upsert of the document
        with its stored text and dense vector (nothing is re-encoded). Pending writes are committed first, so
        the patch applies to the latest version of the document."""
        if self.pending:
            self.commit()
        coll = self.view()
        snap = coll.snapshot()
        row = snap.row_of(doc_id)
        if row is None:
            raise NotFoundError(f"no document with id {doc_id!r}")
        (old,) = coll.documents_at([row], snap)
        doc: dict[str, Any] = {**old.to_dict(), "metadata": merge_metadata(old.metadata, metadata)}
        flat = snap.signals.get("dense")
        if flat is not None:
            doc["vector"] = flat.gather([row])[0].tolist()
        return self.upsert([doc])

    def delete(self, ids: list[str]) -> tuple[int, int]:
        _, wal = self._check_available(len(ids))
        bad = [i for i in ids if not isinstance(i, str) or not i]
        if bad or not ids:
            raise InvalidInputError(f"ids: a non-empty list of non-empty strings is required, got {bad[:3]!r}")
        for i in ids:
            Document(id=i, text="x").validate("ids")  # the same rules as a document's id (valid Unicode)
        seq = self._log(wal, "delete", list(dict.fromkeys(ids)))
        return len(ids), seq

    def commit(self, timeout: float = 60.0) -> int:
        """Wait until everything acknowledged so far is committed; returns the visible generation.

        The wait is bounded by work, not by the clock: while the committer is working (a long commit, the
        first model load and ONNX export of a fresh cache) it goes on, up to :data:`COMMIT_WAIT_MAX`; only a
        committer that stays idle for ``timeout`` seconds without reaching the writes ends it with 503."""
        _, wal = self._check_available()
        target = wal.last_seq()
        if wal is not self.wal:  # a sibling worker commits: wait until its committer has removed our records
            deadline = time.monotonic() + timeout
            while wal.count_upto(target):
                if time.monotonic() > deadline:
                    raise UnavailableError(f"commit of {self.name!r} did not finish within {timeout:.0f} s")
                time.sleep(0.02)
            return self.view().generation
        with self._cond:
            self._kick = True
            self._cond.notify_all()
            start = time.monotonic()
            deadline = start + timeout
            while self._applied < target and self.error is None:
                now = time.monotonic()
                if self._working_since is not None:  # the committer is at it: its work sets the wait
                    deadline = max(deadline, now + timeout)
                if now >= deadline or now - start > COMMIT_WAIT_MAX:
                    state = "still working" if self._working_since is not None else "idle"
                    raise UnavailableError(f"commit of {self.name!r} did not finish within {now - start:.0f} s "
                                           f"(the committer is {state}); the writes stay logged and will commit")
                self._cond.wait(min(1.0, deadline - now))
        if self.error is not None:
            raise UnavailableError(f"collection {self.name!r}: commit failed: {self.error}")
        return self.reader.generation

    # -- committer -----------------------------------------------------------------------------------
    def _commit_pending(self, defer_screens: bool = False) -> int:
        """Apply every logged operation to the writer, commit, refresh the reader, truncate the log
        (``defer_screens``: only those before the first screened write; it and the rest stay logged)."""
        assert self.writer is not None and self.wal is not None  # the committer runs once they are open
        seen = self.wal.last_seq()  # everything up to here is either still logged or already committed
        ops = list(self.wal.read(self._applied, seen))
        deferred = False
        if defer_screens:
            cut = next((i for i, (_, op, _) in enumerate(ops) if op == "screen"), len(ops))
            ops, deferred = ops[:cut], cut < len(ops)
        if not ops:
            if not deferred:
                with self._cond:
                    self._applied = max(self._applied, seen)
                    self._cond.notify_all()
            return 0
        hi = ops[-1][0]
        with self._cond:
            self._working_since = time.monotonic()
        try:
            for _seq, op, payload in ops:
                if op == "delete":
                    self.writer.delete(payload)
                    continue
                vectors = [d.get("vector") for d in payload]
                docs = [Document.from_any({k: v for k, v in d.items() if k != "vector"}) for d in payload]
                if op == "screen":
                    self._screen(docs, None if vectors[0] is None else vectors)
                else:
                    self.writer.upsert(docs, vectors=None if vectors[0] is None else vectors)
            self.writer.commit()
        except Exception:
            self.writer.rollback()
            raise
        finally:
            with self._cond:
                self._working_since = None
                self._cond.notify_all()
        self.wal.truncate(hi)
        self.reader.refresh()
        left = self.wal.pending_items()
        with self._cond:
            self._applied = hi
            self._pending_items = left
            self._cond.notify_all()
        return len(ops)

    def _screen(self, docs: list[Document], vectors: Any) -> None:
        """A logged screened upsert: through the writer's gate. Should the gate be unable to work now (the
        documents it calibrates on were all deleted since the request was acknowledged), the documents are held
        in the quarantine with that reason: never admitted unscreened, never dropped."""
        from retrievo.eval.audit import Quarantine, Suspect

        assert self.writer is not None
        try:
            self.writer.upsert(docs, vectors=vectors, screen=True, max_fpr=self.screen_max_fpr)
        except InvalidInputError as exc:
            with Quarantine(self.path) as q:
                q.hold(docs, [Suspect(d.id, 0.0, [f"not screened: {exc}"], {}) for d in docs])

    def _run(self) -> None:
        """Commit every ``commit_interval`` (or when kicked). A failed commit keeps the log — nothing
        acknowledged is dropped — sets :attr:`error` (writes are refused with 503 meanwhile) and is retried
        after ``commit_interval``, doubling up to ``retry_max`` seconds, so a cause that goes away (a model
        installed, disk space freed) needs no restart; the first commit that succeeds clears the error."""
        self._warm_up()
        wait, fails = self.commit_interval, 0
        while True:
            with self._cond:
                if not self._kick and not self._stop:
                    self._cond.wait(wait)
                self._kick = False
                stop = self._stop
            try:
                self._commit_pending()
            except Exception as exc:  # keep the log: nothing acknowledged is dropped
                log.exception("commit of %s failed; retrying", self.name)
                with self._cond:
                    self.error = f"{type(exc).__name__}: {exc}"
                    self._cond.notify_all()
                if stop:
                    return
                fails += 1
                wait = min(self.commit_interval * 2 ** (fails - 1), self.retry_max)
                continue
            if self.error is not None:
                log.warning("commit of %s succeeded again", self.name)
                with self._cond:
                    self.error = None
                    self._cond.notify_all()
            wait, fails = self.commit_interval, 0
            if stop:
                return

    def _warm_up(self) -> None:
        """Load the collection's encoders (the first load of a fresh cache exports ONNX graphs: tens of seconds)
        in the committer's thread when it starts, so that the first write's commit does not pay for it; a
        commit that waits meanwhile sees the committer working."""
        with self._cond:
            self._working_since = time.monotonic()
        try:
            for name in ("dense", "splade"):
                sig = self.reader.signals.get(name)
                if sig is not None and not self._stop:
                    try:
                        sig.encoder.encode_queries(["warm up"])  # type: ignore[attr-defined]
                    except Exception:  # a model that cannot load here: the write that needs it gets the error
                        log.debug("warm-up of the %s encoder of %s failed", name, self.name, exc_info=True)
            writer = self.writer
            if self.screen and writer is not None and writer.has_dense and len(writer) and not self._stop:
                from retrievo.eval.audit import gate_of

                try:  # an audit of the collection (seconds to a minute): not on the first screened write's commit
                    gate_of(writer, self.screen_max_fpr).calibrate()
                except Exception:
                    log.warning("calibration of the admission gate of %s failed", self.name, exc_info=True)
        finally:
            with self._cond:
                self._working_since = None
                self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Acknowledged write requests not committed yet (0 while another process holds the collection)."""
        return 0 if self.wal is None else len(self.wal)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        with self._open_lock:
            if self._thread is not None:
                self._thread.join(timeout=120)
            for wal in (self.wal, self._shared_wal):
                if wal is not None:
                    wal.close()
            if self.writer is not None:
                self.writer.close()
        dense = self.reader.signals.get("dense")
        if dense is not None and isinstance(getattr(dense, "_encoder", None), QueryBatcher):
            dense._encoder.close()  # type: ignore[attr-defined]
        self.reader.close()


class Registry:
    """The collections under one data folder, each opened on first use (reads never take a writer)."""

    def __init__(self, root: Path, commit_interval: float = 1.0, max_pending: int | None = None,
                 screen_max_fpr: float = 0.01, screen: bool = False) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.commit_interval = commit_interval
        self.max_pending = max_pending
        self.screen_max_fpr = screen_max_fpr
        self.screen = screen
        self._open: dict[str, CollectionService] = {}
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        path = (self.root / check_name(name)).resolve()
        if path.parent != self.root:  # belt and braces: the name must stay one level under the root
            raise InvalidInputError(f"collection name {name!r} escapes the data folder")
        return path

    def names(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir()
            if p.is_dir() and NAME_RE.match(p.name) and (p / "manifest.json").exists()
        )

    def get(self, name: str, writable: bool = False) -> CollectionService:
        """The service of collection ``name`` (opened read-only on first use; ``writable`` also opens its
        writer when no other process holds the collection)."""
        svc = self._open.get(name)  # the common case, without a lock or a file system call
        if svc is not None and not writable:
            return svc
        path = self._path(name)
        with self._lock:
            svc = self._open.get(name)
            if svc is None:
                if not (path / "manifest.json").exists():
                    raise NotFoundError(f"no collection named {name!r}")
                svc = self._open[name] = CollectionService(name, path, self.commit_interval, writable=writable,
                                                           max_pending=self.max_pending,
                                                           screen_max_fpr=self.screen_max_fpr, screen=self.screen)
                return svc
        if writable:
            svc.open_writer(raise_locked=False)
        return svc

    def create(self, name: str, config: CollectionConfig) -> CollectionService:
        path = self._path(name)
        with self._lock:
            if path.exists():
                raise CollectionExistsError(f"collection {name!r} already exists")
            try:
                Collection.create(path, config).close()
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
        return self.get(name, writable=True)

    def open_all(self) -> None:
        """Open every collection for writing (replaying its log); one that cannot be opened is logged and
        skipped, one that another process writes is served read-only: the others serve either way."""
        for name in self.names():
            try:
                self.get(name, writable=True)
            except Exception:
                log.exception("collection %s could not be opened; it is not served", name)

    def services(self) -> list[CollectionService]:
        with self._lock:
            return list(self._open.values())

    def close(self) -> None:
        with self._lock:
            for svc in self._open.values():
                svc.close()
            self._open.clear()
