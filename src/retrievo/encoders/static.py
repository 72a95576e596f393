"""A static query encoder: a query costs a tokenisation and a sum of table rows, while documents keep the
vectors the collection's transformer gave them (an asymmetric encoder, after NanoVDR / CARE).

Distilled from the collection's own dense model (:func:`distill_static`):

1. **Token table** (model2vec's distillation): every word piece of the model's vocabulary is run through the
   model alone (``[CLS] piece [SEP]``, the model's pooling), giving one vector per piece.
2. **Weights**: each piece's vector is scaled by a smooth inverse frequency weight ``a / (a + p(piece))``, with
   ``p`` the piece's frequency in the collection's documents (model2vec estimates it from the vocabulary's
   order instead; the collection's own statistics are at hand here).
3. **Alignment** on the collection's own texts — judged queries when given, document titles and first
   sentences: the table is trained (PyTorch ``EmbeddingBag``) so that the normalised sum of a text's pieces
   points where the model's embedding of that text points (``1 - cosine``), early stopped on held-out texts.

A query is ``normalise(sum of its pieces' rows)``: no transformer runs at query time. The folder holds
``embeddings.npy`` (float16), the model's ``tokenizer.json`` and ``static.json`` (what it was distilled from,
the alignment's held-out cosine). ``DenseConfig(query_model=FOLDER)`` (CLI ``--query-model``) makes a
collection encode its queries with it.

Written here rather than with ``model2vec``: its distillation extra pins ``transformers<5.4`` (older than the
one sentence-transformers here needs), and the query side is a few lines of numpy.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievo._io import check_new_folder, load_npy, save_npy, staged_folder, write_json
from retrievo._optional import require
from retrievo.errors import ConfigError, InvalidInputError

__all__ = ["StaticQueryEncoder", "distill_static"]

SIF_A = 1e-3


class StaticQueryEncoder:
    """Queries as the normalised sum of their word pieces' rows (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / "static.json").read_text())
            self.table = load_npy(self.folder / "embeddings.npy").astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.folder}: not a static query encoder ({exc}); make one with "
                              "`retrievo distill-queries`") from None
        tok = require("tokenizers").Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        self.tokenizer = tok
        self.dim = int(self.table.shape[1])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        for i, e in enumerate(encs):
            if e.ids:
                out[i] = self.table[e.ids].sum(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0][:400]


