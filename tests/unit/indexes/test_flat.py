import numpy as np
import pytest

from retrievo.indexes.flat import FlatIndex


@pytest.mark.parametrize("dim", [8, 64])
def test_flat_equals_brute_force_across_blocks_with_mask(dim):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, dim)).astype(np.float32)
    b = rng.normal(size=(30, dim)).astype(np.float32)
    live = np.ones(80, bool)
    live[[3, 55, 79]] = False
    allowed = rng.random(80) < 0.5
    q = rng.normal(size=(4, dim)).astype(np.float32)
    idx = FlatIndex([(0, a), (50, b)], live)
    rows, scores, counts = idx.search(q, 7, allowed)
    full = q @ np.concatenate([a, b]).T
    ok = live & allowed
    for i in range(4):
        cand = np.flatnonzero(ok)
        order = cand[np.argsort(-full[i, cand], kind="stable")][:7]
        assert rows[i].tolist() == order.tolist()
        np.testing.assert_allclose(scores[i], full[i, order], rtol=1e-5)
    assert counts.tolist() == [7] * 4


def test_flat_pads_when_fewer_rows_allowed():
    m = np.eye(4, dtype=np.float32)
    idx = FlatIndex([(0, m)], np.ones(4, bool))
    allowed = np.array([False, True, False, True])
    rows, scores, counts = idx.search(np.ones((1, 4), np.float32), 3, allowed)
    assert counts[0] == 2 and sorted(rows[0, :2].tolist()) == [1, 3]
    assert rows[0, 2] == -1 and np.isneginf(scores[0, 2])


def test_selective_mask_uses_subset_path_and_equals_brute_force():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    q = rng.normal(size=(5, 16)).astype(np.float32)
    live = np.ones(1000, bool)
    live[10] = False
    allowed = np.zeros(1000, bool)
    allowed[rng.choice(1000, 40, replace=False)] = True
    allowed[10] = True  # dead: must not come back
    idx = FlatIndex([(0, x[:600]), (600, x[600:])], live)
    rows, scores, counts = idx.search(q, 8, allowed)
    ok = np.flatnonzero(allowed & live)
    full = q @ x.T
    for i in range(5):
        expected = ok[np.argsort(-full[i, ok], kind="stable")][:8]
        assert rows[i].tolist() == expected.tolist()
        np.testing.assert_allclose(scores[i], full[i, expected], rtol=1e-5)
    assert counts.tolist() == [8] * 5
    np.testing.assert_array_equal(idx.gather(np.array([599, 600, 3])), x[[599, 600, 3]])


@pytest.mark.parametrize("cls", ["float", "int8", "binary"])
def test_subset_path_in_chunks_equals_full_scan(monkeypatch, cls):
    """A filter's subset scored a chunk at a time (rows across chunks and segments) equals the full scan."""
    import retrievo.indexes.flat as flat_mod
    from retrievo.indexes.quantized import BinaryIndex, Int8Index

    rng = np.random.default_rng(4)
    x = rng.normal(size=(900, 32)).astype(np.float32)
    q = rng.normal(size=(6, 32)).astype(np.float32)
    q[1] = x[5]  # ties are possible for the codes: the lower row must win in both paths
    live = np.ones(900, bool)
    live[::7] = False
    allowed = rng.random(900) < 0.3
    make = {"float": FlatIndex, "int8": Int8Index, "binary": BinaryIndex}[cls]
    idx = make([(0, x[:400]), (400, x[400:])], live)
    full = idx.search(q, 9, np.ones(900, bool) & allowed)  # subset path (≤ 1/3 of rows allowed)
    monkeypatch.setattr(flat_mod, "_SUBSET_CHUNK", 37)
    chunked = idx.search(q, 9, allowed)
    monkeypatch.setattr(flat_mod, "SUBSET_BELOW", 0.0)  # force the full masked scan
    scan = idx.search(q, 9, allowed)
    for a, b, c in zip(full, chunked, scan, strict=True):  # rows and counts equal; scores up to BLAS rounding
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-5)
            np.testing.assert_allclose(b, c, rtol=1e-5)
        else:
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(b, c)
