"""normcli: apply and understand local response and batch normalization.

The library API::

    >>> import numpy as np
    >>> from normcli import lrn, batch_norm, batch_stats
    >>> x = np.ones((4, 1, 1), dtype=np.float32)
    >>> float(lrn(x, k=0, alpha=1, beta=1, n=2)[0, 0, 0])
    0.5

The names are imported lazily so that ``normcli --help`` does not pay for
numpy's import.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "lrn": "normcli.ops.lrn",
    "batch_norm": "normcli.ops.batchnorm",
    "BatchNormalizer": "normcli.ops.batchnorm",
    "resolve_batchnorm": "normcli.ops.batchnorm",
    "batch_stats": "normcli.ops.moments",
    "BatchStats": "normcli.ops.moments",
    "RunningStats": "normcli.ops.moments",
    "CONVENTIONS": "normcli.ops.conventions",
    "Convention": "normcli.ops.conventions",
    "resolve_lrn": "normcli.ops.conventions",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'normcli' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
