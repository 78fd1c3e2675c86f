"""Statistics and products PyTorch scripts call, written as compositions of other ops (issue 13):
median, nanmedian, quantile, nanquantile, kthvalue, mode, aminmax, msort, nansum, nanmean,
count_nonzero; cov, corrcoef, dist, inner, vdot, kron, addmv, addr, baddbmm, addbmm, chain_matmul,
take_along_dim; isin, argwhere, unravel_index, tril_indices, triu_indices, cartesian_prod,
combinations, block_diag, trapezoid, trapz, cumulative_trapezoid, logspace. Their gradients, and gradients of any order, are those of the ops they run, so
their grad_fn names are those ops' (GatherBackward0, AmaxBackward0, ...), not PyTorch's fused
nodes' (MedianBackward1, ...); the gradients themselves are PyTorch's: a selected value's goes to
the index returned, a whole-tensor median's is shared evenly by the elements equal to it.

Which element an order statistic selects among equal ones is PyTorch's CPU choice: median and
nanmedian take the stable sort's position (std::nth_element ordered by (value, index)); kthvalue
runs PyTorch's quickselect (quick_select_template) as written; mode the last index of the value
(PyTorch's, for rows of up to 16 elements: beyond, its unstable std::sort decides). The positions
are read in numpy, so a traced step (jitgrad.compile) that uses these runs eagerly.
"""
import builtins
import itertools
import warnings

import numpy as np

from .. import creation, dtypes
from ..tensor import Tensor, _check_dim, _wrap
from ._core import (_ValuesIndices, _broadcast_shape, _dims, _needs_grad, quiet, result_dtype,
                    return_types, torch_names)
from .comparison import isnan, logical_not
from .elementwise import ceil, clamp, floor, lerp, masked_fill, round, sqrt, sub, where
from .indexing import diagonal, gather, index_select, narrow, nonzero, select, sort, take
from .linalg import _check_expands_to, bmm, matmul, mm, mv, outer
from .reductions import amax, amin, cumsum, mean, norm, sum
from .shape import cat, clone, meshgrid, reshape, squeeze, stack, to, transpose, unsqueeze, view

for _name in ("median", "nanmedian", "kthvalue", "mode"):
    setattr(return_types, _name, type(_name, (_ValuesIndices,), {"__slots__": (), "_name": _name}))


class _MinMax(tuple):
    """(min, max), as torch.return_types.aminmax."""
    __slots__ = ()

    def __new__(cls, min, max):
        return tuple.__new__(cls, (min, max))

    min = property(lambda self: self[0])
    max = property(lambda self: self[1])

    def __repr__(self):
        return f"jitgrad.return_types.aminmax(\nmin={self[0]!r},\nmax={self[1]!r})"


_MinMax.__name__ = _MinMax.__qualname__ = "aminmax"
return_types.aminmax = _MinMax


def _not_for(input, kernel, kinds="b"):
    if input._a.dtype.kind in kinds:
        raise NotImplementedError(f'"{kernel}" not implemented for '
                                  f"'{dtypes.scalar_name(input._a.dtype)}'")


def _nonempty_dim(a, d, fn):
    if a.ndim and a.shape[d] == 0:
        raise IndexError(f"{fn}(): Expected reduction dim {d} to have non-zero size.")


def _selected(input, d, idx, keepdim, kind):
    """(input's values at indices idx along dim d, idx): idx holds one index per reduced row,
    shaped as the input with dim d of size 1. The values are a gather, so the gradient goes to
    the index selected, as PyTorch's value_selecting_reduction_backward."""
    if input._a.ndim == 0:
        return kind(view(input, ()), _wrap(np.zeros((), np.int64)))
    index = _wrap(np.ascontiguousarray(idx, np.int64))
    values = gather(input, d, index)
    if not keepdim:
        values, index = squeeze(values, d), _wrap(np.squeeze(index._a, d))
    return kind(values, index)


def _stable_position(a, d, k):
    """The index of the k-th (per row, k broadcast over rows) element of a's stable ascending
    order (NaN last) along d, shaped with d of size 1: the k-th value by partition, then among
    the elements equal to it the (k - number smaller)-th by index, without a full sort."""
    rows = np.moveaxis(a, d, -1)
    k = np.expand_dims(np.broadcast_to(k, rows.shape[:-1]), -1)
    kth = np.take_along_axis(np.partition(rows, np.unique(k), axis=-1) if rows.size else rows, k, -1)
    with quiet():
        at = rows == kth
        smaller = rows < kth
        if a.dtype.kind == "f":
            nan = np.isnan(kth)
            at |= np.isnan(rows) & nan
            smaller |= nan & ~np.isnan(rows)
    nth = k - smaller.sum(-1, keepdims=True)
    idx = np.argmax(at & (np.cumsum(at, -1) == nth + 1), -1)
    return np.expand_dims(idx, d)


