"""Reranking as a stage: the top ``rerank_depth`` results of any method, scored again by a reranker.

``SearchRequest(rerank=..., rerank_depth=100)`` (CLI ``--rerank``, HTTP ``"rerank"``) runs the ``rerank``
stage after fusion and feedback: each query's best ``rerank_depth`` results are re-scored and re-sorted,
and the first ``k`` of them are the answer (their scores are the reranker's). The setting is part of the
request's key, so a calibrator fitted without a reranker is never applied with one.

Rerankers:

- **a cross-encoder** — any sentence-transformers ``CrossEncoder`` model name or folder: each (query,
  document) pair is scored by the model (all pairs of a batch of queries in one ``predict``);
- **``e2rank``** — listwise reranking with the collection's own dense model, after E2Rank (Liu et al.,
  "E2Rank: Your Text Embedding can Also be an Effective and Efficient Listwise Reranker", 2025): the query
  and the beginning of its first ``E2RANK_DOCS`` candidates are encoded together as one "listwise" pseudo
  query, and each candidate's stored vector is scored by cosine with it (and with the query itself,
  weight ``E2RANK_LAMBDA``). E2Rank trains its encoder for such prompts; the bundled MiniLM is not, so the
  listwise score is fused with the first-stage score (min-max, weight ``E2RANK_WEIGHT``) instead of
  replacing it. The constants were chosen on SciFact's training queries (see RESULTS.md for what it gives);
  no document is re-encoded.
- **``maxsim``** — late interaction with the collection's stored token vectors (the multivector signal,
  :mod:`retrievo.signals.multivector`): each candidate is scored by exact MaxSim with the query's token
  vectors; nothing is re-encoded but the query.

Written here rather than taken from a library: the reranker packages (``rerankers``, LanceDB's) wrap the
same ``CrossEncoder.predict``, and E2Rank ships only as a trained 0.6B+ model, not as a method for a given
encoder.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievo.errors import InvalidInputError
from retrievo.search.stages import Stage

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.request import SearchRequest
    from retrievo.signals.base import Candidates, SearchContext

__all__ = ["E2RANK_DOCS", "E2RANK_LAMBDA", "E2RANK_WEIGHT", "E2RANK_WORDS", "CrossEncoderReranker",
           "E2RankReranker", "MaxSimReranker", "RerankStage", "reranker"]

E2RANK_DOCS = 5  # candidates whose beginning goes into the listwise pseudo query
E2RANK_WORDS = 30  # words of each (title, text), so that query and candidates fit a 256-piece window
E2RANK_LAMBDA = 0.5  # weight of the pseudo query's cosine beside the query's own
E2RANK_WEIGHT = 0.3  # weight of the listwise score beside the first-stage score (both min-max normalised)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.ones_like(x)


class E2RankReranker:
    """Listwise reranking with the collection's dense model (see the module docstring)."""

    def prepare(self, ctx: SearchContext) -> None:
        if "dense" not in ctx.host.signals or ctx.snapshot.signals.get("dense") is None:
            raise InvalidInputError(f"search: rerank 'e2rank' needs the collection's dense vectors, and "
                                    f"{ctx.host.path} has none; rerank with a cross-encoder instead")

    def scores(self, ctx: SearchContext, queries: list[str], rows: list[np.ndarray], first: list[np.ndarray],
               docs: list[list[Any]]) -> list[np.ndarray]:
        dense = ctx.host.signals["dense"]
        if "dense" in ctx.signals:  # the query vectors the search already has (adapter applied)
            qv = dense.query_vectors(ctx)
        else:
            qv = dense.encoder.encode_queries(queries)
        pseudo = [" ".join([q] + [" ".join(d.content(("title", "text")).split()[:E2RANK_WORDS])
                                  for d in ds[:E2RANK_DOCS]]) for q, ds in zip(queries, docs, strict=True)]
        pv = dense.encoder.encode_queries(pseudo)
        flat = ctx.snapshot.signals["dense"]
        out = []
        for i, r in enumerate(rows):
            if not len(r):
                out.append(np.zeros(0))
                continue
            dv = flat.gather(r).astype(np.float64)
            listwise = dv @ qv[i].astype(np.float64) + E2RANK_LAMBDA * (dv @ pv[i].astype(np.float64))
            out.append((1 - E2RANK_WEIGHT) * _minmax(first[i].astype(np.float64)) + E2RANK_WEIGHT * _minmax(listwise))
        return out


