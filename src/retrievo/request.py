"""One search request: every search option, declared, validated and resolved in one place.

:class:`SearchRequest` is a frozen, keyword-only value holding every option of a search: the method (the
signals it fuses), ``k``, a metadata filter, fusion, dense index, SPLADE search mode, pseudo-relevance
feedback, typo correction, the query adapter, the calibrated cut-off, and the options plugins register.
Every surface is built from it:

- ``Collection.search(queries, k=..., method=..., ...)`` builds one from its keywords;
- the command line's search flags are generated from :data:`OPTIONS` (``retrievo.cli.options``);
- the HTTP server's request body is generated from the same table (``retrievo.server.schemas``);
- ``retrievo eval``, ``retrievo calibrate`` and the benchmarks take one.

Settings of a component (``fusion``, ``index``, ``sparse``) are given either whole (a
:class:`~retrievo.config.FusionConfig` …, used as it is) or as a mapping of the fields to change
(:class:`Overrides`), which :meth:`SearchRequest.resolve` applies to the collection's own config — the only
place where a request meets a collection's defaults. :meth:`SearchRequest.key` names the resolved
setting (what changes the ranking, not ``k`` or the filter); learned artefacts such as calibrators are
kept under it, so one fitted for one setting is never applied to another.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from retrievo.config import (
    DENSE_INDEX_KINDS,
    SPARSE_MODES,
    CollectionConfig,
    DenseIndexConfig,
    FusionConfig,
    PRFConfig,
    SparseConfig,
)
from retrievo.errors import InvalidInputError

__all__ = ["OPTIONS", "Option", "Overrides", "SearchRequest", "options", "register_option", "unregister_option"]


@dataclass(frozen=True)
class Option:
    """One search option, as the command line and the HTTP body show it.

    Args:
        name: where it lives in a request: a field (``"k"``), a component's field (``"fusion.method"``),
            or a plugin's option (kept in :attr:`SearchRequest.options`).
        flag: the command-line flag.
        type: ``"int"``, ``"float"``, ``"str"``, ``"bool"`` (a switch), ``"floats"`` (comma-separated
            numbers) or ``"json"`` (an object).
        help: one line for ``--help`` and the OpenAPI spec.
        choices: allowed values, if a closed set.
        ge, gt, le: bounds the HTTP body checks (the component configs check theirs on resolve).
        default: a plugin option's value when the request does not set it.
    """

    name: str
    flag: str
    type: str
    help: str
    choices: tuple[str, ...] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    default: Any = None

    @functools.cached_property  # read for every option of every HTTP search body: computed once
    def group(self) -> str | None:
        """The component this option sets a field of (``"fusion"`` for ``"fusion.method"``), if any."""
        return self.name.split(".", 1)[0] if "." in self.name else None

    @functools.cached_property
    def field(self) -> str:
        return self.name.split(".", 1)[-1]


#: the built-in options, in the order ``--help`` lists them
OPTIONS: tuple[Option, ...] = (
    Option("method", "--method", "str", "a signal (bm25, dense, splade, or a plugin's), hybrid (= bm25+dense), "
           "or signals fused with '+' (default bm25)"),
    Option("k", "--k", "int", "results per query (default 10)", ge=1),
    Option("filter", "--filter", "json", 'metadata filter as JSON, e.g. \'{"year": {"$gte": 2010}}\''),
    Option("fusion.method", "--fusion", "str", "fusion of several signals (default: the collection's, convex)",
           choices=("convex", "rrf")),
    Option("fusion.weights", "--weights", "floats",
           "fusion weights, one per signal in the method's order, e.g. 0.5,0.5 (default equal)"),
    Option("fusion.rrf_k", "--rrf-k", "float", "RRF constant (default 60)", gt=0),
    Option("fusion.depth", "--fusion-depth", "int", "candidates each signal contributes to fusion (default 1000)",
           ge=1, le=10_000),
    Option("index.kind", "--index", "str", "dense index: exact flat; int8/binary codes in RAM re-ranked with float "
           "vectors from disk; hnsw/ivf/ivfpq approximate (faiss) (default: the collection's)",
           choices=DENSE_INDEX_KINDS),
    Option("index.rescore_multiplier", "--rescore-multiplier", "int",
           "candidates from a compressed index per wanted result (default 4)", ge=1),
    Option("index.M", "--M", "int", "HNSW graph degree", ge=2),
    Option("index.ef_construction", "--ef-construction", "int", "HNSW build beam", ge=1),
    Option("index.ef_search", "--ef-search", "int", "HNSW search beam", ge=1),
    Option("index.nlist", "--nlist", "int", "IVF cells", ge=1),
    Option("index.nprobe", "--nprobe", "int", "IVF cells per query", ge=1),
    Option("index.pq_m", "--pq-m", "int", "PQ sub-vectors", ge=1),
    Option("index.pq_bits", "--pq-bits", "int", "bits per PQ code", ge=1),
    Option("sparse.mode", "--sparse-mode", "str",
           "SPLADE search: exact, or approx (Seismic blocks) (default: the collection's)", choices=SPARSE_MODES),
    Option("sparse.query_cut", "--query-cut", "int", "approx: the query's largest terms visited", ge=1),
    Option("sparse.heap_factor", "--heap-factor", "float", "approx: block skipping threshold in (0, 1]", gt=0, le=1),
    Option("prf", "--prf", "bool", "pseudo-relevance feedback: RM3 for BM25, Rocchio for dense (published defaults)"),
    Option("prf.fb_docs", "--fb-docs", "int", "RM3 feedback documents (default 10)", ge=1),
    Option("prf.fb_terms", "--fb-terms", "int", "RM3 expansion terms (default 10)", ge=1),
    Option("prf.original_weight", "--original-weight", "float", "RM3 original query weight (default 0.5)",
           ge=0, le=1),
    Option("prf.dense_fb_docs", "--dense-fb-docs", "int", "Rocchio feedback documents (default 3)", ge=1),
    Option("prf.alpha", "--rocchio-alpha", "float", "Rocchio weight of the query vector (default 1)", ge=0),
    Option("prf.beta", "--rocchio-beta", "float", "Rocchio weight of the feedback documents (default 0.75)", ge=0),
    Option("correct_typos", "--correct-typos", "bool",
           "BM25: replace query terms outside the vocabulary by the most frequent term one edit away"),
    Option("adapter", "--adapter", "bool", "dense: use the query adapter `retrievo adapt` learnt"),
    Option("query_map", "--query-map", "bool", "dense: encode queries with the newer model `retrievo map-queries` "
           "fitted, mapped into the stored vectors' space"),
    Option("rerank", "--rerank", "str", "rerank the top --rerank-depth results: e2rank (listwise, with the "
           "collection's dense model), maxsim (late interaction with its token vectors) or a cross-encoder model "
           "name or folder"),
    Option("rerank_depth", "--rerank-depth", "int", "results reranked per query (default 100)", ge=1, le=10_000),
    Option("min_probability", "--min-probability", "float",
           "calibrated cut-off: only results at least this likely relevant (needs `retrievo calibrate` for the "
           "same settings)", ge=0, le=1),
    Option("explain", "--explain", "bool", "show each result's rank and score in every signal's list and after each "
           "stage (fusion, rerank, …)"),
)

_plugin_options: dict[str, Option] = {}
#: bumped whenever a plugin option or signal comes or goes: what a request resolved before may differ now
_registry_epoch = [0]
_BUILTIN_NAMES = {o.name for o in OPTIONS} | {o.group for o in OPTIONS if o.group} | {"options"}


def register_option(opt: Option, replace: bool = False) -> Option:
    """Add a plugin's search option (a signal's or a stage's): it becomes ``SearchRequest.options[name]``,
    a command-line flag and a field of the HTTP body. Register before the parser or the server app is
    built (``retrievo --plugin MODULE`` imports the module first)."""
    if not isinstance(opt, Option) or "." in opt.name or not opt.name.isidentifier():
        raise InvalidInputError(f"register_option: expected an Option with a plain name, got {opt!r}")
    if opt.name in _BUILTIN_NAMES or any(o.flag == opt.flag for o in OPTIONS):
        raise InvalidInputError(f"register_option: {opt.name!r} / {opt.flag} is a built-in option")
    if opt.name in _plugin_options and not replace and _plugin_options[opt.name] != opt:
        raise InvalidInputError(f"register_option: an option named {opt.name!r} is already registered")
    _plugin_options[opt.name] = opt
    _registry_epoch[0] += 1
    return opt


def unregister_option(name: str) -> None:
    _plugin_options.pop(name, None)
    _registry_epoch[0] += 1


def options() -> tuple[Option, ...]:
    """Every search option: the built-in ones, then those plugins registered."""
    return OPTIONS + tuple(_plugin_options.values())


def _option(name: str) -> Option:
    for o in options():
        if o.name == name:
            return o
    raise InvalidInputError(f"search: unknown option {name!r}")


#: the options of the built-in multivector signal: its module loads on first use, so they are registered here and
#: the command line and the HTTP body have them from the start
MULTIVECTOR_OPTIONS: tuple[Option, ...] = (
    Option("fde", "--fde", "bool", "multivector: search the MUVERA fixed-dimensional encodings through a dense index, "
           "then rescore the best --fde-candidates exactly with MaxSim (default: exact MaxSim over every document)",
           default=False),
    Option("fde_candidates", "--fde-candidates", "int",
           "multivector --fde: results per query rescored with MaxSim (default: the collection's, 150)", ge=1,
           le=100_000),
    Option("fde_index", "--fde-index", "str", "multivector --fde: the index over the encodings (default: the "
           "collection's, flat)", choices=DENSE_INDEX_KINDS),
)
for _opt in MULTIVECTOR_OPTIONS:
    register_option(_opt)

#: the options of the built-in field-weighted BM25 signal (registered here for the same reason)
BM25F_OPTIONS: tuple[Option, ...] = (
    Option("field_weights", "--field-weights", "json",
           'bm25f: weights of some of the collection\'s fields for this search, e.g. \'{"x_queries": 0.5}\' '
           "(default: the collection's)"),
)
for _opt in BM25F_OPTIONS:
    register_option(_opt)

#: the options of the built-in tree signal
TREE_OPTIONS: tuple[Option, ...] = (
    Option("tree_beam", "--tree-beam", "int", "tree: nodes kept per level and leaves scanned (default: the "
           "collection's, 16)", ge=1, le=100_000),
    Option("tree_alpha", "--tree-alpha", "float", "tree: path smoothing, alpha · node + (1 - alpha) · parent "
           "(default 1: none)", gt=0, le=1),
)
for _opt in TREE_OPTIONS:
    register_option(_opt)

#: the options of the built-in collapse stage (one result per value of a metadata field)
COLLAPSE_OPTIONS: tuple[Option, ...] = (
    Option("collapse", "--collapse", "str", "one result per value of this metadata field, e.g. parent for chunks "
           "of long documents (the best row represents its group)"),
    Option("collapse_score", "--collapse-score", "str", "collapse: a group's score, from its rows' (default max)",
           choices=("max", "sum", "top2")),
    Option("collapse_depth", "--collapse-depth", "int", "collapse: rows retrieved per wanted result (default 20)",
           ge=1, le=1000),
)
for _opt in COLLAPSE_OPTIONS:
    register_option(_opt)


# --------------------------------------------------------------------------------------- component settings


@dataclass(frozen=True)
class _Group:
    """A component whose config a request may give whole or change a few fields of."""

    name: str
    config: type
    fields: tuple[str, ...]  # the fields a search may set
    shorthand: str | None  # the field a bare string sets (index="hnsw" -> kind)
    bad_key: str  # message for a field that cannot be set at search time ({bad}, {allowed})
    bad_type: str  # message for a value of the wrong type


_GROUPS: dict[str, _Group] = {
    "fusion": _Group("fusion", FusionConfig, tuple(f.name for f in dataclasses.fields(FusionConfig)), None,
                     "search: unknown fusion settings {bad}; use some of {allowed}",
                     "search: fusion must be a FusionConfig or a dict of its fields, got {type}"),
    "index": _Group("index", DenseIndexConfig, tuple(f.name for f in dataclasses.fields(DenseIndexConfig)), "kind",
                    "search: unknown index settings {bad}; use some of {allowed}",
                    "search: index must be a kind name or a DenseIndexConfig, got {type}"),
    "sparse": _Group("sparse", SparseConfig, ("mode", "query_cut", "heap_factor"), "mode",
                     "search: sparse settings {bad} are not search-time; use some of {allowed}",
                     "search: sparse must be a mode name, a dict or a SparseConfig, got {type}"),
}


class Overrides(Mapping[str, Any]):
    """Some fields of a component's config, set on the collection's config when a request is resolved.

    A read-only, hashable mapping: ``Overrides(FusionConfig, {"method": "rrf"})``.
    """

    __slots__ = ("config", "_items")

    def __init__(self, config: type, values: Mapping[str, Any]) -> None:
        self.config = config
        self._items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash((self.config, self._items))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Overrides) and (self.config, self._items) == (other.config, other._items)

    def __repr__(self) -> str:
        return f"Overrides({self.config.__name__}, {dict(self._items)!r})"

    def apply(self, base: Any) -> Any:
        """``base`` with these fields replaced (the config checks the values: :class:`ConfigError`)."""
        return base.replace(**dict(self._items))


def _component(group: _Group, value: Any) -> Any:
    """A component setting as a request keeps it: ``None``, the whole config, or :class:`Overrides`."""
    if value is None or isinstance(value, group.config | Overrides):
        if isinstance(value, Overrides) and value.config is not group.config:
            raise InvalidInputError(group.bad_type.format(type=f"overrides of {value.config.__name__}"))
        return value
    if isinstance(value, str) and group.shorthand:
        return Overrides(group.config, {group.shorthand: value})
    if isinstance(value, Mapping):
        bad = sorted(set(value) - set(group.fields))
        if bad:
            raise InvalidInputError(group.bad_key.format(bad=bad, allowed=sorted(group.fields)))
        return Overrides(group.config, dict(value)) if value else None
    raise InvalidInputError(group.bad_type.format(type=type(value).__name__))


def _fmt(v: Any) -> str:
    if isinstance(v, tuple | list):
        return ",".join(_fmt(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _changed(cfg: Any, default: Any, names: tuple[str, ...]) -> list[str]:
    return [f"{n}={_fmt(getattr(cfg, n))}" for n in names if getattr(cfg, n) != getattr(default, n)]


#: the index fields that matter for each kind (the others are not used by it)
_INDEX_FIELDS = {"flat": (), "int8": ("rescore_multiplier",), "binary": ("rescore_multiplier",),
                 "hnsw": ("M", "ef_construction", "ef_search"), "ivf": ("nlist", "nprobe"),
                 "ivfpq": ("nlist", "nprobe", "pq_m", "pq_bits")}
_PRF_FIELDS = {"bm25": ("fb_docs", "fb_terms", "original_weight"), "dense": ("dense_fb_docs", "alpha", "beta")}


# ------------------------------------------------------------------------------------------------ request


@dataclass(frozen=True, kw_only=True)
class SearchRequest:
    """Every option of a search (see the module docstring).

    Args:
        method: a signal (``"bm25"``, ``"dense"``, ``"splade"`` or a plugin's), ``"hybrid"`` (=
            ``"bm25+dense"``), or signals joined by ``+`` and fused, e.g. ``"bm25+dense+splade"``.
        k: results per query.
        filter: a metadata filter (a dict or its JSON text; see :mod:`retrievo.indexes.filters`).
        fusion: how several signals are fused: a :class:`FusionConfig` (used as it is) or a dict of the
            fields to change in the collection's.
        index: the dense index: a kind name, a :class:`DenseIndexConfig`, or a dict of the fields to change
            in the collection's ``config.index``.
        sparse: SPLADE search settings: ``"exact"`` / ``"approx"``, a dict of ``mode``, ``query_cut``,
            ``heap_factor``, or a :class:`SparseConfig`.
        prf: pseudo-relevance feedback: ``True`` (the defaults of :class:`PRFConfig`) or a :class:`PRFConfig`;
            ``None``/``False``: off (:meth:`from_dict` also takes a dict of its fields).
        correct_typos: BM25: replace query terms outside the vocabulary (one edit away).
        adapter: dense: move query vectors with the collection's query adapter.
        query_map: dense: encode queries with the newer model of the collection's query map and map them into
            the stored vectors' space (see :mod:`retrievo.search.query_maps`).
        rerank: rerank the top ``rerank_depth`` results of the method: ``"e2rank"`` (listwise, with the
            collection's own dense model; see :mod:`retrievo.search.rerank`), ``"maxsim"`` (late interaction
            with the collection's token vectors) or a cross-encoder model name or folder; ``None``: no reranking.
        rerank_depth: results reranked per query (the final ``k`` are taken from them).
        min_probability: keep only results at least this likely relevant, by the calibrator fitted for
            this request's :meth:`key`.
        explain: also return, for every hit, its rank and score in each list the search made (every
            signal's, then each stage's; see :mod:`retrievo.search.explain`). Changes no ranking.
        options: plugin options by name (see :func:`register_option`).
    """

    method: str = "bm25"
    k: int = 10
    filter: Mapping[str, Any] | None = None
    fusion: FusionConfig | Overrides | None = None
    index: DenseIndexConfig | Overrides | None = None
    sparse: SparseConfig | Overrides | None = None
    prf: PRFConfig | None = None
    correct_typos: bool = False
    adapter: bool = False
    query_map: bool = False
    rerank: str | None = None
    rerank_depth: int = 100
    min_probability: float | None = None
    explain: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    #: the signals of ``method``, set by :meth:`resolve` (empty before)
    signals: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_resolved"}  # the memo of resolve stays here

    def __post_init__(self) -> None:
        put = object.__setattr__
        if not isinstance(self.method, str):
            raise InvalidInputError(f"search: method must be a string, got {type(self.method).__name__}")
        if not (isinstance(self.k, int) or _is_np_int(self.k)) or self.k < 1:
            raise InvalidInputError(f"search: k must be a positive integer, got {self.k!r}")
        put(self, "k", int(self.k))
        if self.filter is not None:
            from retrievo.indexes.filters import parse_filter

            put(self, "filter", parse_filter(self.filter if not isinstance(self.filter, Mapping) else dict(self.filter)))
        for name, group in _GROUPS.items():
            value = getattr(self, name)
            if value is not None:
                put(self, name, _component(group, value))
        prf = self.prf
        if prf is True:
            prf = PRFConfig()
        elif prf is False:
            prf = None
        elif prf is not None and not isinstance(prf, PRFConfig):
            raise InvalidInputError(f"search: prf must be a bool or a PRFConfig, got {type(prf).__name__}")
        put(self, "prf", prf)
        put(self, "correct_typos", bool(self.correct_typos))
        put(self, "adapter", bool(self.adapter))
        put(self, "query_map", bool(self.query_map))
        put(self, "explain", bool(self.explain))
        if isinstance(self.rerank, os.PathLike):
            put(self, "rerank", os.fspath(self.rerank))
        if self.rerank is not None and (not isinstance(self.rerank, str) or not self.rerank.strip()):
            raise InvalidInputError(f"search: rerank must be 'e2rank' or a cross-encoder model name, got {self.rerank!r}")
        if isinstance(self.rerank_depth, bool) or not isinstance(self.rerank_depth, int) or self.rerank_depth < 1:
            raise InvalidInputError(f"search: rerank_depth must be a positive integer, got {self.rerank_depth!r}")
        if self.min_probability is not None:
            try:
                p = float(self.min_probability)
            except (TypeError, ValueError):
                p = float("nan")
            if not 0.0 <= p <= 1.0:
                raise InvalidInputError(f"search: min_probability must be in [0, 1], got {self.min_probability!r}")
            put(self, "min_probability", p)
        if self.options:
            if not isinstance(self.options, Mapping):
                raise InvalidInputError(f"search: options must be a dict, got {type(self.options).__name__}")
            unknown = sorted(set(self.options) - set(_plugin_options))
            if unknown:
                raise InvalidInputError(f"search: unknown options {unknown}; registered: {sorted(_plugin_options)}")
            put(self, "options", dict(self.options))

    # -- building ------------------------------------------------------------------------------------------
    @classmethod
    def from_options(cls, values: Mapping[str, Any], describe: Callable[[str], str] | None = None,
                     **fixed: Any) -> SearchRequest:
        """A request from option values by :attr:`Option.name` (``{"fusion.method": "rrf", "prf": True}``);
        ``None`` means not given. ``describe(name)`` names an option in error messages (e.g. its flag)."""
        describe = describe or (lambda n: n)
        top: dict[str, Any] = dict(fixed)
        groups: dict[str, dict[str, Any]] = {}
        plugin: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            opt = _option(name)
            if opt.group:
                groups.setdefault(opt.group, {})[opt.field] = value
            elif opt.name in _plugin_options:
                plugin[name] = value
            else:
                top[name] = value
        sub = groups.pop("prf", {})
        if sub and not top.get("prf"):
            raise InvalidInputError(f"{', '.join(describe('prf.' + f) for f in sub)}: pseudo-relevance feedback "
                                    f"settings need {describe('prf')}")
        if top.get("prf"):
            top["prf"] = PRFConfig(**sub)
        for name, given in groups.items():
            top[name] = Overrides(_GROUPS[name].config, given)
        return cls(**top, options=plugin)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchRequest:
        """A request from its JSON form (:meth:`to_dict`; also the HTTP body's search settings)."""
        names = {f.name for f in dataclasses.fields(cls) if f.name != "signals"}
        bad = sorted(set(data) - names)
        if bad:
            raise InvalidInputError(f"search: unknown settings {bad}; expected some of {sorted(names)}")
        data = dict(data)
        if isinstance(data.get("prf"), Mapping):
            data["prf"] = PRFConfig(**data["prf"])
        return cls(**data)

    def replace(self, **changes: Any) -> SearchRequest:
        """A copy with some fields changed (unresolved again)."""
        return dataclasses.replace(self, signals=(), **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: component settings as dicts (whole configs or the fields they change)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "signals":
                continue
            v = getattr(self, f.name)
            if isinstance(v, Overrides):
                v = {k: list(x) if isinstance(x, tuple) else x for k, x in v.items()}
            elif hasattr(v, "to_dict"):
                v = v.to_dict()
            elif isinstance(v, Mapping):
                v = dict(v)
            out[f.name] = v
        return out

    # -- resolving -----------------------------------------------------------------------------------------
    def resolve(self, config: CollectionConfig) -> SearchRequest:
        """This request against a collection's config: the method parsed into its signals, and every
        component setting made whole (the collection's config with this request's changes).

        Raises:
            InvalidInputError: an unknown method, fusion weights that do not match the signals, an option
                for a signal the method does not use; :class:`~retrievo.errors.ConfigError` for a bad value.
        """
        memo = self.__dict__.get("_resolved")  # the same request against the same config: resolved once
        if memo is not None and memo[0] is config and memo[1] == _registry_epoch[0]:
            return memo[2]
        from retrievo.signals.registry import parse_method

        epoch = _registry_epoch[0]
        signals = parse_method(self.method)
        if self.adapter and "dense" not in signals:
            raise InvalidInputError(f"search: adapter is for the dense signal, and method {self.method!r} has none")
        if self.query_map and "dense" not in signals:
            raise InvalidInputError(f"search: query_map is for the dense signal, and method {self.method!r} has none")
        fusion = self.fusion.apply(config.fusion) if isinstance(self.fusion, Overrides) else self.fusion or config.fusion
        if len(signals) > 1 and fusion.weights is not None and len(fusion.weights) != len(signals):
            raise InvalidInputError(
                f"fusion.weights needs {len(signals)} weights ({', '.join(signals)}), got {fusion.weights}")
        index = self.index.apply(config.index) if isinstance(self.index, Overrides) else self.index or config.index
        sparse = self.sparse
        if isinstance(sparse, Overrides):
            sparse = sparse.apply(config.sparse) if config.sparse is not None else None
        elif sparse is None:
            sparse = config.sparse
        opts = {o.name: self.options.get(o.name, o.default) for o in _plugin_options.values()}
        used = [o.name for o in MULTIVECTOR_OPTIONS if opts.get(o.name) not in (None, False)]
        if used and "multivector" not in signals:
            raise InvalidInputError(f"search: {', '.join(used)} are for the multivector signal, and method "
                                    f"{self.method!r} has none")
        used = [o.name for o in TREE_OPTIONS if opts.get(o.name) is not None]
        if used and "tree" not in signals:
            raise InvalidInputError(f"search: {', '.join(used)} are for the tree signal, and method {self.method!r} has none")
        if opts.get("field_weights") is not None and "bm25f" not in signals:
            raise InvalidInputError(f"search: field_weights is for the bm25f signal, and method {self.method!r} has none")
        # a copy with the resolved parts (already valid: not checked again)
        out = object.__new__(SearchRequest)
        out.__dict__.update(self.__dict__, fusion=fusion, index=index, sparse=sparse, options=opts, signals=signals)
        out.__dict__.pop("_resolved", None)
        self.__dict__["_resolved"] = out.__dict__["_resolved"] = (config, epoch, out)
        return out

    @property
    def resolved(self) -> bool:
        return bool(self.signals)

    def width(self) -> int:
        """Results the stages before the last cut work on: ``k``, or ``max(k, rerank_depth)`` with a reranker."""
        return max(self.k, self.rerank_depth) if self.rerank else self.k

    def depth(self) -> int:
        """Candidates each signal retrieves: :meth:`width` for one signal, else at least ``fusion.depth``."""
        self._need_resolved("depth")
        return self.width() if len(self.signals) == 1 else max(self.width(), self.fusion.depth)

    def fusion_weights(self) -> tuple[float, ...]:
        """One weight per signal (equal when the fusion config gives none)."""
        self._need_resolved("fusion_weights")
        n = len(self.signals)
        return tuple(self.fusion.weights) if self.fusion.weights is not None else (1.0 / n,) * n

    def _need_resolved(self, what: str) -> None:
        if not self.signals:
            raise InvalidInputError(f"SearchRequest.{what}: resolve the request against a collection first")

    # -- naming ----------------------------------------------------------------------------------------------
    def key(self) -> str:
        """The name of this resolved setting: the method, then every setting that changes its ranking and
        differs from retrievo's defaults, e.g. ``"hybrid;fusion(method=rrf);prf"``. Not part of it: ``k``,
        the filter and the cut-off (they cut a ranking, not change it)."""
        from retrievo.signals.registry import method_name

        self._need_resolved("key")
        sig = self.signals
        parts = [method_name(sig)]

        def part(name: str, changes: list[str], on: bool = False) -> None:
            if changes:
                parts.append(f"{name}({','.join(changes)})")
            elif on:
                parts.append(name)

        if len(sig) > 1:
            names = ("method", "depth") + (("rrf_k",) if self.fusion.method == "rrf" else ())
            changes = _changed(self.fusion, FusionConfig(), names)
            if self.fusion_weights() != (1.0 / len(sig),) * len(sig):
                changes.append(f"weights={_fmt(self.fusion_weights())}")
            part("fusion", sorted(changes))
        if "dense" in sig:
            part("index", _changed(self.index, DenseIndexConfig(), ("kind",) + _INDEX_FIELDS[self.index.kind]))
        if "splade" in sig and self.sparse is not None:
            names = ("mode",) + (("query_cut", "heap_factor", "n_postings", "centroid_fraction", "summary_energy")
                                 if self.sparse.mode == "approx" else ())
            part("sparse", _changed(self.sparse, SparseConfig(), names))
        if self.prf is not None:
            names = tuple(n for s in sig for n in _PRF_FIELDS.get(s, ()))
            if names:
                part("prf", _changed(self.prf, PRFConfig(), names), on=True)
        if self.correct_typos and "bm25" in sig:
            parts.append("typos")
        if self.adapter:
            parts.append("adapter")
        if self.query_map:
            parts.append("query_map")
        if self.rerank:
            parts.append(f"rerank({self.rerank},depth={self.rerank_depth})")
        for name in sorted(self.options):
            if name in _plugin_options and self.options[name] != _plugin_options[name].default:
                parts.append(f"{name}={_fmt(self.options[name])}")
        return ";".join(parts)

    def slug(self) -> str:
        """A file-name-safe form of :meth:`key`: the method alone for its default setting, else the method and
        a hash of the key (``hybrid-3f2a9c1d0e``)."""
        key = self.key()
        head = key.split(";", 1)[0].replace("+", "_")
        if ";" not in key:
            return head
        return f"{head}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def label(self) -> str:
        """A readable form of :meth:`key` for run names: ``hybrid-fusion-method-rrf-prf``."""
        text = re.sub(r"[^A-Za-z0-9.+]+", "-", self.key()).strip("-")
        return text if len(text) <= 80 else f"{text[:60]}-{self.slug().rsplit('-', 1)[-1]}"


def _is_np_int(x: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, np.integer)
