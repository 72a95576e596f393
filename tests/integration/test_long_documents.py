"""Long documents: sentence-aware chunks with overlap and their situation, atomic replacement of a document's
chunks, and search at chunk level answered per document (the collapse stage)."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.errors import InvalidInputError
from retrievo.structure.chunks import (
    ChunkConfig,
    chunk_document,
    long_document_config,
    passages,
    split_sentences,
    upsert_long_documents,
)
from retrievo.types import Document


def _long(scifact_small, i, n=6):
    part = scifact_small[i * n:(i + 1) * n]
    return Document(f"L{i}", "\n\n".join(f"{d['title']}. {d['text']}" for d in part), f"Long document {i}",
                    {"group": i % 3})


def test_sentences_and_windows(scifact_small):
    t = 'Cells divide (e.g. in mitosis). The rate was 2.5 per hour! "Is it fast?" Yes.'
    assert [t[a:b] for a, b in split_sentences(t)] == ["Cells divide (e.g. in mitosis).", "The rate was 2.5 per hour!",
                                                       '"Is it fast?"', "Yes."]
    doc = _long(scifact_small, 0)
    cfg = ChunkConfig(max_words=80, overlap_words=20, context_words=40)
    chunks = chunk_document(doc, cfg)
    assert len(chunks) > 5 and [c.id for c in chunks] == [f"L0#{i}" for i in range(len(chunks))]
    for c in chunks:
        a, b = c.metadata["start"], c.metadata["end"]
        assert doc.text[a:b] == c.text and c.metadata["parent"] == "L0" and c.metadata["group"] == 0
        assert len(c.text.split()) <= 80
    # every word of the document is in some chunk, and neighbours overlap by whole sentences
    covered = np.zeros(len(doc.text), bool)
    for c in chunks:
        covered[c.metadata["start"]:c.metadata["end"]] = True
    assert all(covered[i] for i, ch in enumerate(doc.text) if not ch.isspace())
    assert any(chunks[i + 1].metadata["start"] < chunks[i].metadata["end"] for i in range(len(chunks) - 1))
    assert chunks[0].metadata["ctx_before"] == "" and chunks[0].metadata["ctx_after"]
    lead = doc.text[slice(*split_sentences(doc.text)[0])]
    assert chunks[3].metadata["ctx_before"].startswith(lead)
    assert chunk_document(Document("s", "Short."), cfg)[0].text == "Short."
    with pytest.raises(InvalidInputError, match="overlap_words"):
        ChunkConfig(max_words=50, overlap_words=50)


def test_search_per_document_and_atomic_update(tmp_path, scifact_small):
    coll = Collection.create(tmp_path / "c", CollectionConfig(dense=None))
    longs = [_long(scifact_small, i) for i in range(10)]
    n = upsert_long_documents(coll, longs, ChunkConfig(max_words=80, overlap_words=20))
    assert len(coll) == n and coll.generation == 1
    target = scifact_small[2 * 6 + 3]  # inside L2
    res = coll.search(target["title"], k=5, options={"collapse": "parent"})
    hits = passages(coll, res)
    assert hits[0]["id"] == "L2" and target["title"][:40] in longs[2].text[hits[0]["start"]:hits[0]["end"]]
    assert len({h["id"] for h in hits}) == len(hits)  # one hit per document
    flat = coll.search(target["title"], k=200)
    best = {}
    for d, s in flat.row(0):
        best.setdefault(d.rsplit("#", 1)[0], s)
    assert [h["id"] for h in hits] == list(best)[:5]  # max: each document's best chunk, in order
    np.testing.assert_allclose([h["score"] for h in hits], list(best.values())[:5], rtol=1e-6)
    summed = coll.search(target["title"], k=5, options={"collapse": "parent", "collapse_score": "sum"})
    assert summed.scores[0][0] >= res.scores[0][0]
    with pytest.raises(InvalidInputError, match="collapse_score must be one of"):
        coll.search("x", options={"collapse": "parent", "collapse_score": "mean"})
    # a shorter new version replaces every old chunk in one commit
    before = {c for c in map(str, coll.snapshot().ids) if c.startswith("L2#")}
    new = Document("L2", "A completely rewritten document about zebrafish fins. It is short now.", "Long document 2")
    upsert_long_documents(coll, [new])
    ids = {str(x) for x in coll.snapshot().ids[coll.snapshot().live]}
    assert {i for i in ids if i.startswith("L2#")} == {"L2#0"} and len(before) > 1
    res = coll.search("zebrafish fins", k=3, options={"collapse": "parent"})
    assert passages(coll, res)[0]["id"] == "L2"
    assert coll.generation == 2
    coll.close()


def test_situated_dense_text(tmp_path, scifact_small, onnx_encoder):
    coll = Collection.create(tmp_path / "c", long_document_config(situated=True), encoder=onnx_encoder)
    assert coll.config.dense.fields == ("title", "ctx_before", "text", "ctx_after")
    upsert_long_documents(coll, [_long(scifact_small, i) for i in range(4)], ChunkConfig(max_words=80))
    q = scifact_small[7]["title"]
    res = coll.search(q, k=3, method="hybrid", options={"collapse": "parent"})
    assert passages(coll, res)[0]["id"] == "L1"
    coll.close()
