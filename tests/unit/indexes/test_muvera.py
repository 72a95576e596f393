"""MUVERA fixed-dimensional encodings against their definition, computed point by point."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from retrievo.config import FDEConfig
from retrievo.errors import ConfigError
from retrievo.indexes.muvera import FixedDimensionalEncoder, chamfer, gray_partition, sample_centroids


def _sets(rng, n, dim, lo=1, hi=30):
    out = []
    for _ in range(n):
        x = rng.standard_normal((int(rng.integers(lo, hi)), dim)).astype(np.float32)
        out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return out


def _csr(sets):
    ptr = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sets], out=ptr[1:])
    return ptr, np.concatenate(sets)


def _reference(enc: FixedDimensionalEncoder, points: np.ndarray, document: bool) -> np.ndarray:
    """The FDE of one set, point by point as the paper and Google's reference define it."""
    cfg = enc.config
    k, pdim, n_part = cfg.simhash, enc.pdim, enc.n_part
    blocks = []
    for r in range(cfg.repetitions):
        hyper = enc.hyperplanes[:, r * k:(r + 1) * k]
        proj = enc.projection[:, r * pdim:(r + 1) * pdim]
        block = np.zeros((n_part, pdim))
        count = np.zeros(n_part)
        signs = []
        if enc.centroids is not None:  # sampled partitions: the centre of largest inner product
            cents = enc.centroids[r]
            for x in points:
                p = int(np.argmax([float(x @ c) for c in cents]))
                block[p] += x @ proj
                count[p] += 1
            for p in range(n_part):
                if document and count[p]:
                    block[p] /= count[p]
                elif document and cfg.fill_empty:  # the token nearest the centroid
                    block[p] = points[int(np.argmax([float(x @ cents[p]) for x in points]))] @ proj
            blocks.append(block.ravel())
            continue
        for x in points:
            bits = [bool(v > 0) for v in x @ hyper]
            signs.append(bits)
            gray = 0
            for b in bits:  # the reference's AppendToGrayCode
                gray = (gray << 1) + (int(b) ^ (gray & 1))
            block[gray] += x @ proj
            count[gray] += 1
        if document:
            for p in range(n_part):
                if count[p]:
                    block[p] /= count[p]
                elif cfg.fill_empty and k:
                    want = p ^ (p >> 1)  # the partition's sign bits (first hyperplane most significant)
                    pattern = [bool((want >> (k - 1 - j)) & 1) for j in range(k)]
                    dist = [sum(a != b for a, b in zip(s, pattern, strict=True)) for s in signs]
                    block[p] = points[int(np.argmin(dist))] @ proj
        blocks.append(block.ravel())
    raw = np.concatenate(blocks)
    if cfg.final_dim is None:
        return raw
    rng = np.random.default_rng(cfg.seed)
    cols = rng.integers(0, cfg.final_dim, raw.size)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), raw.size)
    out = np.zeros(cfg.final_dim)
    np.add.at(out, cols, signs * raw)
    return out


