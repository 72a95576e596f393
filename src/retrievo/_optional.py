"""Lazy imports of optional dependencies with an error that names the fix."""

from __future__ import annotations

import importlib
from types import ModuleType

from retrievo.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, extra: str | None = None, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip command.

    Args:
        module: dotted module name to import.
        extra: the retrievo extra that provides it (``pip install 'retrievo[extra]'``), if any.
        package: the PyPI package name when it differs from the module name.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the dependency
        hint = f"pip install 'retrievo[{extra}]'" if extra else f"pip install {package or module}"
        raise MissingDependencyError(f"{module!r} is required for this feature but is not installed: {hint}") from exc
