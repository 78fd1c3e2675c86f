"""Tensor constructors and the random generator, with PyTorch's names and defaults."""
import builtins
import math
import warnings

import numpy as np

from . import _device, _keywords, dtypes
from .engine import hook as _hook
from .tensor import Tensor, Size, _wrap, _to_array, _legacy_array
from .random import default_generator, manual_seed, _numpy_rng  # noqa: F401  (manual_seed: export)

_rng = default_generator._np        # the default stream, for code drawing from it directly


def _np_dtype(dtype, default=None, fn=None):
    """dtype's numpy dtype; given none, `default` (None: the default float dtype)."""
    if fn is not None and dtype is not None and not isinstance(dtype, dtypes.dtype) and \
            dtype not in (builtins.float, builtins.int, builtins.bool):
        raise TypeError(f"{fn}(): argument 'dtype' must be jitgrad.dtype, not "
                        f"{_type_name(dtype)}")
    if dtype is None:
        dtype = default if default is not None else dtypes.default_float
    return dtypes.to_numpy_dtype(dtype)


def _type_name(v):
    if isinstance(v, Tensor):
        return "Tensor"
    t = type(v)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


def _is_size(v):
    """An int as PyTorch accepts it for a size: not bool, not float, a 0-d integer tensor is fine."""
    if isinstance(v, Tensor):
        return v.dim() == 0 and v._a.dtype.kind in "iu"
    return isinstance(v, (builtins.int, np.integer)) and not isinstance(v, (builtins.bool, np.bool_))


def int_tuple(size, fn, arg="size", seq_only=False, pos=1):
    """A size argument (varargs, or one tuple or list) as PyTorch parses it: ints only (2.5 is a
    TypeError, not 2)."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = tuple(size[0])
    elif seq_only or (len(size) == 1 and not _is_size(size[0])):
        raise TypeError(f"{fn}(): argument '{arg}' (position {pos}) must be tuple of ints, not "
                        f"{_type_name(size[0])}")
    for i, s in enumerate(size):
        if not _is_size(s):
            if i == 0:
                raise TypeError(f"{fn}(): argument '{arg}' (position {pos}) must be tuple of ints, "
                                f"but found element of type {_type_name(s)} at pos 0")
            raise TypeError(f"{fn}(): argument '{arg}' failed to unpack the object at pos {i + 1} "
                            f'with error "type must be tuple of ints,but got {_type_name(s)}"')
    return tuple(builtins.int(s) for s in size)


def _shape(size, fn, seq_only=False):
    """A new tensor's shape: ints, none negative."""
    shape = int_tuple(size, fn, seq_only=seq_only)
    for s in shape:
        if s < 0:
            if fn == "zeros":
                raise RuntimeError("zeros: Dimension size must be non-negative.")
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(shape)}")
    return shape


def check_device(device, factory=True):
    """Accept what PyTorch's CPU build accepts (None, "cpu", "cpu:N", a cpu device) and raise its
    errors for the rest (`factory`: as a creation function allocating there raises them)."""
    if device is not None:
        _device.as_device(device, factory)


def _not_implemented(kernel, dtype):
    """PyTorch's error for a dtype its kernel does not support."""
    return NotImplementedError(f'"{kernel}" not implemented for '
                               f"'{dtypes.from_numpy_dtype(dtype).tensor_type[:-6]}'")


def _finish(a, requires_grad, constant=False):
    """constant: the values depend on the call's Python arguments only (zeros, full, arange...),
    so a compiled step's trace may keep them as they are."""
    t = _wrap(a)
    if requires_grad:
        t.requires_grad_(True)
    elif constant and _hook.tracer is not None:
        _hook.tracer.constant(t)
    return t


def drawn(make, rng=None):
    """Tensors of the arrays make() returns, a random draw from rng (numpy's generator; None:
    the default one's): a compiled step's trace records make, so each replay draws anew from
    the same generator (as each eager call would)."""
    ts = [_wrap(np.asarray(a)) for a in make()]
    if _hook.tracer is not None:
        _hook.tracer.drawn(ts, make, _rng if rng is None else rng)
    return ts


