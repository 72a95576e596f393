"""The tree signal (``method="tree"``): dense search through a semantic tree, and browsing it.

Every collection with dense vectors has it; nothing is stored per segment. A generation's tree
(:class:`~retrievo.structure.tree.SemanticTree`) is built from the live dense vectors on the first tree search or
browse, and kept for the generation. After a commit the next generation's tree starts from the previous one:
documents name their place as (segment, row in it), so documents of kept segments keep their leaf, documents of
new segments (added, replaced, or moved by a merge) descend to a leaf, and deleted ones are skipped; once more
than ``rebuild_fraction`` of the documents are new or gone the tree is rebuilt. Settings: ``CollectionConfig(
signals={"tree": {...}})`` with :class:`~retrievo.config.TreeConfig`'s fields; options ``tree_beam`` and
``tree_alpha`` per search.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from retrievo.config import CollectionConfig, TreeConfig
from retrievo.errors import InvalidInputError, NotFoundError
from retrievo.request import TREE_OPTIONS
from retrievo.signals.base import Candidates, EncodeBatch, SearchContext, Signal
from retrievo.store.snapshot import Snapshot

__all__ = ["TreeSignal"]

_KEY = ("tree", "tree")


def _keys(seg: int, local: np.ndarray) -> np.ndarray:
    return (np.int64(seg) << np.int64(32)) | local.astype(np.int64)


class TreeSignal(Signal):
    """Beam search down a semantic tree of the dense vectors (see the module docstring)."""

    name = "tree"
    options = TREE_OPTIONS

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.config = TreeConfig.from_dict(dict(self.settings))
        self._last: Any = None  # the latest generation's tree, to extend at the next
        self._lock = threading.Lock()

    @classmethod
    def enabled(cls, config: CollectionConfig) -> bool:
        return config.dense is not None

    @classmethod
    def configure(cls, config: CollectionConfig, use: bool) -> CollectionConfig:
        return config

    @classmethod
    def missing(cls, method: str, where: Any) -> str:
        return f"search: method {method!r} searches a tree of the dense vectors, and {where} has no dense model"

    def encode(self, batch: EncodeBatch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {}

    # -- the tree of a generation ----------------------------------------------------------------------
    def tree(self, snapshot: Snapshot) -> Any:
        """The generation's tree (built, or extended from the previous generation's, on first use); ``None``
        for an empty collection."""
        tree = snapshot.derived.get(_KEY)
        if tree is not None:
            return tree
        with self._lock:
            tree = snapshot.derived.get(_KEY)
            if tree is None:
                tree = snapshot.derived[_KEY] = self._make(snapshot)
                if tree is not None:
                    self._last = (snapshot.generation, tree)
        return tree

    def _live(self, snapshot: Snapshot, segs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        keys, vecs = [], []
        for s in segs:
            off = snapshot.offsets[s.seg]
            local = np.flatnonzero(snapshot.live[off:off + s.n_rows])
            if s.data.get("dense") is None:
                raise InvalidInputError(f"{self.host.path}: some segments hold no dense vectors; re-index")
            keys.append(_keys(s.seg, local))
            vecs.append(np.asarray(s.data.dense[local], dtype=np.float32))
        dim = snapshot.signals["dense"].dim if snapshot.signals.get("dense") is not None else 0
        return (np.concatenate(keys) if keys else np.zeros(0, np.int64),
                np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32))

    def _make(self, snapshot: Snapshot) -> Any:
        from retrievo.structure.tree import SemanticTree

        if not snapshot.segments or snapshot.n_live == 0:
            return None
        cfg = self.config
        last = self._last[1] if self._last is not None and self._last[0] < snapshot.generation else None
        tree = None
        if last is not None:
            kept = {s.seg for s in snapshot.segments}
            in_tree = set((last.keys >> np.int64(32)).tolist())
            rows = self._rows(snapshot, last.keys)
            gone = int((rows < 0).sum())
            new_segs = [s for s in snapshot.segments if s.seg not in in_tree]
            keys, vecs = self._live(snapshot, new_segs)
            if (gone + len(keys) + last.inserted) <= cfg.rebuild_fraction * last.built_size and kept & in_tree:
                tree = _copy(last)
                tree.extend(keys, vecs)
        if tree is None:
            keys, vecs = self._live(snapshot, list(snapshot.segments))
            tree = SemanticTree.build(keys, vecs, cfg.branching, cfg.leaf_size, cfg.seed)
        tree.rows = self._rows(snapshot, tree.keys)
        return tree

    @staticmethod
    def _rows(snapshot: Snapshot, keys: np.ndarray) -> np.ndarray:
        """The global rows of ``keys`` in ``snapshot`` (``-1``: segment gone or row deleted)."""
        segs = keys >> np.int64(32)
        local = keys & np.int64(0xFFFFFFFF)
        rows = np.full(len(keys), -1, dtype=np.int64)
        for seg in np.unique(segs).tolist():
            off = snapshot.offsets.get(int(seg))
            if off is None:
                continue
            sel = segs == seg
            rows[sel] = off + local[sel]
        ok = rows >= 0
        ok[ok] = snapshot.live[rows[ok]]
        rows[~ok] = -1
        return rows

    # -- search --------------------------------------------------------------------------------------
    def settings_of(self, ctx: SearchContext) -> tuple[int, float]:
        """The search's beam and path smoothing (the request's, else the collection's), checked."""
        beam = ctx.request.options.get("tree_beam")
        alpha = ctx.request.options.get("tree_alpha")
        beam = self.config.beam if beam is None else beam
        alpha = self.config.alpha if alpha is None else alpha
        if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < 1:
            raise InvalidInputError(f"search: tree_beam must be an integer >= 1, got {beam!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0 < alpha <= 1):
            raise InvalidInputError(f"search: tree_alpha must be in (0, 1], got {alpha!r}")
        return int(beam), float(alpha)

    def prepare(self, ctx: SearchContext) -> None:
        self.settings_of(ctx)
        if ctx.snapshot.segments and ctx.snapshot.signals.get("dense") is None:
            raise InvalidInputError(f"{self.host.path}: some segments hold no dense vectors; re-index")

    def search(self, ctx: SearchContext, depth: int) -> Candidates:
        tree = self.tree(ctx.snapshot)
        if tree is None:
            return Candidates.empty(ctx.n_queries, max(int(depth), 1))
        qv = self.host.signals["dense"].query_vectors(ctx)
        beam, alpha = self.settings_of(ctx)
        rows, scores, counts, scored = tree.search(qv, depth, beam=beam, alpha=alpha, allowed=ctx.allowed)
        ctx.scratch[("tree", "scored")] = scored
        return Candidates(rows, scores, counts)

    # -- browsing ------------------------------------------------------------------------------------
    def browse(self, snapshot: Snapshot, node: int = 0, documents: int = 20) -> dict[str, Any]:
        """A node of the generation's tree: keyword summary, size, children, and a leaf's documents."""
        tree = self.tree(snapshot)
        if tree is None:
            raise NotFoundError(f"{self.host.path} holds no documents, so it has no tree")
        if not tree.summarised:
            with self._lock:
                if not tree.summarised:
                    tree.summarise(lambda pos: [d.content(("title", "text")) if d is not None else ""
                                                for d in self.host.documents_at(tree.rows[pos].tolist(), snapshot)])
        if isinstance(node, bool) or not isinstance(node, (int, np.integer)) or not (0 <= node < len(tree.nodes)):
            raise NotFoundError(f"{self.host.path}: the tree has nodes 0 to {len(tree.nodes) - 1}, not {node!r}")
        return tree.node_info(int(node), lambda rows: [str(snapshot.ids[r]) for r in rows.tolist()], documents)

    def info(self, snapshot: Snapshot) -> dict[str, Any]:
        tree = snapshot.derived.get(_KEY)
        if tree is None:
            return {"tree": None}
        return {"tree": {"nodes": len(tree.nodes), "leaves": tree.n_leaves, "depth": tree.depth,
                         "documents": int((tree.rows >= 0).sum())}}

    @classmethod
    def absent_info(cls, config: CollectionConfig) -> dict[str, Any]:
        return {}


def _copy(tree: Any) -> Any:
    """A copy whose nodes and arrays the next generation may change (the previous generation keeps its own)."""
    import copy

    out = copy.copy(tree)
    out.nodes = [copy.copy(n) for n in tree.nodes]
    for n in out.nodes:
        n.children = list(n.children)
    return out
