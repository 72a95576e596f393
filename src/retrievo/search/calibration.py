"""Calibrated relevance: the probability that a result is relevant, and a result list cut where it drops.

A ranked list's raw scores do not say how many of its results are relevant: BM25 scores are unbounded and
depend on the query's length and rarity, cosine scores sit in a narrow band, and fused scores are min-max
normalised per query. A :class:`ScoreCalibrator` maps each result to ``P(relevant)`` with a logistic
regression (Platt scaling, extended to a few features of the result's place in its list) fitted on
judged queries of the same method — a training split, never the one reported:

- the score; its gap to the list's top score; its ratio to the top score (when that is positive);
- ``log(rank)``;
- the gap between the list's first and second scores (a confident head).

Features are standardised with the training mean and deviation. The fit is scikit-learn's
``LogisticRegression`` (a dependency of sentence-transformers, so always installed); the fitted weights are
kept as plain JSON (no pickle) and applied with numpy. ``search(..., min_probability=p)`` then returns, per
query, only the results whose probability reaches ``p`` — a list length that follows the query instead of
a fixed ``k``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievo._io import write_json
from retrievo.errors import InvalidInputError
from retrievo.search.stages import Stage

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.request import SearchRequest
    from retrievo.signals.base import Candidates, SearchContext

__all__ = ["CutoffStage", "ScoreCalibrator", "calibration_report", "list_features"]

FEATURES = ("score", "gap_to_top", "ratio_to_top", "log_rank", "top_gap")


def list_features(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(n, k, 5)`` features of every result of ``(n, k)`` ranked scores (padding rows are left zero)."""
    scores = np.asarray(scores, dtype=np.float64)
    n, k = scores.shape
    out = np.zeros((n, k, len(FEATURES)), dtype=np.float64)
    valid = np.arange(k)[None, :] < np.asarray(counts)[:, None]
    s = np.where(valid, scores, 0.0)
    top = s[:, :1]
    second = np.where(np.asarray(counts)[:, None] > 1, s[:, 1:2], top) if k > 1 else top
    out[..., 0] = s
    out[..., 1] = s - top
    out[..., 2] = np.where(top > 0, s / np.where(top > 0, top, 1.0), 0.0)
    out[..., 3] = np.log(np.arange(1, k + 1))[None, :]
    out[..., 4] = top - second
    out[~valid] = 0.0
    return out