def _draw(make, requires_grad, rng):
    if requires_grad:
        return _finish(make(), requires_grad)
    (t,) = drawn(lambda: (make(),), rng)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):
    check_device(device, factory=False)
    return _finish(_to_array(data, None if dtype is None else _np_dtype(dtype, fn="tensor")),
                   requires_grad, constant=_hook.tracer is not None and _python_values(data))


def _python_values(data):
    """data is Python numbers (nested in lists or tuples), not an array or tensor a later call
    may find changed."""
    if isinstance(data, (list, tuple)):
        return all(_python_values(e) for e in data)
    return isinstance(data, (builtins.int, builtins.float, builtins.bool, builtins.complex))


def as_tensor(data, dtype=None, device=None):
    check_device(device, factory=False)
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


def _filled(value, name):
    def make(*size, dtype=None, device=None, requires_grad=False, out=None):
        shape = _shape(size, name)
        check_device(device)
        return _finish(np.full(shape, value, _np_dtype(dtype, fn=name)), requires_grad, constant=True)
    make.__name__ = name
    return make


zeros = _filled(0, "zeros")
ones = _filled(1, "ones")


def empty(*size, dtype=None, device=None, requires_grad=False):
    shape = _shape(size, "empty")
    check_device(device)
    return _finish(np.zeros(shape, _np_dtype(dtype, fn="empty")), requires_grad, constant=True)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    shape = _shape((size,), "full", seq_only=True)
    check_device(device)
    if dtype is None:
        dtype = dtypes.bool if isinstance(fill_value, builtins.bool) else (
            dtypes.int64 if isinstance(fill_value, builtins.int) else None)
    return _finish(np.full(shape, fill_value, _np_dtype(dtype, fn="full")), requires_grad, constant=True)


def _like(fn):
    def make(input, dtype=None, device=None, requires_grad=False, **_):
        check_device(device)
        return fn(*input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)
    make.__name__ = fn.__name__ + "_like"
    return make


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    check_device(device)
    return full(input.shape, fill_value, dtype=dtype or input.dtype, requires_grad=requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    shape = _shape(size, "rand")
    check_device(device)
    nd = _np_dtype(dtype, fn="rand")
    if nd.kind != "f":
        raise _not_implemented("check_uniform_bounds", nd)
    rng = _numpy_rng(generator, "rand")
    return _draw(lambda: rng.random(shape).astype(nd), requires_grad, rng)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    shape = _shape(size, "randn")
    check_device(device)
    nd = _np_dtype(dtype, fn="randn")
    if nd.kind != "f":
        raise _not_implemented("normal_kernel_cpu", nd)
    rng = _numpy_rng(generator, "randn")
    return _draw(lambda: rng.standard_normal(shape).astype(nd), requires_grad, rng)


def rand_like(input, dtype=None, device=None, requires_grad=False, *, generator=None, **_):
    return rand(input.shape, generator=generator, dtype=dtype or input.dtype, device=device,
                requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False, *, generator=None, **_):
    return randn(input.shape, generator=generator, dtype=dtype or input.dtype, device=device,
                 requires_grad=requires_grad)


def randint_like(input, *args, generator=None, dtype=None, device=None, requires_grad=False,
                 **kw):
    """randint_like(input, high) or randint_like(input, low, high): in input's dtype."""
    if not isinstance(input, Tensor):
        raise TypeError(f"randint_like(): argument 'input' (position 1) must be Tensor, not "
                        f"{_type_name(input)}")
    return randint(*args, input.shape, generator=generator, dtype=dtype or input.dtype,
                   device=device, requires_grad=requires_grad, **kw)


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
    if not isinstance(size, (tuple, list, Size)):
        raise TypeError(f"randint(): argument 'size' must be tuple of ints, not {_type_name(size)}")
    shape = _shape((size,), "randint")
    check_device(device)
    nd = _np_dtype(dtype, dtypes.int64, "randint")
    return _finish(_numpy_rng(generator, "randint").integers(low, high, size=shape).astype(nd),
                   requires_grad)


def _int_arg(fn, name, v, pos):
    if not _is_size(v):
        raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be int, not "
                        f"{_type_name(v)}")
    return builtins.int(v)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False, **_):
    n = _int_arg("randperm", "n", n, 1)
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    check_device(device)
    nd = _np_dtype(dtype, dtypes.int64, "randperm")
    return _finish(_numpy_rng(generator, "randperm").permutation(n).astype(nd), requires_grad)