def _evenly(input, mask):
    """The value the elements of input at mask share (all equal, or all NaN), with the gradient
    split evenly between them, as PyTorch's evenly_distribute_backward: amax of equal values is
    exact and shares its gradient evenly; NaN's are shared by mean (a sum of equal values would
    round)."""
    positions = _wrap(np.flatnonzero(mask).astype(np.int64))
    chosen = take(input, positions)
    if input._a.dtype.kind == "f" and np.isnan(input._a.reshape(-1)[positions._a[0]]):
        return mean(chosen)
    return amax(chosen)


def _whole_median(input, ignore_nan, kernel):
    _not_for(input, kernel)
    a = input._a
    if a.size == 0:      # NaN, with the empty gradient
        if _needs_grad(input):
            return sum(input) + np.nan
        with quiet():    # an integer tensor's NaN is PyTorch's too: the cast's (int64's minimum)
            return _wrap(np.array(np.nan).astype(a.dtype))
    flat = a.reshape(-1)
    nans = np.isnan(flat) if a.dtype.kind == "f" else np.zeros(flat.shape, bool)
    kept = flat[~nans] if ignore_nan else flat
    if kept.size == 0 or (not ignore_nan and nans.any()):
        mask = nans
    else:
        mask = flat == np.partition(kept, (kept.size - 1) // 2)[(kept.size - 1) // 2]
    if not _needs_grad(input):
        return _wrap(np.array(flat[np.flatnonzero(mask)[0]]))
    return _evenly(input, mask.reshape(a.shape))


def _median_dim(input, dim, keepdim, ignore_nan, kernel, fn, kind):
    _not_for(input, kernel)
    a = input._a
    d = _check_dim(dim, a.ndim)
    _nonempty_dim(a, d, fn)
    if a.ndim == 0:
        return _selected(input, 0, None, keepdim, kind)
    nans = np.isnan(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)
    if ignore_nan:
        count = a.shape[d] - nans.sum(axis=d)
        idx = _stable_position(a, d, np.maximum(count - 1, 0) // 2)
    else:
        idx = _stable_position(a, d, np.full(np.delete(a.shape, d), (a.shape[d] - 1) // 2,
                                             np.int64))
        has_nan = nans.any(axis=d, keepdims=True)
        if has_nan.any():      # PyTorch returns the first NaN
            idx = np.where(has_nan, np.argmax(nans, axis=d, keepdims=True), idx)
    return _selected(input, d, idx, keepdim, kind)


@torch_names("median")
def median(input, dim=None, keepdim=False):
    """The lower median of the whole tensor (NaN if any is), or (values, indices) along dim."""
    if dim is None:
        return _whole_median(input, False, "median_cpu")
    return _median_dim(input, dim, keepdim, False, "median_out", "median", return_types.median)


@torch_names("nanmedian")
def nanmedian(input, dim=None, keepdim=False):
    """median ignoring NaN (NaN where a row has nothing else)."""
    if dim is None:
        return _whole_median(input, True, "nanmedian_cpu")
    return _median_dim(input, dim, keepdim, True, "median_out", "median",
                       return_types.nanmedian)


def _quickselect(values, k):
    """The index PyTorch's CPU kthvalue returns: its quick_select_template, step for step."""
    arr = [(v, i) for i, v in enumerate(values)]

    def gt(x, y):         # x > y with NaN largest
        return (x != x and y == y) or x > y

    lo, hi = 0, len(arr) - 1
    while hi > lo:
        if hi == lo + 1:
            if gt(arr[lo][0], arr[hi][0]):
                arr[lo], arr[hi] = arr[hi], arr[lo]
            break
        p = lo + (hi - lo) // 2
        arr[p], arr[lo + 1] = arr[lo + 1], arr[p]
        if gt(arr[lo + 1][0], arr[hi][0]):
            arr[lo + 1], arr[hi] = arr[hi], arr[lo + 1]
        if gt(arr[lo][0], arr[hi][0]):
            arr[lo], arr[hi] = arr[hi], arr[lo]
        if gt(arr[lo + 1][0], arr[lo][0]):
            arr[lo + 1], arr[lo] = arr[lo], arr[lo + 1]
        i, j = lo + 1, hi
        piv = arr[lo][0]
        while True:
            i += 1
            while gt(piv, arr[i][0]):
                i += 1
            j -= 1
            while gt(arr[j][0], piv):
                j -= 1
            if j < i:
                break
            arr[i], arr[j] = arr[j], arr[i]
        arr[lo], arr[j] = arr[j], arr[lo]
        if j <= k:
            lo = i
        if j >= k:
            hi = j - 1
    return arr[k][1]


@torch_names("kthvalue")
def kthvalue(input, k, dim=-1, keepdim=False):
    """(values, indices) of the k-th smallest element along dim."""
    if not isinstance(k, (builtins.int, np.integer)) or isinstance(k, builtins.bool):
        raise TypeError(f"kthvalue(): argument 'k' (position 2) must be int, not {type(k).__name__}")
    _not_for(input, "kthvalue_cpu")
    a = input._a
    d = _check_dim(dim, a.ndim)
    _nonempty_dim(a, d, "kthvalue")
    n = a.shape[d] if a.ndim else 1
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    if a.ndim == 0:
        return _selected(input, 0, None, keepdim, return_types.kthvalue)
    rows = np.moveaxis(a, d, -1).reshape(-1, n)
    # a k-th value held by one element has one index, whatever the algorithm: only rows where it
    # is tied need PyTorch's quickselect (in Python, ~1 us per element)
    kth = np.partition(rows, k - 1, axis=1)[:, k - 1:k]
    with quiet():
        at = rows == kth
        if a.dtype.kind == "f":
            at |= np.isnan(rows) & np.isnan(kth)
    idx = np.argmax(at, axis=1)
    for r in np.flatnonzero(at.sum(axis=1) > 1):
        idx[r] = _quickselect(rows[r].tolist(), k - 1)
    shape = np.moveaxis(a, d, -1).shape[:-1]
    idx = np.expand_dims(idx.reshape(shape), d)
    return _selected(input, d, idx, keepdim, return_types.kthvalue)


@torch_names("mode")
def mode(input, dim=-1, keepdim=False):
    """(values, indices) of the most frequent value along dim (the smallest such; its last
    index)."""
    a = input._a
    d = _check_dim(dim, a.ndim)
    _nonempty_dim(a, d, "mode")
    if a.ndim == 0:
        return _selected(input, 0, None, keepdim, return_types.mode)
    n = a.shape[d]
    rows = np.moveaxis(a, d, -1).reshape(-1, n)
    order = np.argsort(rows, axis=1, kind="stable")
    s = np.take_along_axis(rows, order, 1)
    # a run ends where the next sorted value differs (NaN != NaN: each NaN is its own run)
    ends = np.ones(s.shape, bool)
    ends[:, :-1] = s[:, 1:] != s[:, :-1]
    idx = np.empty(rows.shape[0], np.int64)
    for r in range(rows.shape[0]):
        last = np.flatnonzero(ends[r])
        lengths = np.diff(last, prepend=-1)
        end = last[np.argmax(lengths)]
        idx[r] = order[r, end - lengths.max() + 1: end + 1].max()
    idx = np.expand_dims(idx.reshape(np.moveaxis(a, d, -1).shape[:-1]), d)
    return _selected(input, d, idx, keepdim, return_types.mode)


@torch_names("aminmax")
def aminmax(input, *, dim=None, keepdim=False):
    """(amin, amax) over dim or the whole tensor; their gradients are amin's and amax's."""
    a = input._a
    if dim is None:
        if a.size == 0:
            raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the "
                               "operation has no identity.")
        lo, hi = amin(input), amax(input)
        if keepdim:
            lo, hi = reshape(lo, (1,) * a.ndim), reshape(hi, (1,) * a.ndim)
        return _MinMax(lo, hi)
    d = _check_dim(dim, a.ndim)
    if a.ndim and a.shape[d] == 0:
        raise IndexError(f"aminmax: Expected reduction dim {d} to have non-zero size.")
    return _MinMax(amin(input, d, keepdim), amax(input, d, keepdim))


@torch_names("msort")
def msort(input):
    """input sorted along its first dimension."""
    return sort(input, 0).values


def _nan_zeroed(input):
    if input._a.dtype.kind != "f":
        return input
    return where(isnan(input), _wrap(np.zeros((), input._a.dtype)), input)


@torch_names("nansum")
def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """sum treating NaN as zero (its gradient: zero at NaN, as PyTorch's NansumBackward0)."""
    return sum(_nan_zeroed(input), dim, keepdim, dtype=dtype)


@torch_names("nanmean")
def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    """mean of the non-NaN elements: nansum / their count, as PyTorch computes it."""
    if input._a.dtype.kind != "f":
        raise RuntimeError("nanmean(): expected input to have floating point or complex dtype "
                           f"but got {dtypes.scalar_name(input._a.dtype)}")
    count = sum(logical_not(isnan(input)), dim, keepdim)
    total = nansum(input, dim, keepdim, dtype=dtype)
    with quiet():          # an all-NaN row: 0 / 0, NaN as PyTorch's, silently
        return total / count


@torch_names("count_nonzero")
def count_nonzero(input, dim=None):
    """The number of nonzero elements over dim (all: None), int64."""
    a = input._a
    axes = _dims(dim, a.ndim)
    return _wrap(np.asarray(np.count_nonzero(a, axis=axes) if a.ndim else int(a != 0), np.int64))


# ---- quantile, a port of PyTorch's quantile_compute (aten/src/ATen/native/Sorting.cpp) -----
_MODES = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(input, q, dim, keepdim, interpolation, ignore_nan):
    a = input._a
    if isinstance(q, Tensor):
        qt = q
    elif isinstance(q, (builtins.float, builtins.int)):
        if a.size and a.dtype.kind == "f" and not 0 <= q <= 1:
            raise RuntimeError(f"quantile() q must be in the range [0, 1] but got {q:g}")
        qt = _wrap(np.asarray(q, a.dtype))
    else:
        raise TypeError(f"quantile() received an invalid combination of arguments - got (Tensor, "
                        f"{type(q).__name__})")
    if a.size == 0:
        raise RuntimeError("quantile() input tensor must be non-empty")
    if qt._a.ndim > 1:
        raise RuntimeError("quantile() q must be a scalar or 1D tensor")
    if a.dtype not in (np.float32, np.float64):
        raise RuntimeError("quantile() input tensor must be either float or double dtype")
    if qt._a.dtype != a.dtype:
        raise RuntimeError("quantile() q tensor must be same dtype as the input tensor")
    if interpolation not in _MODES:
        raise RuntimeError("quantile() interpolation must be one of linear, lower, higher, "
                           f"midpoint or nearest, but got {interpolation}")
    if isinstance(q, Tensor) and not ((qt._a >= 0) & (qt._a <= 1)).all():
        raise RuntimeError("quantile() q values must be in the range [0, 1]")
    d = 0 if dim is None else _check_dim(dim, a.ndim)
    if dim is not None and a.ndim:
        out_shape = list(a.shape)
        if keepdim:
            out_shape[d] = 1
        else:
            del out_shape[d]
    else:
        out_shape = [1] * a.ndim if keepdim else []
    if dim is None or a.ndim == 0:
        sorted_ = sort(reshape(input, (-1,))).values
    elif d == a.ndim - 1:
        sorted_ = sort(input).values
    else:
        sorted_ = sort(transpose(unsqueeze(input, -1), d, -1)).values
    out_shape.insert(0, qt._a.size if qt._a.ndim else 1)
    n = sorted_.shape[-1]
    sorted_ = view(sorted_, tuple(out_shape[1:]) + (n,) if len(out_shape) > 1 else (n,))
    nan_rows = isnan(sorted_)
    if ignore_nan:
        ranks = qt * (sum(logical_not(nan_rows), -1, True) - 1)
        ranks = masked_fill(ranks, ranks < 0, 0)
    else:
        ranks = qt * (n - 1)
        any_nan = nan_rows._a.any(-1, keepdims=True)
        shape = np.broadcast_shapes(ranks.shape, any_nan.shape)
        ranks = masked_fill(ranks.expand(shape), _wrap(np.broadcast_to(any_nan, shape)), n - 1)
    if interpolation == "lower":
        ranks = floor(ranks)
    elif interpolation == "higher":
        ranks = ceil(ranks)
    elif interpolation == "nearest":
        ranks = round(ranks)
    with quiet():
        below = np.trunc(ranks._a).astype(np.int64)
    values = gather(sorted_, -1, _wrap(below))
    if interpolation in ("linear", "midpoint"):
        weights = (_wrap(np.full(ranks.shape, 0.5, a.dtype)) if interpolation == "midpoint"
                   else ranks - _wrap(below.astype(a.dtype)))
        above = gather(sorted_, -1, _wrap(np.ceil(ranks._a).astype(np.int64)))
        values = lerp(values, above, weights)
    if qt._a.ndim == 0:
        return squeeze(values, -1)
    return squeeze(transpose(unsqueeze(values, 0), 0, -1), -1)


@torch_names("quantile")
def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The q-th quantiles (q a number or 1-d tensor) of the whole tensor or along dim."""
    return _quantile(input, q, dim, keepdim, interpolation, False)


@torch_names("nanquantile")
def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """quantile ignoring NaN (NaN where a row has nothing else)."""
    return _quantile(input, q, dim, keepdim, interpolation, True)


# ---- covariance and products ----------------------------------------------------------------
def _warn(message):
    warnings.warn(message, UserWarning, stacklevel=3)


@torch_names("cov")
def cov(input, *, correction=1, fweights=None, aweights=None):
    """The covariance of input's rows (variables) over its columns (observations), a port of
    PyTorch's (aten/src/ATen/native/Correlation.cpp), weighted by fweights and aweights."""
    a = input._a
    if a.ndim > 2:
        raise RuntimeError("cov(): expected input to have two or fewer dimensions but got an input "
                           f"with {a.ndim} dimensions")
    if a.dtype.kind == "b":
        raise RuntimeError("cov(): bool dtype is not supported for input")
    x = view(input, (1, -1)) if a.ndim < 2 else input
    n = x.shape[1]
    w = None
    for name, t, kind, want in (("fweights", fweights, "iu", "integral"),
                                ("aweights", aweights, "f", "floating point")):
        if t is None:
            continue
        if t._a.ndim > 1:
            raise RuntimeError(f"cov(): expected {name} to have one or fewer dimensions but got "
                               f"{name} with {t._a.ndim} dimensions")
        if t._a.dtype.kind not in kind:
            raise RuntimeError(f"cov(): expected {name} to have {want} dtype but got {name} with "
                               f"{dtypes.scalar_name(t._a.dtype)} dtype")
        if t._a.size != n:
            raise RuntimeError(f"cov(): expected {name} to have the same numel as there are "
                               f"observations in the input but got {t._a.size} != {n}")
        if n and t._a.min() < 0:
            raise RuntimeError(f"cov(): {name} cannot be negative")
        w = t if w is None else w * t
    if w is not None:
        w_sum = sum(w)
        if w_sum._a == 0:
            raise RuntimeError("cov(): weights sum to zero, can't be normalized")
        avg = sum(x * w, 1) / w_sum
    else:
        w_sum = _wrap(np.asarray(n, np.int64))
        avg = sum(x, 1) / w_sum
    if w is not None and aweights is not None and correction != 0:
        norm_factor = w_sum - correction * sum(w * aweights) / w_sum
    else:
        norm_factor = w_sum - correction
    if norm_factor._a <= 0:
        _warn("cov(): degrees of freedom is <= 0. Correction should be strictly less than the "
              "number of observations.")
        norm_factor = norm_factor * 0
    x = x - unsqueeze(avg, 1)
    c = matmul(x, transpose(x * w if w is not None else x, 0, 1))
    with quiet():       # no degrees of freedom: 0 / 0, NaN as PyTorch's
        return squeeze(c / norm_factor)


@torch_names("corrcoef")
def corrcoef(input):
    """Pearson's correlation coefficients of input's rows, clipped to [-1, 1] as PyTorch's."""
    if input._a.ndim > 2:
        raise RuntimeError("corrcoef(): expected input to have two or fewer dimensions but got an "
                           f"input with {input._a.ndim} dimensions")
    c = cov(input)
    with quiet():
        if c._a.ndim == 0:
            return c / c
        stddev = sqrt(diagonal(c))
        c = c / view(stddev, (-1, 1))
        c = c / view(stddev, (1, -1))
    return clamp(c, -1, 1)


@torch_names("dist")
def dist(input, other, p=2):
    """The p-norm of input - other (broadcast)."""
    if isinstance(p, Tensor):
        p = p.item()
    for t in (input, other):
        if t._a.dtype.kind != "f":
            raise RuntimeError("norm(): input dtype should be either floating point or complex. "
                               f"Got {dtypes.scalar_name(t._a.dtype)} instead.")
    return norm(sub(input, other), p)


@torch_names("inner")
def inner(input, other):
    """The sum of products over the last dimension of both: shape input[:-1] + other[:-1]."""
    a, b = input._a, other._a
    if a.ndim == 0 or b.ndim == 0:
        return input * other
    if a.dtype != b.dtype:
        raise RuntimeError("both inputs should have same dtype")
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError("inner() the last dimension must match on both input tensors but got "
                           f"shapes {list(a.shape)} and {list(b.shape)}")
    k = a.shape[-1]
    out = matmul(reshape(input, (-1, k)), transpose(reshape(other, (-1, k)), 0, 1))
    return reshape(out, a.shape[:-1] + b.shape[:-1])


@torch_names("vdot")
def vdot(input, other):
    """The dot product of two 1-D tensors (no conjugation for real tensors)."""
    a, b = input._a, other._a
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.dtype != b.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                           f"{dtypes.scalar_name(a.dtype)} and {dtypes.scalar_name(b.dtype)}")
    if a.size != b.size:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.size}] and src [{b.size}] "
                           f"to have the same number of elements, but got {a.size} and {b.size} "
                           "elements respectively")
    return matmul(input, other)


