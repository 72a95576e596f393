"""Choose a dense index for a memory budget, with its expected quality measured on a calibration sample.

For each candidate (flat in RAM, HNSW, int8 + rescoring, IVF-PQ, binary + rescoring) the bytes it keeps in
RAM for ``n`` vectors are computed from its layout, and its recall@10 against exact search is measured on
a calibration sample: up to ``sample_docs`` stored vectors form a small collection, and ``queries`` of them
(with their own row excluded) are searched. The chosen index is the one with the best measured recall
among those that fit; ties go to the smaller one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retrievo.config import DenseIndexConfig
from retrievo.errors import InvalidInputError

__all__ = ["IndexPlan", "plan_dense_index", "ram_bytes"]


@dataclass(frozen=True)
class IndexPlan:
    config: DenseIndexConfig
    bytes_in_ram: int
    recall_at_10: float
    fits: bool

    def to_dict(self) -> dict:
        return {"index": self.config.kind, "config": self.config.to_dict(), "bytes_in_ram": self.bytes_in_ram,
                "expected_recall@10": round(self.recall_at_10, 4), "fits": self.fits}


def ram_bytes(cfg: DenseIndexConfig, n: int, dim: int) -> int:
    """Bytes of vector data an index keeps in RAM for ``n`` vectors of ``dim`` dimensions."""
    if cfg.kind == "flat":
        return n * dim * 4
    if cfg.kind == "int8":
        return n * (dim + 1)
    if cfg.kind == "binary":
        return n * ((dim + 63) // 64) * 8
    if cfg.kind == "hnsw":
        return n * (dim * 4 + cfg.M * 2 * 4 + 8)
    nlist = cfg.nlist or int(4 * np.sqrt(max(n, 1)))
    code = dim * 4 if cfg.kind == "ivf" else cfg.pq_m * cfg.pq_bits // 8
    return n * (code + 8) + nlist * dim * 4


def _candidates(dim: int) -> list[DenseIndexConfig]:
    pq_m = next((m for m in (48, 32, 24, 16, 8) if dim % m == 0), 1)
    return [
        DenseIndexConfig(kind="flat"),
        DenseIndexConfig(kind="hnsw"),
        DenseIndexConfig(kind="int8"),
        DenseIndexConfig(kind="ivfpq", pq_m=pq_m),
        DenseIndexConfig(kind="binary"),
    ]


def plan_dense_index(
    vectors: np.ndarray, n_total: int, budget_bytes: int, queries: int = 200, seed: int = 0
) -> tuple[IndexPlan | None, list[IndexPlan]]:
    """Measure every candidate on a sample of ``vectors`` and pick the best that fits ``budget_bytes``.

    Args:
        vectors: a sample of the collection's vectors (float32, normalised).
        n_total: how many vectors the real index will hold (for the RAM estimate).
        budget_bytes: RAM allowed for the dense index's vector data.
        queries: calibration queries drawn from the sample.

    Returns:
        ``(chosen or None when nothing fits, every candidate)``.
    """
    from retrievo.indexes.flat import FlatIndex
    from retrievo.indexes.quantized import BinaryIndex, Int8Index, RescoringIndex

    if budget_bytes <= 0:
        raise InvalidInputError(f"memory budget must be a positive number of bytes, got {budget_bytes}")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    if n < 20:
        raise InvalidInputError(f"need at least 20 stored vectors to calibrate, the collection has {n}")
    rng = np.random.default_rng(seed)
    qi = rng.choice(n, min(queries, n), replace=False)
    q = x[qi]
    live = np.ones(n, bool)
    flat = FlatIndex([(0, x)], live)
    truth, _, _ = flat.search(q, 11)
    truth = [[r for r in row if r != self_row][:10] for row, self_row in zip(truth, qi, strict=True)]
    plans = []
    for cfg in _candidates(dim):
        if cfg.kind == "flat":
            idx = flat
        elif cfg.kind in ("int8", "binary"):
            coarse = (Int8Index if cfg.kind == "int8" else BinaryIndex)([(0, x)], live)
            idx = RescoringIndex(coarse, flat, cfg.rescore_multiplier)
        else:
            from retrievo.indexes import ann

            seg = ann.build_segment_index(x, cfg.replace(nlist=max(1, int(4 * np.sqrt(n)))) if cfg.kind != "hnsw" else cfg)
            # measure the index itself, not the exact fallback for small allowed sets
            idx = ann.AnnIndex([(0, seg, n)], flat, live, cfg, exact_below=0)
        found, _, _ = idx.search(q, 11)
        got = [[r for r in row if r != self_row][:10] for row, self_row in zip(found, qi, strict=True)]
        rec = float(np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(got, truth, strict=True)]))
        size = ram_bytes(cfg, n_total, dim)
        plans.append(IndexPlan(cfg, size, rec, size <= budget_bytes))
    fitting = [p for p in plans if p.fits]
    chosen = max(fitting, key=lambda p: (round(p.recall_at_10, 3), -p.bytes_in_ram)) if fitting else None
    return chosen, plans
