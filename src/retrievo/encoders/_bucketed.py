"""Shared machinery of the fast sentence encoders: the model's own tokenizer, truncation and pooling
read from the sentence-transformers folder, and length bucketing.

Texts are tokenised once, sorted by token count and cut into small batches padded only to their own
longest text, so almost no arithmetic is spent on padding; the vectors are written back in input order.
Subclasses supply the transformer forward pass (:meth:`_forward`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from retrievo._optional import require
from retrievo.errors import ConfigError

__all__ = [
    "BucketedEncoder", "length_batches", "load_tokenizer", "model_folder", "pad_batch", "transformer_dir",
]


def model_folder(path: str, kind: str = "dense") -> Path:
    """A local folder for a sentence-transformers model folder or hub name (``kind`` names it in errors)."""
    if os.path.isdir(path):
        return Path(path)
    hub = require("huggingface_hub", package="huggingface_hub")
    try:
        return Path(hub.snapshot_download(path))
    except Exception as exc:  # no hub access or unknown name
        raise ConfigError(f"{kind} model {path!r} is neither a folder nor downloadable: {exc}") from exc


def transformer_dir(root: Path) -> Path:
    """The folder holding the transformer (sentence-transformers keeps it at the root or in ``0_*``)."""
    if (root / "config.json").exists():
        return root
    for sub in sorted(root.glob("0_*")):
        if (sub / "config.json").exists():
            return sub
    raise ConfigError(f"{root}: no config.json of a transformer model found")


def load_tokenizer(tdir: Path, max_length: int):
    """The model's fast tokenizer (``tokenizer.json``, else via transformers), unpadded, truncating to
    ``max_length`` word pieces (special tokens included), whatever padding/truncation the file carries."""
    tok_file = tdir / "tokenizer.json"
    if tok_file.exists():
        tokenizer = require("tokenizers").Tokenizer.from_file(str(tok_file))
    else:
        tokenizer = require("transformers").AutoTokenizer.from_pretrained(str(tdir)).backend_tokenizer
    # tokenizer.json files often carry their own padding/truncation (MiniLM's: 128); use the model's
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def length_batches(lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Positions of the texts, longest first, cut into batches of at most ``batch_size`` texts; with
    ``max_tokens``, a batch of short texts grows past ``batch_size`` while ``texts * longest <= max_tokens``."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    groups, start = [], 0
    while start < len(order):
        width = max(int(lengths[order[start]]), 1)  # the longest of the batch: sorted, so the first
        size = max(batch_size, max_tokens // width)
        groups.append(order[start : start + size])
        start += size
    return groups


def pad_batch(ids: list[list[int]], lengths: np.ndarray, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 of the texts ``sel``, right-padded with 0 to their longest."""
    width = int(lengths[sel].max())
    input_ids = np.zeros((len(sel), width), dtype=np.int64)
    mask = np.zeros((len(sel), width), dtype=np.int64)
    for r, j in enumerate(sel):
        input_ids[r, : lengths[j]] = ids[j]
        mask[r, : lengths[j]] = 1
    return input_ids, mask


_POOLING_NAMES = {"mean": "mean", "cls": "cls", "max": "max", "mean_sqrt_len_tokens": "mean_sqrt_len",
                  "mean_sqrt_len": "mean_sqrt_len"}


def _module_dirs(root: Path) -> tuple[Path, Path | None]:
    """The transformer and pooling folders, from ``modules.json`` when the model has one."""
    modules_file = root / "modules.json"
    if not modules_file.exists():
        return transformer_dir(root), None
    tdir, pdir = None, None
    for mod in json.loads(modules_file.read_text()):
        kind = str(mod.get("type", "")).rsplit(".", 1)[-1]
        path = root / mod.get("path", "")
        if kind == "Transformer" and tdir is None:
            tdir = path
        elif kind == "Pooling":
            pdir = path
        elif kind not in ("Normalize", "Transformer"):
            raise ConfigError(
                f"{root}: module {kind!r} is not supported by the fast backends; use DenseConfig(backend='torch')"
            )
    return (tdir if tdir is not None else transformer_dir(root)), pdir


