"""Package attributes imported on first use (PEP 562), to keep start-up short."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_attributes(package: str, namespace: dict, where: Mapping[str, str]) -> Callable:
    """A module ``__getattr__`` that imports ``name`` from ``where[name]`` when first
    asked for, and keeps it in the package's ``namespace`` (its ``globals()``)."""

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(where[name]), name)
        return value

    return __getattr__
