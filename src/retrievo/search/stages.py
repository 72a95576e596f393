"""Stages: what runs after retrieval, in order, over one candidates type.

Retrieval gives one :class:`~retrievo.signals.base.Candidates` list per signal of the method; each active
stage then maps those lists to new ones, until one list is left — the results. The built-in stages, by
their :attr:`Stage.order`:

- ``feedback`` (100) — pseudo-relevance feedback: each signal that has it searches again with a query
  moved towards its first results (:mod:`retrievo.search.prf`);
- ``fusion`` (200) — several signals' lists fused into one (:mod:`retrievo.search.fusion`);
- ``rerank`` (500) — the top ``rerank_depth`` of the list re-scored by a reranker (:mod:`retrievo.search.rerank`);
- ``collapse`` (800) — one result per value of a metadata field, e.g. the chunks of a long document
  (:mod:`retrievo.search.collapse`);
- ``cutoff`` (900) — each list cut where the calibrated probability of relevance drops under
  ``min_probability`` (:mod:`retrievo.search.calibration`).

A plugin subclasses :class:`Stage` and calls
:func:`register_stage`; its options (:attr:`Stage.options`) become request options, command-line flags and
HTTP fields.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from retrievo.errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.request import Option, SearchRequest
    from retrievo.signals.base import Candidates, SearchContext, Signal

__all__ = ["Stage", "register_stage", "stages", "unregister_stage"]


class Stage(ABC):
    """A step after retrieval (see the module docstring).

    Class attributes:
        name: the stage's name.
        order: where it runs (lower first).
        options: search options it reads from ``SearchRequest.options`` (registered with it).
    """

    name: ClassVar[str] = ""
    order: ClassVar[int] = 500
    options: ClassVar[tuple[Option, ...]] = ()

    @abstractmethod
    def active(self, request: SearchRequest) -> bool:
        """Whether this stage runs for a (resolved) request."""

    def prepare(self, ctx: SearchContext) -> None:
        """Check and load what the stage needs before retrieval runs (a missing artefact fails fast)."""
        return None

    def first_depth(self, request: SearchRequest, signal: Signal, depth: int) -> int:
        """How many results ``signal`` should retrieve first, given the ``depth`` it would otherwise."""
        return depth

    @abstractmethod
    def apply(self, ctx: SearchContext, lists: dict[str, Candidates]) -> dict[str, Candidates]:
        """The candidate lists after this stage (by signal name; one list named ``"fused"`` after fusion)."""


_BUILTIN: dict[str, str] = {
    "feedback": "retrievo.search.prf:FeedbackStage",
    "fusion": "retrievo.search.fusion:FusionStage",
    "rerank": "retrievo.search.rerank:RerankStage",
    "collapse": "retrievo.search.collapse:CollapseStage",
    "cutoff": "retrievo.search.calibration:CutoffStage",
}
_registry: dict[str, Any] = dict(_BUILTIN)
_ordered: list[type[Stage]] | None = None  # the registered classes in running order (None: to be sorted again)


def register_stage(cls: type[Stage], replace: bool = False) -> type[Stage]:
    """Run ``cls`` (a :class:`Stage` subclass) in every search it is :meth:`~Stage.active` for. Usable as a
    class decorator; its options are registered with it."""
    from retrievo.request import register_option

    if not (isinstance(cls, type) and issubclass(cls, Stage)) or not cls.name:
        raise InvalidInputError(f"register_stage: expected a Stage subclass with a name, got {cls!r}")
    if cls.name in _registry and (cls.name in _BUILTIN or not replace) and _registry[cls.name] is not cls:
        raise InvalidInputError(f"register_stage: a stage named {cls.name!r} is already registered")
    for opt in cls.options:
        register_option(opt, replace=True)
    global _ordered
    _registry[cls.name] = cls
    _ordered = None
    return cls


def unregister_stage(name: str) -> None:
    if name in _BUILTIN:
        raise InvalidInputError(f"unregister_stage: {name!r} is a built-in stage")
    global _ordered
    _registry.pop(name, None)
    _ordered = None


def stages() -> list[Stage]:
    """One instance of every registered stage, in running order."""
    global _ordered
    ordered = _ordered
    if ordered is None:
        for name, entry in list(_registry.items()):
            if isinstance(entry, str):
                module, _, attr = entry.partition(":")
                _registry[name] = getattr(importlib.import_module(module), attr)
        ordered = _ordered = sorted(_registry.values(), key=lambda cls: cls.order)
    return [cls() for cls in ordered]
