"""What users of Pyserini and Qdrant expect: batch search from a topics file to a run file, count and scroll, and
a clear message for a missing run file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from retrievo import Collection, CollectionConfig
from retrievo.errors import InvalidInputError, NotFoundError
from retrievo.eval.runs import read_run
from tests.conftest import SCIFACT


@pytest.fixture(scope="module")
def coll(tmp_path_factory, scifact_small):
    c = Collection.create(tmp_path_factory.mktemp("nc") / "c", CollectionConfig(dense=None))
    c.add([{**d, "metadata": {"year": 2000 + i % 10}} for i, d in enumerate(scifact_small[:120])])
    c.commit()
    yield c
    c.close()


def test_count_and_scroll(coll, scifact_small):
    assert coll.count() == 120 and coll.count({"year": 2003}) == 12
    pages = list(coll.scroll({"year": {"$gte": 2005}}, batch=25))
    ids = [d.id for page in pages for d in page]
    assert len(ids) == 60 and ids == sorted(ids) and [len(p) for p in pages] == [25, 25, 10]
    assert all(d.metadata["year"] >= 2005 for page in pages for d in page)
    resumed = [d.id for page in coll.scroll({"year": {"$gte": 2005}}, batch=25, after=ids[24]) for d in page]
    assert resumed == ids[25:]
    with pytest.raises(InvalidInputError, match="batch"):
        next(coll.scroll(batch=0))


def test_batch_search_and_compare(coll, tmp_path, scifact_queries):
    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"q{i}\t{q}\n" for i, q in enumerate(scifact_queries[:15])))
    run = tmp_path / "bm25.trec"
    proc = subprocess.run([sys.executable, "-m", "retrievo", "batch-search", str(coll.path), str(topics), "--run-file",
                           str(run), "--k", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = read_run(run)
    want = coll.search(scifact_queries[:15], k=5).to_run()
    assert set(got) == {f"q{i}" for i in range(15)}
    for i in range(15):
        assert list(got[f"q{i}"]) == list(want[str(i)])
    with pytest.raises(NotFoundError, match="retrievo eval DATASET --method METHOD --run-file runA.trec"):
        read_run(tmp_path / "runA.trec")
    proc = subprocess.run([sys.executable, "-m", "retrievo", "compare", str(SCIFACT), "runA.trec", "runB.trec"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)  # as the README writes it
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "no such run file" in proc.stderr


def test_search_says_when_the_default_method_was_used(tmp_path, scifact_small, onnx_encoder):
    from retrievo import DenseConfig

    c = Collection.create(tmp_path / "d", CollectionConfig(dense=DenseConfig(backend="onnx")), encoder=onnx_encoder)
    c.add(scifact_small[:20])
    c.commit()
    c.close()
    run = [sys.executable, "-m", "retrievo", "search", str(tmp_path / "d"), "microglia", "--k", "2"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "(method bm25, the default; this collection also has dense, hybrid" in out.stderr
    out = subprocess.run(run + ["--method", "bm25"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "the default" not in out.stderr
    # planning a tiny collection: a table, not dozens of faiss k-means warnings
    plan = subprocess.run([sys.executable, "-m", "retrievo", "plan", str(tmp_path / "d"), "--memory-budget", "1MB"],
                          capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0 and "ivfpq" in plan.stdout and "WARNING clustering" not in plan.stderr
