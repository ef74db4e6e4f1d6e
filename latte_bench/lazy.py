"""Lazy imports: package exports (``import latte_bench.models`` stays cheap until a name is used) and lazy modules."""

from __future__ import annotations

import importlib
import types


def lazy_getattr(package: str, exports: dict[str, str]):
    """A module ``__getattr__`` that imports ``package.<exports[name]>`` on first access of ``name``."""

    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class _LazyModule(types.ModuleType):
    """Stands in for module ``__name__`` until an attribute is read; then every read goes to the real module."""

    def __getattr__(self, attr):
        real = importlib.import_module(self.__name__)
        return getattr(real, attr)


def lazy_module(name: str) -> types.ModuleType:
    """The module ``name``, imported on the first attribute read (``lazy_module("latte_bench.metrics.evaluation")``).

    For the command modules: ``latte-bench --help`` builds every parser, and a dependency
    declared this way at the top of a command module is not imported (with torch) until the
    command runs. Attributes are looked up on the real module at each read, so patching it
    (tests) is seen.
    """
    return _LazyModule(name)
