import numpy as np
import pytest
import scipy.sparse as sp

from retrievo.errors import InvalidInputError
from retrievo.indexes.sparse import SeismicParams, SparseIndex


def random_csr(n, v, density, seed):
    m = sp.random(n, v, density=density, format="csr", random_state=seed, dtype=np.float32)
    m.data = (m.data * 2.0 + 0.01).astype(np.float32)
    return m


def topical(n, nq, v=2000, topics=40, seed=0):
    """Documents and queries that share topic vocabularies, like learned sparse vectors do."""
    rng = np.random.default_rng(seed)
    vocab = rng.integers(0, v, (topics, 60))

    def draw(m, n_topic, n_bg):
        rows, cols = [], []
        for i in range(m):
            t = rng.integers(topics)
            terms = np.unique(np.concatenate([rng.choice(vocab[t], n_topic), rng.integers(0, v, n_bg)]))
            rows.append(np.full(len(terms), i))
            cols.append(terms)
        r, c = np.concatenate(rows), np.concatenate(cols)
        return sp.csr_matrix((rng.lognormal(-1, 0.7, len(r)).astype(np.float32), (r, c)), shape=(m, v))

    return draw(n, 30, 20), draw(nq, 15, 3)


def brute_force(docs, queries, k, allowed=None):
    s = (queries @ docs.T).toarray().astype(np.float64)
    if allowed is not None:
        s[:, ~allowed] = 0
    rows = np.full((s.shape[0], k), -1)
    for i, row in enumerate(s):
        order = np.lexsort((np.arange(len(row)), -row))[:k]
        order = order[row[order] > 0]
        rows[i, :len(order)] = order
    return rows, s


def assert_same_topk(rows, scores, counts, truth_rows, s):
    for i in range(len(rows)):
        want = truth_rows[i][truth_rows[i] >= 0]
        assert counts[i] == len(want)
        got = rows[i, :counts[i]]
        np.testing.assert_allclose(scores[i, :counts[i]], s[i, want], rtol=1e-5, atol=1e-6)
        # ids equal modulo ties: where they differ, the two documents score the same
        diff = got != want
        np.testing.assert_allclose(s[i, got[diff]], s[i, want[diff]], rtol=1e-5, atol=1e-6)
        assert (rows[i, counts[i]:] == -1).all() and np.isneginf(scores[i, counts[i]:]).all()


@pytest.fixture(scope="module")
def data():
    return random_csr(3000, 400, 0.03, 1), random_csr(60, 400, 0.02, 2)


def test_exact_matches_scipy(data):
    docs, queries = data
    idx = SparseIndex(docs, approx=False)
    rows, scores, counts = idx.search(queries, 10)
    assert rows.dtype == np.int64 and scores.dtype == np.float32 and counts.dtype == np.int64
    assert rows.shape == (60, 10) and scores.shape == (60, 10) and counts.shape == (60,)
    assert_same_topk(rows, scores, counts, *brute_force(docs, queries, 10))


def test_exact_pads_when_few_documents_match():
    docs = sp.csr_matrix(np.array([[1, 0, 0], [0, 2, 0], [0, 0, 0], [3, 0, 1]], np.float32))
    idx = SparseIndex(docs, approx=False)
    rows, scores, counts = idx.search(sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], np.float32)), 3)
    assert counts.tolist() == [2, 0]
    assert rows[0].tolist() == [3, 0, -1] and scores[0, :2].tolist() == [3.0, 1.0] and np.isneginf(scores[0, 2])
    assert (rows[1] == -1).all()


def test_ties_prefer_the_lower_row():
    docs = sp.csr_matrix(np.ones((6, 2), np.float32))
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=10))
    q = sp.csr_matrix(np.array([[1, 1]], np.float32))
    for mode in ("exact", "approx"):
        assert idx.search(q, 3, mode=mode)[0][0].tolist() == [0, 1, 2]


def test_allowed_mask_exact_never_loses_results(data):
    docs, queries = data
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=50))
    rng = np.random.default_rng(0)
    for frac in (0.5, 0.02, 0.002):
        allowed = rng.random(docs.shape[0]) < frac
        rows, scores, counts = idx.search(queries, 10, allowed=allowed)
        truth, s = brute_force(docs, queries, 10, allowed)
        assert_same_topk(rows, scores, counts, truth, s)
        matched = ((queries @ docs.T).toarray() > 0) & allowed
        assert (counts == np.minimum(10, matched.sum(1))).all()
        rows, _, counts = idx.search(queries, 10, allowed=allowed, mode="approx")
        assert allowed[rows[rows >= 0]].all()