@pytest.mark.parametrize("cfg", [
    FDEConfig(repetitions=3, simhash=3, projection_dim=4, partitions="simhash"),
    FDEConfig(repetitions=2, simhash=4, projection_dim=None, partitions="simhash"),
    FDEConfig(repetitions=2, simhash=2, projection_dim=8, final_dim=40, seed=7, partitions="simhash"),
    FDEConfig(repetitions=2, simhash=5, projection_dim=4, fill_empty=False, partitions="simhash"),
    FDEConfig(repetitions=3, simhash=3, projection_dim=4, projection="ams", partitions="simhash"),
    FDEConfig(repetitions=1, simhash=0, projection_dim=None, partitions="simhash"),
])
def test_fde_matches_its_definition_point_by_point(cfg):
    rng = np.random.default_rng(1)
    dim = 12
    enc = FixedDimensionalEncoder(dim, cfg)
    sets = _sets(rng, 9, dim, 1, 12)
    ptr, tok = _csr(sets)
    docs = enc.encode(ptr, tok, documents=True, block=4)  # several blocks
    queries = enc.encode(ptr, tok, documents=False, block=4)
    assert docs.shape == (9, cfg.out_dim(dim))
    for i, s in enumerate(sets):
        np.testing.assert_allclose(docs[i], _reference(enc, s, True), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(queries[i], _reference(enc, s, False), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cfg", [
    FDEConfig(repetitions=3, simhash=3, projection_dim=4, partitions="sampled"),
    FDEConfig(repetitions=2, simhash=2, projection_dim=None, partitions="sampled", final_dim=30),
    FDEConfig(repetitions=2, simhash=4, projection_dim=4, partitions="sampled", fill_empty=False),
])
def test_sampled_partitions_match_their_definition_point_by_point(cfg):
    rng = np.random.default_rng(3)
    dim = 12
    sets = _sets(rng, 9, dim, 1, 12)
    ptr, tok = _csr(sets)
    centroids = sample_centroids(_csr(_sets(rng, 40, dim))[1], cfg)
    enc = FixedDimensionalEncoder(dim, cfg, centroids)
    docs = enc.encode(ptr, tok, documents=True, block=4)
    queries = enc.encode(ptr, tok, documents=False, block=4)
    for i, s in enumerate(sets):
        np.testing.assert_allclose(docs[i], _reference(enc, s, True), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(queries[i], _reference(enc, s, False), rtol=1e-4, atol=1e-5)


def test_sampled_centres_are_distinct_tokens_of_the_collection():
    rng = np.random.default_rng(4)
    cfg = FDEConfig(repetitions=3, simhash=2, projection_dim=4, partitions="sampled")
    tok = rng.standard_normal((200, 8)).astype(np.float32)
    tok = np.concatenate([tok, tok[:50]])  # repeated tokens are drawn at most once
    c = sample_centroids(tok, cfg)
    assert c.shape == (3, 4, 8)
    unit = tok / np.linalg.norm(tok, axis=1, keepdims=True)
    for r in range(3):
        sims = c[r] @ unit.T
        assert np.allclose(sims.max(axis=1), 1, atol=1e-5)  # each centre is one of the tokens
        assert len({int(np.argmax(row)) % 200 for row in sims}) == 4  # four different ones
    assert not np.allclose(c[0], c[1])  # each repetition draws its own
    np.testing.assert_array_equal(c, sample_centroids(tok, cfg))  # seeded
    few = sample_centroids(tok[:2], cfg)  # fewer tokens than partitions: the rest are random unit vectors
    assert few.shape == (3, 4, 8) and np.allclose(np.linalg.norm(few, axis=2), 1, atol=1e-5)
    with pytest.raises(ConfigError, match="centroids shaped"):
        FixedDimensionalEncoder(8, cfg)
    with pytest.raises(ConfigError, match="centroids shaped"):
        FixedDimensionalEncoder(8, cfg, c[:, :2])
    with pytest.raises(ConfigError, match="partitions"):
        FDEConfig(partitions="kmeans")


def test_one_partition_without_projection_is_sum_times_mean():
    """With no hyperplanes and no projection the FDE product is <Σ q, mean d>: the definition by hand."""
    rng = np.random.default_rng(2)
    enc = FixedDimensionalEncoder(6, FDEConfig(repetitions=1, simhash=0, projection_dim=None, partitions="simhash"))
    q, d = _sets(rng, 2, 6)
    fq = enc.queries(np.array([0, len(q)]), q)[0]
    fd = enc.documents(np.array([0, len(d)]), d)[0]
    assert fq @ fd == pytest.approx(float(q.sum(0) @ d.mean(0)), rel=1e-5)


def test_gray_code_partitions_of_neighbours_differ_in_one_hyperplane():
    bits = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=bool)
    idx = gray_partition(bits)
    assert len(set(idx.tolist())) == 4
    # decoding the index back to its sign bits (index ^ index >> 1) gives the bits
    codes = idx ^ (idx >> 1)
    assert [[(c >> (2 - j)) & 1 for j in range(3)] for c in codes.tolist()] == bits.astype(int).tolist()