@torch_names("kron")
def kron(input, other):
    """The Kronecker product: block (i, ...) of the result is input[i, ...] * other."""
    nd = builtins.max(input._a.ndim, other._a.ndim)
    sa = (1,) * (nd - input._a.ndim) + input._a.shape
    sb = (1,) * (nd - other._a.ndim) + other._a.shape
    x = reshape(input, tuple(e for n in sa for e in (n, 1)))
    y = reshape(other, tuple(e for n in sb for e in (1, n)))
    return reshape(x * y, tuple(m * n for m, n in zip(sa, sb)))


def _scaled_sum(input, product, beta, alpha, strict=False):
    """beta * input + alpha * product, input expanded to product's shape, as PyTorch's addmm
    family: beta = 0 ignores input (its NaN too); integer tensors truncate beta and alpha, or
    (strict: addr's check) refuse floats."""
    _check_expands_to(input, list(product.shape))
    if input._a.dtype.kind in ("biu" if strict else "b"):
        for name, v in (("beta", beta), ("alpha", alpha)):
            if isinstance(v, builtins.float):
                raise RuntimeError(f"For integral input tensors, argument {name} must not be a "
                                   "floating point number.")
    if input._a.dtype.kind == "b":
        return _wrap(np.array((bool(alpha) & product._a) | (bool(beta) & input._a)))
    if input._a.dtype.kind in "iu":
        beta, alpha = int(beta), int(alpha)
    if alpha != 1:
        product = product * alpha
    if beta == 0:
        return product
    return (input if beta == 1 else input * beta) + product


