"""Metadata filters: a small JSON query language, checked once and evaluated on one generation's columns.

Grammar (MongoDB/Qdrant style), a filter is a JSON object:

- ``{"field": value}`` equality (for a list-valued field: the list contains the value);
- ``{"field": {"$eq": v}}``, ``{"$ne": v}``, ``{"$in": [v, …]}``, ``{"$nin": [v, …]}``;
- ``{"field": {"$gt": x, "$gte": x, "$lt": x, "$lte": x}}`` numeric (or string) ranges;
- ``{"$and": [f, …]}``, ``{"$or": [f, …]}``, ``{"$not": f}``; several keys in one object are AND-ed.

Field names must be known to the collection (seen in some committed document) and the operand types
must match the field's kind, otherwise :class:`FilterError` says what was wrong; so does a filter nested
deeper than :data:`MAX_DEPTH` or with more than :data:`MAX_TERMS` operands, and an operand that is NaN or
infinite. The result is the exact set of matching rows, which the indexes use as a mask, so filtered
top-k is exact.

Semantics (two-valued: a missing field simply does not match): equality holds between two numbers of the
same value (``true``/``false`` count as 1/0, as in SQLite), or two equal strings; a list matches when one
of its elements does; ``$ne``/``$nin`` are the negations (so they match documents without the field);
ranges compare numbers with numbers and strings with strings (by code point), never booleans or lists.
:func:`plan_filter` checks a filter into a :class:`FilterPlan`; it is evaluated on the metadata columns of
a snapshot's segments (:func:`evaluate`, see :mod:`retrievo.store.columns`), on SQLite for segments
written before those columns existed (:func:`compile_filter`), and on one document's metadata by
:func:`matches`, the reference the other two are tested against.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrievo.errors import FilterError
from retrievo.store.sqlite import value_kind

__all__ = ["MAX_DEPTH", "MAX_TERMS", "FilterPlan", "compile_filter", "evaluate", "matches", "parse_filter", "plan_filter"]

MAX_DEPTH = 32  # nesting of $and / $or / $not / conditions
MAX_TERMS = 10_000  # conditions and operands in one filter

_FIELD_RE = re.compile(r"^[A-Za-z0-9_\-. ]+$")
_RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPS = ("$eq", "$ne", "$in", "$nin", *_RANGE_OPS)


def parse_filter(text: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """Accept a filter as a dict or a JSON string."""
    if text is None or isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(f"filter is not valid JSON: {exc}") from exc
    except RecursionError:
        raise FilterError(f"filter: nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise FilterError(f"filter must be a JSON object, got {type(value).__name__}")
    return value


# ----------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Cond:
    """One operator on one field: ``$eq``/``$ne``/range with one operand, ``$in``/``$nin`` with several."""

    field: str
    op: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Node:
    """``and`` / ``or`` of its children, or ``not`` of its one child."""

    op: str
    children: tuple[Node | Cond, ...]


@dataclass(frozen=True)
class FilterPlan:
    """A checked filter (see :func:`plan_filter`)."""

    root: Node | Cond
    fields: frozenset[str]


def _scalar_kind(value: Any, field: str) -> str:
    kind = value_kind(value)
    if kind not in ("bool", "number", "string"):
        raise FilterError(f"filter on {field!r}: operand {value!r} must be a string, number or boolean")
    if kind == "number" and not math.isfinite(value):
        raise FilterError(f"filter on {field!r}: operand {value!r} must be a finite number")
    if kind == "number" and isinstance(value, int) and abs(value) > 2**53 - 1:
        raise FilterError(f"filter on {field!r}: operand {value} is outside ±2^53, where metadata integers lie")
    return kind


def _check_kind(field: str, kinds: set[str], operand_kind: str, op: str) -> None:
    allowed = set(kinds) - {"null"}
    if "list" in allowed:
        return  # element types of lists are not tracked; membership works on any scalar
    if operand_kind not in allowed:
        raise FilterError(
            f"filter on {field!r}: {op} compares with a {operand_kind}, but the field holds {sorted(allowed) or ['null']}"
        )


def plan_filter(flt: dict[str, Any], fields: Mapping[str, set[str]]) -> FilterPlan:
    """Check a filter against the collection's known fields and their kinds, into a :class:`FilterPlan`.

    Raises:
        FilterError: malformed filter, unknown field or operator, operand of the wrong type, a NaN or
            infinite operand, a filter nested deeper than :data:`MAX_DEPTH` or larger than :data:`MAX_TERMS`.
    """
    terms = 0
    used: set[str] = set()

    def count(n: int) -> None:
        nonlocal terms
        terms += n
        if terms > MAX_TERMS:
            raise FilterError(f"filter: more than {MAX_TERMS} conditions and operands; split the request")

    def field_cond(field: Any, cond: Any, depth: int) -> Node | Cond:
        if not isinstance(field, str) or not _FIELD_RE.match(field):
            raise FilterError(f"filter: invalid field name {field!r}")
        if field not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise FilterError(f"filter: unknown field {field!r} (known metadata fields: {known})")
        used.add(field)
        kinds = fields[field]

        def eq_operand(value: Any) -> Any:
            _check_kind(field, kinds, _scalar_kind(value, field), "equality")
            return value

        if not isinstance(cond, dict):
            count(1)
            return Cond(field, "$eq", (eq_operand(cond),))
        if not cond:
            raise FilterError(f"filter on {field!r}: empty condition")
        parts: list[Node | Cond] = []
        for op, value in cond.items():
            count(1)
            if op in ("$eq", "$ne"):
                parts.append(Cond(field, op, (eq_operand(value),)))
            elif op in ("$in", "$nin"):
                if not isinstance(value, list) or not value:
                    raise FilterError(f"filter on {field!r}: {op} needs a non-empty list, got {value!r}")
                count(len(value))
                parts.append(Cond(field, op, tuple(eq_operand(v) for v in value)))
            elif op in _RANGE_OPS:
                kind = _scalar_kind(value, field)
                if kind == "bool":
                    raise FilterError(f"filter on {field!r}: {op} needs a number or string, got a boolean")
                _check_kind(field, kinds, kind, op)
                parts.append(Cond(field, op, (value,)))
            else:
                raise FilterError(
                    f"filter on {field!r}: unknown operator {op!r} (use $eq $ne $in $nin $gt $gte $lt $lte)"
                )
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    def walk(node: Any, depth: int) -> Node | Cond:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter: nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict) or not node:
            raise FilterError(f"filter: expected a non-empty JSON object, got {node!r}"[:300])
        parts: list[Node | Cond] = []
        for key, value in node.items():
            count(1)
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise FilterError(f"filter: {key} needs a non-empty list of filters")
                parts.append(Node(key[1:], tuple(walk(v, depth + 1) for v in value)))
            elif key == "$not":
                parts.append(Node("not", (walk(value, depth + 1),)))
            elif key.startswith("$"):
                raise FilterError(f"filter: unknown operator {key!r} at top level (use $and $or $not)")
            else:
                parts.append(field_cond(key, value, depth + 1))
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    try:
        root = walk(flt, 0)
    except RecursionError:  # a filter object nested past Python's own limit
        raise FilterError(f"filter: nested deeper than {MAX_DEPTH} levels") from None
    return FilterPlan(root, frozenset(used))


# ------------------------------------------------------------------------------ the reference: one document


_MISSING = object()


def _equal(a: Any, b: Any) -> bool:
    """SQLite's equality of two JSON scalars: numbers (booleans as 0/1) by value, strings by content."""
    ka, kb = value_kind(a), value_kind(b)
    if ka in ("number", "bool") and kb in ("number", "bool"):
        return float(a) == float(b)
    return ka == kb == "string" and a == b


