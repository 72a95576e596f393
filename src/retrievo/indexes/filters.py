"""Metadata filters: a small JSON query language compiled to SQL over the document store.

Grammar (MongoDB/Qdrant style), a filter is a JSON object:

- ``{"field": value}`` equality (for a list-valued field: the list contains the value);
- ``{"field": {"$eq": v}}``, ``{"$ne": v}``, ``{"$in": [v, …]}``, ``{"$nin": [v, …]}``;
- ``{"field": {"$gt": x, "$gte": x, "$lt": x, "$lte": x}}`` numeric (or string) ranges;
- ``{"$and": [f, …]}``, ``{"$or": [f, …]}``, ``{"$not": f}``; several keys in one object are AND-ed.

Field names must be known to the collection (seen in some committed document) and the operand types
must match the field's kind, otherwise :class:`FilterError` says what was wrong. The result is the exact
set of matching rows, which the indexes use as a mask, so filtered top-k is exact.
"""

from __future__ import annotations

import json
import re
from typing import Any

from retrievo.errors import FilterError
from retrievo.store.sqlite import value_kind

__all__ = ["compile_filter", "parse_filter"]

_FIELD_RE = re.compile(r"^[A-Za-z0-9_\-. ]+$")
_RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def parse_filter(text: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """Accept a filter as a dict or a JSON string."""
    if text is None or isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(f"filter is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise FilterError(f"filter must be a JSON object, got {type(value).__name__}")
    return value


def _scalar_kind(value: Any, field: str) -> str:
    kind = value_kind(value)
    if kind not in ("bool", "number", "string"):
        raise FilterError(f"filter on {field!r}: operand {value!r} must be a string, number or boolean")
    return kind


def _json_value(field: str) -> str:
    # json_extract with a quoted path works for any key characters we allow
    return f"json_extract(metadata, '$.\"{field}\"')"


def _check_kind(field: str, kinds: set[str], operand_kind: str, op: str) -> None:
    allowed = set(kinds) - {"null"}
    if "list" in allowed:
        return  # element types of lists are not tracked; membership works on any scalar
    if operand_kind not in allowed:
        raise FilterError(
            f"filter on {field!r}: {op} compares with a {operand_kind}, but the field holds {sorted(allowed) or ['null']}"
        )


def _sql_literal_params(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _field_clause(field: str, cond: Any, fields: dict[str, set[str]], params: list[Any]) -> str:
    if not isinstance(field, str) or not _FIELD_RE.match(field):
        raise FilterError(f"filter: invalid field name {field!r}")
    if field not in fields:
        known = ", ".join(sorted(fields)) or "none"
        raise FilterError(f"filter: unknown field {field!r} (known metadata fields: {known})")
    kinds = fields[field]
    col = _json_value(field)
    is_list = "list" in kinds

    def eq(value: Any) -> str:
        kind = _scalar_kind(value, field)
        _check_kind(field, kinds, kind, "equality")
        params.append(_sql_literal_params(value))
        scalar = f"({col} = ? AND json_type(metadata, '$.\"{field}\"') != 'array')"
        if is_list:
            params.append(_sql_literal_params(value))
            scalar = (
                f"({scalar} OR EXISTS (SELECT 1 FROM json_each(metadata, '$.\"{field}\"') WHERE value = ?))"
            )
        return f"COALESCE({scalar}, 0)"  # two-valued logic: a missing field is simply not equal

    if not isinstance(cond, dict):
        return eq(cond)
    if not cond:
        raise FilterError(f"filter on {field!r}: empty condition")
    parts = []
    for op, value in cond.items():
        if op == "$eq":
            parts.append(eq(value))
        elif op == "$ne":
            parts.append(f"NOT {eq(value)}")
        elif op in ("$in", "$nin"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"filter on {field!r}: {op} needs a non-empty list, got {value!r}")
            ors = " OR ".join(eq(v) for v in value)
            parts.append(f"({ors})" if op == "$in" else f"NOT ({ors})")
        elif op in _RANGE_OPS:
            kind = _scalar_kind(value, field)
            if kind == "bool":
                raise FilterError(f"filter on {field!r}: {op} needs a number or string, got a boolean")
            _check_kind(field, kinds, kind, op)
            params.append(value)
            typ = "('integer','real')" if kind == "number" else "('text')"
            parts.append(
                f"COALESCE(({col} {_RANGE_OPS[op]} ? AND json_type(metadata, '$.\"{field}\"') IN {typ}), 0)"
            )
        else:
            raise FilterError(
                f"filter on {field!r}: unknown operator {op!r} (use $eq $ne $in $nin $gt $gte $lt $lte)"
            )
    return "(" + " AND ".join(parts) + ")"


def compile_filter(flt: dict[str, Any], fields: dict[str, set[str]]) -> tuple[str, list[Any]]:
    """Compile a filter into an SQL boolean expression over the ``docs`` table and its parameters.

    Args:
        flt: the filter object.
        fields: known metadata fields and the kinds of value they hold.

    Raises:
        FilterError: malformed filter, unknown field or operand of the wrong type.
    """
    params: list[Any] = []

    def walk(node: Any) -> str:
        if not isinstance(node, dict) or not node:
            raise FilterError(f"filter: expected a non-empty JSON object, got {node!r}")
        parts = []
        for key, value in node.items():
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise FilterError(f"filter: {key} needs a non-empty list of filters")
                joined = f" {key[1:].upper()} ".join(walk(v) for v in value)
                parts.append(f"({joined})")
            elif key == "$not":
                parts.append(f"(NOT {walk(value)})")
            elif key.startswith("$"):
                raise FilterError(f"filter: unknown operator {key!r} at top level (use $and $or $not)")
            else:
                parts.append(_field_clause(key, value, fields, params))
        return "(" + " AND ".join(parts) + ")"

    return walk(flt), params
