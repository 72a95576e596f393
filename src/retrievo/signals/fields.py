"""The field-weighted BM25 signal (``bm25f``): documents as named fields, each normalised by its own length
and weighted, the weights a parameter of every search.

A collection computes it when its config names it: ``CollectionConfig(signals={"bm25f": {...}})`` with the
fields of :class:`~retrievo.config.BM25FConfig` (default ``{"title": 2, "text": 1}``). A field is the
document's ``title`` or ``text`` or any metadata key holding a string or a list of strings — tool catalogues
(:mod:`retrievo.structure.tools`) keep a tool's name words, parameters and document expansions (the training
queries that led to it, pseudo-queries) as such fields, so how much each counts is a search option
(``field_weights``) rather than a rebuild.

At commit each field is analysed like BM25's text (the collection's analyzer, one shared vocabulary) into a
CSR of (term, field, frequency) per row plus the field lengths (``bf_*`` arrays); a generation's impacts are
built from the live rows for each weighting asked for (:class:`~retrievo.indexes.fielded.FieldedIndex`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from retrievo.config import BM25FConfig, CollectionConfig
from retrievo.errors import InvalidInputError
from retrievo.indexes.fielded import FieldedIndex, field_frequencies
from retrievo.request import BM25F_OPTIONS
from retrievo.signals.base import Candidates, EncodeBatch, SearchContext, Signal, prepared
from retrievo.store.segments import Layout
from retrievo.store.snapshot import Snapshot

__all__ = ["BM25FSignal"]


class BM25FSignal(Signal):
    """BM25F over the configured fields (see the module docstring)."""

    name = "bm25f"
    layouts = (Layout("csr", ("bf_indptr", "bf_terms", "bf_fields", "bf_counts")), Layout("rows", ("bf_lens",)))
    options = BM25F_OPTIONS

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.config = BM25FConfig.from_dict(dict(self.settings))

    @classmethod
    def complete(cls, config: CollectionConfig) -> CollectionConfig:
        settings = BM25FConfig.from_dict(dict(config.signals.get(cls.name, {}))).to_dict()
        return config.replace(signals={**config.signals, cls.name: settings})

    @classmethod
    def missing(cls, method: str, where: Any) -> str:
        return (f"search: method {method!r} needs field-weighted BM25, and {where} does not index fields; create "
                "the collection with CollectionConfig(signals={'bm25f': {'fields': {...}}}) or --tools")

    # -- commit --------------------------------------------------------------------------------------
    def encode(self, batch: EncodeBatch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        analyzer = self.host.analyzer
        names = self.config.names
        docs: Any = batch.docs
        if batch.show_progress:
            from tqdm.auto import tqdm

            docs = tqdm(batch.docs, desc="analyse fields", unit="doc")
        tokens = [[analyzer.tokenize(d.field_text(f)) for f in names] for d in docs]
        indptr, terms, fields, counts, lens = field_frequencies(tokens, batch.vocab)
        if not len(tokens):
            lens = np.zeros((0, len(names)), dtype=np.int32)
        return {"bf_indptr": indptr, "bf_terms": terms, "bf_fields": fields, "bf_counts": counts, "bf_lens": lens}, {}

    # -- load ----------------------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> FieldedIndex | None:
        data = self.data(snapshot)
        if data is None:
            return None
        return FieldedIndex(data.bf_indptr, data.bf_terms, data.bf_fields, data.bf_counts, data.bf_lens,
                            snapshot.live, len(snapshot.vocab), self.config)

    # -- search --------------------------------------------------------------------------------------
    def field_weights(self, ctx: SearchContext) -> dict[str, float] | None:
        """The request's weight overrides, checked against the collection's fields."""
        given = ctx.request.options.get("field_weights")
        if given is None:
            return None
        if isinstance(given, str):  # the command line and query strings give JSON text
            try:
                given = json.loads(given)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"search: field_weights is not valid JSON ({exc.msg}): {given!r}"[:300]) from None
        if not isinstance(given, dict):
            raise InvalidInputError(f"search: field_weights must be an object of field -> weight, got {given!r}"[:300])
        names = self.config.names
        out: dict[str, float] = {}
        for k, v in given.items():
            if k not in names:
                raise InvalidInputError(f"search: field_weights names {k!r}, which {self.host.path} does not index; "
                                        f"its fields: {', '.join(names)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0) or math.isinf(v):
                raise InvalidInputError(f"search: field_weights[{k!r}] must be a finite number >= 0, got {v!r}")
            out[k] = float(v)
        return out

    def prepare(self, ctx: SearchContext) -> None:
        self.field_weights(ctx)
        if ctx.snapshot.segments and ctx.snapshot.signals.get(self.name) is None:
            raise InvalidInputError(f"{self.host.path}: some segments hold no field frequencies; re-index")

    def query_terms(self, ctx: SearchContext) -> list[np.ndarray]:
        """Each query's term ids, analysed as BM25's are (typo correction included), once per search."""
        from retrievo.signals.bm25 import BM25Signal

        return prepared(ctx, self, lambda: BM25Signal.analyse_queries(ctx, self.host.analyzer))

    def search(self, ctx: SearchContext, depth: int) -> Candidates:
        fielded = ctx.snapshot.signals.get(self.name)
        if fielded is None:
            return Candidates.empty(ctx.n_queries, max(int(depth), 1))
        inv = fielded.index(self.field_weights(ctx))
        return Candidates.of(inv.search(self.query_terms(ctx), depth, ctx.allowed))

    def info(self, snapshot: Snapshot) -> dict[str, Any]:
        fielded = snapshot.signals.get(self.name)
        return {"bm25f_fields": dict(self.config.fields),
                "bm25f_postings_bytes_in_ram": 0 if fielded is None else fielded.nbytes}

    @classmethod
    def absent_info(cls, config: CollectionConfig) -> dict[str, Any]:
        return {}
