"""Core value types: a document and the one result type of every search."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrievo.errors import DocumentError

__all__ = ["MAX_METADATA_BYTES", "MAX_METADATA_DEPTH", "MAX_SAFE_INTEGER", "Document", "SearchResults"]


#: how deep metadata may nest (objects and lists), and how large it may be as JSON
MAX_METADATA_DEPTH = 16
MAX_METADATA_BYTES = 256 * 1024
#: integers in metadata stay within what a JSON number holds exactly everywhere (I-JSON, RFC 7493)
MAX_SAFE_INTEGER = 2**53 - 1


def _check_unicode(s: str, where: str) -> None:
    """``s`` encodes as UTF-8 (no lone surrogates, which JSON, SQLite and the write-ahead log cannot hold)."""
    if s.isascii():
        return
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DocumentError(f"{where} is not valid Unicode text: {s[exc.start]!r} at character {exc.start} "
                            "(a lone surrogate)") from None


def _check_json(value: Any, where: str) -> None:
    """Metadata that every later read can handle: nesting, integer range, finite numbers, valid strings
    (checked without recursion, so any depth is refused cleanly)."""
    stack = [(value, 1, "")]
    while stack:
        v, depth, path = stack.pop()
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            if abs(v) > MAX_SAFE_INTEGER:
                raise DocumentError(f"{where}{path}: the integer {v} is outside ±2^53 (use a string or a float)")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise DocumentError(f"{where}{path}: {v} is not a finite number")
        elif isinstance(v, str):
            _check_unicode(v, f"{where}{path}")
        elif isinstance(v, Mapping | list | tuple):
            if depth > MAX_METADATA_DEPTH:
                raise DocumentError(f"{where}{path}: nested deeper than {MAX_METADATA_DEPTH} levels")
            items = v.items() if isinstance(v, Mapping) else enumerate(v)
            for k, x in items:
                if isinstance(v, Mapping):
                    if not isinstance(k, str):
                        raise DocumentError(f"{where}{path}: key {k!r} is not a string")
                    _check_unicode(k, f"{where}{path}: a key")
                stack.append((x, depth + 1, f"{path}.{k}" if isinstance(v, Mapping) else f"{path}[{k}]"))
        else:
            raise DocumentError(f"{where}{path}: {type(v).__name__} is not a JSON value")


@dataclass(frozen=True, slots=True)
class Document:
    """A document: a unique string id, an optional title, a text and JSON metadata."""

    id: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_any(cls, obj: Document | Mapping[str, Any], where: str = "document") -> Document:
        """Build and validate a document from a mapping (keys ``id``/``_id``, ``title``, ``text``, ``metadata``).

        Raises:
            DocumentError: naming ``where`` and the offending field.
        """
        if isinstance(obj, Document):
            doc = obj
        elif isinstance(obj, Mapping):
            doc_id = obj.get("id", obj.get("_id"))
            extra = {k: v for k, v in obj.items() if k not in ("id", "_id", "title", "text", "metadata")}
            meta = obj.get("metadata")
            if meta is None:
                meta = {}
            if not isinstance(meta, Mapping):
                raise DocumentError(f"{where}: field 'metadata' must be a JSON object, got {type(meta).__name__}")
            if extra:
                meta = {**extra, **meta}
            doc = cls(id=doc_id, text=obj.get("text"), title=obj.get("title") or "", metadata=meta)  # type: ignore[arg-type]
        else:
            raise DocumentError(f"{where}: expected a mapping with 'id' and 'text', got {type(obj).__name__}")
        doc.validate(where)
        return doc

    def validate(self, where: str = "document") -> None:
        """Check every field; what passes can be stored, logged, searched and returned as JSON.

        Raises:
            DocumentError: naming ``where``, the id and the field: an empty or non-string id, text or title;
                text that is not valid Unicode (a lone surrogate); metadata that is not a JSON object of
                finite numbers, integers within ±2^53, valid strings, nested at most
                :data:`MAX_METADATA_DEPTH` deep and at most :data:`MAX_METADATA_BYTES` as JSON.
        """
        if not isinstance(self.id, str) or not self.id.strip():
            raise DocumentError(f"{where}: field 'id' must be a non-empty string, got {self.id!r}"[:300])
        _check_unicode(self.id, f"{where}: field 'id'")
        if not isinstance(self.text, str):
            raise DocumentError(f"{where} (id {self.id!r}): field 'text' must be a string, got {type(self.text).__name__}")
        if not isinstance(self.title, str):
            raise DocumentError(f"{where} (id {self.id!r}): field 'title' must be a string")
        if not (self.text.strip() or self.title.strip()):
            raise DocumentError(f"{where} (id {self.id!r}): field 'text' is empty (and so is 'title')")
        _check_unicode(self.text, f"{where} (id {self.id!r}): field 'text'")
        _check_unicode(self.title, f"{where} (id {self.id!r}): field 'title'")
        for key in self.metadata:
            if not isinstance(key, str) or not key or key.startswith("$"):
                raise DocumentError(f"{where} (id {self.id!r}): metadata key {key!r} must be a non-empty string not starting with '$'")
        _check_json(self.metadata, f"{where} (id {self.id!r}): field 'metadata'")
        try:
            size = len(json.dumps(dict(self.metadata), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise DocumentError(f"{where} (id {self.id!r}): field 'metadata' is not JSON-serialisable: {exc}") from exc
        if size > MAX_METADATA_BYTES:
            raise DocumentError(f"{where} (id {self.id!r}): field 'metadata' is {size} bytes as JSON, over the limit of "
                                f"{MAX_METADATA_BYTES}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``{"id", "title", "text", "metadata"}`` that :meth:`from_any` reads back."""
        return {"id": self.id, "title": self.title, "text": self.text, "metadata": dict(self.metadata)}

    def content(self, fields: tuple[str, ...] = ("title", "text")) -> str:
        """The text that gets indexed: the chosen fields joined by a space (BEIR's convention); a name other
        than ``title``/``text`` reads that metadata field (:meth:`field_text`)."""
        parts = [self.field_text(f) for f in fields]
        return " ".join(p for p in parts if p).strip()

    def field_text(self, name: str) -> str:
        """The text of one field: ``title``, ``text``, or a metadata key whose value is a string or a list of
        strings (joined by newlines); anything else, or a missing key, is empty."""
        if name == "title":
            return self.title
        if name == "text":
            return self.text
        value = self.metadata.get(name)
        if isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)):
            return "\n".join(v for v in value if isinstance(v, str))
        return ""