@dataclass(frozen=True)
class ScoreCalibrator:
    """``P(relevant | result)`` for one search method (see the module docstring).

    Attributes:
        method: the search method it was fitted on (its scores only mean something for that method).
        depth: results per query used in the fit; probabilities are meant for ranks up to it.
        mean, std: feature standardisation.
        coef, intercept: the logistic regression.
        n_queries, n_results, positive_rate: what it was fitted on.
        key: the setting it was fitted under (:meth:`retrievo.request.SearchRequest.key`); it is applied
            only to searches of that setting.
    """

    method: str
    depth: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    n_queries: int
    n_results: int
    positive_rate: float
    key: str = ""

    @classmethod
    def fit(cls, scores: np.ndarray, counts: np.ndarray, labels: np.ndarray, method: str,
            c: float = 1.0, key: str = "") -> ScoreCalibrator:
        """Fit on ``(n, k)`` ranked scores and their 0/1 relevance ``labels`` (same shape)."""
        from sklearn.linear_model import LogisticRegression

        scores = np.asarray(scores)
        counts = np.asarray(counts)
        labels = np.asarray(labels)
        if scores.shape != labels.shape or scores.ndim != 2:
            raise InvalidInputError(f"calibration: scores {scores.shape} and labels {labels.shape} must be (n, k)")
        valid = np.arange(scores.shape[1])[None, :] < counts[:, None]
        y = labels[valid].astype(int)
        if y.min(initial=1) == y.max(initial=0):
            raise InvalidInputError("calibration: the judged results must include relevant and non-relevant ones")
        x = list_features(scores, counts)[valid]
        mean, std = x.mean(axis=0), x.std(axis=0)
        std[std == 0] = 1.0
        lr = LogisticRegression(C=c, max_iter=1000).fit((x - mean) / std, y)
        return cls(method=method, depth=int(scores.shape[1]), mean=tuple(map(float, mean)), std=tuple(map(float, std)),
                   coef=tuple(map(float, lr.coef_[0])), intercept=float(lr.intercept_[0]),
                   n_queries=int(len(counts)), n_results=int(valid.sum()), positive_rate=float(y.mean()),
                   key=key or method)

    def probabilities(self, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """``(n, k)`` probabilities of relevance (0 for padding)."""
        x = list_features(scores, counts)
        z = ((x - np.array(self.mean)) / np.array(self.std)) @ np.array(self.coef) + self.intercept
        p = 1.0 / (1.0 + np.exp(-z))
        valid = np.arange(p.shape[1])[None, :] < np.asarray(counts)[:, None]
        return np.where(valid, p, 0.0)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, asdict(self), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> ScoreCalibrator:
        try:
            d: dict[str, Any] = json.loads(Path(path).read_text())
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidInputError(f"{path}: not a readable calibration file ({exc})") from exc


class CutoffStage(Stage):
    """The stage of the calibrated cut-off: probabilities from the calibrator fitted for the request's
    setting, and each list cut at its first result under ``min_probability`` (probabilities fall with rank
    for a fitted calibrator only mostly, so the cut is at the first one below)."""

    name = "cutoff"
    order = 900

    def active(self, request: SearchRequest) -> bool:
        return request.min_probability is not None

    def prepare(self, ctx: SearchContext) -> None:
        ctx.scratch[("cutoff", "calibrator")] = ctx.artefacts.calibrator(ctx.request)

    def apply(self, ctx: SearchContext, lists: dict[str, Candidates]) -> dict[str, Candidates]:
        (name, cands), = lists.items()
        cal = ctx.scratch[("cutoff", "calibrator")]
        k = cands.rows.shape[1]
        rows, scores = cands.rows.copy(), cands.scores.copy()
        prob = cal.probabilities(scores, cands.counts)
        below = (prob < float(ctx.request.min_probability)) | (rows < 0)
        counts = np.where(below.any(axis=1), below.argmax(axis=1), cands.counts).astype(np.int64)
        cut = np.arange(k)[None, :] >= counts[:, None]
        rows[cut], scores[cut], prob[cut] = -1, -np.inf, 0.0
        return {name: type(cands)(rows, scores, counts, prob)}


def calibration_report(prob: np.ndarray, labels: np.ndarray, counts: np.ndarray, n_relevant: np.ndarray,
                       threshold: float, bins: int = 10) -> dict[str, float]:
    """How well ``prob`` is calibrated (Brier score, expected calibration error over ``bins`` equal-width
    bins) and what cutting each list before its first result under ``threshold`` gives (as
    ``search(..., min_probability=threshold)`` does): mean list length and per-query mean precision, recall
    (of the query's ``n_relevant`` judged documents) and F1 (queries whose cut list is empty count precision
    0)."""
    valid = np.arange(prob.shape[1])[None, :] < np.asarray(counts)[:, None]
    p, y = prob[valid], labels[valid].astype(float)
    brier = float(np.mean((p - y) ** 2))
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).sum()
                    for b in range(bins) if (idx == b).any()) / len(p))
    keep = np.cumprod(valid & (prob >= threshold), axis=1).astype(bool)
    tp = (keep & (labels > 0)).sum(axis=1)
    n_keep = keep.sum(axis=1)
    prec = np.where(n_keep > 0, tp / np.maximum(n_keep, 1), 0.0)
    rec = tp / np.maximum(n_relevant, 1)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    return {"brier": brier, "ece": ece, "mean_length": float(n_keep.mean()), "precision": float(prec.mean()),
            "recall": float(rec.mean()), "f1": float(f1.mean())}
