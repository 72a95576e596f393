"""The BM25 signal: term frequencies per segment, one inverted index per generation, RM3 feedback.

At commit each document's indexed fields (``BM25Config.fields``) are analysed (:class:`~retrievo.analysis.
analyzer.Analyzer`) into term frequencies over the collection's vocabulary; a generation's
:class:`~retrievo.indexes.inverted.InvertedIndex` is built from the live rows of all segments (Lucene's
formula, statistics over the live rows). Queries may have their out-of-vocabulary terms corrected
(:mod:`retrievo.analysis.typos`) and be expanded by RM3 (:mod:`retrievo.search.prf`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retrievo.config import CollectionConfig, PRFConfig
from retrievo.indexes.inverted import InvertedIndex, term_frequencies
from retrievo.signals.base import Candidates, EncodeBatch, SearchContext, Signal, prepared
from retrievo.store.segments import Layout
from retrievo.store.snapshot import Snapshot

__all__ = ["BM25Signal", "typo_changes"]


def typo_changes(tokens: list[str], fixed: list[str | None]) -> dict[str, str]:
    """What typo correction did to a query's analysed terms: ``{term: replacement}``, ``""`` for a term it found
    no replacement for (left out of the search); terms kept as they are are not listed."""
    return {t: (f or "") for t, f in zip(tokens, fixed, strict=True) if f != t}


class BM25Signal(Signal):
    """Lexical retrieval with BM25 (always on: the term frequencies also serve highlighting and RM3)."""

    name = "bm25"
    layouts = (Layout("csr", ("tf_indptr", "tf_terms", "tf_counts")), Layout("rows", ("doclen",)))

    @classmethod
    def enabled(cls, config: CollectionConfig) -> bool:
        return True

    @classmethod
    def configure(cls, config: CollectionConfig, use: bool) -> CollectionConfig:
        return config

    # -- commit --------------------------------------------------------------------------------------
    def encode(self, batch: EncodeBatch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        fields = self.host.config.bm25.fields
        docs: Any = batch.docs
        if batch.show_progress:
            from tqdm.auto import tqdm

            docs = tqdm(batch.docs, desc="analyse", unit="doc")
        analyzer = self.host.analyzer
        indptr, terms, counts, doclen = term_frequencies((analyzer.tokenize(d.content(fields)) for d in docs),
                                                         batch.vocab)
        return {"tf_indptr": indptr, "tf_terms": terms, "tf_counts": counts, "doclen": doclen}, {}

    # -- load ----------------------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> InvertedIndex | None:
        data = self.data(snapshot)
        if data is None:
            return None
        return InvertedIndex(data.tf_indptr, data.tf_terms, data.tf_counts, data.doclen, snapshot.live,
                             len(snapshot.vocab), self.host.config.bm25)

    @staticmethod
    def doc_terms(snapshot: Snapshot, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Term ids and counts of the document at a global row (from its segment's term frequencies)."""
        seg, local = snapshot.segment_of(row)
        d = seg.data
        a, b = int(d.tf_indptr[local]), int(d.tf_indptr[local + 1])
        return np.asarray(d.tf_terms[a:b], dtype=np.int64), np.asarray(d.tf_counts[a:b])

    @staticmethod
    def typo_corrector(snapshot: Snapshot) -> Any:
        """The generation's :class:`~retrievo.analysis.typos.TypoCorrector` (built once, on first use)."""
        from retrievo.analysis.typos import TypoCorrector

        tc = snapshot.derived.get(("bm25", "typos"))
        if tc is None:
            tc = snapshot.derived[("bm25", "typos")] = TypoCorrector(snapshot.terms().tolist(),
                                                                     np.diff(snapshot.signals["bm25"].p_indptr))
        return tc

    @staticmethod
    def term_order(snapshot: Snapshot) -> np.ndarray:
        """Each term id's alphabetical rank in the generation's vocabulary (RM3's tie order; built once)."""
        order = snapshot.derived.get(("bm25", "term_order"))
        if order is None:
            terms = snapshot.terms()
            order = np.empty(len(terms), dtype=np.int64)
            order[np.argsort(terms, kind="stable")] = np.arange(len(terms))
            snapshot.derived[("bm25", "term_order")] = order
        return order

    # -- search --------------------------------------------------------------------------------------
    @classmethod
    def analyse_queries(cls, ctx: SearchContext, analyzer: Any) -> list[np.ndarray]:
        """Each query's term ids in the generation's vocabulary (analysed; with typo correction when the request
        asks for it) — what every signal over the collection's vocabulary (BM25, BM25F) looks up."""
        if ctx.request.correct_typos:
            fix, terms = cls.typo_corrector(ctx.snapshot).correct, ctx.snapshot.terms()
            out, changed = [], []
            for q in ctx.queries:
                tokens = analyzer.tokenize(q)
                ids = [fix(t) for t in tokens]
                out.append(np.array([i for i in ids if i is not None], dtype=np.int64))
                changed.append(typo_changes(tokens, [None if i is None else str(terms[i]) for i in ids]))
            ctx.scratch["corrections"] = changed
            return out
        vocab = ctx.snapshot.vocab
        return [np.array([vocab[t] for t in analyzer.tokenize(q) if t in vocab], dtype=np.int64) for q in ctx.queries]

    def query_terms(self, ctx: SearchContext) -> list[np.ndarray]:
        """Each query's term ids (:meth:`analyse_queries`), once per search."""
        return prepared(ctx, self, lambda: self.analyse_queries(ctx, self.host.analyzer))

    def search(self, ctx: SearchContext, depth: int) -> Candidates:
        return Candidates.of(ctx.snapshot.signals["bm25"].search(self.query_terms(ctx), depth, ctx.allowed))

    def feedback_depth(self, prf: PRFConfig) -> int:
        return prf.fb_docs

    def feedback(self, ctx: SearchContext, first: Candidates, depth: int, prf: PRFConfig) -> Candidates:
        """RM3: each query expanded with the heaviest terms of its first results, searched with a weight per term."""
        from retrievo.search.prf import rm3_query

        snap = ctx.snapshot
        inv = snap.signals["bm25"]
        q_terms = self.query_terms(ctx)
        doc_freq = np.diff(inv.p_indptr)
        expanded = [rm3_query(q_terms[i], first.rows[i, :first.counts[i]], first.scores[i, :first.counts[i]],
                              lambda r: self.doc_terms(snap, r), doc_freq, snap.n_live, prf.fb_terms,
                              prf.original_weight, order=self.term_order(snap)) for i in range(len(q_terms))]
        return Candidates.of(inv.search([t for t, _ in expanded], depth, ctx.allowed,
                                        weights=[w for _, w in expanded]))

    def info(self, snapshot: Snapshot) -> dict[str, Any]:
        inv = snapshot.signals.get("bm25")
        return {"bm25_postings_bytes_in_ram": 0 if inv is None else inv.nbytes}
