"""Request and response bodies of the HTTP API (pydantic models; they are the OpenAPI spec)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from retrievo.config import SPARSE_MODES, PRFConfig
from retrievo.request import OPTIONS, Option, SearchRequest, options

__all__ = [
    "ServerSettings",
    "ErrorBody",
    "CreateCollection",
    "CollectionSummary",
    "SearchResponse",
    "request_from_body",
    "search_body_model",
    "WriteAck",
    "IdsRequest",
    "CommitResponse",
    "DocumentBody",
    "FacetsRequest",
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
    max_pending: int | None = Field(100_000, ge=1, description="uncommitted documents and ids in a collection's "
                                    "log beyond which writes are answered 429 (null: no bound)")
    search_timeout: float = Field(30.0, gt=0, description="seconds a search may run before it is answered 503")
    max_text_chars: int = Field(1_000_000, ge=0, description="characters of a hit's text returned at most")
    max_response_chars: int = Field(8_000_000, ge=0, description="title and text characters of one answer at most")
    max_highlight_chars: int = Field(200_000, ge=0, description="characters of a hit's text that are highlighted")
    max_spans: int = Field(1000, ge=0, description="highlighted spans per field of a hit at most")
    cors_origins: tuple[str, ...] = Field((), description="origins allowed by CORS; none by default")
    screen: bool = Field(False, description="pass every write through the admission gate (suspects quarantined) "
                         "unless the request says ?screen=false")
    screen_max_fpr: float = Field(0.01, gt=0, lt=1, description="the admission gate's bound on the share of "
                                  "ordinary documents it holds back")


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
    methods: list[str] = Field(default_factory=list, description="the methods the collection can search: its signals, "
                               "and hybrid when it has bm25 and dense")
    error: str | None = None
    locked: str | None = Field(None, description="why writes are refused: another process writes the collection")
    quarantined: int = Field(0, description="documents the admission gate holds back (not searchable)")


_PY: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "floats": list[float],
                       "json": dict[str, Any]}
#: bounds the HTTP body adds to the request's own (the server's limits also apply: ``max_k``, …)
_HTTP_LIMITS: dict[str, dict[str, Any]] = {"k": {"le": 1000}, "fusion.weights": {"min_length": 1, "max_length": 16}}
_GROUP_TITLES = {"fusion": "FusionSettings", "index": "IndexSettings", "sparse": "SparseSettings", "prf": "FeedbackSettings"}


def _annotation(opt: Option) -> Any:
    if opt.name == "method":
        from retrievo.signals.registry import methods

        return Literal[methods()]  # type: ignore[valid-type]
    if opt.choices:
        return Literal[opt.choices]  # type: ignore[valid-type]
    return _PY[opt.type]


def _field(opt: Option, default: Any) -> Any:
    bounds = {b: getattr(opt, b) for b in ("ge", "gt", "le") if getattr(opt, b) is not None}
    bounds.update(_HTTP_LIMITS.get(opt.name, {}))
    return Field(default, description=opt.help, **bounds)


def search_body_model() -> type[BaseModel]:
    """The body of ``POST /v1/collections/{name}/search``, generated from the request's option table
    (:func:`retrievo.request.options`: the built-in options and those plugins registered): the queries,
    paging and display fields, then every search setting — a component's (``fusion``, ``index``, ``sparse``,
    ``prf``) as an object of the fields to change in the collection's config."""
    fields: dict[str, Any] = {
        "query": (str | None, Field(None, min_length=1, max_length=4096, description="one query (or use queries)")),
        "queries": (list[Annotated[str, Field(min_length=1, max_length=4096)]] | None,
                    Field(None, min_length=1, max_length=100, description="a batch of queries")),
        "offset": (int, Field(0, ge=0, le=10_000, description="results to skip (pagination)")),
        "query_vector": (list[float] | None, Field(None, min_length=1, max_length=8192,
                                                   description="dense query vector computed elsewhere (with or instead of 'query')")),
        "query_vectors": (list[Annotated[list[float], Field(min_length=1, max_length=8192)]] | None,
                          Field(None, min_length=1, max_length=100, description="dense query vectors, one per query of the batch")),
        "include_text": (bool, True),
        "highlight": (bool, True),
        "sparse_mode": (Literal[SPARSE_MODES] | None,  # type: ignore[valid-type]
                        Field(None, description="SPLADE: exact or Seismic approx (the same as sparse.mode)")),
    }
    groups: dict[str, list[Option]] = {}
    for opt in options():
        if opt.group:
            groups.setdefault(opt.group, []).append(opt)
        elif opt.name == "prf":
            continue
        elif opt.type == "bool":
            fields[opt.name] = (bool, _field(opt, bool(opt.default)))
        elif opt.name in ("method", "k"):
            fields[opt.name] = (_annotation(opt), _field(opt, {"method": "bm25", "k": 10}[opt.name]))
        else:
            fields[opt.name] = (_annotation(opt) | None, _field(opt, opt.default))
    for group, opts in groups.items():
        sub = create_model(_GROUP_TITLES.get(group, f"{group.title()}Settings"), __base__=_Strict,
                           **{o.field: (_annotation(o) | None, _field(o, None)) for o in opts})
        if group == "index":
            fields[group] = (_annotation(opts[0]) | sub | None, Field(None, description="the dense index: a kind, or "
                             "the fields to change in the collection's (default: the collection's)"))
        elif group == "prf":
            fields[group] = (bool | sub, Field(False, description="pseudo-relevance feedback: true (RM3 for BM25, "
                             "Rocchio for dense, published defaults) or its settings"))
        else:
            fields[group] = (sub | None, Field(None, description=f"{group} settings to change in the collection's"))
    return create_model("SearchRequest", __base__=_Strict, **fields)


