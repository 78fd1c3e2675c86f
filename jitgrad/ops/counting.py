"""Counting and searching: histc, histogram, bincount, unique, unique_consecutive, searchsorted,
bucketize. Their outputs are counts and indices, not differentiable (PyTorch records no formula
for them either): they compute in numpy and record nothing.
"""
import builtins

import numpy as np

from .. import dtypes
from ..tensor import Tensor, _wrap
from ._core import quiet, return_types, torch_names


class _Histogram(tuple):
    """(hist, bin_edges), as torch.return_types.histogram."""
    __slots__ = ()

    def __new__(cls, hist, bin_edges):
        return tuple.__new__(cls, (hist, bin_edges))

    hist = property(lambda self: self[0])
    bin_edges = property(lambda self: self[1])

    def __repr__(self):
        return f"jitgrad.return_types.histogram(\nhist={self[0]!r},\nbin_edges={self[1]!r})"


_Histogram.__name__ = _Histogram.__qualname__ = "histogram"
return_types.histogram = _Histogram


def _type_name(dt):
    return dtypes.from_numpy_dtype(dt).tensor_type[:-6]


def _tensor_arg(fn, name, v, pos):
    if not isinstance(v, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not "
                        f"{type(v).__name__}")
    return v._a


def _linspace(start, end, steps, dt):
    """Bin edges as PyTorch's CPU linspace computes them in dtype dt: the first half counted up
    from start, the second down from end (so both ends are exact). PyTorch's vectorised, fused
    multiply-add arithmetic can round an inner edge one ulp differently."""
    start, end = dt.type(start), dt.type(end)
    if steps == 1:
        return np.array([start], dt)
    step = (end - start) / dt.type(steps - 1)
    idx = np.arange(steps)
    with quiet():
        up = start + step * idx.astype(dt)
        down = end - step * (steps - idx - 1).astype(dt)
    return np.where(idx < steps // 2, up, down).astype(dt)


def _count(pos, inside, weights, nbins, dt):
    hist = np.zeros(nbins, dt)
    np.add.at(hist, pos[inside], 1 if weights is None else weights[inside])
    return hist


@torch_names("histc")
def histc(input, bins=100, min=0, max=0, *, out=None):
    """Counts of input's elements in `bins` equal bins over [min, max] (min == max: the data's
    range); elements outside are ignored."""
    a = _tensor_arg("histc", "input", input, 1)
    if a.dtype.kind != "f":
        raise NotImplementedError(f"\"histogram_cpu\" not implemented for '{_type_name(a.dtype)}'")
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    if min > max:
        raise RuntimeError("torch.histc: max must be larger than min")
    lo, hi = builtins.float(min), builtins.float(max)
    if lo == hi and a.size:
        with quiet():
            lo, hi = builtins.float(np.min(a)), builtins.float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{lo:g}, {hi:g}] is not finite")
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    edges = _linspace(lo, hi, bins + 1, a.dtype)
    left, right = edges[0], edges[-1]
    flat = a.reshape(-1)
    with quiet():
        inside = (flat >= left) & (flat <= right)
        # PyTorch's linear interpolation, in the input's dtype; the right edge is inclusive
        pos = ((flat - left) * a.dtype.type(bins) / (right - left))
        pos = np.where(inside, pos, 0).astype(np.int64)
    pos = np.minimum(pos, bins - 1)
    result = _wrap(_count(pos, inside, None, bins, a.dtype))
    return _into(out, result)