def _number(v):
    return v.item() if isinstance(v, (Tensor, np.generic)) else v


def arange(start=0, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    start, end, step = _number(start), _number(end), _number(step)
    check_device(device)
    if dtype is None:
        dtype = dtypes.int64 if all(isinstance(v, builtins.int) for v in (start, end, step)) \
            else None
    nd = _np_dtype(dtype, fn="arange")
    if nd.kind == "b":
        raise _not_implemented("arange_cpu", nd)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise RuntimeError(f"unsupported range: {start} -> {end}")
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (step > 0 and end < start) or (step < 0 and start < end):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    return _finish(np.arange(start, end, step).astype(nd), requires_grad, constant=True)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    steps = _int_arg("linspace", "steps", steps, 3)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    check_device(device)
    nd = _np_dtype(dtype, fn="linspace")
    if nd.kind == "b":
        raise _not_implemented("linspace_cpu", nd)
    return _finish(np.linspace(_number(start), _number(end), steps).astype(nd), requires_grad, constant=True)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    n = _int_arg("eye", "n", n, 1)
    if n < 0:
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    if m is not None:
        m = _int_arg("eye", "m", m, 2)
        if m < 0:
            raise RuntimeError(f"m must be greater or equal to 0, got {m}")
    check_device(device)
    return _finish(np.eye(n, m, dtype=_np_dtype(dtype, fn="eye")), requires_grad, constant=True)


# Tensor.new_*: a new tensor with this tensor's dtype unless told otherwise
def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    if isinstance(data, Tensor):
        warnings.warn("To copy construct from a tensor, it is recommended to use "
                      "sourceTensor.detach().clone() or sourceTensor.detach().clone()"
                      ".requires_grad_(True), rather than tensor.new_tensor(sourceTensor).",
                      UserWarning, stacklevel=2)
    return tensor(data, dtype or self.dtype, device, requires_grad)


def _new_filled(value, name):
    def make(self, *size, dtype=None, device=None, requires_grad=False):
        shape = _shape(size, name)
        check_device(device)
        return _finish(np.full(shape, value, _np_dtype(dtype, self.dtype, name)), requires_grad, constant=True)
    make.__name__ = name
    return make


new_zeros = _new_filled(0, "new_zeros")
new_ones = _new_filled(1, "new_ones")
new_empty = _new_filled(0, "new_empty")


def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    shape = _shape((size,), "new_full", seq_only=True)
    check_device(device)
    return _finish(np.full(shape, fill_value, _np_dtype(dtype, self.dtype, "new_full")),
                   requires_grad, constant=True)


# legacy typed constructors: their dtype whatever the default dtype is
def FloatTensor(*args):
    return _wrap(_legacy_array(args, np.float32))


def DoubleTensor(*args):
    return _wrap(_legacy_array(args, np.float64))


def LongTensor(*args):
    return _wrap(_legacy_array(args, np.int64))


# size= by keyword (zeros(size=(2, 3))), as torch's factories take it
zeros, ones, empty, rand, randn, new_zeros, new_ones, new_empty = (
    _keywords.accept(f.__name__, f)
    for f in (zeros, ones, empty, rand, randn, new_zeros, new_ones, new_empty))
