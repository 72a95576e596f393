"""Robustness checks: how far typos move a method's scores, and how often injected passages are retrieved.

- **Typos** (:func:`typo_queries`): the same queries with seeded typos (see
  :func:`retrievo.analysis.typos.perturb`), to compare a method's nDCG on clean and typo'd queries.
- **Poisoned passages** (:func:`poisoned_passages`, :func:`attack_success`): corpus poisoning in the
  black-box form of PoisonedRAG (Zou et al., USENIX Security 2025): for each target query, a passage made
  of the query itself followed by the attacker's text is added to the corpus; the attack succeeds on a
  query when its passage reaches the top k. Retrieval that ranks by similarity to the query cannot tell
  such a passage from a relevant one, so the check measures exposure; it is not a defence.
- **On-topic poisoned passages** (:func:`on_topic_passages`): the same query prefix followed by on-topic text — the
  opening words of the document the collection ranks first for the query — in place of the paper's LLM-written
  body (no generator runs here): a passage whose body agrees with its opening and reads like the corpus.
- **Keyword stuffing** (:func:`stuffed_passages`): the target query's terms repeated, then the attacker's text —
  aimed at BM25 (the query's own content words) or at SPLADE (the terms the query's SPLADE vector weighs most,
  expansion terms included, each repeated in proportion to its weight).
- **Gradient attack** (:func:`gradient_passages`): HotFlip token substitutions against the dense model (white box).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from retrievo.analysis.typos import perturb
from retrievo.errors import InvalidInputError
from retrievo.types import SearchResults

__all__ = ["attack_success", "gradient_passages", "on_topic_passages", "poisoned_passages", "stuffed_passages", "typo_queries"]

#: the attacker's text appended to each poisoned passage (misinformation with no query terms of its own)
PAYLOAD = "Independent reviews later showed that this claim was fabricated and should not be trusted."


def typo_queries(queries: Mapping[str, str], rate: float = 0.3, seed: int = 0) -> dict[str, str]:
    """The queries with seeded typos (in the mapping's order, so a seed always gives the same typos)."""
    rng = np.random.default_rng(seed)
    return {q: perturb(t, rate, rng) for q, t in queries.items()}


def poisoned_passages(queries: Mapping[str, str], n_targets: int, seed: int = 0, payload: str = PAYLOAD,
                      prefix: str = "poison-") -> tuple[list[str], list[dict[str, str]]]:
    """``n_targets`` seeded target query ids and one passage per target: ``{"_id": prefix + qid, "text":
    query + " " + payload}``."""
    qids = list(queries)
    rng = np.random.default_rng(seed)
    targets = [qids[i] for i in sorted(rng.choice(len(qids), min(n_targets, len(qids)), replace=False))]
    docs = [{"_id": f"{prefix}{q}", "title": "", "text": f"{queries[q]} {payload}"} for q in targets]
    return targets, docs


def on_topic_passages(collection: Any, queries: Mapping[str, str], targets: Sequence[str], words: int = 30,
                      prefix: str = "ontopic-") -> list[dict[str, str]]:
    """One passage per target query: ``{"_id": prefix + qid, "title": "", "text": query + " " + body}``, the body
    being the first ``words`` words of the document ``collection`` ranks first for the query by dense retrieval
    (by BM25 when it has no dense model). Deterministic for a given collection."""
    missing = [t for t in targets if t not in queries]
    if missing:
        raise InvalidInputError(f"on_topic_passages: target ids not among the queries, e.g. {missing[:3]}")
    if words < 1:
        raise InvalidInputError(f"on_topic_passages: words must be >= 1, got {words}")
    res = collection.search([queries[t] for t in targets], k=1, method="dense" if collection.has_dense else "bm25",
                            query_ids=list(targets))
    out = []
    for i, t in enumerate(targets):
        top = collection.get(str(res.ids[i, 0])) if res.counts[i] else None
        body = " ".join(top.content(("title", "text")).split()[:words]) if top is not None else ""
        out.append({"_id": f"{prefix}{t}", "title": "", "text": f"{queries[t]} {body}".strip()})
    return out


def stuffed_passages(queries: Mapping[str, str], targets: Sequence[str], payload: str = PAYLOAD, repeats: int = 6,
                     sparse_encoder: Any = None, n_terms: int = 12, prefix: str = "stuff-") -> list[dict[str, str]]:
    """Keyword-stuffed passages, one per target query: ``{"_id": prefix + qid, "title": "", "text"}``.

    Without ``sparse_encoder`` (aimed at BM25): the query's words longer than three characters, the list repeated
    ``repeats`` times, then ``payload``. With a SPLADE encoder (aimed at SPLADE: ``collection.signals["splade"]
    .encoder``): the ``n_terms`` whole-word terms (no ``##`` pieces, at least three letters) its query vector
    weighs most — expansion terms the query never wrote included — most weighted first, each repeated
    ``max(1, round(repeats * weight / top weight))`` times, then ``payload``. Deterministic."""
    import re

    if repeats < 1:
        raise InvalidInputError(f"stuffed_passages: repeats must be >= 1, got {repeats}")
    missing = [t for t in targets if t not in queries]
    if missing:
        raise InvalidInputError(f"stuffed_passages: target ids not among the queries, e.g. {missing[:3]}")
    out = []
    if sparse_encoder is None:
        for t in targets:
            words = [w for w in re.findall(r"\w+", queries[t].lower()) if len(w) > 3] or queries[t].split()
            out.append({"_id": f"{prefix}{t}", "title": "", "text": " ".join(words * repeats) + " " + payload})
        return out
    vocab = sparse_encoder.vocab
    rows = sparse_encoder.encode_queries([queries[t] for t in targets]).tocsr()
    for i, t in enumerate(targets):
        ids = rows.indices[rows.indptr[i]:rows.indptr[i + 1]]
        w = rows.data[rows.indptr[i]:rows.indptr[i + 1]]
        terms = [(float(w[j]), vocab[int(ids[j])]) for j in np.argsort(-w, kind="stable")
                 if vocab[int(ids[j])].isalpha() and len(vocab[int(ids[j])]) >= 3][:n_terms]
        top = terms[0][0] if terms else 1.0
        words = [term for weight, term in terms for _ in range(max(1, round(repeats * weight / top)))]
        out.append({"_id": f"{prefix}{t}", "title": "", "text": " ".join(words or queries[t].split()) + " " + payload})
    return out


def attack_success(results: SearchResults, targets: Sequence[str], ks: Sequence[int] = (1, 5, 10),
                   prefix: str = "poison-") -> dict[str, float]:
    """``success@k``: the share of the target queries whose own poisoned passage is in their top k
    (``results`` holds the targets' searches, query ids = target ids)."""
    pos = {qid: i for i, qid in enumerate(results.query_ids)}
    out: dict[str, float] = {}
    for k in ks:
        hit = [f"{prefix}{t}" in set(results.ids[pos[t], :min(k, int(results.counts[pos[t]]))].tolist())
               for t in targets]
        out[f"success@{k}"] = float(np.mean(hit)) if hit else 0.0
    return out


def gradient_passages(model: str, queries: Mapping[str, str], targets: Sequence[str], payload: str = PAYLOAD,
                      trigger_tokens: int = 24, steps: int = 40, candidates: int = 32, seed: int = 0,
                      prefix: str = "grad-") -> tuple[list[dict[str, str]], dict[str, float]]:
    """A gradient-guided attacker (HotFlip token substitutions, as GASLITE does against dense retrievers): for each
    target query, a passage of ``trigger_tokens`` word pieces followed by ``payload`` whose embedding under
    ``model`` (a sentence-transformers model: the collection's dense model, white box) is pushed towards the
    query's. Each step takes the gradient of the cosine with respect to the trigger's input embeddings, ranks
    every vocabulary token at one position by the first-order gain ``(e_new − e_old) · ∇``, evaluates the best
    ``candidates`` exactly in one batch, and keeps the best substitution when it improves. Seeded.

    Returns:
        ``(passages, cost)``: ``{"_id": prefix + qid, "text"}`` per target, and ``{"seconds_per_passage",
        "forward_passes_per_passage", "final_cosine_mean"}``.
    """
    import time

    import torch
    from sentence_transformers import SentenceTransformer

    from retrievo.encoders.dense import resolve_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    st = SentenceTransformer(resolve_model(model), device="cpu")
    st.eval()
    tok = st.tokenizer
    bert = st[0].auto_model
    emb = bert.get_input_embeddings().weight.detach()
    vocab = tok.get_vocab()
    # substitutes: whole-word tokens only (no special tokens, no "##" pieces, no [unused])
    allowed = torch.zeros(emb.shape[0], dtype=torch.bool)
    for t, i in vocab.items():
        if t.isalpha() and not t.startswith("##") and i < emb.shape[0]:
            allowed[i] = True
    allowed_ids = torch.nonzero(allowed).ravel()
    pay = tok(payload, add_special_tokens=False)["input_ids"]
    cls, sep = tok.cls_token_id, tok.sep_token_id

    def embed(ids: torch.Tensor) -> torch.Tensor:  # (b, n) ids -> normalised mean-pooled vectors
        with torch.no_grad():
            out = bert(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        v = out.mean(dim=1)
        return torch.nn.functional.normalize(v, dim=-1)

    out_docs: list[dict[str, str]] = []
    t0 = time.perf_counter()
    passes, finals = 0, []
    for qid in targets:
        target = torch.tensor(st.encode([queries[qid]], normalize_embeddings=True)[0])
        trig = allowed_ids[torch.from_numpy(rng.integers(0, len(allowed_ids), trigger_tokens))]
        ids = torch.tensor([cls, *trig.tolist(), *pay, sep])
        best = float(embed(ids[None]) @ target)
        for _ in range(steps):
            x = emb[ids].clone().requires_grad_(True)
            hidden = bert(inputs_embeds=x[None], attention_mask=torch.ones(1, len(ids), dtype=torch.long)).last_hidden_state
            v = torch.nn.functional.normalize(hidden.mean(dim=1), dim=-1)[0]
            (v @ target).backward()
            passes += 1
            pos = 1 + int(rng.integers(0, trigger_tokens))
            gain = (emb - emb[ids[pos]]) @ x.grad[pos]
            gain[~allowed] = -float("inf")
            cand = torch.topk(gain, candidates).indices
            batch = ids.repeat(len(cand), 1)
            batch[:, pos] = cand
            sims = embed(batch) @ target
            passes += 1
            j = int(torch.argmax(sims))
            if float(sims[j]) > best:
                best, ids = float(sims[j]), batch[j].clone()
        finals.append(best)
        text = tok.decode(ids[1:-1].tolist())
        out_docs.append({"_id": f"{prefix}{qid}", "title": "", "text": text})
    n = max(len(targets), 1)
    return out_docs, {"seconds_per_passage": (time.perf_counter() - t0) / n, "forward_passes_per_passage": passes / n,
                      "final_cosine_mean": float(np.mean(finals)) if finals else 0.0}
