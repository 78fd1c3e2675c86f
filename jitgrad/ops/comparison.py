"""Comparisons and logic (eq, lt, ..., all, any, equal, allclose, isclose): no gradient, no rule."""
import builtins

import numpy as np

from ..tensor import Tensor, _wrap
from ._core import _arr, _check_bcast, _dims


# ======================= comparisons and logic (no gradient) ===================================
def _compare(fn):
    def f(x, y):
        ya = y._a if isinstance(y, Tensor) else y
        if isinstance(ya, np.ndarray):
            _check_bcast(x._a, ya)
        return _wrap(_arr(fn(x._a, ya)))
    return f


eq, ne, lt, le, gt, ge = (_compare(f) for f in (np.equal, np.not_equal, np.less, np.less_equal,
                                                np.greater, np.greater_equal))


def all(x, dim=None, keepdim=False):
    return _wrap(_arr(np.all(x._a, axis=None if dim is None else _dims(dim, x._a.ndim), keepdims=keepdim)))


def any(x, dim=None, keepdim=False):
    return _wrap(_arr(np.any(x._a, axis=None if dim is None else _dims(dim, x._a.ndim), keepdims=keepdim)))


def equal(x, y):
    return x._a.shape == y._a.shape and builtins.bool(np.array_equal(x._a, y._a))


def allclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    _check_bcast(x._a, y._a)
    return builtins.bool(np.allclose(x._a, y._a, rtol, atol, equal_nan))


def isclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    _check_bcast(x._a, y._a)
    return _wrap(np.isclose(x._a, y._a, rtol, atol, equal_nan))
