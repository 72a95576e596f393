"""Acceptance on the full SciFact test split (encodes 5,183 abstracts: minutes). Run: pytest -m slow"""

import pytest

from retrievo.eval.datasets import bundled_dataset_path
from retrievo.eval.runner import run_eval

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scores():
    import os

    os.environ.pop("RETRIEVO_CACHE_DIR", None)  # reuse the user's cache: encoding is the slow part
    data = bundled_dataset_path("scifact")
    return {m: run_eval(data, method=m, show_progress=True).measures for m in ("bm25", "dense", "hybrid")}


def test_bm25(scores):
    assert scores["bm25"]["ndcg@10"] >= 0.665


def test_dense(scores):
    assert scores["dense"]["ndcg@10"] >= 0.640


def test_hybrid(scores):
    best = max(scores["bm25"]["ndcg@10"], scores["dense"]["ndcg@10"])
    assert scores["hybrid"]["ndcg@10"] >= max(0.710, best + 0.02)