@torch_names("histogram")
def histogram(input, bins=100, *, range=None, weight=None, density=False, out=None):
    """(hist, bin_edges): counts (or weight sums) of input's elements in bins given as edges (a
    1-d tensor) or a number of equal bins over `range` (default: the data's range)."""
    a = _tensor_arg("histogram", "input", input, 1)
    if a.dtype.kind != "f":
        raise NotImplementedError(f"\"histogramdd\" not implemented for '{_type_name(a.dtype)}'")
    flat = a.reshape(-1)
    w = None
    if weight is not None:
        w = _tensor_arg("histogram", "weight", weight, 3)
        if w.shape != a.shape:
            raise RuntimeError(
                "torch.histogramdd: if weight tensor is provided it should have the same shape as "
                "the input tensor excluding its innermost dimension, but got input with shape "
                f"{list(a.shape) + [1]} and weight with shape {list(w.shape)}")
        if w.dtype != a.dtype:
            raise RuntimeError(
                "torch.histogramdd: if weight tensor is provided, input tensor and weight tensor "
                f"should have the same dtype, but got input({_c_name(a.dtype)}), and "
                f"weight({_c_name(w.dtype)})")
        w = w.reshape(-1)
    if isinstance(bins, Tensor):
        edges = bins._a.reshape(-1).astype(a.dtype)
    else:
        if bins <= 0:
            raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for "
                               "dimension 0")
        if range is not None:
            lo, hi = builtins.float(range[0]), builtins.float(range[1])
        elif flat.size:
            with quiet():
                lo, hi = builtins.float(np.min(flat)), builtins.float(np.max(flat))
        else:
            lo, hi = 0.0, 1.0
        if lo > hi:
            raise RuntimeError(f"torch.histogramdd: min should not exceed max, but got min {lo:g} "
                               f"max {hi:g} for dimension 0")
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise RuntimeError(f"torch.histogramdd: dimension 0's range [{lo:g}, {hi:g}] is not "
                               "finite")
        if lo == hi:    # an empty range widens to one unit, as numpy's
            lo, hi = lo - 0.5, hi + 0.5
        edges = _linspace(lo, hi, bins + 1, a.dtype)
    nbins = edges.size - 1
    if nbins < 1:
        raise RuntimeError("torch.histogramdd: bins tensor should have at least 1 element, but "
                           "got 0 for dimension 0")
    with quiet():
        inside = (flat >= edges[0]) & (flat <= edges[-1])
    pos = np.searchsorted(edges, flat, side="right") - 1
    pos = np.clip(pos, 0, nbins - 1)
    hist = _count(pos, inside, w, nbins, a.dtype)
    if density:
        with quiet():
            hist = (hist / (hist.sum() * np.diff(edges))).astype(a.dtype)
    result = _Histogram(_wrap(hist), _wrap(edges.copy()))
    if out is not None:
        out[0].copy_(result[0])
        out[1].copy_(result[1])
        return _Histogram(*out)
    return result


def _c_name(dt):
    return {"float32": "float", "float64": "double", "int64": "long int", "int32": "int"}.get(
        dt.name, dt.name)


