"""Fine-tune a collection's dense model from relevance judgements, on a CPU.

``train_dense(collection, queries, qrels, out)`` (CLI ``retrievo train``) fine-tunes the collection's
sentence-transformers model with sentence-transformers' ``SentenceTransformerTrainer``:

- rows: ``(query, one relevant document, h hard negatives)``, one row per (query, relevant document) pair
  (at most ``max_positives`` per query; at most ``max_rows`` rows, whole queries sampled to fit, so that a
  run's length does not depend on the machine); negatives mined by the collection's own first stage
  (:mod:`retrievo.training.judged`); documents as the collection encodes them (title and text);
- batches never hold the same query twice (sentence-transformers' no-duplicates batch sampler), and the loss,
  :func:`multi_positive_infonce`, knows every judgement: a document in the batch that is relevant to a query
  is never one of that query's negatives — neither another row's positive nor a negative mined for another
  query. That is where plain in-batch negatives go wrong with several relevant documents per query;
- ``val_queries`` judged queries are held out: an information-retrieval evaluator (nDCG@10 over their pooled
  first-stage candidates) runs before training and ``evals`` times during it; the best checkpoint is kept,
  training stops early after two evaluations without progress, and at ``time_budget`` anyway;
- bfloat16 autocast where the CPU has native bf16, float32 elsewhere; a seed;
- the folder is a plain sentence-transformers folder with its model card, plus ``retrievo_training.json``;
  index with it (``--model FOLDER``, ``DenseConfig(model=FOLDER)``): the content cache is keyed by the model's
  fingerprint, so its vectors never mix with the old model's.

Written here: the trainer and sampler are sentence-transformers'; the loss is the InfoNCE of dense retrieval
with a judgement mask (sentence-transformers' ``MultipleNegativesRankingLoss`` counts every other document
in the batch as negative), and the data and budget are retrievo's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import check_new_folder, staged_folder, write_json
from retrievo.errors import InvalidInputError

__all__ = ["DenseTraining", "multi_positive_infonce", "train_dense"]


@dataclass
class DenseTraining:
    """What :func:`train_dense` did (also saved as ``retrievo_training.json`` in the model folder)."""

    output: str
    base_model: str
    method: str
    depth: int
    train_queries: int
    val_queries: int
    rows: int
    negatives: int
    epochs: float
    steps: int
    seconds: float
    bf16: bool
    max_length: int
    seed: int
    stopped_by_budget: bool
    val_ndcg_before: float
    val_ndcg_best: float
    best_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)  # with several: name, weight, rows, available_rows

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def multi_positive_infonce(model: Any, relevant: set[tuple[int, int]], scale: float = 20.0) -> Any:
    """InfoNCE over a batch of ``(query, positive, negative_1..h)`` rows whose ``label`` column is
    ``[query index, positive index, negative indices...]`` (integer ids of the texts): each query's candidates
    are every document in the batch except those judged relevant to it (``(query, document) in relevant``)
    other than its own row's positive — those are neither positive nor negative for it here."""
    import torch
    from torch import nn

    class _Loss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.scale = scale

        def forward(self, sentence_features, labels):
            feats = list(sentence_features)
            embs = [self.model(f)["sentence_embedding"] for f in feats]
            q = nn.functional.normalize(embs[0], dim=-1)
            docs = nn.functional.normalize(torch.cat(embs[1:], dim=0), dim=-1)  # column-major: all positives first
            b = q.shape[0]
            doc_ids = labels[:, 1:].T.reshape(-1).tolist()
            q_ids = labels[:, 0].tolist()
            mask = torch.zeros(b, len(doc_ids), dtype=torch.bool)
            for i, qi in enumerate(q_ids):
                for j, dj in enumerate(doc_ids):
                    if j != i and (qi, dj) in relevant:
                        mask[i, j] = True
            logits = (q @ docs.T * self.scale).masked_fill(mask, float("-inf"))
            return nn.functional.cross_entropy(logits, torch.arange(b))

        def get_config_dict(self):
            return {"scale": self.scale, "masked": "documents judged relevant to the query"}

        @property
        def citation(self):
            return ""

    return _Loss()


def _source_rewards(collection: Any, base_model: str | None, model: Any, js: Any, by_source: list[list[Any]],
                    names: list[str], seed: int) -> list[float]:
    """:func:`~retrievo.training.mixing.source_rewards` with the model about to be trained (the collection's
    encoder and content cache when it is the collection's model), the held-out queries as development queries."""
    from retrievo.training.mixing import development_queries, source_rewards

    dense = collection.signals.get("dense") if base_model is None else None
    if dense is not None:
        from retrievo.encoders.cache import encode_with_cache

        def encode_queries(texts: list[str]) -> Any:
            return dense.encoder.encode_queries(texts)

        def encode_documents(texts: list[str]) -> Any:
            return encode_with_cache(dense.encoder, texts, dense.embedding_cache())
    else:
        def encode_queries(texts: list[str]) -> Any:
            return model.encode(texts, normalize_embeddings=True, show_progress_bar=False)

        encode_documents = encode_queries
    rewards, _ = source_rewards(by_source, development_queries(js), encode_queries, encode_documents, seed=seed,
                                names=names)
    return rewards


