"""Field-weighted BM25 (BM25F) over per-field term frequencies, weights chosen at search time.

A segment keeps, per document, the term frequencies of every indexed field (one CSR whose entries carry the
field's number) and each field's length. The impacts of one weighting are computed from the live rows of a
generation (per-field average lengths, document frequencies over the weighted fields), exactly as
:class:`~retrievo.config.BM25FConfig` writes the formula, into an ordinary impact-ordered
:class:`~retrievo.indexes.inverted.InvertedIndex`; queries then run through the same compiled kernel as
BM25. Each weighting a search asks for is built once per generation and kept (a few per generation).

Why by hand: no Python BM25 library scores several fields with per-field normalisation over a store with
deletions (bm25s and rank-bm25 index one text; Lucene's ``CombinedFieldQuery`` shares one ``b`` for all fields).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp

from retrievo.config import BM25Config, BM25FConfig
from retrievo.indexes.inverted import BM25Stats, InvertedIndex

__all__ = ["FieldedIndex", "field_frequencies"]


def field_frequencies(
    field_tokens: list[list[list[str]]], vocab: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-document, per-field term frequencies; new terms are added to ``vocab``.

    Args:
        field_tokens: for each document, for each field (in the config's order), its analysed tokens.

    Returns:
        ``(indptr, terms, fields, counts, lens)``: CSR rows of (term id, field number, frequency) and the
        ``(n_docs, n_fields)`` field lengths.
    """
    n_fields = len(field_tokens[0]) if field_tokens else 0
    indptr = np.zeros(len(field_tokens) + 1, dtype=np.int64)
    terms: list[int] = []
    fields: list[int] = []
    counts: list[int] = []
    lens = np.zeros((len(field_tokens), n_fields), dtype=np.int32)
    for i, per_field in enumerate(field_tokens):
        for f, tokens in enumerate(per_field):
            tf: dict[int, int] = {}
            for t in tokens:
                tid = vocab.get(t)
                if tid is None:
                    tid = vocab[t] = len(vocab)
                tf[tid] = tf.get(tid, 0) + 1
            terms.extend(tf.keys())
            counts.extend(tf.values())
            fields.extend([f] * len(tf))
            lens[i, f] = len(tokens)
        indptr[i + 1] = len(terms)
    return (indptr, np.asarray(terms, dtype=np.int32), np.asarray(fields, dtype=np.int8),
            np.asarray(counts, dtype=np.int32), lens)


class FieldedIndex:
    """A generation's per-field term frequencies, and the BM25F impact index of each weighting asked for.

    Args:
        indptr, terms, fields, counts, lens: as :func:`field_frequencies` returns them, rows numbered
            globally across segments.
        live: which rows are live documents.
        vocab_size: number of terms in the vocabulary.
        config: the collection's BM25F settings (field order, default weights and normalisation).
    """

    _KEEP = 4  # weightings kept per generation

    def __init__(self, indptr: np.ndarray, terms: np.ndarray, fields: np.ndarray, counts: np.ndarray,
                 lens: np.ndarray, live: np.ndarray, vocab_size: int, config: BM25FConfig) -> None:
        self.config = config
        self.n_rows = len(indptr) - 1
        self.vocab_size = vocab_size
        self.live = np.asarray(live, dtype=bool)
        self._rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(np.asarray(indptr, dtype=np.int64)))
        self._terms = np.asarray(terms, dtype=np.int64)
        self._fields = np.asarray(fields, dtype=np.int64)
        self._counts = np.asarray(counts, dtype=np.float64)
        self._lens = np.asarray(lens, dtype=np.float64).reshape(self.n_rows, len(config.names))
        self._built: OrderedDict[tuple, InvertedIndex] = OrderedDict()
        self._lock = threading.Lock()

    def weights(self, overrides: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The weight and ``b`` of every field (in the config's order), with ``overrides`` of weights applied."""
        names = self.config.names
        w = np.array([float((overrides or {}).get(n, self.config.fields[n])) for n in names])
        b = np.array([self.config.b_of(n) for n in names])
        return w, b

    def index(self, overrides: dict[str, float] | None = None) -> InvertedIndex:
        """The impact index of one weighting (built on first use, a few kept)."""
        w, b = self.weights(overrides)
        key = (tuple(w.tolist()), tuple(b.tolist()))
        with self._lock:
            inv = self._built.get(key)
            if inv is not None:
                self._built.move_to_end(key)
                return inv
        inv = self._build(w, b)
        with self._lock:
            self._built[key] = inv
            while len(self._built) > self._KEEP:
                self._built.popitem(last=False)
        return inv

    def _build(self, w: np.ndarray, b: np.ndarray) -> InvertedIndex:
        live = self.live
        n_live = int(live.sum())
        avg = self._lens[live].mean(axis=0) if n_live else np.zeros(len(w))
        avg = np.where(avg > 0, avg, 1.0)
        norm = 1.0 - b + b * self._lens / avg  # (n_rows, n_fields)
        keep = live[self._rows] & (w[self._fields] > 0)
        rows, terms, fields = self._rows[keep], self._terms[keep], self._fields[keep]
        contrib = w[fields] * self._counts[keep] / norm[rows, fields]
        # one entry per (document, term): the fields' contributions summed (duplicates add up)
        csc = sp.csc_matrix((contrib, (rows, terms)), shape=(self.n_rows, self.vocab_size))
        csc.sum_duplicates()
        csc.sort_indices()
        df = np.diff(csc.indptr).astype(np.int64)
        idf = np.log1p((n_live - df + 0.5) / (df + 0.5))
        cols = np.repeat(np.arange(self.vocab_size), df)
        tf = csc.data
        k1 = self.config.k1
        impacts = (idf[cols] * tf / (k1 + tf)).astype(np.float32)
        total = float((self._lens[live] * w).sum())
        stats = BM25Stats(n_live, int(round(total)), df)
        return InvertedIndex.from_impacts(csc.indptr, csc.indices, impacts, self.n_rows,
                                          BM25Config(k1=k1, b=float(b.mean()) if len(b) else 0.75), stats)

    @property
    def nbytes(self) -> int:
        return sum(inv.nbytes for inv in self._built.values())
