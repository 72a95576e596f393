"""``train_reranker`` / ``retrievo train-reranker`` on tiny data: a 2-layer BERT built from a config, 120 real
SciFact abstracts in a lexical collection, their titles as judged queries."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig, SearchRequest
from retrievo.errors import InvalidInputError
from retrievo.training.reranker import train_reranker
from tests.conftest import make_beir, scifact_docs

pytestmark = pytest.mark.filterwarnings("ignore")

SMALL = dict(max_length=64, batch_size=8, epochs=4, lr=5e-4, depth=8, negatives=3, val_queries=6, evals=2,
             max_pairs=None, show_progress=False)


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    docs = scifact_docs(120)
    path = tmp_path_factory.mktemp("tr") / "coll"
    coll = Collection.create(path, CollectionConfig(dense=None))
    coll.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs])
    coll.commit()
    queries = {f"q{i}": d["title"] for i, d in enumerate(docs[:40])}
    qrels = {f"q{i}": {d["_id"]: 1} for i, d in enumerate(docs[:40])}
    yield coll, queries, qrels, docs
    coll.close()


def _bce(folder, pairs, labels) -> float:
    """The trainer's loss: binary cross-entropy on the logit, positives weighted by the negative:positive ratio."""
    from sentence_transformers import CrossEncoder

    logits = CrossEncoder(str(folder), device="cpu", activation_fn=__import__("torch").nn.Identity()).predict(
        pairs, batch_size=32, show_progress_bar=False)
    logits = np.asarray(logits, dtype=np.float64)
    w = (1 - labels).sum() / labels.sum()
    return float(np.mean(w * labels * np.logaddexp(0, -logits) + (1 - labels) * np.logaddexp(0, logits)))


def test_training_lowers_the_loss_changes_the_model_and_saves_a_plain_cross_encoder(judged, tiny_cross_encoder, tmp_path):
    from safetensors.numpy import load_file
    from sentence_transformers import CrossEncoder

    from retrievo.encoders.cross import FastCrossEncoder
    from retrievo.training.judged import judged_set

    coll, queries, qrels, docs = judged
    out = tmp_path / "reranker"
    info = train_reranker(coll, queries, qrels, out, base_model=str(tiny_cross_encoder), **SMALL)
    assert info.train_queries == 34 and info.val_queries == 6 and info.steps > 0 and info.pairs > 100
    saved = json.loads((out / "retrievo_training.json").read_text())
    assert saved["pairs"] == info.pairs and saved["method"] == "bm25"
    assert (out / "README.md").exists()  # the model card

    # the weights changed
    before = load_file(str(tiny_cross_encoder / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    common = [k for k in before if k in after]
    assert common and any(not np.allclose(before[k], after[k]) for k in common)

    # the loss on the training pairs went down (the same pairs the trainer saw, scored by each model)
    js = judged_set(coll, queries, qrels, depth=8, negatives=3, val_queries=6, seed=0)
    pairs = [(q.text, js.texts[d]) for q in js.train for d in q.positives + q.negatives]
    labels = np.array([1.0 if d in q.positives else 0.0 for q in js.train for d in q.positives + q.negatives])
    assert _bce(out, pairs, labels) < _bce(tiny_cross_encoder, pairs, labels) - 0.05

    # a plain sentence-transformers CrossEncoder loads it; retrievo's fast path and the rerank stage agree with it
    ce = CrossEncoder(str(out), device="cpu")
    plain = ce.predict(pairs[:20], show_progress_bar=False)
    assert np.abs(FastCrossEncoder(str(out)).predict(pairs[:20]) - plain).max() < 1e-4
    res = coll.searcher.search([queries["q0"]], SearchRequest(method="bm25", k=5, rerank=str(out), rerank_depth=8))
    assert res.counts[0] == 5


def test_bad_judgements_give_clear_errors_and_write_nothing(judged, tiny_cross_encoder, tmp_path):
    coll, queries, qrels, docs = judged
    out = tmp_path / "never"
    cases = [
        ({}, "no judged queries"),
        ({"q0": {"no-such-doc": 1}}, "'no-such-doc'"),
        ({"nope": {docs[0]["_id"]: 1}}, "'nope'"),
        ({q: {d: 0 for d in r} for q, r in qrels.items()}, "relevant"),
    ]
    for bad, words in cases:
        with pytest.raises(InvalidInputError, match=words):
            train_reranker(coll, queries, bad, out, base_model=str(tiny_cross_encoder), **SMALL)
        assert not out.exists() and not list(tmp_path.glob(".never*"))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not empty"):
        train_reranker(coll, queries, qrels, taken, base_model=str(tiny_cross_encoder), **SMALL)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]


def test_cli_trains_and_refuses_an_empty_split(judged, tiny_cross_encoder, tmp_path):
    _, queries, qrels, docs = judged
    folder = make_beir(tmp_path / "beir", docs, queries, [(q, d, 1) for q, r in qrels.items() for d in r])
    (folder / "qrels" / "train.tsv").write_text((folder / "qrels" / "test.tsv").read_text())
    (folder / "qrels" / "empty.tsv").write_text("query-id\tcorpus-id\tscore\n")
    coll = tmp_path / "coll"
    cli = [sys.executable, "-m", "retrievo"]
    subprocess.run(cli + ["index", str(folder), "--collection", str(coll), "--no-dense", "--quiet"], check=True)
    base = cli + ["train-reranker", str(coll), str(folder), "--base-model", str(tiny_cross_encoder), "--max-length",
                  "64", "--depth", "8", "--negatives", "2", "--val-queries", "4", "--max-pairs", "60", "--batch-size",
                  "8", "--json"]
    bad = subprocess.run(base + ["--split", "empty", "--output", str(tmp_path / "e")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no judged queries" in bad.stderr and not (tmp_path / "e").exists()
    ok = subprocess.run(base + ["--output", str(tmp_path / "m")], capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr[-2000:]
    info = json.loads(ok.stdout.strip().splitlines()[-1])
    assert info["pairs"] <= 60 and info["train_queries"] == 36 and (tmp_path / "m" / "config.json").exists()