def _pooling_mode(cfg: dict, root: Path) -> str:
    """Pooling from a Pooling config of any sentence-transformers version (flags or ``pooling_mode``)."""
    mode = cfg.get("pooling_mode")
    if isinstance(mode, str):
        if mode not in _POOLING_NAMES:
            raise ConfigError(f"{root}: pooling {mode!r} is not supported by the fast backends; use backend='torch'")
        return _POOLING_NAMES[mode]
    if cfg.get("pooling_mode_cls_token"):
        return "cls"
    if cfg.get("pooling_mode_max_tokens"):
        return "max"
    if cfg.get("pooling_mode_mean_sqrt_len_tokens"):
        return "mean_sqrt_len"
    for flag in ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"):
        if cfg.get(flag):
            raise ConfigError(f"{root}: {flag} is not supported by the fast backends; use backend='torch'")
    return "mean"


class BucketedEncoder:
    """Tokenise, bucket by length, run :meth:`_forward`, pool and L2-normalise.

    Args:
        path: a sentence-transformers model folder or hub name.
        max_seq_length: truncation in word pieces; default: the model's ``sentence_bert_config.json``.
    """

    def __init__(self, path: str, max_seq_length: int | None = None) -> None:
        self.root = model_folder(path)
        self.tdir, pool_dir = _module_dirs(self.root)
        sbert = self.tdir / "sentence_bert_config.json"
        if not sbert.exists():
            sbert = self.root / "sentence_bert_config.json"
        sb = json.loads(sbert.read_text()) if sbert.exists() else {}
        self.config = json.loads((self.tdir / "config.json").read_text())
        self.max_seq_length = int(max_seq_length or sb.get("max_seq_length") or self._tokenizer_max_length())
        self.do_lower_case = bool(sb.get("do_lower_case", False))
        pool_cfg = json.loads((pool_dir / "config.json").read_text()) if pool_dir else {}
        self.pooling = _pooling_mode(pool_cfg, self.root)
        self.tokenizer = load_tokenizer(self.tdir, self.max_seq_length)
        self.dim = int(self.config.get("hidden_size"))

    def _tokenizer_max_length(self) -> int:
        """sentence-transformers >= 5 keeps the limit as the tokenizer's model_max_length (capped by positions)."""
        limit = 512
        tc = self.tdir / "tokenizer_config.json"
        if tc.exists():
            value = json.loads(tc.read_text()).get("model_max_length")
            if isinstance(value, int) and 0 < value < 1_000_000:
                limit = value
        positions = self.config.get("max_position_embeddings")
        return min(limit, positions) if isinstance(positions, int) and positions > 0 else limit

    def _forward(self, batches: list[tuple[np.ndarray, np.ndarray]]):  # pragma: no cover - abstract
        """Yield the last hidden state ``(b, s, dim)`` float32 of each ``(input_ids, attention_mask)`` batch."""
        raise NotImplementedError

    def encode(self, texts: list[str], batch_size: int = 8, show_progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        lengths = np.array([len(x) for x in ids])
        groups = length_batches(lengths, batch_size)

        def padded():
            for sel in groups:
                yield pad_batch(ids, lengths, sel)

        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="encode", unit="doc")
        batches = padded()
        for sel, hidden in zip(groups, self._forward(batches), strict=True):
            mask = (np.arange(hidden.shape[1])[None, :] < lengths[sel][:, None]).astype(np.float32)
            out[sel] = self._pool(np.asarray(hidden, dtype=np.float32), mask)
            if bar is not None:
                bar.update(len(sel))
        if bar is not None:
            bar.close()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask[..., None]
        if self.pooling == "max":
            return np.where(m > 0, hidden, -1e9).max(axis=1)
        n = np.maximum(m.sum(axis=1), 1e-9)
        s = (hidden * m).sum(axis=1)
        return s / (np.sqrt(n) if self.pooling == "mean_sqrt_len" else n)
