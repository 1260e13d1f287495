"""Lazy public names: a package lists ``name -> module`` and imports the module on first access."""

from __future__ import annotations

import importlib


def lazy_module(package: str, names: dict[str, str], *, moved: dict[str, str] | None = None):
    """Return ``(__getattr__, __dir__, __all__)`` for a package whose names load on first use.

    ``names`` maps a public name to the module that defines it; ``moved`` maps an attribute to a whole
    module (a module of an earlier layout that now lives elsewhere).
    """
    public = sorted(names)
    moved = dict(moved or {})

    def __getattr__(name: str):
        if name in moved:
            value = importlib.import_module(moved[name])
        else:
            module = names.get(name)
            if module is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(importlib.import_module(module), name)
        importlib.import_module(package).__dict__[name] = value
        return value

    def __dir__():
        return public

    return __getattr__, __dir__, public
