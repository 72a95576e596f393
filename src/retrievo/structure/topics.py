"""Topics from a few keywords each (Lbl2Vec, Schopf et al. 2021, on sentence-embedding vectors): documents per
topic with a similarity, and an unsupervised classifier.

A topic is a name and a few keywords (:func:`load_topics` reads YAML or JSON: ``{topic: [keywords]}``,
``{topic: {keywords: [...]}}`` or a list of ``{name, keywords}``). :func:`fit_topics`:

1. each keyword is encoded by the collection's dense model as a query; the topic starts at their normalised mean;
2. the ``max_docs`` documents most similar to it — among those whose most similar topic it is, so topics pull
   apart — become its documents, and the topic vector moves to the normalised centroid of their vectors
   (Lbl2Vec's label vector), blended with the keyword vector by ``keyword_weight``; this repeats ``iterations``
   times;
3. every document's similarity to every topic is then one product (:class:`TopicModel`): documents per topic,
   best first; as a classifier, each document goes to its most similar topic when that similarity is at least
   ``min_similarity``.

Why by hand: Lbl2Vec the package trains Doc2Vec itself and pins old gensim; the idea needs only the vectors the
collection already stores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError, NotFoundError, SourceFormatError

__all__ = ["TopicModel", "fit_topics", "load_topics"]


def load_topics(source: str | Path | Mapping[str, Any] | list[Any]) -> dict[str, list[str]]:
    """Topics as ``{name: [keywords]}`` from a YAML/JSON file or an object already read.

    Raises:
        SourceFormatError: naming the file, the topic and what is wrong (no keywords, not strings, ...).
    """
    where = "topics"
    data: Any = source
    if isinstance(source, (str, Path)):
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise NotFoundError(f"{path}: no such file")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
            raise SourceFormatError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                                    f"{exc}"[:400]) from exc
    if isinstance(data, list):
        items = []
        for i, t in enumerate(data):
            if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
                raise SourceFormatError(f"{where}: topic {i}: expected an object with 'name' and 'keywords'")
            items.append((t["name"], t.get("keywords")))
    elif isinstance(data, Mapping):
        items = [(k, v.get("keywords") if isinstance(v, Mapping) else v) for k, v in data.items()]
    else:
        raise SourceFormatError(f"{where}: expected topics as {{name: [keywords]}}, got {type(data).__name__}")
    out: dict[str, list[str]] = {}
    for name, kws in items:
        if not isinstance(name, str) or not name.strip():
            raise SourceFormatError(f"{where}: a topic name must be a non-empty string, got {name!r}")
        if isinstance(kws, str):
            kws = [kws]
        if not isinstance(kws, list) or not kws:
            raise SourceFormatError(f"{where}: topic {name!r}: 'keywords' must be a non-empty list of strings")
        bad = [k for k in kws if not isinstance(k, str) or not k.strip()]
        if bad:
            raise SourceFormatError(f"{where}: topic {name!r}: keyword {bad[0]!r} is not a non-empty string")
        if name in out:
            raise SourceFormatError(f"{where}: topic {name!r} appears twice")
        out[name] = [k.strip() for k in kws]
    if not out:
        raise SourceFormatError(f"{where}: no topics")
    return out


@dataclass
class TopicModel:
    """Topic vectors over one generation of a collection.

    Attributes:
        names: the topics, in order.
        vectors: ``(n_topics, dim)`` normalised topic vectors.
        keyword_vectors: ``(n_topics, dim)`` the keywords' normalised mean (where each topic started).
        rows / ids: the live documents scored, and ``similarities`` ``(n_docs, n_topics)`` their cosine to each topic.
        used: documents each topic vector was computed from.
    """

    names: list[str]
    vectors: np.ndarray
    keyword_vectors: np.ndarray
    rows: np.ndarray
    ids: list[str]
    similarities: np.ndarray
    used: list[int]

    def documents(self, topic: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` documents most similar to ``topic`` (ties by id)."""
        if topic not in self.names:
            raise InvalidInputError(f"no topic {topic!r}; topics: {', '.join(self.names)}")
        s = self.similarities[:, self.names.index(topic)]
        order = np.lexsort((np.asarray(self.ids, dtype=object).astype(str), -s))[:k]
        return [(self.ids[i], float(s[i])) for i in order]

    def assign(self, min_similarity: float = 0.0) -> dict[str, str | None]:
        """Each document's most similar topic (``None`` below ``min_similarity``): the unsupervised classifier."""
        best = np.argmax(self.similarities, axis=1) if len(self.names) else np.zeros(len(self.ids), int)
        top = self.similarities[np.arange(len(self.ids)), best] if len(self.ids) else np.zeros(0)
        return {d: (self.names[b] if s >= min_similarity else None)
                for d, b, s in zip(self.ids, best.tolist(), top.tolist(), strict=True)}


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


def fit_topics(collection: Any, topics: Mapping[str, list[str]] | str | Path, *, max_docs: int = 50,
               iterations: int = 2, keyword_weight: float = 2.0) -> TopicModel:
    """Topic vectors for ``collection``'s documents (see the module docstring).

    Args:
        collection: a collection with dense vectors.
        topics: ``{name: [keywords]}`` or a file :func:`load_topics` reads.
        max_docs: documents a topic vector is computed from at most.
        iterations: rounds of moving the topic vectors to their documents (0: keywords only).
        keyword_weight: weight of the keyword vector in each topic vector, against its documents' centroid (1);
            2 was best of a small grid on ToolLens categories (RESULTS.md "topics"), as 1 or 0.5 gave a lower AUC.
    """
    topics = load_topics(topics) if not isinstance(topics, Mapping) else load_topics(dict(topics))
    if max_docs < 1 or iterations < 0 or not (0.0 <= keyword_weight):
        raise InvalidInputError("fit_topics: max_docs >= 1, iterations >= 0 and keyword_weight >= 0 are needed")
    if collection.config.dense is None:
        raise InvalidInputError(f"{collection.path}: topics need dense vectors, and this collection has no dense model")
    snap = collection.snapshot()
    flat = snap.signals.get("dense")
    rows = np.flatnonzero(snap.live)
    if flat is None or not len(rows):
        raise InvalidInputError(f"{collection.path}: no documents with dense vectors to find topics in")
    docs = flat.gather(rows).astype(np.float32)
    names = list(topics)
    encoder = collection.encoder
    flat_kw = [k for n in names for k in topics[n]]
    kv = np.asarray(encoder.encode_queries(flat_kw), dtype=np.float32)
    bounds = np.cumsum([0] + [len(topics[n]) for n in names])
    keyword_vectors = _normalise(np.stack([_normalise(kv[a:b]).mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:],
                                                                                            strict=True)]))
    vectors = keyword_vectors.copy()
    used = [0] * len(names)
    for _ in range(iterations):
        sims = docs @ vectors.T
        owner = np.argmax(sims, axis=1)
        new = vectors.copy()
        for t in range(len(names)):
            mine = np.flatnonzero(owner == t)
            if not len(mine):
                continue
            top = mine[np.argsort(-sims[mine, t], kind="stable")[:max_docs]]
            used[t] = len(top)
            centroid = _normalise(docs[top].mean(axis=0))
            new[t] = _normalise(centroid + keyword_weight * keyword_vectors[t])
        vectors = new
    sims = docs @ vectors.T
    return TopicModel(names, vectors, keyword_vectors, rows, [str(snap.ids[r]) for r in rows.tolist()], sims, used)
