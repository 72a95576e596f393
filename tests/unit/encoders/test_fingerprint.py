"""Caches are keyed by what a model folder holds, not by its name or its files' sizes: a retrained model
(same configuration, same file sizes, other weights) gets other keys; a byte-identical copy elsewhere the same."""

import shutil

import pytest

from retrievo.config import DenseConfig
from retrievo.encoders.dense import model_fingerprint
from retrievo.encoders.onnx import file_key


@pytest.fixture
def folders(tmp_path, tiny_cross_encoder):
    import torch
    from transformers import BertForSequenceClassification

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    shutil.copytree(tiny_cross_encoder, a)
    shutil.copytree(tiny_cross_encoder, b)
    m = BertForSequenceClassification.from_pretrained(str(b))
    with torch.no_grad():
        m.classifier.bias += 1.0  # "retrained": one number changes, sizes and config stay
    m.save_pretrained(str(c))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(a / name, c / name)
    return a, b, c


def test_keys_follow_content(folders):
    a, b, c = folders
    assert (a / "model.safetensors").stat().st_size == (c / "model.safetensors").stat().st_size
    assert (a / "config.json").read_bytes() == (c / "config.json").read_bytes()
    fp = [model_fingerprint(DenseConfig(model=str(p), backend="onnx")) for p in (a, b, c)]
    assert fp[0] == fp[1] != fp[2]
    keys = [file_key(p) for p in (a, b, c)]
    assert keys[0] == keys[1] != keys[2]