@torch_names("addmv", inplace=("addmv_",))
def addmv(input, mat, vec, *, beta=1, alpha=1):
    """beta * input + alpha * (mat @ vec)."""
    if mat._a.ndim != 2 or vec._a.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input._a.ndim}, {mat._a.ndim}, "
                           f"{vec._a.ndim}")
    m, k = mat._a.shape
    kinds = [t._a.dtype for t in (input, mat, vec)]
    if kinds[0] != kinds[1] or kinds[1] != kinds[2]:
        raise RuntimeError("addmv input tensors must have the same dtype, but got "
                           f"{', '.join(dtypes.scalar_name(d) for d in kinds[:2])}, and "
                           f"{dtypes.scalar_name(kinds[2])}")
    if vec._a.shape[0] != k or input._a.shape not in ((), (1,), (m,)):
        raise RuntimeError(f"size mismatch, got input ({input._a.shape[0] if input._a.ndim else 1}), "
                           f"mat ({m}x{k}), vec ({vec._a.shape[0]})")
    return _scaled_sum(input, mv(mat, vec), beta, alpha)


@torch_names("addr", inplace=("addr_",))
def addr(input, vec1, vec2, *, beta=1, alpha=1):
    """beta * input + alpha * outer(vec1, vec2)."""
    for name, v in (("vec1", vec1), ("vec2", vec2)):
        if v._a.ndim != 1:
            raise RuntimeError(f"addr: Expected 1-D argument {name}, but got {v._a.ndim}-D")
    return _scaled_sum(input, outer(vec1, vec2), beta, alpha, strict=True)


