"""Facets against a Python count over the documents' metadata, and against the filter they stand for."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from retrievo import Collection
from retrievo.errors import InvalidInputError
from retrievo.indexes.filters import matches, plan_filter
from tests.unit.store.test_legacy_segments import make_legacy


def metadata(i: int) -> dict:
    m = {"year": 2000 + i % 7, "tags": ["a", "b", "a"][: i % 4] + (["c"] if i % 5 == 0 else []), "flag": i % 3 == 0}
    if i % 2:
        m["score"] = round(i / 8, 3)
    m["mixed"] = ["1", 1, True][i % 3]
    return m


def reference(docs: list[dict], field: str, flt: dict | None, fields: dict) -> tuple[Counter, int]:
    plan = plan_filter(flt, fields) if flt else None
    counts: Counter = Counter()
    n = 0
    for d in docs:
        m = d["metadata"]
        if field not in m or (plan is not None and not matches(plan, m)):
            continue
        values = m[field] if isinstance(m[field], list) else [m[field]]
        if values:
            n += 1
        for v in set((type(v).__name__, v) for v in values):
            counts[v] += 1
    return counts, n


@pytest.fixture()
def coll(tmp_path, lexical_config):
    docs = [{"_id": f"d{i}", "text": f"document {i}", "metadata": metadata(i)} for i in range(90)]
    c = Collection.create(tmp_path / "c", lexical_config)
    c.add(docs[:50])
    c.commit()
    c.add(docs[50:])
    c.delete(["d3", "d60"])
    c.commit()
    live = [d for d in docs if d["_id"] not in ("d3", "d60")]
    yield c, live
    c.close()


@pytest.mark.parametrize("flt", [None, {"year": {"$gte": 2003}}, {"tags": "a"}])
def test_facets_equal_a_count_over_the_documents(coll, flt):
    c, live = coll
    got = c.facets(filter=flt, limit=100)
    fields = c.store.fields()
    for field in ("year", "tags", "flag", "score", "mixed"):
        want, n = reference(live, field, flt, fields)
        assert got[field]["documents"] == n
        kinds = {"str": "s", "int": "n", "float": "n", "bool": "b"}
        assert {(kinds[k], v): 0 for k, v in want} == {(("s" if isinstance(e["value"], str) else "b" if isinstance(
            e["value"], bool) else "n"), e["value"]): 0 for e in got[field]["values"]}
        for e in got[field]["values"]:
            key = (type(e["value"]).__name__, e["value"])
            assert e["count"] == want[key], (field, e)
        counts = [e["count"] for e in got[field]["values"]]
        assert counts == sorted(counts, reverse=True) and got[field]["more"] == 0
    assert got["year"]["min"] == (2003 if flt == {"year": {"$gte": 2003}} else 2000) and got["year"]["max"] == 2006
    assert "min" not in got["tags"] and "min" not in got["flag"]


def test_a_facet_count_is_what_its_filter_returns(coll):
    c, _ = coll
    for field, entry in c.facets(limit=3).items():
        assert len(entry["values"]) <= 3
        if field == "mixed":
            continue  # equality counts true as 1 (as SQLite does), so {"mixed": 1} matches both; facets keep them apart
        for e in entry["values"]:
            assert int(np.sum(c.filter_mask({field: e["value"]}))) == e["count"], (field, e)
    assert c.facets("tags", limit=1)["tags"]["more"] == 2
    assert c.facets(["year"], filter={"year": 1999}) == {}


def test_bad_facet_requests_are_refused(coll):
    c, _ = coll
    with pytest.raises(InvalidInputError, match="unknown field"):
        c.facets(["nope"])
    with pytest.raises(InvalidInputError, match="limit"):
        c.facets(limit=0)


def test_facets_of_segments_before_metadata_columns(tmp_path, lexical_config):
    docs = [{"_id": f"d{i}", "text": f"document {i}", "metadata": metadata(i)} for i in range(40)]
    c = Collection.create(tmp_path / "c", lexical_config)
    c.add(docs)
    c.commit()
    want = c.facets()
    c.close()
    make_legacy(tmp_path / "c")
    old = Collection.open(tmp_path / "c", readonly=True)
    try:
        assert old.facets() == want
    finally:
        old.close()


def test_facets_of_disjoint_parts_merge_into_the_whole(tmp_path, lexical_config):
    from retrievo.store.facets import facets, merge_facets

    docs = [{"_id": f"d{i}", "text": f"document {i}", "metadata": metadata(i)} for i in range(70)]
    colls = [Collection.create(tmp_path / name, lexical_config) for name in ("whole", "p1", "p2")]
    try:
        for c, part in zip(colls, (docs, docs[::2], docs[1::2]), strict=True):
            c.add(part)
            c.commit()
        flt = {"flag": False}
        parts = [facets(c, None, flt, None) for c in colls[1:]]
        assert merge_facets(parts, limit=3) == colls[0].facets(filter=flt, limit=3)
    finally:
        for c in colls:
            c.close()
