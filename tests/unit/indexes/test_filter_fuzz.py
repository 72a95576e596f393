"""Property-based check of filters: on random metadata and random filters, the columnar evaluation, the SQL
of segments written before columns, and the Python reference (:func:`matches`) select the same rows."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from retrievo.errors import FilterError
from retrievo.indexes.filters import compile_filter, evaluate, matches, plan_filter
from retrievo.store.columns import SegmentColumns
from retrievo.store.sqlite import value_kind

FIELDS = ["a", "b", "c", "tags"]
scalars = (st.integers(-3, 3) | st.sampled_from([0.5, 1.0, 2.0, -1.5]) | st.booleans()
           | st.sampled_from(["x", "y", "xy", "Z", "é", ""]))
values = scalars | st.none() | st.lists(scalars, max_size=3) | st.fixed_dictionaries({"k": scalars})
metadata = st.dictionaries(st.sampled_from(FIELDS), values, max_size=4)
operand = st.integers(-3, 3) | st.sampled_from([0.5, 1.0, 2.0]) | st.booleans() | st.sampled_from(["x", "y", "xy", "Z", "é"])
conds = st.one_of(
    operand,
    st.dictionaries(st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]), operand, min_size=1, max_size=2),
    st.fixed_dictionaries({"$in": st.lists(operand, min_size=1, max_size=4)}),
    st.fixed_dictionaries({"$nin": st.lists(operand, min_size=1, max_size=4)}),
)
leaf = st.dictionaries(st.sampled_from(FIELDS), conds, min_size=1, max_size=2)
filters = st.recursive(leaf, lambda inner: st.one_of(
    st.fixed_dictionaries({"$and": st.lists(inner, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"$or": st.lists(inner, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"$not": inner})), max_leaves=6)


def sql_rows(docs, where, params):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE docs (seg INTEGER, row INTEGER, metadata TEXT)")
    db.executemany("INSERT INTO docs VALUES (1, ?, ?)", [(i, json.dumps(m)) for i, m in enumerate(docs)])
    return sorted(r for (r,) in db.execute(f"SELECT row FROM docs WHERE {where}", params))


@settings(max_examples=1000, deadline=None)
@given(st.lists(metadata, min_size=1, max_size=25), filters)
def test_columns_sql_and_reference_agree(docs, flt):
    kinds: dict[str, set[str]] = {}
    for m in docs:
        for k, v in m.items():
            kinds.setdefault(k, set()).add(value_kind(v))
    try:
        plan = plan_filter(flt, kinds)
    except FilterError:
        return  # a field no document has, or an operand of a kind the field never holds
    want = [i for i, m in enumerate(docs) if matches(plan, m)]
    cols = SegmentColumns.from_values(docs)
    got = np.flatnonzero(evaluate(plan, cols, len(docs))).tolist()
    assert got == want, (flt, docs)
    assert sql_rows(docs, *compile_filter(plan, kinds)) == want, (flt, docs)