@torch_names("baddbmm", inplace=("baddbmm_",))
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * (batch1 @ batch2), per batch."""
    if batch1._a.ndim >= 2 and batch2._a.ndim >= 3:     # PyTorch expands input first
        _check_expands_to(input, [batch1._a.shape[0], batch1._a.shape[1], batch2._a.shape[2]])
    for t in (batch1, batch2):
        if t._a.dtype != input._a.dtype:
            raise RuntimeError(f"expected scalar type {dtypes.scalar_name(input._a.dtype)} but found "
                               f"{dtypes.scalar_name(t._a.dtype)}")
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


@torch_names("addbmm", inplace=("addbmm_",))
def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * the sum over batches of batch1 @ batch2."""
    for name, t in (("batch1", batch1), ("batch2", batch2)):
        if t._a.ndim != 3:
            raise RuntimeError(f"{name} must be a 3D tensor")
    (b, n, k), (b2, k2, p) = batch1._a.shape, batch2._a.shape
    if b != b2:
        raise RuntimeError(f"batch1 and batch2 must have same number of batches, got {b} and {b2}")
    if k != k2:
        raise RuntimeError(f"Incompatible matrix sizes for bmm ({n}x{k} and {k2}x{p})")
    return _scaled_sum(input, sum(bmm(batch1, batch2), 0), beta, alpha)


