"""``Collection.search``, ``calibrate``, the query adapter and the index accessors: the search side's methods as a
collection offers them, kept apart from storage. Each is a thin shim — it builds a
:class:`~retrievo.request.SearchRequest` or asks a signal — over :class:`~retrievo.search.searcher.Searcher`
(``collection.searcher``), where the work is; :class:`~retrievo.store.collection.Collection` inherits them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from retrievo.config import DenseIndexConfig, FusionConfig, PRFConfig, SparseConfig
from retrievo.errors import InvalidInputError
from retrievo.request import SearchRequest
from retrievo.types import SearchResults

__all__ = ["SearchShims"]


class SearchShims:
    """The search-side methods of a collection (needs ``config``, ``path``, ``searcher``, ``_signals``, ``_state``)."""

    config: Any
    path: Any
    searcher: Any
    _signals: dict[str, Any]
    _state: Any

    def search(
        self,
        queries: str | Sequence[str] | None,
        k: int = 10,
        method: str = "bm25",
        filter: dict[str, Any] | str | None = None,
        query_ids: Sequence[str] | None = None,
        fusion: FusionConfig | Mapping[str, Any] | None = None,
        index: DenseIndexConfig | Mapping[str, Any] | str | None = None,
        show_progress: bool = False,
        sparse: SparseConfig | Mapping[str, Any] | str | None = None,
        query_vectors: Any = None,
        prf: PRFConfig | bool | None = None,
        min_probability: float | None = None,
        correct_typos: bool = False,
        adapter: bool = False,
        options: Mapping[str, Any] | None = None,
        request: SearchRequest | None = None,
        **settings: Any,
    ) -> SearchResults:
        """Search the last committed state (a shim: builds a :class:`~retrievo.request.SearchRequest` and runs
        it with :attr:`searcher`).

        Args:
            queries: one query or a list of them (a single query is a batch of one).
            k: results per query.
            method: a signal (``"bm25"``, ``"dense"``, ``"splade"`` or a plugin's), ``"hybrid"`` (=
                ``"bm25+dense"``), or signals joined by ``+`` and fused, e.g. ``"bm25+dense+splade"``.
            filter: a metadata filter (see :mod:`retrievo.indexes.filters`); top-k is exact within it.
            query_ids: ids for the result rows (default ``"0"``, ``"1"``, …).
            fusion: how several signals are fused: a :class:`FusionConfig` (replacing the collection's) or a
                dict of the fields to change in the collection's.
            index: the dense index to use (a kind name, a :class:`DenseIndexConfig`, or a dict of fields to
                change in the collection's ``config.index``); default: the collection's.
            sparse: SPLADE search settings: ``"exact"`` / ``"approx"``, or a dict / :class:`SparseConfig`
                overriding ``mode``, ``query_cut``, ``heap_factor`` of the collection's ``config.sparse``.
            query_vectors: dense query vectors computed elsewhere, ``(len(queries), dim)``; the dense signal
                uses them instead of encoding the query texts. With ``method="dense"`` the queries may be
                ``None`` (a batch of ``len(query_vectors)``).
            prf: pseudo-relevance feedback (``True`` for the defaults of :class:`PRFConfig`): the BM25
                signal searches again with its RM3-expanded query, the dense signal with its Rocchio-moved
                query vector (see :mod:`retrievo.search.prf`); the SPLADE signal is left as it is.
            min_probability: a calibrated cut-off: keep only results whose probability of relevance
                reaches it, by the calibrator :meth:`calibrate` fitted for these settings (the results then
                carry ``probabilities``).
            correct_typos: BM25 signal: a query term that is not in the vocabulary is replaced by the
                vocabulary term one edit away that the most documents contain (see
                :mod:`retrievo.analysis.typos`; the lookup table is built on first use).
            adapter: dense signal: move the query vectors with the query adapter :meth:`fit_query_adapter`
                learnt for this collection (documents keep their vectors).
            options: plugin options by name.
            request: a whole :class:`~retrievo.request.SearchRequest` (then the settings above are ignored).
            settings: any other field of :class:`~retrievo.request.SearchRequest` (``rerank``,
                ``rerank_depth``, …).

        Returns:
            :class:`SearchResults` shaped ``(len(queries), k)``.
        """
        if request is None:
            request = SearchRequest(method=method, k=k, filter=filter, fusion=fusion, index=index, sparse=sparse,
                                    prf=prf, correct_typos=correct_typos, adapter=adapter,
                                    min_probability=min_probability, options=options or {}, **settings)
        return self.searcher.search(queries, request, query_ids=query_ids, query_vectors=query_vectors,
                                    show_progress=show_progress)

    def calibrate(self, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], method: str = "bm25",
                  depth: int = 20, save: bool = True, request: SearchRequest | None = None,
                  **search_kwargs: Any) -> Any:
        """Fit the probability of relevance of a search setting's results on judged queries and keep it for
        ``min_probability`` (see :meth:`Searcher.calibrate <retrievo.search.searcher.Searcher.calibrate>`).

        Args:
            queries: ``{query_id: text}`` of a training split (not the split you report).
            qrels: ``{query_id: {doc_id: relevance}}``; queries without judgements are skipped.
            method: the search method to calibrate.
            depth: results per query to fit on.
            save: write ``calibration/<setting>.json`` into the collection folder.
            request: the whole setting (then ``method`` and ``search_kwargs`` are ignored).
            search_kwargs: further :meth:`search` settings (fusion, index, sparse, prf, correct_typos,
                adapter, options) to fit under; a search is cut by the calibrator of its own settings only.
        """
        if request is None:
            request = SearchRequest(method=method, **search_kwargs)
        return self.searcher.calibrate(queries, qrels, request, depth=depth, save=save)

    def calibrator(self, method: str | SearchRequest = "bm25", **search_kwargs: Any) -> Any:
        """The calibrator :meth:`calibrate` saved for a setting (a method and :meth:`search` settings, or a
        request), read again when its file changes; :class:`InvalidInputError` when there is none."""
        request = method if isinstance(method, SearchRequest) else SearchRequest(method=method, **search_kwargs)
        return self.searcher.calibrator(request)

    def fit_query_adapter(self, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                          negatives: int = 30, save: bool = True, query_vectors: Any = None,
                          **train_kwargs: Any) -> Any:
        """Learn a query adapter for the dense signal from judged queries (see
        :meth:`Searcher.fit_query_adapter <retrievo.search.searcher.Searcher.fit_query_adapter>`)."""
        return self.searcher.fit_query_adapter(queries, qrels, negatives=negatives, save=save,
                                               query_vectors=query_vectors, **train_kwargs)

    def query_adapter(self) -> Any:
        """The query adapter :meth:`fit_query_adapter` saved (read again when the file changes)."""
        return self.searcher.query_adapter()

    def dense_index(self, index: DenseIndexConfig | Mapping[str, Any] | str | None = None) -> Any:
        """The dense index of the current generation for ``index`` (compressed ones are built on first use)."""
        if self.config.dense is None:
            raise InvalidInputError(f"{self.path}: no dense vectors are stored; re-index with a dense model")
        cfg = SearchRequest(method="dense", index=index).resolve(self.config).index
        return self._signals["dense"].index(self._state, cfg)  # type: ignore[attr-defined]

    def sparse_index(self, mode: str = "exact") -> Any:
        """The SPLADE index of the current generation (the approximate one is built on first use)."""
        if self.config.sparse is None:
            raise InvalidInputError(f"{self.path}: no sparse vectors are stored; create the collection with a SPLADE model")
        return self._signals["splade"].index(self._state, mode)  # type: ignore[attr-defined]

    def plan_index(self, budget_bytes: int, sample_docs: int = 20_000, apply: bool = False) -> dict[str, Any]:
        """Choose the dense index that fits ``budget_bytes`` of RAM and report its expected recall@10.

        Calibrates on up to ``sample_docs`` stored vectors (see :mod:`retrievo.indexes.budget`). With
        ``apply=True`` the choice becomes the collection's default index (written to ``manifest.json``).
        """
        if self.config.dense is None:
            raise InvalidInputError(f"{self.path}: no dense vectors are stored; nothing to plan")
        chosen, plans, measured = self._signals["dense"].plan(self._state, budget_bytes, sample_docs)  # type: ignore[attr-defined]
        if apply and chosen is not None:
            self.update_config(index=chosen.config)
        return {"budget_bytes": budget_bytes, "documents": self._state.n_live, "calibration_vectors": measured,
                "chosen": None if chosen is None else chosen.to_dict(), "candidates": [p.to_dict() for p in plans],
                "applied": bool(apply and chosen is not None)}
