"""The HTTP API (FastAPI) and the search page: a thin layer over :class:`~retrievo.store.collection.Collection`.

Routes are versioned under ``/v1``; ``/openapi.json`` is the spec and ``/docs`` renders it; ``/`` is a
search page (plain HTML + JavaScript served from the package, no build step).

- Reads (search, get a document, stats) are answered from the last committed generation by each
  collection's read-only view; writes (upsert, delete) are validated, logged durably and acknowledged
  with ``202``, then committed in the background (see :mod:`retrievo.server.service`).
- Write routes need the API key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared in
  constant time); with ``read_auth`` the read routes need it too. Without a configured key every write
  is refused.
- Limits on body size (413), batch size (413), number of queries (413), k, offset and query length
  (422). Every error has the JSON body ``{"error": {"status", "type", "message"}}``; library errors map
  to HTTP statuses in :data:`STATUS`.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import math
import secrets
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from retrievo import __version__
from retrievo.config import CollectionConfig
from retrievo.errors import (
    CollectionExistsError,
    ConfigError,
    FormatVersionError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    RetrievoError,
    ShardUnavailableError,
)
from retrievo.server.asgi import BodyLimit, CatchAll, FastSearch, RetrievoApp, error_body
from retrievo.server.schemas import (
    CollectionSummary,
    CommitResponse,
    CreateCollection,
    DocumentBody,
    ErrorBody,
    FacetsRequest,
    IdsRequest,
    MetadataPatch,
    RequestCache,
    SearchResponse,
    ServerSettings,
    WriteAck,
    search_body_model,
)
from retrievo.server.service import BusyError, CollectionService, Registry, UnavailableError
from retrievo.signals.registry import collection_methods
from retrievo.store.collection import CollectionLockedError

__all__ = ["STATUS", "app_from_env", "create_app"]

log = logging.getLogger("retrievo.server")

class SearchTimeout(RetrievoError):
    """A search ran past the server's time budget (``search_timeout``)."""


#: library error -> HTTP status (the most specific class wins; unknown RetrievoErrors are 400)
STATUS: dict[type[BaseException], int] = {
    BusyError: 429,
    SearchTimeout: 503,
    NotFoundError: 404,
    CollectionExistsError: 409,
    CollectionLockedError: 409,
    UnavailableError: 503,
    ShardUnavailableError: 503,
    MissingDependencyError: 503,
    FormatVersionError: 503,
    ConfigError: 400,
    InvalidInputError: 400,
    RetrievoError: 400,
}

SEARCH_CHUNK = 16  # queries searched between two looks at the time budget
INLINE_METHODS = ("bm25",)  # methods whose small searches run on the event loop (no query encoding)
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines")
PAGE = resources.files("retrievo.server") / "page"

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key")
_bearer = HTTPBearer(auto_error=False, description="the server's API key as a bearer token")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 422, 503)
}


ROOT_ENV = "RETRIEVO_SERVE_ROOT"
SETTINGS_ENV = "RETRIEVO_SERVE_SETTINGS"


def app_from_env() -> FastAPI:
    """The app of one worker process of ``retrievo serve --workers N`` (root, settings and plugins from the
    environment the command set)."""
    import os

    from retrievo.plugins import load_plugins, plugin_modules

    load_plugins(plugin_modules())
    return create_app(os.environ[ROOT_ENV], ServerSettings.model_validate_json(os.environ[SETTINGS_ENV]))