_WARNED_ONCE = []


@torch_names(functions=("chain_matmul",))
def chain_matmul(*matrices, out=None):
    """The product of the matrices, in the cheapest order (deprecated: PyTorch warns once)."""
    if not _WARNED_ONCE:
        _WARNED_ONCE.append(True)
        _warn("torch.chain_matmul is deprecated and will be removed in a future PyTorch release. Use "
              "torch.linalg.multi_dot instead, which accepts a list of two or more tensors rather "
              "than multiple parameters.")
    if not matrices:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    for t in matrices:
        if t._a.ndim != 2:
            raise RuntimeError(f"Tensor dimension is {t._a.ndim}, expected 2 instead.")
    if len(matrices) == 1:
        return clone(matrices[0])
    for i in range(len(matrices) - 1):
        if matrices[i]._a.shape[1] != matrices[i + 1]._a.shape[0]:
            raise RuntimeError(f"multi_dot(): tensors {i} and {i + 1} with shapes "
                               f"{list(matrices[i]._a.shape)} and {list(matrices[i + 1]._a.shape)} "
                               "cannot be multiplied")
    # linalg.multi_dot's order: the classic dynamic programme over the chain's dimensions
    dims = [t._a.shape[0] for t in matrices] + [matrices[-1]._a.shape[1]]
    n = len(matrices)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k

    def product(i, j):
        if i == j:
            return matrices[i]
        return mm(product(i, split[i][j]), product(split[i][j] + 1, j))
    return product(0, n - 1)


@torch_names("take_along_dim")
def take_along_dim(input, indices, dim=None):
    """input's values at indices along dim (broadcast elsewhere); flat when dim is None."""
    if indices._a.dtype != np.int64:
        raise RuntimeError("torch.take_along_dim(): dtype of indices should be Long but got "
                           f"{dtypes.scalar_name(indices._a.dtype)}")
    if dim is None:
        return gather(reshape(input, (-1,)), 0, reshape(indices, (-1,)))
    a, i = input._a, indices._a
    if a.ndim != i.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same number of "
                           f"dimensions, but got {a.ndim} dimensions for input, and {i.ndim} "
                           "dimensions for indices")
    d = _check_dim(dim, a.ndim)
    shape = list(_broadcast_shape(a.shape[:d] + (1,) + a.shape[d + 1:], i.shape[:d] + (1,) + i.shape[d + 1:]))
    shape_a, shape_i = list(shape), list(shape)
    shape_a[d], shape_i[d] = a.shape[d], i.shape[d]
    return gather(input.expand(shape_a), d, indices.expand(shape_i))


