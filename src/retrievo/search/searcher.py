"""The searcher: a :class:`~retrievo.request.SearchRequest` over one snapshot — signals, then stages.

A search resolves its request against the collection's config, takes one snapshot (one generation: rows,
live rows, each signal's structure), checks and loads what its signals and stages need (query vectors,
the query adapter, the calibrator of its setting) before any retrieval, computes the filter's allowed
rows, retrieves each signal's candidates (as deep as the stages ask: fusion wants ``fusion.depth``,
feedback first only its feedback documents), runs the active stages in order until one list is left, and
turns its rows into document ids. Learning from judged queries (calibration, the query adapter) runs
searches too, so it lives here and files what it learns under the request's setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError
from retrievo.request import SearchRequest
from retrievo.search.artefacts import LearnedArtefacts
from retrievo.search.explain import Trace
from retrievo.search.stages import stages
from retrievo.signals.base import Candidates, SearchContext
from retrievo.signals.registry import signal_class
from retrievo.store.snapshot import Snapshot
from retrievo.types import SearchResults

__all__ = ["Searcher"]


class Searcher:
    """Searches a collection (any object with ``config``, ``path``, ``readonly``, ``signals``, ``snapshot()``
    and ``filter_mask()``; :class:`~retrievo.store.collection.Collection` is one)."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.artefacts = LearnedArtefacts(collection.path, collection.readonly)

    def resolve(self, request: SearchRequest | None) -> SearchRequest:
        """``request`` (default: BM25, k 10) resolved against the collection's config."""
        return (request or SearchRequest()).resolve(self.collection.config)

    def search(self, queries: str | Sequence[str] | None, request: SearchRequest | None = None, *,
               query_ids: Sequence[str] | None = None, query_vectors: Any = None,
               show_progress: bool = False, snapshot: Snapshot | None = None) -> SearchResults:
        """Run ``request`` for ``queries`` (one query or a list; ``None`` with ``query_vectors`` alone for the
        dense signal) on the collection's last committed generation.

        Args:
            queries: query texts (a single query is a batch of one).
            request: the settings (default: ``SearchRequest()``, BM25 with k 10).
            query_ids: ids for the result rows (default ``"0"``, ``"1"``, …).
            query_vectors: dense query vectors computed elsewhere, ``(len(queries), dim)``.
            show_progress: accepted for symmetry with indexing; searches are short.
            snapshot: the generation to search (default: the collection's current one).

        Returns:
            :class:`SearchResults` shaped ``(len(queries), k)``.
        """
        coll = self.collection
        if queries is None and query_vectors is not None:
            queries = [""] * (1 if np.ndim(query_vectors) == 1 else len(query_vectors))
        if isinstance(queries, str):
            queries = [queries]
        queries = list(queries)  # type: ignore[arg-type]
        if any(not isinstance(q, str) for q in queries):
            raise InvalidInputError("search: every query must be a string")
        req = self.resolve(request)
        if query_ids is None:
            query_ids = [str(i) for i in range(len(queries))]
        elif len(query_ids) != len(queries):
            raise InvalidInputError(f"search: {len(query_ids)} query ids for {len(queries)} queries")
        for name in req.signals:
            if name not in coll.signals:
                raise InvalidInputError(signal_class(name).missing(req.method, coll.path))
        signals = {name: coll.signals[name] for name in req.signals}
        snapshot = snapshot or coll.snapshot()
        qv = None
        if query_vectors is not None:
            takers = [s for s in signals.values() if s.takes_query_vectors]
            if not takers:
                raise InvalidInputError(f"search: query_vectors are for the dense signal, and method {req.method!r} has none")
            qv = takers[0].check_query_vectors(query_vectors, len(queries), snapshot)
        ctx = SearchContext(coll, snapshot, req, queries, qv, None, signals, self.artefacts)
        active = [st for st in stages() if st.active(req)]
        for sig in signals.values():
            sig.prepare(ctx)
        for st in active:
            st.prepare(ctx)
        ctx.allowed = coll.filter_mask(req.filter, snapshot)
        nq = len(queries)
        if not snapshot.segments or nq == 0:
            empty = SearchResults.from_lists([[] for _ in range(nq)], req.k, tuple(query_ids), req.method)
            return dataclasses.replace(empty, generation=snapshot.generation)
        depth = req.depth()
        firsts: dict[str, int] = {}
        for name, sig in signals.items():
            first = depth
            for st in active:
                first = st.first_depth(req, sig, first)
            firsts[name] = first
        for name, sig in signals.items():  # signals that answer asynchronously (shards) all start first
            sig.begin(ctx, firsts[name])
        lists = {name: sig.search(ctx, firsts[name]) for name, sig in signals.items()}
        trace = Trace() if req.explain else None
        if trace is not None:
            trace.record(None, lists)
        for st in active:
            lists = st.apply(ctx, lists)
            if trace is not None:
                trace.record(st.name, lists)
        if len(lists) != 1:
            raise InvalidInputError(f"search: {len(lists)} lists are left after the stages ({', '.join(lists)}); "
                                    "several signals need the fusion stage")
        (final,) = lists.values()
        res = self._results(final, snapshot, req, tuple(query_ids))
        if "corrections" in ctx.scratch:  # what typo correction changed in each query
            res = dataclasses.replace(res, corrections=tuple(ctx.scratch["corrections"]))
        if trace is not None:
            res = dataclasses.replace(res, explanations=trace.explain(res.rows, res.counts))
        return res

    @staticmethod
    def _results(final: Candidates, snapshot: Any, req: SearchRequest, query_ids: tuple[str, ...]) -> SearchResults:
        k = req.k
        rows, scores, probabilities = final.rows, final.scores, final.probabilities
        if rows.shape[1] != k:  # a stage may hand over a wider or narrower list: padded or cut to k
            fit = Candidates.empty(len(rows), k)
            w = min(k, rows.shape[1])
            fit.rows[:, :w], fit.scores[:, :w] = rows[:, :w], scores[:, :w]
            if probabilities is not None:
                probabilities = np.pad(probabilities, ((0, 0), (0, max(0, k - w))))[:, :k]
            rows, scores = fit.rows, fit.scores
        counts = np.minimum(final.counts, k).astype(np.int64, copy=False)
        short = np.flatnonzero(counts < k)
        if len(short):  # entries past a query's count are padding, whatever a stage left there
            rows = rows.copy()
            for i in short:
                rows[i, counts[i]:] = -1
        ids = snapshot.ids.take(rows, mode="clip")  # -1 clipped to row 0, blanked next
        ids[rows < 0] = ""
        return SearchResults(ids=ids, scores=scores.astype(np.float32, copy=False), counts=counts, query_ids=query_ids,
                             method=req.method, probabilities=probabilities, generation=snapshot.generation,
                             rows=rows)

    # -- learning from judged queries ------------------------------------------------------------------
    def calibrate(self, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                  request: SearchRequest | None = None, depth: int = 20, save: bool = True) -> Any:
        """Fit the probability of relevance of ``request``'s results on judged queries (see
        :mod:`retrievo.search.calibration`) and file it under the request's setting for ``min_probability``.

        Args:
            queries: ``{query_id: text}`` of a training split (not the split you report).
            qrels: ``{query_id: {doc_id: relevance}}``; queries without judgements are skipped.
            request: the setting to calibrate (its ``k`` and cut-off are ignored).
            depth: results per query to fit on.
            save: write it into the collection folder (``calibration/<setting>.json``).

        Returns:
            the :class:`~retrievo.search.calibration.ScoreCalibrator`.
        """
        from retrievo.search.calibration import ScoreCalibrator

        request = (request or SearchRequest()).replace(k=depth, min_probability=None)
        if save:
            self.artefacts.check_can_save("calibration")
        qids = [q for q in queries if qrels.get(q)]
        if not qids:
            raise InvalidInputError("calibrate: no query has relevance judgements")
        res = self.search([queries[q] for q in qids], request, query_ids=qids)
        labels = np.array([[int(qrels[q].get(str(d), 0) > 0) for d in row] for q, row in zip(qids, res.ids, strict=True)])
        resolved = self.resolve(request)
        cal = ScoreCalibrator.fit(res.scores, res.counts, labels, request.method, key=resolved.key())
        if save:
            self.artefacts.save_calibrator(cal, resolved)
        return cal

    def calibrator(self, request: SearchRequest | None = None) -> Any:
        """The calibrator filed for ``request``'s setting (:class:`InvalidInputError` when there is none)."""
        return self.artefacts.calibrator(self.resolve(request))

    def calibration_path(self, request: SearchRequest | None = None) -> Any:
        return self.artefacts.calibration_path(self.resolve(request))

    def fit_query_adapter(self, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                          negatives: int = 30, save: bool = True, query_vectors: Any = None,
                          **train_kwargs: Any) -> Any:
        """Learn a query adapter for the dense signal from judged queries (see :mod:`retrievo.search.adapters`):
        each query's relevant documents against the dense index's top ``negatives`` results that are not
        judged relevant. Stored vectors are read, never re-encoded; searches with ``adapter=True`` use it.

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
            self.artefacts.check_can_save("query adapter")
        coll = self.collection
        snapshot = coll.snapshot()
        dense = coll.signals.get("dense")
        flat = snapshot.signals.get("dense")
        if dense is None or flat is None:
            raise InvalidInputError(f"{coll.path}: no dense vectors are stored; a query adapter needs them")
        row_of = {snapshot.ids[r]: r for r in np.flatnonzero(snapshot.live)}
        qids = [q for q in queries if any(v > 0 and d in row_of for d, v in qrels.get(q, {}).items())]
        if len(qids) < 5:
            raise InvalidInputError(f"fit_query_adapter: {len(qids)} queries have relevant documents here; 5 needed")
        if query_vectors is None:
            qv = dense.encoder.encode_queries([queries[q] for q in qids])
        else:
            where = {q: i for i, q in enumerate(queries)}
            qv = dense.check_query_vectors(query_vectors, len(where), snapshot)[[where[q] for q in qids]]
        pos_rows = [np.array([row_of[d] for d, v in qrels[q].items() if v > 0 and d in row_of]) for q in qids]
        depth = negatives + max(len(p) for p in pos_rows)
        rows, _, counts = dense.index(snapshot).search(qv, depth, snapshot.live)
        neg_rows = [np.array([r for r in rows[i, :counts[i]] if r not in set(pos_rows[i].tolist())][:negatives],
                             dtype=np.int64) for i in range(len(qids))]
        adapter = fit_query_adapter(qv, [flat.gather(p) for p in pos_rows], [flat.gather(n) for n in neg_rows],
                                    **train_kwargs)
        if save:
            adapter.save(self.artefacts.adapter_folder)
        return adapter

    def fit_query_map(self, model: str, sample: int = 4000, save: bool = True, **kwargs: Any) -> Any:
        """Fit a map from ``model``'s query vectors into the stored dense vectors' space, from a seeded sample of
        documents encoded by ``model`` beside their stored vectors (see :mod:`retrievo.search.query_maps`);
        searches with ``query_map=True`` encode queries with ``model`` and map them."""
        from retrievo.search.query_maps import fit_query_map

        if save:
            self.artefacts.check_can_save("query map")
        qm = fit_query_map(self.collection, model, sample=sample, **kwargs)
        if save:
            qm.save(self.artefacts.query_map_folder)
        return qm

    def query_adapter(self) -> Any:
        """The query adapter :meth:`fit_query_adapter` saved (read again when the file changes)."""
        return self.artefacts.query_adapter()
