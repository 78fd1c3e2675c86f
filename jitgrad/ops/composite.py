"""Functions written as compositions of other ops: std_mean, var_mean, cdist. Their
gradients, and gradients of any order, are those of the ops they run (so their grad_fn names are
those ops', not PyTorch's fused nodes' such as StdMeanBackward0 or CdistBackward0).
"""

import math
import warnings

import numpy as np

from .. import dtypes
from ..creation import zeros
from ..tensor import Tensor, _check_dim, _wrap
from .elementwise import _LN2, clamp, logaddexp, sqrt, sub, where
from .indexing import diag
from .linalg import matmul
from .reductions import mean, norm, std, sum, var
from .shape import cat, stack, transpose, unsqueeze
from ._core import _broadcast_shape, torch_names


def _spread_args(dim, unbiased):
    """std_mean(x, True): a bool first argument is `unbiased`, as in torch's overloads."""
    if isinstance(dim, bool):
        return None, dim
    return dim, unbiased


@torch_names(functions=("std_mean",))
def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) over dim, as torch.std_mean."""
    dim, unbiased = _spread_args(dim, unbiased)
    return (std(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


@torch_names(functions=("var_mean",))
def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) over dim, as torch.var_mean."""
    dim, unbiased = _spread_args(dim, unbiased)
    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


@torch_names(functions=("cdist",))
def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """The p-norm distance between each row of x1 (..., P, M) and each row of x2 (..., R, M):
    (..., P, R), batch dimensions broadcast.

    Like PyTorch, the Euclidean distance of more than 25 rows (or with compute_mode
    "use_mm_for_euclid_dist") goes through matmul (|a|^2 - 2 a.b + |b|^2, clamped at 1e-30),
    which needs no (P, R, M) intermediate."""
    for name, x in (("X1", x1), ("X2", x2)):
        if not isinstance(x, Tensor):
            raise TypeError(f"cdist(): argument '{name.lower()}' must be Tensor, not "
                            f"{type(x).__name__}")
        if x.dim() < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: {x.dim()}D")
        if not x.is_floating_point():
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: "
                               f"{x.dtype.tensor_type[:-6]}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} "
                           f"X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    modes = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
             "donot_use_mm_for_euclid_dist")
    if compute_mode not in modes:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    use_mm = p == 2 and (compute_mode == "use_mm_for_euclid_dist" or (
        compute_mode == modes[0] and (x1.shape[-2] > 25 or x2.shape[-2] > 25)))
    if use_mm:
        squared = (sum(x1 * x1, -1, keepdim=True) - 2 * matmul(x1, transpose(x2, -1, -2))
                   + transpose(sum(x2 * x2, -1, keepdim=True), -1, -2))
        return sqrt(clamp(squared, min=1e-30))
    return norm(sub(unsqueeze(x1, -2), unsqueeze(x2, -3)), p, -1)


# ---- shape and arrangement: views and copies through existing ops --------------------------------
def _tensor_arg(fn, x, name="input", position=1):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' (position {position}) must be Tensor, not "
                        f"{type(x).__name__}")


@torch_names("broadcast_to")
def broadcast_to(input, size):
    return input.expand(*size)


@torch_names(functions=("broadcast_tensors",))
def broadcast_tensors(*tensors):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    shape = ()
    for t in tensors:
        shape = _broadcast_shape(shape, tuple(t.shape))
    return tuple(t.expand(*shape) for t in tensors)


@torch_names("movedim", "moveaxis")
def movedim(input, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) should "
                           f"contain the same number of dims as destination ({dst} dims)")
    n = input.dim()
    src = [_check_dim(d, n) for d in src]
    dst = [_check_dim(d, n) for d in dst]
    for dims, what in ((src, "source"), (dst, "destination")):
        if len(set(dims)) != len(dims):
            given = source if what == "source" else destination
            raise RuntimeError(f"movedim: repeated dim in `{what}` ({list(given)})")
    order = [None] * n
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(n) if d not in src)
    return input.permute(*[next(rest) if o is None else o for o in order])


@torch_names("swapaxes", "swapdims")
def swapaxes(input, axis0, axis1):
    return input.transpose(axis0, axis1)


@torch_names("ravel")
def ravel(input):
    return input.reshape(-1)


@torch_names("positive")
def positive(input):
    if input.dtype == dtypes.bool:
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return input


@torch_names("fliplr")
def fliplr(input):
    if input.dim() < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return input.flip(1)


@torch_names("flipud")
def flipud(input):
    if input.dim() < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return input.flip(0)


@torch_names("rot90")
def rot90(input, k=1, dims=(0, 1)):
    dims = list(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.dim() < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.dim()}")
    d0, d1 = (_check_dim(d, input.dim()) for d in dims)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return input.flip(d1).transpose(d0, d1)
    if k == 2:
        return input.flip(d0, d1)
    if k == 3:
        return input.flip(d0).transpose(d0, d1)
    return input.clone()


