"""Request and response bodies of the HTTP API (pydantic models; they are the OpenAPI spec)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ServerSettings",
    "ErrorBody",
    "CreateCollection",
    "CollectionSummary",
    "SearchRequest",
    "SearchResponse",
    "WriteAck",
    "IdsRequest",
    "CommitResponse",
    "DocumentBody",
]


class ServerSettings(BaseModel):
    """How a server behaves; from ``retrievo serve`` flags or a JSON config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: str | None = Field(None, description="key required by write routes (and read routes if read_auth)")
    read_auth: bool = Field(False, description="require the API key on read routes too")
    max_body_bytes: int = Field(16 * 2**20, ge=1024)
    max_batch: int = Field(1000, ge=1, description="documents per upsert, ids per delete")
    max_queries: int = Field(100, ge=1, description="queries per search request")
    max_k: int = Field(1000, ge=1)
    max_offset: int = Field(10_000, ge=0)
    max_query_chars: int = Field(4096, ge=1)
    commit_interval: float = Field(1.0, gt=0, le=3600, description="seconds between background commits")
    cors_origins: tuple[str, ...] = Field((), description="origins allowed by CORS; none by default")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorDetail(_Strict):
    status: int
    type: str = Field(description="the error class, e.g. FilterError, NotFoundError, Unauthorized")
    message: str


class ErrorBody(_Strict):
    error: ErrorDetail


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class CreateCollection(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="1-64 letters, digits, '_', '.', '-' (no '..')")
    config: dict[str, Any] | None = Field(
        None, description="a CollectionConfig as JSON (see retrievo.config); default: BM25 + dense MiniLM"
    )
    dense: bool = Field(True, description="false: a lexical-only collection (config.dense = null)")


class CollectionSummary(_Strict):
    name: str
    documents: int
    generation: int
    pending: int = Field(description="acknowledged operations not yet committed")
    dense_model: str | None
    sparse_model: str | None = None
    error: str | None = None


class Fusion(_Strict):
    method: Literal["convex", "rrf"] | None = None
    weights: list[float] | None = Field(None, min_length=1, max_length=3, description="one per signal")
    rrf_k: float | None = Field(None, gt=0)
    depth: int | None = Field(None, ge=1, le=10_000)


class SearchRequest(_Strict):
    query: str | None = Field(None, min_length=1, max_length=4096, description="one query (or use queries)")
    queries: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        None, min_length=1, max_length=100, description="a batch of queries"
    )
    k: int = Field(10, ge=1, le=1000, description="results per query (page size)")
    offset: int = Field(0, ge=0, le=10_000, description="results to skip (pagination)")
    method: Literal["bm25", "dense", "splade", "hybrid", "bm25+splade", "dense+splade", "bm25+dense+splade"] = Field(
        "bm25", description="a signal, hybrid (= bm25+dense), or signals fused with '+'"
    )
    fusion: Fusion | None = None
    filter: dict[str, Any] | None = Field(None, description='metadata filter, e.g. {"year": {"$gte": 2020}}')
    index: Literal["flat", "int8", "binary", "hnsw", "ivf", "ivfpq"] | None = None
    sparse_mode: Literal["exact", "approx"] | None = Field(None, description="SPLADE: exact or Seismic approx")
    query_vector: list[float] | None = Field(
        None, min_length=1, max_length=8192, description="dense query vector computed elsewhere (with or instead of 'query')")
    query_vectors: list[Annotated[list[float], Field(min_length=1, max_length=8192)]] | None = Field(
        None, min_length=1, max_length=100, description="dense query vectors, one per query of the batch")
    prf: bool = Field(False, description="pseudo-relevance feedback: RM3 for BM25, Rocchio for dense (defaults)")
    correct_typos: bool = Field(False, description="BM25: correct query terms outside the vocabulary (one edit)")
    adapter: bool = Field(False, description="dense: use the collection's query adapter (`retrievo adapt`)")
    min_probability: float | None = Field(
        None, ge=0, le=1, description="calibrated cut-off: only results at least this likely relevant "
        "(the collection needs a calibration for the method: `retrievo calibrate`)")
    include_text: bool = True
    highlight: bool = True


class Hit(_Strict):
    id: str
    score: float
    rank: int
    probability: float | None = Field(None, description="calibrated probability of relevance (with min_probability)")
    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None
    highlights: dict[str, list[tuple[int, int]]] | None = Field(
        None, description="character spans [start, end) of query terms in title and text"
    )


class QueryResult(_Strict):
    query: str
    hits: list[Hit]


class SearchResponse(_Strict):
    collection: str
    generation: int
    method: str
    results: list[QueryResult]
    took_ms: float


class DocumentBody(_Strict):
    id: str = Field(min_length=1)
    title: str = ""
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    vector: list[float] | None = Field(
        None, description="a dense vector computed elsewhere (then the document is not encoded); give one for "
        "every document of a request or for none")


class WriteAck(_Strict):
    acknowledged: int = Field(description="operations durably logged; visible after the next commit")
    seq: int = Field(description="write-ahead log sequence number of this request")


class IdsRequest(_Strict):
    ids: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=1000)


class CommitResponse(_Strict):
    generation: int
    documents: int
