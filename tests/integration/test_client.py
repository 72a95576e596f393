"""retrievo.Client against a real server on loopback: the verbs of Collection, typed results equal to the
library's, and the server's errors as the library's exception types."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrievo import Client, Collection, CollectionConfig, SearchRequest
from retrievo.errors import DuplicateIdError, FilterError, NotFoundError, RetrievoError
from retrievo.server.process import ServerProcess
from retrievo.server.service import BusyError

KEY = "client-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("client")
    (root.parent / "client-settings.json").write_text(json.dumps({"max_pending": 50, "commit_interval": 3600}))
    srv = ServerProcess(root, api_key=KEY, args=["--config", str(root.parent / "client-settings.json")]).start()
    yield srv
    srv.stop()


def test_the_verbs_of_a_collection_over_http(served, scifact_small):
    docs = [{**d, "metadata": {"year": 2000 + i % 20}} for i, d in enumerate(scifact_small[:40])]
    with Client(served.url, api_key=KEY) as client:
        sci = client.create("sci", CollectionConfig(dense=None))
        assert sci.upsert(docs[:30]) == 30 and sci.commit() == 1 and len(sci) == 30
        assert sci.add(docs[30:]) == 10
        with pytest.raises(DuplicateIdError, match="already exist"):
            sci.add([docs[35], {"id": "fresh", "text": "new"}])  # acknowledged, not committed yet: taken too
        with pytest.raises(DuplicateIdError):
            sci.add([docs[0]])  # committed
        sci.commit()
        assert len(sci) == 40 and sci.get(docs[3]["_id"]).text == docs[3]["text"]
        assert sci.get_many([docs[1]["_id"], "nope"])[1] is None
        req = SearchRequest(method="bm25", k=7, filter={"year": {"$gte": 2010}}, prf=True)
        remote = sci.search(["microglia in the brain", "vitamin D"], request=req)
        local = Collection.open(served.root / "sci", readonly=True)
        try:
            mine = local.search(["microglia in the brain", "vitamin D"], request=req)
            explained = local.search(["microglia in the brain", "vitamin D"], request=req.replace(explain=True))
        finally:
            local.close()
        np.testing.assert_array_equal(remote.ids, mine.ids)
        np.testing.assert_array_equal(remote.scores, mine.scores)
        np.testing.assert_array_equal(remote.counts, mine.counts)
        assert remote.generation == 2 and remote.row(0) == mine.row(0)
        assert sci.search(["microglia in the brain", "vitamin D"], request=req.replace(explain=True)).explanations \
            == explained.explanations and list(explained.explanations[0][0]) == ["bm25", "feedback"]
        local = Collection.open(served.root / "sci", readonly=True)
        try:
            assert sci.facets(filter={"year": {"$gte": 2010}}, limit=3) == local.facets(None, {"year": {"$gte": 2010}}, 3)
            assert sci.facets("year", limit=3)["year"]["documents"] == 40
        finally:
            local.close()
        with pytest.raises(RetrievoError, match="unknown field"):
            sci.facets(["nope"])
        assert sci.delete([docs[0]["_id"]]) == 1 and sci.commit() == 3 and len(sci) == 39
        with pytest.raises(FilterError, match="unknown field 'nope'"):
            sci.search("x", filter={"nope": 1})
        with pytest.raises(NotFoundError):
            client.collection("missing").search("x")
        with pytest.raises(BusyError) as busy:
            sci.upsert([{"id": f"b{i}", "text": "t"} for i in range(60)])  # over max_pending
        assert busy.value.retry_after >= 1
        with pytest.raises(RetrievoError, match="no calibration"):
            sci.search("x", min_probability=0.5)
        assert [c["name"] for c in client.collections()] == ["sci"] and client.health()["status"] == "ok"


def test_tree_over_http(served, scifact_small):
    from retrievo import DenseConfig

    with Client(served.url, api_key=KEY) as client:
        col = client.create("treed", CollectionConfig(dense=DenseConfig(backend="onnx"),
                                                      signals={"tree": {"branching": 3, "leaf_size": 10}}))
        col.upsert(scifact_small[:30])  # under the server's max_pending of 50
        col.commit()
        col.upsert(scifact_small[30:60])
        col.commit()
        root = col.browse_tree()
        local = Collection.open(served.root / "treed", readonly=True)
        try:
            mine = local.browse_tree()
            leaf = local.browse_tree(max(n["id"] for n in mine["children"]))
        finally:
            local.close()
        assert root["size"] == 60 and [c["size"] for c in root["children"]] == [c["size"] for c in mine["children"]]
        assert root["summary"] == mine["summary"] and root["summary"]
        remote_leaf = col.browse_tree(leaf["id"], documents=5)
        assert remote_leaf["id"] == leaf["id"] and len(remote_leaf.get("documents", [])) <= 5
        with pytest.raises(NotFoundError, match="nodes 0 to"):
            col.browse_tree(100_000)
        # the quarantine of the admission gate, as the server reads it from the collection's folder
        assert col.quarantined() == []
        from retrievo.eval.audit import Quarantine, Suspect
        from retrievo.types import Document

        q = Quarantine(served.root / "treed")
        q.hold([Document("bad", "buy buy buy")], [Suspect("bad", 2.5, ["stuffing"], {"stuffing": 0.9})])
        q.close()
        held = col.quarantined()
        assert [h["id"] for h in held] == ["bad"] and held[0]["reasons"] == ["stuffing"]
        assert "bad" not in set(col.search("buy", k=10).ids[0])


def test_snapshots_over_http(served, scifact_small):
    with Client(served.url, api_key=KEY) as client:
        snap = client.create("snap", CollectionConfig(dense=None))
        snap.upsert(scifact_small[:12])
        snap.commit()
        snap.upsert(scifact_small[12:15])  # acknowledged, not committed: not in the snapshot
        made = snap.snapshot()
        assert made["documents"] == 12 and made["generation"] == 1
        assert snap.snapshots() == [made["snapshot"]]
        copy = Collection.open(served.root / ".snapshots" / "snap" / made["snapshot"], readonly=True)
        assert len(copy) == 12 and copy.get(scifact_small[3]["_id"]).text == scifact_small[3]["text"]
        copy.close()
        assert "snap" in [c["name"] for c in client.collections()] and len(client.collections()) >= 1
        with pytest.raises(NotFoundError):
            client.collection("nope").snapshot()


def test_metadata_patch_over_http(served, scifact_small):
    with Client(served.url, api_key=KEY) as client:
        pat = client.create("pat", CollectionConfig(dense=None))
        pat.upsert([{**d, "metadata": {"year": 2000 + i}} for i, d in enumerate(scifact_small[:5])])
        pat.commit()
        first = scifact_small[0]["_id"]
        assert pat.update_metadata({first: {"year": 2030, "tag": "x"}}) == 1
        pat.commit()
        got = pat.get(first)
        assert got.metadata == {"year": 2030, "tag": "x"} and got.text == scifact_small[0]["text"]
        assert pat.update_metadata({first: {"tag": None}}) == 1
        pat.upsert([{"id": "late", "text": "pending before the patch", "metadata": {"a": 1}}])
        assert pat.update_metadata({"late": {"b": 2}}) == 1  # pending writes are committed first
        pat.commit()
        assert pat.get(first).metadata == {"year": 2030} and pat.get("late").metadata == {"a": 1, "b": 2}
        with pytest.raises(NotFoundError):
            pat.update_metadata({"nope": {"a": 1}})
