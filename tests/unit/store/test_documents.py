"""What a document may hold: anything that passes can be stored, logged, filtered and returned as JSON."""

from __future__ import annotations

import pytest

from retrievo import Collection
from retrievo.errors import DocumentError, FilterError
from retrievo.types import MAX_METADATA_DEPTH, Document


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


@pytest.mark.parametrize("doc,message", [
    ({"id": "a", "text": "t", "metadata": {"deep": nested(MAX_METADATA_DEPTH + 1)}}, "nested deeper than 16"),
    ({"id": "a", "text": "t", "metadata": {"deep": nested(5000)}}, "nested deeper than 16"),  # no RecursionError
    ({"id": "a", "text": "t", "metadata": {"n": 2**63 + 5}}, r"metadata'\.n: the integer .* outside ±2\^53"),
    ({"id": "a", "text": "t", "metadata": {"l": [1, {"f": float("nan")}]}}, r"\.l\[1\]\.f: nan is not a finite"),
    ({"id": "a", "text": "bad \ud800 text"}, r"field 'text' is not valid Unicode text: '\\ud800' at character 4"),
    ({"id": "a\udfff", "text": "t"}, "field 'id' is not valid Unicode"),
    ({"id": "a", "title": "\ud83d", "text": "t"}, "field 'title' is not valid Unicode"),
    ({"id": "a", "text": "t", "metadata": {"k": {"\ud800": 1}}}, "a key is not valid Unicode"),
    ({"id": "a", "text": "t", "metadata": {"tags": ["ok", "\udc80"]}}, r"\.tags\[1\] is not valid Unicode"),
    ({"id": "a", "text": "t", "metadata": {"blob": "x" * 300_000}}, "over the limit of 262144"),
    ({"id": "a", "text": "t", "metadata": {"s": {1, 2}}}, "set is not a JSON value"),
])
def test_what_a_later_read_cannot_handle_is_refused_at_the_door(doc, message):
    with pytest.raises(DocumentError, match=message):
        Document.from_any(doc)


def test_what_passes_is_fine():
    doc = Document.from_any({"id": "é✓", "title": "naïve 😀", "text": "t", "metadata": {
        "deep": nested(MAX_METADATA_DEPTH - 1), "n": 2**53 - 1, "f": -1.5e300, "s": "日本"}})
    assert doc.metadata["n"] == 2**53 - 1


def test_a_collection_refuses_them_and_changes_nothing(tmp_path, lexical_config):
    coll = Collection.create(tmp_path / "c", lexical_config)
    coll.add([{"id": "a", "text": "alpha", "metadata": {"n": 1}}])
    coll.commit()
    with pytest.raises(DocumentError, match="upsert\\[1\\]"):
        coll.upsert([{"id": "b", "text": "beta"}, {"id": "c", "text": "gamma \ud800"}])
    assert coll.pending == 0 and coll.commit() == 1 and len(coll) == 1
    with pytest.raises(FilterError, match="outside ±2\\^53"):
        coll.search("alpha", filter={"n": 2**63})
    with pytest.raises(FilterError, match="finite"):
        coll.search("alpha", filter={"n": {"$gt": float("inf")}})
    coll.close()
