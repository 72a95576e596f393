"""A semantic tree over a collection's dense vectors, searched top-down by beam search (LATTICE without an LLM).

**Build** (:meth:`SemanticTree.build`): recursive k-means (scikit-learn's ``KMeans`` on the normalised vectors,
seeded) splits the documents into at most ``branching`` groups per node until a node holds ``leaf_size`` or
fewer; every node keeps the normalised mean of the vectors under it (its centroid) and, for browsing, a keyword
summary from class-based TF-IDF (c-TF-IDF, Grootendorst 2022: a node's term counts against how common each term
is across the nodes of its depth). Leaves keep their documents' vectors contiguously, so scanning a leaf is
one matrix product.

**Search** (:meth:`SemanticTree.search`): from the root, level by level, the children of the nodes in the beam
are scored by their centroid's similarity to the query and smoothed along the path (LATTICE's path relevance,
Gupta et al. 2025: ``path(c) = α · sim(q, c) + (1 − α) · path(parent)``); the ``beam`` best inner nodes go on,
leaves reached are kept, and the ``beam`` best leaves are scanned exactly. The documents' scores are their exact
dense similarities, so what the tree changes is only which documents are looked at — and it reports how many
vectors (centroids + documents) each query scored, the point of a tree.

**Commits** (:meth:`SemanticTree.extend`): documents of new segments are placed in the leaf their vector descends
to (greedy, by centroid), deleted ones are skipped at scan time, and the tree is rebuilt once more than
``rebuild_fraction`` of its documents are new or gone (the signal decides; :mod:`retrievo.signals.tree`).

Why by hand: scikit-learn does the clustering; no library keeps a browsable cluster tree with path-smoothed beam
search over a store whose segments change (FAISS's IVF is one flat level; hierarchical k-means in FLANN is not
maintained for Python).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SemanticTree", "TreeNode"]


@dataclass
class TreeNode:
    """One node: its centroid row, children (node ids), documents (leaf only: positions in the leaf arrays)."""

    id: int
    depth: int
    parent: int
    children: list[int] = field(default_factory=list)
    start: int = 0  # leaf: its documents are keys[start:stop] / vectors[start:stop]
    stop: int = 0
    size: int = 0  # documents under the node
    summary: list[str] = field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return not self.children


class SemanticTree:
    """The tree (see the module docstring). ``keys`` name the documents (the signal uses ``(segment, local row)``
    pairs packed in an int64) and ``rows`` their current global rows."""

    def __init__(self, nodes: list[TreeNode], centroids: np.ndarray, keys: np.ndarray, vectors: np.ndarray,
                 branching: int, leaf_size: int) -> None:
        self.nodes = nodes
        self.centroids = centroids
        self.keys = keys
        self.vectors = vectors
        self.rows = np.full(len(keys), -1, dtype=np.int64)
        self.branching = branching
        self.leaf_size = leaf_size
        self.built_size = len(keys)
        self.inserted = 0
        self.summarised = False

    # ------------------------------------------------------------------------------------------- build
    @classmethod
    def build(cls, keys: np.ndarray, vectors: np.ndarray, branching: int = 10, leaf_size: int = 64,
              seed: int = 0) -> SemanticTree:
        """Recursive k-means over ``vectors`` (``(n, dim)``, normalised), ``keys`` naming them."""
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        nodes: list[TreeNode] = []
        centroids: list[np.ndarray] = []
        order: list[np.ndarray] = []
        offset = 0

        def centroid(idx: np.ndarray) -> np.ndarray:
            c = vectors[idx].mean(axis=0) if len(idx) else np.zeros(dim, np.float32)
            norm = np.linalg.norm(c)
            return (c / norm if norm > 0 else c).astype(np.float32)

        # iterative, breadth-first, so node ids grow with depth
        queue = [(np.arange(n), 0, -1)]
        while queue:
            idx, depth, parent = queue.pop(0)
            node = TreeNode(id=len(nodes), depth=depth, parent=parent, size=len(idx))
            nodes.append(node)
            centroids.append(centroid(idx))
            if parent >= 0:
                nodes[parent].children.append(node.id)
            if len(idx) <= leaf_size:
                node.start, node.stop = offset, offset + len(idx)
                order.append(idx)
                offset += len(idx)
                continue
            k = int(min(branching, math.ceil(len(idx) / leaf_size)))
            km = KMeans(n_clusters=k, n_init=1, max_iter=25, random_state=seed + node.id, tol=1e-4)
            with warnings.catch_warnings():  # duplicate vectors: fewer distinct clusters, handled below
                warnings.simplefilter("ignore", ConvergenceWarning)
                labels = km.fit_predict(vectors[idx])
            groups = [idx[labels == c] for c in range(k)]
            groups = [g for g in groups if len(g)]
            if len(groups) < 2:  # identical vectors: split evenly so the recursion ends
                groups = [g for g in np.array_split(idx, k) if len(g)]
            for g in groups:
                queue.append((g, depth + 1, node.id))
        perm = np.concatenate(order) if order else np.zeros(0, np.int64)
        return cls(nodes, np.stack(centroids), np.asarray(keys)[perm], vectors[perm], branching, leaf_size)

    # ------------------------------------------------------------------------------------------ commits
    def extend(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Place new documents in the leaf each descends to (greedy by centroid)."""
        if not len(keys):
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        leaves = self.descend(vectors)
        per_leaf: dict[int, list[int]] = {}
        for i, leaf in enumerate(leaves.tolist()):
            per_leaf.setdefault(leaf, []).append(i)
        # rebuild the leaf arrays with the new documents appended to their leaves
        new_keys, new_vecs = [], []
        offset = 0
        for node in self.nodes:
            if not node.is_leaf:
                continue
            add = per_leaf.get(node.id, [])
            new_keys.append(self.keys[node.start:node.stop])
            new_vecs.append(self.vectors[node.start:node.stop])
            if add:
                new_keys.append(np.asarray(keys)[add])
                new_vecs.append(vectors[add])
            size = node.stop - node.start + len(add)
            node.start, node.stop = offset, offset + size
            offset += size
            p = node.id
            while p >= 0 and add:
                self.nodes[p].size += len(add)
                p = self.nodes[p].parent
        self.keys = np.concatenate(new_keys)
        self.vectors = np.concatenate(new_vecs)
        self.rows = np.full(len(self.keys), -1, dtype=np.int64)
        self.inserted += len(keys)

    def descend(self, vectors: np.ndarray) -> np.ndarray:
        """The leaf each vector reaches by always taking the most similar child."""
        at = np.zeros(len(vectors), dtype=np.int64)
        while True:
            moved = False
            for node_id in np.unique(at):
                node = self.nodes[int(node_id)]
                if node.is_leaf:
                    continue
                sel = np.flatnonzero(at == node_id)
                kids = np.asarray(node.children)
                best = np.argmax(vectors[sel] @ self.centroids[kids].T, axis=1)
                at[sel] = kids[best]
                moved = True
            if not moved:
                return at

    # ------------------------------------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int, beam: int = 8, alpha: float = 0.7,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Top-k rows per query by beam search (see the module docstring).

        Args:
            queries: ``(nq, dim)`` normalised query vectors.
            allowed: boolean mask over global rows (live and filter); rows not allowed are never returned.

        Returns:
            ``(rows, scores, counts, scored)``: ``(nq, k)`` rows and exact scores (padded ``-1``/``-inf``), real
            entries per query, and vectors scored per query (centroids + documents).
        """
        nq = len(queries)
        k = max(int(k), 1)
        out_rows = np.full((nq, k), -1, dtype=np.int64)
        out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
        counts = np.zeros(nq, dtype=np.int64)
        scored = np.zeros(nq, dtype=np.int64)
        ok = self.rows >= 0
        if allowed is not None:
            ok &= np.asarray(allowed, dtype=bool)[np.where(self.rows >= 0, self.rows, 0)]
        for qi in range(nq):
            q = np.asarray(queries[qi], dtype=np.float32)
            frontier: list[tuple[int, float | None]] = [(0, None)]
            leaves: list[tuple[float, int]] = [(0.0, 0)] if self.nodes[0].is_leaf else []
            n_scored = 0
            while frontier:
                kids, parent_path = [], []
                for node, p in frontier:
                    for c in self.nodes[node].children:
                        kids.append(c)
                        parent_path.append(np.nan if p is None else p)
                sims = self.centroids[kids] @ q
                n_scored += len(kids)
                pp = np.asarray(parent_path, dtype=np.float64)
                path = np.where(np.isnan(pp), sims, alpha * sims + (1 - alpha) * pp)
                inner = []
                for c, s in zip(kids, path.tolist(), strict=True):
                    (leaves if self.nodes[c].is_leaf else inner).append((s, c))
                inner.sort(key=lambda x: (-x[0], x[1]))
                frontier = [(c, s) for s, c in inner[:beam]]
            leaves.sort(key=lambda x: (-x[0], x[1]))
            spans = [(self.nodes[c].start, self.nodes[c].stop) for _, c in leaves[:beam]]
            if not spans:
                continue
            pos = np.concatenate([np.arange(a, b) for a, b in spans])
            n_scored += len(pos)
            pos = pos[ok[pos]]
            scored[qi] = n_scored
            if not len(pos):
                continue
            s = self.vectors[pos] @ q
            top = min(k, len(pos))
            # ties broken by row, as every index does
            order = np.lexsort((self.rows[pos], -s))[:top]
            out_rows[qi, :top] = self.rows[pos[order]]
            out_scores[qi, :top] = s[order]
            counts[qi] = top
        return out_rows, out_scores, counts, scored

    # ----------------------------------------------------------------------------------------- browsing
    def summarise(self, texts_of: Any, top: int = 8, sample_per_leaf: int = 200, seed: int = 0) -> None:
        """Keyword summaries of every node by c-TF-IDF over (up to ``sample_per_leaf`` documents of each leaf).

        Args:
            texts_of: a function from an array of leaf positions to the documents' texts.
        """
        from sklearn.feature_extraction.text import CountVectorizer

        rng = np.random.default_rng(seed)
        leaves = [n for n in self.nodes if n.is_leaf]
        picks = []
        for n in leaves:
            pos = np.arange(n.start, n.stop)
            if len(pos) > sample_per_leaf:
                pos = np.sort(rng.choice(pos, sample_per_leaf, replace=False))
            picks.append(pos)
        self.summarised = True
        texts = texts_of(np.concatenate(picks)) if picks else []
        if not any(t.strip() for t in texts):
            return
        cv = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_][\w-]+\b", min_df=1)
        try:
            x = cv.fit_transform(texts)
        except ValueError:  # no word but stopwords and single letters: nothing to summarise with
            return
        vocab = np.asarray(cv.get_feature_names_out())
        counts = np.zeros((len(self.nodes), x.shape[1]), dtype=np.float64)
        start = 0
        for n, pos in zip(leaves, picks, strict=True):
            counts[n.id] = np.asarray(x[start:start + len(pos)].sum(axis=0)).ravel()
            start += len(pos)
        for n in sorted(self.nodes, key=lambda n: -n.depth):  # children before parents
            if n.parent >= 0:
                counts[n.parent] += counts[n.id]
        total = counts[0] if counts[0].sum() else counts.sum(axis=0)
        for depth in {n.depth for n in self.nodes}:
            ids = [n.id for n in self.nodes if n.depth == depth]
            c = counts[ids]
            words = c.sum(axis=1, keepdims=True)
            avg = max(float(words.mean()), 1.0)
            w = (c / np.maximum(words, 1.0)) * np.log1p(avg / np.maximum(total, 1.0))
            for row, node_id in enumerate(ids):
                best = np.argsort(-w[row], kind="stable")[:top]
                self.nodes[node_id].summary = [str(vocab[j]) for j in best if c[row, j] > 0]

    def node_info(self, node_id: int, ids_of: Any, documents: int = 20) -> dict[str, Any]:
        """What browsing shows of a node: its summary, size, children (with theirs) and, for a leaf, its documents."""
        if not (0 <= node_id < len(self.nodes)):
            raise IndexError(node_id)
        n = self.nodes[node_id]
        out: dict[str, Any] = {"id": n.id, "depth": n.depth, "parent": n.parent if n.parent >= 0 else None,
                               "size": n.size, "summary": n.summary,
                               "children": [{"id": c, "size": self.nodes[c].size, "summary": self.nodes[c].summary,
                                             "leaf": self.nodes[c].is_leaf} for c in n.children]}
        if n.is_leaf:
            pos = np.arange(n.start, n.stop)
            pos = pos[self.rows[pos] >= 0][:documents]
            out["documents"] = ids_of(self.rows[pos])
        return out

    @property
    def n_leaves(self) -> int:
        return sum(1 for n in self.nodes if n.is_leaf)

    @property
    def depth(self) -> int:
        return max(n.depth for n in self.nodes)