def _compare(x: Any, op: str, v: Any) -> bool:
    kx, kv = value_kind(x), value_kind(v)
    if not (kx == kv == "number" or kx == kv == "string"):
        return False
    return {"$gt": x > v, "$gte": x >= v, "$lt": x < v, "$lte": x <= v}[op]


def _cond_matches(c: Cond, meta: Mapping[str, Any]) -> bool:
    x = meta.get(c.field, _MISSING)

    def eq(v: Any) -> bool:
        if isinstance(x, list | tuple):
            return any(_equal(e, v) for e in x if not isinstance(e, list | tuple | dict))
        return x is not _MISSING and not isinstance(x, dict) and _equal(x, v)

    if c.op == "$eq":
        return eq(c.values[0])
    if c.op == "$ne":
        return not eq(c.values[0])
    if c.op == "$in":
        return any(eq(v) for v in c.values)
    if c.op == "$nin":
        return not any(eq(v) for v in c.values)
    return x is not _MISSING and _compare(x, c.op, c.values[0])


def matches(plan: FilterPlan, meta: Mapping[str, Any]) -> bool:
    """Whether a document with metadata ``meta`` passes the filter (the reference semantics)."""
    def walk(n: Node | Cond) -> bool:
        if isinstance(n, Cond):
            return _cond_matches(n, meta)
        if n.op == "and":
            return all(walk(c) for c in n.children)
        if n.op == "or":
            return any(walk(c) for c in n.children)
        return not walk(n.children[0])

    return walk(plan.root)


# --------------------------------------------------------------------------- columns of a snapshot's segment