class MaxSimReranker:
    """Exact MaxSim of the query's token vectors with each candidate's stored ones (see the module docstring)."""

    def prepare(self, ctx: SearchContext) -> None:
        sig = ctx.host.signals.get("multivector")
        if sig is None or (ctx.snapshot.segments and ctx.snapshot.signals.get("multivector") is None):
            raise InvalidInputError(f"search: rerank 'maxsim' needs the collection's token vectors (the multivector "
                                    f"signal), and {ctx.host.path} has none")

    def scores(self, ctx: SearchContext, queries: list[str], rows: list[np.ndarray], first: list[np.ndarray],
               docs: list[list[Any]]) -> list[np.ndarray]:
        sig = ctx.host.signals["multivector"]
        qtok = sig.query_tokens(ctx) if "multivector" in ctx.signals else sig.encoder.encode_queries(queries)
        state = ctx.snapshot.signals["multivector"]
        return [s.astype(np.float64) for s in state.maxsim.score(qtok, rows)]


class CrossEncoderReranker:
    """Scores (query, document) pairs with a cross-encoder, loaded once per process: retrievo's fast path
    (:class:`~retrievo.encoders.cross.FastCrossEncoder`, length-bucketed, ONNX Runtime float32; the same
    scores as ``CrossEncoder.predict``), or sentence-transformers' ``CrossEncoder`` for a model the fast path
    does not take (no ``tokenizer.json``, another activation)."""

    _models: dict[str, Any] = {}
    _lock = threading.Lock()

    def __init__(self, model: str) -> None:
        self.name = model

    def model(self) -> Any:
        with self._lock:
            m = self._models.get(self.name)
            if m is None:
                m = self._models[self.name] = self._load()
            return m

    def _load(self) -> Any:
        from retrievo.encoders.cross import FastCrossEncoder, NotACrossEncoderError
        from retrievo.errors import ConfigError

        try:
            return FastCrossEncoder(self.name)
        except NotACrossEncoderError as exc:
            raise InvalidInputError(f"search: rerank model {exc}") from None
        except ConfigError:
            pass  # a model the fast path does not take: the plain CrossEncoder
        from retrievo._optional import require

        st = require("sentence_transformers", package="sentence-transformers")
        try:
            ce = st.CrossEncoder(self.name, device="cpu")
        except Exception as exc:  # not there, not a model, a hub name without a hub
            raise InvalidInputError(f"search: rerank model {self.name!r} could not be loaded as a "
                                    f"cross-encoder: {type(exc).__name__}: {exc}"[:500]) from None
        return _PlainCrossEncoder(ce)

    def prepare(self, ctx: SearchContext) -> None:
        self.model()

    def scores(self, ctx: SearchContext, queries: list[str], rows: list[np.ndarray], first: list[np.ndarray],
               docs: list[list[Any]]) -> list[np.ndarray]:
        pairs = [(q, d.content(("title", "text"))) for q, ds in zip(queries, docs, strict=True) for d in ds]
        if not pairs:
            return [np.zeros(0) for _ in rows]
        flat = np.asarray(self.model().predict(pairs), dtype=np.float64).reshape(-1)
        out, i = [], 0
        for ds in docs:
            out.append(flat[i:i + len(ds)])
            i += len(ds)
        return out


class _PlainCrossEncoder:
    def __init__(self, ce: Any) -> None:
        self.ce = ce

    def predict(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        return self.ce.predict(pairs, batch_size=32, show_progress_bar=False, convert_to_numpy=True)


def reranker(name: str) -> Any:
    """The reranker a request names: ``"e2rank"``, ``"maxsim"``, else a cross-encoder model name or folder."""
    if name == "e2rank":
        return E2RankReranker()
    if name == "maxsim":
        return MaxSimReranker()
    return CrossEncoderReranker(name)


class RerankStage(Stage):
    """The stage that re-scores each query's top ``rerank_depth`` results (see the module docstring)."""

    name = "rerank"
    order = 500

    def active(self, request: SearchRequest) -> bool:
        return bool(request.rerank)

    def prepare(self, ctx: SearchContext) -> None:
        rr = reranker(ctx.request.rerank)
        rr.prepare(ctx)  # a model that cannot load fails before any retrieval
        ctx.scratch[("rerank", "reranker")] = rr

    def apply(self, ctx: SearchContext, lists: dict[str, Candidates]) -> dict[str, Candidates]:
        from retrievo.signals.base import Candidates

        (name, cands), = lists.items()
        depth = ctx.request.rerank_depth
        nq = len(cands)
        rows = [cands.rows[i, :min(int(cands.counts[i]), depth)] for i in range(nq)]
        first = [cands.scores[i, :len(rows[i])] for i in range(nq)]
        stored = ctx.host.documents_at(np.concatenate(rows).tolist() if nq else [], ctx.snapshot)
        docs, j = [], 0
        for r in rows:
            docs.append(stored[j:j + len(r)])
            j += len(r)
        scores = ctx.scratch[("rerank", "reranker")].scores(ctx, ctx.queries, rows, first, docs)
        out = Candidates.empty(nq, max(1, depth))
        for i, (r, s) in enumerate(zip(rows, scores, strict=True)):
            order = np.lexsort((r, -s))  # best score first; equal scores: the lower row
            out.rows[i, :len(r)], out.scores[i, :len(r)], out.counts[i] = r[order], s[order], len(r)
        return {name: out}