@dataclass(frozen=True)
class SearchResults:
    """Top-k results of a batch of queries, shaped ``(n_queries, k)``.

    Rows shorter than ``k`` (fewer matching documents) are padded: ``ids`` with ``""`` and ``scores`` with
    ``-inf``; ``counts[i]`` says how many entries of row ``i`` are real. A single query is a batch of one.

    Attributes:
        ids: object array of document ids, ``(n_queries, k)``.
        scores: float32 array, ``(n_queries, k)``, best first.
        counts: int array, ``(n_queries,)``.
        query_ids: the query ids (``"0"``, ``"1"``, … when none were given).
        method: the retrieval method that produced them.
        probabilities: ``(n_queries, k)`` calibrated probabilities of relevance, when a calibrated cut-off
            was asked for (``search(..., min_probability=...)``), else ``None``.
        generation: the collection generation the results were read from (``None`` when not from one).
        rows: ``(n_queries, k)`` row numbers of the results in that generation (``-1`` padding), with which
            ``Collection.documents_at`` returns the documents as that generation stored them.
        missing_shards: on a sharded collection searched with ``allow_partial=True``, the shards that did not
            answer (their documents are absent from these results); empty when every shard answered.
        corrections: with ``correct_typos``, per query what typo correction changed among its analysed terms,
            ``{term: replacement}`` (``""``: no replacement found, the term was left out); else ``None``.
        explanations: with ``explain``, per query, per hit (best first): its rank and score in each list the
            search made — every signal's, then each stage's (see :mod:`retrievo.search.explain`); else ``None``.
    """

    ids: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    query_ids: tuple[str, ...]
    method: str = ""
    probabilities: np.ndarray | None = None
    generation: int | None = None
    rows: np.ndarray | None = None
    missing_shards: tuple[int, ...] = ()
    corrections: tuple[dict[str, str], ...] | None = None
    explanations: tuple[list[dict[str, Any]], ...] | None = None

    def __len__(self) -> int:
        return len(self.query_ids)

    def __iter__(self) -> Iterator[list[tuple[str, float]]]:
        for i in range(len(self)):
            yield self.row(i)

    def row(self, i: int) -> list[tuple[str, float]]:
        """``[(doc_id, score), …]`` of query ``i``, best first, without padding."""
        n = int(self.counts[i])
        return list(zip(map(str, self.ids[i, :n].tolist()), self.scores[i, :n].tolist(), strict=True))

    def to_run(self) -> dict[str, dict[str, float]]:
        """A run dict ``{query_id: {doc_id: score}}`` as ir-measures / pytrec_eval take it."""
        return {qid: dict(self.row(i)) for i, qid in enumerate(self.query_ids)}

    def to_trec(self, tag: str | None = None) -> str:
        """The results as TREC run lines: ``qid Q0 docid rank score tag``."""
        tag = tag or (self.method or "retrievo")
        lines = []
        for i, qid in enumerate(self.query_ids):
            for rank, (doc_id, score) in enumerate(self.row(i), start=1):
                lines.append(f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}")
        return "\n".join(lines) + ("\n" if lines else "")

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready: one ``{"query_id", "results": [{"id", "score"(, "probability", "explain")}, …]}`` per query."""
        out = []
        for i, qid in enumerate(self.query_ids):
            hits = [{"id": d, "score": s} for d, s in self.row(i)]
            if self.probabilities is not None:
                for j, h in enumerate(hits):
                    h["probability"] = float(self.probabilities[i, j])
            if self.explanations is not None:
                for h, e in zip(hits, self.explanations[i], strict=True):
                    h["explain"] = e
            out.append({"query_id": qid, "results": hits})
        return out

    def to_arrow(self) -> Any:
        """The results as a ``pyarrow.Table`` in long form, one row per hit: ``query_id``, ``rank`` (from 1),
        ``id``, ``score`` (and ``probability`` after a calibrated cut-off) — for LanceDB / Polars / DuckDB users."""
        import pyarrow as pa

        n = [int(c) for c in self.counts]
        mask = np.arange(self.ids.shape[1] if self.ids.ndim == 2 else 0)[None, :] < np.asarray(n)[:, None]
        cols: dict[str, Any] = {
            "query_id": pa.array(np.repeat(np.asarray(self.query_ids, dtype=object), n).tolist(), pa.string()),
            "rank": pa.array(np.concatenate([np.arange(1, c + 1) for c in n]) if n else [], pa.int32()),
            "id": pa.array(self.ids[mask].tolist() if len(n) else [], pa.string()),
            "score": pa.array(self.scores[mask] if len(n) else [], pa.float32()),
        }
        if self.probabilities is not None:
            cols["probability"] = pa.array(np.asarray(self.probabilities)[mask], pa.float32())
        return pa.table(cols)

    def to_pandas(self) -> Any:
        """The results as a ``pandas.DataFrame`` (the columns of :meth:`to_arrow`)."""
        try:
            import pandas  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            from retrievo.errors import MissingDependencyError

            raise MissingDependencyError("SearchResults.to_pandas needs pandas: pip install pandas") from exc
        return self.to_arrow().to_pandas()

    @classmethod
    def from_lists(
        cls,
        rows: list[list[tuple[str, float]]],
        k: int,
        query_ids: tuple[str, ...],
        method: str = "",
    ) -> SearchResults:
        n = len(rows)
        ids = np.full((n, k), "", dtype=object)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        counts = np.zeros(n, dtype=np.int64)
        for i, row in enumerate(rows):
            row = row[:k]
            counts[i] = len(row)
            for j, (d, s) in enumerate(row):
                ids[i, j] = d
                scores[i, j] = s
        return cls(ids=ids, scores=scores, counts=counts, query_ids=tuple(query_ids), method=method)