def create_app(root: str | Path, settings: ServerSettings | None = None, registry: Any = None) -> FastAPI:
    """The server app over the collections in folder ``root`` (each sub-folder is one collection), or over
    ``registry`` when given (a :class:`~retrievo.server.sharded.ShardedRegistry`: one sharded collection)."""
    settings = settings or ServerSettings()
    if registry is None:
        registry = Registry(Path(root), settings.commit_interval, max_pending=settings.max_pending,
                            screen_max_fpr=settings.screen_max_fpr, screen=settings.screen)
    started = time.time()
    counters = {"requests": 0, "searches": 0, "queries": 0, "writes": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # many request threads each multiply one query's block of vectors: one BLAS thread each (OpenBLAS
        # threads spin, and several callers at once make them fight over the same cores)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        await run_in_threadpool(registry.open_all)  # replays every write-ahead log before serving
        try:
            yield
        finally:
            await run_in_threadpool(registry.close)

    app = RetrievoApp(
        title="retrievo",
        version=__version__,
        summary="BM25, dense and hybrid retrieval over embedded collections",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.registry = registry
    app.state.settings = settings

    # -- errors --------------------------------------------------------------------------------------
    def public(message: str) -> str:
        """A message without the server's own paths (collections are named, not located)."""
        return message.replace(str(registry.root) + "/", "").replace(str(registry.root), "<root>")

    def error_response(exc: RetrievoError) -> JSONResponse:
        status = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)
        headers = {"Retry-After": str(int(math.ceil(exc.retry_after)))} if isinstance(exc, BusyError) else None
        return error_body(status, type(exc).__name__, public(str(exc).strip("'\"")), headers=headers)

    @app.exception_handler(RetrievoError)
    async def _retrievo_error(request: Request, exc: RetrievoError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            parts.append(f"{loc}: {e.get('msg', 'invalid')}")
        return error_body(422, "ValidationError", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge",
                 415: "UnsupportedMediaType", 422: "ValidationError"}
        return error_body(exc.status_code, kinds.get(exc.status_code, "HTTPError"), str(exc.detail),
                      headers=getattr(exc, "headers", None))

    # -- auth ----------------------------------------------------------------------------------------
    def _check_key(key: str | None, bearer: HTTPAuthorizationCredentials | None) -> None:
        provided = bearer.credentials if bearer is not None else key
        expected = settings.api_key
        if expected is None:
            raise HTTPException(401, "writes are disabled: the server has no API key configured",
                                headers={"WWW-Authenticate": "Bearer"})
        if not provided:
            raise HTTPException(401, "missing API key (Authorization: Bearer KEY or X-API-Key: KEY)",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(provided.encode("utf-8", "surrogatepass"), expected.encode()):
            raise HTTPException(401, "wrong API key", headers={"WWW-Authenticate": "Bearer"})

    async def write_auth(key: str | None = Security(_api_key_header),
                   bearer: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
        _check_key(key, bearer)

    async def read_auth(key: str | None = Security(_api_key_header),
                  bearer: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
        if settings.read_auth:
            _check_key(key, bearer)

    def summary(svc: CollectionService) -> CollectionSummary:
        coll = svc.reader
        return CollectionSummary(
            name=svc.name, documents=len(coll), generation=coll.generation, pending=svc.pending,
            dense_model=None if coll.config.dense is None else coll.config.dense.model,
            sparse_model=None if coll.config.sparse is None else coll.config.sparse.model,
            methods=collection_methods(coll.signals),
            error=public(svc.error or svc.disk_error or "") or None,
            locked=None if svc.locked is None or svc.sibling_writes() else public(svc.locked),
            quarantined=coll.quarantine_count(),
        )

    reads = [Depends(read_auth)] if settings.read_auth else []  # open reads resolve no dependency

    # -- page and health -------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((PAGE / "index.html").read_text(encoding="utf-8"))

    @app.get("/page/{asset}", include_in_schema=False)
    def page_asset(asset: str) -> Response:
        types = {"app.js": "text/javascript", "style.css": "text/css"}
        if asset not in types:
            raise HTTPException(404, f"no page asset {asset!r}")
        return Response((PAGE / asset).read_text(encoding="utf-8"), media_type=types[asset])

    @app.get("/v1/health", tags=["server"])
    def health() -> JSONResponse:
        failed = {s.name: public(s.error) for s in registry.services() if s.error}
        if failed:
            return error_body(503, "Unavailable", f"collection commit failed: {failed}")
        disk = {s.name: public(s.disk_error) for s in registry.services() if s.disk_error}
        if disk:
            return error_body(503, "Unavailable", f"the write-ahead log cannot be written (disk full?): {disk}")
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/v1/stats", tags=["server"], dependencies=reads)
    def stats() -> dict[str, Any]:
        return {
            "version": __version__, "uptime_s": round(time.time() - started, 3), **counters,
            "collections": {s.name: summary(s).model_dump() for s in registry.services()},
        }

    # -- collections ---------------------------------------------------------------------------------
    @app.get("/v1/collections", tags=["collections"], dependencies=reads)
    def list_collections() -> list[CollectionSummary]:
        return [summary(registry.get(n)) for n in registry.names()]

    @app.post("/v1/collections", status_code=201, tags=["collections"], dependencies=[Depends(write_auth)])
    def create_collection(body: CreateCollection) -> CollectionSummary:
        config = CollectionConfig.from_dict(body.config) if body.config else CollectionConfig()
        if not body.dense:
            config = config.replace(dense=None)
        return summary(registry.create(body.name, config))

    @app.get("/v1/collections/{name}", tags=["collections"], dependencies=reads)
    def collection_info(name: str) -> dict[str, Any]:
        svc = registry.get(name)
        info = svc.view().info()
        info["path"] = name  # where the server keeps it is not the client's business
        return {**summary(svc).model_dump(), "info": info}

    @app.get("/v1/collections/{name}/tree", tags=["collections"], dependencies=reads)
    def tree_node(name: str, node: int = Query(0, ge=0, le=2**31),
                  documents: int = Query(20, ge=0, le=1000)) -> dict[str, Any]:
        """A node of the semantic tree over the collection's dense vectors (node 0: the root): keyword summary,
        size, children, and a leaf's documents."""
        return registry.get(name).view().browse_tree(node, documents)

    @app.post("/v1/collections/{name}/facets", tags=["collections"], dependencies=reads)
    def facets(name: str, body: FacetsRequest) -> dict[str, Any]:
        """Per metadata field (default: all), its most frequent values with their document counts among the
        documents that pass ``filter``, and min/max for numbers: what a search page offers as filters."""
        return registry.get(name).view().facets(body.fields, body.filter, body.limit)

    @app.get("/v1/collections/{name}/quarantine", tags=["collections"], dependencies=reads)
    def quarantine(name: str, text_chars: int = Query(0, ge=0, le=100_000),
                   limit: int = Query(1000, ge=1, le=100_000)) -> list[dict[str, Any]]:
        """Documents the admission gate held back (never searchable), most suspicious first: id, suspicion,
        reasons, signs, held_at, and with ``text_chars`` their title and the start of their text."""
        return registry.get(name).view().quarantined(text_chars, limit)

    @app.post("/v1/collections/{name}/quarantine/release", status_code=202, tags=["collections"],
              dependencies=[Depends(write_auth)])
    def release_quarantined(name: str, body: IdsRequest) -> WriteAck:
        """Add quarantined documents to the collection (an explicit decision): logged like any write, searchable
        after the next commit; an id the quarantine does not hold is a 404 and nothing changes."""
        n, seq = registry.get(name).release(body.ids)
        counters["writes"] += 1
        return WriteAck(acknowledged=n, seq=seq)

    @app.post("/v1/collections/{name}/quarantine/drop", tags=["collections"], dependencies=[Depends(write_auth)])
    def drop_quarantined(name: str, body: IdsRequest) -> dict[str, int]:
        """Forget quarantined documents for good; an id the quarantine does not hold is a 404 and nothing changes."""
        return {"dropped": registry.get(name).drop_quarantined(body.ids)}

    # -- search ----------------------------------------------------------------------------------------
    search_body = search_body_model()  # from the request's option table, with the plugins loaded by now
    requests = RequestCache()

    async def search(name: str, req: Any) -> Response:
        work, inline = prepare_search(name, req, time.perf_counter())
        answer = work() if inline else await run_in_threadpool(work)
        return Response(answer, media_type="application/json")  # already in SearchResponse's shape

    def prepare_search(name: str, req: Any, t0: float) -> tuple[Any, bool]:
        """The checks of a search body; returns the work to run and whether it is small enough to run on the
        event loop (a small lexical search costs less than a hand-off to a worker thread; anything that
        encodes queries or reads much goes to the thread pool, where the model releases the GIL)."""
        if req.query_vector is not None and req.query_vectors is not None:
            raise HTTPException(422, "give at most one of 'query_vector' and 'query_vectors'")
        qvecs = [req.query_vector] if req.query_vector is not None else req.query_vectors
        if qvecs is not None and req.query is None and req.queries is None:
            if req.method != "dense":
                raise HTTPException(422, f"method {req.method!r} needs query texts; vectors alone serve method 'dense'")
            queries = [""] * len(qvecs)  # vector-only queries
        elif (req.query is None) == (req.queries is None):
            raise HTTPException(422, "give exactly one of 'query' and 'queries'")
        else:
            queries = [req.query] if req.query is not None else list(req.queries or [])
            if qvecs is not None and len(qvecs) != len(queries):
                raise HTTPException(422, f"{len(qvecs)} query vectors for {len(queries)} queries")
        if not queries:
            raise HTTPException(422, "queries: at least one query is required")
        if len(queries) > settings.max_queries:
            raise HTTPException(413, f"queries: {len(queries)} queries, the limit is {settings.max_queries}")
        for i, q in enumerate(queries):
            if len(q) > settings.max_query_chars:
                raise HTTPException(422, f"queries[{i}]: {len(q)} characters, the limit is {settings.max_query_chars}")
            if not q.strip() and qvecs is None:
                raise HTTPException(422, f"queries[{i}]: the query is empty")
        if req.k > settings.max_k:
            raise HTTPException(422, f"k: {req.k} is over the limit of {settings.max_k}")
        if req.offset > settings.max_offset:
            raise HTTPException(422, f"offset: {req.offset} is over the limit of {settings.max_offset}")
        request = requests.get(req, k=req.offset + req.k)
        svc = registry.get(name)
        work = functools.partial(run_search, t0, name, svc, req, request, queries, qvecs)
        return work, (req.method in INLINE_METHODS and len(queries) <= 8 and req.k + req.offset <= 100
                      and not req.rerank)

    def run_search(t0: float, name: str, svc: CollectionService, req: Any, request: Any, queries: list[str],
                   qvecs: Any) -> bytes:
        deadline = t0 + settings.search_timeout

        def in_time(what: str, *args: Any) -> None:
            if time.perf_counter() > deadline:  # (the message is formatted only then)
                raise SearchTimeout(f"the search ran past the server's budget of {settings.search_timeout:g} s "
                                    f"({what % args}); ask for fewer queries, a smaller k, or no text")

        coll = svc.view()
        snapshot = coll.snapshot()  # one generation for every chunk of the batch
        rows: list[list[tuple[str, float]]] = []
        probs: list[Any] = []
        fixes: list[dict[str, str] | None] = []  # what typo correction changed, per query
        expl: list[Any] = []  # with explain: per query, per hit, its standing in each list of the search
        at: list[Any] = []  # the hits' rows in the snapshot: their stored fields are read from that generation
        for c0 in range(0, len(queries), SEARCH_CHUNK):
            part = coll.searcher.search(queries[c0:c0 + SEARCH_CHUNK], request, snapshot=snapshot,
                                        query_vectors=None if qvecs is None else qvecs[c0:c0 + SEARCH_CHUNK])
            rows += [part.row(i) for i in range(len(part))]
            probs += [None if part.probabilities is None else part.probabilities[i] for i in range(len(part))]
            fixes += list(part.corrections) if part.corrections is not None else [None] * len(part)
            expl += list(part.explanations) if part.explanations is not None else [None] * len(part)
            at += [part.rows[i] for i in range(len(part))] if part.rows is not None else [None] * len(part)
            in_time("after %d of %d queries", c0 + len(part), len(queries))
        counters["searches"] += 1
        counters["queries"] += len(queries)
        pages = [r[req.offset:] for r in rows]
        docs: dict[str, Any] = {}
        if req.include_text or req.highlight:
            want = sorted({int(r) for qi, hits in enumerate(pages) if hits and at[qi] is not None
                           for r in at[qi][req.offset:req.offset + len(hits)]})
            docs = {d.id: d for d in coll.documents_at(want, snapshot) if d is not None}
        budget = settings.max_response_chars  # title + text characters over the whole answer
        results = []
        for qi, (q, hits) in enumerate(zip(queries, pages, strict=True)):
            terms = set(coll.analyzer.tokenize(q)) | {v for v in (fixes[qi] or {}).values() if v} \
                if req.highlight else set()
            if probs[qi] is None and expl[qi] is None and not docs:  # ids and scores only
                out = [{"id": doc_id, "score": score, "rank": rank}
                       for rank, (doc_id, score) in enumerate(hits, start=req.offset + 1)]
            else:
                out = []
                for rank, (doc_id, score) in enumerate(hits, start=req.offset + 1):
                    hit: dict[str, Any] = {"id": doc_id, "score": float(score), "rank": rank}
                    if probs[qi] is not None:
                        hit["probability"] = round(float(probs[qi][rank - 1]), 6)
                    if expl[qi] is not None:
                        hit["explain"] = expl[qi][rank - 1]
                    d = docs.get(doc_id)
                    if d is not None:
                        keep = max(0, min(settings.max_text_chars, budget - len(d.title)))
                        text = d.text[:keep]
                        budget -= len(d.title) + len(text)
                        if req.include_text:
                            hit.update(title=d.title, text=text, metadata=dict(d.metadata))
                            if len(text) < len(d.text):
                                hit["text_truncated"] = True
                        if req.highlight:
                            lim = settings.max_highlight_chars
                            spans = coll.analyzer.term_spans
                            hit["highlights"] = {"title": spans(d.title[:lim], terms, settings.max_spans),
                                                 "text": spans(text[:lim], terms, settings.max_spans)}
                    out.append(hit)
            results.append({"query": q, "hits": out} if fixes[qi] is None else
                           {"query": q, "hits": out, "corrections": fixes[qi]})
            in_time("while reading the hits of query %d", qi)
        body = {"collection": name, "generation": snapshot.generation, "method": req.method, "results": results,
                "took_ms": round((time.perf_counter() - t0) * 1000, 3)}
        return orjson.dumps(body)

    search.__annotations__["req"] = search_body  # a model built at run time: FastAPI reads it from here
    app.post("/v1/collections/{name}/search", tags=["search"], dependencies=reads,
             response_model=SearchResponse)(search)
    if not settings.read_auth and not settings.cors_origins:  # a valid search skips the framework
        app.fast_search = FastSearch(search_body, prepare_search, error_response, counters, settings.max_body_bytes)

    # -- documents -------------------------------------------------------------------------------------
    @app.get("/v1/collections/{name}/documents/{doc_id:path}", tags=["documents"],
             dependencies=reads)
    def get_document(name: str, doc_id: str) -> dict[str, Any]:
        return registry.get(name).view().get(doc_id).to_dict()

    @app.post("/v1/collections/{name}/lookup", tags=["documents"], dependencies=reads)
    def lookup_documents(name: str, body: IdsRequest) -> dict[str, Any]:
        """Several committed documents by id: ``{"documents": [...], "missing": [ids]}``."""
        if len(body.ids) > settings.max_batch:
            raise HTTPException(413, f"{len(body.ids)} ids in one request, the limit is {settings.max_batch}")
        found = registry.get(name).view().get_many(body.ids)
        return {"documents": [d.to_dict() for d in found if d is not None],
                "missing": [i for i, d in zip(body.ids, found, strict=True) if d is None]}

    doc_schema = DocumentBody.model_json_schema()
    docs_schema = {"type": "array", "items": doc_schema, "minItems": 1, "maxItems": settings.max_batch}
    upsert_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [
                    docs_schema,
                    {"type": "object", "properties": {"documents": docs_schema}, "required": ["documents"],
                     "additionalProperties": False},
                ]}},
                "application/x-ndjson": {"schema": {**docs_schema, "description": "one JSON document per line"}},
            },
        }
    }

    @app.post("/v1/collections/{name}/documents", status_code=202, tags=["documents"],
              dependencies=[Depends(write_auth)], openapi_extra=upsert_body)
    async def upsert_documents(name: str, request: Request, if_absent: bool = False,
                               screen: bool | None = None) -> WriteAck:
        """Add or replace documents (``?if_absent=true``: refuse ids the collection has, as ``add`` does;
        ``?screen=true``: through the admission gate, suspects quarantined; default: the server's ``screen``)."""
        svc = await run_in_threadpool(registry.get, name)
        raw = await request.body()
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype in NDJSON_TYPES:
            docs = _parse_ndjson(raw)
        elif ctype in ("application/json", ""):
            docs = _parse_json_docs(raw)
        else:
            raise HTTPException(415, f"Content-Type {ctype!r}: send application/json or application/x-ndjson")
        if len(docs) > settings.max_batch:
            raise HTTPException(413, f"{len(docs)} documents in one request, the limit is {settings.max_batch}")
        screened = settings.screen if screen is None else screen
        n, seq = await run_in_threadpool(svc.upsert, docs, if_absent, screened)
        counters["writes"] += 1
        return WriteAck(acknowledged=n, seq=seq, screened=screened)

    @app.patch("/v1/collections/{name}/documents/{doc_id:path}", status_code=202, tags=["documents"],
               dependencies=[Depends(write_auth)])
    def patch_document(name: str, doc_id: str, body: MetadataPatch) -> WriteAck:
        """Merge ``metadata`` into the document's (a null value removes a key) without resending its text or
        re-encoding it; the collection's pending writes are committed first, so the patch applies to the latest
        version of the document."""
        n, seq = registry.get(name).patch(doc_id, body.metadata)
        counters["writes"] += 1
        return WriteAck(acknowledged=n, seq=seq)

    @app.delete("/v1/collections/{name}/documents/{doc_id:path}", status_code=202, tags=["documents"],
                dependencies=[Depends(write_auth)])
    def delete_document(name: str, doc_id: str) -> WriteAck:
        n, seq = registry.get(name).delete([doc_id])
        counters["writes"] += 1
        return WriteAck(acknowledged=n, seq=seq)

    @app.post("/v1/collections/{name}/delete", status_code=202, tags=["documents"],
              dependencies=[Depends(write_auth)])
    def delete_documents(name: str, body: IdsRequest) -> WriteAck:
        if len(body.ids) > settings.max_batch:
            raise HTTPException(413, f"{len(body.ids)} ids in one request, the limit is {settings.max_batch}")
        n, seq = registry.get(name).delete(body.ids)
        counters["writes"] += 1
        return WriteAck(acknowledged=n, seq=seq)

    @app.post("/v1/collections/{name}/snapshots", status_code=201, tags=["collections"],
              dependencies=[Depends(write_auth)])
    def create_snapshot(name: str) -> dict[str, Any]:
        """A backup of the collection's last commit, kept under the data folder's ``.snapshots/<name>/`` (a
        collection folder: restore by stopping the server and moving it into place)."""
        from retrievo.store.backup import backup

        svc = registry.get(name)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        folder = Path(registry.root) / ".snapshots" / name
        folder.mkdir(parents=True, exist_ok=True)
        snap = f"{name}-g{svc.reader.generation}-{stamp}-{secrets.token_hex(3)}"
        out = backup(svc.path, folder / snap)
        return {"snapshot": snap, "generation": out["generation"], "documents": out["documents"],
                "bytes": out["bytes"]}

    @app.get("/v1/collections/{name}/snapshots", tags=["collections"], dependencies=[Depends(write_auth)])
    def list_snapshots(name: str) -> list[str]:
        registry.get(name)
        folder = Path(registry.root) / ".snapshots" / name
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if folder.is_dir() else []

    @app.post("/v1/collections/{name}/commit", tags=["documents"], dependencies=[Depends(write_auth)])
    def commit(name: str) -> CommitResponse:
        svc = registry.get(name)
        generation = svc.commit()
        return CommitResponse(generation=generation, documents=len(svc.reader))

    # middleware, innermost first: the body limit, CORS, the last-resort handler (FastSearch is in front)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(CatchAll, counters=counters)  # outermost of ours: whatever escapes is answered here
    return app


def _parse_json_docs(raw: bytes) -> list[Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"body: not valid JSON: {exc}") from exc
    except RecursionError:
        raise InvalidInputError("body: nested too deeply") from None
    if isinstance(data, dict) and set(data) == {"documents"}:
        data = data["documents"]
    if not isinstance(data, list):
        raise InvalidInputError('body: expected a JSON array of documents or {"documents": [...]}')
    return data


def _parse_ndjson(raw: bytes) -> list[Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"body: not UTF-8: {exc}") from exc
    docs = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"body line {lineno}: not valid JSON: {exc.msg}") from exc
        except RecursionError:
            raise InvalidInputError(f"body line {lineno}: nested too deeply") from None
    return docs