def _atleast(n, tensors):
    one = len(tensors) == 1 and isinstance(tensors[0], Tensor)
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    out = []
    for t in tensors:
        while t.dim() < n:
            t = t.unsqueeze(-1) if (n == 3 and t.dim() == 2) else t.unsqueeze(0)
        out.append(t)
    return out[0] if one else tuple(out)


@torch_names(functions=("atleast_1d",))
def atleast_1d(*tensors):
    return _atleast(1, tensors)


@torch_names(functions=("atleast_2d",))
def atleast_2d(*tensors):
    return _atleast(2, tensors)


@torch_names(functions=("atleast_3d",))
def atleast_3d(*tensors):
    return _atleast(3, tensors)


@torch_names(functions=("column_stack",))
def column_stack(tensors):
    return cat([t.reshape(-1, 1) if t.dim() <= 1 else t for t in tensors], 1)


@torch_names(functions=("dstack",))
def dstack(tensors):
    return cat([_atleast(3, (t,)) for t in tensors], 2)


@torch_names("tensor_split")
def tensor_split(input, indices_or_sections, dim=0):
    d = _check_dim(dim, input.dim())
    n = input.shape[d]
    ios = indices_or_sections
    if isinstance(ios, Tensor):
        ios = ios.tolist() if ios.dim() else int(ios.item())
    if isinstance(ios, int):
        if ios <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {ios}")
        size, extra = divmod(n, ios)
        bounds, start = [], 0
        for i in range(ios):
            start += size + (1 if i < extra else 0)
            bounds.append(start)
        bounds = bounds[:-1]
    else:
        bounds = list(ios)
    out, start = [], 0
    for b in bounds + [n]:
        b = min(max(b + n if b < 0 else b, 0), n)
        stop = max(b, start)
        out.append(input.narrow(d, start, stop - start))
        start = stop
    return tuple(out)


def _split_along(fn, input, ios, dim, least):
    if input.dim() < least:
        raise RuntimeError(f"torch.{fn} requires a tensor with at least {least} dimension, but got a "
                           f"tensor with {input.dim()} dimensions!")
    if isinstance(ios, int) and input.shape[dim] % ios:
        raise RuntimeError(f"torch.{fn} attempted to split along dimension {dim}, but the size of the "
                           f"dimension {input.shape[dim]} is not divisible by the split_size {ios}!")
    return tensor_split(input, ios, dim)


@torch_names("hsplit")
def hsplit(input, indices_or_sections):
    return _split_along("hsplit", input, indices_or_sections, 1 if input.dim() > 1 else 0, 1)


@torch_names("vsplit")
def vsplit(input, indices_or_sections):
    return _split_along("vsplit", input, indices_or_sections, 0, 2)


@torch_names("dsplit")
def dsplit(input, indices_or_sections):
    return _split_along("dsplit", input, indices_or_sections, 2, 3)


@torch_names("tile")
def tile(input, dims):
    dims = [dims] if isinstance(dims, int) else list(dims)
    x = input
    while x.dim() < len(dims):
        x = x.unsqueeze(0)
    return x.repeat(*([1] * (x.dim() - len(dims)) + dims))


@torch_names("trace")
def trace(input):
    if input.dim() != 2:
        raise RuntimeError("trace: expected a matrix, but got tensor with dim " + str(input.dim()))
    return input.diagonal().sum()


@torch_names("diff")
def diff(input, n=1, dim=-1, prepend=None, append=None):
    if input.dim() == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = _check_dim(dim, input.dim())
    x = cat([t for t in (prepend, input, append) if t is not None], d) if (prepend is not None or
                                                                         append is not None) else input
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        a, b = x.narrow(d, 1, m - 1), x.narrow(d, 0, m - 1)
        x = a.logical_xor(b) if x.dtype == dtypes.bool else a - b
    return x


