"""Audit a collection for planted passages: every document scored for signs of poisoning, suspects listed with
their reasons; the same scores screen new documents before they are admitted.

Signs (each a number per document; larger is more suspicious):

* ``query_likeness`` — how close the document's opening comes to a probe query: the largest cosine, under the
  collection's dense model, between its first sentence or its first 6, 12 or 24 words and a probe query. A
  PoisonedRAG-style passage opens with the query it targets; an abstract or a product description rarely opens
  with a question-like sentence a user typed.
- ``hubness`` — in how many probe queries' top 10 the document appears (dense and BM25), against the collection's
  typical count (hubs; passages aimed at many queries).
- ``stuffing`` — term stuffing: the share of the document's words taken by its most repeated content word, and
  how few distinct words it uses (type/token ratio over its first 100 words, compared with documents of its
  length).
- ``off_topic`` — the opening and the rest disagree: low cosine between the first sentence and the remainder
  (an attacker's payload glued to a query).
- ``isolation`` — low cosine to its nearest neighbours in the collection.
- ``incoherence`` — the share of the document's adjacent word pairs that no other document of the collection
  uses: ordinary text shares most of its word pairs with other documents ("of the", "in patients"), while the
  token salad a gradient attacker (HotFlip, GASLITE) optimises shares almost none — a language model's
  perplexity, approximated by the collection's own word pairs.

Each sign is turned into a robust z-score (median and MAD of reference documents) with its own threshold, set
on the **reference** — the documents the caller trusts (``reference=`` ids), by default every document — by split
conformal calibration (:class:`_Scaler`): the z-scores and one upper quantile per sign are fitted on one half of
the reference, and the other half scales them so that a new clean document like the reference is flagged with
probability at most ``max_fpr``; the share of the reference flagged and the bound reached are reported. A
document's suspicion is its largest z over that sign's threshold; its reasons, the signs over theirs. Probe
queries are a query log the caller gives (best: what users ask), else queries drawn from the documents
(:func:`~retrievo.eval.retrievability.generate_queries`).

Why by hand: the signs come from the robustness literature (PoisonedRAG's query-prefixed passages, hubness in
embedding spaces, stuffing); no library scores a retrieval collection's documents with them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrievo.errors import InvalidInputError

__all__ = ["AuditReport", "DocumentSigns", "Gate", "Quarantine", "Suspect", "audit", "document_signs",
           "forget_released", "gate_of", "release_quarantined", "screen_into"]

SIGNS = ("query_likeness", "hubness", "stuffing", "off_topic", "isolation", "incoherence")
PREFIX_WORDS = (6, 12, 24)
_WORDS = re.compile(r"[^\W_][\w'-]*", re.U)
_FIRST = re.compile(r"^(.+?[.!?])(\s|$)", re.S)


def _opening(text: str, words: int = 40) -> tuple[str, str]:
    """The first sentence (at most ``words`` words) and the rest."""
    m = _FIRST.match(text.strip())
    head = m.group(1) if m else text.strip()
    toks = head.split()
    if len(toks) > words:
        head = " ".join(toks[:words])
    rest = text.strip()[len(head):].strip()
    return head, rest


def _stuffing(text: str, stop: frozenset[str]) -> tuple[float, float, int]:
    """(share of words taken by the most repeated content word, type/token ratio of the first 100 words, words)."""
    words = [w.lower() for w in _WORDS.findall(text)]
    content = [w for w in words if w not in stop and len(w) > 2]
    top = Counter(content).most_common(1)[0][1] / len(words) if content else 0.0
    first = words[:100]
    ttr = len(set(first)) / len(first) if first else 1.0
    return top, ttr, len(words)


@dataclass
class DocumentSigns:
    """Raw signs of a batch of documents (aligned with ``ids``)."""

    ids: list[str]
    values: dict[str, np.ndarray]


def document_signs(collection: Any, docs: Sequence[Any], probes: Mapping[str, str], doc_vectors: np.ndarray | None,
                   probe_vectors: np.ndarray, hub_counts: np.ndarray | None = None,
                   neighbour_sims: np.ndarray | None = None, pairs: PairCounts | None = None,
                   stored: bool = False) -> DocumentSigns:
    """The raw signs of ``docs`` (:class:`~retrievo.types.Document`) against the probes (see the module
    docstring). ``doc_vectors``: the documents' stored dense vectors; ``hub_counts`` / ``neighbour_sims``: their
    hubness counts and neighbour similarity when known (stored documents), else computed here."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    openings = [_opening(d.text) for d in docs]
    heads, rests = [h for h, _ in openings], [r for _, r in openings]
    hv = _encode(collection, list(heads))
    has_rest = np.array([bool(r) for r in rests])
    rv = np.zeros_like(hv)
    if has_rest.any():
        rv[has_rest] = _encode(collection, [r for r in rests if r])
    # the opening as a query would be: the first sentence, or the first 6 / 12 / 24 words (a query without final
    # punctuation runs into the attacker's text)
    query_likeness = np.zeros(len(docs))
    if len(probe_vectors):
        query_likeness = (hv @ probe_vectors.T).max(axis=1)
        for n in PREFIX_WORDS:
            pv = _encode(collection, [" ".join(d.text.split()[:n]) for d in docs])
            query_likeness = np.maximum(query_likeness, (pv @ probe_vectors.T).max(axis=1))
    off_topic = np.where(has_rest, 1.0 - (hv * rv).sum(axis=1), 0.0)
    stuff = np.array([_stuffing(d.content(("title", "text")), ENGLISH_STOP_WORDS) for d in docs]).reshape(-1, 3)
    # stuffing: the top word's share, and a type/token ratio below what documents of that length have
    expected_ttr = np.clip(1.0 - 0.0035 * np.minimum(stuff[:, 2], 100), 0.5, 1.0)
    stuffing = stuff[:, 0] + np.maximum(0.0, expected_ttr - stuff[:, 1])
    if doc_vectors is None:
        doc_vectors = _encode(collection, [d.content(collection.config.dense.fields) for d in docs])
    if neighbour_sims is None:
        neighbour_sims = _neighbour_sims(collection, doc_vectors)
    if hub_counts is None:
        hub_counts = _hub_counts_for(collection, docs, doc_vectors, probe_vectors, probes)
    return DocumentSigns([d.id for d in docs], {
        "query_likeness": query_likeness.astype(np.float64),
        "hubness": np.asarray(hub_counts, dtype=np.float64),
        "stuffing": stuffing.astype(np.float64),
        "off_topic": off_topic.astype(np.float64),
        "isolation": 1.0 - np.asarray(neighbour_sims, dtype=np.float64),
        "incoherence": (pairs.incoherence([d.content(("title", "text")) for d in docs], stored) if pairs is not None
                        else np.zeros(len(docs))),
    })


