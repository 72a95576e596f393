"""A fast cross-encoder: (query, document) relevance scores that agree with ``CrossEncoder.predict``.

sentence-transformers' ``CrossEncoder.predict`` pads each batch of pairs to its longest pair in the order
given, and runs PyTorch eagerly. Here, as in the dense encoders (:mod:`retrievo.encoders._bucketed`):

- the pairs are tokenised together by the model's own tokenizer (``tokenizer.json``: the same word pieces,
  segment ids and "longest first" truncation to the model's maximum length), sorted by length and cut into
  batches padded only to their own longest pair;
- the model runs under ONNX Runtime, float32, its attention / LayerNorm / GELU fused (exported once from
  the sequence-classification model and cached); or under OpenVINO (``backend="openvino"``, the default
  when the ``openvino`` package is installed: ``pip install 'retrievo[openvino]'``), which compiles the same
  graph to float32 kernels ~7 % faster than ONNX Runtime's on MiniLM-L6 (2 AVX-512 cores; ``precision=
  "bf16"`` there runs bfloat16 where the CPU has it, ~1.8× faster, scores within ~1e-4); or — ``backend=
  "torch"`` — under PyTorch;
- the activation is ``CrossEncoder``'s: a sigmoid for one output unless the model's config names another.

Scores agree with ``CrossEncoder.predict`` to float rounding (a test checks it, and
``benchmarks/bench_rerank.py`` measures both on SciFact). Written here because no maintained package
offers length-bucketed cross-encoder inference on CPU.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._optional import require
from retrievo._paths import cache_root
from retrievo.encoders._bucketed import length_batches, model_folder, transformer_dir
from retrievo.encoders.base import default_threads
from retrievo.errors import ConfigError

__all__ = ["CROSS_BACKENDS", "FastCrossEncoder", "NotACrossEncoderError"]


class NotACrossEncoderError(ConfigError):
    """The model is not a one-output sequence classifier."""

CROSS_BACKENDS = ("auto", "onnx", "openvino", "torch")


def default_cross_backend() -> str:
    """``"openvino"`` when the package is installed, else ``"onnx"``."""
    import importlib.util

    return "openvino" if importlib.util.find_spec("openvino") is not None else "onnx"


class FastCrossEncoder:
    """Relevance of (query, document) pairs with a one-output sequence-classification model.

    Args:
        path: a cross-encoder model folder or hub name.
        backend: ``"auto"`` (default: OpenVINO when installed, else ONNX Runtime), ``"onnx"``, ``"openvino"``
            or ``"torch"``.
        max_length: word pieces per pair; default: the tokenizer's ``model_max_length`` (as ``CrossEncoder``).
        batch_size: pairs per forward pass (small batches of long pairs are fastest on a CPU: measured 19
            pairs/s at 4, 16 at 32 for MiniLM-L6 on SciFact abstracts, 2 cores).
        threads: intra-op threads (default: :func:`~retrievo.encoders.base.default_threads`).
        precision: ``"f32"`` (default: the scores of ``CrossEncoder.predict``) or, with OpenVINO, ``"bf16"``.

    Raises:
        ConfigError: the folder holds no transformer, or one without a single-output classification head.
    """

    def __init__(self, path: str, backend: str = "auto", max_length: int | None = None, batch_size: int = 4,
                 threads: int | None = None, precision: str = "f32") -> None:
        if backend not in CROSS_BACKENDS:
            raise ConfigError(f"cross-encoder backend must be one of {CROSS_BACKENDS}, got {backend!r}")
        if backend == "auto":
            backend = default_cross_backend()
        if precision not in ("f32", "bf16") or (precision == "bf16" and backend != "openvino"):
            raise ConfigError(f"cross-encoder precision must be 'f32' (or 'bf16' with backend 'openvino'), got "
                              f"{precision!r} with backend {backend!r}")
        self.root = model_folder(path, "cross-encoder")
        self.tdir = transformer_dir(self.root)
        cfg = json.loads((self.tdir / "config.json").read_text())
        arch = list(cfg.get("architectures") or [])
        if arch and not any(a.endswith("ForSequenceClassification") for a in arch):
            raise NotACrossEncoderError(f"{path!r} is not a cross-encoder: its architectures are {arch}, with no "
                              "sequence-classification head")
        labels = len(cfg.get("id2label") or {}) or int(cfg.get("num_labels", 1))
        if labels != 1:
            raise NotACrossEncoderError(f"{path!r} has {labels} outputs; a cross-encoder reranker has one (a "
                                        "relevance score)")
        act = str((cfg.get("sentence_transformers") or {}).get("activation_fn") or "Sigmoid")
        if not act.endswith(("Sigmoid", "Identity")):
            raise ConfigError(f"{path!r}: its activation {act!r} is not supported by the fast path")
        self.sigmoid = act.endswith("Sigmoid")
        self.max_length = int(max_length or self._model_max_length(cfg))
        self.batch_size = batch_size
        self.backend = backend
        tok_file = self.tdir / "tokenizer.json"
        if not tok_file.exists():
            raise ConfigError(f"{self.tdir}: no tokenizer.json; use the plain CrossEncoder")
        self.tokenizer = require("tokenizers").Tokenizer.from_file(str(tok_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length, strategy="longest_first")
        self.threads = int(threads or default_threads())
        if backend in ("onnx", "openvino"):
            from retrievo.encoders.onnx import export_onnx, file_key

            onnx_path = export_onnx(self.root, cache_root() / "onnx" / (file_key(self.root) + "-cls"), "classification")
        if backend == "openvino":
            ov = require("openvino")
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", {
                "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": self.threads})
            self.input_names = {i.get_any_name() for i in self.compiled.inputs}
        elif backend == "onnx":
            ort = require("onnxruntime")
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
            self.input_names = {i.name for i in self.session.get_inputs()}
        else:
            self.torch = require("torch")
            self.model = require("transformers").AutoModelForSequenceClassification.from_pretrained(
                str(self.tdir)).eval()

    def _model_max_length(self, cfg: dict) -> int:
        path = self.tdir / "tokenizer_config.json"
        m = json.loads(path.read_text()).get("model_max_length") if path.exists() else None
        limit = int(cfg.get("max_position_embeddings", 512))
        return min(int(m), limit) if isinstance(m, int | float) and m < 1e9 else limit

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One score per (query, document) pair, in the order given."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        encs = self.tokenizer.encode_batch([(q, d) for q, d in pairs])
        lengths = np.array([len(e.ids) for e in encs])
        out = np.empty(len(pairs), dtype=np.float32)
        request = self.compiled.create_infer_request() if self.backend == "openvino" else None  # one per call: thread-safe
        for sel in length_batches(lengths, self.batch_size):
            width = int(lengths[sel].max())
            ids = np.zeros((len(sel), width), dtype=np.int64)
            types = np.zeros((len(sel), width), dtype=np.int64)
            mask = np.zeros((len(sel), width), dtype=np.int64)
            for r, j in enumerate(sel):
                n = lengths[j]
                ids[r, :n], types[r, :n], mask[r, :n] = encs[j].ids, encs[j].type_ids, 1
            logits = self._forward(ids, mask, types, request)
            out[sel] = 1.0 / (1.0 + np.exp(-logits)) if self.sigmoid else logits
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray, request: Any = None) -> np.ndarray:
        if self.backend == "openvino":
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            res = request.infer({k: v for k, v in feed.items() if k in self.input_names})
            return np.asarray(res[self.compiled.outputs[0]])[:, 0]
        if self.backend == "onnx":
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            return self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})[0][:, 0]
        torch = self.torch
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            return self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                              token_type_ids=torch.from_numpy(types)).logits[:, 0].float().numpy()

    @property
    def path(self) -> Path:
        return self.root
