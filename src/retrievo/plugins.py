"""Plugins: modules that register signals, stages or search options when they are imported.

A plugin is any importable module that calls :func:`~retrievo.signals.registry.register_signal`,
:func:`~retrievo.search.stages.register_stage` or :func:`~retrievo.request.register_option` at import. In
Python, import it before opening the collections that use it. The command line and the server
(``retrievo serve``) import the modules named by ``--plugin MODULE`` (repeatable) and by the environment
variable ``RETRIEVO_PLUGINS`` (comma-separated), and every module an installed package declares under the
entry-point group ``retrievo.plugins``, before they build their flags and the HTTP spec — so a plugin's
options are flags and body fields there too.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from importlib import metadata

from retrievo.errors import InvalidInputError

__all__ = ["ENV_VAR", "ENTRY_POINT_GROUP", "load_plugins", "plugin_modules"]

ENV_VAR = "RETRIEVO_PLUGINS"
ENTRY_POINT_GROUP = "retrievo.plugins"


def plugin_modules(argv: Iterable[str] = ()) -> list[str]:
    """The modules named by ``--plugin MODULE`` / ``--plugin=MODULE`` in ``argv`` and by ``RETRIEVO_PLUGINS``."""
    argv = list(argv)
    names = [m.strip() for m in os.environ.get(ENV_VAR, "").split(",") if m.strip()]
    for i, arg in enumerate(argv):
        if arg == "--plugin" and i + 1 < len(argv):
            names.append(argv[i + 1])
        elif arg.startswith("--plugin="):
            names.append(arg.split("=", 1)[1])
    return list(dict.fromkeys(names))


def load_plugins(modules: Iterable[str] = (), entry_points: bool = True) -> list[str]:
    """Import ``modules`` (and, with ``entry_points``, the installed ``retrievo.plugins`` entry points);
    returns the names imported.

    Raises:
        InvalidInputError: a module cannot be imported (naming it and why).
    """
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an import error, or the plugin's own registration failing
            raise InvalidInputError(f"plugin {name!r} could not be loaded: {type(exc).__name__}: {exc}") from exc
        loaded.append(name)
    if entry_points:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:
                raise InvalidInputError(f"plugin entry point {ep.name!r} ({ep.value}) could not be loaded: {exc}") from exc
            loaded.append(ep.value)
    return loaded
