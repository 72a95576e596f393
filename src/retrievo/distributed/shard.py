"""One shard of a sharded collection: a collection opened from its folder, as a Ray actor serves it.

:class:`ShardServer` is plain Python (Ray wraps it in an actor, and tests may call it directly). It keeps the
generations a driver is searching pinned, so that every call of one search — first pass, feedback, the
documents of the results — reads the same generation, and it scores BM25 with the *global* statistics the
driver installed (documents, total length and document frequency per term summed over every shard, as
Elasticsearch's ``dfs_query_then_fetch`` does), so a shard's BM25 scores are those the whole corpus in one
collection would give. Dense and SPLADE scores need no statistics; their query vectors come from the driver,
which encodes each query once.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError
from retrievo.indexes.inverted import BM25Stats, InvertedIndex
from retrievo.signals.base import Candidates, SearchContext
from retrievo.store.collection import Collection
from retrievo.store.snapshot import Snapshot

__all__ = ["ShardServer", "StaleAnswer"]

_PINNED = 4  # generations kept for searches in flight


class StaleAnswer(dict):
    """What a shard answers when it no longer holds the generation or statistics a search was planned on (the
    driver then gathers the statistics again and repeats the search)."""


class ShardServer:
    """A shard: the collection in ``path`` (read-only unless ``writable``), number ``number`` of its set.

    Args:
        path: the shard's collection folder (created with ``config`` when missing and ``config`` is given).
        number: the shard's position (named in errors).
        writable: open it for writing (one writer per shard).
        config: the collection config to create it with, when the folder does not exist yet.
    """

    def __init__(self, path: str, number: int, writable: bool = False, config: Any = None) -> None:
        self.path, self.number = str(path), int(number)
        if config is not None and not os.path.exists(os.path.join(self.path, "manifest.json")):
            Collection.create(self.path, config).close()
        self.coll = Collection.open(self.path, readonly=not writable)
        self._pinned: OrderedDict[int, Snapshot] = OrderedDict()
        self._stats: OrderedDict[tuple[int, str], BM25Stats] = OrderedDict()

    # -- generations and statistics -------------------------------------------------------------------
    def _pin(self, snap: Snapshot) -> Snapshot:
        self._pinned[snap.generation] = snap
        self._pinned.move_to_end(snap.generation)
        while len(self._pinned) > _PINNED:
            self._pinned.popitem(last=False)
        return snap

    def describe(self) -> dict[str, Any]:
        """The shard's number, path, config and current generation (what the driver checks at open)."""
        return {"number": self.number, "path": self.path, "config": self.coll.config.to_dict(),
                "generation": self.coll.generation, "pid": os.getpid()}

    def local_stats(self, refresh: bool = True) -> dict[str, Any]:
        """Pin the current generation (after loading the last commit, unless ``refresh`` is false) and report
        what the driver sums into global statistics: every vocabulary term with its live document frequency,
        the live documents and their total length, the dense dimension."""
        if refresh:
            self.coll.refresh()
        snap = self._pin(self.coll.snapshot())
        inv = snap.signals.get("bm25")
        terms = snap.terms()
        flat = snap.signals.get("dense")
        if inv is None:
            df, n_docs, total = np.zeros(len(terms), np.int64), 0, 0
        else:
            df, n_docs, total = inv.stats.df[: len(terms)], inv.stats.n_docs, inv.stats.total_len
        return {"number": self.number, "generation": snap.generation, "terms": terms, "df": df,
                "n_docs": int(n_docs), "total_len": int(total), "n_rows": int(snap.n_rows),
                "dense_dim": None if flat is None else int(flat.dim)}

    def install_stats(self, token: str, generation: int, n_docs: int, total_len: int, df: np.ndarray) -> bool:
        """Keep the global statistics ``token`` for the pinned ``generation`` (``df`` aligned to its vocabulary);
        false when that generation is no longer pinned."""
        if generation not in self._pinned:
            return False
        self._stats[(generation, token)] = BM25Stats(int(n_docs), int(total_len), np.asarray(df, dtype=np.int64))
        while len(self._stats) > _PINNED:
            self._stats.popitem(last=False)
        return True

    def _view(self, generation: int, token: str) -> Snapshot | StaleAnswer:
        """The pinned generation with its BM25 index scored under the global statistics (built once)."""
        snap = self._pinned.get(generation)
        stats = self._stats.get((generation, token))
        if snap is None or stats is None:
            return StaleAnswer(number=self.number, generation=self.coll.generation)
        key = ("distributed", "view", token)
        view = snap.derived.get(key)
        if view is None:
            signals = dict(snap.signals)
            data = self.coll.signals["bm25"].data(snap) if snap.segments else None
            if data is not None:
                signals["bm25"] = InvertedIndex(data.tf_indptr, data.tf_terms, data.tf_counts, data.doclen, snap.live,
                                                len(snap.vocab), self.coll.config.bm25, stats=stats)
            view = snap.derived[key] = dataclasses.replace(snap, signals=signals)  # derived: shared with snap
        return view

    # -- search -------------------------------------------------------------------------------------------
    def search(self, token: str, generation: int, request: Any, signal: str, payload: Any, depth: int,
               weights: Sequence[np.ndarray] | None = None) -> dict[str, Any] | StaleAnswer:
        """One signal's top ``depth`` of every query on this shard, under the request's filter.

        ``payload`` is the queries as the driver prepared them: analysed terms (``bm25``; with ``weights`` after
        RM3), query vectors (``dense``) or sparse query vectors (``splade``). Returns the rows, their document
        ids and scores, or :class:`StaleAnswer`."""
        view = self._view(generation, token)
        if isinstance(view, StaleAnswer):
            return view
        nq = len(payload) if signal == "bm25" else payload.shape[0]
        if not view.segments:
            cand = Candidates.empty(nq, max(int(depth), 1))
        else:
            sig = self.coll.signal(signal)
            queries = [""] * nq
            ctx = SearchContext(self.coll, view, request, queries, None, None, {signal: sig}, None)
            ctx.allowed = self.coll.filter_mask(request.filter, view)
            if signal == "bm25":
                vocab = view.vocab
                ids, w = [], []
                for i, terms in enumerate(payload):
                    keep = [j for j, t in enumerate(terms) if t in vocab]
                    ids.append(np.array([vocab[terms[j]] for j in keep], dtype=np.int64))
                    if weights is not None:
                        w.append(np.asarray(weights[i], dtype=np.float32)[keep])
                cand = Candidates.of(view.signals["bm25"].search(ids, depth, ctx.allowed,
                                                                 weights=None if weights is None else w))
            elif signal == "dense":
                ctx.query_vectors = np.asarray(payload, dtype=np.float32)
                cand = sig.search(ctx, depth)
            elif signal == "splade":
                ctx.scratch[("queries", "splade")] = payload
                cand = sig.search(ctx, depth)
            else:
                raise InvalidInputError(f"shard {self.number}: the {signal!r} signal is not searched across shards")
        ids = np.full(cand.rows.shape, "", dtype=object)
        valid = cand.rows >= 0
        ids[valid] = view.ids[cand.rows[valid]]
        return {"rows": cand.rows, "scores": cand.scores, "counts": cand.counts, "ids": ids.astype(str)}

    # -- what the driver's stages read ----------------------------------------------------------------
    def doc_terms(self, generation: int, rows: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]] | StaleAnswer:
        """The analysed terms (as strings) and their counts of each row's document (for RM3)."""
        from retrievo.signals.bm25 import BM25Signal

        snap = self._pinned.get(generation)
        if snap is None:
            return StaleAnswer(number=self.number, generation=self.coll.generation)
        terms = snap.terms()
        out = []
        for r in rows:
            ids, counts = BM25Signal.doc_terms(snap, int(r))
            out.append((terms[ids], np.asarray(counts, dtype=np.int64)))
        return out

    def vectors(self, generation: int, rows: Sequence[int]) -> np.ndarray | StaleAnswer:
        """The stored dense vectors of ``rows`` (for Rocchio feedback)."""
        snap = self._pinned.get(generation)
        if snap is None:
            return StaleAnswer(number=self.number, generation=self.coll.generation)
        return np.asarray(snap.signals["dense"].gather(np.asarray(rows, dtype=np.int64)), dtype=np.float32)

    def documents(self, generation: int, rows: Sequence[int]) -> list[Any] | StaleAnswer:
        """The stored documents of ``rows`` as they were in ``generation`` (for rerankers and results)."""
        snap = self._pinned.get(generation)
        if snap is None:
            return StaleAnswer(number=self.number, generation=self.coll.generation)
        return self.coll.documents_at(list(rows), snap)

    # -- writes and reads by id -----------------------------------------------------------------------
    def add(self, docs: list[Any], vectors: Any = None, screen_max_fpr: float | None = None) -> int:
        return self._write("add", docs, vectors, screen_max_fpr)

    def upsert(self, docs: list[Any], vectors: Any = None, screen_max_fpr: float | None = None) -> int:
        return self._write("upsert", docs, vectors, screen_max_fpr)

    def _write(self, what: str, docs: list[Any], vectors: Any, screen_max_fpr: float | None) -> int:
        """Buffer documents; with ``screen_max_fpr`` through this shard's admission gate, calibrated
        on this shard's documents (a shard is a hashed share of the collection: its documents are the reference
        for the ones routed to it), suspects quarantined in this shard's folder. Returns how many were taken."""
        if screen_max_fpr is None:
            return getattr(self.coll, what)(docs, vectors=vectors)
        getattr(self.coll, what)(docs, vectors=vectors, screen=True, max_fpr=screen_max_fpr)
        return len(docs)

    # -- the admission gate's quarantine (this shard's folder) ----------------------------------------------
    def quarantined(self, text_chars: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return self.coll.quarantined(text_chars, limit)

    def quarantine_count(self) -> int:
        return self.coll.quarantine_count()

    def not_quarantined(self, ids: list[str]) -> list[str]:
        """The ids this shard's quarantine does not hold."""
        held = {d["id"] for d in self.coll.quarantined()}
        return [i for i in ids if i not in held]

    def release(self, ids: list[str]) -> int:
        return self.coll.release(ids)

    def drop_quarantined(self, ids: list[str]) -> int:
        return self.coll.drop_quarantined(ids)

    def update_metadata(self, updates: dict[str, dict[str, Any]]) -> int:
        return self.coll.update_metadata(updates)

    def delete(self, ids: list[str]) -> int:
        return self.coll.delete(ids)

    def commit(self) -> int:
        self.coll.commit()
        return self.coll.generation

    def rollback(self) -> None:
        self.coll.rollback()

    def pending(self) -> int:
        return self.coll.pending()

    def get_many(self, ids: list[str]) -> list[Any]:
        return self.coll.get_many(ids)

    def count(self, filter: Mapping[str, Any] | str | None = None) -> int:
        return self.coll.count(filter)

    def facets(self, filter: Mapping[str, Any] | str | None = None) -> tuple[list[str], dict[str, Any]]:
        """The metadata fields this shard knows, and every value of each counted (the driver merges the
        shards' and cuts)."""
        from retrievo.store.facets import facets

        return sorted(self.coll.store.fields()), facets(self.coll, None, filter, None)

    def info(self) -> dict[str, Any]:
        return self.coll.info()

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self.coll.close()