@torch_names("diag_embed")
def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    nd = input.dim() + 1
    d1, d2 = _check_dim(dim1, nd), _check_dim(dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    n = input.shape[-1] + abs(offset)
    rows = input.reshape(-1, input.shape[-1])
    # one diag() per row of input: each is one matrix of the result
    mats = stack([diag(r, offset) for r in rows.unbind(0)]) if rows.shape[0] else \
        zeros(0, n, n, dtype=input.dtype)
    return movedim(mats.reshape(*input.shape[:-1], n, n), (nd - 2, nd - 1), (d1, d2))


@torch_names("diagflat")
def diagflat(input, offset=0):
    return diag(input.reshape(-1), offset)


# ---- elementwise compositions ---------------------------------------------------------------------
def _float(x):
    return x if x.is_floating_point() else x.to(dtypes.default_float)


@torch_names("deg2rad", inplace=("deg2rad_",))
def deg2rad(input):
    return _float(input) * (math.pi / 180)


@torch_names("rad2deg", inplace=("rad2deg_",))
def rad2deg(input):
    return _float(input) * (180 / math.pi)


@torch_names("absolute", inplace=("absolute_",))
def absolute(input):
    return input.abs()


@torch_names("sgn", inplace=("sgn_",))
def sgn(input):
    return input.sign()


@torch_names("frac", inplace=("frac_",))
def frac(input):
    if not input.is_floating_point():
        raise NotImplementedError(f'"frac_cpu" not implemented for \'{input.dtype.tensor_type[:-6]}\'')
    return input - input.trunc()


@torch_names("clamp_min", inplace=("clamp_min_",))
def clamp_min(input, min):
    return clamp(input, min=min)


@torch_names("clamp_max", inplace=("clamp_max_",))
def clamp_max(input, max):
    return clamp(input, max=max)


@torch_names("signbit")
def signbit(input):
    return _wrap(np.signbit(input._a))


@torch_names("isposinf")
def isposinf(input):
    return _wrap(np.isposinf(input._a) if input._a.dtype.kind == "f" else np.zeros(input._a.shape, bool))


@torch_names("isneginf")
def isneginf(input):
    return _wrap(np.isneginf(input._a) if input._a.dtype.kind == "f" else np.zeros(input._a.shape, bool))


@torch_names("logaddexp2")
def logaddexp2(input, other):
    return logaddexp(input * _LN2, other * _LN2) / _LN2


@torch_names("float_power")
def float_power(input, exponent):
    base = input.to(dtypes.float64) if isinstance(input, Tensor) else input
    return base ** (exponent.to(dtypes.float64) if isinstance(exponent, Tensor) else exponent)


@torch_names("fmax")
def fmax(input, other):
    """The larger, ignoring a nan operand; at a tie the gradient goes to input, as PyTorch's."""
    return where((input >= other) | other.isnan(), input, other)


@torch_names("fmin")
def fmin(input, other):
    return where((input <= other) | other.isnan(), input, other)


@torch_names("logit", inplace=("logit_",))
def logit(input, eps=None):
    x = _float(input)
    if eps is not None:
        x = clamp(x, eps, 1 - eps)
    return (x / (1 - x)).log()


# ---- a few small functions torch has at the top level -----------------------------------------------
@torch_names(functions=("numel",))
def numel(input):
    _tensor_arg("numel", input)
    return input.numel()


@torch_names(functions=("is_floating_point",))
def is_floating_point(input):
    _tensor_arg("is_floating_point", input, "input", 1)
    return input.is_floating_point()


@torch_names("cross")
def cross(input, other, dim=None):
    """The cross product of 3-vectors along dim (broadcast); without dim, PyTorch's deprecated
    default: the first dim of size 3."""
    shape = _broadcast_shape(tuple(input.shape), tuple(other.shape))
    if dim is None:
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated.\nPlease either "
                      "pass the dim explicitly or simply use torch.linalg.cross.\nThe default value of "
                      "dim will change to agree with that of linalg.cross in a future release.",
                      UserWarning, stacklevel=3)
        dim = next((d for d, n in enumerate(shape) if n == 3), -1)
    if input.shape[dim] != 3 or other.shape[dim] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {input.shape[dim]} "
                           f"and {other.shape[dim]}")
    x, y = ([t.narrow(dim, i, 1) for i in range(3)] for t in (input, other))
    return cat([x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]], dim)


@torch_names(functions=("tensordot",))
def tensordot(a, b, dims=2, out=None):
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        da, db = list(range(a.dim() - dims, a.dim())), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(da) != len(db):
        raise RuntimeError("both dimension lists should have same length")
    da = [_check_dim(d, a.dim()) for d in da]
    db = [_check_dim(d, b.dim()) for d in db]
    for x, y in zip(da, db):
        if a.shape[x] != b.shape[y]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {a.shape[x]} "
                               f"in dim {x} and second has size {b.shape[y]} in dim {y}")
    ka = [d for d in range(a.dim()) if d not in da]
    kb = [d for d in range(b.dim()) if d not in db]
    m = int(math.prod([a.shape[d] for d in ka]))
    n = int(math.prod([b.shape[d] for d in kb]))
    k = int(math.prod([a.shape[d] for d in da]))
    left = a.permute(*(ka + da)).reshape(m, k)
    right = b.permute(*(db + kb)).reshape(k, n)
    return matmul(left, right).reshape(*[a.shape[d] for d in ka], *[b.shape[d] for d in kb])