class PairCounts:
    """In how many documents each adjacent word pair occurs, counted exactly: the collection's words are numbered
    and a pair is keyed by its two numbers (a hashed table let unrelated pairs share a bucket — about one pair in
    six on a few thousand abstracts — and Python's per-process string hashing moved which ones from run to run)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.words: dict[str, int] = {}
        keys = [self._keys(t, grow=True) for t in texts]
        self.keys, self.df = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64), return_counts=True)

    def _keys(self, text: str, grow: bool = False) -> np.ndarray:
        """The distinct adjacent word pairs of ``text`` (lower case) as keys; a pair with a word the collection
        never used is -1 (attested nowhere)."""
        words = [w.lower() for w in _WORDS.findall(text)]
        ids = np.fromiter((self.words.setdefault(w, len(self.words)) if grow else self.words.get(w, -1)
                           for w in words), dtype=np.int64, count=len(words))
        if len(ids) < 2:
            return np.zeros(0, dtype=np.int64)
        a, b = ids[:-1], ids[1:]
        return np.unique(np.where((a < 0) | (b < 0), -1, (a << 32) | b))

    def incoherence(self, texts: Sequence[str], stored: bool) -> np.ndarray:
        """The share of each text's word pairs found in no other document (``stored``: the text is one of them)."""
        need = 2 if stored else 1
        out = np.zeros(len(texts))
        for i, t in enumerate(texts):
            k = self._keys(t)
            if not len(k):
                continue
            df = np.zeros(len(k), dtype=np.int64)
            if len(self.keys):
                at = np.minimum(np.searchsorted(self.keys, k), len(self.keys) - 1)
                hit = self.keys[at] == k  # -1 (a word the collection never used) is no key
                df[hit] = self.df[at[hit]]
            out[i] = float(np.mean(df < need))
        return out


