"""Any sentence-transformers folder works: a tiny randomly initialised BERT saved by sentence-transformers,
with CLS pooling and the transformer in a ``0_Transformer`` subfolder, encoded by every backend."""

import numpy as np
import pytest

from retrievo.config import DenseConfig
from retrievo.encoders.dense import DenseEncoder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from retrievo.encoders.dense import resolve_model

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("tiny")
    tok = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(base / "hf")
    tok.save_pretrained(base / "hf")
    word = models.Transformer(str(base / "hf"), max_seq_length=64)
    pool = models.Pooling(32, pooling_mode="cls")
    st = SentenceTransformer(modules=[word, pool], device="cpu")
    st.save(str(base / "st"))
    return str(base / "st")


@pytest.mark.parametrize("backend", ["onnx", "bf16"])
def test_backend_matches_sentence_transformers_on_another_model(tiny_model, backend):
    texts = ["a short text", "another, somewhat longer text about retrieval engines " * 3, "x"]
    ref = DenseEncoder(DenseConfig(model=tiny_model, backend="torch")).encode_documents(texts)
    enc = DenseEncoder(DenseConfig(model=tiny_model, backend=backend))
    ours = enc.encode_documents(texts)
    assert enc.dim == 32 and ours.shape == (3, 32)
    assert ((ours * ref).sum(1)).min() >= 0.999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