# ---- indices, combinations, integration -------------------------------------------------------
@torch_names(functions=("isin",))
def isin(elements=None, test_elements=None, *, assume_unique=False, invert=False, element=None,
         test_element=None):
    """Whether each of elements is in test_elements (a bool tensor shaped as elements); a number
    is torch's `element` or `test_element`."""
    elements = element if elements is None else elements
    test_elements = test_element if test_elements is None else test_elements
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise TypeError(
            f"isin() received an invalid combination of arguments - got ({type(elements).__name__}, "
            f"{type(test_elements).__name__}), but expected one of:\n"
            " * (Tensor elements, Tensor test_elements, *, bool assume_unique = False, bool invert = "
            "False, Tensor out = None)\n"
            " * (Number element, Tensor test_elements, *, bool assume_unique = False, bool invert = "
            "False, Tensor out = None)\n"
            " * (Tensor elements, Number test_element, *, bool assume_unique = False, bool invert = "
            "False, Tensor out = None)\n")
    e = elements._a if isinstance(elements, Tensor) else np.asarray(elements)
    s = test_elements._a if isinstance(test_elements, Tensor) else np.asarray(test_elements)
    return _wrap(np.array(np.isin(e, s, invert=invert).reshape(e.shape)))


@torch_names("argwhere")
def argwhere(input):
    """The indices of input's nonzero elements, one row each (nonzero's)."""
    return nonzero(input)


@torch_names(functions=("unravel_index",))
def unravel_index(indices, shape):
    """The coordinates of flat indices in a tensor of this shape, one tensor per dimension (the
    indices wrap as PyTorch's floor division and remainder make them)."""
    if indices._a.dtype.kind not in "iu":
        raise TypeError(f"expected 'indices' to be integer dtype, but got {indices.dtype}")
    if isinstance(shape, (builtins.int, np.integer)):
        shape = (shape,)
    else:
        for n in shape:
            if not isinstance(n, (builtins.int, np.integer)):
                raise TypeError(f"expected 'shape' sequence to only contain ints, but got "
                                f"{type(n)}")
    shape = tuple(builtins.int(n) for n in shape)
    if builtins.any(n < 0 for n in shape):
        raise ValueError(f"'shape' cannot have negative values, but got {shape}")
    coefs = np.cumprod((shape[1:] + (1,))[::-1])[::-1].astype(np.int64)
    i = indices._a.astype(np.int64)[..., None]
    with quiet():
        out = np.floor_divide(i, coefs) % np.asarray(shape, np.int64)
    return tuple(_wrap(np.array(out[..., k])) for k in range(len(shape)))


def _triangle_indices(fn, np_fn, row, col, offset, dtype):
    if row < 0:
        raise RuntimeError(f"row must be non-negative, got{row}")
    if col < 0:
        raise RuntimeError(f"col must be non-negative, got{col}")
    d = dtypes.to_numpy_dtype(dtype)
    if d.kind not in "iu":
        raise NotImplementedError(f'"{fn}" not implemented for \'{dtypes.scalar_name(d)}\'')
    return _wrap(np.ascontiguousarray(np.stack(np_fn(row, offset, col)).astype(d)))


@torch_names(functions=("tril_indices",))
def tril_indices(row, col, offset=0, *, dtype=dtypes.int64, device=None, layout=None):
    """The (2, N) coordinates of the lower triangle of a row x col matrix, row by row."""
    return _triangle_indices("tril_indices", np.tril_indices, row, col, offset, dtype)


@torch_names(functions=("triu_indices",))
def triu_indices(row, col, offset=0, *, dtype=dtypes.int64, device=None, layout=None):
    """The (2, N) coordinates of the upper triangle of a row x col matrix, row by row."""
    return _triangle_indices("triu_indices", np.triu_indices, row, col, offset, dtype)


def _vector(t):
    if t._a.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {list(t._a.shape)}")


@torch_names(functions=("cartesian_prod",))
def cartesian_prod(*tensors):
    """Every combination of one element of each 1-D tensor, one row each."""
    for t in tensors:
        _vector(t)
    if len({t._a.dtype for t in tensors}) > 1:
        raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    if len(tensors) == 1:
        return tensors[0]
    return stack([reshape(g, (-1,)) for g in meshgrid(*tensors, indexing="ij")], 1)


@torch_names(functions=("combinations",))
def combinations(input, r=2, with_replacement=False):
    """The r-element combinations of a 1-D tensor's elements (as itertools'), one row each."""
    _vector(input)
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return _wrap(np.zeros((0,), input._a.dtype))
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = np.array(builtins.list(pick(range(input._a.shape[0]), r)), np.int64).reshape(-1, r)
    return stack([index_select(input, 0, _wrap(np.ascontiguousarray(rows[:, k]))) for k in range(r)], 1)


@torch_names(functions=("block_diag",))
def block_diag(*tensors):
    """The tensors (0-d: 1 x 1, 1-d: one row) as the blocks of a block-diagonal matrix."""
    blocks = []
    for i, t in enumerate(tensors):
        if t._a.ndim > 2:
            raise RuntimeError("torch.block_diag: Input tensors must have 2 or fewer dimensions. "
                               f"Input {i} has {t._a.ndim} dimensions")
        blocks.append(reshape(t, (1, -1) if t._a.ndim == 1 else (1, 1)) if t._a.ndim < 2 else t)
    d = result_dtype(*tensors) if tensors else dtypes.default_float.np
    width = builtins.sum(b.shape[1] for b in blocks)
    rows, left = [], 0
    for b in blocks:
        r, c = b.shape
        if b._a.dtype != d:
            b = to(b, dtypes.from_numpy_dtype(d))
        rows.append(cat([_wrap(np.zeros((r, left), d)), b, _wrap(np.zeros((r, width - left - c), d))], 1))
        left += c
    if not rows:
        return _wrap(np.zeros((1, 0), d))
    return cat(rows, 0)


