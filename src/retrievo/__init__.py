"""retrievo: an embedding-based retrieval engine (BM25, dense, hybrid) over an embedded on-disk store."""

from retrievo._version import __version__
from retrievo.client import Client
from retrievo.config import (
    AnalyzerConfig,
    BM25Config,
    CollectionConfig,
    DenseConfig,
    DenseIndexConfig,
    FusionConfig,
    PRFConfig,
)
from retrievo.errors import (
    DocumentError,
    DuplicateIdError,
    FilterError,
    FormatVersionError,
    InvalidInputError,
    NotFoundError,
    RetrievoError,
    SourceFormatError,
)
from retrievo.request import SearchRequest
from retrievo.store.collection import Collection
from retrievo.types import Document, SearchResults

__all__ = [
    "__version__",
    "AnalyzerConfig",
    "BM25Config",
    "Client",
    "Collection",
    "CollectionConfig",
    "DenseConfig",
    "DenseIndexConfig",
    "Document",
    "DocumentError",
    "DuplicateIdError",
    "FilterError",
    "FormatVersionError",
    "FusionConfig",
    "InvalidInputError",
    "NotFoundError",
    "PRFConfig",
    "RetrievoError",
    "SearchRequest",
    "SearchResults",
    "SourceFormatError",
]
