"""Document sources: BEIR folders, JSON Lines (optionally gzipped), CSV and Parquet.

Every loader yields validated :class:`~retrievo.types.Document` objects and reports bad input with the
file and line (or row) it came from. Column names are configurable with a :class:`FieldMap`; columns that
are not id/title/text become metadata. CSV cells are text: a metadata column whose every non-empty cell is a
plain integer (no leading zeros, so codes such as ``007`` stay text) becomes ``int``, one whose cells are all
decimal numbers becomes ``float`` (empty cells are then left out), so numeric filters work on a CSV corpus as on
JSON Lines.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrievo.errors import DocumentError, DuplicateIdError, NotFoundError, SourceFormatError
from retrievo.types import Document

__all__ = ["FieldMap", "beir_corpus", "iter_source", "load_documents", "iter_jsonl", "iter_csv", "iter_parquet", "open_text"]


@dataclass(frozen=True, kw_only=True)
class FieldMap:
    """Which source fields hold the id, title and text (``id`` falls back to ``_id``)."""

    id: str = "id"
    title: str = "title"
    text: str = "text"
    metadata: tuple[str, ...] | None = None  # None: every other field

    def to_document(self, record: dict[str, Any], where: str) -> Document:
        id_key = self.id if self.id in record else ("_id" if self.id == "id" and "_id" in record else self.id)
        if id_key not in record or record[id_key] is None or record[id_key] == "":
            raise DocumentError(f"{where}: missing id field {self.id!r}")
        if self.text not in record:
            raise DocumentError(f"{where}: missing text field {self.text!r}")
        doc_id = record[id_key]
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        meta: dict[str, Any]
        if isinstance(record.get("metadata"), dict):
            meta = dict(record["metadata"])
        else:
            skip = {id_key, "_id", self.title, self.text, "metadata"}
            keys = self.metadata if self.metadata is not None else [k for k in record if k not in skip]
            meta = {k: record[k] for k in keys if k in record}
        raw = {"id": doc_id, "title": record.get(self.title) or "", "text": record[self.text], "metadata": meta}
        return Document.from_any(raw, where=where)


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def _checked_lines(fh: Iterable[str], path: Path) -> Iterator[str]:
    """The lines of ``fh``; undecodable bytes or a corrupt archive become a :class:`SourceFormatError`."""
    it = iter(fh)
    lineno = 0
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise SourceFormatError(f"{path}:{lineno + 1}: not valid UTF-8 ({exc.reason})") from exc
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile, truncated archives
            raise SourceFormatError(f"{path}:{lineno + 1}: cannot be read ({exc})") from exc
        lineno += 1
        yield line


def iter_jsonl(path: Path, fields: FieldMap | None = None) -> Iterator[Document]:
    fields = fields or FieldMap()
    with open_text(path) as fh:
        for lineno, line in enumerate(_checked_lines(fh, path), start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceFormatError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(record, dict):
                raise SourceFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield fields.to_document(record, where)


_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)?(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _numeric_columns(path: Path, delimiter: str, columns: list[str]) -> dict[str, type]:
    """A first pass over a CSV file: which of ``columns`` hold only integers (``int``) or only decimal numbers
    (``float``) in their non-empty cells. Malformed rows end the pass (the second pass reports them)."""
    can_int = dict.fromkeys(columns, True)
    can_float = dict.fromkeys(columns, True)
    seen = dict.fromkeys(columns, False)
    try:
        with open_text(path) as fh:
            for record in csv.DictReader(fh, delimiter=delimiter):
                for c in columns:
                    v = (record.get(c) or "").strip()
                    if not v:
                        continue
                    seen[c] = True
                    if can_int[c] and not _INT.fullmatch(v):
                        can_int[c] = False
                    if can_float[c] and not (_FLOAT.fullmatch(v) and any(ch.isdigit() for ch in v)):
                        can_float[c] = False
    except (csv.Error, UnicodeDecodeError, OSError, EOFError):
        pass
    return {c: (int if can_int[c] else float) for c in columns if seen[c] and (can_int[c] or can_float[c])}


def _typed(record: dict[str, Any], types: dict[str, type]) -> dict[str, Any]:
    for c, kind in types.items():
        v = (record.get(c) or "").strip()
        if v:
            record[c] = kind(v)
        else:
            record.pop(c, None)
    return record


def iter_csv(path: Path, fields: FieldMap | None = None) -> Iterator[Document]:
    fields = fields or FieldMap()
    delimiter = "\t" if path.name.endswith((".tsv", ".tsv.gz")) else ","
    types: dict[str, type] | None = None
    with open_text(path) as fh:
        reader = csv.DictReader(_checked_lines(fh, path), delimiter=delimiter)
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise SourceFormatError(f"{path}:1: unreadable CSV header ({exc})") from exc
        id_col = fields.id if fields.id in header else ("_id" if fields.id == "id" and "_id" in header else None)
        if id_col is None:
            raise SourceFormatError(f"{path}:1: header has no id column {fields.id!r} (columns: {header})")
        if fields.text not in header:
            raise SourceFormatError(f"{path}:1: header has no text column {fields.text!r} (columns: {header})")
        skip = {id_col, "_id", fields.title, fields.text, "metadata"}
        meta_cols = [c for c in header if c not in skip and (fields.metadata is None or c in fields.metadata)]
        types = _numeric_columns(path, delimiter, meta_cols) if meta_cols else {}
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise SourceFormatError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc
            where = f"{path}:{reader.line_num}"
            if None in record:
                raise SourceFormatError(f"{where}: more fields than the header has")
            if record.get(id_col) in (None, ""):
                raise DocumentError(f"{where}: empty id in column {id_col!r}")
            yield fields.to_document(_typed(dict(record), types), where)


def iter_parquet(path: Path, fields: FieldMap | None = None) -> Iterator[Document]:
    fields = fields or FieldMap()
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise SourceFormatError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    if fields.id not in names and not (fields.id == "id" and "_id" in names):
        raise SourceFormatError(f"{path}: no id column {fields.id!r} (columns: {names})")
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            yield fields.to_document(record, f"{path}: row {row}")
            row += 1


def beir_corpus(folder: Path) -> Path | None:
    """A BEIR folder's ``corpus.jsonl`` or ``corpus.jsonl.gz`` (``None`` when it has neither)."""
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).exists():
            return folder / name
    return None