def _trapezoid_args(y, x, dx, dim):
    if y._a.dtype.kind == "b" or (x is not None and x._a.dtype.kind == "b"):
        raise RuntimeError("trapezoid: received a bool input for `y`, but bool is not supported")
    return _check_dim(dim, y._a.ndim)


def _spacing(y, x, d):
    """dx between consecutive samples along d: x's differences, x viewed against y as PyTorch's."""
    if x._a.ndim == 1:
        if x.shape[0] != y.shape[d]:
            raise RuntimeError("trapezoid: There must be one `x` value for each sample point")
        shape = [1] * y._a.ndim
        shape[d] = x.shape[0]
        x = view(x, tuple(shape))
    elif x._a.ndim < y._a.ndim:
        x = view(x, (1,) * (y._a.ndim - x._a.ndim) + x.shape)
    n = x.shape[d]
    return narrow(x, d, 1, n - 1) - narrow(x, d, 0, n - 1)


def _float_result(y):
    return y if y._a.dtype.kind == "f" else to(y, dtypes.default_float)


@torch_names(functions=("trapezoid",))
def trapezoid(y, x=None, *, dx=None, dim=-1):
    """The trapezoidal rule's integral of y along dim, at sample points x or spacing dx (1)."""
    if x is not None and dx is not None:
        raise TypeError("trapezoid() received an invalid combination of arguments - got (Tensor, "
                        f"Tensor, dx={type(dx).__name__}), but expected one of:\n * (Tensor y, Tensor x, *, int dim = "
                        "-1)\n * (Tensor y, *, Number dx = 1, int dim = -1)\n")
    d = _trapezoid_args(y, x, dx, dim)
    n = y.shape[d] if y._a.ndim else 1
    if n == 0:
        return _wrap(np.zeros(y.shape[:d] + y.shape[d + 1:], result_dtype(y, 1.0)))
    if x is None:
        ends = select(y, d, 0) + select(y, d, -1)
        return _float_result((sum(y, d) - ends * 0.5) * (1 if dx is None else dx))
    left, right = narrow(y, d, 0, n - 1), narrow(y, d, 1, n - 1)
    return sum((left + right) * _spacing(y, x, d), d) / 2.0


@torch_names(functions=("trapz",))
def trapz(y, x=None, *, dx=None, dim=-1):
    """trapezoid's older name."""
    return trapezoid(y, x, dx=dx, dim=dim)


@torch_names(functions=("cumulative_trapezoid",))
def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    """The running trapezoidal integral of y along dim (one element fewer than y)."""
    if x is not None and dx is not None:
        raise TypeError("cumulative_trapezoid() received an invalid combination of arguments - got "
                        f"(Tensor, Tensor, dx={type(dx).__name__}), but expected one of:\n * (Tensor y, Tensor x, *, "
                        "int dim = -1)\n * (Tensor y, *, Number dx = 1, int dim = -1)\n")
    d = _trapezoid_args(y, x, dx, dim)
    n = y.shape[d] if y._a.ndim else 1
    if n == 0:
        return _wrap(np.zeros(y.shape, result_dtype(y, 1.0)))
    left, right = narrow(y, d, 0, n - 1), narrow(y, d, 1, n - 1)
    if x is None:
        return cumsum((1 if dx is None else dx) / 2.0 * (left + right), d)
    return cumsum((left + right) * _spacing(y, x, d), d) / 2.0


@torch_names(functions=("logspace",))
def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False):
    """steps powers of base, the exponents evenly spaced from start to end; computed as PyTorch's
    CPU kernel does (the second half counted back from end, integers through a float base); in
    float32 an element may differ from PyTorch's by one ulp (its vectorised pow)."""
    steps = creation._int_arg("logspace", "steps", steps, 3)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    creation.check_device(device)
    d = creation._np_dtype(dtype, fn="logspace")
    if d.kind == "b":
        raise NotImplementedError(f"\"logspace_cpu\" not implemented for '{dtypes.scalar_name(d)}'")
    start, end = creation._number(start), creation._number(end)
    i = np.arange(steps, dtype=np.float64)
    with quiet():
        if d.kind == "f":
            s, e, b = builtins.float(d.type(start)), builtins.float(d.type(end)), builtins.float(base)
        else:
            s, e, b = builtins.int(start), builtins.int(end), builtins.float(np.float32(base))
        if steps == 1:
            powers = np.full(1, b ** builtins.float(start))
        else:
            step = (e - s) / (steps - 1)
            powers = b ** np.where(i < steps // 2, s + step * i, e - step * (steps - i - 1))
        values = (np.trunc(powers) if d.kind != "f" else powers).astype(d)
    return creation._finish(values, requires_grad, constant=True)
