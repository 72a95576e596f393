import numpy as np
import pytest

from retrievo import Collection
from retrievo.errors import FilterError


@pytest.fixture
def coll(tmp_path, lexical_config):
    rng = np.random.default_rng(7)
    words = ["alpha", "beta", "gamma", "delta"]
    docs = []
    for i in range(120):
        meta = {"year": int(rng.integers(1990, 2021)), "lang": ["en", "de", "fr"][i % 3],
                "score": float(rng.random()), "open": bool(i % 2)}
        if i % 4 == 0:
            meta["tags"] = ["x", "y"] if i % 8 == 0 else ["y"]
        if i % 10 == 0:
            del meta["lang"]
        docs.append({"id": f"d{i}", "text": " ".join(rng.choice(words, 5)), "metadata": meta})
    c = Collection.create(tmp_path / "c", lexical_config)
    c.add(docs)
    c.commit()
    return c, {d["id"]: d["metadata"] for d in docs}


CASES = [
    ({"lang": "en"}, lambda m: m.get("lang") == "en"),
    ({"lang": {"$in": ["de", "fr"]}}, lambda m: m.get("lang") in ("de", "fr")),
    ({"lang": {"$ne": "en"}}, lambda m: m.get("lang") != "en"),
    ({"year": {"$gte": 2000, "$lt": 2010}}, lambda m: 2000 <= m["year"] < 2010),
    ({"score": {"$gt": 0.5}}, lambda m: m["score"] > 0.5),
    ({"open": True}, lambda m: m["open"] is True),
    ({"tags": "x"}, lambda m: "x" in m.get("tags", [])),
    ({"$or": [{"lang": "en"}, {"year": {"$lt": 1995}}]}, lambda m: m.get("lang") == "en" or m["year"] < 1995),
    ({"$not": {"lang": "en"}}, lambda m: m.get("lang") != "en"),
    ({"$and": [{"open": False}, {"lang": {"$nin": ["fr"]}}]}, lambda m: not m["open"] and m.get("lang") != "fr"),
]


@pytest.mark.parametrize("flt,pred", CASES)
def test_filtered_topk_equals_brute_force(coll, flt, pred):
    c, meta = coll
    allowed = {i for i, m in meta.items() if pred(m)}
    full = dict(c.search("alpha gamma", k=200).row(0))
    expected = sorted(((s, i) for i, s in full.items() if i in allowed), key=lambda t: (-t[0], int(t[1][1:])))[:10]
    got = c.search("alpha gamma", k=10, filter=flt).row(0)
    assert [i for i, _ in got] == [i for _, i in expected]
    mask_ids = {c._state.ids[r] for r in np.flatnonzero(c.filter_mask(flt))}
    assert mask_ids == allowed


@pytest.mark.parametrize("flt,msg", [
    ({"nope": 1}, "unknown field 'nope'"),
    ({"year": {"$gt": "x"}}, "compares with a string"),
    ({"year": {"$between": 1}}, "unknown operator"),
    ({"$or": []}, "non-empty list"),
    ({"lang": {"$in": "en"}}, "non-empty list"),
    ({"open": {"$gt": True}}, "boolean"),
    ('{"year": ', "not valid JSON"),
])
def test_bad_filters_are_clear(coll, flt, msg):
    c, _ = coll
    with pytest.raises(FilterError, match=msg):
        c.search("alpha", filter=flt)
