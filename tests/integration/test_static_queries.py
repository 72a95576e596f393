"""A static query encoder distilled from a collection's (tiny) dense model: alignment brings its query vectors
towards the model's; a collection searches with it; one distilled from another model is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig, SearchRequest
from retrievo.config import DenseConfig
from retrievo.encoders.static import StaticQueryEncoder, distill_static
from retrievo.errors import ConfigError, InvalidInputError
from tests.conftest import make_tiny_sentence_model, scifact_docs

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def coll(tmp_path_factory, tiny_st):
    c = Collection.create(tmp_path_factory.mktemp("sq") / "c", CollectionConfig(dense=DenseConfig(model=tiny_st, backend="torch")))
    c.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in scifact_docs(200)])
    c.commit()
    yield c
    c.close()


def test_distilled_queries_point_where_the_model_points(coll, tiny_st, tmp_path):
    from retrievo.encoders.dense import DenseEncoder

    out = tmp_path / "static"
    meta = distill_static(coll, out, queries=["vitamin D and bone", "cancer cells"], epochs=8, show_progress=False)
    assert meta["heldout_cosine"] > meta["heldout_cosine_before"] and meta["dim"] == 32
    assert (out / "embeddings.npy").exists() and json.loads((out / "static.json").read_text())["texts"] == meta["texts"]
    static = StaticQueryEncoder(out)
    texts = [d["title"] for d in scifact_docs(200)[150:170]]  # titles it was aligned on
    got = static.encode_queries(texts)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    ref = DenseEncoder(DenseConfig(model=tiny_st, backend="torch")).encode_queries(texts)
    assert float((got * ref).sum(1).mean()) > 0.8
    # a query is the normalised sum of its pieces' rows
    ids = static.tokenizer.encode("vitamin d", add_special_tokens=False).ids
    v = static.table[ids].sum(0)
    np.testing.assert_allclose(static.encode_queries(["vitamin d"])[0], v / np.linalg.norm(v), atol=1e-6)

    # a collection of the same model searches with it; the scores are the static vectors' cosines
    c2 = Collection.create(tmp_path / "c2", CollectionConfig(dense=DenseConfig(model=tiny_st, backend="torch",
                                                                               query_model=str(out))))
    docs = scifact_docs(30)
    c2.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs])
    c2.commit()
    res = c2.searcher.search(["microglia in the brain"], SearchRequest(method="dense", k=3))
    q = static.encode_queries(["microglia in the brain"])[0]
    row = list(c2.snapshot().ids).index(res.ids[0][0])
    assert float(c2.snapshot().signals["dense"].gather(np.array([row]))[0] @ q) == pytest.approx(res.scores[0][0], abs=1e-5)
    assert Collection.open(tmp_path / "c2", readonly=True).config.dense.query_model == str(out)
    c2.close()

    # distilled from another model: refused by name
    other = tmp_path / "other"
    make_tiny_sentence_model(other, seed=5)
    c3 = Collection.create(tmp_path / "c3", CollectionConfig(dense=DenseConfig(model=str(other / "st"), backend="torch",
                                                                               query_model=str(out))))
    c3.add([{"id": "a", "text": "some text"}])
    c3.commit()
    with pytest.raises(ConfigError, match="was distilled from"):
        c3.search("text", method="dense")
    c3.close()


def test_cli_distill_and_errors(coll, tmp_path, lexical_config):
    lex = Collection.create(tmp_path / "lex", lexical_config)
    with pytest.raises(InvalidInputError, match="no dense model"):
        distill_static(lex, tmp_path / "x", show_progress=False)
    lex.close()
    assert not (tmp_path / "x").exists()
    coll_path = str(coll.path)
    run = subprocess.run([sys.executable, "-m", "retrievo", "distill-queries", coll_path, "--output",
                          str(tmp_path / "s"), "--max-texts", "200", "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["texts"] == 200
