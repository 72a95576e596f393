import json

import numpy as np
import pytest

from retrievo import Collection, Document
from retrievo.errors import (
    CollectionExistsError,
    DocumentError,
    DuplicateIdError,
    FilterError,
    FormatVersionError,
    NotFoundError,
)


def all_scores(coll, queries):
    n = max(len(coll), 1)
    res = coll.search(queries, k=n, method="bm25")
    return [dict(r) for r in res]


def test_create_add_commit_search_reopen(tmp_path, scifact_small, lexical_config):
    c = Collection.create(tmp_path / "c", lexical_config)
    c.add(scifact_small[:50])
    assert len(c) == 0  # not visible before commit
    gen = c.commit()
    assert gen == 1 and len(c) == 50
    res = c.search(scifact_small[7]["title"], k=3)
    assert res.ids[0, 0] == scifact_small[7]["_id"]
    c.close()
    c2 = Collection.open(tmp_path / "c", readonly=True)
    assert len(c2) == 50 and c2.generation == 1
    assert c2.get(scifact_small[7]["_id"]).title == scifact_small[7]["title"]
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["config"]["bm25"]["k1"] == 0.9
    c2.close()


def test_create_refuses_existing(tmp_path, lexical_config):
    Collection.create(tmp_path / "c", lexical_config).close()
    with pytest.raises(CollectionExistsError):
        Collection.create(tmp_path / "c", lexical_config)


def test_open_refuses_newer_format(tmp_path, lexical_config):
    Collection.create(tmp_path / "c", lexical_config).close()
    m = tmp_path / "c" / "manifest.json"
    data = json.loads(m.read_text())
    data["format_version"] = 99
    m.write_text(json.dumps(data))
    with pytest.raises(FormatVersionError, match="upgrade retrievo"):
        Collection.open(tmp_path / "c")


def test_open_missing(tmp_path):
    with pytest.raises(NotFoundError):
        Collection.open(tmp_path / "nope")


def test_bm25_after_updates_equals_fresh_build(tmp_path, scifact_small, scifact_queries, lexical_config):
    rng = np.random.default_rng(42)
    docs = {d["_id"]: d for d in scifact_small}
    ids = list(docs)
    c = Collection.create(tmp_path / "inc", lexical_config.replace(max_segments=3))
    live: dict[str, dict] = {}
    for _step in range(8):
        add = [i for i in rng.choice(ids, 40, replace=False) if i not in live]
        c.upsert([docs[i] for i in add])
        live.update({i: docs[i] for i in add})
        if live:
            dels = list(rng.choice(sorted(live), min(10, len(live)), replace=False))
            c.delete(dels)
            for i in dels:
                live.pop(i)
        upd = list(rng.choice(sorted(live), min(5, len(live)), replace=False))
        changed = [{**live[i], "text": live[i]["text"] + " revised edition"} for i in upd]
        c.upsert(changed)
        live.update({d["_id"]: d for d in changed})
        c.commit()
    assert len(c) == len(live)
    fresh = Collection.create(tmp_path / "fresh", lexical_config)
    fresh.add(list(live.values()))
    fresh.commit()
    qs = scifact_queries[:30] + ["revised edition"]
    for a, b in zip(all_scores(c, qs), all_scores(fresh, qs), strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-5)
    c.compact()
    assert len(c.info()["segments"]) == 1
    for a, b in zip(all_scores(c, qs), all_scores(fresh, qs), strict=True):
        assert a.keys() == b.keys()


def test_deleted_and_superseded_never_returned(tmp_path, lexical_config):
    c = Collection.create(tmp_path / "c", lexical_config)
    c.add([{"id": "a", "text": "apple banana"}, {"id": "b", "text": "apple cherry"}])
    c.commit()
    c.upsert([{"id": "a", "text": "durian only"}])
    c.delete(["b"])
    c.commit()
    assert c.search("apple", k=5).counts[0] == 0
    assert c.search("durian", k=5).row(0)[0][0] == "a"
    assert "b" not in c and "a" in c


def test_bad_batches_change_nothing(tmp_path, lexical_config):
    c = Collection.create(tmp_path / "c", lexical_config)
    c.add([{"id": "a", "text": "alpha"}])
    c.commit()
    with pytest.raises(DuplicateIdError, match="appears twice"):
        c.add([{"id": "x", "text": "one"}, {"id": "x", "text": "two"}])
    with pytest.raises(DuplicateIdError, match="already exist"):
        c.add([{"id": "y", "text": "fine"}, {"id": "a", "text": "clash"}])
    with pytest.raises(DocumentError, match=r"add\[1\].*'text' is empty"):
        c.add([{"id": "z", "text": "fine"}, {"id": "w", "text": "   "}])
    with pytest.raises(DocumentError, match="'id'"):
        c.add([{"text": "no id"}])
    assert c.pending == 0
    c.commit()
    assert len(c) == 1 and c.generation == 1


def test_search_validation(tmp_path, lexical_config):
    c = Collection.create(tmp_path / "c", lexical_config)
    c.add([{"id": "a", "text": "alpha", "metadata": {"year": 2001}}])
    c.commit()
    with pytest.raises(Exception, match="k must be"):
        c.search("alpha", k=0)
    with pytest.raises(Exception, match="unknown method"):
        c.search("alpha", method="magic")
    with pytest.raises(FilterError, match="unknown field 'yeer'"):
        c.search("alpha", filter={"yeer": 2001})
    with pytest.raises(Exception, match="dense model"):
        c.search("alpha", method="dense")


def test_result_shape_is_stable(tmp_path, lexical_config):
    c = Collection.create(tmp_path / "c", lexical_config)
    c.add([Document(id="a", text="alpha beta"), Document(id="b", text="beta")])
    c.commit()
    one = c.search("beta", k=5)
    many = c.search(["beta", "alpha", "nothing here"], k=5, query_ids=["q1", "q2", "q3"])
    assert one.ids.shape == (1, 5) and many.ids.shape == (3, 5)
    assert many.counts.tolist() == [2, 1, 0]
    assert many.to_run()["q3"] == {}
    assert many.to_trec().splitlines()[0].startswith("q1 Q0 b 1 ")
    table = many.to_arrow()
    assert table.column_names == ["query_id", "rank", "id", "score"] and table.num_rows == 3
    assert table.to_pylist()[2] == {"query_id": "q2", "rank": 1, "id": "a",
                                    "score": pytest.approx(float(many.scores[1, 0]))}
    frame = many.to_pandas()
    assert frame["id"].tolist() == ["b", "a", "a"] and frame["rank"].tolist() == [1, 2, 1]
    assert c.search([], k=3).to_arrow().num_rows == 0


def test_writer_lock_excludes_second_writer(tmp_path, lexical_config):
    from retrievo.store.collection import CollectionLockedError

    a = Collection.create(tmp_path / "c", lexical_config)
    a.add([{"id": "a", "text": "alpha"}])
    b = Collection.open(tmp_path / "c")
    with pytest.raises(CollectionLockedError):
        b.add([{"id": "b", "text": "beta"}])
    a.commit()
    a.close()
    b.refresh()
    b.add([{"id": "b", "text": "beta"}])
    b.commit()
    assert len(b) == 2
