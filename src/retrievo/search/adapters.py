"""A query adapter: a linear map learnt from relevance judgements that moves query vectors towards their
relevant documents, so a dense model fits a domain without re-encoding (re-indexing) a single document.

Documents keep their stored vectors; only the query side changes: ``q' = (q + q·A) · |q| / |q + q·A|``,
``A`` a ``dim × dim`` matrix starting at zero (the identity map). It is trained with the InfoNCE loss
of dense-retrieval training (temperature 0.05) over each judged query's relevant documents against the
dense index's own top results that are not judged relevant (hard negatives), with weight decay on ``A``
(it stays near the identity) and early stopping on a validation part of the training queries
(recall of the positives among the candidates, checked every epoch). The idea of adapting only the
query side of a frozen embedding model is from the "embedding adapters" line of work (e.g. Chroma's
technical report "Embedding Adapters", 2024; linear adapters in the BEIR setting).

Written here: a few dozen lines of PyTorch (already a dependency) over vectors the collection already
holds; the adapter is saved as a plain ``.npy`` matrix next to a JSON description.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import load_npy, save_npy, write_json
from retrievo.errors import InvalidInputError

__all__ = ["QueryAdapter", "fit_query_adapter"]


@dataclass(frozen=True)
class AdapterInfo:
    dim: int
    n_train: int
    n_val: int
    epochs_run: int
    best_epoch: int
    val_hit_before: float
    val_hit_after: float


class QueryAdapter:
    """``q -> (q + q·A)`` rescaled to ``|q|`` (see the module docstring)."""

    def __init__(self, a: np.ndarray, info: AdapterInfo) -> None:
        self.a = np.asarray(a, dtype=np.float32)
        self.info = info

    def apply(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float32)
        if q.shape[-1] != self.a.shape[0]:
            raise InvalidInputError(f"query adapter: vectors have dimension {q.shape[-1]}, the adapter {self.a.shape[0]}")
        out = q + q @ self.a
        scale = np.linalg.norm(q, axis=-1, keepdims=True) / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        return (out * scale).astype(np.float32)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_npy(folder / "query_adapter.npy", self.a, sync_dir=False)
        write_json(folder / "query_adapter.json", asdict(self.info), indent=1)

    @classmethod
    def load(cls, folder: str | Path) -> QueryAdapter:
        folder = Path(folder)
        try:
            return cls(load_npy(folder / "query_adapter.npy"),
                       AdapterInfo(**json.loads((folder / "query_adapter.json").read_text())))
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidInputError(f"{folder}: no readable query adapter ({exc})") from exc


def fit_query_adapter(queries: np.ndarray, positives: list[np.ndarray], negatives: list[np.ndarray],
                      epochs: int = 30, lr: float = 1e-3, weight_decay: float = 1e-2, temperature: float = 0.05,
                      val_fraction: float = 0.2, batch_size: int = 64, seed: int = 0,
                      show_progress: bool = False) -> QueryAdapter:
    """Learn ``A`` from query vectors and, per query, its relevant documents' vectors (``positives[i]``,
    ``(p_i, dim)``) and hard negatives' vectors (``negatives[i]``, ``(n_i, dim)``).

    A seeded ``val_fraction`` of the queries is held out; the epoch whose adapter ranks a positive first among
    each held-out query's candidates most often is kept (the zero adapter — no change — when none beats it).
    ``val_fraction=0``: every query is trained on and the last epoch's adapter is kept (what the queries teach,
    good or bad — :func:`retrievo.training.mixing.source_rewards` measures that elsewhere).
    """
    import torch

    q = np.asarray(queries, dtype=np.float32)
    n, dim = q.shape
    if n < 5 or len(positives) != n or len(negatives) != n:
        raise InvalidInputError(f"query adapter: needs >= 5 judged queries with positives and negatives, got {n}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = max(1, int(round(val_fraction * n))) if val_fraction > 0 else 0
    val, train = order[:n_val], order[n_val:]
    if not n_val:
        val = order  # only reported: the queries it trains on
    torch.manual_seed(seed)

    def pack(idx):
        """Per query: candidates = its positives then negatives (padded), and a positive mask."""
        width = max(len(positives[i]) + len(negatives[i]) for i in idx)
        cand = np.zeros((len(idx), width, dim), np.float32)
        pos = np.zeros((len(idx), width), bool)
        valid = np.zeros((len(idx), width), bool)
        for r, i in enumerate(idx):
            p, ng = positives[i], negatives[i]
            cand[r, :len(p)] = p
            cand[r, len(p):len(p) + len(ng)] = ng
            pos[r, :len(p)] = True
            valid[r, :len(p) + len(ng)] = True
        return torch.from_numpy(q[idx]), torch.from_numpy(cand), torch.from_numpy(pos), torch.from_numpy(valid)

    a = torch.zeros(dim, dim, requires_grad=True)
    opt = torch.optim.AdamW([a], lr=lr, weight_decay=weight_decay)

    def scores(qb, cand, mat):
        qa = qb + qb @ mat
        qa = qa / qa.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return torch.einsum("bd,bcd->bc", qa, cand)

    vq, vc, vp, vv = pack(val)

    def val_hit(mat) -> float:
        with torch.no_grad():
            s = scores(vq, vc, mat).masked_fill(~vv, -1e9)
            return float(vp.gather(1, s.argmax(dim=1, keepdim=True)).float().mean())

    best = (val_hit(torch.zeros(dim, dim)), 0, torch.zeros(dim, dim))
    before = best[0]
    epochs_run = 0
    epoch_iter: Any = range(1, epochs + 1)
    if show_progress:
        from tqdm.auto import tqdm

        epoch_iter = tqdm(epoch_iter, desc="query adapter", unit="epoch")
    for epoch in epoch_iter:
        epochs_run = epoch
        for s0 in range(0, len(train), batch_size):
            qb, cand, pos, valid = pack(train[s0:s0 + batch_size])
            logits = (scores(qb, cand, a) / temperature).masked_fill(~valid, -1e9)
            # InfoNCE with several positives: -log(sum over positives / sum over all candidates)
            loss = (torch.logsumexp(logits, dim=1) - torch.logsumexp(logits.masked_fill(~pos, -1e9), dim=1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        hit = val_hit(a.detach())
        if hit > best[0] or (not n_val and epoch == epochs):
            best = (hit, epoch, a.detach().clone())
        train = train[rng.permutation(len(train))]
    info = AdapterInfo(dim=dim, n_train=int(len(train)), n_val=int(n_val), epochs_run=epochs_run,
                       best_epoch=int(best[1]), val_hit_before=before, val_hit_after=float(best[0]))
    return QueryAdapter(best[2].numpy(), info)
