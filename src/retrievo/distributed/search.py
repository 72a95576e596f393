"""The search side of a sharded collection: one search's view of the shards and the driver's signals.

:class:`ShardedSnapshot` is what one search reads — the shards' pinned generations, the global BM25 statistics
(:class:`GlobalStats`) and the candidates met so far, keyed as the driver's stages see rows. The driver's
signals are the ordinary ones (:class:`ShardedBM25`, :class:`ShardedDense`, :class:`ShardedSplade`) with
``begin``/``search`` sending each query's prepared form (analysed terms, query vectors) to every shard and
merging the answers, and ``feedback`` fetching what RM3 or Rocchio needs from the shards that hold it.
:class:`ShardedSearcher` is the ordinary :class:`~retrievo.search.searcher.Searcher`, repeating a search whose
shards moved on under it. How they talk to the shards is :class:`~retrievo.distributed.sharded.ShardedCollection`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievo.errors import ShardUnavailableError
from retrievo.request import SearchRequest
from retrievo.search.searcher import Searcher
from retrievo.signals.base import Candidates, SearchContext, prepared
from retrievo.signals.bm25 import BM25Signal
from retrievo.signals.dense import DenseSignal
from retrievo.signals.splade import SpladeSignal
from retrievo.types import SearchResults

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.distributed.sharded import ShardedCollection

__all__ = ["SIGNALS", "GlobalStats", "ShardedBM25", "ShardedDense", "ShardedSearcher", "ShardedSnapshot",
           "ShardedSplade", "StaleSearch"]

RETRIES = 3


class StaleSearch(Exception):
    """A shard no longer holds the generation or statistics a search was planned on."""


@dataclass
class GlobalStats:
    """BM25 statistics summed over the shards at their pinned generations, terms in alphabetical order."""

    token: str
    generations: tuple[int, ...]
    terms: np.ndarray
    df: np.ndarray
    n_docs: int
    total_len: int
    n_rows: tuple[int, ...]
    dense_dim: int | None
    missing: tuple[int, ...] = ()
    _vocab: dict[str, int] | None = field(default=None, repr=False)
    _typos: Any = field(default=None, repr=False)

    def vocab(self) -> dict[str, int]:
        if self._vocab is None:
            self._vocab = {t: i for i, t in enumerate(self.terms.tolist())}
        return self._vocab

    def typo_corrector(self) -> Any:
        from retrievo.analysis.typos import TypoCorrector

        if self._typos is None:
            self._typos = TypoCorrector(self.terms.tolist(), self.df)
        return self._typos


@dataclass
class _Dim:
    dim: int


class ShardedSnapshot:
    """What one search over the shards reads: the shards' pinned generations, the global statistics, and the
    candidates met so far, each under a key (the "row" the driver's stages see) naming its shard, the shard's
    generation and row, and the document id.

    Attributes:
        partial: a shard that does not answer is left out (and named in :attr:`missing`) instead of failing.
        missing: the shards left out so far.
    """

    def __init__(self, stats: GlobalStats, partial: bool = False) -> None:
        self.partial = partial
        self.derived: dict[Any, Any] = {}
        self._key: dict[tuple[int, int, int], int] = {}
        self.shard: list[int] = []
        self.gen: list[int] = []
        self.row: list[int] = []
        self._ids: list[str] = []
        self.renew(stats)

    def renew(self, stats: GlobalStats) -> None:
        """Read the shards' generations of ``stats`` from now on (keys given so far keep their generation)."""
        self.stats = stats
        self.generation = sum(stats.generations)
        self.generations = stats.generations
        self.segments = [i for i, n in enumerate(stats.n_rows) if n]
        self.signals: dict[str, Any] = {} if stats.dense_dim is None else {"dense": _Dim(stats.dense_dim)}
        self.missing: set[int] = set(stats.missing)

    @property
    def n_live(self) -> int:
        return self.stats.n_docs

    @property
    def ids(self) -> np.ndarray:
        return np.asarray(self._ids, dtype=object)

    def keys(self, shards: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The keys of ``(shard, row)`` candidates of the current generations (new ones numbered as they come)."""
        out = np.empty(len(rows), dtype=np.int64)
        for j, (s, r, d) in enumerate(zip(shards.tolist(), rows.tolist(), ids.tolist(), strict=True)):
            g = self.generations[s]
            key = self._key.get((s, g, r))
            if key is None:
                key = self._key[(s, g, r)] = len(self._ids)
                self.shard.append(s)
                self.gen.append(g)
                self.row.append(r)
                self._ids.append(d)
            out[j] = key
        return out

    def by_shard(self, keys: Iterable[int]) -> dict[tuple[int, int], list[int]]:
        """``{(shard, generation): [key, …]}`` of keys (padding ``-1`` left out), in the keys' order."""
        out: dict[tuple[int, int], list[int]] = {}
        for k in keys:
            if k >= 0:
                out.setdefault((self.shard[k], self.gen[k]), []).append(int(k))
        return out


class FansOut:
    """What the driver's signals share: :meth:`payload` is a search's queries as the shards take them (analysed
    terms, query vectors); ``begin`` sends it to every shard, ``search`` collects the answers."""

    name: str
    host: Any

    def payload(self, ctx: SearchContext) -> Any:
        raise NotImplementedError

    def begin(self, ctx: SearchContext, depth: int) -> None:
        self.host.submit(ctx, self.name, self.payload(ctx), depth)

    def search(self, ctx: SearchContext, depth: int) -> Candidates:
        return self.host.collect(ctx, self.name, lambda: self.payload(ctx), depth)


# -- the driver's signals: the ordinary ones, whose search fans out ----------------------------------------
class ShardedBM25(FansOut, BM25Signal):
    """BM25 over the shards: queries analysed (and typo-corrected against the global vocabulary) once, scored by
    each shard under the global statistics; RM3 from the feedback documents' terms and the global frequencies."""

    def terms(self, ctx: SearchContext) -> list[list[str]]:
        def make() -> list[list[str]]:
            tokens = [self.host.analyzer.tokenize(q) for q in ctx.queries]
            if not ctx.request.correct_typos:
                return tokens
            from retrievo.signals.bm25 import typo_changes

            tc, terms = ctx.snapshot.stats.typo_corrector(), ctx.snapshot.stats.terms
            fixed = [[None if i is None else str(terms[i]) for i in map(tc.correct, q)] for q in tokens]
            ctx.scratch["corrections"] = [typo_changes(t, f) for t, f in zip(tokens, fixed, strict=True)]
            return [[t for t in f if t is not None] for f in fixed]

        return prepared(ctx, self, make)

    payload = terms

    def feedback(self, ctx: SearchContext, first: Candidates, depth: int, prf: Any) -> Candidates:
        from retrievo.search.prf import rm3_query

        snap: ShardedSnapshot = ctx.snapshot  # type: ignore[assignment]
        stats, vocab = snap.stats, snap.stats.vocab()
        keys = sorted({int(k) for i in range(len(first)) for k in first.rows[i, :first.counts[i]]})
        docs = {}
        none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        for key, found in zip(keys, self.host.fetch(snap, "doc_terms", keys), strict=True):
            terms, counts = found if found is not None else none  # None: its shard is missing (a partial search)
            docs[key] = (np.array([vocab[t] for t in terms.tolist()], dtype=np.int64), counts)
        queries, weights = [], []
        for i, q in enumerate(self.terms(ctx)):
            q_ids = np.array([vocab[t] for t in q if t in vocab], dtype=np.int64)
            n = int(first.counts[i])
            ids, w = rm3_query(q_ids, first.rows[i, :n], first.scores[i, :n], docs.__getitem__, stats.df,
                               stats.n_docs, prf.fb_terms, prf.original_weight)
            queries.append(stats.terms[ids].tolist())
            weights.append(w)
        return self.host.fan_out(ctx, "bm25", queries, depth, weights=weights)


class ShardedDense(FansOut, DenseSignal):
    """Dense retrieval over the shards: query vectors encoded once on the driver; Rocchio from the feedback
    documents' stored vectors, fetched from their shards."""

    def payload(self, ctx: SearchContext) -> Any:
        return self.query_vectors(ctx)

    def feedback(self, ctx: SearchContext, first: Candidates, depth: int, prf: Any) -> Candidates:
        from retrievo.search.prf import rocchio

        snap: ShardedSnapshot = ctx.snapshot  # type: ignore[assignment]
        keys = sorted({int(k) for i in range(len(first)) for k in first.rows[i, :first.counts[i]]})
        vec = dict(zip(keys, self.host.fetch(snap, "vectors", keys), strict=True))
        fb = [np.array([vec[int(k)] for k in first.rows[i, :first.counts[i]] if vec[int(k)] is not None],
                       dtype=np.float32).reshape(
            -1, snap.stats.dense_dim or 1) for i in range(len(first))]
        return self.host.fan_out(ctx, "dense", rocchio(self.query_vectors(ctx), fb, prf.alpha, prf.beta), depth)


class ShardedSplade(FansOut, SpladeSignal):
    """SPLADE over the shards: each query encoded once on the driver, scored by every shard."""

    def payload(self, ctx: SearchContext) -> Any:
        return prepared(ctx, self, lambda: self.encoder.encode_queries(ctx.queries))


SIGNALS = {"bm25": ShardedBM25, "dense": ShardedDense, "splade": ShardedSplade}


class ShardedSearcher(Searcher):
    """The ordinary searcher over a :class:`ShardedSnapshot`, repeating a search whose shards moved on (or
    restarted) under it with their new generations, and naming the shards a partial search left out."""

    def search(self, queries: Any, request: SearchRequest | None = None, *, snapshot: Any = None,
               partial: bool = False, **kwargs: Any) -> SearchResults:
        coll: ShardedCollection = self.collection
        coll.check(request or SearchRequest())
        snap = snapshot if snapshot is not None else coll.snapshot(partial)
        snap.partial = partial or snap.partial
        for attempt in range(RETRIES):
            try:
                res = super().search(queries, request, snapshot=snap, **kwargs)
            except StaleSearch:
                if attempt == RETRIES - 1:
                    raise ShardUnavailableError(f"{coll.path}: the shards kept moving to new generations during "
                                                f"{RETRIES} attempts of one search") from None
                coll.refresh()
                snap.renew(coll.global_stats(snap.partial))
                continue
            if snap.missing:
                coll.refresh()  # gather again next time: the shard may be back
            return dataclasses.replace(res, missing_shards=tuple(sorted(snap.missing)))
        raise AssertionError("unreachable")  # pragma: no cover