def iter_source(source: str | Path, fields: FieldMap | None = None) -> Iterator[Document]:
    """Documents from a BEIR folder (its ``corpus.jsonl[.gz]``), a ``.jsonl[.gz]``, ``.csv``/``.tsv`` or ``.parquet``."""
    path = Path(source)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        corpus = beir_corpus(path)
        if corpus is not None:
            return iter_jsonl(corpus, fields)
        raise SourceFormatError(f"{path}: a BEIR folder needs corpus.jsonl or corpus.jsonl.gz")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json.gz")):
        return iter_jsonl(path, fields)
    if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        return iter_csv(path, fields)
    if name.endswith(".parquet"):
        return iter_parquet(path, fields)
    raise SourceFormatError(f"{path}: unknown source type; use a BEIR folder, .jsonl[.gz], .csv, .tsv or .parquet")


def load_documents(source: str | Path, fields: FieldMap | None = None) -> list[Document]:
    """All documents of a source, validated, with duplicate ids reported by position."""
    docs: list[Document] = []
    seen: dict[str, int] = {}
    for i, doc in enumerate(iter_source(source, fields)):
        if doc.id in seen:
            raise DuplicateIdError(f"{source}: id {doc.id!r} appears twice (records {seen[doc.id] + 1} and {i + 1})")
        seen[doc.id] = i
        docs.append(doc)
    return docs
