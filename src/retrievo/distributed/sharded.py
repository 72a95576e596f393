"""A collection split into shards served by Ray actors, searched with the same :class:`SearchRequest`.

Layout: a root folder with ``sharded.json`` (the shard folders, in hash order) and one ordinary collection
per shard; a document lives in shard ``blake2b_64(id) mod n`` (:func:`shard_of`), so adds, upserts and deletes
are routed by id and a re-run never duplicates a document.

A search runs the ordinary :class:`~retrievo.search.searcher.Searcher` on the driver over a
:class:`~retrievo.distributed.search.ShardedSnapshot`, with driver-side signals whose ``search`` fans out to the
shards (:mod:`retrievo.distributed.search`; this module holds the talking to the shards and the writes):

- **global statistics** (DFS-style, as Elasticsearch's ``dfs_query_then_fetch``): the driver sums every
  shard's live documents, total length and document frequency per *term string* once per set of shard
  generations, installs the sums on each shard (aligned to its vocabulary), and the shards score BM25 with
  them, so scores equal those of one collection holding every document; typo correction and RM3 use the
  same sums;
- each query is analysed or encoded once, on the driver (dense and SPLADE query vectors are sent to the
  shards, which never load a model to search);
- each shard returns its own top ``depth`` per signal; the driver merges them per signal (ties: score, then
  document id), then runs the stages once, centrally: feedback (RM3 with the feedback documents' terms and
  Rocchio with their vectors fetched from their shards), fusion, a cross-encoder rerank (documents fetched
  from their shards) and the calibrated cut-off (calibrators kept in the root folder);
- every call of one search reads the generation each shard pinned when the statistics were gathered, so an
  answer never mixes generations; a shard that restarted (or moved on) answers *stale*, and the driver
  gathers the statistics again and repeats the search.

A shard actor that dies is restarted by Ray from its folder (``max_restarts=-1``); a search meanwhile
raises :class:`~retrievo.errors.ShardUnavailableError` naming the shard, or, with ``allow_partial=True``,
returns the other shards' results with ``SearchResults.missing_shards`` set.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievo.analysis.analyzer import Analyzer
from retrievo.config import CollectionConfig
from retrievo.distributed.search import SIGNALS, GlobalStats, ShardedSearcher, ShardedSnapshot, StaleSearch
from retrievo.distributed.shard import StaleAnswer
from retrievo.errors import (
    ConfigError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    ShardUnavailableError,
)
from retrievo.request import SearchRequest
from retrievo.signals.base import Candidates, SearchContext
from retrievo.types import Document, SearchResults

__all__ = ["MANIFEST", "ShardedCollection", "ShardedSnapshot", "shard_of", "write_manifest"]

MANIFEST = "sharded.json"
#: the stages a sharded search runs on the driver (the others read per-row data the driver does not hold)
CENTRAL_STAGES = ("feedback", "fusion", "rerank", "cutoff")


def shard_of(doc_id: str, n_shards: int) -> int:
    """The shard of a document id: a stable 64-bit BLAKE2b hash of its UTF-8 bytes, modulo ``n_shards``."""
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n_shards


def write_manifest(root: str | Path, n_shards: int) -> list[Path]:
    """Start a sharded collection in ``root``: its ``sharded.json`` naming ``n_shards`` shard folders (not yet
    created); returns their paths, in hash order."""
    from retrievo.errors import CollectionExistsError

    root = Path(root)
    if n_shards < 1:
        raise InvalidInputError(f"n_shards must be at least 1, got {n_shards}")
    if (root / MANIFEST).exists():
        raise CollectionExistsError(f"{root}: a sharded collection exists here already")
    root.mkdir(parents=True, exist_ok=True)
    names = [f"shard-{i:04d}" for i in range(n_shards)]
    (root / MANIFEST).write_text(json.dumps({"format": 1, "hash": "blake2b-64 mod n", "shards": names}, indent=2))
    return [root / n for n in names]


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError("sharded collections run on Ray: pip install 'retrievo[ray]'") from exc
    return ray


class ShardedCollection:
    """A collection split into shards, each held by a Ray actor (see the module docstring).

    Open one with :meth:`open` (or make one with :meth:`create`); it searches like a
    :class:`~retrievo.store.collection.Collection` (``search``, ``count``, ``get``, and, when opened writable,
    ``add``/``upsert``/``delete``/``commit`` routed by id).
    """

    def __init__(self, root: Path, paths: list[str], config: CollectionConfig, handles: list[Any], writable: bool,
                 timeout: float) -> None:
        self.path = root
        self.paths = paths
        self.config = config
        self.readonly = not writable
        self.timeout = timeout
        self.handles = handles
        self.analyzer = Analyzer(config.analyzer)
        self._signals = {name: cls(self) for name, cls in SIGNALS.items() if cls.enabled(config)}
        self._stats: GlobalStats | None = None
        self._searcher: Any = None

    # -- opening ----------------------------------------------------------------------------------------
    @staticmethod
    def _read_manifest(root: Path) -> list[str]:
        try:
            data = json.loads((root / MANIFEST).read_text())
        except FileNotFoundError:
            raise NotFoundError(f"{root}: no {MANIFEST}; not a sharded collection (retrievo.distributed.ingest "
                                "or ShardedCollection.create make one)") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{root / MANIFEST}: not valid JSON: {exc}") from None
        shards = data.get("shards") if isinstance(data, dict) else None
        if not isinstance(shards, list) or not shards or not all(isinstance(s, str) for s in shards):
            raise ConfigError(f"{root / MANIFEST}: 'shards' must be a non-empty list of folder names")
        return [str(root / s) for s in shards]

    @classmethod
    def create(cls, root: str | Path, n_shards: int, config: CollectionConfig | None = None,
               ray_address: str | None = None, timeout: float = 120.0,
               actor_options: Mapping[str, Any] | None = None) -> ShardedCollection:
        """A new sharded collection of ``n_shards`` empty shards in ``root``, opened for writing (each shard
        folder is created by its actor, on the node it runs on)."""
        write_manifest(root, n_shards)
        return cls.open(root, ray_address=ray_address, writable=True, timeout=timeout,
                        actor_options=actor_options, config=config or CollectionConfig())

    @classmethod
    def open(cls, paths_or_root: str | Path | Sequence[str | Path], ray_address: str | None = None,
             writable: bool = False, timeout: float = 120.0, actor_options: Mapping[str, Any] | None = None,
             config: CollectionConfig | None = None) -> ShardedCollection:
        """Open a sharded collection: a root folder with ``sharded.json``, or the shard folders in hash order.

        Args:
            paths_or_root: the root folder, or a list of shard folders (as the nodes that serve them see them).
            ray_address: the Ray cluster to join (``None``: the one already initialised, else a local one).
            writable: open every shard for writing (one writer per shard at a time).
            timeout: seconds a shard may take to answer before it is reported unavailable.
            actor_options: Ray options of the shard actors (``num_cpus``, ``resources``, a scheduling strategy).
            config: create missing shard folders with this config (:meth:`create` uses it).
        """
        ray = _ray()
        if isinstance(paths_or_root, (str, Path)):
            root = Path(paths_or_root)
            paths = cls._read_manifest(root)
        else:
            paths = [str(p) for p in paths_or_root]
            if not paths:
                raise InvalidInputError("open: no shard folders given")
            root = Path(paths[0]).parent
        if not ray.is_initialized():
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
        from retrievo.distributed.shard import ShardServer

        opts = {"max_restarts": -1, "max_task_retries": 0, **dict(actor_options or {})}
        actor = ray.remote(ShardServer).options(**opts)
        handles = [actor.remote(p, i, writable, config) for i, p in enumerate(paths)]
        described = []
        for i, ref in enumerate([h.describe.remote() for h in handles]):
            try:
                described.append(ray.get(ref, timeout=timeout))
            except Exception as exc:
                for h in handles:
                    ray.kill(h)
                raise ShardUnavailableError(f"shard {i} ({paths[i]}) could not be opened: {_cause(exc)}") from None
        configs = [CollectionConfig.from_dict(d["config"]) for d in described]
        for i, c in enumerate(configs[1:], 1):
            if c.to_dict() != configs[0].to_dict():
                for h in handles:
                    ray.kill(h)
                raise ConfigError(f"shard {i} ({paths[i]}) has a different config from shard 0 ({paths[0]}); "
                                  "every shard of a collection must be built alike")
        return cls(root, paths, configs[0], handles, writable, timeout)

    def close(self) -> None:
        """Stop the shard actors (their folders stay)."""
        ray = _ray()
        for h in self.handles:
            try:
                ray.kill(h, no_restart=True)
            except Exception:  # pragma: no cover - already gone
                pass
        self.handles = []

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def n_shards(self) -> int:
        return len(self.paths)

    @property
    def signals(self) -> dict[str, Any]:
        return self._signals

    # -- talking to the shards --------------------------------------------------------------------------
    def _gather(self, refs: Sequence[Any], what: str, shards: Sequence[int] | None = None,
                missing: set[int] | None = None) -> list[Any]:
        """The shards' answers in order; a shard that does not answer raises :class:`ShardUnavailableError`
        naming it (or, when ``missing`` is given — a search that allows partial results — answers ``None`` and
        is added to ``missing``)."""
        ray = _ray()
        shards = list(range(len(refs))) if shards is None else list(shards)
        out: list[Any] = []
        for s, ref in zip(shards, refs, strict=True):
            try:
                ans = ray.get(ref, timeout=self.timeout)
            except Exception as exc:
                cause = _cause(exc)
                if isinstance(cause, InvalidInputError):
                    raise cause from None
                if missing is not None:
                    missing.add(s)
                    out.append(None)
                    continue
                raise ShardUnavailableError(
                    f"shard {s} ({self.paths[s]}) did not answer {what}: {cause}; Ray restarts a shard that died from "
                    "its folder, so a later search reaches it again") from None
            if isinstance(ans, StaleAnswer):
                raise StaleSearch(f"shard {s} moved to generation {ans.get('generation')}")
            out.append(ans)
        return out

    def global_stats(self, partial: bool = False) -> GlobalStats:
        """The global BM25 statistics of the shards' current generations (gathered and installed once per
        set of generations; with ``partial``, of the shards that answer)."""
        stats = self._stats
        if stats is not None:
            return stats
        down: set[int] | None = set() if partial else None
        answers = self._gather([h.local_stats.remote() for h in self.handles], "the statistics request",
                               missing=down)
        live = [(s, a) for s, a in enumerate(answers) if a is not None]
        if not live:
            raise ShardUnavailableError(f"no shard of {self.path} answered")
        all_terms = np.concatenate([a["terms"] for _, a in live]).astype(str)
        all_df = np.concatenate([np.asarray(a["df"], dtype=np.int64) for _, a in live])
        terms, inverse = np.unique(all_terms, return_inverse=True)
        df = np.bincount(inverse, weights=all_df, minlength=len(terms)).astype(np.int64)
        n_docs = sum(a["n_docs"] for _, a in live)
        total = sum(a["total_len"] for _, a in live)
        token = uuid.uuid4().hex
        refs, at = [], 0
        for s, a in live:
            n = len(a["terms"])
            refs.append(self.handles[s].install_stats.remote(token, a["generation"], n_docs, total, df[inverse[at:at + n]]))
            at += n
        if not all(self._gather(refs, "the statistics", [s for s, _ in live])):
            raise ShardUnavailableError(f"{self.path}: a shard restarted while the statistics were installed; retry")
        dims = {a["dense_dim"] for _, a in live if a["dense_dim"] is not None}
        gens = tuple(a["generation"] if a is not None else -1 for a in answers)
        rows = tuple(a["n_rows"] if a is not None else 0 for a in answers)
        stats = GlobalStats(token, gens, terms, df, n_docs, total, rows, min(dims) if dims else None,
                            missing=tuple(s for s, a in enumerate(answers) if a is None))
        if not stats.missing:
            self._stats = stats
        return stats

    def snapshot(self, partial: bool = False) -> ShardedSnapshot:
        """A view of the shards' current generations for one search."""
        return ShardedSnapshot(self.global_stats(partial), partial)

    @property
    def generation(self) -> int:
        """The sum of the shards' generations (grows with every commit of any shard)."""
        return sum(self.global_stats().generations)

    def __len__(self) -> int:
        return self.global_stats().n_docs

    def refresh(self) -> None:
        """See the shards' last commits (from writers elsewhere) at the next search."""
        self._stats = None

    def filter_mask(self, flt: Any, snapshot: Any = None) -> None:
        """Checks the filter's syntax; each shard evaluates it on its own rows."""
        from retrievo.indexes.filters import parse_filter

        parse_filter(flt)
        return None

    def submit(self, ctx: SearchContext, signal: str, payload: Any, depth: int,
               weights: Sequence[np.ndarray] | None = None) -> None:
        """Send one signal's search to every shard without waiting (:meth:`collect` gathers it)."""
        snap: ShardedSnapshot = ctx.snapshot  # type: ignore[assignment]
        st = snap.stats
        shards = [s for s in range(self.n_shards) if s not in snap.missing]
        refs = [self.handles[s].search.remote(st.token, st.generations[s], ctx.request, signal, payload, depth,
                                              weights) for s in shards]
        ctx.scratch[("sharded", signal)] = (depth, shards, refs)

    def collect(self, ctx: SearchContext, signal: str, payload: Any, depth: int) -> Candidates:
        """The search :meth:`submit` sent for ``signal`` (sent now, with ``payload()``, if it was not)."""
        sent = ctx.scratch.pop(("sharded", signal), None)
        if sent is None or sent[0] != depth:
            return self.fan_out(ctx, signal, payload(), depth)
        return self._merge(ctx, signal, depth, sent[1], sent[2])

    def fan_out(self, ctx: SearchContext, signal: str, payload: Any, depth: int,
                weights: Sequence[np.ndarray] | None = None) -> Candidates:
        """One signal's top ``depth`` per query over every shard, merged (ties: score, then document id)."""
        self.submit(ctx, signal, payload, depth, weights)
        _, shards, refs = ctx.scratch.pop(("sharded", signal))
        return self._merge(ctx, signal, depth, shards, refs)

    def _merge(self, ctx: SearchContext, signal: str, depth: int, shards: list[int], refs: list[Any]) -> Candidates:
        snap: ShardedSnapshot = ctx.snapshot  # type: ignore[assignment]
        got = self._gather(refs, f"the {signal} search", shards, missing=snap.missing if snap.partial else None)
        answers = [(s, a) for s, a in zip(shards, got, strict=True) if a is not None]
        nq = ctx.n_queries
        out = Candidates.empty(nq, max(int(depth), 1))
        for i in range(nq):
            parts = [(s, a["rows"][i, :a["counts"][i]], a["scores"][i, :a["counts"][i]], a["ids"][i, :a["counts"][i]])
                     for s, a in answers]
            if not parts:
                continue
            scores = np.concatenate([p[2] for p in parts])
            ids = np.concatenate([p[3] for p in parts]).astype(str)
            rows = np.concatenate([p[1] for p in parts])
            shard = np.concatenate([np.full(len(p[1]), p[0], dtype=np.int64) for p in parts])
            order = np.lexsort((ids, -scores))[:depth]
            n = len(order)
            out.rows[i, :n] = snap.keys(shard[order], rows[order], ids[order])
            out.scores[i, :n] = scores[order]
            out.counts[i] = n
        return out

    def fetch(self, snap: ShardedSnapshot, what: str, keys: Sequence[int]) -> list[Any]:
        """Per key, what its shard answers to ``what`` (``doc_terms``, ``vectors`` or ``documents``) for its row."""
        groups = snap.by_shard(keys)
        order = list(groups)
        refs = [getattr(self.handles[s], what).remote(g, [snap.row[k] for k in groups[(s, g)]]) for s, g in order]
        got = self._gather(refs, f"the {what} request", [s for s, _ in order],
                           missing=snap.missing if snap.partial else None)
        found: dict[int, Any] = {}
        for sg, ans in zip(order, got, strict=True):
            for k, v in zip(groups[sg], ans if ans is not None else [None] * len(groups[sg]), strict=True):
                found[k] = v
        return [found.get(int(k)) for k in keys]

    def documents_at(self, keys: Sequence[int], snapshot: ShardedSnapshot) -> list[Document | None]:
        """The stored documents of the candidates ``keys`` of a search (``None`` for padding)."""
        return self.fetch(snapshot, "documents", list(keys))

    # -- search -----------------------------------------------------------------------------------------
    @property
    def searcher(self) -> ShardedSearcher:
        if self._searcher is None:
            self._searcher = ShardedSearcher(self)
        return self._searcher

    def check(self, request: SearchRequest) -> SearchRequest:
        """``request`` resolved, refused with a clear message when it needs what a sharded search lacks."""
        from retrievo.search.stages import stages

        req = request.resolve(self.config)
        for name in req.signals:
            if name not in SIGNALS:
                raise InvalidInputError(f"search: the {name!r} signal is not searched across shards yet; a sharded "
                                        f"collection searches {', '.join(SIGNALS)}")
        for st in stages():
            if st.active(req) and st.name not in CENTRAL_STAGES:
                raise InvalidInputError(f"search: the {st.name!r} stage does not run on a sharded collection yet")
        if req.rerank in ("e2rank", "maxsim"):
            raise InvalidInputError(f"search: rerank={req.rerank!r} reads stored vectors per row, which a sharded "
                                    "search does not fetch yet; rerank with a cross-encoder instead")
        if req.adapter or req.query_map:
            raise InvalidInputError("search: the query adapter and query maps are not fitted on sharded collections yet")
        return req

    def search(self, queries: str | Sequence[str] | None, k: int = 10, method: str = "bm25",
               filter: Mapping[str, Any] | str | None = None, query_ids: Sequence[str] | None = None,
               query_vectors: Any = None, allow_partial: bool = False, request: SearchRequest | None = None,
               **settings: Any) -> SearchResults:
        """Search every shard as one collection (the keywords of ``Collection.search``), results identical to
        those of one collection holding every document for exact indexes.

        Args:
            allow_partial: when a shard does not answer, return the others' results with
                ``missing_shards`` naming it instead of raising :class:`ShardUnavailableError`.
        """
        if request is None:
            request = SearchRequest(method=method, k=k, filter=filter, **settings)
        return self.searcher.search(queries, request, query_ids=query_ids, query_vectors=query_vectors,
                                    partial=allow_partial)

    # -- writes and reads by id -------------------------------------------------------------------------
    def _check_writable(self, what: str) -> None:
        if self.readonly:
            raise InvalidInputError(f"{what}: {self.path} was opened read-only; open it with writable=True")

    def _route(self, what: str, docs: Iterable[Document | Mapping[str, Any]], vectors: Any, screen: bool,
               max_fpr: float) -> int:
        from retrievo.store.collection import Collection

        self._check_writable(what)
        batch = Collection.validate_documents(docs, what)
        vecs = None if vectors is None else np.asarray(vectors, dtype=np.float32)
        if vecs is not None and (vecs.ndim != 2 or len(vecs) != len(batch)):
            raise InvalidInputError(f"{what}: vectors must have shape ({len(batch)}, dim); got {vecs.shape}")
        if screen:
            self._check_screenable(what, max_fpr)
        groups: dict[int, list[int]] = {}
        for i, d in enumerate(batch):
            groups.setdefault(shard_of(d.id, self.n_shards), []).append(i)
        order = sorted(groups)
        refs = [getattr(self.handles[s], what).remote([batch[i] for i in groups[s]],
                                                      None if vecs is None else vecs[groups[s]],
                                                      max_fpr if screen else None) for s in order]
        return sum(self._gather(refs, what, order))

    def _check_screenable(self, what: str, max_fpr: float) -> None:
        """Each shard's gate is calibrated on that shard's documents under the dense model: refuse a screened
        write before anything is buffered when it cannot work."""
        if not (0.0 < max_fpr < 1.0):
            raise InvalidInputError(f"{what}: max_fpr must be in (0, 1), got {max_fpr}")
        if self.config.dense is None:
            raise InvalidInputError(f"{what}: screen: {self.path} has no dense model, and the admission gate reads "
                                    "dense vectors; write without screen")
        empty = [i for i, n in enumerate(self._gather([h.count.remote(None) for h in self.handles], "count")) if not n]
        if empty:
            raise InvalidInputError(f"{what}: screen: shard {empty[0]} of {self.path} holds no documents yet, and "
                                    "each shard's gate is calibrated on the documents it holds; add a trusted set "
                                    "without screen first")

    def add(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any = None, screen: bool = False,
            max_fpr: float = 0.01) -> int:
        """Add new documents, each to its shard (uncommitted until :meth:`commit`). ``screen``: through the shard's
        admission gate (:class:`~retrievo.eval.audit.Gate`, at most ``max_fpr`` of ordinary documents held back),
        suspects quarantined on their shard (:meth:`quarantined`). Returns how many were taken."""
        return self._route("add", docs, vectors, screen, max_fpr)

    def upsert(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any = None, screen: bool = False,
               max_fpr: float = 0.01) -> int:
        """Add or replace documents, each in its shard (uncommitted until :meth:`commit`; ``screen`` as in
        :meth:`add`)."""
        return self._route("upsert", docs, vectors, screen, max_fpr)

    # -- the admission gate's quarantine, kept by each shard for the ids routed to it ------------------------
    def quarantined(self, text_chars: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Every shard's held documents, most suspicious first (see :meth:`retrievo.Collection.quarantined`)."""
        lists = self._gather([h.quarantined.remote(text_chars, limit) for h in self.handles], "quarantined")
        held = sorted((d for part in lists for d in part), key=lambda d: (-(d["suspicion"] or 0.0), d["id"]))
        return held if limit is None else held[:limit]

    def quarantine_count(self) -> int:
        return sum(self._gather([h.quarantine_count.remote() for h in self.handles], "quarantine_count"))

    def _quarantine_groups(self, what: str, ids: Iterable[str]) -> dict[int, list[str]]:
        """The ids by shard, every one of them held (else :class:`NotFoundError` before anything changes)."""
        self._check_writable(what)
        groups: dict[int, list[str]] = {}
        for d in dict.fromkeys(str(i) for i in ids):
            groups.setdefault(shard_of(d, self.n_shards), []).append(d)
        order = sorted(groups)
        missing = [m for part in self._gather([self.handles[s].not_quarantined.remote(groups[s]) for s in order],
                                              what, order) for m in part]
        if missing:
            raise NotFoundError(f"no quarantined document with id {missing[0]!r} in {self.path}")
        return groups

    def release(self, ids: Iterable[str]) -> int:
        """Buffer quarantined documents into their shards (an explicit decision); the commit that adds them
        removes them from the quarantine. An id no shard holds is a :class:`NotFoundError` and nothing changes."""
        groups = self._quarantine_groups("release", ids)
        return sum(self._gather([self.handles[s].release.remote(g) for s, g in groups.items()], "release",
                                list(groups)))

    def drop_quarantined(self, ids: Iterable[str]) -> int:
        """Forget quarantined documents for good; an id no shard holds is a :class:`NotFoundError` and nothing
        changes."""
        groups = self._quarantine_groups("drop_quarantined", ids)
        return sum(self._gather([self.handles[s].drop_quarantined.remote(g) for s, g in groups.items()],
                                "drop_quarantined", list(groups)))

    def update_metadata(self, updates: Mapping[str, Mapping[str, Any]]) -> int:
        """Merge ``{id: {key: value}}`` into documents' metadata on their shards, text and vectors kept (see
        :meth:`retrievo.Collection.update_metadata`; uncommitted until :meth:`commit`)."""
        self._check_writable("update_metadata")
        groups: dict[int, dict[str, Any]] = {}
        for d, m in updates.items():
            groups.setdefault(shard_of(str(d), self.n_shards), {})[str(d)] = dict(m)
        order = sorted(groups)
        return sum(self._gather([self.handles[s].update_metadata.remote(groups[s]) for s in order],
                                "update_metadata", order))

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id from their shards (uncommitted until :meth:`commit`)."""
        self._check_writable("delete")
        groups: dict[int, list[str]] = {}
        for d in ids:
            groups.setdefault(shard_of(str(d), self.n_shards), []).append(str(d))
        order = sorted(groups)
        return sum(self._gather([self.handles[s].delete.remote(groups[s]) for s in order], "delete", order))

    def commit(self) -> tuple[int, ...]:
        """Commit every shard (in parallel); returns their generations. The next search sees the commits."""
        self._check_writable("commit")
        gens = tuple(self._gather([h.commit.remote() for h in self.handles], "commit"))
        self._stats = None
        return gens

    def rollback(self) -> None:
        """Drop every shard's uncommitted writes."""
        self._check_writable("rollback")
        self._gather([h.rollback.remote() for h in self.handles], "rollback")

    def get(self, doc_id: str) -> Document:
        (doc,) = self.get_many([doc_id])
        if doc is None:
            raise NotFoundError(f"{self.path}: no document with id {doc_id!r}")
        return doc

    def get_many(self, ids: Sequence[str]) -> list[Document | None]:
        groups: dict[int, list[int]] = {}
        for i, d in enumerate(ids):
            groups.setdefault(shard_of(str(d), self.n_shards), []).append(i)
        order = sorted(groups)
        answers = self._gather([self.handles[s].get_many.remote([str(ids[i]) for i in groups[s]]) for s in order],
                               "get", order)
        out: list[Document | None] = [None] * len(ids)
        for s, ans in zip(order, answers, strict=True):
            for i, doc in zip(groups[s], ans, strict=True):
                out[i] = doc
        return out

    def count(self, filter: Mapping[str, Any] | str | None = None) -> int:
        """Documents over all shards (matching ``filter``)."""
        return sum(self._gather([h.count.remote(filter) for h in self.handles], "count"))

    def facets(self, fields: Sequence[str] | str | None = None, filter: Mapping[str, Any] | str | None = None,
               limit: int = 10) -> dict[str, dict[str, Any]]:
        """Metadata values and their document counts over all shards (as :meth:`Collection.facets`): each shard
        counts every value of its documents, the driver sums them and keeps the ``limit`` most frequent."""
        from retrievo.store.facets import merge_facets

        answers = self._gather([h.facets.remote(filter) for h in self.handles], "facets")
        merged = merge_facets([part for _, part in answers], limit)
        if fields is None:
            return merged
        names = [fields] if isinstance(fields, str) else list(fields)
        known = {f for shard_fields, _ in answers for f in shard_fields}
        unknown = [f for f in names if f not in known]
        if unknown:
            raise InvalidInputError(f"facets: unknown field(s) {unknown}; the collection has {sorted(known)}")
        return {f: merged[f] for f in names if f in merged}

    def info(self) -> dict[str, Any]:
        """Each shard's ``info()`` and the totals."""
        shards = self._gather([h.info.remote() for h in self.handles], "info")
        return {"path": str(self.path), "shards": len(shards), "documents": sum(s.get("documents", 0) for s in shards),
                "per_shard": shards}


def _cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised inside the actor (Ray wraps it), else ``exc``."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc
