"""Token vectors for late interaction: one vector per word piece, for documents and queries.

Two kinds of model (``MultiVectorConfig.kind``):

* ``tokens`` — any sentence-transformers model (default: the bundled all-MiniLM-L6-v2). Its transformer's
  last hidden states are taken per word piece, through the same fast backends as the dense encoder
  (length-bucketed bf16 autocast where the CPU has it, else ONNX Runtime), multiplied by a fixed random
  orthogonal matrix down to ``dim`` coordinates (seeded, so the same model always gives the same vectors)
  and L2-normalised. Documents leave out padding and, by ``skip``, punctuation (and stopword) pieces.
* ``colbert`` — a late-interaction model (a ColBERT or PyLate checkpoint) read by sentence-transformers'
  ``MultiVectorEncoder``, which applies the model's own query/document markers, query expansion, skiplist
  and projection. PyLate itself is not required: its current release pins an older transformers and a
  CUDA torch, and sentence-transformers reads its checkpoints.

Document token sets are cached by content (model fingerprint + text) in SQLite as float16, like dense
vectors, so a text is never encoded twice by the same model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from retrievo._sqlite import connect_shared
from retrievo.config import MultiVectorConfig
from retrievo.encoders._fingerprint import fingerprint
from retrievo.errors import ConfigError

__all__ = ["TokenCache", "TokenEncoder", "is_multivector_model", "token_fingerprint"]

QUERY_BATCH_TOKENS = 4096  # word pieces per forward pass when encoding queries


def is_multivector_model(path: str) -> bool:
    """Whether a model folder is a late-interaction model (PyLate / ColBERT / MultiVectorEncoder)."""
    if not os.path.isdir(path):
        return "colbert" in path.lower()
    root = Path(path)
    modules = root / "modules.json"
    if modules.exists():
        text = modules.read_text()
        if "pylate" in text or "MultiVector" in text:
            return True
    cfg = root / "config_sentence_transformers.json"
    if cfg.exists():
        data = json.loads(cfg.read_text())
        if "MultiVector" in str(data.get("model_type", "")) or "query_prefix" in data:
            return True
    return (root / "artifact.metadata").exists()  # a Stanford ColBERT checkpoint


def resolved_kind(config: MultiVectorConfig, path: str) -> str:
    if config.kind != "auto":
        return config.kind
    return "colbert" if is_multivector_model(path) else "tokens"


def token_fingerprint(config: MultiVectorConfig) -> str:
    """A stable id of what a token encoder computes: the model files' content and every setting that changes
    the vectors (kind, projection, skipped pieces, truncation; not the backend, a test holds them equal)."""
    from retrievo.encoders.dense import resolve_model

    path = resolve_model(config.model)
    kind = resolved_kind(config, path)
    return fingerprint("tokens", path, [kind, config.dim if kind == "tokens" else None, config.skip, config.max_length])


def _random_orthogonal(n_in: int, n_out: int, seed: int = 0) -> np.ndarray:
    """An ``(n_in, n_out)`` matrix with orthonormal columns (a fixed random rotation, then a cut)."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((n_in, n_out)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


class _HiddenStates:
    """A sentence-transformers model's last hidden states per word piece, through the fast backends."""

    def __init__(self, path: str, backend: str, max_length: int | None) -> None:
        from retrievo.encoders.dense import resolve_backend

        self.backend = resolve_backend(backend)
        if self.backend == "onnx":
            from retrievo._paths import cache_root
            from retrievo.encoders.onnx import OnnxSentenceEncoder

            self.impl = OnnxSentenceEncoder(path, cache_dir=cache_root() / "onnx", max_seq_length=max_length)
        else:
            from retrievo.encoders.bf16 import Bf16SentenceEncoder

            self.impl = Bf16SentenceEncoder(path, max_seq_length=max_length)
            if self.backend == "torch":  # float32: the reference the others are checked against
                self.impl._forward = self._forward_fp32  # type: ignore[method-assign]
        self.dim = int(self.impl.dim)
        self.tokenizer = self.impl.tokenizer

    def _forward_fp32(self, batches):
        torch = self.impl.torch
        with torch.inference_mode():
            for input_ids, mask in batches:
                ids_t = torch.from_numpy(input_ids)
                kw = {"token_type_ids": torch.zeros_like(ids_t)} if self.impl.takes_types else {}
                yield self.impl.model(input_ids=ids_t, attention_mask=torch.from_numpy(mask), **kw).last_hidden_state.numpy()

    def run(self, texts: list[str], batch_size: int, show_progress: bool = False, max_tokens: int | None = None):
        """Yield ``(position, ids, hidden (n, dim) float32)`` for every text (in length-bucketed order); with
        ``max_tokens`` a batch of short texts grows while it holds at most that many word pieces."""
        from retrievo.encoders._bucketed import length_batches, pad_batch

        if self.impl.do_lower_case:
            texts = [t.lower() for t in texts]
        encs = self.tokenizer.encode_batch(texts)
        ids = [e.ids for e in encs]
        lengths = np.array([len(x) for x in ids])
        groups = length_batches(lengths, batch_size, max_tokens)
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="encode tokens", unit="doc")
        batches = (pad_batch(ids, lengths, sel) for sel in groups)
        for sel, hidden in zip(groups, self.impl._forward(batches), strict=True):
            hidden = np.asarray(hidden, dtype=np.float32)
            for r, j in enumerate(sel):
                yield int(j), ids[j], hidden[r, :lengths[j]]
            if bar is not None:
                bar.update(len(sel))
        if bar is not None:
            bar.close()


class TokenEncoder:
    """Encode queries and documents into L2-normalised token vector sets (see the module docstring)."""

    def __init__(self, config: MultiVectorConfig | None = None) -> None:
        from retrievo.encoders.dense import resolve_model

        self.config = config or MultiVectorConfig()
        self.model_path = resolve_model(self.config.model)
        self.kind = resolved_kind(self.config, self.model_path)
        self.fingerprint = token_fingerprint(self.config)
        self._impl = None
        self._projection: np.ndarray | None = None
        self._skip: np.ndarray | None = None
        self._dim: int | None = None

    # -- loading -------------------------------------------------------------------------------------
    def _load(self):
        if self._impl is None:
            if self.kind == "colbert":
                try:
                    from sentence_transformers import MultiVectorEncoder
                except ImportError as exc:  # pragma: no cover - sentence-transformers < 6
                    raise ConfigError("late-interaction models need sentence-transformers >= 6.0 "
                                      "(MultiVectorEncoder): pip install 'retrievo[colbert]'") from exc
                try:
                    self._impl = MultiVectorEncoder(self.model_path, device="cpu")
                except Exception as exc:  # noqa: BLE001 - unreadable folder or no hub
                    raise ConfigError(f"multi-vector model {self.config.model!r} cannot be loaded: {exc}") from exc
                if self.config.max_length:
                    self._impl.max_seq_length = self.config.max_length
            else:
                self._impl = _HiddenStates(self.model_path, self.config.backend, self.config.max_length)
                hidden = self._impl.dim
                out = self.config.dim
                if out is not None and out > hidden:
                    raise ConfigError(f"MultiVectorConfig.dim ({out}) exceeds the model's hidden size {hidden}")
                self._projection = None if out is None or out == hidden else _random_orthogonal(hidden, out)
                self._skip = self._skip_mask(self._impl.tokenizer)
        return self._impl

    def _skip_mask(self, tokenizer) -> np.ndarray:
        """Per vocabulary id: whether a document drops the piece (padding always; then ``skip``)."""
        vocab = tokenizer.get_vocab()
        mask = np.zeros(max(vocab.values()) + 1, dtype=bool)
        pad = tokenizer.token_to_id("[PAD]")
        if pad is not None:
            mask[pad] = True
        if self.config.skip == "none":
            return mask
        import string

        from retrievo.analysis.stopwords import ENGLISH_STOPWORDS

        punct = set(string.punctuation) | {"“", "”", "‘", "’", "–", "—", "…"}
        for piece, i in vocab.items():
            word = piece[2:] if piece.startswith("##") else piece.lstrip("▁Ġ")
            if word and all(ch in punct for ch in word):
                mask[i] = True
            elif self.config.skip == "stopwords" and not piece.startswith("##") and word.lower() in ENGLISH_STOPWORDS:
                mask[i] = True
        return mask

    @property
    def dim(self) -> int:
        if self._dim is None:
            impl = self._load()
            if self.kind == "colbert":
                self._dim = int(impl.get_embedding_dimension())
            else:
                self._dim = int(self.config.dim or impl.dim)
        return self._dim

    # -- encoding ------------------------------------------------------------------------------------
    def _finish(self, hidden: np.ndarray) -> np.ndarray:
        v = hidden if self._projection is None else hidden @ self._projection
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def encode_queries(self, texts: list[str]) -> list[np.ndarray]:
        """One ``(n_tokens, dim)`` float32 array per query (every word piece, markers included)."""
        impl = self._load()
        if not texts:
            return []
        if self.kind == "colbert":
            out = impl.encode_query(list(texts), batch_size=max(self.config.batch_size, 64), convert_to_numpy=True,
                                    show_progress_bar=False)
            return [self._normalised(x) for x in out]
        res: list[np.ndarray | None] = [None] * len(texts)
        # queries are short: batches grow to QUERY_BATCH_TOKENS word pieces (4-6x faster than 8 a batch)
        for j, _ids, hidden in impl.run(list(texts), self.config.batch_size, max_tokens=QUERY_BATCH_TOKENS):
            res[j] = self._finish(hidden)
        return [r if r is not None else np.zeros((0, self.dim), np.float32) for r in res]

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> list[np.ndarray]:
        """One ``(n_tokens, dim)`` float16 array per document (skipped pieces left out; never empty when the
        text has any piece: a document of skipped pieces only keeps them)."""
        impl = self._load()
        if not texts:
            return []
        if self.kind == "colbert":
            out = impl.encode_document(list(texts), batch_size=self.config.batch_size, convert_to_numpy=True,
                                       show_progress_bar=show_progress)
            return [self._normalised(x).astype(np.float16) for x in out]
        res: list[np.ndarray | None] = [None] * len(texts)
        assert self._skip is not None
        for j, ids, hidden in impl.run(list(texts), self.config.batch_size, show_progress):
            ids_a = np.asarray(ids, dtype=np.int64)
            keep = ~self._skip[np.minimum(ids_a, len(self._skip) - 1)]
            if not keep.any():
                keep[:] = True
            res[j] = self._finish(hidden[keep]).astype(np.float16)
        return [r if r is not None else np.zeros((0, self.dim), np.float16) for r in res]

    @staticmethod
    def _normalised(x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class TokenCache:
    """Document token sets keyed by content (``sha256(fingerprint, text)``), float16 in SQLite (WAL), shared
    by collections and processes like the dense vector cache."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = connect_shared(path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS tok (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")

    def get_many(self, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        out: dict[bytes, np.ndarray] = {}
        for i in range(0, len(keys), 900):
            chunk = keys[i:i + 900]
            q = f"SELECT key, vec FROM tok WHERE key IN ({','.join('?' * len(chunk))})"
            for key, blob in self.conn.execute(q, chunk):
                arr = np.frombuffer(blob, dtype=np.float16)
                if dim and arr.size % dim == 0:
                    out[key] = arr.reshape(-1, dim)
        return out

    def put_many(self, keys: list[bytes], sets: list[np.ndarray]) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float16).tobytes()) for k, v in zip(keys, sets, strict=True)]
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT OR REPLACE INTO tok (key, vec) VALUES (?, ?)", rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def encode_documents_cached(encoder: TokenEncoder, texts: list[str], cache: TokenCache | None,
                            show_progress: bool = False) -> list[np.ndarray]:
    """Token sets of ``texts``: those the cache has, the rest encoded (in batches of 1,024, each stored as it
    is done, so an interrupted run keeps what it encoded)."""
    from retrievo.encoders.cache import content_key

    if cache is None:
        return encoder.encode_documents(texts, show_progress)
    keys = [content_key(encoder.fingerprint, t) for t in texts]
    found = cache.get_many(list(dict.fromkeys(keys)), encoder.dim)
    out: list[np.ndarray | None] = [found.get(k) for k in keys]
    todo = [i for i, v in enumerate(out) if v is None]
    todo_texts: dict[bytes, int] = {}
    for i in todo:
        todo_texts.setdefault(keys[i], i)
    unique = list(todo_texts.values())
    bar = None
    if show_progress and unique:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(unique), desc="encode tokens", unit="doc")
    for s in range(0, len(unique), 1024):
        part = unique[s:s + 1024]
        sets = encoder.encode_documents([texts[i] for i in part])
        cache.put_many([keys[i] for i in part], sets)
        for i, v in zip(part, sets, strict=True):
            found[keys[i]] = v
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return [found[k] for k in keys]