def test_fde_similarity_grows_with_chamfer_similarity():
    """The guarantee's direction: documents closer in Chamfer similarity score higher in FDE space."""
    rng = np.random.default_rng(3)
    dim = 32
    enc = FixedDimensionalEncoder(dim, FDEConfig(repetitions=20, simhash=4, projection_dim=16, partitions="simhash"))
    query = _sets(rng, 1, dim, 8, 9)[0]
    levels = [0.1, 0.3, 0.6, 1.0, 2.0, 4.0]
    docs = []
    for noise in levels:  # each document: the query's tokens, moved further away, plus unrelated tokens
        for _ in range(6):
            x = np.concatenate([query + noise * rng.standard_normal(query.shape), rng.standard_normal((10, dim))])
            docs.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    ptr, tok = _csr(docs)
    fde = enc.documents(ptr, tok) @ enc.queries(np.array([0, len(query)]), query)[0]
    ch = np.array([chamfer(query, d) for d in docs])
    assert spearmanr(fde, ch).statistic > 0.6
    per_level = fde.reshape(len(levels), -1).mean(axis=1)
    assert (np.diff(per_level) < 0).all(), per_level


def test_more_repetitions_approximate_chamfer_better():
    """On random sets the FDE ranking agrees with the Chamfer ranking, and more so with more repetitions;
    the Chamfer-best document of a query made from it is the FDE-best one."""
    rng = np.random.default_rng(4)
    dim = 32
    docs = _sets(rng, 300, dim, 5, 40)
    ptr, tok = _csr(docs)
    queries = [docs[i][:5] + 0.05 * rng.standard_normal((min(5, len(docs[i])), dim)).astype(np.float32)
               for i in range(20)]
    chamfers = [np.array([chamfer(q, d) for d in docs]) for q in queries]
    corr, hits = {}, {}
    for reps in (2, 20):
        enc = FixedDimensionalEncoder(dim, FDEConfig(repetitions=reps, simhash=3, projection_dim=8, partitions="simhash"))
        fd = enc.documents(ptr, tok)
        fq = [enc.queries(np.array([0, len(q)]), q)[0] for q in queries]
        corr[reps] = np.mean([spearmanr(fd @ f, ch).statistic for f, ch in zip(fq, chamfers, strict=True)])
        hits[reps] = sum(int(np.argmax(fd @ f) == np.argmax(ch)) for f, ch in zip(fq, chamfers, strict=True))
    assert corr[20] > corr[2] and corr[20] > 0.2, corr
    assert hits[20] >= 15 and hits[20] > hits[2], hits


def test_config_is_checked():
    with pytest.raises(ConfigError, match="simhash"):
        FDEConfig(simhash=40)
    with pytest.raises(ConfigError, match="repetitions"):
        FDEConfig(repetitions=0)
    with pytest.raises(ConfigError, match="projection_dim"):
        FixedDimensionalEncoder(8, FDEConfig(projection_dim=16, partitions="simhash"))
    with pytest.raises(ConfigError, match="unknown key"):
        FDEConfig.from_dict({"reps": 3})


def test_empty_sets_encode_to_zeros():
    enc = FixedDimensionalEncoder(4, FDEConfig(repetitions=2, simhash=2, projection_dim=2, partitions="simhash"))
    out = enc.documents(np.array([0, 0, 2]), np.ones((2, 4), np.float32))
    assert not out[0].any() and out[1].any()


def test_projection_matrices():
    dense = FixedDimensionalEncoder(16, FDEConfig(repetitions=2, simhash=2, projection_dim=4, partitions="simhash"))
    assert set(np.unique(np.abs(dense.projection)).round(6)) == {0.5}  # ±1/sqrt(4) everywhere
    ams = FixedDimensionalEncoder(16, FDEConfig(repetitions=2, simhash=2, projection_dim=4, projection="ams", partitions="simhash"))
    assert ((ams.projection != 0).sum(axis=1) == 2).all()  # one ±1 per input coordinate and repetition
    with pytest.raises(ConfigError, match="projection"):
        FDEConfig(projection="gaussian")
