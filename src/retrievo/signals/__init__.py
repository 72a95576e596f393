"""Signals: the ways documents are scored for a query (BM25, dense, SPLADE, and plugins), one module each.

See :mod:`retrievo.signals.base` for what a signal does and :mod:`retrievo.signals.registry` for how a
method names them.
"""

from retrievo.signals.base import Candidates, EncodeBatch, SearchContext, Signal
from retrievo.signals.registry import METHODS, parse_method, register_signal, signal_class, signal_names

__all__ = ["METHODS", "Candidates", "EncodeBatch", "SearchContext", "Signal", "parse_method", "register_signal",
           "signal_class", "signal_names"]
