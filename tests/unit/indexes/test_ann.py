"""HNSW / IVF / IVF-PQ (faiss) per segment: recall against exact search, filters, tombstones, persistence."""

import numpy as np
import pytest

pytest.importorskip("faiss")

from retrievo.config import DenseIndexConfig  # noqa: E402
from retrievo.errors import ConfigError  # noqa: E402
from retrievo.indexes.ann import AnnIndex, build_segment_index, choose_strategy, load_segment_index  # noqa: E402
from retrievo.indexes.flat import FlatIndex  # noqa: E402


def clustered(n, dim, seed, centres=40):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    x = clustered(6000, 64, 0)
    q = clustered(40, 64, 1)
    live = np.ones(6000, bool)
    live[::11] = False  # tombstones
    return x, q, live


def make(x, live, cfg, split=3500, tmp=None, **kw):
    segs = []
    for offset, part in ((0, x[:split]), (split, x[split:])):
        path = None if tmp is None else tmp / f"seg{offset}.faiss"
        segs.append((offset, build_segment_index(part, cfg, path), len(part)))
    flat = FlatIndex([(0, x[:split]), (split, x[split:])], live)
    return AnnIndex(segs, flat, live, cfg, **kw), flat


def recall(a, b, k=10):
    return np.mean([len(set(r) & set(e)) / k for r, e in zip(a, b, strict=True)])


@pytest.mark.parametrize("cfg,minimum", [
    (DenseIndexConfig(kind="hnsw", M=16, ef_construction=100, ef_search=128), 0.95),
    (DenseIndexConfig(kind="ivf", nlist=64, nprobe=16), 0.95),
    (DenseIndexConfig(kind="ivfpq", nlist=64, nprobe=16, pq_m=16, pq_bits=8), 0.5),
])
def test_recall_against_exact_and_no_dead_rows(data, cfg, minimum):
    x, q, live = data
    idx, flat = make(x, live, cfg)
    rows, scores, counts = idx.search(q, 10)
    exact, _, _ = flat.search(q, 10)
    assert idx.last_strategy == "postfilter"  # tombstones make it a (very broad) filter
    assert recall(rows, exact) >= minimum
    assert live[rows[rows >= 0]].all() and (counts == 10).all()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


# at 6,000 rows exact search is the cheapest strategy for every filter; exact_below=0 forces the index paths
@pytest.mark.parametrize("selectivity,strategy,exact_below", [
    (0.0005, "exact", 2048), (0.3, "exact", 2048), (0.45, "filtered-traversal", 0), (0.7, "postfilter", 0)])
def test_filters_by_selectivity(data, selectivity, strategy, exact_below):
    x, q, live = data
    idx, flat = make(x, live, DenseIndexConfig(kind="hnsw", M=16, ef_construction=100, ef_search=128),
                     exact_below=exact_below)
    rng = np.random.default_rng(5)
    allowed = rng.random(6000) < selectivity
    rows, _, counts = idx.search(q, 10, allowed)
    assert idx.last_strategy == strategy
    exact, _, exact_counts = flat.search(q, 10, allowed)
    ok = allowed & live
    assert (counts == exact_counts).all() and (counts == min(10, int(ok.sum()))).all()
    assert ok[rows[rows >= 0]].all()
    assert recall(rows, exact, k=int(counts[0])) >= 0.95


def test_strategy_cost_model_at_a_million_rows():
    hnsw = DenseIndexConfig(kind="hnsw", M=32, ef_search=512)
    n = 1_000_000
    # exact costs the allowed rows; filtered HNSW ~ efSearch x 2M / selectivity distances
    assert choose_strategy(500, n, 10, hnsw) == "exact"
    assert choose_strategy(10_000, n, 10, hnsw) == "exact"
    assert choose_strategy(100_000, n, 10, hnsw) == "exact"  # 100k < 512 * 64 / 0.1 = 327,680
    assert choose_strategy(250_000, n, 10, hnsw) == "filtered-traversal"
    assert choose_strategy(500_000, n, 10, hnsw) == "filtered-traversal"
    assert choose_strategy(700_000, n, 10, hnsw) == "postfilter"
    assert choose_strategy(n, n, 10, hnsw, filtered=False) == "ann"
    assert choose_strategy(0, n, 10, hnsw) == "empty"
    small_ef = hnsw.replace(ef_search=64)
    assert choose_strategy(100_000, n, 10, small_ef) == "filtered-traversal"
    ivf = DenseIndexConfig(kind="ivf", nlist=4000, nprobe=32)  # scans 32/4000 of the allowed rows
    assert choose_strategy(10_000, n, 10, ivf) == "filtered-traversal"
    assert choose_strategy(3_000, n, 10, ivf) == "exact"
    assert choose_strategy(100_000, n, 10, hnsw, exact_below=0) == "filtered-traversal"


def test_never_fewer_than_k_when_traversal_falls_short(data):
    x, q, live = data
    # a tiny beam with a selective filter makes HNSW miss results; exact completion must fill them in
    weak, flat = make(x, live, DenseIndexConfig(kind="hnsw", M=4, ef_construction=8, ef_search=1))
    idx = AnnIndex(weak.segments, flat, live, weak.cfg, exact_below=0)
    allowed = np.zeros(6000, bool)
    allowed[np.random.default_rng(2).choice(6000, 300, replace=False)] = True
    _, _, counts = idx.search(q, 10, allowed)
    assert (counts == 10).all()


def test_persistence_roundtrip_mmap(data, tmp_path):
    x, q, live = data
    cfg = DenseIndexConfig(kind="ivf", nlist=32, nprobe=8)
    built = build_segment_index(x, cfg, tmp_path / "a.faiss")
    loaded = load_segment_index(tmp_path / "a.faiss")
    d1, i1 = built.search(q, 10)
    d2, i2 = loaded.search(q, 10)
    np.testing.assert_array_equal(i1, i2)
    assert not (tmp_path / "a.tmp").exists()


def test_bad_index_parameters():
    with pytest.raises(ConfigError, match="M must be"):
        DenseIndexConfig(kind="hnsw", M=0)
    with pytest.raises(ConfigError, match="kind must be"):
        DenseIndexConfig(kind="lsh")
    with pytest.raises(ConfigError, match="must divide"):
        build_segment_index(np.ones((300, 10), np.float32), DenseIndexConfig(kind="ivfpq", pq_m=3, nlist=4))
