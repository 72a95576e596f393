"""Learned sparse (SPLADE) retrieval: exact and Seismic-style approximate top-k over an inverted index.

- :mod:`.params` — :class:`SeismicParams` and the input checks;
- :mod:`.build` — build kernels (posting lists, pruning, block clustering, summaries);
- :mod:`.kernels` — search kernels (row dot products, block traversal);
- :mod:`.index` — :class:`SparseIndex` (search, save, load; the algorithm is described there);
- :mod:`.segmented` — :class:`SegmentedSparseIndex`, one index per immutable segment merged into one top-k.
"""

from retrievo.indexes.sparse.index import SparseIndex
from retrievo.indexes.sparse.params import SeismicParams
from retrievo.indexes.sparse.segmented import SegmentedSparseIndex

__all__ = ["SeismicParams", "SegmentedSparseIndex", "SparseIndex"]
