"""The registry of signals: what a search method may name, and where each signal's code lives.

``method="a+b"`` is parsed against it (``"hybrid"`` is ``bm25+dense``). The built-in signals are known by
name and imported on first use, so reading the list (``retrievo --help``, the server's spec) loads no model
and no compiled kernel. A plugin adds one with :func:`register_signal` — one module and one call, nothing
in ``store/`` or ``search/`` to edit.
"""

from __future__ import annotations

import importlib
import itertools
from typing import TYPE_CHECKING, Any

from retrievo.errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from retrievo.signals.base import Signal

__all__ = ["ALIASES", "METHODS", "collection_methods", "method_name", "methods", "parse_method", "register_signal",
           "signal_class", "signal_names", "unregister_signal"]

_BUILTIN: dict[str, str] = {
    "bm25": "retrievo.signals.bm25:BM25Signal",
    "dense": "retrievo.signals.dense:DenseSignal",
    "splade": "retrievo.signals.splade:SpladeSignal",
    "multivector": "retrievo.signals.multivector:MultiVectorSignal",
    "bm25f": "retrievo.signals.fields:BM25FSignal",
    "tree": "retrievo.signals.tree:TreeSignal",
}
_registry: dict[str, Any] = dict(_BUILTIN)  # name -> "module:Class" (not imported yet) or the class

#: method names that stand for a set of signals
ALIASES: dict[str, tuple[str, ...]] = {"hybrid": ("bm25", "dense")}


def register_signal(cls: type[Signal], replace: bool = False) -> type[Signal]:
    """Make ``cls`` (a :class:`~retrievo.signals.base.Signal` subclass) searchable as ``cls.name``.

    Usable as a class decorator. Its search-time options (``cls.options``) are registered with it.

    Raises:
        InvalidInputError: the name is taken (``replace=True`` replaces a plugin's, never a built-in),
            is an alias such as ``hybrid``, or is not a plain word.
    """
    from retrievo.request import _registry_epoch, register_option
    from retrievo.signals.base import Signal

    if not (isinstance(cls, type) and issubclass(cls, Signal)):
        raise InvalidInputError(f"register_signal: expected a Signal subclass, got {cls!r}")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name.isidentifier() or name in ALIASES:
        raise InvalidInputError(f"register_signal: {cls.__name__}.name must be a word that is not an alias, got {name!r}")
    if name in _registry and (name in _BUILTIN or not replace) and _registry[name] is not cls:
        raise InvalidInputError(f"register_signal: a signal named {name!r} is already registered")
    for opt in cls.options:
        register_option(opt, replace=True)
    _registry[name] = cls
    _registry_epoch[0] += 1
    return cls


def unregister_signal(name: str) -> None:
    """Forget a plugin signal (built-in signals stay)."""
    if name in _BUILTIN:
        raise InvalidInputError(f"unregister_signal: {name!r} is a built-in signal")
    from retrievo.request import _registry_epoch

    _registry.pop(name, None)
    _registry_epoch[0] += 1


def signal_names() -> tuple[str, ...]:
    """Every registered signal, built-ins first, then plugins in the order they were registered."""
    return tuple(_registry)


def signal_class(name: str) -> type[Signal]:
    """The class of signal ``name`` (imported on first use)."""
    try:
        entry = _registry[name]
    except KeyError:
        raise InvalidInputError(f"unknown signal {name!r}; registered: {', '.join(_registry)}") from None
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = _registry[name] = getattr(importlib.import_module(module), attr)
    return entry


def methods() -> tuple[str, ...]:
    """The methods offered by name: each signal, ``hybrid``, then every larger set of signals in registry
    order (``bm25+dense`` is spelt ``hybrid``)."""
    names = signal_names()
    out = list(names) + list(ALIASES)
    for size in range(2, len(names) + 1):
        for combo in itertools.combinations(names, size):
            if combo not in ALIASES.values():
                out.append("+".join(combo))
    return tuple(out)


def collection_methods(signals: Any) -> list[str]:
    """The single-signal methods a collection with ``signals`` (names) can search, and each alias whose signals
    it has after the last of them (``hybrid`` after ``dense``)."""
    have = list(signals)
    out: list[str] = []
    for name in have:
        out.append(name)
        out += [alias for alias, parts in ALIASES.items() if parts[-1] == name and set(parts) <= set(have)]
    return out


#: the methods of the built-in signals (what ``retrievo --help`` lists)
METHODS: tuple[str, ...] = ("bm25", "dense", "splade", "multivector", "hybrid", "bm25+splade", "dense+splade",
                            "bm25+dense+splade", "bm25+multivector", "dense+multivector", "bm25+dense+multivector")


def parse_method(method: str) -> tuple[str, ...]:
    """The signals a search method fuses: ``"hybrid"`` → ``("bm25", "dense")``, ``"a+b"`` → ``("a", "b")``."""
    if not isinstance(method, str):
        raise InvalidInputError(f"search: method must be a string, got {type(method).__name__}")
    parts = ALIASES.get(method) or tuple(method.split("+"))
    bad = [p for p in parts if p not in _registry]
    if bad or len(set(parts)) != len(parts):
        raise InvalidInputError(
            f"search: unknown method {method!r}; use a signal ({', '.join(signal_names())}), hybrid, or signals "
            "joined by '+'"
        )
    return parts


def method_name(signals: tuple[str, ...]) -> str:
    """The canonical name of a set of signals (``hybrid`` for ``bm25+dense``)."""
    for alias, parts in ALIASES.items():
        if tuple(signals) == parts:
            return alias
    return "+".join(signals)
