"""A snapshot: one committed generation of a collection, everything a search reads, immutable once built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrievo.store.segments import Segment

__all__ = ["Snapshot"]


@dataclass
class Snapshot:
    """One generation: its segments, row numbering, live rows, vocabulary and each signal's structure.

    Rows are numbered globally: segment ``s`` holds rows ``offsets[s] .. offsets[s] + n_rows - 1``. A search
    takes one snapshot at its start and reads nothing else, so a commit or merge that lands meanwhile
    never mixes two generations in one answer.

    Attributes:
        generation: the commit counter this snapshot shows.
        segments: the immutable segments, in row order.
        offsets: segment number -> its first global row.
        n_rows: rows over all segments, deleted ones included.
        ids: object array of document ids over the global rows (``""`` for deleted rows).
        live: boolean mask of the rows that are not deleted.
        vocab: the collection's term dictionary (term -> id).
        signals: each signal's searchable structure for this generation (``None`` when it has no data).
        derived: structures built on first use for this generation (approximate indexes, lookup tables),
            by a key of their builder's choosing.
    """

    generation: int
    segments: list[Segment]
    offsets: dict[int, int]
    n_rows: int
    ids: np.ndarray
    live: np.ndarray
    vocab: dict[str, int]
    signals: dict[str, Any] = field(default_factory=dict)
    derived: dict[Any, Any] = field(default_factory=dict)

    @property
    def n_live(self) -> int:
        return int(self.live.sum())

    def segment_of(self, row: int) -> tuple[Segment, int]:
        """The segment holding global ``row`` and the row's position in it."""
        starts = self.derived.get("segment_starts")
        if starts is None:
            starts = self.derived["segment_starts"] = np.array([self.offsets[s.seg] for s in self.segments])
        i = int(np.searchsorted(starts, row, side="right")) - 1
        if i < 0 or row - starts[i] >= self.segments[i].n_rows:
            raise IndexError(f"row {row} is in no segment")
        return self.segments[i], int(row - starts[i])

    def terms(self) -> np.ndarray:
        """The vocabulary as an array of term strings by term id (built once per generation)."""
        terms = self.derived.get("terms")
        if terms is None:
            terms = np.empty(len(self.vocab), dtype=object)
            for t, i in self.vocab.items():
                terms[i] = t
            terms = self.derived["terms"] = terms.astype(str) if len(terms) else np.zeros(0, dtype=str)
        return terms

    def row_of(self, doc_id: str) -> int | None:
        """The live row of a document id in this generation (``None`` when it has none)."""
        rows = self.derived.get("row_of")
        if rows is None:
            rows = self.derived["row_of"] = {str(d): r for r, d in enumerate(self.ids.tolist()) if d}
        return rows.get(doc_id)

    # the built-in signals' structures by their former names
    @property
    def inverted(self) -> Any:
        return self.signals.get("bm25")

    @property
    def flat(self) -> Any:
        return self.signals.get("dense")

    @property
    def sparse(self) -> Any:
        return self.signals.get("splade")