def train_dense(collection: Any, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                output: str | Path, *, base_model: str | None = None, method: str | None = None, depth: int = 30,
                negatives: int = 3, max_positives: int = 4, max_rows: int | None = 2000, epochs: float = 2.0, batch_size: int = 16,
                lr: float = 2e-5, max_length: int = 256, val_queries: int = 40, evals: int = 4,
                time_budget: float | None = 1800.0, seed: int = 0, bf16: bool | None = None,
                overwrite: bool = False, show_progress: bool = True, sources: Sequence[Any] = (),
                weight: float = 1.0, learn_weights: bool = False, temperature: float = 0.05) -> DenseTraining:
    """Fine-tune ``collection``'s dense model (or ``base_model``) on judged ``queries`` and save it to ``output``
    (see the module docstring).

    ``sources``: more judged queries over other collections (:class:`~retrievo.training.mixing.TrainingSource`),
    mixed with this collection's (``weight``) by their weights. The held-out queries, the checkpoint choice and
    ``max_rows`` (all sources together) stay this collection's. ``learn_weights``: each weight is first multiplied
    by ``exp(reward / temperature)``, the reward being the source's influence on the held-out queries through a
    linear proxy (:func:`~retrievo.training.mixing.source_rewards`).

    Raises:
        InvalidInputError: bad judgements (see :func:`~retrievo.training.judged.judged_set`), a collection without
            a dense model and no ``base_model``, an ``output`` that exists (without ``overwrite``), bad settings.
            Nothing is written then.
    """
    from retrievo.training._fit import check_settings, fit, require_trainer

    st = require_trainer()
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.training_args import BatchSamplers

    from retrievo.encoders.bf16 import cpu_has_bf16
    from retrievo.encoders.dense import resolve_model
    from retrievo.training.judged import judged_set

    what = "train"
    out = Path(output)
    check_new_folder(out, overwrite, what)
    check_settings(what, batch_size=(batch_size, 2), max_length=(max_length, 16), epochs=(epochs, 1e-9),
                   lr=(lr, 1e-12), max_positives=(max_positives, 1), negatives=(negatives, 0))
    dense_cfg = getattr(collection.config, "dense", None)
    if base_model is None and dense_cfg is None:
        raise InvalidInputError(f"{what}: {collection.path} has no dense model; name a base model to fine-tune")
    base = resolve_model(base_model or dense_cfg.model)
    if not (np.isfinite(weight) and weight > 0):
        raise InvalidInputError(f"{what}: weight must be > 0, got {weight}")
    if learn_weights and not sources:
        raise InvalidInputError(f"{what}: learning the mixing weights needs training sources besides the collection's")
    if learn_weights and not temperature > 0:
        raise InvalidInputError(f"{what}: temperature must be > 0, got {temperature}")
    js = judged_set(collection, queries, qrels, what=what, method=method, depth=depth, negatives=negatives,
                    val_queries=val_queries, seed=seed, show_progress=show_progress)
    extra = [judged_set(src.collection, src.queries, src.qrels, what=f"{what} (source {src.name})", depth=depth,
                        negatives=negatives, val_queries=0, seed=seed, show_progress=show_progress) for src in sources]
    rng = np.random.default_rng(seed + 1)
    doc_index: dict[tuple[int, str], int] = {}
    relevant: set[tuple[int, int]] = set()
    n_queries = 0

    def rows_of(source: int, judged: Any, qs: list[Any]) -> list[tuple[str, str, list[str], list[int]]]:
        """One row per (query, relevant document); query and document ids unique across sources."""
        nonlocal n_queries

        def did(d: str) -> int:
            return doc_index.setdefault((source, d), len(doc_index))

        out = []
        for q in qs:
            qi, n_queries = n_queries, n_queries + 1
            for d in q.positives:
                relevant.add((qi, did(d)))
            if len(q.negatives) < negatives:
                continue  # too few unjudged results to mine from: rows need the same number of columns
            pos = q.positives if len(q.positives) <= max_positives else \
                [q.positives[i] for i in sorted(rng.choice(len(q.positives), max_positives, replace=False))]
            for d in pos:
                out.append((q.text, judged.texts[d], [judged.texts[n] for n in q.negatives],
                            [qi, did(d)] + [did(n) for n in q.negatives]))
        return out

    rows = rows_of(0, js, js.train)
    extra_rows = [rows_of(i + 1, e, e.train) for i, e in enumerate(extra)]
    if not sources and max_rows and len(rows) > max_rows:  # a seeded sample of whole queries that fits
        # (several sources are mixed below, by their weights)
        by_query: dict[int, list[int]] = {}
        for i, r in enumerate(rows):
            by_query.setdefault(r[3][0], []).append(i)
        keep: list[int] = []
        for qi in rng.permutation(sorted(by_query)):
            if len(keep) + len(by_query[int(qi)]) <= max_rows:
                keep += by_query[int(qi)]
        rows = [rows[i] for i in sorted(keep)]
    if not sources and len(rows) < batch_size:
        raise InvalidInputError(f"{what}: {len(rows)} training rows, fewer than one batch of {batch_size}")
    if sources:
        for name, r in [(str(collection.path), rows), *((s.name, r) for s, r in zip(sources, extra_rows, strict=True))]:
            if len(r) < 2:
                raise InvalidInputError(f"{what}: source {name} gives {len(r)} training rows; each source needs 2")
    bf16 = cpu_has_bf16() if bf16 is None else bool(bf16)

    torch.manual_seed(seed)
    try:
        model = st.SentenceTransformer(base, device="cpu")
    except Exception as exc:
        raise InvalidInputError(f"{what}: base model {base!r} could not be loaded: {type(exc).__name__}: {exc}"[:500]) from None
    model.max_seq_length = max_length
    loss = multi_positive_infonce(model, relevant)
    mixed: list[dict[str, Any]] = []
    if sources:
        from retrievo.training.mixing import learnt_weights, mix_rows

        by_source = [rows, *extra_rows]
        names = [str(collection.path), *(s.name for s in sources)]
        given = weights = [weight, *(s.weight for s in sources)]
        if learn_weights:
            rewards = _source_rewards(collection, base_model, model, js, by_source, names, seed)
            weights = learnt_weights(given, rewards, temperature)
        rows, counts = mix_rows(by_source, weights, max_rows or sum(len(r) for r in by_source), rng)
        mixed = [{"name": n, "weight": float(w), "rows": c, "available_rows": len(r)} for n, w, c, r in
                 zip(names, weights, counts, by_source, strict=True)]
        if learn_weights:
            for m, g, r in zip(mixed, given, rewards, strict=True):
                m.update(given_weight=float(g), reward=round(float(r), 4))
    if len(rows) < batch_size:
        raise InvalidInputError(f"{what}: {len(rows)} training rows, fewer than one batch of {batch_size}")
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    cols: dict[str, list[Any]] = {"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows]}
    for k in range(negatives):
        cols[f"negative_{k + 1}"] = [r[2][k] for r in rows]
    cols["label"] = [r[3] for r in rows]

    # held-out queries: rank their pooled first-stage candidates (plus their positives)
    pool = {d for q in js.val for d in (*q.ranked, *q.positives)}
    evaluator = InformationRetrievalEvaluator(
        queries={q.qid: q.text for q in js.val}, corpus={d: js.texts[d] for d in sorted(pool)},
        relevant_docs={q.qid: set(q.positives) for q in js.val}, name="val", ndcg_at_k=[10], mrr_at_k=[10],
        accuracy_at_k=[1], precision_recall_at_k=[10], map_at_k=[10], show_progress_bar=False, batch_size=32,
        write_csv=False)
    key = "val_cosine_ndcg@10"

    with staged_folder(out) as stage:
        before = evaluator(model)
        run = fit(SentenceTransformerTrainer, SentenceTransformerTrainingArguments, model=model,
                  train_dataset=Dataset.from_dict(cols), loss=loss,
                  evaluator=evaluator, metric=key, where=out.parent, epochs=epochs, batch_size=batch_size, lr=lr,
                  bf16=bf16, seed=seed, evals=evals, time_budget=time_budget, show_progress=show_progress,
                  batch_sampler=BatchSamplers.NO_DUPLICATES)
        best = evaluator(model)
        model.save_pretrained(str(stage))
        info = DenseTraining(
            output=str(out), base_model=str(base), method=js.method, depth=js.depth, train_queries=len(js.train),
            val_queries=len(js.val), rows=len(rows), negatives=negatives, epochs=epochs, steps=run.steps,
            seconds=run.seconds, bf16=bf16, max_length=max_length, seed=seed, stopped_by_budget=run.stopped_by_budget,
            val_ndcg_before=round(float(before.get(key, 0.0)), 4), val_ndcg_best=round(float(best.get(key, 0.0)), 4),
            best_step=run.best_step, losses=run.losses, sources=mixed)
        write_json(stage / "retrievo_training.json", info.to_json(), indent=1)
    return info
