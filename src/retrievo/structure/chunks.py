"""Long documents: sentence-aware chunks with overlap, each kept with its situation, searched at chunk level
and answered at document level.

**Chunking** (:func:`chunk_document`): the text is split into sentences (a punctuation rule that keeps
abbreviations such as ``e.g.`` and decimals together) and sentences are packed into windows of at most
``max_words`` words; each window after the first starts with the last sentences of the one before, up to
``overlap_words`` words. A sentence longer than a window is cut into windows of words. Each chunk is a document
``"{id}#{n}"`` with the document's title and metadata plus ``parent`` (the document's id), ``chunk`` (its
number), ``start`` / ``end`` (character offsets of the chunk in the document's text: the passage to show), and
its situation (SitEmb, Wu et al. 2025, without its trained model): ``ctx_before`` — the document's first
sentence and the words just before the chunk — and ``ctx_after`` — the words just after it, ``context_words`` in
all. :func:`long_document_config` makes a collection whose dense model reads ``title`` and ``text`` — or, with
``situated=True``, ``title``, ``ctx_before``, ``text``, ``ctx_after`` (within its window) — while BM25 reads the
chunk alone.

**Updates** (:func:`upsert_long_documents`): a document's new chunks replace all of its old ones — the old
chunk ids that the new version no longer has are deleted and the rest upserted before one commit, so a reader
sees either the old document or the new one, never a mix.

**Search**: ``collection.search(q, collapse="parent")`` — the collapse stage (:mod:`retrievo.search.collapse`)
keeps each document's best chunk, scored by ``collapse_score`` (``max``, ``sum``, ``top2``); the hit's id is
the chunk's, its metadata names the document and the passage (:func:`passages` reads them).

Why by hand: chunkers in LangChain / LlamaIndex pull their frameworks in; this is a few dozen lines over a
sentence rule, and keeping offsets and context is what the store needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from retrievo.errors import InvalidInputError
from retrievo.types import Document

__all__ = ["ChunkConfig", "chunk_document", "long_document_config", "passages", "split_sentences",
           "upsert_long_documents"]

_SENT = re.compile(r"(?<=[.!?])([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|et al|etc|vs|Fig|fig|Dr|Mr|Mrs|Ms|No|approx|ca)\.$")


@dataclass(frozen=True)
class ChunkConfig:
    """How long documents are cut (see the module docstring)."""

    max_words: int = 120
    overlap_words: int = 30
    context_words: int = 60
    situated: bool = True

    def __post_init__(self) -> None:
        if self.max_words < 10:
            raise InvalidInputError(f"ChunkConfig.max_words must be >= 10, got {self.max_words}")
        if not (0 <= self.overlap_words < self.max_words):
            raise InvalidInputError(f"ChunkConfig.overlap_words must be in [0, max_words), got {self.overlap_words}")
        if self.context_words < 0:
            raise InvalidInputError(f"ChunkConfig.context_words must be >= 0, got {self.context_words}")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (whitespace between them belongs to neither)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENT.finditer(text):
        if _ABBREV.search(text[start:m.start()]):
            continue
        spans.append((start, m.start() + len(m.group(1))))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _words(text: str, a: int, b: int) -> list[tuple[int, int]]:
    return [(a + m.start(), a + m.end()) for m in re.finditer(r"\S+", text[a:b])]


def _windows(text: str, cfg: ChunkConfig) -> list[tuple[int, int]]:
    """Chunk spans: sentences packed into windows, overlapping by whole sentences."""
    units: list[list[tuple[int, int]]] = []  # each unit: a sentence's word spans (long sentences cut)
    for a, b in split_sentences(text):
        w = _words(text, a, b)
        for i in range(0, len(w), cfg.max_words):
            units.append(w[i:i + cfg.max_words])
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, n = i, 0
        while j < len(units) and (n + len(units[j]) <= cfg.max_words or j == i):
            n += len(units[j])
            j += 1
        spans.append((units[i][0][0], units[j - 1][-1][1]))
        if j >= len(units):
            break
        # the next window starts with the last sentences of this one, up to overlap_words
        back, m = j, 0
        while back - 1 > i and m + len(units[back - 1]) <= cfg.overlap_words:
            back -= 1
            m += len(units[back])
        i = back
    return spans


def chunk_document(doc: Document, cfg: ChunkConfig | None = None) -> list[Document]:
    """A document as its chunk documents (see the module docstring); a short one gives a single chunk."""
    cfg = cfg or ChunkConfig()
    text = doc.text
    spans = _windows(text, cfg) or [(0, len(text))]
    sents = split_sentences(text)
    lead = text[sents[0][0]:sents[0][1]] if sents else ""
    out = []
    for n, (a, b) in enumerate(spans):
        meta = {k: v for k, v in doc.metadata.items()
                if k not in ("parent", "chunk", "start", "end", "ctx_before", "ctx_after")}
        meta.update(parent=doc.id, chunk=n, start=a, end=b)
        if cfg.situated and cfg.context_words:
            before_words = _words(text, 0, a)[-(cfg.context_words // 2):]
            after_words = _words(text, b, len(text))[:cfg.context_words - len(before_words)]
            before = text[before_words[0][0]:a].strip() if before_words else ""
            if a > 0 and lead and not text[:a].rstrip().endswith(lead) and not before.startswith(lead):
                before = f"{lead} … {before}" if before else lead
            meta["ctx_before"] = before
            meta["ctx_after"] = text[b:after_words[-1][1]].strip() if after_words else ""
        out.append(Document(id=f"{doc.id}#{n}", text=text[a:b], title=doc.title, metadata=meta))
    return out


def long_document_config(situated: bool = False, **kwargs: Any) -> Any:
    """A :class:`~retrievo.config.CollectionConfig` for chunked long documents: the dense model reads each chunk
    with its title, or also in its situation (``situated``); BM25 reads the chunk. Off by default: with the
    bundled MiniLM (not trained to read a chunk in context, as SitEmb's models are) the situation did not find
    more documents and returned the right passage less often on the long-document set of
    ``benchmarks/bench_longdocs.py`` (RESULTS.md "longdocs")."""
    from retrievo.config import CollectionConfig, DenseConfig

    fields = ("title", "ctx_before", "text", "ctx_after") if situated else ("title", "text")
    dense = kwargs.pop("dense", None) or DenseConfig()
    return CollectionConfig(dense=dense.replace(fields=fields), **kwargs)


def upsert_long_documents(collection: Any, docs: Iterable[Document | dict], cfg: ChunkConfig | None = None,
                          commit: bool = True) -> int:
    """Chunk ``docs`` and make them replace every earlier version's chunks (see the module docstring).

    Returns:
        the number of chunks written.
    """
    cfg = cfg or ChunkConfig()
    docs = [Document.from_any(d, where=f"long document {i}") for i, d in enumerate(docs)]
    chunks = [c for d in docs for c in chunk_document(d, cfg)]
    parents = {d.id for d in docs}
    stale = _chunk_ids(collection, parents) - {c.id for c in chunks}
    if stale:
        collection.delete(sorted(stale))
    collection.upsert(chunks)
    if commit:
        collection.commit()
    return len(chunks)


def _chunk_ids(collection: Any, parents: set[str]) -> set[str]:
    """Ids of the stored chunks of ``parents``."""
    snap = collection.snapshot()
    if not snap.segments or not parents:
        return set()
    out: set[str] = set()
    ordered = sorted(parents)
    for i in range(0, len(ordered), 500):  # $in is bounded
        mask = collection.filter_mask({"parent": {"$in": ordered[i:i + 500]}}, snap)
        out.update(str(x) for x in snap.ids[mask])
    return out


def passages(collection: Any, results: Any, query: int = 0) -> list[dict[str, Any]]:
    """The hits of one query of a collapsed search as ``{id (the document's), score, chunk, start, end,
    passage}``."""
    ids = [d for d, _ in results.row(query)]
    scores = [s for _, s in results.row(query)]
    docs = collection.documents_at(results.rows[query, :len(ids)].tolist(), None) if results.rows is not None else \
        [collection.get(d) for d in ids]
    out = []
    for d, s, chunk in zip(ids, scores, docs, strict=True):
        meta = chunk.metadata if chunk is not None else {}
        out.append({"id": meta.get("parent", d), "score": float(s), "chunk": meta.get("chunk"),
                    "start": meta.get("start"), "end": meta.get("end"),
                    "passage": chunk.text if chunk is not None else ""})
    return out


def parents_of(ids: Sequence[str]) -> list[str]:
    """Document ids of chunk ids (``"doc#3"`` → ``"doc"``)."""
    return [i.rsplit("#", 1)[0] for i in ids]
