"""Facets: how many documents hold each value of a metadata field, counted on one generation's columns.

``Collection.facets(fields=None, filter=None, limit=10)`` answers, for every metadata field (or those
named), among the live documents of one snapshot that pass ``filter``::

    {"year": {"documents": 5000, "values": [{"value": 2015, "count": 412}, …], "more": 31, "min": 1972, "max": 2021},
     "tags": {"documents": 3100, "values": [{"value": "covid", "count": 880}, …], "more": 0}}

- ``documents``: documents that have the field (with a value the columns hold: a string, a number, a
  boolean, or a list of them);
- ``values``: the ``limit`` most frequent values, most frequent first (ties by value); a list-valued field
  counts a document once per distinct element, so a tag's count is the documents that carry it;
- ``more``: how many other distinct values there are;
- ``min`` / ``max``: for fields with numbers.

The counts are what a filter on that value would return (``{"tags": "covid"}`` matches the 880), so a
search page can offer them as filters — the facets of Elasticsearch's terms aggregation or Qdrant's
facet API. They read the per-segment metadata columns (:mod:`retrievo.store.columns`): a vectorised count
per segment, no document is loaded. Segments written before those columns existed are counted from their
stored metadata.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError
from retrievo.store.columns import FieldColumn, SegmentColumns

__all__ = ["facets", "merge_facets"]


def _count_segment(col: FieldColumn, rows: np.ndarray, counts: Counter, has: np.ndarray
                   ) -> tuple[float | None, float | None]:
    """Add the values of ``col`` on the selected ``rows`` (a boolean mask) to ``counts`` (keyed ``(kind,
    value)``: a boolean and the number 1 are different values); mark the rows that have a value in ``has``;
    return the (min, max) of its numbers (``None`` when none)."""
    lo: float | None = None
    hi: float | None = None
    if col.str is not None:
        codes = np.asarray(col.str)
        sel = rows & (codes >= 0)
        has |= sel
        per_code = np.bincount(codes[sel], minlength=len(col.strings))
        for code in np.flatnonzero(per_code):
            counts["s", col.strings[code]] += int(per_code[code])
    if col.bool is not None:
        b = np.asarray(col.bool)
        for value in (0, 1):
            sel = rows & (b == value)
            has |= sel
            if sel.any():
                counts["b", bool(value)] += int(sel.sum())
    if col.num is not None:
        num = np.asarray(col.num)
        sel = rows & ~np.isnan(num)
        has |= sel
        if sel.any():
            vals, c = np.unique(num[sel], return_counts=True)
            lo, hi = _span(lo, hi, float(vals[0]), float(vals[-1]))
            for v, n in zip(vals, c, strict=True):
                counts["n", _number(v)] += int(n)
    if col.el_ptr is not None:
        ptr = np.asarray(col.el_ptr)
        owner = np.repeat(np.arange(col.n_rows), np.diff(ptr))
        keep = rows[owner]
        for arr, kind in ((col.el_str, "str"), (col.el_num, "num"), (col.el_bool, "bool")):
            if arr is None or not len(arr):
                continue
            a = np.asarray(arr)
            ok = keep & (~np.isnan(a) if kind == "num" else a >= 0)
            if not ok.any():
                continue
            has[owner[ok]] = True
            pairs = np.unique(np.stack([owner[ok].astype(np.float64), a[ok].astype(np.float64)], axis=1), axis=0)
            vals, c = np.unique(pairs[:, 1], return_counts=True)  # one count per document and distinct element
            for v, n in zip(vals, c, strict=True):
                key = ("s", col.strings[int(v)]) if kind == "str" else ("b", bool(v)) if kind == "bool" else ("n", _number(v))
                counts[key] += int(n)
            if kind == "num":
                lo, hi = _span(lo, hi, float(vals[0]), float(vals[-1]))
    return lo, hi


def _span(lo: float | None, hi: float | None, a: float | None, b: float | None) -> tuple[float | None, float | None]:
    if a is None or b is None:
        return lo, hi
    return (a, b) if lo is None or hi is None else (min(lo, a), max(hi, b))


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def _sort_key(item: tuple[tuple[str, Any], int]) -> tuple[int, str, str]:
    (kind, value), count = item
    return (-count, kind, str(value))


def _check_limit(limit: Any) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"facets: limit must be a positive integer, got {limit!r}")


def _entry(counts: Counter, documents: int, lo: float | None, hi: float | None, limit: int | None) -> dict[str, Any]:
    ranked = sorted(counts.items(), key=_sort_key)
    cut = len(ranked) if limit is None else limit
    entry: dict[str, Any] = {"documents": documents, "values": [{"value": v, "count": c} for (_, v), c in ranked[:cut]],
                             "more": max(0, len(ranked) - cut)}
    if lo is not None and hi is not None:
        entry["min"], entry["max"] = _number(lo), _number(hi)
    return entry


def _kind(value: Any) -> str:
    return "s" if isinstance(value, str) else "b" if isinstance(value, bool) else "n"


def merge_facets(parts: Sequence[dict[str, dict[str, Any]]], limit: int = 10) -> dict[str, dict[str, Any]]:
    """The facets of several disjoint collections (the shards of one) from each one's *complete* facets
    (``limit=None``): counts and documents summed, ranges joined, then cut to ``limit``."""
    _check_limit(limit)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({f for p in parts for f in p}):
        counts: Counter = Counter()
        documents = 0
        lo: float | None = None
        hi: float | None = None
        for p in parts:
            if name not in p:
                continue
            e = p[name]
            documents += e["documents"]
            for v in e["values"]:
                counts[_kind(v["value"]), v["value"]] += v["count"]
            lo, hi = _span(lo, hi, e.get("min"), e.get("max"))
        out[name] = _entry(counts, documents, lo, hi, limit)
    return out


def facets(collection: Any, fields: Sequence[str] | None = None, filter: Any = None, limit: int | None = 10,
           snapshot: Any = None) -> dict[str, dict[str, Any]]:
    """The facets of ``collection``'s metadata (see the module docstring) on ``snapshot`` (default: its
    current generation), among the documents that pass ``filter``; ``limit=None`` lists every value.

    Raises:
        InvalidInputError: ``limit`` is not a positive integer, or a named field is not one the collection has.
    """
    if limit is not None:
        _check_limit(limit)
    known = collection.store.fields()
    if fields is None:
        names = sorted(known)
    else:
        names = [fields] if isinstance(fields, str) else list(fields)
        unknown = [f for f in names if f not in known]
        if unknown:
            raise InvalidInputError(f"facets: unknown field(s) {unknown}; the collection has {sorted(known)}")
    state = snapshot or collection.snapshot()
    mask = collection.filter_mask(filter, state)
    selected = state.live if mask is None else mask
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        counts: Counter = Counter()
        documents = 0
        lo: float | None = None
        hi: float | None = None
        for seg in state.segments:
            off = state.offsets[seg.seg]
            rows = np.asarray(selected[off:off + seg.n_rows], dtype=bool)
            if not rows.any():
                continue
            cols = seg.columns
            if cols is None:  # a segment from before metadata columns: from its stored metadata
                docs = collection.documents_at(list(range(off, off + seg.n_rows)), state)
                cols = SegmentColumns.from_values([dict(d.metadata) if d is not None else {} for d in docs])
            col = cols.field(name)
            if col is None:
                continue
            has = np.zeros(seg.n_rows, dtype=bool)
            s_lo, s_hi = _count_segment(col, rows, counts, has)
            documents += int(has.sum())
            lo, hi = _span(lo, hi, s_lo, s_hi)
        if documents:
            out[name] = _entry(counts, documents, lo, hi, limit)
    return out
