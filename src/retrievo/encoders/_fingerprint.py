"""What a model folder computes, as one digest: its configuration and vocabulary files by content, its weight
files by a full SHA-256 of their bytes.

The content caches (dense and sparse vectors) and the exported ONNX graphs are keyed by it, so a model
retrained into the same folder, or a fine-tuned copy whose files have the same sizes, never gets another
model's vectors or graph. Hashing 90 MB of MiniLM weights takes ~0.1 s; a digest is kept per process for a
file whose path, size and modification time have not changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["WEIGHT_SUFFIXES", "file_digest", "fingerprint", "folder_digest"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".model", ".pt", ".npy")
_TEXT_SUFFIXES = (".json", ".txt")
_memo: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (remembered while its path, size and mtime stay the same)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    got = _memo.get(key)
    if got is None:
        with open(path, "rb") as fh:
            got = _memo[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return got


def folder_digest(root: Path, h: hashlib._Hash | None = None) -> hashlib._Hash:
    """Feed ``h`` (default: a new SHA-256) with every configuration / vocabulary file of ``root`` (by content) and
    every weight file (by digest), in path order; training checkpoints and model cards are left out."""
    h = h or hashlib.sha256()
    root = Path(root)
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part.startswith("checkpoint-") for part in p.relative_to(root).parts):
            continue
        rel = str(p.relative_to(root)).encode()
        if p.suffix in _TEXT_SUFFIXES:
            h.update(rel + b"\0" + p.read_bytes())
        elif p.suffix in WEIGHT_SUFFIXES:
            h.update(rel + b"\0" + file_digest(p).encode())
    return h


def fingerprint(kind: str, model: str, settings: list) -> str:
    """``"kind:<24 hex>"``: the model folder's digest (or the name, for a model that is not a local folder) and
    the JSON of every setting that changes what an encoder computes — the key of its content caches."""
    h = hashlib.sha256()
    if os.path.isdir(model):
        folder_digest(Path(model), h)
    else:
        h.update(model.encode())
    h.update(json.dumps(settings).encode())
    return f"{kind}:" + h.hexdigest()[:24]