def test_dead_rows_are_left_out(data):
    docs, queries = data
    live = np.ones(docs.shape[0], bool)
    live[::3] = False
    idx = SparseIndex(docs, live=live, approx=SeismicParams(n_postings=10_000, summary_energy=1.0),
                      forward_precision="float32")
    for mode in ("exact", "approx"):
        rows, scores, counts = idx.search(queries, 10, mode=mode, query_cut=1000, heap_factor=1e-9)
        assert live[rows[rows >= 0]].all()
        assert_same_topk(rows, scores, counts, *brute_force(docs, queries, 10, live))


@pytest.mark.parametrize("pruning", ["global", "fixed"])
def test_approx_with_generous_parameters_is_exact(data, pruning):
    docs, queries = data
    prm = SeismicParams(n_postings=10_000, pruning=pruning, summary_energy=1.0)
    idx = SparseIndex(docs, approx=prm, forward_precision="float32")
    exact = idx.search(queries, 10)
    approx = idx.search(queries, 10, mode="approx", query_cut=1000, heap_factor=1e-9)
    np.testing.assert_array_equal(approx[0], exact[0])
    seismic_order = idx.search(queries, 10, mode="approx", query_cut=1000, heap_factor=1e-9, global_order=False)
    np.testing.assert_array_equal(seismic_order[0], exact[0])
    np.testing.assert_allclose(approx[1], exact[1], rtol=1e-6)  # summed in another order
    np.testing.assert_array_equal(approx[2], exact[2])
    # half-precision forward vectors (the default for large collections): the same documents up to
    # near-ties, scores within 1e-3
    assert SparseIndex(docs, approx=prm).f_w.dtype == np.float32  # "auto" keeps a small index in float32
    half = SparseIndex(docs, approx=prm, forward_precision="float16")
    assert half.f_w.dtype == np.uint16 and half.nbytes < idx.nbytes
    rows, scores, counts = half.search(queries, 10, mode="approx", query_cut=1000, heap_factor=1e-9)
    np.testing.assert_array_equal(counts, exact[2])
    np.testing.assert_allclose(scores, exact[1], rtol=1e-3)
    s = (queries @ docs.T).toarray()
    ok = rows >= 0
    np.testing.assert_allclose(s[np.nonzero(ok)[0], rows[ok]], exact[1][ok], rtol=2e-3)


def test_uint8_forward_rows_score_within_their_rounding_bound(data):
    docs, queries = data
    prm = SeismicParams(n_postings=10_000, summary_energy=1.0)
    idx = SparseIndex(docs, approx=prm, forward_precision="uint8")
    assert idx.f_w.dtype == np.uint8 and idx.f_scale.shape == (docs.shape[0],)
    rows, scores, counts = idx.search(queries, 10, mode="approx", query_cut=1000, heap_factor=1e-9)
    exact = (queries @ docs.T).toarray()
    # each weight is off by at most half a step (row max / 255), so a score by at most q · (step / 2)
    step = docs.max(axis=1).toarray().ravel() / 255
    for i in range(queries.shape[0]):
        ok = rows[i] >= 0
        bound = queries[i].sum() * step[rows[i, ok]] / 2 + 1e-5
        assert np.all(np.abs(scores[i, ok] - exact[i, rows[i, ok]]) <= bound)
    truth = SparseIndex(docs, approx=False).search(queries, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth[0], strict=True)])
    assert overlap >= 0.97 and (counts == truth[2]).all()


def test_global_block_order_keeps_accuracy():
    docs, queries = topical(4000, 200)
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=150, centroid_fraction=0.1, summary_energy=0.4),
                      forward_precision="float32")
    truth = idx.search(queries, 10)[0]
    acc = {}
    for g in (False, True):
        rows = idx.search(queries, 10, mode="approx", query_cut=5, heap_factor=1.0, global_order=g)[0]
        acc[g] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth, strict=True)])
    assert acc[True] >= 0.9 and abs(acc[True] - acc[False]) <= 0.02


