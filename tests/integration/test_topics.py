"""Topics from keywords (Lbl2Vec on stored dense vectors): the topic file's checks, documents per topic, the
classifier, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from retrievo import Collection, CollectionConfig, DenseConfig
from retrievo.errors import InvalidInputError, SourceFormatError
from retrievo.structure.topics import fit_topics, load_topics

TOPICS = {"music": ["guitar", "concert", "songs"], "weather": ["rain", "forecast", "temperature"],
          "cooking": ["recipe", "baking", "kitchen"]}
DOCS = [
    ("m1", "The band played new songs at the concert last night"), ("m2", "Learn guitar chords for beginners"),
    ("m3", "Top albums and singers of the year"), ("w1", "Heavy rain expected tomorrow with cold temperature"),
    ("w2", "The forecast says sunny skies and wind"), ("w3", "Storm warnings issued for the coast"),
    ("c1", "A simple recipe for baking bread at home"), ("c2", "Kitchen tips: how to chop onions quickly"),
    ("c3", "Slow-cooked beef stew with vegetables"),
]


@pytest.fixture(scope="module")
def coll(tmp_path_factory, onnx_encoder):
    c = Collection.create(tmp_path_factory.mktemp("topics") / "c", CollectionConfig(dense=DenseConfig(backend="onnx")),
                          encoder=onnx_encoder)
    c.add([{"id": i, "text": t} for i, t in DOCS])
    c.commit()
    yield c
    c.close()


def test_topics_classify_documents(coll):
    model = fit_topics(coll, TOPICS, max_docs=2)
    assert model.names == list(TOPICS) and model.similarities.shape == (len(DOCS), 3)
    np.testing.assert_allclose(np.linalg.norm(model.vectors, axis=1), 1.0, rtol=1e-5)
    got = model.assign()
    assert sum(got[d] == {"m": "music", "w": "weather", "c": "cooking"}[d[0]] for d in got) >= 8
    top = model.documents("weather", k=3)
    assert {d for d, _ in top} == {"w1", "w2", "w3"} and top[0][1] >= top[-1][1]
    assert all(t is None for t in model.assign(min_similarity=2.0).values())
    with pytest.raises(InvalidInputError, match="no topic 'sports'"):
        model.documents("sports")
    # topics change nothing in the collection
    assert coll.generation == 1 and len(coll) == len(DOCS)


def test_topic_files(tmp_path):
    y = tmp_path / "t.yaml"
    y.write_text("music: [guitar, songs]\nweather:\n  keywords: [rain]\n")
    assert load_topics(y) == {"music": ["guitar", "songs"], "weather": ["rain"]}
    j = tmp_path / "t.json"
    j.write_text(json.dumps([{"name": "music", "keywords": ["guitar"]}]))
    assert load_topics(j) == {"music": ["guitar"]}
    for text, msg in (("music: []\n", "topic 'music': 'keywords' must be a non-empty list"),
                      ("music: [guitar, 3]\n", "keyword 3 is not a non-empty string"),
                      ("- just a list\n", "topic 0: expected an object"),
                      ("music: [a\n", "not valid YAML"), ("{}\n", "no topics")):
        y.write_text(text)
        with pytest.raises(SourceFormatError, match=msg) as e:
            load_topics(y)
        assert str(y) in str(e.value)


def test_cli_topics(coll, tmp_path):
    spec = tmp_path / "topics.yaml"
    spec.write_text("\n".join(f"{k}: [{', '.join(v)}]" for k, v in TOPICS.items()) + "\n")
    out = tmp_path / "assign.jsonl"
    proc = subprocess.run([sys.executable, "-m", "retrievo", "topics", str(coll.path), str(spec), "--k", "2", "--json",
                           "--assignments", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert [t["name"] for t in res["topics"]] == list(TOPICS) and sum(t["assigned"] for t in res["topics"]) == len(DOCS)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == len(DOCS) and {x["id"] for x in lines} == {d for d, _ in DOCS}
    spec.write_text("music: 5\n")
    bad = subprocess.run([sys.executable, "-m", "retrievo", "topics", str(coll.path), str(spec)], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "topic 'music'" in bad.stderr
