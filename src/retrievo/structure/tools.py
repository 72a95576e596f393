"""Tool catalogues: function specs read into fielded documents, and document expansion without an LLM.

**Reading** (:func:`load_tools`, ``retrievo index tools.json --tools``): a JSON file holding a list of specs
(or ``{"tools": [...]}`` / ``{"functions": [...]}``), or JSON Lines with one spec a line. A spec is any of the
forms in use — OpenAI's ``{"type": "function", "function": {name, description, parameters}}``, a bare
``{name, description, parameters}``, Anthropic's ``input_schema`` in place of ``parameters`` — where
``parameters`` is a JSON Schema object whose ``properties`` have ``type``, ``description`` and ``enum``.
Optional keys kept: ``id`` (default: the name), ``category``, ``tool`` (the API or package the function
belongs to), ``returns`` (a return schema). Everything is checked before anything is written: a bad spec
raises :class:`~retrievo.errors.DocumentError` naming the file, the tool (position and name) and the field.

Each tool becomes a :class:`~retrievo.types.Document`: ``title`` = the name; ``text`` = a readable rendering
(name, description, parameters with types, required or not, allowed values; return fields) that the dense
model and BM25 read; and metadata fields for field-weighted BM25 (:mod:`retrievo.signals.fields`):
``name_words`` (the name and tool split into words: ``getWeatherByCity`` → ``get weather by city``),
``description``, ``param_words`` (parameter names split into words, their descriptions and enum values),
plus ``spec`` (the spec as given, to hand back to an agent), ``category`` and ``tool`` when given.

**Expansion** (:func:`expand_tools`; Tool-DE, Lu et al. 2025, without its LLM): fields derived from the
collection itself, stored apart so their weight is a search parameter:

* ``x_queries`` — the training queries whose judgements name the tool (query-log expansion; give only a
  training split, never the queries you evaluate on);
* ``x_pseudo`` — pseudo-queries from the tool's own text: its name words joined with its most distinctive
  terms (highest TF-IDF against the rest of the catalogue), and the description's first sentence;
* ``x_similar`` — for tools few training queries name, the training queries nearest to the tool's text
  under a dense model (how users phrase needs like this one), when an encoder is given.

Why by hand: tool specs are plain JSON Schema; no library turns them into retrieval fields.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievo.errors import DocumentError, NotFoundError, SourceFormatError
from retrievo.types import Document

__all__ = ["TOOL_FIELDS", "expand_tools", "load_tools", "split_identifier", "tool_document", "tools_config"]

#: BM25F field weights of a tool collection (chosen on ToolLens training queries, benchmarks/bench_tools.py)
TOOL_FIELDS: dict[str, float] = {"title": 0.0, "text": 1.0, "name_words": 1.0, "description": 0.5,
                                 "param_words": 0.3, "x_queries": 1.0, "x_pseudo": 0.3, "x_similar": 1.0}
#: length normalisation per field (query-log fields vary most in length)
TOOL_B: dict[str, float] = {"name_words": 0.5, "x_queries": 0.75, "x_similar": 0.75}

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def split_identifier(name: str) -> str:
    """Words of an identifier or path: ``getWeatherByCity`` → ``get weather by city``,
    ``/v1/nutrition`` → ``v1 nutrition``, ``serving_size_g`` → ``serving size g`` (lower case)."""
    words: list[str] = []
    for part in re.split(r"[^0-9A-Za-z]+", name):
        words.extend(m.group(0).lower() for m in _CAMEL.finditer(part))
    return " ".join(words)


def tools_config(fields: Mapping[str, float] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The ``bm25f`` signal settings of a tool collection (``CollectionConfig(signals={"bm25f": ...})``)."""
    weights = dict(TOOL_FIELDS if fields is None else fields)
    return {"fields": weights, "b": {k: v for k, v in TOOL_B.items() if k in weights}, **kwargs}


# ------------------------------------------------------------------------------------------------ reading


def _fail(where: str, msg: str) -> DocumentError:
    return DocumentError(f"{where}: {msg}"[:500])