def test_approx_reaches_high_accuracy_on_topical_data():
    docs, queries = topical(4000, 200)
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=150, centroid_fraction=0.1, summary_energy=0.4),
                      forward_precision="float16")
    exact, _, counts = idx.search(queries, 10)
    found, scores, _ = idx.search(queries, 10, mode="approx", query_cut=10, heap_factor=0.9)
    acc = np.mean([len(set(found[i]) & set(exact[i][:counts[i]])) / counts[i] for i in range(len(found))])
    assert acc >= 0.9
    # approximate results carry their scores (from float16 document weights), best first
    s = (queries @ docs.T).toarray()
    ok = found >= 0
    np.testing.assert_allclose(scores[ok], np.take_along_axis(s, np.where(ok, found, 0), 1)[ok], rtol=2e-3)
    assert (np.diff(np.where(ok, scores, -1), axis=1) <= 0).all()
    fast = idx.search(queries, 10, mode="approx", query_cut=3, heap_factor=1.0)[0]
    acc_fast = np.mean([len(set(fast[i]) & set(exact[i][:counts[i]])) / counts[i] for i in range(len(fast))])
    assert acc_fast <= acc


def test_threads_give_the_same_results(data):
    docs, queries = data
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=100), threads=2)
    for mode in ("exact", "approx"):
        one = idx.search(queries, 5, mode=mode, threads=1)
        two = idx.search(queries, 5, mode=mode, threads=2)
        for a, b in zip(one, two, strict=True):
            np.testing.assert_array_equal(a, b)


def test_build_is_deterministic(data):
    docs, _ = data
    a = SparseIndex(docs, approx=SeismicParams(n_postings=100), threads=1)
    b = SparseIndex(docs, approx=SeismicParams(n_postings=100), threads=2)
    for name, arr in a._arrays().items():
        np.testing.assert_array_equal(arr, getattr(b, name), err_msg=name)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(data, tmp_path, mmap):
    docs, queries = data
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=100))
    idx.save(tmp_path / "sparse")
    back = SparseIndex.load(tmp_path / "sparse", mmap=mmap)
    assert back.nbytes == idx.nbytes and back.params == idx.params
    assert isinstance(back.f_w.base, np.memmap) == mmap
    for mode in ("exact", "approx"):
        for a, b in zip(idx.search(queries, 10, mode=mode), back.search(queries, 10, mode=mode), strict=True):
            np.testing.assert_array_equal(a, b)
    assert not list((tmp_path / "sparse").glob("*.tmp"))


def test_exact_only_and_approx_only(data, tmp_path):
    docs, queries = data
    ex = SparseIndex(docs, approx=False)
    ap = SparseIndex(docs, exact=False, approx=SeismicParams(n_postings=100))
    assert ex.nbytes_by_part()["approx"] == ex.nbytes_by_part()["forward"] == 0
    assert ap.nbytes_by_part()["exact"] == 0
    with pytest.raises(InvalidInputError, match="approx"):
        ex.search(queries, 5, mode="approx")
    with pytest.raises(InvalidInputError, match="exact=False"):
        ap.search(queries, 5)
    ap.save(tmp_path / "a")
    back = SparseIndex.load(tmp_path / "a")
    np.testing.assert_array_equal(back.search(queries, 5, mode="approx")[0], ap.search(queries, 5, mode="approx")[0])


def test_input_normalisation_and_empty_rows():
    # unsorted indices with duplicates and an explicit zero; the caller's matrix is left untouched
    docs = sp.csr_matrix((np.array([1.0, 2.0, 0.0, 0.5], np.float32), np.array([2, 0, 1, 2]), np.array([0, 4, 4])),
                         shape=(2, 3))
    before = (docs.data.copy(), docs.indices.copy())
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=10))
    np.testing.assert_array_equal(docs.data, before[0])
    np.testing.assert_array_equal(docs.indices, before[1])
    rows, scores, counts = idx.search(np.array([0.0, 0.0, 2.0], np.float32), 2)  # a dense 1-D query works
    assert counts.tolist() == [1] and rows[0, 0] == 0 and scores[0, 0] == pytest.approx(3.0)
    empty = SparseIndex(sp.csr_matrix((0, 3), dtype=np.float32))
    assert empty.search(sp.csr_matrix(np.ones((1, 3), np.float32)), 4)[2].tolist() == [0]


def test_large_vocabulary_uses_wide_term_ids():
    v = 70_000
    docs = sp.csr_matrix((np.ones(4, np.float32), (np.array([0, 0, 1, 2]), np.array([5, 69_999, 69_999, 3]))),
                         shape=(3, v))
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=10))
    assert idx.f_terms.dtype == np.int32
    q = sp.csr_matrix((np.ones(1, np.float32), (np.array([0]), np.array([69_999]))), shape=(1, v))
    for mode in ("exact", "approx"):
        assert sorted(idx.search(q, 5, mode=mode)[0][0, :2].tolist()) == [0, 1]


