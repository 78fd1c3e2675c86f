"""Tensor constructors and the random generator, with PyTorch's names and defaults."""
import builtins

import numpy as np

from . import dtypes
from .tensor import Tensor, _wrap, _to_array

_rng = np.random.default_rng()


def manual_seed(seed):
    global _rng
    _rng = np.random.default_rng(int(seed))
    return _rng


def _np_dtype(dtype, default=dtypes.float32):
    return dtypes.to_numpy_dtype(dtype if dtype is not None else default)


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(builtins.int(s) for s in size)


def _finish(a, requires_grad):
    t = _wrap(a)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):
    return _finish(_to_array(data, None if dtype is None else dtypes.to_numpy_dtype(dtype)),
                   requires_grad)


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and (dtype is None or data.dtype is dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == dtypes.to_numpy_dtype(dtype)):
        return _wrap(data.view())     # shares memory, not the array object
    return tensor(data, dtype)


def from_numpy(a):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    dtypes.from_numpy_dtype(a.dtype)
    return _wrap(a.view())     # shares memory, not the array object (a.shape = ... stays a's)


def _filled(value):
    def make(*size, dtype=None, device=None, requires_grad=False, out=None):
        return _finish(np.full(_shape(size), value, _np_dtype(dtype)), requires_grad)
    return make


zeros = _filled(0)
ones = _filled(1)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.zeros(_shape(size), _np_dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = dtypes.bool if isinstance(fill_value, builtins.bool) else (
            dtypes.int64 if isinstance(fill_value, builtins.int) else dtypes.float32)
    return _finish(np.full(_shape((size,)), fill_value, _np_dtype(dtype)), requires_grad)


def _like(fn):
    def make(t, dtype=None, device=None, requires_grad=False, **_):
        return fn(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)
    return make


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    nd = _np_dtype(dtype)
    return _finish(_rng.random(_shape(size)).astype(nd), requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    nd = _np_dtype(dtype)
    return _finish(_rng.standard_normal(_shape(size)).astype(nd), requires_grad)


def rand_like(t, dtype=None, requires_grad=False, **_):
    return rand(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def randn_like(t, dtype=None, requires_grad=False, **_):
    return randn(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def randint(*args, size=None, generator=None, dtype=None, device=None, requires_grad=False, **kw):
    """randint(high, size) or randint(low, high, size), as torch.randint."""
    if "low" in kw or "high" in kw:
        args = ((kw.pop("low", 0), kw.pop("high")) + args)
    if size is None:
        if not args or not isinstance(args[-1], (tuple, list)):
            raise TypeError("randint() missing required argument 'size'")
        args, size = args[:-1], args[-1]
    low, high = (0, args[0]) if len(args) == 1 else args
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                           f"to={high}")
    return _finish(_rng.integers(low, high, size=tuple(size)).astype(_np_dtype(dtype, dtypes.int64)),
                   requires_grad)


def randperm(n, dtype=None, requires_grad=False, **_):
    return _wrap(_rng.permutation(n).astype(_np_dtype(dtype, dtypes.int64)))


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = dtypes.int64 if all(isinstance(v, builtins.int) for v in (start, end, step)) \
            else dtypes.float32
    return _finish(np.arange(start, end, step).astype(_np_dtype(dtype)), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _finish(np.linspace(start, end, steps).astype(_np_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _finish(np.eye(n, m, dtype=_np_dtype(dtype)), requires_grad)


# legacy typed constructors
def FloatTensor(*args):
    return Tensor(*args)


def DoubleTensor(*args):
    return Tensor(*args).to(dtypes.float64) if args else tensor([], dtypes.float64)


def LongTensor(*args):
    if len(args) == 1 and not isinstance(args[0], builtins.int):
        return tensor(args[0], dtypes.int64)
    return zeros(*args, dtype=dtypes.int64)
