"""Order statistics and nan-aware reductions written as compositions of other ops (issue 13):
median, nanmedian, quantile, nanquantile, kthvalue, mode, aminmax, msort, nansum, nanmean,
count_nonzero. Their gradients, and gradients of any order, are those of the ops they run, so
their grad_fn names are those ops' (GatherBackward0, AmaxBackward0, ...), not PyTorch's fused
nodes' (MedianBackward1, ...); the gradients themselves are PyTorch's: a selected value's goes to
the index returned, a whole-tensor median's is shared evenly by the elements equal to it.

Which element an order statistic selects among equal ones is PyTorch's CPU choice: median and
nanmedian take the stable sort's position (std::nth_element ordered by (value, index)); kthvalue
runs PyTorch's quickselect (quick_select_template) as written; mode the last index of the value.
The positions are read in numpy, so a traced step (jitgrad.compile) that uses these runs eagerly.
"""
import builtins

import numpy as np

from .. import dtypes
from ..tensor import Tensor, _check_dim, _wrap
from ._core import _ValuesIndices, _dims, _needs_grad, quiet, return_types, torch_names
from .comparison import isnan, logical_not
from .elementwise import ceil, floor, lerp, masked_fill, round, where
from .indexing import gather, sort, take
from .reductions import amax, amin, mean, sum
from .shape import reshape, squeeze, transpose, unsqueeze, view

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
    order (NaN last) along d, shaped with d of size 1."""
    order = np.argsort(a, axis=d, kind="stable")
    return np.take_along_axis(order, np.expand_dims(k, d), d)


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
    rows = np.moveaxis(a, d, -1).reshape(-1, n).tolist()
    idx = np.array([_quickselect(r, k - 1) for r in rows], np.int64)
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
