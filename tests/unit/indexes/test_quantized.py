import numpy as np
import pytest

from retrievo.indexes.flat import FlatIndex
from retrievo.indexes.quantized import BinaryIndex, Int8Index, RescoringIndex, pack_signs


def clustered(n, dim, seed, centres=20):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_pack_signs_hand_checked():
    x = np.array([[1.0, -1.0, 0.5] + [-1.0] * 61 + [2.0]], dtype=np.float32)  # 65 dims -> 2 words
    words = pack_signs(x)
    assert words.shape == (1, 2) and words.dtype == np.uint64
    bits = np.unpackbits(words.view(np.uint8), axis=1)[0]
    assert bits[:3].tolist() == [1, 0, 1] and bits[3:64].sum() == 0 and bits[64] == 1


def test_hamming_scores_equal_brute_force():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 100)).astype(np.float32)
    q = rng.normal(size=(3, 100)).astype(np.float32)
    idx = BinaryIndex([(0, docs)], np.ones(50, bool))
    rows, scores, _ = idx.search(q, 50)
    brute = ((q[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(axis=2)
    for i in range(3):
        np.testing.assert_array_equal(-scores[i], brute[i, rows[i]])
        assert np.all(np.diff(-scores[i]) >= 0)


def test_int8_codes_approximate_inner_products():
    x = clustered(300, 64, 1)
    q = clustered(5, 64, 2)
    idx = Int8Index([(0, x[:200]), (200, x[200:])], np.ones(300, bool))
    assert idx.nbytes == 300 * 64 + 2 * 2 * 64 * 4  # int8 codes plus each segment's offset and scale
    rows, scores, _ = idx.search(q, 300)
    exact = q @ x.T
    for i in range(5):
        np.testing.assert_allclose(scores[i], exact[i, rows[i]], atol=0.02)


def near_duplicate_queries(n, dim, nq, seed):
    """Unit vectors and queries near some of them (Gaussian: a hard case for 1-bit codes)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, n, nq)] + 0.3 * rng.normal(size=(nq, dim)).astype(np.float32) / np.sqrt(dim)
    return x, q.astype(np.float32)


@pytest.mark.parametrize("kind", [Int8Index, BinaryIndex])
def test_rescoring_recall_masks_and_exactness(kind):
    x, q = near_duplicate_queries(2000, 256, 20, 3)
    live = np.ones(2000, bool)
    live[::7] = False
    blocks = [(0, x[:1200]), (1200, x[1200:])]
    full = FlatIndex(blocks, live)
    r = RescoringIndex(kind(blocks, live), full, rescore_multiplier=10)
    exact_rows, exact_scores, _ = full.search(q, 10)
    rows, scores, counts = r.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact_rows, strict=True)])
    # seeded; measured 1.0 (int8) and 0.64 (binary: top-10 of random vectors are nearly equidistant)
    assert recall >= (0.98 if kind is Int8Index else 0.55)
    worse = RescoringIndex(kind(blocks, live), full, rescore_multiplier=2).search(q, 10)[0]
    assert recall >= np.mean([len(set(a) & set(b)) / 10 for a, b in zip(worse, exact_rows, strict=True)])
    assert counts.tolist() == [10] * 20 and live[rows].all()
    # returned scores are exact inner products, best first
    for i in range(20):
        np.testing.assert_allclose(scores[i], x[rows[i]] @ q[i], rtol=1e-5, atol=1e-6)
        assert np.all(np.diff(scores[i]) <= 0)
    # a filter allowing 5 rows gives exactly those, ranked exactly
    allowed = np.zeros(2000, bool)
    allowed[[1, 2, 3, 1500, 1999]] = True
    rows_f, _, counts_f = r.search(q[:2], 10, allowed)
    assert counts_f.tolist() == [5, 5]
    assert set(rows_f[0, :5]) == {1, 2, 3, 1500, 1999}
    # when every row is a candidate the result is the exact one
    big = RescoringIndex(kind(blocks, live), full, rescore_multiplier=1000)
    np.testing.assert_array_equal(big.search(q, 10)[0], exact_rows)


def test_binary_ram_is_one_thirty_second():
    x = clustered(100, 384, 5)
    assert BinaryIndex([(0, x)], np.ones(100, bool)).nbytes * 32 == x.nbytes


@pytest.mark.parametrize("kind", [Int8Index, BinaryIndex])
def test_codes_saved_per_segment_reopen_memory_mapped(kind, tmp_path):
    x, q = near_duplicate_queries(700, 64, 8, 4)
    live = np.ones(700, bool)
    live[::5] = False
    built = kind([(0, x[:300]), (300, x[300:])], live)
    blocks = []
    for i, (offset, codes) in enumerate(built.blocks):
        folder = tmp_path / f"seg{i}"
        folder.mkdir()
        codes.save(folder)
        assert not list(folder.glob("*.tmp"))
        blocks.append((offset, kind.codes_class.load(folder)))
    loaded = kind.from_codes(blocks, live, 64)
    arrays = [b.codes if kind is Int8Index else b.words for _, b in loaded.blocks]
    assert all(isinstance(a, np.memmap) for a in arrays)
    assert loaded.nbytes == built.nbytes
    for a, b in zip(built.search(q, 10), loaded.search(q, 10), strict=True):
        np.testing.assert_array_equal(a, b)
    allowed = np.zeros(700, bool)
    allowed[[3, 301, 651]] = True
    assert set(loaded.search(q[:1], 10, allowed)[0][0, :3]) == {3, 301, 651}