@torch_names("bincount")
def bincount(input, weights=None, minlength=0):
    """Occurrences of each value 0..max(input) (or the sum of weights at them)."""
    a = _tensor_arg("bincount", "input", input, 1)
    if a.dtype.kind not in "iu":
        raise NotImplementedError(f"\"bincount_cpu\" not implemented for '{_type_name(a.dtype)}'")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if a.ndim != 1 or (a.size and a.min() < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if weights is None:
        return _wrap(np.bincount(a, minlength=minlength).astype(np.int64))
    w = _tensor_arg("bincount", "weights", weights, 2)
    if w.ndim != 1 or w.shape[0] != a.shape[0]:
        raise RuntimeError("weights should be 1-d and have the same length as input")
    dt = w.dtype if w.dtype.kind == "f" else np.dtype(np.float64)
    return _wrap(np.bincount(a, w.astype(np.float64), minlength=minlength).astype(dt))


@torch_names("unique")
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values (sorted; dim: the distinct slices along dim), with the inverse
    indices and counts when asked."""
    a = _tensor_arg("unique", "input", input, 1)
    if dim is None:
        values, inverse, counts = np.unique(a.reshape(-1), return_inverse=True,
                                            return_counts=True, equal_nan=False)
        inverse = inverse.reshape(a.shape)
    else:
        d = _dim(dim, a.ndim)
        moved = np.moveaxis(a, d, 0)
        values, inverse, counts = np.unique(moved.reshape(moved.shape[0], -1), axis=0,
                                            return_inverse=True, return_counts=True)
        values = np.moveaxis(values.reshape((-1,) + moved.shape[1:]), 0, d)
        inverse = inverse.reshape(-1)
    return _with_extras(values, inverse, counts, return_inverse, return_counts)


@torch_names("unique_consecutive")
def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """input with each run of equal consecutive values (dim: slices) kept once."""
    a = _tensor_arg("unique_consecutive", "input", input, 1)
    if dim is None:
        flat = a.reshape(-1)
        starts = np.ones(flat.size, bool)
        starts[1:] = flat[1:] != flat[:-1]
        values = flat[starts]
    else:
        d = _dim(dim, a.ndim)
        moved = np.moveaxis(a, d, 0)
        rows = moved.reshape(moved.shape[0], -1)
        starts = np.ones(rows.shape[0], bool)
        starts[1:] = (rows[1:] != rows[:-1]).any(axis=1)
        values = np.moveaxis(moved[starts], 0, d)
    inverse = np.cumsum(starts) - 1
    counts = np.diff(np.append(np.flatnonzero(starts), starts.size))
    if dim is None:
        inverse = inverse.reshape(a.shape)
    return _with_extras(values, inverse, counts, return_inverse, return_counts)


def _dim(dim, ndim):
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def _with_extras(values, inverse, counts, return_inverse, return_counts):
    out = [_wrap(np.ascontiguousarray(values))]
    if return_inverse:
        out.append(_wrap(inverse.astype(np.int64)))
    if return_counts:
        out.append(_wrap(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


@torch_names(functions=("searchsorted",))
def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None,
                 out=None):
    """Where each value of input would go in sorted_sequence's innermost dimension to keep it
    sorted (right/side="right": after equal values)."""
    seq = _tensor_arg("searchsorted", "sorted_sequence", sorted_sequence, 1)
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got "
                               f"{side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, "
                               "got side of left while right was True")
        right = side == "right"
    scalar = not isinstance(input, Tensor)
    values = np.asarray(input) if scalar else input._a
    if seq.ndim == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should have positive "
                           "dimension, but got 0 dimension")
    if seq.ndim > 1 and (scalar or values.shape[:-1] != seq.shape[:-1]):
        raise RuntimeError(
            "torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 "
            "dimensions of boundaries tensor and input value tensor must match, but we got "
            f"boundaries tensor {list(seq.shape)} and input value tensor {list(values.shape)}")
    if sorter is not None:
        order = _tensor_arg("searchsorted", "sorter", sorter, 5)
        if order.shape != seq.shape:
            raise RuntimeError("torch.searchsorted(): boundary and sorter must have the same size, "
                               f"but got boundary tensor {list(seq.shape)}and got sorter tensor "
                               f"{list(order.shape)}")
        seq = np.take_along_axis(seq, order, axis=-1)
    found = _search(seq, values, "right" if right else "left")
    result = _wrap(np.asarray(found, np.int32 if out_int32 else np.int64))
    return _into(out, result)


def _search(seq, values, side):
    """numpy's searchsorted row by row; NaN sorts last, as in PyTorch."""
    if seq.ndim == 1:
        return np.searchsorted(seq, values, side=side)
    rows = seq.reshape(-1, seq.shape[-1])
    vals = values.reshape(rows.shape[0], -1)
    return np.stack([np.searchsorted(r, v, side=side) for r, v in zip(rows, vals)]).reshape(
        values.shape)


@torch_names(functions=("bucketize",))
def bucketize(input, boundaries, *, out_int32=False, right=False, out=None):
    """The bucket of each value of input among the 1-d boundaries (right: boundaries[i-1] <= x <
    boundaries[i]; else boundaries[i-1] < x <= boundaries[i])."""
    b = _tensor_arg("bucketize", "boundaries", boundaries, 2)
    if b.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({b.ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right, out=out)


def _into(out, result):
    if out is None:
        return result
    out.copy_(result)
    return out