def _text(value: Any, where: str, field: str, required: bool = False) -> str:
    if value is None:
        if required:
            raise _fail(where, f"field {field!r} is missing")
        return ""
    if not isinstance(value, str):
        raise _fail(where, f"field {field!r} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise _fail(where, f"field {field!r} is empty")
    return value


def _function(spec: Any, where: str) -> dict[str, Any]:
    """The function object of a spec in any of the accepted forms."""
    if not isinstance(spec, Mapping):
        raise _fail(where, f"expected a JSON object, got {type(spec).__name__}")
    if "function" in spec:
        fn = spec["function"]
        if not isinstance(fn, Mapping):
            raise _fail(where, f"field 'function' must be an object, got {type(fn).__name__}")
        extra = {k: v for k, v in spec.items() if k not in ("function", "type")}
        return {**extra, **fn}
    return dict(spec)


def _parameters(params: Any, where: str) -> list[dict[str, Any]]:
    """The parameters of a JSON Schema object, checked: ``[{name, type, description, enum, required}]``."""
    if params is None:
        return []
    if not isinstance(params, Mapping):
        raise _fail(where, f"field 'parameters' must be a JSON Schema object, got {type(params).__name__}")
    props = params.get("properties", {})
    if not isinstance(props, Mapping):
        raise _fail(where, f"field 'parameters.properties' must be an object, got {type(props).__name__}")
    required = params.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _fail(where, "field 'parameters.required' must be a list of parameter names")
    unknown = [r for r in required if r not in props]
    if unknown:
        raise _fail(where, f"field 'parameters.required' names {unknown[0]!r}, which is not in 'parameters.properties'")
    out = []
    for pname, p in props.items():
        at = f"parameters.properties.{pname}"
        if not isinstance(p, Mapping):
            raise _fail(where, f"field {at!r} must be an object, got {type(p).__name__}")
        ptype = p.get("type", "")
        if isinstance(ptype, list):
            if not all(isinstance(t, str) for t in ptype):
                raise _fail(where, f"field '{at}.type' must be a string or a list of strings, got {ptype!r}"[:200])
            ptype = " or ".join(ptype)
        elif not isinstance(ptype, str):
            raise _fail(where, f"field '{at}.type' must be a string or a list of strings, got {ptype!r}"[:200])
        desc = _text(p.get("description"), where, f"{at}.description")
        enum = p.get("enum")
        if enum is not None and not isinstance(enum, list):
            raise _fail(where, f"field '{at}.enum' must be a list, got {type(enum).__name__}")
        out.append({"name": pname, "type": ptype, "description": desc,
                    "enum": [json.dumps(e) if not isinstance(e, str) else e for e in (enum or [])],
                    "required": pname in required})
    return out


def _return_fields(returns: Any, limit: int = 40) -> list[str]:
    """Field names of a return schema (any nesting; JSON Schema ``properties`` or a plain example object)."""
    names: list[str] = []
    stack = [returns]
    while stack and len(names) < limit:
        x = stack.pop(0)
        if isinstance(x, Mapping):
            props = x.get("properties") if isinstance(x.get("properties"), Mapping) else None
            for k, v in (props or x).items():
                if k not in ("type", "properties", "items", "description", "required") or props is not None:
                    names.append(str(k))
                stack.append(v)
        elif isinstance(x, list):
            stack.extend(x[:3])
    return names[:limit]


def tool_document(spec: Any, where: str = "tool") -> Document:
    """One function spec as a fielded :class:`~retrievo.types.Document` (see the module docstring).

    Raises:
        DocumentError: naming ``where``, the tool and the field at fault.
    """
    fn = _function(spec, where)
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, "field 'name' is missing" if name is None else
                    f"field 'name' must be a non-empty string, got {name!r}"[:200])
    where = f"{where} ({name!r})"
    desc = _text(fn.get("description"), where, "description")
    params = _parameters(fn.get("parameters", fn.get("input_schema")), where)
    category = _text(fn.get("category"), where, "category")
    group = _text(fn.get("tool"), where, "tool")
    doc_id = fn.get("id", name)
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise _fail(where, f"field 'id' must be a non-empty string, got {doc_id!r}"[:200])
    returns = _return_fields(fn.get("returns")) if fn.get("returns") is not None else []

    lines = [f"{name}: {desc}" if desc else name]
    if group or category:
        lines.append("Tool: " + " / ".join(x for x in (category, group) if x))
    if params:
        parts = []
        for p in params:
            about = ", ".join(x for x in (p["type"], "required" if p["required"] else "optional") if x)
            s = f"{p['name']} ({about})"
            if p["description"]:
                s += f": {p['description']}"
            if p["enum"]:
                s += f" [one of: {', '.join(p['enum'][:20])}]"
            parts.append(s)
        lines.append("Parameters: " + "; ".join(parts))
    if returns:
        lines.append("Returns: " + ", ".join(returns))
    param_words = [" ".join(x for x in (split_identifier(p["name"]), p["description"], " ".join(p["enum"][:20])) if x)
                   for p in params]
    meta: dict[str, Any] = {
        "name_words": " ".join(x for x in (split_identifier(name), split_identifier(group)) if x),
        "description": desc,
        "param_words": [w for w in param_words if w] + ([split_identifier(" ".join(returns))] if returns else []),
        "spec": {"name": name, "description": desc,
                 **({"parameters": fn["parameters"]} if isinstance(fn.get("parameters"), Mapping) else {}),
                 **({"parameters": fn["input_schema"]} if isinstance(fn.get("input_schema"), Mapping) else {})},
    }
    if category:
        meta["category"] = category
    if group:
        meta["tool"] = group
    return Document.from_any({"id": doc_id, "title": name, "text": "\n".join(lines), "metadata": meta}, where=where)


