"""The command line's search flags, generated from the request's option table.

Every search option is declared once, in :data:`retrievo.request.OPTIONS` (and by plugins with
:func:`retrievo.request.register_option`); ``retrievo search``, ``eval`` and ``calibrate`` get their flags
from :func:`add_search_args` and turn them back into a :class:`~retrievo.request.SearchRequest` with
:func:`request_from_args`. A flag that is not given is not set, so a component's settings (fusion, dense
index, SPLADE mode) start from the collection's own config, exactly as over HTTP.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from retrievo.request import OPTIONS, SearchRequest, options

__all__ = ["add_search_args", "flag_of", "request_from_args"]

_TITLES = {
    None: "search settings",
    "fusion": "fusion (several signals; default: the collection's)",
    "index": "dense index (default: the collection's)",
    "sparse": "SPLADE search (default: the collection's)",
    "prf": "pseudo-relevance feedback",
}


def _dest(name: str) -> str:
    return "opt_" + name.replace(".", "__")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "json": str, "floats": _floats}
_METAVARS = {"int": "N", "float": "X", "str": "NAME", "json": "JSON", "floats": "W1,W2,..."}


def add_search_args(parser: argparse.ArgumentParser, exclude: Iterable[str] = ()) -> None:
    """Add a flag for every search option (built-in and registered by plugins) but those in ``exclude``."""
    from retrievo.signals.registry import signal_names

    skip = set(exclude)
    builtin = {o.name for o in OPTIONS}
    groups: dict[str, Any] = {}
    for opt in options():
        if opt.name in skip or opt.group in skip:
            continue
        if opt.name not in builtin:
            title = "plugin options"
        else:
            title = _TITLES[opt.group or (opt.name if opt.name in _TITLES else None)]
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        group = groups[title]
        kwargs: dict[str, Any] = {"dest": _dest(opt.name), "default": None, "help": opt.help}
        if opt.name == "method":
            kwargs["help"] = (f"{opt.help}; the signals: {', '.join(signal_names())}; e.g. hybrid, bm25+splade, "
                              "bm25f+dense, bm25+dense+multivector")
            kwargs["metavar"] = "METHOD"
        if opt.type == "bool":
            kwargs.update(action="store_const", const=True)
        else:
            kwargs["type"] = _TYPES[opt.type]
            if opt.choices:
                kwargs["choices"] = opt.choices
            else:
                kwargs.setdefault("metavar", _METAVARS[opt.type])
        group.add_argument(opt.flag, **kwargs)


def flag_of(name: str) -> str:
    """The flag of option ``name`` (for messages)."""
    for opt in options():
        if opt.name == name:
            return opt.flag
    return name


def request_from_args(args: argparse.Namespace, **fixed: Any) -> SearchRequest:
    """The :class:`SearchRequest` of the search flags given on the command line (plus ``fixed`` fields)."""
    values = {opt.name: getattr(args, _dest(opt.name)) for opt in options() if hasattr(args, _dest(opt.name))}
    return SearchRequest.from_options(values, describe=flag_of, **fixed)