def _encode(collection: Any, texts: list[str]) -> np.ndarray:
    """Texts through the collection's dense model and its embedding cache (an audit run twice encodes once)."""
    from retrievo.encoders.cache import encode_with_cache

    sig = collection.signals["dense"]
    return np.asarray(encode_with_cache(sig.encoder, texts, sig.embedding_cache()), dtype=np.float32)


def _neighbour_sims(collection: Any, vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean cosine of each vector to its ``k`` nearest stored documents (itself excluded)."""
    res = collection.search(None, k=k + 1, method="dense", query_vectors=vectors)
    s = np.where(np.isfinite(res.scores), res.scores, np.nan)
    s = np.sort(s, axis=1)[:, ::-1]
    # a stored document finds itself first (similarity ~1): drop the best when it is (almost) identical
    own = s[:, 0] > 0.9999
    body = np.where(own[:, None], s[:, 1:k + 1], s[:, :k])
    return np.nan_to_num(np.nanmean(body, axis=1), nan=0.0)


def _probe_lists(collection: Any, snap: Any, texts: list[str], probe_vectors: np.ndarray,
                 k: int = 10) -> dict[str, Any]:
    """The probes' top ``k`` on one snapshot, by dense and (where the collection has it) BM25: what hubness
    counts, for stored documents (:func:`audit`) and new ones (:func:`_hub_counts_for`) alike."""
    from retrievo.request import SearchRequest

    methods = ("dense", "bm25") if snap.signals.get("bm25") is not None else ("dense",)
    return {m: collection.searcher.search(texts, SearchRequest(method=m, k=k), snapshot=snap,
                                          query_vectors=probe_vectors if m == "dense" else None) for m in methods}


def _hub_counts_for(collection: Any, docs: Sequence[Any], vectors: np.ndarray, probe_vectors: np.ndarray,
                    probes: Mapping[str, str], k: int = 10) -> np.ndarray:
    """For documents not (yet) stored: in how many probes' top k each would enter, dense and BM25 — its score
    above the probe's k-th stored result (BM25 with the collection's statistics) — counted as stored documents are."""
    from retrievo.indexes.inverted import term_frequencies

    texts = list(probes.values())
    if not texts:
        return np.zeros(len(docs), dtype=np.int64)
    snap = collection.snapshot()
    lists = _probe_lists(collection, snap, texts, probe_vectors, k)

    def kth(method: str) -> np.ndarray:
        last = lists[method].scores[:, -1]
        return np.where(np.isfinite(last), last, -np.inf)

    counts = ((vectors @ probe_vectors.T) > kth("dense")[None, :]).sum(axis=1)
    if "bm25" not in lists:
        return counts
    analyzer, vocab, fields = collection.analyzer, snap.vocab, collection.config.bm25.fields
    tokens = [analyzer.tokenize(d.content(fields)) for d in docs]
    indptr, terms, tf, _ = term_frequencies(([t for t in toks if t in vocab] for toks in tokens), dict(vocab))
    queries = [np.array([vocab[t] for t in analyzer.tokenize(q) if t in vocab], dtype=np.int64) for q in texts]
    scores = snap.signals["bm25"].score_unseen(queries, indptr, terms, tf, np.array([len(t) for t in tokens], np.int32))
    return counts + ((scores > kth("bm25")[:, None]) & (scores > 0)).sum(axis=0)


@dataclass
class Suspect:
    """A flagged document: its suspicion (largest robust z of its signs), the reasons, and every sign."""

    id: str
    suspicion: float
    reasons: list[str]
    signs: dict[str, float]


@dataclass
class AuditReport:
    """The outcome of :func:`audit`: suspects (most suspicious first), the threshold and what it was set on."""

    suspects: list[Suspect]
    threshold: float
    max_fpr: float
    documents: int
    reference: int
    reference_flagged: int
    probes: int
    scores: dict[str, float] = field(default_factory=dict)  # every document's suspicion
    scaler: Any = None  # the reference's scales and thresholds, to screen new documents alike
    signs: Any = None  # every document's raw signs (DocumentSigns)
    pairs: Any = None  # the collection's word-pair counts (PairCounts), for screening new documents
    probe_vectors: Any = None  # the probes under the dense model, in the order of their texts

    def summary(self) -> dict[str, Any]:
        return {"documents": self.documents, "suspects": len(self.suspects),
                "thresholds": {n: round(v, 3) for n, v in (self.scaler.limit.items() if self.scaler else ())},
                "max_fpr": self.max_fpr, "reference_documents": self.reference,
                "reference_flagged": self.reference_flagged,
                "reference_fpr": round(self.reference_flagged / max(self.reference, 1), 4),
                # split conformal: a new clean document like the reference is flagged with at most this probability
                "new_document_fpr_bound": round(self.scaler.bound, 4) if self.scaler else None,
                "probes": self.probes,
                "by_reason": dict(Counter(r for s in self.suspects for r in s.reasons))}


class _Scaler:
    """Split conformal thresholds. The reference documents are split in two seeded halves. On the first, each
    sign's robust z-score — (x − median) / (1.4826 · MAD) — and its own threshold: the same upper quantile of the
    half's z-scores for every sign (at least z = 3), the largest that keeps the share of the half over any
    threshold within ``max_fpr``. A document's suspicion is its largest z / threshold. On the second half, the
    suspicions of its documents set one more factor on every threshold: the ⌈(1 − max_fpr)(m + 1)⌉-th smallest of
    the ``m`` (at least 1), so that a new document exchangeable with the reference is flagged with probability at
    most ``max_fpr`` (the thresholds never saw that half). Fitting and counting on the same documents let a few
    hundred of them hold back about twice the option's share of new ones (ToolLens: 3 of 115 held-out tools at
    1 %): each sign's threshold sits on one of the few reference values past it. With fewer than
    ``1 / max_fpr − 1`` documents in the second half the bound cannot be met and the factor is their largest
    suspicion. A flagged document (suspicion above 1) has as reasons the signs above their thresholds."""

    def __init__(self, values: dict[str, np.ndarray], ref: np.ndarray, max_fpr: float, seed: int = 0) -> None:
        import math

        self.center, self.scale, self.limit = {}, {}, {}
        self.bound = 1.0  # the probability a new document like the reference is flagged is at most this
        rows = np.random.default_rng(seed).permutation(np.flatnonzero(ref))
        fit, check = rows[:(len(rows) + 1) // 2], rows[(len(rows) + 1) // 2:]
        zs = {}
        for name, v in values.items():
            r = v[fit]
            med = float(np.median(r))
            mad = float(np.median(np.abs(r - med))) * 1.4826
            self.center[name], self.scale[name] = med, max(mad, 0.1 * float(np.std(r)), 1e-6)
            zs[name] = (r - med) / self.scale[name]
        # the same tail share per sign, as large as keeps the union of flagged documents within max_fpr (signs
        # flag overlapping documents, so the share lies between max_fpr / n_signs and max_fpr)
        lo, hi = max_fpr / len(zs), max_fpr
        for _ in range(30):
            mid = (lo + hi) / 2
            lim = {n: max(float(np.quantile(z, 1.0 - mid, method="higher")), 3.0) for n, z in zs.items()}
            share = float(np.mean(np.logical_or.reduce([z > lim[n] for n, z in zs.items()])))
            lo, hi = (mid, hi) if share <= max_fpr else (lo, mid)
        self.limit = {n: max(float(np.quantile(z, 1.0 - lo, method="higher")), 3.0) for n, z in zs.items()}
        if len(check):
            held = np.sort(self.suspicion({n: v[check] for n, v in values.items()})[0])
            k = min(math.ceil((1.0 - max_fpr) * (len(held) + 1)), len(held))
            factor = max(float(held[k - 1]), 1.0)
            self.limit = {n: v * factor for n, v in self.limit.items()}
            self.bound = (len(held) + 1 - k) / (len(held) + 1)

    def suspicion(self, values: dict[str, np.ndarray]) -> tuple[np.ndarray, list[list[str]]]:
        ratio = np.stack([(values[n] - self.center[n]) / self.scale[n] / self.limit[n] for n in SIGNS])
        reasons = [[n for j, n in enumerate(SIGNS) if ratio[j, i] > 1.0] for i in range(ratio.shape[1])]
        return ratio.max(axis=0), reasons


def _probes(collection: Any, probes: Mapping[str, str] | Sequence[str] | None, n_probes: int, seed: int) -> dict:
    if probes is None:
        from retrievo.eval.retrievability import generate_queries

        return generate_queries(collection, n_probes, seed=seed)
    if isinstance(probes, Mapping):
        return dict(probes)
    return {str(i): q for i, q in enumerate(probes)}


def audit(collection: Any, probes: Mapping[str, str] | Sequence[str] | None = None, *, max_fpr: float = 0.01,
          reference: Sequence[str] | None = None, n_probes: int = 2000, seed: int = 0,
          show_progress: bool = False) -> AuditReport:
    """Score every live document and list the suspects (see the module docstring). Changes nothing.

    Args:
        probes: probe queries (a query log: ``{id: text}`` or a list), default drawn from the documents.
        max_fpr: at most this share of the reference documents is flagged.
        reference: ids of documents trusted to be clean, on which the threshold is set (default: all).
    """
    if not (0.0 < max_fpr < 1.0):
        raise InvalidInputError(f"audit: max_fpr must be in (0, 1), got {max_fpr}")
    if not collection.has_dense:
        raise InvalidInputError(f"{collection.path}: the audit reads dense vectors, and this collection has no dense model")
    snap = collection.snapshot()
    rows = np.flatnonzero(snap.live)
    if not len(rows):
        raise InvalidInputError(f"{collection.path} holds no documents to audit")
    probes = _probes(collection, probes, n_probes, seed)
    probe_vectors = np.asarray(collection.encoder.encode_queries(list(probes.values())), dtype=np.float32)
    docs = collection.documents_at(rows.tolist(), snap)
    vectors = snap.signals["dense"].gather(rows).astype(np.float32)
    # hubness of stored documents: how many probes' top 10 (dense and BM25) they are in
    pos = np.full(snap.n_rows, -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    hubs = np.zeros(len(rows), dtype=np.int64)
    texts = list(probes.values())
    for res in _probe_lists(collection, snap, texts, probe_vectors).values():
        r = res.rows[res.rows >= 0]
        hubs += np.bincount(pos[r], minlength=len(rows))
    pairs = PairCounts([d.content(("title", "text")) for d in docs])
    signs = document_signs(collection, docs, probes, vectors, probe_vectors, hub_counts=hubs,
                           neighbour_sims=_neighbour_sims(collection, vectors), pairs=pairs, stored=True)
    ids = signs.ids
    ref = np.ones(len(ids), bool) if reference is None else np.isin(np.asarray(ids, dtype=object),
                                                                    np.asarray(list(reference), dtype=object))
    if not ref.any():
        raise InvalidInputError("audit: none of the reference ids is a live document")
    scaler = _Scaler(signs.values, ref, max_fpr)
    suspicion, reasons = scaler.suspicion(signs.values)
    flagged = np.flatnonzero(suspicion > 1.0)
    suspects = [Suspect(ids[i], float(suspicion[i]), reasons[i], {n: float(signs.values[n][i]) for n in SIGNS})
                for i in flagged]
    suspects.sort(key=lambda s: (-s.suspicion, s.id))
    report = AuditReport(suspects, 1.0, max_fpr, len(ids), int(ref.sum()), int((suspicion[ref] > 1.0).sum()),
                         len(probes), dict(zip(ids, suspicion.tolist(), strict=True)), scaler, signs, pairs,
                         probe_vectors)
    return report


# ------------------------------------------------------------------------------------------ admission gate


class Quarantine:
    """Documents held back by the admission gate: stored durably beside the collection (``quarantine.sqlite``),
    never searchable, each with its suspicion and reasons, until released into the collection or dropped by an
    explicit call."""

    def __init__(self, collection_path: Any, readonly: bool = False) -> None:
        import sqlite3
        from pathlib import Path

        self.path = Path(collection_path) / "quarantine.sqlite"
        self._db = sqlite3.connect(f"file:{self.path}{'?mode=ro' if readonly else ''}", uri=True,
                                   isolation_level=None, check_same_thread=False)
        if not readonly:  # readers (listing, counting: every collection summary) change nothing
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS held (id TEXT PRIMARY KEY, doc TEXT NOT NULL, "
                             "suspicion REAL, reasons TEXT NOT NULL, signs TEXT NOT NULL, at REAL NOT NULL)")
            # ids once held and then released: the gate never calibrates on them (see Gate.calibrate)
            self._db.execute("CREATE TABLE IF NOT EXISTS released (id TEXT PRIMARY KEY, at REAL NOT NULL)")

    def hold(self, docs: Sequence[Any], suspects: Sequence[Suspect]) -> None:
        import json
        import time

        now = time.time()
        with self._db:  # one transaction: all or nothing
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO held VALUES (?, ?, ?, ?, ?, ?)",
                [(d.id, json.dumps(d.to_dict(), ensure_ascii=False), s.suspicion, json.dumps(s.reasons),
                  json.dumps(s.signs), now) for d, s in zip(docs, suspects, strict=True)])

    def list(self, text_chars: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The held documents, most suspicious first: ``{id, suspicion, reasons, signs, held_at}``, and with
        ``text_chars`` > 0 also ``title`` and the first ``text_chars`` characters of ``text`` (to review them)."""
        import json

        rows = self._db.execute("SELECT id, suspicion, reasons, signs, at, doc FROM held ORDER BY suspicion DESC, id "
                                "LIMIT ?", (-1 if limit is None else int(limit),))
        out = []
        for i, s, r, g, a, doc in rows:
            item = {"id": i, "suspicion": s, "reasons": json.loads(r), "signs": json.loads(g), "held_at": a}
            if text_chars > 0:
                d = json.loads(doc)
                item["title"], item["text"] = d.get("title", ""), d.get("text", "")[:text_chars]
            out.append(item)
        return out

    def documents(self, ids: Sequence[str]) -> list[Any]:
        import json

        from retrievo.types import Document

        out = []
        for i in ids:
            row = self._db.execute("SELECT doc FROM held WHERE id = ?", (i,)).fetchone()
            if row is None:
                from retrievo.errors import NotFoundError

                raise NotFoundError(f"no quarantined document with id {i!r} in {self.path}")
            out.append(Document.from_any(json.loads(row[0])))
        return out

    def remove(self, ids: Sequence[str], released: bool = False) -> None:
        """Forget held documents; ``released``: they are in the collection now, and remembered as released."""
        import time

        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM held WHERE id = ?", [(i,) for i in ids])
            if released:
                now = time.time()
                self._db.executemany("INSERT OR REPLACE INTO released VALUES (?, ?)", [(i, now) for i in ids])

    def released(self) -> set[str]:
        """Ids of documents released from here into the collection."""
        return {i for (i,) in self._db.execute("SELECT id FROM released")}

    def drop(self, ids: Sequence[str]) -> int:
        """Forget held documents for good (an explicit decision); an unknown id raises
        :class:`~retrievo.errors.NotFoundError` and nothing is removed."""
        ids = list(dict.fromkeys(ids))
        held = {i for (i,) in self._db.execute(f"SELECT id FROM held WHERE id IN ({','.join('?' * len(ids))})", ids)}
        missing = [i for i in ids if i not in held]
        if missing:  # before anything changes
            from retrievo.errors import NotFoundError

            raise NotFoundError(f"no quarantined document with id {missing[0]!r} in {self.path}")
        self.remove(ids)
        return len(ids)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM held").fetchone()[0])

    @classmethod
    def read(cls, collection_path: Any, text_chars: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The held documents of a collection folder (``[]`` when the gate never held any); see :meth:`list`."""
        from pathlib import Path

        if not (Path(collection_path) / "quarantine.sqlite").exists():
            return []
        with cls(collection_path, readonly=True) as q:
            return q.list(text_chars, limit)

    @classmethod
    def count(cls, collection_path: Any) -> int:
        """How many documents a collection folder's quarantine holds (0 when the gate never held any)."""
        from pathlib import Path

        if not (Path(collection_path) / "quarantine.sqlite").exists():
            return 0
        with cls(collection_path, readonly=True) as q:
            return len(q)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Gate:
    """The admission gate: documents scored against the collection as it stands before they are added; suspects
    are quarantined (:class:`Quarantine`) with their reasons instead of added, the rest added. The scales and
    thresholds come from an :func:`audit` of the collection (its documents are the reference, so at most
    ``max_fpr`` of documents like them are held back).

    Recalibration policy: an audit costs about as much as encoding the probes and reading every document's
    vector, far too much for every commit of a server that commits each second, while the scales it sets move
    only when a good share of the documents changes. So the gate calibrates on its first screen and again only
    once more than ``recalibrate_after`` of the documents it was calibrated on have been written or deleted
    since (counted by the collection's commits, :attr:`~retrievo.store.collection.Collection.changes`, so writes
    that bypass the gate count too); :meth:`calibrate` forces it. Between calibrations new documents are still
    compared with the collection as it stands (neighbours, hubness against the probes' current lists).

    Args:
        collection: a writable collection with a dense model.
        probes: the probe queries (a query log is best), else drawn from the documents.
        recalibrate_after: the share of changed documents that triggers a new calibration.
    """

    def __init__(self, collection: Any, probes: Mapping[str, str] | Sequence[str] | None = None,
                 max_fpr: float = 0.01, n_probes: int = 2000, seed: int = 0, recalibrate_after: float = 0.1) -> None:
        if not (0.0 < max_fpr < 1.0):
            raise InvalidInputError(f"gate: max_fpr must be in (0, 1), got {max_fpr}")
        if recalibrate_after < 0:
            raise InvalidInputError(f"gate: recalibrate_after must be >= 0, got {recalibrate_after}")
        self.collection = collection
        self.quarantine = Quarantine(collection.path)
        self._probes, self.max_fpr, self.n_probes, self.seed = probes, max_fpr, n_probes, seed
        self.recalibrate_after = recalibrate_after
        self.report: AuditReport | None = None
        self.calibrated_on: tuple[int, int] | None = None  # (the collection's changes, its documents) then
        self.calibrations = 0
        self.probe_texts: dict[str, str] = {}
        self.probe_vectors = np.zeros((0, 0), np.float32)

    def calibrate(self) -> AuditReport:
        """Audit the collection as it stands and keep its scales, thresholds and probes. Documents released from
        the quarantine are scored but not part of the reference the thresholds are set on: a suspect let in by
        hand must not make the next one like it look ordinary."""
        self.probe_texts = _probes(self.collection, self._probes, self.n_probes, self.seed)
        released = self.quarantine.released()
        reference = None
        if released:
            snap = self.collection.snapshot()
            reference = [i for i in (snap.ids[r] for r in np.flatnonzero(snap.live)) if i not in released] or None
        self.report = audit(self.collection, self.probe_texts, max_fpr=self.max_fpr, reference=reference)
        self.probe_vectors = self.report.probe_vectors  # encoded once, by the audit
        self.calibrated_on = (self.collection.changes, len(self.collection))
        self.calibrations += 1
        return self.report

    @property
    def stale(self) -> bool:
        """Never calibrated, or more than ``recalibrate_after`` of the documents changed since."""
        if self.report is None or self.calibrated_on is None:
            return True
        changes, documents = self.calibrated_on
        return self.collection.changes - changes > self.recalibrate_after * max(documents, 1)

    def screen(self, docs: Sequence[Any]) -> tuple[list[Any], list[tuple[Any, Suspect]]]:
        """``(admitted, [(document, suspect)])`` for candidate documents (nothing is written)."""
        from retrievo.types import Document

        docs = [Document.from_any(d, where=f"screen: document {i}") for i, d in enumerate(docs)]
        if not docs:
            return [], []
        if self.stale:
            self.calibrate()
        assert self.report is not None
        signs = document_signs(self.collection, docs, self.probe_texts, None, self.probe_vectors,
                               pairs=self.report.pairs, stored=False)
        suspicion, reasons = self.report.scaler.suspicion(signs.values)
        admitted, held = [], []
        for i, d in enumerate(docs):
            if suspicion[i] > 1.0:
                held.append((d, Suspect(d.id, float(suspicion[i]), reasons[i],
                                        {n: float(signs.values[n][i]) for n in SIGNS})))
            else:
                admitted.append(d)
        return admitted, held

    def add(self, docs: Sequence[Any], upsert: bool = False) -> dict[str, Any]:
        """Screen ``docs``; add (or upsert) the admitted to the collection and quarantine the suspects. Returns
        ``{"added": n, "quarantined": [{"id", "suspicion", "reasons"}]}``; call the collection's ``commit``."""
        admitted, held = self.screen(docs)
        if admitted:
            (self.collection.upsert if upsert else self.collection.add)(admitted)
        if held:
            self.quarantine.hold([d for d, _ in held], [s for _, s in held])
        return {"added": len(admitted),
                "quarantined": [{"id": s.id, "suspicion": round(s.suspicion, 3), "reasons": s.reasons} for _, s in held]}

    def release(self, ids: Sequence[str]) -> int:
        """Add quarantined documents to the collection (an explicit decision) and forget them here; call commit."""
        return release_quarantined(self.collection, ids)

    def close(self) -> None:
        self.quarantine.close()


def gate_of(collection: Any, max_fpr: float = 0.01) -> Gate:
    """The gate a collection keeps for ``add/upsert(screen=True)`` (a new one when ``max_fpr`` changes)."""
    gate = collection._gate
    if gate is None or gate.max_fpr != max_fpr:
        gate = Gate(collection, max_fpr=max_fpr)  # checks max_fpr before the old gate is let go
        if collection._gate is not None:
            collection._gate.close()
        collection._gate = gate
    return gate


def screen_into(collection: Any, docs: Any, vectors: Any, where: str, max_fpr: float = 0.01) -> int:
    """``collection.add/upsert(docs, screen=True)``: the admitted are buffered (all or nothing, as without the gate),
    then the suspects quarantined. The collection keeps one gate (per ``max_fpr``), recalibrated as
    :class:`Gate` says."""
    batch = collection.validate_documents(docs, where)
    vecs = None if vectors is None else collection.check_vectors(vectors, batch, where)
    gate = gate_of(collection, max_fpr)
    admitted, held = gate.screen(batch)
    keep = {d.id for d in admitted}
    idx = [i for i, d in enumerate(batch) if d.id in keep]
    n = (collection.upsert if where == "upsert" else collection.add)([batch[i] for i in idx],
                                                                     None if vecs is None else vecs[idx])
    if held:
        gate.quarantine.hold([d for d, _ in held], [s for _, s in held])
    return n


def release_quarantined(collection: Any, ids: Sequence[str]) -> int:
    """Buffer quarantined documents into ``collection``; they leave the quarantine when that commit succeeds
    (:func:`forget_released`), so a release that never commits loses nothing."""
    with Quarantine(collection.path) as q:
        docs = q.documents(list(dict.fromkeys(ids)))
    collection.upsert(docs)
    collection._releasing.update(d.id for d in docs)
    return len(docs)


def forget_released(collection: Any) -> None:
    """After a commit: the released documents are in the collection now; remove them from its quarantine."""
    if collection._releasing:
        with Quarantine(collection.path) as q:
            q.remove(sorted(collection._releasing), released=True)
        collection._releasing.clear()
