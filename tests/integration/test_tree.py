"""The semantic tree (method="tree"): exact when the beam covers every leaf, approximate otherwise but only
ever live and allowed documents, kept in step with commits (extended, then rebuilt), and browsable."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig, DenseConfig
from retrievo.errors import InvalidInputError, NotFoundError
from retrievo.structure.tree import SemanticTree

SETTINGS = {"branching": 4, "leaf_size": 12, "rebuild_fraction": 0.3}


@pytest.fixture(scope="module")
def tree_coll(tmp_path_factory, scifact_small, onnx_encoder):
    path = tmp_path_factory.mktemp("tree") / "c"
    c = Collection.create(path, CollectionConfig(dense=DenseConfig(backend="onnx"), signals={"tree": SETTINGS}),
                          encoder=onnx_encoder)
    c.add([{**d, "metadata": {"year": 2000 + i % 10}} for i, d in enumerate(scifact_small[:150])])
    c.commit()
    yield c
    c.close()


def test_full_beam_is_exact(tree_coll, scifact_queries):
    tree = tree_coll.signals["tree"].tree(tree_coll.snapshot())
    assert tree.depth >= 2 and tree.n_leaves >= 10
    assert all(n.size <= SETTINGS["leaf_size"] for n in tree.nodes if n.is_leaf)
    qs = scifact_queries[:12]
    flat = tree_coll.search(qs, k=10, method="dense")
    full = tree_coll.search(qs, k=10, method="tree", options={"tree_beam": tree.n_leaves})
    np.testing.assert_array_equal(full.ids, flat.ids)
    np.testing.assert_allclose(full.scores, flat.scores, rtol=1e-6)
    narrow = tree_coll.search(qs, k=10, method="tree", options={"tree_beam": 2})
    # a narrow beam finds fewer, never different scores: every hit carries its exact dense score
    for i in range(len(qs)):
        exact = dict(zip(flat.ids[i], flat.scores[i], strict=True))
        for d, s in narrow.row(i):
            if d in exact:
                assert s == pytest.approx(exact[d], rel=1e-6)
    # vectors scored per query: centroids on the way down plus the documents of the leaves scanned
    _, _, _, scored = tree.search(tree_coll.encoder.encode_queries(qs), 10, beam=2)
    assert (scored < len(tree.keys)).all() and (scored > 0).all()


def test_filters_and_options(tree_coll, scifact_queries):
    res = tree_coll.search(scifact_queries[:5], k=20, method="tree", filter={"year": 2003},
                           options={"tree_beam": 1000})
    flat = tree_coll.search(scifact_queries[:5], k=20, method="dense", filter={"year": 2003})
    np.testing.assert_array_equal(res.ids, flat.ids)
    with pytest.raises(InvalidInputError, match="tree_beam"):
        tree_coll.search("x", method="dense", options={"tree_beam": 3})
    with pytest.raises(InvalidInputError, match="tree_alpha must be in"):
        tree_coll.search("x", method="tree", options={"tree_alpha": 0})
    with pytest.raises(InvalidInputError, match="tree_beam must be an integer"):
        tree_coll.search("x", method="tree", options={"tree_beam": 0})
    # path smoothing changes which leaves are scanned, not the scores
    sm = tree_coll.search(scifact_queries[:5], k=5, method="tree", options={"tree_alpha": 0.5, "tree_beam": 1000})
    np.testing.assert_array_equal(sm.ids, tree_coll.search(scifact_queries[:5], k=5, method="dense").ids)


def test_commits_extend_then_rebuild(tmp_path, scifact_small, scifact_queries, onnx_encoder):
    c = Collection.create(tmp_path / "c", CollectionConfig(dense=DenseConfig(backend="onnx"),
                                                           signals={"tree": SETTINGS}), encoder=onnx_encoder)
    c.add(scifact_small[:120])
    c.commit()
    sig = c.signals["tree"]
    first = sig.tree(c.snapshot())
    # a few additions and a deletion: the same tree, extended
    c.add(scifact_small[120:140])
    c.delete([scifact_small[0]["_id"]])
    c.commit()
    second = sig.tree(c.snapshot())
    assert second.built_size == first.built_size and second.inserted == 20
    assert (second.rows >= 0).sum() == 139 and len(first.keys) == 120  # the old generation's tree is untouched
    new = scifact_small[130]
    full = {"tree_beam": 1000}
    hit = c.search(new["title"], k=1, method="tree", options=full)
    assert hit.ids[0][0] == c.search(new["title"], k=1, method="dense").ids[0][0]
    gone = c.search(scifact_small[0]["title"], k=200, method="tree", options=full)
    assert scifact_small[0]["_id"] not in set(gone.ids[0])
    np.testing.assert_array_equal(c.search(scifact_queries[:6], k=10, method="tree", options=full).ids,
                                  c.search(scifact_queries[:6], k=10, method="dense").ids)
    # many changes: rebuilt
    c.add(scifact_small[140:220])
    c.commit()
    third = sig.tree(c.snapshot())
    assert third.inserted == 0 and third.built_size == 219
    np.testing.assert_array_equal(c.search(scifact_queries[:6], k=10, method="tree", options=full).ids,
                                  c.search(scifact_queries[:6], k=10, method="dense").ids)
    c.close()


def test_browse(tree_coll):
    root = tree_coll.browse_tree()
    assert root["id"] == 0 and root["parent"] is None and root["size"] == 150 and root["summary"]
    assert sum(ch["size"] for ch in root["children"]) == 150
    node = root
    while node["children"]:
        node = tree_coll.browse_tree(node["children"][0]["id"])
        assert node["summary"] and all(isinstance(w, str) for w in node["summary"])
    assert node["documents"] and set(node["documents"]) <= {tree_coll.get(d).id for d in node["documents"]}
    with pytest.raises(NotFoundError, match="nodes 0 to"):
        tree_coll.browse_tree(10_000)
    out = subprocess.run([sys.executable, "-m", "retrievo", "tree", str(tree_coll.path), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["size"] == 150


def test_tree_unit_identical_vectors():
    """Identical vectors cannot be split by k-means: the build still ends, leaves within their size."""
    v = np.tile(np.eye(1, 8, dtype=np.float32), (50, 1))
    t = SemanticTree.build(np.arange(50), v, branching=3, leaf_size=7)
    assert sum(n.size for n in t.nodes if n.is_leaf) == 50
    assert all(n.size <= 7 for n in t.nodes if n.is_leaf)


def test_lexical_collection_has_no_tree(tmp_path, scifact_small):
    c = Collection.create(tmp_path / "c", CollectionConfig(dense=None))
    c.add(scifact_small[:5])
    c.commit()
    with pytest.raises(InvalidInputError, match="no dense model"):
        c.search("x", method="tree")
    c.close()


def test_browse_documents_without_words(tmp_path, onnx_encoder):
    """Documents of stopwords and single letters only: the tree has no keywords to show, and says so by empty
    summaries (found by the HTTP fuzzer as a 500)."""
    c = Collection.create(tmp_path / "c", CollectionConfig(dense=DenseConfig(backend="onnx")), encoder=onnx_encoder)
    c.add([{"id": "a", "text": "x"}, {"id": "b", "text": "the of a"}])
    c.commit()
    root = c.browse_tree()
    assert root["size"] == 2 and root["summary"] == [] and sorted(root["documents"]) == ["a", "b"]
    c.close()