def _eq_mask(col: Any, v: Any, n: int) -> np.ndarray:
    """Rows of one segment whose value of ``col``'s field equals ``v`` (a list: one of its elements)."""
    out = np.zeros(n, dtype=bool)
    if col is None:
        return out
    kind = value_kind(v)
    el = np.zeros(len(col.el_num) if col.el_num is not None else 0, dtype=bool)
    if kind == "string":
        code = col.code(v)
        if code < 0:
            return out
        if col.str is not None:
            out |= np.asarray(col.str) == code
        if col.el_str is not None:
            el |= np.asarray(col.el_str) == code
    else:
        x = float(v)
        if col.num is not None:
            out |= np.asarray(col.num) == x
        if col.el_num is not None:
            el |= np.asarray(col.el_num) == x
        if x in (0.0, 1.0):
            if col.bool is not None:
                out |= np.asarray(col.bool) == int(x)
            if col.el_bool is not None:
                el |= np.asarray(col.el_bool) == int(x)
    if el.any():
        out |= col.list_any(el)
    return out


def _range_mask(col: Any, op: str, v: Any, n: int) -> np.ndarray:
    if col is None:
        return np.zeros(n, dtype=bool)
    if isinstance(v, str):
        if col.str is None:
            return np.zeros(n, dtype=bool)
        codes = np.asarray(col.str)
        lo, hi = col.str_bounds(v)
        cut = {"$gt": (hi, None), "$gte": (lo, None), "$lt": (None, lo), "$lte": (None, hi)}[op]
        return (codes >= cut[0]) if cut[0] is not None else ((codes >= 0) & (codes < cut[1]))
    if col.num is None:
        return np.zeros(n, dtype=bool)
    num = np.asarray(col.num)
    with np.errstate(invalid="ignore"):
        return {"$gt": num > v, "$gte": num >= v, "$lt": num < v, "$lte": num <= v}[op]


def evaluate(plan: FilterPlan, columns: Any, n_rows: int) -> np.ndarray:
    """The rows of one segment (its :class:`~retrievo.store.columns.SegmentColumns`) that pass the filter."""
    def walk(node: Node | Cond) -> np.ndarray:
        if isinstance(node, Cond):
            col = columns.field(node.field)
            if node.op in ("$eq", "$ne", "$in", "$nin"):
                m = np.zeros(n_rows, dtype=bool)
                for v in node.values:
                    m |= _eq_mask(col, v, n_rows)
                return ~m if node.op in ("$ne", "$nin") else m
            return _range_mask(col, node.op, node.values[0], n_rows)
        masks = [walk(c) for c in node.children]
        if node.op == "and":
            return np.logical_and.reduce(masks)
        if node.op == "or":
            return np.logical_or.reduce(masks)
        return ~masks[0]

    return walk(plan.root)


# ------------------------------------------------------------------------------- SQL (segments before columns)


def _json_value(field: str) -> str:
    # json_extract with a quoted path works for any key characters we allow
    return f"json_extract(metadata, '$.\"{field}\"')"


def _sql_param(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def compile_filter(flt: dict[str, Any] | FilterPlan, fields: Mapping[str, set[str]]) -> tuple[str, list[Any]]:
    """Compile a filter (or its plan) into an SQL boolean expression over the ``docs`` table and its
    parameters — used for segments written before metadata columns existed.

    Raises:
        FilterError: as :func:`plan_filter`.
    """
    plan = flt if isinstance(flt, FilterPlan) else plan_filter(flt, fields)
    params: list[Any] = []

    def eq(field: str, value: Any) -> str:
        col = _json_value(field)
        params.append(_sql_param(value))
        typ = f"json_type(metadata, '$.\"{field}\"')"
        scalar = f"({col} = ? AND {typ} NOT IN ('array', 'object'))"
        if "list" in fields[field]:
            params.append(_sql_param(value))
            scalar = (f"({scalar} OR ({typ} = 'array' AND EXISTS (SELECT 1 FROM json_each(metadata, '$.\"{field}\"') "
                      "WHERE value = ? AND type NOT IN ('array', 'object'))))")
        return f"COALESCE({scalar}, 0)"  # two-valued logic: a missing field is simply not equal

    def walk(n: Node | Cond) -> str:
        if isinstance(n, Node):
            if n.op == "not":
                return f"(NOT {walk(n.children[0])})"
            return "(" + f" {n.op.upper()} ".join(walk(c) for c in n.children) + ")"
        if n.op in ("$eq", "$ne"):
            sql = eq(n.field, n.values[0])
            return f"NOT {sql}" if n.op == "$ne" else sql
        if n.op in ("$in", "$nin"):
            ors = " OR ".join(eq(n.field, v) for v in n.values)
            return f"({ors})" if n.op == "$in" else f"NOT ({ors})"
        v = n.values[0]
        params.append(v)
        typ = "('integer','real')" if value_kind(v) == "number" else "('text')"
        return f"COALESCE(({_json_value(n.field)} {_RANGE_OPS[n.op]} ? AND json_type(metadata, '$.\"{n.field}\"') IN {typ}), 0)"

    return walk(plan.root), params
