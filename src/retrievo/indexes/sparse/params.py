"""Parameters of the approximate sparse index (Seismic's names) and the checks every input vector passes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from retrievo.errors import InvalidInputError

__all__ = ["FORMAT", "SeismicParams", "as_csr"]

FORMAT = 1
_MAX_BLOCKS = 65535  # block ids inside a list are uint16
_F32_FORWARD_MAX = 32 << 20  # "auto" keeps float32 forward weights while terms + weights take at most this


@dataclass(frozen=True)
class SeismicParams:
    """Build parameters of the approximate structures (names as in Seismic).

    Attributes:
        n_postings: λ — postings kept per list (on average for ``pruning="global"``, at most for "fixed").
        centroid_fraction: β — blocks per pruned list, as a fraction of its length.
        summary_energy: α — fraction of a block summary's L1 mass that is kept.
        min_cluster_size: blocks smaller than this are dissolved into the other blocks of the list.
        doc_cut: entries of a document (its largest) used when assigning it to a centroid.
        max_fraction: with global pruning, a list keeps at most ``max_fraction × n_postings`` entries.
        pruning: "global" (Seismic's default) or "fixed".
        seed: seed of the centroid choice.
    """

    n_postings: int = 1000
    centroid_fraction: float = 0.1
    summary_energy: float = 0.4
    min_cluster_size: int = 2
    doc_cut: int = 15
    max_fraction: float = 1.5
    pruning: str = "global"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_postings < 1:
            raise InvalidInputError(f"n_postings must be >= 1, got {self.n_postings}")
        if not 0.0 < self.centroid_fraction <= 1.0:
            raise InvalidInputError(f"centroid_fraction must be in (0, 1], got {self.centroid_fraction}")
        if not 0.0 < self.summary_energy <= 1.0:
            raise InvalidInputError(f"summary_energy must be in (0, 1], got {self.summary_energy}")
        if self.min_cluster_size < 1 or self.doc_cut < 1:
            raise InvalidInputError("min_cluster_size and doc_cut must be >= 1")
        if self.max_fraction < 1.0:
            raise InvalidInputError(f"max_fraction must be >= 1, got {self.max_fraction}")
        if self.pruning not in ("global", "fixed"):
            raise InvalidInputError(f"pruning must be 'global' or 'fixed', got {self.pruning!r}")


# --------------------------------------------------------------------------------------------- input checks


def _first_bad(m: sp.csr_matrix, bad: np.ndarray) -> tuple[int, int]:
    pos = int(np.flatnonzero(bad)[0])
    row = int(np.searchsorted(m.indptr, pos, side="right") - 1)
    return row, int(m.indices[pos])


def as_csr(x, what: str, n_cols: int | None = None) -> sp.csr_matrix:
    """A canonical float32 CSR (sorted, summed duplicates, no explicit zeros) of finite non-negative values."""
    if isinstance(x, np.ndarray) and x.ndim == 1:
        x = x[None, :]
    if not (sp.issparse(x) or isinstance(x, np.ndarray)):
        raise InvalidInputError(f"{what} must be a scipy sparse matrix (CSR), got {type(x).__name__}")
    if x.ndim != 2:
        raise InvalidInputError(f"{what} must be 2-dimensional, got shape {x.shape}")
    if n_cols is not None and x.shape[1] != n_cols:
        raise InvalidInputError(
            f"{what} have {x.shape[1]} columns but the index vocabulary has {n_cols} terms; "
            "encode them with the same model/vocabulary as the documents")
    # may share the caller's arrays: copied below before anything is changed
    m = x if isinstance(x, sp.csr_matrix) and x.dtype == np.float32 else sp.csr_matrix(x, dtype=np.float32)
    if not np.all(np.isfinite(m.data)):
        row, term = _first_bad(m, ~np.isfinite(m.data))
        raise InvalidInputError(f"{what}: row {row} has a NaN or infinite weight at term {term}")
    if np.any(m.data < 0):
        row, term = _first_bad(m, m.data < 0)
        raise InvalidInputError(
            f"{what}: row {row} has a negative weight at term {term}; learned sparse weights must be >= 0")
    if not m.has_canonical_format or (m.data == 0).any():
        m = m.copy()
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
    return m


