"""Retrievability: which documents a retriever can return at all, and how unequally it spreads its attention.

A document's retrievability at cut-off ``c`` (Azzopardi & Vinay, "Retrievability: an evaluation measure for
higher order information access tasks", CIKM 2008) is the number of queries of a query set that rank it within
their top ``c``; the Gini coefficient of those counts over all documents summarises the bias (0: every document
equally retrievable, 1: one document takes everything), and the Lorenz curve shows it. Documents no method
retrieves for any query are **blind spots** (ARGUS's point: content users can never be shown).

The query set is given (a BEIR split, a JSON Lines file of ``{"_id", "text"}``, or a text file of one query a
line) or generated from the collection (:func:`generate_queries`): as in the retrievability literature, short
queries drawn from the documents themselves — a seeded sample of documents, from each two or three adjacent
content words of its text — so that every document could in principle be found.

Why by hand: the measure is a count and a sort; no maintained library computes it over a retrieval engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError, NotFoundError, SourceFormatError

__all__ = ["RetrievabilityReport", "generate_queries", "gini", "load_queries", "lorenz_plot", "retrievability"]

_WORD = re.compile(r"[^\W\d_][\w'-]*", re.U)


def gini(values: np.ndarray) -> float:
    """The Gini coefficient of non-negative ``values`` (0 when all are equal or all zero)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * x.sum()))


def generate_queries(collection: Any, n: int = 2000, seed: int = 0, min_words: int = 2,
                     max_words: int = 3) -> dict[str, str]:
    """``n`` short queries drawn from the collection's documents (see the module docstring)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as ENGLISH_STOPWORDS

    snap = collection.snapshot()
    rows = np.flatnonzero(snap.live)
    if not len(rows):
        raise InvalidInputError(f"{collection.path} holds no documents to draw queries from")
    rng = np.random.default_rng(seed)
    picks = rng.choice(rows, size=n, replace=len(rows) < n)
    out: dict[str, str] = {}
    docs = collection.documents_at(np.sort(picks).tolist(), snap)
    rng.shuffle(docs)
    for i, d in enumerate(docs):
        words = [w for w in _WORD.findall(d.content(("title", "text")).lower()) if w not in ENGLISH_STOPWORDS
                 and len(w) > 2]
        if not words:
            continue
        size = int(rng.integers(min_words, max_words + 1))
        start = int(rng.integers(0, max(1, len(words) - size + 1)))
        out[f"g{i}"] = " ".join(words[start:start + size])
    return out


def load_queries(source: str | Path, split: str = "test") -> dict[str, str]:
    """Queries from a BEIR folder (``split``'s queries, or all of them), a ``.jsonl`` of ``{"_id", "text"}``, a
    ``.tsv`` of ``id<TAB>text`` (Pyserini's topics) or a text file with one query a line (ids 1, 2, …)."""
    path = Path(source)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        from retrievo.eval.datasets import BeirDataset

        ds = BeirDataset.from_path(path)
        try:
            return ds.queries(split)
        except NotFoundError:  # no judgements for that split: every query
            return ds.queries(None)
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        from retrievo.store.loaders import _checked_lines, open_text

        out = {}
        with open_text(path) as fh:
            for lineno, line in enumerate(_checked_lines(fh, path), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceFormatError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
                if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                    raise SourceFormatError(f"{path}:{lineno}: expected an object with a string 'text'")
                out[str(rec.get("_id", rec.get("id", lineno)))] = rec["text"]
        return out
    lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix.lower() == ".tsv":  # Pyserini's topics: "qid<TAB>text"
        out = {}
        for lineno, line in enumerate(lines, start=1):
            if not line:
                continue
            qid, sep, text = line.partition("\t")
            if not sep or not text.strip():
                raise SourceFormatError(f"{path}:{lineno}: expected 'query id<TAB>query text'")
            out[qid.strip()] = text.strip()
        return out
    return {str(i): q for i, q in enumerate(lines, start=1) if q}


@dataclass
class RetrievabilityReport:
    """Per method: each live document's retrievability (``counts[method]``, aligned with ``ids``), its Gini
    coefficient; and the documents no method retrieved (``blind_spots``)."""

    cutoff: int
    n_queries: int
    ids: list[str]
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def gini(self) -> dict[str, float]:
        return {m: gini(c) for m, c in self.counts.items()}

    @property
    def blind_spots(self) -> list[str]:
        if not self.counts:
            return []
        never = np.logical_and.reduce([c == 0 for c in self.counts.values()])
        return [self.ids[i] for i in np.flatnonzero(never)]

    def summary(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff, "queries": self.n_queries, "documents": len(self.ids),
                "methods": {m: {"gini": round(gini(c), 4), "never_retrieved": int((c == 0).sum()),
                                "mean": round(float(c.mean()), 4), "max": int(c.max()) if len(c) else 0}
                            for m, c in self.counts.items()},
                "blind_spots": len(self.blind_spots)}


def retrievability(collection: Any, queries: Mapping[str, str] | Sequence[str], methods: Sequence[str] | None = None,
                   cutoff: int = 100, batch: int = 512, show_progress: bool = False) -> RetrievabilityReport:
    """Each live document's retrievability at ``cutoff`` under each method (default: every method the collection
    has among bm25, dense, splade, hybrid)."""
    if cutoff < 1:
        raise InvalidInputError(f"retrievability: cutoff must be >= 1, got {cutoff}")
    texts = list(queries.values()) if isinstance(queries, Mapping) else list(queries)
    if not texts:
        raise InvalidInputError("retrievability: no queries")
    if methods is None:
        methods = ["bm25"] + [m for m, ok in (("dense", collection.has_dense), ("splade", "splade" in collection.signals),
                                              ("hybrid", collection.has_dense)) if ok]
    snap = collection.snapshot()
    live = np.flatnonzero(snap.live)
    pos = np.full(snap.n_rows, -1, dtype=np.int64)
    pos[live] = np.arange(len(live))
    report = RetrievabilityReport(cutoff, len(texts), [str(snap.ids[r]) for r in live.tolist()])
    from retrievo.request import SearchRequest

    for m in methods:
        counts = np.zeros(len(live), dtype=np.int64)
        steps = range(0, len(texts), batch)
        if show_progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=f"retrievability {m}", unit="batch")
        for s in steps:
            res = collection.searcher.search(texts[s:s + batch], SearchRequest(method=m, k=cutoff), snapshot=snap)
            rows = res.rows[res.rows >= 0]
            counts += np.bincount(pos[rows], minlength=len(live))
        report.counts[m] = counts
    return report


def lorenz_plot(report: RetrievabilityReport, path: str | Path, title: str = "") -> Path:
    """The Lorenz curves of ``report`` (one per method, with its Gini) written as an image."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib ships with the bench and dev extras
        raise InvalidInputError("the Lorenz plot needs matplotlib: pip install matplotlib") from exc
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="equality")
    for m, c in report.counts.items():
        x = np.sort(c).astype(np.float64)
        cum = np.concatenate([[0.0], np.cumsum(x) / max(x.sum(), 1.0)])
        ax.plot(np.linspace(0, 1, len(cum)), cum, label=f"{m} (Gini {gini(c):.3f})")
    ax.set_xlabel("share of documents, least retrievable first")
    ax.set_ylabel(f"share of retrievals (top {report.cutoff})")
    ax.set_title(title or f"Retrievability, {report.n_queries} queries")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