def distill_static(collection: Any, output: str | Path, *, queries: Sequence[str] = (), max_texts: int = 20000,
                   epochs: int = 20, lr: float = 2e-3, batch_size: int = 256, seed: int = 0,
                   overwrite: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Distil a static query encoder from ``collection``'s dense model into ``output`` (see the module
    docstring); ``queries``: the collection's own queries to align on (e.g. a training split), beside its
    documents' titles and first sentences. Returns what ``static.json`` says."""
    import torch
    from transformers import AutoModel

    from retrievo.encoders._bucketed import model_folder, transformer_dir
    from retrievo.encoders.dense import DenseEncoder, resolve_model, teacher_key

    out = Path(output)
    check_new_folder(out, overwrite, "distill-queries")
    dense_cfg = collection.config.dense
    if dense_cfg is None:
        raise InvalidInputError(f"distill-queries: {collection.path} has no dense model to distil")
    started = time.monotonic()
    root = model_folder(resolve_model(dense_cfg.model))
    tdir = transformer_dir(root)
    tok = require("tokenizers").Tokenizer.from_file(str(tdir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    vocab = tok.get_vocab()
    size = max(vocab.values()) + 1
    special = {i for t, i in vocab.items() if re.fullmatch(r"\[[A-Za-z_]+\d*\]", t)}
    cls_id, sep_id = vocab.get("[CLS]"), vocab.get("[SEP]")
    if cls_id is None or sep_id is None:
        raise InvalidInputError(f"distill-queries: {root} is not a BERT-style model ([CLS]/[SEP] pieces)")
    pooling = "mean"
    pool_cfg = root / "1_Pooling" / "config.json"
    if pool_cfg.exists() and json.loads(pool_cfg.read_text()).get("pooling_mode_cls_token"):
        pooling = "cls"

    # 1. one vector per word piece
    torch.manual_seed(seed)
    model = AutoModel.from_pretrained(str(tdir)).eval()
    ids = torch.arange(size)
    table = np.zeros((size, model.config.hidden_size), dtype=np.float32)
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=size, desc="distilling word pieces", unit="piece")
    with torch.inference_mode():
        for s in range(0, size, 1024):
            b = ids[s:s + 1024]
            x = torch.stack([torch.full_like(b, cls_id), b, torch.full_like(b, sep_id)], dim=1)
            h = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state
            v = h[:, 0] if pooling == "cls" else h.mean(dim=1)
            table[s:s + len(b)] = torch.nn.functional.normalize(v, dim=-1).numpy()
            if bar is not None:
                bar.update(len(b))
    if bar is not None:
        bar.close()
    table[sorted(special)] = 0.0

    # 2. smooth inverse frequency from the collection's documents
    snap = collection.snapshot()
    rows = np.flatnonzero(snap.live)
    counts = np.zeros(size, dtype=np.float64)
    docs = collection.documents_at(rows.tolist(), snap)
    for s in range(0, len(docs), 2000):
        for e in tok.encode_batch([d.content(("title", "text")) for d in docs[s:s + 2000]], add_special_tokens=False):
            np.add.at(counts, e.ids, 1)
    p = counts / max(counts.sum(), 1.0)
    table *= (SIF_A / (SIF_A + p))[:, None].astype(np.float32)

    # 3. alignment with the model's own embeddings of the collection's texts
    rng = np.random.default_rng(seed)
    texts = [q for q in queries if q.strip()]
    texts += [d.title for d in docs if d.title.strip()] + [_first_sentence(d.text) for d in docs if d.text.strip()]
    texts = list(dict.fromkeys(texts))
    if len(texts) > max_texts:
        texts = [texts[i] for i in sorted(rng.choice(len(texts), max_texts, replace=False))]
    if len(texts) < 20:
        raise InvalidInputError(f"distill-queries: {len(texts)} texts to align on; 20 are needed")
    import dataclasses

    teacher = DenseEncoder(dataclasses.replace(dense_cfg, query_model=None)).encode_queries(texts)
    encs = tok.encode_batch(texts, add_special_tokens=False)
    order = rng.permutation(len(texts))
    n_val = max(10, len(texts) // 20)
    val, train = order[:n_val], order[n_val:]

    emb = torch.nn.EmbeddingBag(size, table.shape[1], mode="sum")
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(table))
    target = torch.from_numpy(np.asarray(teacher, dtype=np.float32))

    def batch(idx):
        flat = [encs[i].ids or [sep_id] for i in idx]
        offsets = torch.tensor(np.cumsum([0] + [len(f) for f in flat[:-1]]), dtype=torch.long)
        return torch.tensor([t for f in flat for t in f], dtype=torch.long), offsets

    def cosine(idx) -> float:
        with torch.no_grad():
            x, o = batch(idx)
            return float(torch.nn.functional.cosine_similarity(emb(x, o), target[idx]).mean())

    before = cosine(val)
    best = (before, 0, emb.weight.detach().clone())
    opt = torch.optim.Adam(emb.parameters(), lr=lr)
    stale = 0
    for epoch in range(1, epochs + 1):
        perm = train[rng.permutation(len(train))]
        for s in range(0, len(perm), batch_size):
            idx = perm[s:s + batch_size]
            x, o = batch(idx)
            loss = (1 - torch.nn.functional.cosine_similarity(emb(x, o), target[idx])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        got = cosine(val)
        if show_progress:
            print(f"alignment epoch {epoch}: held-out cosine {got:.4f}", flush=True)
        if got > best[0]:
            best, stale = (got, epoch, emb.weight.detach().clone()), 0
        else:
            stale += 1
            if stale >= 3:
                break
    final = best[2].numpy()
    final[sorted(special)] = 0.0
    meta = {"teacher": str(dense_cfg.model), "teacher_key": teacher_key(dense_cfg),
            "dim": int(final.shape[1]), "vocabulary": int(size), "pooling": pooling, "sif_a": SIF_A,
            "texts": len(texts), "queries": len([q for q in queries if q.strip()]),
            "heldout_cosine_before": round(before, 4), "heldout_cosine": round(float(best[0]), 4),
            "best_epoch": int(best[1]), "seconds": round(time.monotonic() - started, 1), "seed": seed}
    with staged_folder(out) as stage:
        save_npy(stage / "embeddings.npy", final.astype(np.float16), sync_dir=False)
        shutil.copy(tdir / "tokenizer.json", stage / "tokenizer.json")
        write_json(stage / "static.json", meta, indent=1)
    return meta
