"""Collections written before segments kept metadata columns and stored documents: read as before (filters
on SQLite, documents by id), and given both when a writer opens them; answers are the same throughout."""

from __future__ import annotations

import json
import shutil

import numpy as np

from retrievo import Collection


def make_legacy(path) -> None:
    """Strip what newer segments carry, leaving the layout of a segment written by retrievo 0.1.0."""
    for seg in (path / "segments").iterdir():
        shutil.rmtree(seg / "meta", ignore_errors=True)
        for f in ("stored_ptr.npy", "stored_bytes.npy"):
            (seg / f).unlink(missing_ok=True)
        meta = json.loads((seg / "segment.json").read_text())
        meta.pop("arrays", None)
        meta.pop("columns", None)
        (seg / "segment.json").write_text(json.dumps(meta))


def test_old_segments_are_read_then_migrated(tmp_path, scifact_small, lexical_config):
    docs = [{**d, "metadata": {"year": 2000 + i % 20, "tags": ["a" if i % 3 else "b"]}} for i, d in enumerate(scifact_small[:120])]
    coll = Collection.create(tmp_path / "c", lexical_config)
    coll.add(docs[:60])
    coll.commit()
    coll.add(docs[60:])
    coll.delete([docs[5]["_id"]])
    coll.commit()
    flt = {"$or": [{"year": {"$gte": 2015}}, {"tags": "b"}]}
    want = coll.search("cells", k=50, filter=flt)
    want_docs = coll.documents_at(want.rows[0][:want.counts[0]].tolist())
    coll.close()
    make_legacy(tmp_path / "c")

    old = Collection.open(tmp_path / "c", readonly=True)  # nothing can be written: read as before
    assert all(s.columns is None for s in old.snapshot().segments)
    got = old.search("cells", k=50, filter=flt)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert old.documents_at(got.rows[0][:got.counts[0]].tolist()) == want_docs  # from SQLite, by id
    old.close()

    writer = Collection.open(tmp_path / "c")
    writer.lock_for_writing()  # a writer gives the old segments their columns and documents
    assert all(s.columns is not None and s.data.get("stored_ptr") is not None for s in writer.snapshot().segments)
    got = writer.search("cells", k=50, filter=flt)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert writer.documents_at(got.rows[0][:got.counts[0]].tolist()) == want_docs
    writer.close()
