"""Reading pickles of numpy arrays (nested dicts of them, e.g. flax parameter trees) without running
pickled code.

A pickle names the functions that rebuild its objects, and unpickling calls them: a plain
`pickle.load` of an untrusted file can run anything. `load_array_pickle` admits only the globals a
numeric numpy array needs (`_reconstruct`, `ndarray`, `dtype`) and refuses any other one, naming it,
before it is called; object arrays (which would hold arbitrary pickled objects) are refused too.

    params = load_array_pickle("weights/alexnet.ckpt")   # {"AlexNet_0": {"Conv_0": {"kernel": ndarray}}}
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "load_array_pickle", "loads_array_pickle"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list, or holds something that is not numeric arrays."""


def _numpy_reconstruct() -> Any:
    # numpy 2 moved numpy.core to numpy._core; both names refer to one function.
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy's multiarray._reconstruct was not found")


def _reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """`ndarray.__reduce__`'s rebuilder, for plain ndarrays only (no subclass runs its own code)."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refusing to rebuild an array of type {subtype!r}; only numpy.ndarray is allowed")
    return _numpy_reconstruct()(np.ndarray, shape, dtype_code)


def _dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickleError(f"refusing the object dtype {dtype!r}: its items would be arbitrary pickled objects")
    return dtype


# What the pickles of numpy arrays name (numpy 1 spells the module numpy.core, numpy 2 numpy._core).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals come from `_ALLOWED`; any other raises `UnsafePickleError` naming it,
    and persistent ids (references to outside storage) are refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise UnsafePickleError(f"refusing to load the global {module}.{name}: only numpy arrays "
                                "(numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype) may be rebuilt")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing the persistent id {pid!r}: a plain array pickle has none")


def _check_tree(node: Any, where: str) -> None:
    """Only dicts (str keys), lists, tuples, numeric ndarrays and plain scalars may come out."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise UnsafePickleError(f"key {key!r} under {where or '/'} is not a string")
            _check_tree(value, f"{where}/{key}")
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _check_tree(value, f"{where}/{index}")
    elif isinstance(node, np.ndarray):
        if node.dtype.hasobject:
            raise UnsafePickleError(f"{where or '/'} is an object array; only numeric arrays are allowed")
    elif node is not None and not isinstance(node, (str, bytes, bool, int, float)):
        raise UnsafePickleError(f"{where or '/'} is a {type(node).__name__}; only arrays and plain values are allowed")


def loads_array_pickle(data: bytes) -> Any:
    """The numpy arrays (in dicts, lists, tuples) of pickle bytes; see `load_array_pickle`."""
    obj = RestrictedUnpickler(io.BytesIO(data)).load()
    _check_tree(obj, "")
    return obj


def load_array_pickle(path: str | os.PathLike[str]) -> Any:
    """The numpy arrays (in dicts, lists, tuples) of the pickle file `path`, read with an allow-list
    unpickler: raises `UnsafePickleError` (naming the global or the value) for anything else,
    before any code named by the file runs."""
    with open(path, "rb") as file:
        obj = RestrictedUnpickler(file).load()
    _check_tree(obj, "")
    return obj
