"""A content-addressed embedding cache in SQLite, so text that was encoded once is never re-encoded.

The key is ``sha256(encoder fingerprint, text)``: the same text under the same model (and prefix and
truncation) maps to the same vector, whatever document id or collection it belongs to.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from retrievo._sqlite import connect_shared

__all__ = ["EmbeddingCache", "content_key", "encode_with_cache"]


def content_key(fingerprint: str, text: str) -> bytes:
    h = hashlib.sha256()
    h.update(fingerprint.encode())
    h.update(b"\x00")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.digest()[:20]


class EmbeddingCache:
    """Vectors keyed by content; safe to share between collections and processes (SQLite WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = connect_shared(path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")

    def get_many(self, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        out: dict[bytes, np.ndarray] = {}
        for i in range(0, len(keys), 900):
            chunk = keys[i : i + 900]
            q = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})"
            for key, blob in self.conn.execute(q, chunk):
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == dim:
                    out[key] = vec
        return out

    def put_many(self, keys: list[bytes], vecs: np.ndarray) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vecs, strict=True)]
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)", rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def encode_with_cache(encoder, texts: list[str], cache: EmbeddingCache | None, show_progress: bool = False) -> np.ndarray:
    """Encode documents, taking every vector the cache already has and storing the new ones."""
    if cache is None or not texts:
        return encoder.encode_documents(texts, show_progress=show_progress)
    keys = [content_key(encoder.fingerprint, t) for t in texts]
    found = cache.get_many(list(dict.fromkeys(keys)), encoder.dim)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    todo: dict[bytes, list[int]] = {}
    for i, key in enumerate(keys):
        vec = found.get(key)
        if vec is not None:
            out[i] = vec
        else:
            todo.setdefault(key, []).append(i)
    if todo:
        todo_keys = list(todo)
        new = encoder.encode_documents([texts[todo[k][0]] for k in todo_keys], show_progress=show_progress)
        for key, vec in zip(todo_keys, new, strict=True):
            out[todo[key]] = vec
        cache.put_many(todo_keys, new)
    return out
