"""Query drift compensation: search vectors stored by an old model with queries encoded by a new one.

After the dense model changes (a fine-tuned model, an upgrade), re-encoding every document takes time. Until
then the new model's queries are mapped into the space of the stored vectors by a linear map learnt from
paired encodings: a seeded sample of the collection's documents encoded by the new model (through the
content cache, so nothing is encoded twice), beside their stored old vectors.

The map keeps the new model's scores: fit ``B`` (ridge least squares, ``D_old · B ≈ D_new``) so that a
document's new vector is approximately its old one moved by ``B``; then ``q_new · d_new ≈ q_new · (Bᵀ d_old)
= (B q_new) · d_old``, and a query is searched as ``q_new · Bᵀ`` against the stored vectors, unchanged.
How well the map holds is measured on held-out sample documents (R² of ``D_old · B`` against ``D_new``, and
the mean cosine), saved with it; the ridge strength is the one with the best held-out R².

``Collection.searcher.fit_query_map(model)`` / ``retrievo map-queries COLLECTION --model NEW`` fits and saves it
(``query_map/`` in the collection folder); ``SearchRequest(query_map=True)`` / ``--query-map`` searches with it.

Written here: a ridge solve in numpy over vectors the collection holds; no library does the bookkeeping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import load_npy, save_npy, write_json
from retrievo.errors import InvalidInputError

__all__ = ["RIDGE_GRID", "QueryMap", "fit_linear_map", "fit_query_map"]

#: ridge strengths (times the number of documents) tried when none is given
RIDGE_GRID = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def fit_linear_map(old: np.ndarray, new: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """``B`` minimising ``|old · B - new|² + ridge · n · |B|²`` (``old``: ``(n, d_old)``, ``new``: ``(n, d_new)``)."""
    old = np.asarray(old, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    gram = old.T @ old + ridge * len(old) * np.eye(old.shape[1])
    return np.linalg.solve(gram, old.T @ new)


class QueryMap:
    """The new model's query vectors ``q`` searched as ``q · matrix`` against the stored vectors."""

    def __init__(self, model: str, matrix: np.ndarray, info: dict[str, Any], backend: str = "auto") -> None:
        self.model = model
        self.matrix = np.asarray(matrix, dtype=np.float32)
        self.info = info
        self.backend = backend
        self._encoder: Any = None

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from retrievo.config import DenseConfig
            from retrievo.encoders.dense import DenseEncoder

            self._encoder = DenseEncoder(DenseConfig(model=self.model, backend=self.backend))
        return self._encoder

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        return (self.encoder.encode_queries(queries) @ self.matrix).astype(np.float32)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_npy(folder / "matrix.npy", self.matrix, sync_dir=False)
        write_json(folder / "query_map.json", {"model": self.model, "backend": self.backend, **self.info}, indent=1)

    @classmethod
    def load(cls, folder: str | Path) -> QueryMap:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "query_map.json").read_text())
            return cls(meta.pop("model"), load_npy(folder / "matrix.npy"), meta, meta.pop("backend", "auto"))
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInputError(f"{folder}: no readable query map ({exc})") from exc


def fit_query_map(collection: Any, model: str, *, sample: int = 4000, ridge: float | None = None, backend: str | None = None,
                  seed: int = 0, show_progress: bool = False) -> QueryMap:
    """Fit the map from ``model``'s vectors to ``collection``'s stored dense vectors (see the module docstring);
    ``ridge=None`` picks the strength from :data:`RIDGE_GRID` by the fit on held-out sampled documents."""
    from retrievo.config import DenseConfig
    from retrievo.encoders.cache import encode_with_cache
    from retrievo.encoders.dense import DenseEncoder, model_fingerprint

    snap = collection.snapshot()
    flat = snap.signals.get("dense")
    if flat is None or "dense" not in collection.signals:
        raise InvalidInputError(f"{collection.path}: no dense vectors are stored; a query map needs them")
    if sample < 20:
        raise InvalidInputError(f"query map: sample must be >= 20 documents, got {sample}")
    live = np.flatnonzero(snap.live)
    if len(live) < 20:
        raise InvalidInputError(f"query map: {collection.path} holds {len(live)} documents; 20 are needed")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(live, size=min(sample, len(live)), replace=False))
    backend = backend or collection.config.dense.backend
    cfg = DenseConfig(model=model, backend=backend)
    encoder = DenseEncoder(cfg)
    texts = [d.content(collection.config.dense.fields) for d in collection.documents_at(rows.tolist(), snap)]
    dense_signal = collection.signals["dense"]
    new = encode_with_cache(encoder, texts, dense_signal.embedding_cache(), show_progress=show_progress)
    old = flat.gather(rows).astype(np.float32)
    n_fit = max(10, int(round(0.9 * len(rows))))
    held_old, held_new = (old[n_fit:], new[n_fit:]) if n_fit < len(rows) else (old, new)

    def held_out_fit(b: np.ndarray) -> tuple[float, float]:
        pred = held_old @ b
        r2 = 1.0 - float(((pred - held_new) ** 2).sum() / max(((held_new - held_new.mean(0)) ** 2).sum(), 1e-12))
        cos = float(np.mean((pred * held_new).sum(1) / np.maximum(
            np.linalg.norm(pred, axis=1) * np.linalg.norm(held_new, axis=1), 1e-12)))
        return r2, cos

    grid = RIDGE_GRID if ridge is None else (ridge,)
    scored = [(held_out_fit(fit_linear_map(old[:n_fit], new[:n_fit], r)), r) for r in grid]
    (r2, cos), ridge = max(scored, key=lambda t: t[0][0])  # the ridge whose map fits held-out documents best
    b = fit_linear_map(old, new, ridge)  # the final map uses every sampled document
    info = {"fingerprint": model_fingerprint(cfg), "documents": int(len(rows)), "ridge": ridge, "seed": seed,
            "dim_new": int(new.shape[1]), "dim_old": int(old.shape[1]), "heldout_r2": round(r2, 4),
            "heldout_cosine": round(cos, 4)}
    qm = QueryMap(str(model), b.T, info, backend)
    qm._encoder = encoder
    return qm
