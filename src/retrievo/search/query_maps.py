"""Query drift compensation: search vectors stored by an old model with queries encoded by a new one.

After the dense model changes (a fine-tuned model, an upgrade), re-encoding every document takes time. Until
then the new model's queries are mapped into the space of the stored vectors by a linear map learnt from
paired encodings: a seeded sample of the collection's documents encoded by the new model (through the
content cache, so nothing is encoded twice), beside their stored old vectors.

The map keeps the new model's scores. Two fits, the second built on the first:

1. **Documents alone** — fit ``B`` (ridge least squares, ``D_old · B ≈ D_new``) so that a document's new vector
   is approximately its old one moved by ``B``; then ``q_new · d_new ≈ q_new · (Bᵀ d_old) = (B q_new) · d_old``,
   and a query is searched as ``q_new · Bᵀ`` against the stored vectors, unchanged. How well it holds is
   measured on held-out sample documents (R² of ``D_old · B`` against ``D_new``, and the mean cosine); the
   ridge strength is the one with the best held-out R².
2. **With queries** (``queries=``: a query log or a training split's query texts, no judgements) — score
   distillation: ``W`` minimising the mean over (query, document) pairs of ``(q_new · W · d_old − q_new ·
   d_new)²`` plus ``strength · |W − Bᵀ|²`` (scaled by 1/dim²), solved by conjugate gradients from ``Bᵀ``. The
   pairs are each query's ``top`` sampled documents under the new model — the scores that decide a ranking
   — and ``random`` others. Matching whole document vectors spends the fit on directions no query uses and
   matching every score is dominated by irrelevant documents; matching the scores of the pairs that rank is
   what carries the new model's gain (SciFact, fine-tuned MiniLM, 809 training queries: dense 49 % of the
   re-index gain with 1., 87 % with 2.; ``benchmarks/bench_learn.py``). Saved with it: the error of the
   mapped scores of held-out queries' top documents (root mean square, against the new model's), for ``B``
   and for ``W``.

``Collection.searcher.fit_query_map(model)`` / ``retrievo map-queries COLLECTION --model NEW`` fits and saves it
(``query_map/`` in the collection folder); ``SearchRequest(query_map=True)`` / ``--query-map`` searches with it.

Written here: a ridge solve and a conjugate-gradient least squares in numpy over vectors the collection holds
(the pair objective is not a plain regression any library offers); no library does the bookkeeping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import load_npy, save_npy, write_json
from retrievo.errors import InvalidInputError

__all__ = ["RIDGE_GRID", "QueryMap", "fit_linear_map", "fit_pair_map", "fit_query_map"]

#: ridge strengths (times the number of documents) tried when none is given
RIDGE_GRID = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def fit_linear_map(old: np.ndarray, new: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """``B`` minimising ``|old · B - new|² + ridge · n · |B|²`` (``old``: ``(n, d_old)``, ``new``: ``(n, d_new)``)."""
    old = np.asarray(old, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    gram = old.T @ old + ridge * len(old) * np.eye(old.shape[1])
    return np.linalg.solve(gram, old.T @ new)


def _pairs(q: np.ndarray, d_new: np.ndarray, top: int, random: int, rng: np.random.Generator) -> np.ndarray:
    """Per query, the rows of its ``top`` documents by new-model score, then ``random`` rows drawn at random."""
    k = min(top, len(d_new))
    best = np.empty((len(q), k), dtype=np.int64)
    for s0 in range(0, len(q), 1024):
        sims = q[s0:s0 + 1024] @ d_new.T
        best[s0:s0 + 1024] = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return np.hstack([best, rng.integers(0, len(d_new), size=(len(q), random))])


def fit_pair_map(q_new: np.ndarray, d_old: np.ndarray, d_new: np.ndarray, w0: np.ndarray, *, top: int = 20,
                 random: int = 20, strength: float = 1e-2, iters: int = 100, seed: int = 0) -> np.ndarray:
    """``W`` (``(d_new, d_old)``) minimising the mean over pairs of ``(q · W · a − q · b)²`` plus
    ``strength / d² · |W − w0|²``, where each query ``q`` (rows of ``q_new``) is paired with its ``top``
    documents by ``q · b`` and ``random`` others (``a``, ``b``: a document's rows of ``d_old``, ``d_new``);
    conjugate gradients on the normal equations, from ``w0``."""
    q = np.asarray(q_new, dtype=np.float32)
    a_all = np.asarray(d_old, dtype=np.float32)
    b_all = np.asarray(d_new, dtype=np.float32)
    pairs = _pairs(q, b_all, top, random, np.random.default_rng(seed))  # (m, c)
    a = a_all[pairs]  # (m, c, d_old)
    target = np.einsum("mcd,md->mc", b_all[pairs], q)
    n_pairs = pairs.size
    dim = q.shape[1]
    lam = strength / (dim * a.shape[2])

    def back(vals: np.ndarray) -> np.ndarray:  # Σ_pairs vals · qᵀ a / n_pairs
        return (q.T @ np.einsum("mc,mcd->md", vals.astype(np.float32), a)).astype(np.float64) / n_pairs

    def op(w: np.ndarray) -> np.ndarray:
        return back(np.einsum("mcd,md->mc", a, q @ w.astype(np.float32))) + lam * w

    w0 = np.asarray(w0, dtype=np.float64)
    rhs = back(target) + lam * w0
    w = w0.copy()
    r = rhs - op(w)
    p = r.copy()
    rs = float((r * r).sum())
    stop = (1e-6 * float(np.sqrt((rhs * rhs).sum()))) ** 2
    for _ in range(iters):
        if rs <= stop:
            break
        ap = op(p)
        step = rs / float((p * ap).sum())
        w += step * p
        r -= step * ap
        rs_new = float((r * r).sum())
        p = r + (rs_new / rs) * p
        rs = rs_new
    return w


def _top_score_error(q: np.ndarray, d_old: np.ndarray, d_new: np.ndarray, w: np.ndarray, top: int) -> float:
    """Root mean square of ``(q · w) · a − q · b`` over each query's ``top`` documents by ``q · b``."""
    pairs = _pairs(q, d_new, top, 0, np.random.default_rng(0))
    err = np.einsum("mcd,md->mc", d_old[pairs], q @ w) - np.einsum("mcd,md->mc", d_new[pairs], q)
    return float(np.sqrt(np.mean(err ** 2)))


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
                  seed: int = 0, show_progress: bool = False, queries: list[str] | None = None, top: int = 20,
                  random: int = 20, strength: float = 1e-2, max_queries: int = 5000) -> QueryMap:
    """Fit the map from ``model``'s vectors to ``collection``'s stored dense vectors (see the module docstring);
    ``ridge=None`` picks the strength from :data:`RIDGE_GRID` by the fit on held-out sampled documents. With
    ``queries`` (texts; at most ``max_queries`` of them, a seeded sample) the map is then fitted to keep the
    new model's scores of each query's ``top`` sampled documents and ``random`` others (``strength``: the pull
    towards the documents-only map)."""
    from retrievo.config import DenseConfig
    from retrievo.encoders.cache import encode_with_cache
    from retrievo.encoders.dense import DenseEncoder, model_fingerprint

    snap = collection.snapshot()
    flat = snap.signals.get("dense")
    if flat is None or "dense" not in collection.signals:
        raise InvalidInputError(f"{collection.path}: no dense vectors are stored; a query map needs them")
    if sample < 20:
        raise InvalidInputError(f"query map: sample must be >= 20 documents, got {sample}")
    if queries is not None:
        queries = [q for q in queries if isinstance(q, str) and q.strip()]
        if len(queries) < 10:
            raise InvalidInputError(f"query map: {len(queries)} non-empty queries given; at least 10 are needed")
        if top < 1 or random < 0 or strength < 0:
            raise InvalidInputError(f"query map: top must be >= 1, random and strength >= 0 (got {top}, {random}, "
                                    f"{strength})")
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
    info: dict[str, Any] = {"fingerprint": model_fingerprint(cfg), "documents": int(len(rows)), "ridge": ridge,
                            "seed": seed, "dim_new": int(new.shape[1]), "dim_old": int(old.shape[1]),
                            "heldout_r2": round(r2, 4), "heldout_cosine": round(cos, 4), "method": "documents"}
    matrix = b.T
    if queries is not None:
        if len(queries) > max_queries:
            queries = [queries[i] for i in sorted(rng.choice(len(queries), size=max_queries, replace=False))]
        qv = np.asarray(encoder.encode_queries(queries), dtype=np.float32)
        n_train = max(1, int(round(0.9 * len(qv))))
        held = qv[n_train:]

        def fit(q: np.ndarray) -> np.ndarray:
            return fit_pair_map(q, old, new, b.T, top=top, random=random, strength=strength, seed=seed)

        info.update(method="pairs", queries=len(qv), top=top, random=random, strength=strength,
                    heldout_top_rmse_documents_map=round(_top_score_error(held, old, new, b.T, top), 5),
                    heldout_top_rmse=round(_top_score_error(held, old, new, fit(qv[:n_train]), top), 5))
        matrix = fit(qv)  # the final map uses every query
    qm = QueryMap(str(model), matrix, info, backend)
    qm._encoder = encoder
    return qm