def _specs(path: Path) -> Iterable[tuple[str, Any]]:
    from retrievo.store.loaders import _checked_lines, open_text

    name = path.name.lower()
    with open_text(path) as fh:
        if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            for lineno, line in enumerate(_checked_lines(fh, path), start=1):
                if line.strip():
                    try:
                        yield f"{path}:{lineno}: tool", json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise SourceFormatError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            return
        try:
            data = json.loads("".join(_checked_lines(fh, path)))
        except json.JSONDecodeError as exc:
            raise SourceFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    if isinstance(data, Mapping):
        for key in ("tools", "functions"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [data] if "name" in data or "function" in data else data
    if not isinstance(data, list):
        raise SourceFormatError(f"{path}: expected a list of tool specs (or {{\"tools\": [...]}}), "
                                f"got {type(data).__name__}")
    for i, spec in enumerate(data):
        yield f"{path}: tool {i}", spec


def load_tools(path: str | Path) -> list[Document]:
    """Every tool of a spec file as a document, all checked before any is returned (ids unique).

    Raises:
        NotFoundError: no such file.
        SourceFormatError: the file is not JSON / JSON Lines of specs.
        DocumentError: a spec is malformed (the message names the tool and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    docs: list[Document] = []
    seen: dict[str, str] = {}
    for where, spec in _specs(path):
        doc = tool_document(spec, where)
        if doc.id in seen:
            raise DocumentError(f"{where}: id {doc.id!r} is also the id of {seen[doc.id]}; give each tool an 'id'")
        seen[doc.id] = where
        docs.append(doc)
    if not docs:
        raise SourceFormatError(f"{path}: no tool specs")
    return docs


# ---------------------------------------------------------------------------------------------- expansion


def _pseudo_queries(docs: Sequence[Document], tokenize: Any, n_terms: int) -> list[list[str]]:
    """Per tool: its name words with its ``n_terms`` most distinctive terms, and its description's first sentence."""
    toks = [tokenize(" ".join((d.field_text("name_words"), d.field_text("description") or d.text,
                               d.field_text("param_words")))) for d in docs]
    df = Counter(t for ts in toks for t in set(ts))
    n = len(docs)
    out = []
    for d, ts in zip(docs, toks, strict=True):
        tf = Counter(ts)
        ranked = sorted(tf, key=lambda t: (-tf[t] * math.log((1 + n) / (1 + df[t])), t))[:n_terms]
        first = _SENTENCE.split((d.field_text("description") or "").strip(), maxsplit=1)[0]
        qs = [" ".join([d.field_text("name_words")] + ranked).strip()]
        if first and first.lower() != d.field_text("name_words").lower():
            qs.append(first)
        out.append([q for q in qs if q])
    return out


class _AsQueries:
    """An encoder's query side with the interface :func:`~retrievo.encoders.cache.encode_with_cache` caches."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.dim = encoder.dim
        self.fingerprint = f"{encoder.fingerprint}|queries"

    def encode_documents(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        return np.asarray(self.encoder.encode_queries(texts), dtype=np.float32)


def _encode_queries(encoder: Any, texts: list[str], cache: Any) -> np.ndarray:
    if cache is None or not isinstance(getattr(encoder, "fingerprint", None), str):
        return np.asarray(encoder.encode_queries(texts), dtype=np.float32)
    from retrievo.encoders.cache import encode_with_cache

    return encode_with_cache(_AsQueries(encoder), texts, cache)


def expand_tools(
    docs: Sequence[Document],
    queries: Mapping[str, str] | None = None,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    *,
    max_queries: int = 200,
    pseudo_terms: int = 8,
    encoder: Any = None,
    similar: int = 10,
    similar_below: int = 5,
    tokenize: Any = None,
    cache: Any = None,
) -> list[Document]:
    """``docs`` with expansion fields added to their metadata (see the module docstring).

    Args:
        docs: tool documents (:func:`load_tools`, or any documents).
        queries, qrels: a *training* query log: query id -> text, and query id -> {tool id: relevance};
            queries with relevance > 0 become the tool's ``x_queries`` (at most ``max_queries``, in id order).
        pseudo_terms: distinctive terms per pseudo-query (``x_pseudo``).
        encoder: a dense encoder (``encode_queries``/``encode_documents``); with it, tools named by fewer than
            ``similar_below`` training queries get the ``similar`` nearest training queries as ``x_similar``.
        tokenize: the analyzer's ``tokenize`` for the distinctive terms (default: the standard analyzer).
        cache: an :class:`~retrievo.encoders.cache.EmbeddingCache` for the training queries' vectors (a log is
            encoded once, not at every expansion).
    """
    if tokenize is None:
        from retrievo.analysis.analyzer import Analyzer
        from retrievo.config import AnalyzerConfig

        tokenize = Analyzer(AnalyzerConfig()).tokenize
    log: dict[str, list[str]] = {}
    if queries is not None and qrels is not None:
        for qid in sorted(qrels):
            text = queries.get(qid)
            if not text:
                continue
            for did, rel in qrels[qid].items():
                if rel > 0:
                    log.setdefault(did, []).append(text)
    pseudo = _pseudo_queries(docs, tokenize, pseudo_terms)
    near: dict[int, list[str]] = {}
    if encoder is not None and queries:
        few = [i for i, d in enumerate(docs) if len(log.get(d.id, ())) < similar_below]
        if few:
            q_ids = sorted(queries)
            q_texts = [queries[q] for q in q_ids]
            qv = _encode_queries(encoder, q_texts, cache)
            dv = np.asarray(encoder.encode_documents([docs[i].content(("title", "text")) for i in few]), np.float32)
            sims = dv @ qv.T
            for row, i in enumerate(few):
                top = np.argsort(-sims[row], kind="stable")[:similar]
                near[i] = [q_texts[j] for j in top]
    out = []
    for i, d in enumerate(docs):
        meta = dict(d.metadata)
        for key in ("x_queries", "x_pseudo", "x_similar"):
            meta.pop(key, None)
        if log.get(d.id):
            meta["x_queries"] = log[d.id][:max_queries]
        if pseudo[i]:
            meta["x_pseudo"] = pseudo[i]
        if near.get(i):
            meta["x_similar"] = near[i]
        out.append(Document(d.id, d.text, d.title, meta))
    return out
