"""The collapse stage: one result per value of a metadata field (Elasticsearch's field collapsing), scored by an
aggregate of its rows — how chunked long documents are searched at chunk level and answered at document level.

With ``collapse="parent"`` each query's candidate rows are grouped by their ``parent`` metadata value (rows
without the field stay alone); a group is represented by its best row — so the result names the passage that
matched, and that row's metadata carries its place in the document — and scored by ``collapse_score``:
``max`` (the best row's score), ``sum`` (all its candidate rows' scores), or ``top2`` (its two best). Groups are
ordered by that score, ties by the representative row. It runs after reranking and before the calibrated
cut-off, and asks each signal for ``collapse_depth`` (default 20) times ``k`` rows first, so that ``k`` distinct
groups are found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from retrievo.errors import InvalidInputError
from retrievo.request import COLLAPSE_OPTIONS
from retrievo.search.stages import Stage
from retrievo.signals.base import Candidates

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.request import SearchRequest
    from retrievo.signals.base import SearchContext, Signal

__all__ = ["CollapseStage", "group_keys"]

AGGREGATES = ("max", "sum", "top2")


def group_keys(snapshot: Any, rows: np.ndarray, field: str) -> np.ndarray:
    """Each row's value of metadata ``field`` (string or number; ``None`` where a row lacks it), read from the
    segments' columns of ``snapshot``."""
    out = np.full(len(rows), None, dtype=object)
    for i, row in enumerate(np.asarray(rows).tolist()):
        if row < 0:
            continue
        seg, local = snapshot.segment_of(int(row))
        cols = seg.columns
        col = cols.field(field) if cols is not None else None
        if col is None:
            continue
        if col.str is not None and col.str[local] >= 0:
            out[i] = col.strings[int(col.str[local])]
        elif col.num is not None and not np.isnan(col.num[local]):
            out[i] = float(col.num[local])
    return out


class CollapseStage(Stage):
    """One result per value of a metadata field (see the module docstring)."""

    name = "collapse"
    order = 800
    options = COLLAPSE_OPTIONS

    def active(self, request: SearchRequest) -> bool:
        return request.options.get("collapse") is not None

    def prepare(self, ctx: SearchContext) -> None:
        field = ctx.request.options.get("collapse")
        if not isinstance(field, str) or not field or field.startswith("$"):
            raise InvalidInputError(f"search: collapse must name a metadata field, got {field!r}")
        agg = ctx.request.options.get("collapse_score") or "max"
        if agg not in AGGREGATES:
            raise InvalidInputError(f"search: collapse_score must be one of {', '.join(AGGREGATES)}, got {agg!r}")
        depth = ctx.request.options.get("collapse_depth") or 20
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise InvalidInputError(f"search: collapse_depth must be an integer >= 1, got {depth!r}")

    def first_depth(self, request: SearchRequest, signal: Signal, depth: int) -> int:
        return max(depth, request.k * int(request.options.get("collapse_depth") or 20))

    def apply(self, ctx: SearchContext, lists: dict[str, Candidates]) -> dict[str, Candidates]:
        if len(lists) != 1:
            raise InvalidInputError("search: collapse needs one list (fuse several signals first)")
        (name, cands), = lists.items()
        field = ctx.request.options["collapse"]
        agg = ctx.request.options.get("collapse_score") or "max"
        nq, width = cands.rows.shape
        rows = np.full((nq, width), -1, dtype=np.int64)
        scores = np.full((nq, width), -np.inf, dtype=np.float32)
        counts = np.zeros(nq, dtype=np.int64)
        for qi in range(nq):
            n = int(cands.counts[qi])
            r, s = cands.rows[qi, :n], cands.scores[qi, :n]
            keys = group_keys(ctx.snapshot, r, field)
            groups: dict[Any, list[int]] = {}
            for j, key in enumerate(keys.tolist()):
                groups.setdefault(("row", int(r[j])) if key is None else ("key", key), []).append(j)
            out = []
            for members in groups.values():  # members are in rank order: the first is the best row
                vals = s[members].astype(np.float64)
                score = vals[0] if agg == "max" else vals.sum() if agg == "sum" else vals[:2].sum()
                out.append((-score, int(r[members[0]])))
            out.sort()
            m = len(out)
            counts[qi] = m
            rows[qi, :m] = [row for _, row in out]
            scores[qi, :m] = [-neg for neg, _ in out]
        return {name: Candidates(rows, scores, counts)}