def test_bad_input_is_reported():
    good = sp.csr_matrix(np.array([[1, 0, 2], [0, 1, 0]], np.float32))
    neg = good.copy()
    neg[1, 1] = -0.5
    with pytest.raises(InvalidInputError, match=r"row 1 .*negative.*term 1"):
        SparseIndex(neg)
    nan = good.copy()
    nan[0, 2] = np.nan
    with pytest.raises(InvalidInputError, match=r"row 0 .*NaN.*term 2"):
        SparseIndex(nan)
    with pytest.raises(InvalidInputError, match="scipy sparse"):
        SparseIndex([[1, 2]])
    idx = SparseIndex(good, approx=SeismicParams(n_postings=10))
    with pytest.raises(InvalidInputError, match="4 columns but the index vocabulary has 3"):
        idx.search(sp.csr_matrix(np.ones((1, 4), np.float32)), 5)
    with pytest.raises(InvalidInputError, match="NaN"):
        idx.search(np.array([[np.inf, 0, 0]], np.float32), 5)
    with pytest.raises(InvalidInputError, match="allowed mask"):
        idx.search(good, 5, allowed=np.ones(5, bool))
    with pytest.raises(InvalidInputError, match="mode"):
        idx.search(good, 5, mode="fast")
    with pytest.raises(InvalidInputError, match="live mask"):
        SparseIndex(good, live=np.ones(3, bool))
    with pytest.raises(InvalidInputError, match="exact=True or approx"):
        SparseIndex(good, exact=False, approx=False)
    with pytest.raises(InvalidInputError, match="forward_precision"):
        SparseIndex(good, forward_precision="int4")
    with pytest.raises(InvalidInputError, match="summary_energy"):
        SeismicParams(summary_energy=0)
    with pytest.raises(InvalidInputError, match="no sparse index"):
        SparseIndex.load("/nonexistent/sparse-index")


def test_index_saved_before_packed_extents_still_loads(data, tmp_path):
    """Indexes written before postings carried their row extents (pr_pack) or 8-bit rows (f_scale) load."""
    docs, queries = data
    idx = SparseIndex(docs, approx=SeismicParams(n_postings=100))
    idx.save(tmp_path / "i")
    (tmp_path / "i" / "pr_pack.npy").unlink()
    (tmp_path / "i" / "f_scale.npy").unlink()
    old = SparseIndex.load(tmp_path / "i")
    np.testing.assert_array_equal(old.pr_pack, idx.pr_pack)
    for a, b in zip(old.search(queries, 10, mode="approx"), idx.search(queries, 10, mode="approx"), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("terms", [np.uint16, np.int32])
@pytest.mark.parametrize("weights", ["float32", "float16", "uint8"])
def test_gathered_and_scalar_row_dot_products_match_numpy(terms, weights):
    import numba as nb

    from retrievo.indexes.sparse.kernels import _dot_row_gather, _dot_row_scalar

    @nb.njit
    def both(qd, t, w, s, e):
        return _dot_row_gather(qd, t, w, s, e), _dot_row_scalar(qd, t, w, s, e)

    rng = np.random.default_rng(7)
    vocab = 65_536 if terms == np.uint16 else 70_000
    qd = rng.random(vocab).astype(np.float32)
    t = rng.integers(0, vocab, 200).astype(terms)
    w32 = rng.random(200).astype(np.float32)
    w = {"float32": w32, "float16": w32.astype(np.float16).view(np.uint16), "uint8": (w32 * 255).astype(np.uint8)}[weights]
    as_f = {"float32": w32, "float16": w32.astype(np.float16).astype(np.float64),
            "uint8": (w32 * 255).astype(np.uint8).astype(np.float64)}[weights]
    # whole blocks of 16, a masked last block, an empty row, one entry, a row ending at the array's end
    for s, e in ((0, 200), (3, 90), (5, 5), (7, 8), (16, 32), (184, 200), (199, 200)):
        want = float(np.dot(qd[t[s:e].astype(np.int64)].astype(np.float64), as_f[s:e]))
        got = both(qd, t, w, s, e)
        np.testing.assert_allclose(got, [want, want], rtol=1e-5, atol=1e-6)
