"""Comparisons and logic (eq, lt, ..., all, any, equal, allclose, isclose), tests of values
(isnan, isinf, isfinite), logical and bitwise ops: no gradient, no rule."""
import builtins

import numpy as np

from ..tensor import Tensor, _wrap
from .. import dtypes
from ._core import _arr, _check_bcast, _dims, result_dtype, torch_names


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
torch_names("eq", "__eq__")(eq)
torch_names("ne", "not_equal", "__ne__")(ne)
torch_names("lt", "less", "__lt__")(lt)
torch_names("le", "less_equal", "__le__")(le)
torch_names("gt", "greater", "__gt__")(gt)
torch_names("ge", "greater_equal", "__ge__")(ge)


@torch_names("all")
def all(x, dim=None, keepdim=False):
    return _wrap(_arr(np.all(x._a, axis=None if dim is None else _dims(dim, x._a.ndim), keepdims=keepdim)))


@torch_names("any")
def any(x, dim=None, keepdim=False):
    return _wrap(_arr(np.any(x._a, axis=None if dim is None else _dims(dim, x._a.ndim), keepdims=keepdim)))


@torch_names("equal")
def equal(x, y):
    return x._a.shape == y._a.shape and builtins.bool(np.array_equal(x._a, y._a))


@torch_names("allclose")
def allclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    _check_bcast(x._a, y._a)
    return builtins.bool(np.allclose(x._a, y._a, rtol, atol, equal_nan))


@torch_names("isclose")
def isclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    _check_bcast(x._a, y._a)
    return _wrap(np.isclose(x._a, y._a, rtol, atol, equal_nan))


# ======================= tests of values, logic and bitwise ops (no gradient) =================
@torch_names("isnan")
def isnan(x):
    return _wrap(_arr(np.isnan(x._a) if x._a.dtype.kind == "f" else np.zeros(x._a.shape, np.bool_)))


@torch_names("isinf")
def isinf(x):
    return _wrap(_arr(np.isinf(x._a) if x._a.dtype.kind == "f" else np.zeros(x._a.shape, np.bool_)))


@torch_names("isfinite")
def isfinite(x):
    return _wrap(_arr(np.isfinite(x._a) if x._a.dtype.kind == "f" else np.ones(x._a.shape, np.bool_)))


def _pair(x, y):
    """Arrays of x and y (a tensor and a number, either first) in PyTorch's result dtype."""
    d = result_dtype(x, y)
    xa, ya = (np.asarray(v._a if isinstance(v, Tensor) else v).astype(d, copy=False) for v in (x, y))
    _check_bcast(xa, ya)
    return xa, ya


def _logical(fn):
    def f(x, y):
        xa, ya = (v._a if isinstance(v, Tensor) else np.asarray(v) for v in (x, y))
        _check_bcast(xa, ya)
        return _wrap(_arr(fn(xa, ya)))
    return f


logical_and, logical_or, logical_xor = (_logical(f) for f in (np.logical_and, np.logical_or, np.logical_xor))
torch_names("logical_and", inplace=("logical_and_",))(logical_and)
torch_names("logical_or", inplace=("logical_or_",))(logical_or)
torch_names("logical_xor", inplace=("logical_xor_",))(logical_xor)


@torch_names("logical_not")
def logical_not(x):
    return _wrap(_arr(np.logical_not(x._a)))


def _integral(a, kernel):
    if a.dtype.kind not in "biu":
        raise NotImplementedError(f'"{kernel}" not implemented for \'{dtypes.scalar_name(a.dtype)}\'')


def _bitwise(fn, kernel):
    def f(x, y):
        xa, ya = _pair(x, y)
        _integral(xa, kernel)
        return _wrap(_arr(fn(xa, ya)))
    return f


bitwise_and = torch_names("bitwise_and", "__and__", inplace=("bitwise_and_", "__iand__"))(_bitwise(np.bitwise_and, "bitwise_and_cpu"))
bitwise_or = torch_names("bitwise_or", "__or__", inplace=("bitwise_or_", "__ior__"))(_bitwise(np.bitwise_or, "bitwise_or_cpu"))
bitwise_xor = torch_names("bitwise_xor", "__xor__", inplace=("bitwise_xor_", "__ixor__"))(_bitwise(np.bitwise_xor, "bitwise_xor_cpu"))


@torch_names("bitwise_not")
def bitwise_not(x):
    _integral(x._a, "bitwise_not_cpu")
    return _wrap(_arr(np.logical_not(x._a) if x._a.dtype.kind == "b" else np.invert(x._a)))


@torch_names("__invert__")
def invert(x):
    """~x: PyTorch checks the dtype before dispatching."""
    if x._a.dtype.kind not in "biu":
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return bitwise_not(x)


def _shift(left):
    kernel = "lshift_cpu" if left else "rshift_cpu"

    def f(x, y):
        xa, ya = _pair(x, y)
        _integral(xa, kernel)
        bits = xa.dtype.itemsize * 8
        # as PyTorch's kernels: a shift by a negative amount or by the width or more gives 0
        # (right shifts of signed values: the sign, as a shift by width - 1)
        big = (ya < 0) | (ya >= bits)
        safe = np.where(big, 0, ya).astype(xa.dtype)
        if left:
            out = np.where(big, 0, np.left_shift(xa, safe))
        else:
            out = np.where(big, np.right_shift(xa, bits - 1) if xa.dtype.kind == "i" else 0,
                           np.right_shift(xa, safe))
        return _wrap(_arr(out.astype(xa.dtype, copy=False)))
    return f


bitwise_left_shift = torch_names("bitwise_left_shift", "__lshift__",
                                 inplace=("bitwise_left_shift_", "__ilshift__"))(_shift(True))
bitwise_right_shift = torch_names("bitwise_right_shift", "__rshift__",
                                  inplace=("bitwise_right_shift_", "__irshift__"))(_shift(False))


def _reflected(fn):
    """The operator with its operands swapped (x.__rand__(y) is y & x)."""
    return lambda x, y: fn(y, x)


rbitwise_and, rbitwise_or, rbitwise_xor, rbitwise_left_shift, rbitwise_right_shift = (
    _reflected(f) for f in (bitwise_and, bitwise_or, bitwise_xor, bitwise_left_shift, bitwise_right_shift))
for _fn, _name in ((rbitwise_and, "__rand__"), (rbitwise_or, "__ror__"), (rbitwise_xor, "__rxor__"),
                   (rbitwise_left_shift, "__rlshift__"), (rbitwise_right_shift, "__rrshift__")):
    torch_names(_name)(_fn)
