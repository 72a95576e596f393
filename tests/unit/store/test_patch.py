"""Partial metadata updates: merged into the stored document, text and vectors untouched, never re-encoded."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.config import DenseConfig
from retrievo.errors import InvalidInputError, NotFoundError


def test_update_metadata_merges_without_re_encoding(tmp_path):
    # a model that cannot load: any re-encoding would fail, so passing proves the stored vectors were reused
    cfg = CollectionConfig(dense=DenseConfig(model=str(tmp_path / "no-such-model")))
    coll = Collection.create(tmp_path / "c", cfg)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, 8)).astype(np.float32)
    coll.add([{"id": "a", "text": "alpha text", "metadata": {"year": 2019, "tags": ["x"]}},
              {"id": "b", "title": "Beta", "text": "beta text", "metadata": {"year": 2020}}], vectors=vecs[:2])
    coll.commit()
    coll.add([{"id": "c", "text": "gamma", "metadata": {}}], vectors=vecs[2:])  # buffered, not committed
    assert coll.update_metadata({"a": {"year": 2024, "tags": None, "source": "patch"}, "c": {"year": 2001}}) == 2
    with pytest.raises(NotFoundError, match="'zzz'"):
        coll.update_metadata({"b": {"year": 1}, "zzz": {"year": 1}})
    with pytest.raises(InvalidInputError, match="expected an object"):
        coll.update_metadata({"b": 5})
    coll.commit()
    a, b, c = coll.get_many(["a", "b", "c"])
    assert a.metadata == {"year": 2024, "source": "patch"} and a.text == "alpha text"
    assert b.metadata == {"year": 2020} and b.title == "Beta"  # the failed call changed nothing
    assert c.metadata == {"year": 2001}
    snap = coll.snapshot()
    got = snap.signals["dense"].gather(np.array([snap.row_of(i) for i in "abc"]))
    np.testing.assert_array_equal(got, vecs)
    assert coll.count({"year": {"$gte": 2021}}) == 1
    coll.close()
