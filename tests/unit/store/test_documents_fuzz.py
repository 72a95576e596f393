"""Property-based check of documents at the door: any input either becomes a Document that every later step
can take (JSON, the write-ahead log, SQLite, metadata columns, a filter on it), or is refused with
DocumentError — never anything else."""

from __future__ import annotations

import json
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from retrievo.errors import DocumentError, RetrievoError
from retrievo.indexes.filters import evaluate, plan_filter
from retrievo.store.columns import SegmentColumns
from retrievo.store.sqlite import value_kind
from retrievo.types import Document

text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()), max_size=12)
leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=True, allow_infinity=True) | text)
values = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                      max_leaves=30)
docs = st.fixed_dictionaries({"id": text, "text": text}, optional={"title": text | st.integers(),
                                                                   "metadata": st.dictionaries(text, values, max_size=4)})


@settings(max_examples=500, deadline=None)
@given(docs)
def test_a_document_is_usable_everywhere_or_refused(raw):
    try:
        doc = Document.from_any(raw)
    except DocumentError:
        return
    body = json.dumps(doc.to_dict(), ensure_ascii=False, allow_nan=False)  # the write-ahead log's encoding
    assert Document.from_any(json.loads(body)) == doc
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE d (id TEXT, text TEXT, metadata TEXT)")
    db.execute("INSERT INTO d VALUES (?, ?, ?)", (doc.id, doc.text, json.dumps(dict(doc.metadata))))
    cols = SegmentColumns.from_values([doc.metadata])
    kinds = {k: {value_kind(v)} for k, v in doc.metadata.items()}
    for field, v in doc.metadata.items():
        kind = value_kind(v)
        operand = v[0] if kind == "list" and v and value_kind(v[0]) in ("string", "number", "bool") else v
        try:
            plan = plan_filter({field: operand}, kinds)
        except RetrievoError:
            continue  # not every field is filterable (objects, null, odd names): refused with a FilterError
        assert evaluate(plan, cols, 1).tolist() == [True]
