"""A Python client of the HTTP server, with the verbs and result types of :class:`~retrievo.Collection`.

>>> client = Client("http://127.0.0.1:8000", api_key="...")        # doctest: +SKIP
>>> sci = client.collection("scifact")                             # doctest: +SKIP
>>> sci.upsert([{"id": "d1", "text": "Aspirin reduces fever."}])   # doctest: +SKIP
>>> sci.commit()                                                   # doctest: +SKIP
>>> sci.search(["fever"], k=10, method="hybrid").row(0)            # doctest: +SKIP

Searches take the keywords of :meth:`Collection.search` or a whole :class:`~retrievo.request.SearchRequest`
and return :class:`~retrievo.types.SearchResults` (ids, scores, counts, probabilities, generation); errors
come back as the library's own exception types (``FilterError``, ``NotFoundError``, ``BusyError`` …),
named by the server's error body. One HTTP connection is kept open and reused (httpx).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np

from retrievo import errors
from retrievo.request import SearchRequest
from retrievo.types import Document, SearchResults

__all__ = ["Client", "RemoteCollection"]


def _error_class(kind: str) -> type[errors.RetrievoError]:
    from retrievo.server.service import BusyError, UnavailableError
    from retrievo.store.collection import CollectionLockedError

    known: dict[str, type[errors.RetrievoError]] = {
        "BusyError": BusyError, "UnavailableError": UnavailableError, "CollectionLockedError": CollectionLockedError}
    cls = known.get(kind) or getattr(errors, kind, None)
    return cls if isinstance(cls, type) and issubclass(cls, errors.RetrievoError) else errors.RetrievoError


class Client:
    """The collections of one server.

    Args:
        url: the server's address, e.g. ``http://127.0.0.1:8000``.
        api_key: the key for writes (and reads when the server requires it).
        timeout: seconds per request (commits wait for the encoding of what they commit).
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call of the API; the JSON answer, or the library error the server named."""
        r = self._http.request(method, path, **kwargs)
        if r.status_code >= 400:
            try:
                body = r.json()["error"]
                kind, message = body["type"], body["message"]
            except (ValueError, KeyError, TypeError):
                kind, message = "RetrievoError", f"HTTP {r.status_code}: {r.text[:300]}"
            cls = _error_class(kind)
            if kind == "BusyError":
                raise cls(message, float(r.headers.get("Retry-After", 1)))  # type: ignore[call-arg]
            raise cls(message)
        return r.json()

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/v1/health")

    def collections(self) -> list[dict[str, Any]]:
        """A summary of every collection (documents, generation, pending writes, models, state)."""
        return self.request("GET", "/v1/collections")

    def create(self, name: str, config: Any = None) -> RemoteCollection:
        """Create a collection (``config``: a :class:`~retrievo.config.CollectionConfig` or its dict)."""
        body: dict[str, Any] = {"name": name}
        if config is not None:
            body["config"] = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        self.request("POST", "/v1/collections", json=body)
        return self.collection(name)

    def collection(self, name: str) -> RemoteCollection:
        return RemoteCollection(self, name)


class RemoteCollection:
    """One served collection, with the verbs of :class:`~retrievo.Collection` (writes are acknowledged
    when logged, and searchable after :meth:`commit` or the server's next background commit)."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self._base = f"/v1/collections/{name}"

    def info(self) -> dict[str, Any]:
        return self.client.request("GET", self._base)

    def __len__(self) -> int:
        return int(self.info()["documents"])

    # -- writes ------------------------------------------------------------------------------------
    def _docs(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any) -> list[dict[str, Any]]:
        out = [d.to_dict() if isinstance(d, Document) else dict(d) for d in docs]
        if vectors is not None:
            for d, v in zip(out, np.asarray(vectors, dtype=np.float32).tolist(), strict=True):
                d["vector"] = v
        return out

    def upsert(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any = None,
               screen: bool | None = None) -> int:
        """Add or replace documents (``vectors``: one dense vector per document, computed elsewhere); returns
        how many were acknowledged. ``screen``: through the admission gate (suspects quarantined at commit, see
        :meth:`quarantined`); ``None``: the server's setting."""
        return int(self.client.request("POST", self._base + "/documents", params=self._screen(screen),
                                       json=self._docs(docs, vectors))["acknowledged"])

    def add(self, docs: Iterable[Document | Mapping[str, Any]], vectors: Any = None,
            screen: bool | None = None) -> int:
        """Add new documents; an id the collection has (committed or acknowledged) is a
        :class:`~retrievo.errors.DuplicateIdError` and nothing is logged."""
        return int(self.client.request("POST", self._base + "/documents",
                                       params={"if_absent": "true", **self._screen(screen)},
                                       json=self._docs(docs, vectors))["acknowledged"])

    @staticmethod
    def _screen(screen: bool | None) -> dict[str, str]:
        return {} if screen is None else {"screen": "true" if screen else "false"}

    def update_metadata(self, updates: Mapping[str, Mapping[str, Any]]) -> int:
        """Merge ``{id: {key: value}}`` into documents' metadata on the server (``None`` removes a key), without
        resending their text (as :meth:`retrievo.Collection.update_metadata`); returns how many were acknowledged."""
        return sum(int(self.client.request("PATCH", f"{self._base}/documents/{quote(str(i), safe='')}",
                                           json={"metadata": dict(m)})["acknowledged"]) for i, m in updates.items())

    def delete(self, ids: Sequence[str]) -> int:
        return int(self.client.request("POST", self._base + "/delete", json={"ids": list(ids)})["acknowledged"])

    def commit(self) -> int:
        """Wait until every acknowledged write is searchable; returns the generation."""
        return int(self.client.request("POST", self._base + "/commit")["generation"])

    # -- reads -------------------------------------------------------------------------------------
    def get(self, doc_id: str) -> Document:
        return Document.from_any(self.client.request("GET", f"{self._base}/documents/{doc_id}"))

    def snapshot(self) -> dict[str, Any]:
        """A backup of the collection's last commit on the server (``{"snapshot", "generation", "documents",
        "bytes"}``; kept in the server's data folder under ``.snapshots/``)."""
        return self.client.request("POST", self._base + "/snapshots")

    def snapshots(self) -> list[str]:
        return self.client.request("GET", self._base + "/snapshots")

    def quarantined(self, text_chars: int = 0) -> list[dict[str, Any]]:
        """Documents the admission gate held back, with their reasons (as :meth:`retrievo.Collection.quarantined`;
        ``text_chars``: with their title and the start of their text)."""
        return self.client.request("GET", self._base + "/quarantine", params={"text_chars": text_chars})

    def release(self, ids: Sequence[str]) -> int:
        """Add quarantined documents to the collection (acknowledged; searchable after the next commit)."""
        return int(self.client.request("POST", self._base + "/quarantine/release", json={"ids": list(ids)})["acknowledged"])

    def drop_quarantined(self, ids: Sequence[str]) -> int:
        """Forget quarantined documents for good."""
        return int(self.client.request("POST", self._base + "/quarantine/drop", json={"ids": list(ids)})["dropped"])

    def facets(self, fields: Sequence[str] | str | None = None, filter: Mapping[str, Any] | None = None,
               limit: int = 10) -> dict[str, dict[str, Any]]:
        """Metadata values and their document counts, as :meth:`retrievo.Collection.facets` gives them."""
        body: dict[str, Any] = {"limit": limit, "filter": None if filter is None else dict(filter),
                                "fields": None if fields is None else [fields] if isinstance(fields, str) else list(fields)}
        return self.client.request("POST", self._base + "/facets", json=body)

    def browse_tree(self, node: int = 0, documents: int = 20) -> dict[str, Any]:
        """A node of the semantic tree, as :meth:`retrievo.Collection.browse_tree` gives it."""
        return self.client.request("GET", self._base + "/tree", params={"node": node, "documents": documents})

    def get_many(self, ids: Sequence[str]) -> list[Document | None]:
        found = self.client.request("POST", self._base + "/lookup", json={"ids": list(ids)})["documents"]
        by_id = {d["id"]: Document.from_any(d) for d in found}
        return [by_id.get(i) for i in ids]

    def search(self, queries: str | Sequence[str] | None, k: int = 10, method: str = "bm25",
               query_ids: Sequence[str] | None = None, query_vectors: Any = None,
               request: SearchRequest | None = None, **settings: Any) -> SearchResults:
        """Search as :meth:`Collection.search` does (the same keywords, or a whole ``request``)."""
        req = request or SearchRequest(method=method, k=k, **settings)
        body: dict[str, Any] = {"include_text": False, "highlight": False}
        for name, value in req.to_dict().items():  # the body's search settings are the request's JSON form
            if name == "options":
                body.update(value)
            elif value is not None and value is not False:
                body[name] = value
        body["k"] = req.k
        if isinstance(queries, str):
            queries = [queries]
        if queries is not None:
            body["queries"] = list(queries)
        if query_vectors is not None:
            body["query_vectors"] = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32)).tolist()
        data = self.client.request("POST", self._base + "/search", json=body)
        rows = [[(h["id"], float(h["score"])) for h in r["hits"]] for r in data["results"]]
        qids = tuple(query_ids) if query_ids is not None else tuple(str(i) for i in range(len(rows)))
        res = SearchResults.from_lists(rows, req.k, qids, data["method"])
        probabilities = None
        if any("probability" in h for r in data["results"] for h in r["hits"]):
            probabilities = np.zeros((len(rows), req.k), dtype=np.float64)
            for i, r in enumerate(data["results"]):
                for j, h in enumerate(r["hits"]):
                    probabilities[i, j] = h.get("probability", 0.0)
        fixes = [r.get("corrections") for r in data["results"]]
        explanations = tuple([h["explain"] for h in r["hits"]] for r in data["results"]) if req.explain else None
        return SearchResults(ids=res.ids, scores=res.scores, counts=res.counts, query_ids=qids, method=res.method,
                             probabilities=probabilities, generation=data["generation"],
                             corrections=None if all(f is None for f in fixes) else tuple(f or {} for f in fixes),
                             explanations=explanations)

