"""What a signal is: one way to score documents for a query, from encoding at commit to searching a snapshot.

A :class:`Signal` is bound to one collection (its *host*) and takes part in four moments:

1. **commit** — :meth:`Signal.encode` turns the committed documents into per-row arrays, declared by
   :attr:`Signal.layouts` so that the store writes, slices and merges them without knowing the signal;
   :meth:`Signal.write_derived` builds what is kept beside an immutable segment (an ANN graph, codes,
   posting lists) before the segment is published;
2. **load** — :meth:`Signal.load` makes the searchable structure of one generation from its segments (kept
   in the :class:`~retrievo.store.snapshot.Snapshot`, so readers never mix generations);
3. **search** — :meth:`Signal.search` gives the top ``depth`` rows of each query as :class:`Candidates`,
   within the allowed rows (filter and live rows);
4. **feedback** (optional) — :meth:`Signal.feedback` searches again with a query moved towards the first
   results (pseudo-relevance feedback).

The built-in signals are :mod:`~retrievo.signals.bm25`, :mod:`~retrievo.signals.dense` and
:mod:`~retrievo.signals.splade`; a plugin subclasses :class:`Signal` and calls
:func:`~retrievo.signals.registry.register_signal`. A collection computes a plugin signal when its config
names it (``CollectionConfig(signals={"name": {...}})``; the dict is the signal's own settings).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from retrievo.errors import InvalidInputError
from retrievo.store.segments import Layout, SegmentData

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.config import CollectionConfig, PRFConfig
    from retrievo.request import Option, SearchRequest
    from retrievo.store.snapshot import Snapshot
    from retrievo.types import Document

__all__ = ["Candidates", "EncodeBatch", "SearchContext", "Signal"]


@dataclass
class Candidates:
    """Ranked rows of a batch of queries: ``rows``/``scores`` shaped ``(n_queries, width)``, best first,
    padded with ``-1``/``-inf``; ``counts[i]`` real entries in row ``i`` — what every index returns."""

    rows: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    probabilities: np.ndarray | None = None

    @classmethod
    def of(cls, result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Candidates:
        """From an index's ``(rows, scores, counts)``."""
        rows, scores, counts = result
        return cls(rows, scores, counts)

    @classmethod
    def empty(cls, n_queries: int, width: int) -> Candidates:
        return cls(np.full((n_queries, width), -1, np.int64), np.full((n_queries, width), -np.inf, np.float32),
                   np.zeros(n_queries, np.int64))

    def __len__(self) -> int:
        return len(self.counts)

    def query(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        """``(rows, scores, count)`` of query ``i``."""
        return self.rows[i], self.scores[i], int(self.counts[i])


@dataclass
class EncodeBatch:
    """The documents of one commit, as every signal encodes them.

    Attributes:
        docs: the documents, in row order of the new segment.
        vocab: the collection's term dictionary (term -> id); a signal may append terms (ids ``len(vocab)``
            onwards), and the commit publishes them with the segment.
        supplied: per signal name, values a caller gave instead of encoding (``{"dense": {doc_id: vector}}``).
        snapshot: the collection's state before this commit (for checks against what is stored).
        show_progress: whether long steps show a progress bar.
    """

    docs: list[Document]
    vocab: dict[str, int]
    supplied: Mapping[str, Mapping[str, Any]]
    snapshot: Snapshot
    show_progress: bool = False


@dataclass
class SearchContext:
    """One search, as the signals and stages see it.

    Attributes:
        host: the collection searched (its path names it in messages).
        snapshot: the one generation everything is read from.
        request: the resolved :class:`~retrievo.request.SearchRequest`.
        queries: query texts (``""`` for vector-only queries).
        query_vectors: dense query vectors a caller gave, checked, or ``None``.
        allowed: boolean mask of the rows the filter allows (``None``: no filter); live rows are applied
            by the indexes.
        signals: the request's signals, bound to the host, in the method's order.
        artefacts: learned artefacts of the collection (calibrators, query adapter).
        scratch: what a signal or stage keeps between its steps (prepared queries, loaded calibrators).
    """

    host: Any
    snapshot: Snapshot
    request: SearchRequest
    queries: list[str]
    query_vectors: np.ndarray | None
    allowed: np.ndarray | None
    signals: dict[str, Signal]
    artefacts: Any
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def n_queries(self) -> int:
        return len(self.queries)


class Signal(ABC):
    """Base class of a signal (see the module docstring).

    Class attributes:
        name: what a method names it by (``"bm25"``).
        layouts: the per-row arrays it keeps in each segment.
        options: search options it reads from ``SearchRequest.options`` (registered with it).
        takes_query_vectors: whether it uses query vectors a caller gives (``search(query_vectors=...)``).
    """

    name: ClassVar[str] = ""
    layouts: ClassVar[tuple[Layout, ...]] = ()
    options: ClassVar[tuple[Option, ...]] = ()
    takes_query_vectors: ClassVar[bool] = False

    def __init__(self, host: Any) -> None:
        self.host = host

    # -- which collections have it -------------------------------------------------------------------
    @classmethod
    def enabled(cls, config: CollectionConfig) -> bool:
        """Whether a collection with ``config`` computes this signal (a plugin: when ``config.signals`` names it)."""
        return cls.name in config.signals

    @classmethod
    def configure(cls, config: CollectionConfig, use: bool) -> CollectionConfig:
        """``config`` with this signal turned on or off (``retrievo eval`` builds a collection per method)."""
        signals = dict(config.signals)
        if use:
            signals.setdefault(cls.name, {})
        else:
            signals.pop(cls.name, None)
        return config.replace(signals=signals)

    @classmethod
    def complete(cls, config: CollectionConfig) -> CollectionConfig:
        """``config`` with this signal's settings filled in as the manifest keeps them (every default written
        out, so a later version's defaults never change a stored collection). Default: unchanged."""
        return config

    @classmethod
    def missing(cls, method: str, where: Any) -> str:
        """The message when a method names this signal and the collection at ``where`` does not have it."""
        return (f"search: method {method!r} needs the {cls.name!r} signal, and {where} does not compute it; "
                f"create the collection with CollectionConfig(signals={{{cls.name!r}: {{}}}})")

    @property
    def settings(self) -> Mapping[str, Any]:
        """This signal's own settings in the collection's config (a plugin's ``config.signals[name]``)."""
        return self.host.config.signals.get(self.name, {})

    # -- commit --------------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, batch: EncodeBatch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays (named as in :attr:`layouts`) and segment metadata of a commit's documents.

        Raise :class:`~retrievo.errors.InvalidInputError` to refuse the commit (nothing is written)."""

    def write_derived(self, seg_dir: Path, data: SegmentData) -> None:
        """Build what is kept beside a new segment (before it is published). Default: nothing."""
        return None

    # -- load ----------------------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> Any:
        """The searchable structure of a generation (``snapshot.signals[name]``); ``None`` if there is none.
        Called only when the generation has segments."""
        return None

    def data(self, snapshot: Snapshot) -> SegmentData | None:
        """This signal's arrays over all rows of ``snapshot`` (one segment's memory maps, or a concatenation),
        or ``None`` when some segment lacks them."""
        parts = [s.data for s in snapshot.segments]
        if not parts or not all(p.has(layout) for p in parts for layout in self.layouts):
            return None
        return parts[0] if len(parts) == 1 else SegmentData.concat(parts, self.layouts)

    # -- search --------------------------------------------------------------------------------------
    def prepare(self, ctx: SearchContext) -> None:
        """Check and load what a search needs before any retrieval runs (so bad input fails fast)."""
        return None

    def begin(self, ctx: SearchContext, depth: int) -> None:
        """Start :meth:`search` without waiting for it, when its work runs elsewhere (a sharded collection's
        signals send their requests here, so that every signal's shards work at once). Default: nothing."""
        return None

    @abstractmethod
    def search(self, ctx: SearchContext, depth: int) -> Candidates:
        """The top ``depth`` rows of each query among ``ctx.allowed`` and the live rows."""

    def feedback_depth(self, prf: PRFConfig) -> int | None:
        """How many first results :meth:`feedback` uses (``None``: this signal has no feedback)."""
        return None

    def feedback(self, ctx: SearchContext, first: Candidates, depth: int, prf: PRFConfig) -> Candidates:
        """Search again with the queries moved towards ``first`` (pseudo-relevance feedback)."""
        raise InvalidInputError(f"the {self.name!r} signal has no pseudo-relevance feedback")

    # -- the rest ------------------------------------------------------------------------------------
    def info(self, snapshot: Snapshot) -> dict[str, Any]:
        """What ``Collection.info()`` reports about this signal."""
        return {}

    @classmethod
    def absent_info(cls, config: CollectionConfig) -> dict[str, Any]:
        """What ``Collection.info()`` reports for this signal on a collection without it (the same keys)."""
        return {}

    def share_from(self, other: Signal) -> None:
        """Use the models ``other`` (the same signal of another view of the collection) has loaded."""
        return None

    def close(self) -> None:
        """Release files and caches."""
        return None


def prepared(ctx: SearchContext, signal: Signal, make: Any) -> Any:
    """``make()`` once per search and signal (its prepared queries), kept in ``ctx.scratch``."""
    key = ("queries", signal.name)
    if key not in ctx.scratch:
        ctx.scratch[key] = make()
    return ctx.scratch[key]
