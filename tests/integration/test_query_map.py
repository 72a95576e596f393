"""Query drift compensation: a collection indexed with one model, searched with a newer model's queries mapped
into the stored space. The newer model here is the old one followed by a random rotation, so the exact map is
known: mapped queries must find what the old model's queries find, with the same scores."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig, SearchRequest
from retrievo.config import DenseConfig
from retrievo.errors import InvalidInputError
from tests.conftest import make_tiny_sentence_model, scifact_docs

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch
    from sentence_transformers import SentenceTransformer, models

    base = tmp_path_factory.mktemp("qm-models")
    word, pool = make_tiny_sentence_model(base)
    rot = models.Dense(32, 32, bias=False, activation_function=torch.nn.Identity())
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        rot.linear.weight.copy_(q)
    SentenceTransformer(modules=[word, pool, rot], device="cpu").save(str(base / "new"))
    return str(base / "st"), str(base / "new")


@pytest.fixture(scope="module")
def coll(tmp_path_factory, models):
    c = Collection.create(tmp_path_factory.mktemp("qm") / "c", CollectionConfig(dense=DenseConfig(model=models[0], backend="torch")))
    c.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in scifact_docs(150)])
    c.commit()
    yield c
    c.close()


QUERIES = ["vitamin D and bone density", "microRNA in cancer cells", "the immune response to infection"]


def test_mapped_queries_of_a_rotated_model_find_what_the_old_model_finds(coll, models):
    with pytest.raises(InvalidInputError, match="no query map"):
        coll.searcher.search(QUERIES, SearchRequest(method="dense", query_map=True))
    qm = coll.searcher.fit_query_map(models[1], sample=120, ridge=1e-6)
    assert qm.info["heldout_r2"] > 0.999 and qm.info["documents"] == 120
    old = coll.searcher.search(QUERIES, SearchRequest(method="dense", k=10))
    mapped = coll.searcher.search(QUERIES, SearchRequest(method="dense", k=10, query_map=True))
    assert (old.ids == mapped.ids).all()
    np.testing.assert_allclose(mapped.scores, old.scores, atol=2e-3)
    # without the map, the new model's queries do not fit the stored space
    from retrievo.config import DenseConfig as DC
    from retrievo.encoders.dense import DenseEncoder

    raw = coll.searcher.search(QUERIES, SearchRequest(method="dense", k=10),
                               query_vectors=DenseEncoder(DC(model=models[1], backend="torch")).encode_queries(QUERIES))
    assert not (raw.ids == old.ids).all()
    hyb = SearchRequest(method="hybrid", query_map=True).resolve(coll.config)
    assert "query_map" in hyb.key()
    with pytest.raises(InvalidInputError, match="query_map is for the dense signal"):
        coll.searcher.search(QUERIES, SearchRequest(method="bm25", query_map=True))


def test_cli_map_queries_and_search(tmp_path, models):
    folder = tmp_path / "c"
    c = Collection.create(folder, CollectionConfig(dense=DenseConfig(model=models[0], backend="torch")))
    c.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in scifact_docs(60)])
    c.commit()
    c.close()
    cli = [sys.executable, "-m", "retrievo"]
    fit = subprocess.run(cli + ["map-queries", str(folder), "--model", models[1], "--sample", "50", "--ridge", "1e-6",
                                "--json"], capture_output=True, text=True)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert json.loads(fit.stdout)["documents"] == 50
    runs = [json.loads(subprocess.run(cli + ["search", str(folder), QUERIES[0], "--method", "dense", "--json"] + extra,
                                      capture_output=True, text=True, check=True).stdout) for extra in ([], ["--query-map"])]
    ids = [[h["id"] for h in r["results"]] for r in runs]
    assert ids[0] == ids[1]


def test_a_map_fitted_on_queries_keeps_the_rotated_models_scores_too(coll, models, tmp_path):
    """The score-distilled map (queries given) recovers the exact relation as well; the CLI takes a query file."""
    texts = [d["title"] for d in scifact_docs(150)][:60]
    qm = coll.searcher.fit_query_map(models[1], sample=120, ridge=1e-6, queries=texts, save=False)
    assert qm.info["method"] == "pairs" and qm.info["queries"] == 60 and qm.info["heldout_top_rmse"] < 2e-3
    old = coll.searcher.search(QUERIES, SearchRequest(method="dense", k=10))
    got = coll.searcher.search(QUERIES, SearchRequest(method="dense", k=10),
                               query_vectors=qm.encode_queries(QUERIES))
    assert (old.ids == got.ids).all()
    np.testing.assert_allclose(got.scores, old.scores, atol=2e-3)
    with pytest.raises(InvalidInputError, match="at least 10"):
        coll.searcher.fit_query_map(models[1], sample=120, queries=texts[:3], save=False)
    qfile = tmp_path / "log.txt"
    qfile.write_text("\n".join(texts))
    out = subprocess.run([sys.executable, "-m", "retrievo", "map-queries", str(coll.path), "--model", models[1],
                          "--sample", "100", "--queries", str(qfile)], capture_output=True, text=True)
    assert out.returncode == 0 and "held-out queries' top documents scored within" in out.stdout, out.stderr[-2000:]


def test_pair_fit_beats_the_documents_map_where_the_model_change_is_not_linear():
    from retrievo.search.query_maps import _top_score_error, fit_linear_map, fit_pair_map

    def unit(x):
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    for seed in range(3):  # no linear map is exact here; the pair fit keeps the queries' top scores closer
        rng = np.random.default_rng(seed)
        old = unit(rng.normal(size=(1500, 16)))
        m, n = rng.normal(size=(16, 16)), rng.normal(size=(16, 16))
        new = unit(old @ m + 1.5 * np.tanh(2 * old @ n))  # the new model: a linear part and a non-linear one
        queries = unit(new[rng.integers(0, 1500, size=400)] + 0.3 * rng.normal(size=(400, 16)))
        b = fit_linear_map(old, new, 1e-4)
        w = fit_pair_map(queries[:300], old, new, b.T)
        doc_map, pair_map = (_top_score_error(queries[300:], old, new, x, 20) for x in (b.T, w))
        assert pair_map < 0.92 * doc_map, (seed, doc_map, pair_map)  # about 12 % lower on held-out queries