_BUILTIN = frozenset({o.name for o in OPTIONS} | {o.group for o in OPTIONS if o.group})  # other options are plugins


#: the body's own fields: how many results, which page, what to answer with; the rest are search options
_BODY_ONLY = frozenset({"query", "queries", "offset", "query_vector", "query_vectors", "include_text", "highlight",
                        "sparse_mode", "k"})


def request_from_body(body: BaseModel, k: int) -> SearchRequest:
    """The :class:`~retrievo.request.SearchRequest` of a search body, asking for ``k`` results per query.
    Only the options the body sets are read: a field left out has the request's default (the body model's
    defaults are the option table's, and the request fills the same ones)."""
    values: dict[str, Any] = {}
    plugin: dict[str, Any] = {}
    for name in body.model_fields_set:
        if name in _BODY_ONLY:
            continue
        value = getattr(body, name)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_none=True)
            if name == "prf":
                value = PRFConfig(**value)
        (values if name in _BUILTIN else plugin)[name] = value
    mode = getattr(body, "sparse_mode", None)
    if mode is not None:
        values["sparse"] = {**(values.get("sparse") or {}), "mode": mode}
    return SearchRequest(**values, k=k, options=plugin)


class RequestCache:
    """The :class:`~retrievo.request.SearchRequest` of the search bodies seen lately, by their options (all
    but the queries and what the answer includes): a server's requests mostly repeat a few settings, so each
    is built once — and, being the same object, resolved once per collection config (its memo). Bodies with
    an option that is not a plain value (a filter, a group of settings) are built each time."""

    _NOT_OPTIONS = _BODY_ONLY - {"sparse_mode"}  # the body's own fields, but sparse_mode changes the request

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._requests: dict[tuple, SearchRequest] = {}

    def get(self, body: BaseModel, k: int) -> SearchRequest:
        """``request_from_body(body, k)``, from the cache when the same options were seen."""
        try:
            key = (k, *sorted((n, getattr(body, n)) for n in body.model_fields_set - self._NOT_OPTIONS))
            request = self._requests.get(key)
        except TypeError:  # a value that is not hashable
            return request_from_body(body, k)
        if request is None:
            if len(self._requests) >= self.size:
                self._requests.clear()
            request = self._requests[key] = request_from_body(body, k)
        return request


class Standing(_Strict):
    rank: int = Field(description="1-based rank in that list")
    score: float


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
    text_truncated: bool | None = Field(None, description="the text is cut (the server's limits on returned text)")
    explain: dict[str, Standing | None] | None = Field(
        None, description="with explain: the hit's rank and score in each list the search made (every signal's, "
        "then each stage's, e.g. fusion, rerank); null where the hit was not in that list")


class QueryResult(_Strict):
    query: str
    hits: list[Hit]
    corrections: dict[str, str] | None = Field(
        None, description="with correct_typos: the query's analysed terms typo correction replaced ('' = dropped)")


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
    screened: bool = Field(False, description="the documents pass the admission gate at commit: suspects go to the "
                           "quarantine (GET .../quarantine) instead of the collection")


class MetadataPatch(_Strict):
    metadata: dict[str, Any] = Field(description="keys to set in the document's metadata; a null value removes the key")


class FacetsRequest(_Strict):
    fields: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        None, max_length=100, description="the metadata fields to count (default: every field)")
    filter: dict[str, Any] | None = Field(None, description="count only the documents that pass this filter")
    limit: int = Field(10, ge=1, le=1000, description="values listed per field, most frequent first")


class IdsRequest(_Strict):
    ids: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=1000)


class CommitResponse(_Strict):
    generation: int
    documents: int
