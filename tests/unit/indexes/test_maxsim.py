"""Exact MaxSim against Chamfer similarity computed one pair at a time."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo.indexes import maxsim as maxsim_mod
from retrievo.indexes.maxsim import MaxSimIndex
from retrievo.indexes.muvera import chamfer


def _blocks(rng, sizes, dim):
    """Segments of random token sets (float16, as stored): [(offset, indptr, tokens)], and all sets."""
    blocks, sets, offset = [], [], 0
    for n in sizes:
        seg = []
        for _ in range(n):
            x = rng.standard_normal((int(rng.integers(1, 25)), dim)).astype(np.float32)
            seg.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16))
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(s) for s in seg], out=ptr[1:])
        blocks.append((offset, ptr, np.concatenate(seg)))
        sets += seg
        offset += n
    return blocks, sets


def test_search_equals_pairwise_chamfer_with_deletions_and_filter(monkeypatch):
    monkeypatch.setattr(maxsim_mod, "_TOKEN_BLOCK", 64)  # many document blocks per segment
    rng = np.random.default_rng(0)
    blocks, sets = _blocks(rng, [40, 7, 25], 16)
    n = len(sets)
    live = rng.random(n) > 0.2
    allowed = rng.random(n) > 0.3
    index = MaxSimIndex(blocks, live)
    queries = [rng.standard_normal((int(rng.integers(1, 9)), 16)).astype(np.float32) for _ in range(5)]
    ref = np.array([[chamfer(q, s.astype(np.float32)) for s in sets] for q in queries])
    for mask in (None, allowed):
        keep = live if mask is None else live & mask
        rows, scores, counts = index.search(queries, 10, mask)
        for i in range(len(queries)):
            want = np.flatnonzero(keep)[np.argsort(-ref[i][keep], kind="stable")][:10]
            assert counts[i] == min(10, keep.sum())
            assert rows[i, :counts[i]].tolist() == want.tolist()
            np.testing.assert_allclose(scores[i, :counts[i]], ref[i][want], rtol=1e-4)
    # scoring given candidates
    cand = [np.array([3, 50, 9]), np.array([], dtype=np.int64), np.array([71]), np.array([0]), np.array([46, 47])]
    for i, got in enumerate(index.score(queries, cand)):
        np.testing.assert_allclose(got, ref[i][cand[i]], rtol=1e-4)


def test_k_larger_than_the_collection_pads():
    rng = np.random.default_rng(1)
    blocks, sets = _blocks(rng, [3], 8)
    index = MaxSimIndex(blocks, np.array([True, False, True]))
    rows, scores, counts = index.search([rng.standard_normal((2, 8)).astype(np.float32)], 5)
    assert counts.tolist() == [2] and rows[0, 2:].tolist() == [-1, -1, -1] and np.isneginf(scores[0, 2:]).all()
    assert sorted(rows[0, :2].tolist()) == [0, 2]


@pytest.mark.parametrize("k", [1, 4])
def test_ties_and_large_collections_keep_the_exact_top_k(k):
    """Past 4k rows the top k is selected by partition first; the result is the sort of all scores."""
    rng = np.random.default_rng(2)
    blocks, sets = _blocks(rng, [120], 8)
    index = MaxSimIndex(blocks, np.ones(120, bool))
    q = [rng.standard_normal((3, 8)).astype(np.float32)]
    rows, scores, _ = index.search(q, k)
    ref = index.all_scores(q)[0]
    want = np.lexsort((np.arange(120), -ref))[:k]
    assert rows[0].tolist() == want.tolist()


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_compressed_scan_rescored_exactly(kind, tmp_path):
    from retrievo.indexes.maxsim import TokenCodes

    rng = np.random.default_rng(3)
    blocks, sets = _blocks(rng, [50, 30], 32)
    live = np.ones(80, bool)
    live[[4, 60]] = False
    exact = MaxSimIndex(blocks, live)
    codes = [TokenCodes.encode(kind, tok) for _, _, tok in blocks]
    codes[0].save(tmp_path)
    again = TokenCodes.load(kind, tmp_path, 32)
    np.testing.assert_array_equal(np.asarray(again.codes), codes[0].codes)
    queries = [rng.standard_normal((4, 32)).astype(np.float32) for _ in range(6)]
    approx = MaxSimIndex(blocks, live, codes, rescore_multiplier=4).all_scores(queries, compressed=True)
    ref = exact.all_scores(queries)
    if kind == "int8":  # dequantised tokens: scores within a percent
        np.testing.assert_allclose(approx[:, live], ref[:, live], rtol=0.02, atol=0.02)
    else:  # sign bits: a coarse estimate that still ranks
        from scipy.stats import spearmanr

        assert np.mean([spearmanr(a[live], r[live]).statistic for a, r in zip(approx, ref, strict=True)]) > 0.5
    # everything rescored: the exact answer
    rows, scores, _ = MaxSimIndex(blocks, live, codes, rescore_multiplier=40).search(queries, 5)
    rows_e, scores_e, _ = exact.search(queries, 5)
    assert rows.tolist() == rows_e.tolist()
    np.testing.assert_allclose(scores, scores_e, rtol=1e-6)
    assert codes[0].nbytes < (blocks[0][2].nbytes if kind == "int8" else blocks[0][2].nbytes / 8 + 1)


def test_half_to_single_conversion_is_exact_for_every_half():
    from retrievo.indexes.maxsim import as_float32

    every = np.arange(65536, dtype=np.uint16).view(np.float16).reshape(256, 256)
    want, got = every.astype(np.float32), as_float32(every)
    assert np.array_equal(np.isnan(want), np.isnan(got))
    ok = ~np.isnan(want)
    assert np.array_equal(want[ok].view(np.uint32), got[ok].view(np.uint32))  # signed zeros too
