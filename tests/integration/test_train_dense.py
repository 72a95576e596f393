"""``train_dense`` / ``retrievo train`` on tiny data: a 2-layer sentence-transformers model built from a config,
120 real SciFact abstracts in a lexical collection, their titles as judged queries."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig
from retrievo.config import DenseConfig
from retrievo.errors import InvalidInputError
from retrievo.training.dense import multi_positive_infonce, train_dense
from tests.conftest import make_beir, scifact_docs

pytestmark = pytest.mark.filterwarnings("ignore")

SMALL = dict(max_length=48, batch_size=8, epochs=3, lr=1e-3, depth=8, negatives=2, val_queries=6, evals=3,
             show_progress=False)


@pytest.fixture(scope="module")
def judged(tmp_path_factory, tiny_st):
    docs = scifact_docs(120)
    path = tmp_path_factory.mktemp("td") / "coll"
    coll = Collection.create(path, CollectionConfig(dense=DenseConfig(model=tiny_st, backend="torch")))
    coll.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs])
    coll.commit()
    queries = {f"q{i}": d["title"] for i, d in enumerate(docs[:40])}
    qrels = {f"q{i}": {d["_id"]: 1} for i, d in enumerate(docs[:40])}
    # two queries with two relevant documents each
    qrels["q0"][docs[50]["_id"]] = 1
    qrels["q1"][docs[51]["_id"]] = 1
    yield coll, queries, qrels, docs
    coll.close()


def test_the_loss_never_counts_a_relevant_document_as_a_negative():
    import torch

    class Fixed(torch.nn.Module):  # "encodes" a feature dict by returning its vectors
        def forward(self, f):
            return {"sentence_embedding": f["v"]}

    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[1.0, 0.1], [0.1, 1.0]])
    neg = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # row 0's negative is row 1's query direction and vice versa
    labels = torch.tensor([[0, 10, 20], [1, 11, 21]])
    plain = multi_positive_infonce(Fixed(), set())
    # query 0 is also relevant to document 11 (row 1's positive) and 21 (mined for row 1)
    masked = multi_positive_infonce(Fixed(), {(0, 10), (1, 11), (0, 11), (0, 21)})
    feats = [{"v": q}, {"v": pos}, {"v": neg}]
    lp, lm = float(plain(feats, labels)), float(masked(feats, labels))
    # by hand: query 0's candidates lose documents 11 (column 1) and 21 (column 3)
    s = 20 * torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(torch.cat([pos, neg]), dim=-1).T
    row0 = torch.logsumexp(s[0, [0, 2]], 0) - s[0, 0]
    row1 = torch.logsumexp(s[1], 0) - s[1, 1]
    assert lm == pytest.approx(float((row0 + row1) / 2), rel=1e-5)
    assert lm < lp


def test_training_improves_held_out_ranking_and_saves_a_plain_model(judged, tiny_st, tmp_path):
    from sentence_transformers import SentenceTransformer

    coll, queries, qrels, docs = judged
    out = tmp_path / "model"
    info = train_dense(coll, queries, qrels, out, **SMALL)
    assert info.train_queries == 34 and info.rows >= 34 and info.steps > 0 and info.base_model.endswith("st")
    assert info.val_ndcg_best > info.val_ndcg_before  # checkpoints are chosen on held-out queries
    saved = json.loads((out / "retrievo_training.json").read_text())
    assert saved["rows"] == info.rows and (out / "README.md").exists()
    texts = ["a query about cells", docs[3]["text"]]
    new = SentenceTransformer(str(out), device="cpu").encode(texts)
    old = SentenceTransformer(tiny_st, device="cpu").encode(texts)
    assert new.shape == old.shape and not np.allclose(new, old, atol=1e-4)
    # a collection indexes with it (the content cache is keyed by the model, so nothing old is reused)
    c2 = Collection.create(tmp_path / "c2", CollectionConfig(dense=DenseConfig(model=str(out), backend="torch")))
    c2.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs[:5]])
    c2.commit()
    v = SentenceTransformer(str(out), device="cpu").encode([f"{docs[0]['title']} {docs[0]['text']}"],
                                                            normalize_embeddings=True)
    got = c2.search(docs[0]["title"], k=1, method="dense")
    assert got.ids[0][0] in {d["_id"] for d in docs[:5]} and v.shape[1] == 32
    c2.close()


def test_bad_inputs_give_clear_errors_and_write_nothing(judged, tmp_path, lexical_config):
    coll, queries, qrels, docs = judged
    out = tmp_path / "never"
    for bad, words in [({}, "no judged queries"), ({"q0": {"gone": 1}}, "'gone'"),
                       ({"zz": {docs[0]["_id"]: 1}}, "'zz'")]:
        with pytest.raises(InvalidInputError, match=words):
            train_dense(coll, queries, bad, out, **SMALL)
        assert not out.exists()
    lex = Collection.create(tmp_path / "lex", lexical_config)
    with pytest.raises(InvalidInputError, match="no dense model"):
        train_dense(lex, queries, qrels, out, **SMALL)
    lex.close()
    assert not out.exists()


def test_cli_train(judged, tiny_st, tmp_path):
    _, queries, qrels, docs = judged
    folder = make_beir(tmp_path / "beir", docs, queries, [(q, d, 1) for q, r in qrels.items() for d in r])
    (folder / "qrels" / "train.tsv").write_text((folder / "qrels" / "test.tsv").read_text())
    coll = tmp_path / "coll"
    cli = [sys.executable, "-m", "retrievo"]
    subprocess.run(cli + ["index", str(folder), "--collection", str(coll), "--model", tiny_st, "--backend", "torch",
                          "--quiet"], check=True)
    run = subprocess.run(cli + ["train", str(coll), str(folder), "--output", str(tmp_path / "m"), "--max-length",
                                "48", "--depth", "8", "--negatives", "2", "--val-queries", "4", "--batch-size", "8",
                                "--json"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    info = json.loads(run.stdout.strip().splitlines()[-1])
    assert info["train_queries"] == 36 and (tmp_path / "m" / "modules.json").exists() and info["sources"] == []
    # another folder's judged queries mixed in by weight (its own BM25 collection mines their negatives)
    other = scifact_docs(200)[120:]
    folder2 = make_beir(tmp_path / "beir2", other, {f"o{i}": d["title"] for i, d in enumerate(other[:30])},
                        [(f"o{i}", d["_id"], 1) for i, d in enumerate(other[:30])])
    (folder2 / "qrels" / "train.tsv").write_text((folder2 / "qrels" / "test.tsv").read_text())
    mixed = subprocess.run(cli + ["train", str(coll), str(folder), "--output", str(tmp_path / "m2"), "--source",
                                  f"{folder2}:3", "--max-rows", "40", "--epochs", "0.5", "--max-length", "32",
                                  "--depth", "8", "--negatives", "2", "--val-queries", "4", "--batch-size", "8",
                                  "--json"], capture_output=True, text=True, timeout=600)
    assert mixed.returncode == 0, mixed.stderr[-2000:]
    src = json.loads(mixed.stdout.strip().splitlines()[-1])["sources"]
    assert [s["weight"] for s in src] == [1.0, 3.0] and src[1]["name"] == "beir2" and src[1]["rows"] == 30
    bad = subprocess.run(cli + ["train", str(coll), str(folder), "--output", str(tmp_path / "m3"), "--source",
                                f"{folder2}:x"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "weight after ':' must be a number" in bad.stderr
    alone = subprocess.run(cli + ["train", str(coll), str(folder), "--output", str(tmp_path / "m3"), "--learn-weights"],
                           capture_output=True, text=True, timeout=120)
    assert alone.returncode == 2 and "needs training sources" in alone.stderr and not (tmp_path / "m3").exists()
    # re-index with the trained model: same documents and metadata, new vectors; an existing output is refused
    new = tmp_path / "reindexed"
    ri = subprocess.run(cli + ["reindex", str(coll), "--model", str(tmp_path / "m"), "--output", str(new), "--quiet"],
                        capture_output=True, text=True)
    assert ri.returncode == 0, ri.stderr[-2000:]
    c2 = Collection.open(new, readonly=True)
    try:
        assert len(c2) == len(docs) and c2.config.dense.model == str(tmp_path / "m")
        assert c2.get(docs[7]["_id"]).text == docs[7]["text"]
        from sentence_transformers import SentenceTransformer

        want = SentenceTransformer(str(tmp_path / "m"), device="cpu").encode(
            [f"{docs[7]['title']} {docs[7]['text']}"], normalize_embeddings=True)[0]
        row = int(np.flatnonzero(np.array(c2.snapshot().ids) == docs[7]["_id"])[0])
        got = c2.snapshot().signals["dense"].gather(np.array([row]))[0]
        assert float(got @ want) > 0.999
    finally:
        c2.close()
    again = subprocess.run(cli + ["reindex", str(coll), "--model", str(tmp_path / "m"), "--output", str(new)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr


def test_mix_rows_draws_whole_queries_by_weight():
    from retrievo.training.mixing import mix_rows

    a = [(f"qa{i}", "p", ["n"], [i, 100 + i, 200]) for i in range(40)]  # 40 queries, one row each
    b = [(f"qb{i}", "p", ["n"], [50 + i // 2, 300 + i, 400]) for i in range(10)]  # 5 queries, two rows each
    rows, counts = mix_rows([a, b], [3.0, 1.0], 40, np.random.default_rng(0))
    assert counts == [30, 10] and len(rows) == 40
    rows, counts = mix_rows([a, b], [1.0, 3.0], 40, np.random.default_rng(0))  # b is repeated to fill its share
    assert counts == [10, 30] and sum(r[0].startswith("qb") for r in rows) == 30
    by_query = {}
    for r in rows:
        by_query.setdefault(r[3][0], []).append(r)
    assert all(len(g) % 2 == 0 for q, g in by_query.items() if q >= 50)  # whole queries: both rows or none
    with pytest.raises(InvalidInputError, match="weight"):
        mix_rows([a, b], [1.0, 0.0], 40, np.random.default_rng(0))


def test_training_mixes_sources_by_their_weights(judged, tmp_path):
    """A second source (other abstracts under their titles) and a third (titles under other abstracts), mixed in by
    their weights; bad sources and weights are refused before anything is written."""
    from retrievo.training.mixing import TrainingSource

    coll, queries, qrels, _ = judged
    other = scifact_docs(220)[120:]
    lex = Collection.create(tmp_path / "other", CollectionConfig(dense=None))
    lex.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in other])
    lex.commit()
    good_q = {f"g{i}": d["title"] for i, d in enumerate(other[:40])}
    good = TrainingSource(lex, good_q, {f"g{i}": {d["_id"]: 1} for i, d in enumerate(other[:40])}, name="good")
    bad_q = {f"b{i}": d["title"] for i, d in enumerate(other[40:80])}
    bad = TrainingSource(lex, bad_q, {f"b{i}": {other[40 + (i + 17) % 40]["_id"]: 1} for i in range(40)}, name="bad")
    given = train_dense(coll, queries, qrels, tmp_path / "m1", sources=[good], weight=1.0, max_rows=60,
                        **{**SMALL, "epochs": 1})
    (main, second) = [s["rows"] for s in given.sources]  # whole queries: one of the main's has two rows
    assert main in (30, 31) and second == 30 and given.rows == main + second
    assert given.sources[1]["name"] == "good" and 35 <= given.sources[1]["available_rows"] <= 40  # few negatives: skipped
    three = train_dense(coll, queries, qrels, tmp_path / "m2", sources=[good, bad], weight=2.0, max_rows=60,
                        **{**SMALL, "epochs": 1})
    assert [s["weight"] for s in three.sources] == [2.0, 1.0, 1.0] and [s["rows"] for s in three.sources][1:] == [15, 15]
    saved = json.loads((tmp_path / "m2" / "retrievo_training.json").read_text())
    assert [s["name"] for s in saved["sources"]][1:] == ["good", "bad"] and saved["rows"] == three.rows
    with pytest.raises(InvalidInputError, match="weight must be > 0"):
        train_dense(coll, queries, qrels, tmp_path / "m3", sources=[good], weight=-1, **SMALL)
    with pytest.raises(InvalidInputError, match="weight must be > 0"):
        TrainingSource(lex, good_q, good.qrels, weight=0)
    with pytest.raises(InvalidInputError, match="source good.*not in"):
        train_dense(coll, queries, qrels, tmp_path / "m4",
                    sources=[TrainingSource(lex, good_q, {"g0": {"nope": 1}}, name="good")], **SMALL)
    assert not (tmp_path / "m3").exists() and not (tmp_path / "m4").exists()
    lex.close()



def test_learnt_weights_put_a_source_of_wrong_pairs_below_a_right_one(judged, tmp_path):
    """``learn_weights``: the source whose pairs are wrong (titles under other abstracts) gets a lower weight,
    and so fewer rows, than the one whose pairs are right; the rewards are saved with the weights."""
    from retrievo.training.mixing import TrainingSource

    coll, queries, qrels, _ = judged
    other = scifact_docs(220)[120:]
    lex = Collection.create(tmp_path / "other", CollectionConfig(dense=None))
    lex.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in other])
    lex.commit()
    good = TrainingSource(lex, {f"g{i}": d["title"] for i, d in enumerate(other[:40])},
                          {f"g{i}": {d["_id"]: 1} for i, d in enumerate(other[:40])}, name="good")
    bad = TrainingSource(lex, {f"b{i}": d["title"] for i, d in enumerate(other[40:80])},
                         {f"b{i}": {other[40 + (i + 17) % 40]["_id"]: 1} for i in range(40)}, name="bad")
    info = train_dense(coll, queries, qrels, tmp_path / "m", sources=[good, bad], max_rows=60, learn_weights=True,
                       **{**SMALL, "epochs": 1, "val_queries": 10})
    main, g, b = info.sources
    assert [m["given_weight"] for m in info.sources] == [1.0, 1.0, 1.0]
    assert b["reward"] < g["reward"] and b["weight"] < g["weight"] and b["rows"] < g["rows"], info.sources
    saved = json.loads((tmp_path / "m" / "retrievo_training.json").read_text())
    assert [s["reward"] for s in saved["sources"]] == [m["reward"] for m in info.sources]
    with pytest.raises(InvalidInputError, match="needs training sources"):
        train_dense(coll, queries, qrels, tmp_path / "m2", learn_weights=True, **SMALL)
    assert not (tmp_path / "m2").exists()
    lex.close()


def test_learnt_weights_step_from_the_given_weights():
    from retrievo.training.mixing import learnt_weights

    w = learnt_weights([1.0, 2.0, 1.0], [0.1, 0.0, -0.3], temperature=0.05)
    assert w[0] == 1.0 and np.isclose(w[1], 2 * np.exp(-2.0)) and np.isclose(w[2], np.exp(-8.0))
    assert learnt_weights([1.0, 1.0], [0.0, -5.0])[1] == 1e-6  # never 0: every source keeps a weight > 0
    with pytest.raises(InvalidInputError, match="temperature"):
        learnt_weights([1.0], [0.0], temperature=0)
