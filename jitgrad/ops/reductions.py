"""Reductions: sum, mean, norm, prod, var, std, logsumexp, cumsum, max/min, amax/amin and
argmax/argmin. The rows of those whose derivative depends on the values save what their formulas
read (x, then out), then the numbers the formulas need besides (p, the degrees of freedom); the
kernels compute the derivative from them, as the formulas do differentiably.
"""
import builtins
import math
import warnings

import numpy as np

from .. import dtypes
from ..engine.loop import F_APART, FLAGS, I0, I1, SHAPE_ID, bcast_accumulate, kept_dims, numel
from ..engine.registry import defop
from ..engine.replay import (P_C, P_I0, P_I1, P_K, P_ROW, P_XSH, full_sum, needs, reduce_dims, reduced_positions,
                             save_two)
from ..engine.tape import _grad_mode as _MODE
from ..tensor import Tensor, _check_dim, _wrap
from ._samples import Given, NonZero, kinks, samples
from ._formulas import keep_reduced, reduced_dims, unreduce
from ._core import (_ValuesIndices, _arr, _dims, _mask, c_order, quiet, quietly, record, return_types,
                    torch_names)
from .elementwise import _float_input, exp, maximum, minimum, sign, where
from .indexing import _flat_positions, _scatter, _with_count, scatter_formula
from .shape import _skip_record, cat


# ======================= reductions ===========================================================
def _sum(go, ga, gb, sv, iv, do, da, db, row):
    bcast_accumulate(da, kept_dims(go, da, row[I0]), False, 1.0, ga, go, sv[:0])


def _mean(go, ga, gb, sv, iv, do, da, db, row):
    bcast_accumulate(da, kept_dims(go, da, row[I0]), False, go.size / ga.size, ga, go, sv[:0])


# ---- the rules of the reductions whose derivative reads x and the result: saved x, then out
# (then their numbers); each element's gradient comes from its output's (at: reduced_positions)
def _logsumexp(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # d out / d x = exp(x - out)
    xs = rows[va, SHAPE_ID]
    m = numel(shapes, xs)
    at = reduced_positions(shapes, xs, rows[i, I0], m)
    for e in range(m):
        p = at[e]
        g[a + e] += g[o + p] * np.exp(sv[s + e] - sv[s + m + p])


def _var_std(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x, out for std (I1 & 2), then the degrees of freedom. In float64, as the forward:
    # d var / d x = 2 (x - mean) / dof; d std / d x = (x - mean) / (dof std), 0 where std is 0
    # (selected, as PyTorch's)
    xs = rows[va, SHAPE_ID]
    m = numel(shapes, xs)
    if m == 0:
        return
    root = rows[i, I1] & 2
    at = reduced_positions(shapes, xs, rows[i, I0], m)
    mean = np.zeros(n, np.float64)
    for e in range(m):
        mean[at[e]] += sv[s + e]
    count = m // n
    denom = max(np.float64(sv[s + m + (n if root else 0)]), 0.0)
    for e in range(m):
        p = at[e]
        dev = sv[s + e] - mean[p] / count
        if not root:
            g[a + e] += g[o + p] * (dev * (2 / denom))
        elif sv[s + m + p] != 0:
            g[a + e] += g[o + p] * (dev / (denom * sv[s + m + p]))


def _prod(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # as PyTorch: d out / d x = out / x without a zero in x; with one, the product of the others
    # in x's group (exact: no division), but zeros for prod() (I1 = 1) of two zeros or more; a
    # 0-d x's is 1
    xs = rows[va, SHAPE_ID]
    m = numel(shapes, xs)
    if shapes[xs] == 0:
        g[a] += g[o]
        return
    at = reduced_positions(shapes, xs, rows[i, I0], m)
    zeros = 0
    for e in range(m):
        if sv[s + e] == 0:
            zeros += 1
    if zeros > 1 and rows[i, I1] == 1:
        return
    if not zeros:
        for e in range(m):
            p = at[e]
            g[a + e] += g[o + p] * (sv[s + m + p] / sv[s + e])
        return
    run = np.ones(n, sv.dtype)
    others = np.empty(m, sv.dtype)
    for e in range(m):
        others[e] = run[at[e]]
        run[at[e]] *= sv[s + e]
    run[:] = 1
    for e in range(m - 1, -1, -1):
        others[e] *= run[at[e]]
        run[at[e]] *= sv[s + e]
    for e in range(m):
        g[a + e] += g[o + at[e]] * others[e]


def _norm(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x, out, then p. d |x|_p / d x = sign(x) |x|^(p-1) / |x|_p^(p-1), 0 where x or the
    # norm is 0 (a nan norm: nan); p = 1: sign(x); p = +-inf: sign(x) shared by the ties; p = 0:
    # 0. PyTorch's sign of nan is 0: a nan gets no gradient from the 1- and inf-norms
    xs = rows[va, SHAPE_ID]
    m = numel(shapes, xs)
    p = sv[s + m + n]
    if p == 0:
        return
    at = reduced_positions(shapes, xs, rows[i, I0], m)
    extreme = np.isinf(p)
    ties = np.zeros(n, np.int64)
    if extreme:
        for e in range(m):
            if np.abs(sv[s + e]) == sv[s + m + at[e]]:
                ties[at[e]] += 1
    q = np.empty(1, sv.dtype)      # p - 1 in the values' dtype: their powers overflow as PyTorch's
    q[0] = np.float64(p) - 1.0
    for e in range(m):
        xv = sv[s + e]
        r = sv[s + m + at[e]]
        sg = 0.0 if xv != xv or xv == 0 else (1.0 if xv > 0 else -1.0)
        if extreme:
            w = sg / max(ties[at[e]], 1) if np.abs(xv) == r else 0.0
        elif p == 1:
            w = sg
        elif r == 0:
            w = 0.0
        else:
            w = (0.0 if xv == 0 else sg * np.abs(xv) ** q[0]) / r ** q[0]
        g[a + e] += g[o + at[e]] * w


def _extreme(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # max()/min()/amax/amin; saved: x, then out (at I1 when apart: a 0-d max()). The gradient is
    # shared evenly by the elements equal to the result. A nan result: max() shares it among the
    # nans (selected, as PyTorch's evenly_distribute_backward); amax (I1 = 1) matches nothing:
    # (g / 0) * 0, multiplied as PyTorch's scale_grad_by_count
    xs = rows[va, SHAPE_ID]
    m = numel(shapes, xs)
    apart = rows[i, FLAGS] & F_APART
    t = rows[i, I1] if apart else s + m
    nan_hits = apart or rows[i, I1] != 1
    at = reduced_positions(shapes, xs, rows[i, I0], m)
    ties = np.zeros(n, np.int64)
    for e in range(m):
        xv = sv[s + e]
        r = sv[t + at[e]]
        if xv == r or (nan_hits and xv != xv and r != r):
            ties[at[e]] += 1
    for e in range(m):
        xv = sv[s + e]
        p = at[e]
        r = sv[t + p]
        if xv == r or (nan_hits and xv != xv and r != r):
            g[a + e] += g[o + p] / ties[p]
        elif not nan_hits:
            g[a + e] += g[o + p] / ties[p] * 0


# ---- forward kernels for compiled replay (engine/replay.py): each computes as the eager forward
# (numpy's summation order through reduce_dims, float64 where the forward widens) and saves
# what the forward saves
def _fwd_cumsum(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # along a dim of size I0 whose elements are I1 apart, accumulated in float64 as np.cumsum's
    n = prog[j, P_I0]
    inner = prog[j, P_I1]
    if out.size == 0:
        return
    for o in range(out.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            acc = np.float64(0.0)
            for k in range(n):
                acc += x[base + k * inner]
                out[base + k * inner] = acc


def _fwd_extreme(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # max()/min()/amax/amin over the dims in I0's mask (cv: 1 for a minimum); saves x, out
    xs = prog[j, P_XSH]
    mask = prog[j, P_I0]
    lower = cv[prog[j, P_C]] != 0
    at = reduced_positions(shapes, xs, mask, x.size)       # each element's output position
    seen = np.zeros(out.size, np.bool_)
    for e in range(x.size):
        p = at[e]
        xv = x[e]
        if not seen[p]:
            out[p] = xv
            seen[p] = True
        elif out[p] == out[p] and (xv != xv or (xv < out[p] if lower else xv > out[p])):
            out[p] = xv
    if s >= 0:
        save_two(sv, s, x, out, True)


def _fwd_extreme_dim(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # max(dim)/min(dim) values (cv: 1 for min): the first nan, else the first extreme, as
    # numpy's argmax; the row's int data [count, flat positions..., dim] gets the positions
    xs = prog[j, P_XSH]
    k = prog[j, P_K]
    lower = cv[prog[j, P_C]] != 0
    r = prog[j, P_ROW]
    at = rows[r, I1] if r >= 0 else 0
    if shapes[xs] == 0:
        out[0] = x[0]
        return
    d = pints[k + 1 + pints[k]]
    n = shapes[xs + 1 + d]
    inner = 1
    for q in range(d + 1, shapes[xs]):
        inner *= shapes[xs + 1 + q]
    for o in range(out.size // inner):
        for i in range(inner):
            base = o * n * inner + i
            best = 0
            bv = x[base]
            if bv == bv:
                for q in range(1, n):
                    xv = x[base + q * inner]
                    if xv != xv:
                        best = q
                        break
                    if xv < bv if lower else xv > bv:
                        best = q
                        bv = xv
            out[o * inner + i] = x[base + best * inner]
            if r >= 0:
                bints[at + 1 + o * inner + i] = base + best * inner


def _fwd_logsumexp(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # over I0's dims: m = max (0 where infinite), log(sum(exp(x - m))) + m; saves x, out
    xs = prog[j, P_XSH]
    mask = prog[j, P_I0]
    if x.size == 0:
        for e in range(out.size):
            out[e] = -np.inf
        return
    at = reduced_positions(shapes, xs, mask, x.size)
    m = np.empty(out.size, out.dtype)
    seen = np.zeros(out.size, np.bool_)
    for e in range(x.size):
        p = at[e]
        if not seen[p]:
            m[p] = x[e]
            seen[p] = True
        elif m[p] == m[p] and (x[e] != x[e] or x[e] > m[p]):
            m[p] = x[e]
    for p in range(out.size):
        if np.isinf(m[p]):
            m[p] = 0
    t = np.empty(x.size, out.dtype)
    for e in range(x.size):
        t[e] = np.exp(x[e] - m[at[e]])
    reduce_dims(out, t, shapes, xs, mask, False)
    for p in range(out.size):
        out[p] = np.log(out[p]) + m[p]
    if s >= 0:
        save_two(sv, s, x, out, True)


def _fwd_var(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # var/std over I0's dims in float64 (cv: the degrees of freedom, then 1 for std); saves x,
    # then out for std
    xs = prog[j, P_XSH]
    mask = prog[j, P_I0]
    denom = max(np.float64(cv[prog[j, P_C]]), 0.0)
    root = cv[prog[j, P_C] + 1] != 0
    at = reduced_positions(shapes, xs, mask, x.size)
    x64 = np.empty(x.size, np.float64)
    for e in range(x.size):
        x64[e] = x[e]
    mean = np.zeros(out.size, np.float64)
    if x.size:
        reduce_dims(mean, x64, shapes, xs, mask, True)
    dev = np.empty(x.size, np.float64)
    for e in range(x.size):
        dev[e] = x64[e] - mean[at[e]]
        x64[e] = dev[e] * dev[e]
    var = np.zeros(out.size, np.float64)
    if x.size:
        reduce_dims(var, x64, shapes, xs, mask, False)
    for p in range(out.size):
        var[p] = var[p] / denom
        out[p] = np.sqrt(var[p]) if root else var[p]
    if s >= 0:
        save_two(sv, s, x, out, root)


def _fwd_prod(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # prod over every element (cv: 0) or along the one dim in I0's mask (cv: 1), in order;
    # saves x, out
    xs = prog[j, P_XSH]
    mask = prog[j, P_I0]
    along = cv[prog[j, P_C]] != 0
    nd = shapes[xs]
    n = x.size
    inner = 1
    if along and nd > 1:
        d = 0
        while not (mask >> d) & 1:
            d += 1
        n = shapes[xs + 1 + d]
        for q in range(d + 1, nd):
            inner *= shapes[xs + 1 + q]
    if nd == 0:
        out[0] = x[0]
    elif x.size == 0:
        for e in range(out.size):
            out[e] = 1
    else:
        for o in range(x.size // (n * inner)):
            for i in range(inner):
                base = o * n * inner + i
                acc = out.dtype.type(1)
                for k in range(n):
                    acc *= x[base + k * inner]
                out[o * inner + i] = acc
    if s >= 0:
        save_two(sv, s, x, out, True)


def _fwd_scan(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # cumprod (int data [0, inner]) or logcumsumexp ([1, inner], in float64 by numpy's
    # logaddexp) along a dim of size I0; saved: x, then out
    n = prog[j, P_I0]
    mode = pints[prog[j, P_K]]
    inner = pints[prog[j, P_K] + 1]
    if out.size == 0:
        return
    for o in range(out.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            if mode == 0:
                acc = x[base]
                out[base] = acc
                for k in range(1, n):
                    acc *= x[base + k * inner]
                    out[base + k * inner] = acc
            else:
                a = np.float64(x[base])
                out[base] = a
                for k in range(1, n):
                    b = np.float64(x[base + k * inner])
                    if a == b:
                        a = a + 0.693147180559945309417232121458176568
                    else:
                        t = a - b
                        if t > 0:
                            a = a + np.log1p(np.exp(-t))
                        elif t <= 0:
                            a = b + np.log1p(np.exp(t))
                        else:
                            a = t
                    out[base + k * inner] = a
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = x[e]
            sv[s + out.size + e] = out[e]


def _fwd_cum_extreme(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # cummax/cummin values along dim cv[1] (cv[0]: 1 for cummin): the later index on ties, a
    # nan wins and stays; the row's int data [count, flat positions...] gets the positions
    xs = prog[j, P_XSH]
    lower = cv[prog[j, P_C]] != 0
    r = prog[j, P_ROW]
    at = rows[r, I1] if r >= 0 else 0
    if shapes[xs] == 0:
        out[0] = x[0]
        return
    d = int(cv[prog[j, P_C] + 1])
    n = shapes[xs + 1 + d]
    inner = 1
    for q in range(d + 1, shapes[xs]):
        inner *= shapes[xs + 1 + q]
    if out.size == 0:
        return
    for o in range(out.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            best = base
            for k in range(n):
                p = base + k * inner
                xv = x[p]
                bv = x[best]
                if k > 0 and bv == bv and (xv != xv or xv == bv or (xv < bv if lower else xv > bv)):
                    best = p
                out[p] = x[best]
                if r >= 0:
                    bints[at + 1 + p] = best


def _fwd_norm(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # the vector p-norm (cv: p) over I0's dims, in the values' dtype as the eager forward:
    # max/min of |x| (p = +-inf), the count of nonzeros (0), else sum(|x|^p)^(1/p) (a square
    # root for 2, as numpy's power); saves x, out
    xs = prog[j, P_XSH]
    mask = prog[j, P_I0]
    p = cv[prog[j, P_C]]
    inverse = np.ones(1, out.dtype)      # 1 / p rounded to the dtype, as numpy's scalar
    inverse[0] = 1.0 / np.float64(p)
    at = reduced_positions(shapes, xs, mask, x.size)
    t = np.empty(x.size, out.dtype)
    for e in range(x.size):
        t[e] = np.abs(x[e])
    extreme = np.isinf(p)
    if extreme:
        seen = np.zeros(out.size, np.bool_)
        for e in range(x.size):
            o = at[e]
            if not seen[o]:
                out[o] = t[e]
                seen[o] = True
            elif out[o] == out[o] and (t[e] != t[e] or (t[e] > out[o] if p > 0 else t[e] < out[o])):
                out[o] = t[e]
    elif p == 0:
        for o in range(out.size):
            out[o] = 0
        for e in range(x.size):
            if t[e] != 0:
                out[at[e]] += 1
    else:
        for e in range(x.size):
            t[e] = t[e] ** p
        for o in range(out.size):
            out[o] = 0
        if x.size:
            reduce_dims(out, t, shapes, xs, mask, False)
        for o in range(out.size):
            out[o] = np.sqrt(out[o]) if p == 2 else out[o] ** inverse[0]
    if s >= 0:
        save_two(sv, s, x, out, True)


def _mean_back(g, x, node):
    return unreduce(g, x.shape, node.i0) * (g.numel() / builtins.max(x.numel(), 1))


def _safe_div(a, b):
    """a / b, 0 where b is 0, with no inf or nan on the way (in the values or in their gradients,
    which first-order kernels multiply rather than select)."""
    zero = b == 0
    return where(zero, 0.0, a / where(zero, 1.0, b))


def _const(a, like):
    """A numpy array (a mask or count: no gradient) as a tensor of like's dtype."""
    return _wrap(np.asarray(a, like._a.dtype))


def _norm_back(g, x, out, node):
    # PyTorch's norm_backward; the row saves x, out, then p
    p = builtins.float(node.saved[x.numel() + out.numel()])
    g, n = keep_reduced(g, x.shape, node.i0), keep_reduced(out, x.shape, node.i0)
    if p == 0:      # PyTorch's is undefined: zeros, as the kernel's
        return x.new_zeros(x.shape)
    if p == 1:
        return sign(x) * g
    if p == 2:      # the subgradient 0 where the norm is 0 (whose derivative is nan, as PyTorch's)
        return g * where(n == 0, 0.0, x / n)
    if builtins.abs(p) == math.inf:     # amax(|x|), respecting nans: spread over the ties
        ax = x.abs()._a
        hit = _const((ax == n._a) | np.isnan(ax), x)
        return sign(x) * ((g / hit.sum(reduced_dims(node.i0, x.dim()), keepdim=True)) * hit)
    if p < 1:
        return sign(x) * where(x == 0, 0.0, x.abs() ** (p - 1)) * g * n ** (1 - p)
    scale = _safe_div(g, n ** (p - 1))     # PyTorch selects, so a zero norm's nan stays out
    if p < 2:
        return sign(x) * x.abs() ** (p - 1) * scale
    return x * x.abs() ** (p - 2) * scale



def _fwd_sum(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    out[0] = full_sum(x)


def _fwd_mean(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    if x.size == 0:
        out[0] = np.nan
        return
    out[0] = full_sum(x) / x.size       # in float64, rounded to out's dtype: as numpy's mean


def _fwd_sum_dim(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    reduce_dims(out, x, shapes, prog[j, P_XSH], prog[j, P_I0], False)


def _fwd_mean_dim(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    reduce_dims(out, x, shapes, prog[j, P_XSH], prog[j, P_I0], True)


SUM = defop("SumBackward0", _sum, forward=needs(_fwd_sum, "x", inline=True), x=lambda g, x, node: unreduce(g, x.shape, node.i0))
SUM_DIM = defop("SumBackward1", _sum, forward=needs(_fwd_sum_dim, "x"), x=lambda g, x, node: unreduce(g, x.shape, node.i0))
MEAN = defop("MeanBackward0", _mean, forward=needs(_fwd_mean, "x", inline=True), x=_mean_back)
MEAN_DIM = defop("MeanBackward1", _mean, forward=needs(_fwd_mean_dim, "x"), x=_mean_back)
NORM = defop("LinalgVectorNormBackward0", _norm, forward=needs(_fwd_norm, "x,c"), saves_reads=True, x=_norm_back)


def _check_grad_dtype(x, a):
    """A result dtype autograd cannot carry, for an input that needs grad: PyTorch refuses it."""
    if a.dtype.kind != "f" and x._rg and _MODE.enabled:
        raise RuntimeError(f"Autograd not support dtype: {dtypes.scalar_name(a.dtype)}")


_ALL_AXES = tuple(_mask(range(n)) for n in range(65))     # _mask(range(ndim)), looked up


@torch_names("sum")
def sum(x, dim=None, keepdim=False, dtype=None):
    a = c_order(x._a)
    if dim is None and dtype is None and a.dtype.kind == "f" and a.ndim:    # (axis None: every axis)
        try:            # (numpy's warnings are filtered, see _core.quiet; made errors, redone quietly)
            out = np.add.reduce(a, None, None, None, keepdim)
        except (RuntimeWarning, FloatingPointError):
            out = quietly(np.add.reduce, a, None, None, None, keepdim)
        return record(SUM, _arr(out), x, i0=_ALL_AXES[a.ndim], broadcast=False)
    if dtype is not None:
        a = a.astype(dtypes.to_numpy_dtype(dtype))
        _check_grad_dtype(x, a)
    elif a.dtype.kind in "biu":
        a = a.astype(np.int64)
    axes = _dims(dim, a.ndim)
    with quiet():
        out = _arr(a.sum(axis=axes, keepdims=keepdim))
    return record(SUM if dim is None else SUM_DIM, out, x, i0=_mask(axes), broadcast=False)


def _mean_all(a):
    """a.mean() as numpy computes it (_methods._mean, for float32 and wider): the sum over every
    axis (axis None is every axis), divided by the count, an intp."""
    total = np.add.reduce(a, None)
    return total.dtype.type(total / np.intp(a.size))


@torch_names("mean")
def mean(x, dim=None, keepdim=False, dtype=None):
    a = c_order(x._a)
    if dim is None and dtype is None and not keepdim and a.dtype.char in "fdg" and a.size and a.ndim:
        try:
            out = _mean_all(a)
        except (RuntimeWarning, FloatingPointError):
            out = quietly(_mean_all, a)
        return record(MEAN, _arr(out), x, i0=_ALL_AXES[a.ndim], broadcast=False)
    a = a if dtype is None else a.astype(dtypes.to_numpy_dtype(dtype))
    if a.dtype.kind != "f":
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {x.dtype.tensor_type[:-6]}")
    axes = _dims(dim, a.ndim)
    with quiet():
        out = _arr(a.mean(axis=axes, keepdims=keepdim) if a.size else np.full(
            _reduced_shape(a.shape, axes, keepdim), np.nan, a.dtype))
    return record(MEAN if dim is None else MEAN_DIM, out, x, i0=_mask(axes), broadcast=False)


def norm_values(absa, p, axes, dim=None):
    """The p-norm of |a| (absa) over axes (dim as given to norm), keeping them: norm's checks
    and arithmetic, which clip_grad_norm_ also runs on arrays."""
    empty = [d for d in axes if absa.shape[d] == 0]
    if builtins.abs(p) == math.inf and empty:       # max and min have no identity
        pname = "inf" if p > 0 else "-inf"
        if dim is None:
            raise RuntimeError(f"linalg.vector_norm cannot compute the {pname} norm on an empty "
                               "tensor because the operation does not have an identity")
        raise RuntimeError(f"linalg.vector_norm cannot compute the {pname} norm on the dimension "
                           f"{empty[0]}because this dimension is empty and the operation does not "
                           "have an identity")
    if builtins.abs(p) == math.inf:
        return (absa.max if p > 0 else absa.min)(axis=axes, keepdims=True)
    if p == 0:
        return (absa != 0).sum(axis=axes, keepdims=True).astype(absa.dtype)
    return (absa ** p).sum(axis=axes, keepdims=True) ** (1 / p)


@torch_names("norm")
def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over dim (all elements by default); 'fro' is the 2-norm."""
    if x._a.dtype.kind != "f":
        raise RuntimeError("linalg.vector_norm: Expected a floating point or complex tensor as "
                           f"input. Got {x.dtype.tensor_type[:-6]}")
    if isinstance(p, str) and p != "fro":
        if p == "nuc":
            raise NotImplementedError("norm: the nuclear norm is not supported by jitgrad")
        raise RuntimeError(f"linalg.matrix_norm: Order {p} not supported.")
    a = x._a
    p = 2.0 if p == "fro" else builtins.float(p)
    axes = _dims(dim, a.ndim)
    absa = np.abs(c_order(a))
    with quiet():
        r = norm_values(absa, p, axes, dim)
        out = _arr((r if keepdim else r.reshape(_reduced_shape(a.shape, axes))).astype(a.dtype))
        if _skip_record(x):
            return _wrap(out)
    return record(NORM, out, x, saves=(x,), save_out=True, consts=(p,), i0=_mask(axes), broadcast=False)


def _reduce_cases(shape_kind=tuple, multi=True):
    """Every dim and keepdim combination on a 2-d and a 0-d input (plus tuples of dims)."""
    cases = [(shape_kind(()),), (shape_kind((3,)),), (shape_kind((2, 3)),)]
    for d in (0, 1, -1, -2):
        for k in (False, True):
            cases.append((shape_kind((2, 3)), d, k))
    for d in (0, -1):
        for k in (False, True):
            cases.append((shape_kind(()), d, k))
    if multi:
        for k in (False, True):
            cases.append((shape_kind((2, 3, 2)), [0, 2], k))
            cases.append((shape_kind((2, 3)), [0, 1], k))
    return tuple(cases)


REDUCE = _reduce_cases()
samples(sum, *REDUCE)
samples(mean, *REDUCE)
samples(norm, (NonZero((3,)),), (NonZero((2, 3)),), (NonZero((2, 3)), 2, 1), (NonZero((2, 3)), 3, 0),
        (NonZero((2, 3)), 1, [0, 1], True), ((2, 3), "fro", 1), (NonZero((2, 3)), math.inf, 1),
        (NonZero((2, 3)), math.inf), (NonZero((2, 3)), 0, 1), (NonZero((2, 3)), 2, -1, True),
        (NonZero(()),), (NonZero(()), 1, 0))
kinks(norm, (Given([[0.0, 0.0], [1.0, -1.0]]), 2, 1), (Given([[1.0, -1.0], [0.5, 0.0]]), math.inf, 1),
      (Given([0.0, 2.0, -2.0]), math.inf), (Given([0.0, 1.0]), 1),
      (Given([[0.0, 0.0], [1.0, -1.0]]), 3, 1), (Given([[0.0, 0.0], [1.0, -2.0]]), -math.inf, 1))
samples(norm, (NonZero((2, 3)), 0.5, 1), (NonZero((2, 3)), 1.5), (NonZero((2, 3)), 2.5, 0, True))


# ---- prod, var, std, logsumexp: their rows save x and out (then var's and std's dof)
def _scan_products(x, d, step):
    """Inclusive running products of x along dim d, from the start (step 1) or the end (-1), as
    a log-depth scan of multiplications (differentiable, exact with zeros)."""
    n = x.shape[d]
    s = 1
    while s < n:
        ones = x.new_ones(tuple(s if k == d else m for k, m in enumerate(x.shape)))
        shifted = cat([ones, x.narrow(d, 0, n - s)] if step > 0 else [x.narrow(d, s, n - s), ones], d)
        x = x * shifted
        s *= 2
    return x


def _others_product(x, d):
    """The product of the other elements along dim d (PyTorch's prod_safe_zeros_backward)."""
    n = x.shape[d]
    if n == 1:
        return x.new_ones(x.shape)
    ones = x.new_ones(tuple(1 if k == d else m for k, m in enumerate(x.shape)))
    before = _scan_products(cat([ones, x.narrow(d, 0, n - 1)], d), d, 1)
    after = _scan_products(cat([x.narrow(d, 1, n - 1), ones], d), d, -1)
    return before * after


def _prod_back(g, x, out, node):
    # out / x without zeros; with a zero anywhere, the products of the others (as PyTorch)
    if x.dim() == 0:
        return g
    g, out = keep_reduced(g, x.shape, node.i0), keep_reduced(out, x.shape, node.i0)
    if not (x._a == 0).any():
        return g * (out / x)
    if node.op == PROD:
        return g * _others_product(x.reshape(-1), 0).reshape(x.shape)
    return g * _others_product(x, reduced_dims(node.i0, x.dim())[0])


def _var_back(g, x, node):
    return _var_grad(g, x, node, x.numel())


def _var_grad(g, x, node, dof_at):
    # PyTorch's var_backward: 2 / (n - correction) * g * (x - mean); the dof is saved at dof_at
    dof = builtins.float(node.saved[dof_at])
    dims = reduced_dims(node.i0, x.dim())
    g = keep_reduced(g, x.shape, node.i0)
    centred = x - x.mean(dims, keepdim=True)
    if dof <= 0 and node.i1 & 1:        # the whole tensor: 2 / 0 times 0 is nan, else inf
        return g * _const(np.where(centred._a == 0, np.nan, np.inf), x)
    return (2.0 / dof if dof else math.inf) * g * centred


def _std_back(g, x, out, node):
    out = keep_reduced(out, x.shape, node.i0)
    return _var_grad(_safe_div(keep_reduced(g, x.shape, node.i0), 2 * out), x, node, x.numel() + out.numel())


def _logsumexp_back(g, x, out, node):
    return keep_reduced(g, x.shape, node.i0) * exp(x - keep_reduced(out, x.shape, node.i0))


PROD = defop("ProdBackward0", _prod, forward=needs(_fwd_prod, "x,c"), saves_reads=True, x=_prod_back)
PROD_DIM = defop("ProdBackward1", _prod, forward=needs(_fwd_prod, "x,c"), saves_reads=True, x=_prod_back)
# I1: 1 the whole tensor, 2 std
VAR = defop("VarBackward0", _var_std, forward=needs(_fwd_var, "x,c"), saves_reads=True, x=_var_back)
STD = defop("StdBackward0", _var_std, forward=needs(_fwd_var, "x,c"), saves_reads=True, x=_std_back)
LOGSUMEXP = defop("LogsumexpBackward0", _logsumexp, forward=needs(_fwd_logsumexp, "x"), saves_reads=True,
                  x=_logsumexp_back)


def _reduced_shape(shape, axes, keepdim=False):
    """The shape of a reduction over axes (summing the input to learn it could overflow)."""
    if keepdim:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _reduced(keep, axes, keepdim, a):
    return keep if keepdim else keep.reshape(_reduced_shape(a.shape, axes))


def _exclusive_prod(a, axis):
    """Product of all other elements along axis, exact with zeros (no division)."""
    a = np.moveaxis(a, axis, -1)
    ones = np.ones(a.shape[:-1] + (1,), a.dtype)
    left = np.cumprod(np.concatenate([ones, a[..., :-1]], -1), -1)
    right = np.flip(np.cumprod(np.flip(np.concatenate([a[..., 1:], ones], -1), -1), -1), -1)
    return np.moveaxis(left * right, -1, axis)


@torch_names("prod")
def prod(x, dim=None, keepdim=False, dtype=None):
    a = x._a if dtype is None else x._a.astype(dtypes.to_numpy_dtype(dtype))
    if dtype is not None:
        _check_grad_dtype(x, a)
    if a.dtype.kind in "biu":
        a = a.astype(np.int64)
    if dim is None:
        with quiet():
            out = _arr(np.prod(c_order(a)))
        if _skip_record(x):
            return _wrap(out)
        return record(PROD, out, x, saves=(x if a is x._a else a,), save_out=True, i0=_mask(range(a.ndim)), i1=1,
                      broadcast=False, scalars=(0,))
    d = _check_dim(dim, a.ndim)
    axes = (d,) if a.ndim else ()
    with quiet():
        keep = np.prod(a, axis=axes, keepdims=True)
    out = _arr(keep if keepdim else keep.reshape(_reduced_shape(a.shape, axes)))
    if _skip_record(x):
        return _wrap(out)
    return record(PROD_DIM, out, x, saves=(x if a is x._a else a,), save_out=True, i0=_mask(axes), broadcast=False,
                  scalars=(1,))


def _var_args(dim, unbiased, keepdim, correction):
    if isinstance(dim, builtins.bool):            # var(x, unbiased)
        dim, unbiased = None, dim
    if correction is None:
        correction = 0 if unbiased is False else 1
    elif unbiased is not None:
        raise RuntimeError("var(): can't specify both unbiased and correction")
    return dim, keepdim, correction


def _var_core(x, dim, keepdim, correction, name):
    a = x._a
    if a.dtype.kind != "f":
        raise RuntimeError("std and var only support floating point and complex dtypes")
    axes = _dims(None if dim == () or dim == [] else dim, a.ndim)
    n = 1
    for k in axes:
        n *= a.shape[k]
    with quiet():    # in float64, as PyTorch accumulates: the square of 3e38 fits
        a64 = c_order(a).astype(np.float64, copy=False)
        dev = a64 - a64.mean(axis=axes, keepdims=True) if a.size else a64
        denom = builtins.max(n - correction, 0)
        var = (dev * dev).sum(axis=axes, keepdims=True) / np.float64(denom)
    if n - correction <= 0:
        warnings.warn(f"{name}(): degrees of freedom is <= 0. Correction should be strictly less "
                      "than the reduction factor (input numel divided by output numel).",
                      UserWarning, stacklevel=3)
    return a, axes, dev, denom, var, n - correction


@torch_names("var")
def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, keepdim, correction = _var_args(dim, unbiased, keepdim, correction)
    a, axes, dev, denom, v, dof = _var_core(x, dim, keepdim, correction, "var")
    with quiet():
        out = _arr(_reduced(v, axes, keepdim, a).astype(a.dtype))
    if _skip_record(x):
        return _wrap(out)
    return record(VAR, out, x, saves=(x,), consts=(dof,), i0=_mask(axes),
                  i1=dim is None or a.ndim == 0, broadcast=False, scalars=(0,))


@torch_names("std")
def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, keepdim, correction = _var_args(dim, unbiased, keepdim, correction)
    a, axes, dev, denom, v, dof = _var_core(x, dim, keepdim, correction, "std")
    with quiet():
        sd = np.sqrt(v)
        out = _arr(_reduced(sd, axes, keepdim, a).astype(a.dtype))
    if _skip_record(x):
        return _wrap(out)
    return record(STD, out, x, saves=(x,), save_out=True, consts=(dof,), i0=_mask(axes),
                  i1=(dim is None or a.ndim == 0) | 2, broadcast=False, scalars=(1,))


@torch_names("logsumexp")
def logsumexp(x, dim, keepdim=False):
    a = _float_input(x)
    axes = _dims(dim, a.ndim) if not (dim == () or dim == []) else tuple(range(a.ndim))
    with quiet():
        if a.size:
            m = a.max(axis=axes, keepdims=True)
            m = np.where(np.isinf(m), 0, m)
            keep = np.log(np.exp(c_order(a) - m).sum(axis=axes, keepdims=True)) + m
        else:
            keep = np.log(np.exp(a).sum(axis=axes, keepdims=True))
        out = _arr(_reduced(keep, axes, keepdim, a).astype(a.dtype))
    if _skip_record(x):
        return _wrap(out)
    return record(LOGSUMEXP, out, x, saves=(x if a is x._a else a,), save_out=True, i0=_mask(axes),
                  broadcast=False)


# ---- cumsum: the gradient is a reversed cumulative sum along the dim
def _cumsum(go, ga, gb, sv, iv, do, da, db, row):
    # along a dim of size I0 whose elements are I1 apart
    n = row[I0]
    inner = row[I1]
    if ga.size == 0:
        return
    for o in range(ga.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            s = np.float64(0.0)     # float64 for float32 too: 1e6 small terms stay exact
            for k in range(n - 1, -1, -1):
                s += go[base + k * inner]
                ga[base + k * inner] += s


def _dim_along(shape, n, inner):
    """The dim of size n whose elements are inner apart (an I0/I1 pair): unique when n > 1, and
    any such dim does when n == 1."""
    for d in range(len(shape)):
        if shape[d] == n and math.prod(shape[d + 1:]) == inner:
            return d
    return 0


def _cumsum_back(g, x, node):
    # PyTorch's cumsum_backward: the cumulative sum from the end
    if g.numel() <= 1 or node.i0 == 1:
        return g
    d = _dim_along(x.shape, node.i0, node.i1)
    return g.flip(d).cumsum(d).flip(d)


CUMSUM = defop("CumsumBackward0", _cumsum, forward=needs(_fwd_cumsum, "x"), x=_cumsum_back)


@torch_names("cumsum")
def cumsum(x, dim, dtype=None):
    a = x._a if dtype is None else x._a.astype(dtypes.to_numpy_dtype(dtype))
    if dtype is not None:
        _check_grad_dtype(x, a)
    if a.dtype.kind in "biu":
        a = a.astype(np.int64)
    d = _check_dim(dim, a.ndim)
    a1 = a.reshape(1) if a.ndim == 0 else a
    with quiet():    # float32 and float16 accumulate in float64, as PyTorch (and the backward rule)
        out = _arr(np.cumsum(a1, axis=d, dtype=np.float64 if a.dtype.kind == "f" else None)
                   .astype(a.dtype, copy=False).reshape(a.shape))
    inner = 1
    for k in a1.shape[d + 1:]:
        inner *= k
    return record(CUMSUM, out, x, i0=a1.shape[d], i1=inner, broadcast=False)


samples(prod, *_reduce_cases(multi=False))
samples(prod, (Given([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]),), (Given([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]), 1),
        (Given([[1.0, 0.0, 2.0, 4.0], [0.5, 2.0, 3.0, 1.5]]), 0, True), (Given([[1.0, 0.0, 2.0]]),))
_SPREAD = [c for c in _reduce_cases() if c[0] != ()]     # var of one element is nan
_ONE = ({"correction": 0},)
for _f in (var, std):
    samples(_f, *_SPREAD, ((2, 3), 1, False), ((2, 3), 1, True, True), ((2, 3), True),
            ((2, 3), {"dim": 0, "correction": 0}), ((2, 3), {"correction": 2}), ((),) + _ONE,
            ((), {"dim": 0, "correction": 0, "keepdim": True}))
kinks(std, (Given([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]]), 1), (Given([[1.0, 1.0]]), {"correction": 0}))
samples(logsumexp, *[c for c in _reduce_cases() if len(c) > 1],
        (Given([[1e3, 0.0], [-1e3, -1e3]]), 1))
samples(cumsum, ((3,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 3, 2), -2), ((), 0))


# ---- max and min: ties share the gradient evenly (max(), amax) or it goes to the index (max(dim))
def _evenly_distribute_back(g, x, out):
    # PyTorch's evenly_distribute_backward: g / (number of ties) at the ties (the nans, for a nan
    # result), 0 elsewhere (selected, not multiplied)
    hit = np.isnan(x._a) if np.isnan(out._a) else x._a == out._a
    return where(_wrap(hit), g / builtins.float(hit.sum()), 0.0)


def _amax_back(g, x, out, node):
    # PyTorch's scale_grad_by_count: (g / number of ties) * ties, as a product
    hit = _const(x._a == keep_reduced(out, x.shape, node.i0)._a, x)
    return (keep_reduced(g, x.shape, node.i0) / hit.sum(reduced_dims(node.i0, x.dim()), keepdim=True)) * hit


def _select_index_back(g, x, node):
    # max(dim)/min(dim): the gradient goes to the index (PyTorch scatters into zeros). The int
    # data is [count, flat positions..., dim]
    if x.dim() == 0:
        return g
    count = node.ints[0]
    d = builtins.int(node.ints[count + 1])
    hit = np.zeros(x.numel(), np.bool_)
    hit[node.ints[1:count + 1]] = True
    if g.dim() < x.dim():
        g = g.unsqueeze(d)
    return where(_wrap(hit.reshape(x.shape)), g.expand(x.shape), 0.0)


_EXTREME = needs(_fwd_extreme, "x,c")
MAX_ALL = defop("MaxBackward1", _extreme, forward=_EXTREME, saves_reads=True, x=_evenly_distribute_back)
MIN_ALL = defop("MinBackward1", _extreme, forward=_EXTREME, saves_reads=True, x=_evenly_distribute_back)
# I1 = 1: a nan result matches nothing
AMAX = defop("AmaxBackward0", _extreme, forward=_EXTREME, saves_reads=True, x=_amax_back)
AMIN = defop("AminBackward0", _extreme, forward=_EXTREME, saves_reads=True, x=_amax_back)
# the gradient goes to the index
MAX_DIM = defop("MaxBackward0", _scatter, forward=needs(_fwd_extreme_dim, "x,c"), x=_select_index_back)
MIN_DIM = defop("MinBackward0", _scatter, forward=needs(_fwd_extreme_dim, "x,c"), x=_select_index_back)


def _check_nonempty(name, a, axes, whole):
    if a.size:
        return
    if whole:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                           "Specify the reduction dim with the 'dim' argument.")
    for d in axes:
        if a.shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


def _extreme_all(x, fn, op, name):
    a = x._a
    _check_nonempty(name, a, (), True)
    with quiet():
        out = _arr(fn(a))
    if _skip_record(x):
        return _wrap(out)
    axes = tuple(range(a.ndim))
    return record(op, out, x, saves=(x,), save_out=True, i0=_mask(axes), broadcast=False,
                  scalars=(op == MIN_ALL,))


def _extreme_dim(x, dim, keepdim, argfn, op, cls, name):
    a = x._a
    d = _check_dim(dim, a.ndim)
    lower = op == MIN_DIM
    if a.ndim == 0:
        return cls(record(op, _arr(a.copy()), x, ints=[1, 0], broadcast=False, scalars=(lower,)),
                   _wrap(np.zeros((), np.int64)))
    _check_nonempty(name, a, (d,), False)
    idx = np.expand_dims(argfn(a, axis=d), d)
    vals = np.take_along_axis(a, idx, axis=d)
    if not keepdim:
        vals, idxo = vals.squeeze(d), idx.squeeze(d)
    else:
        idxo = idx
    indices = _wrap(_arr(idxo.astype(np.int64)))
    if _skip_record(x):
        return cls(_wrap(_arr(vals)), indices)
    pos = _flat_positions(a.shape, d, idx).reshape(-1)
    return cls(record(op, _arr(vals), x, ints=np.concatenate(([pos.size], pos, [d])),
                      broadcast=False, scalars=(lower,)), indices)


def _nan_arg(fn):
    """argmax/argmin propagating NaN as PyTorch does (the first NaN wins)."""
    def f(a, axis=None):
        r = fn(a, axis=axis)
        isn = np.isnan(a) if a.dtype.kind == "f" else None
        if isn is not None and isn.any():
            r = np.where(isn.any(axis=axis), np.argmax(isn, axis=axis), r)
        return r
    return f


_argmax = _nan_arg(np.argmax)
_argmin = _nan_arg(np.argmin)


@torch_names("max")
def max(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    if dim is None:
        return _extreme_all(x, np.max, MAX_ALL, "max")
    return _extreme_dim(x, dim, keepdim, _argmax, MAX_DIM, return_types.max, "max")


@torch_names("min")
def min(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    if dim is None:
        return _extreme_all(x, np.min, MIN_ALL, "min")
    return _extreme_dim(x, dim, keepdim, _argmin, MIN_DIM, return_types.min, "min")


def _amax_like(fn, op, name):
    def f(x, dim=(), keepdim=False):
        a = x._a
        axes = _dims(None if dim == () or dim == [] else dim, a.ndim)
        if a.size == 0 and axes and not (dim == () or dim == []):
            for d in (dim,) if isinstance(dim, int) else dim:     # named as given, as PyTorch's
                if a.shape[d] == 0:
                    raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
        _check_nonempty(name, a, axes, dim == () or dim == [])
        with quiet():
            keep = fn(a, axis=axes, keepdims=True)
        out = _arr(keep if keepdim else keep.reshape(_reduced_shape(a.shape, axes)))
        if _skip_record(x):
            return _wrap(out)
        return record(op, out, x, saves=(x,), save_out=True, i0=_mask(axes), i1=1, broadcast=False,
                      scalars=(op == AMIN,))
    f.__name__ = name
    return f


amax = torch_names("amax")(_amax_like(np.max, AMAX, "amax"))
amin = torch_names("amin")(_amax_like(np.min, AMIN, "amin"))


def _arg_like(fn, name):
    def f(x, dim=None, keepdim=False):
        a = x._a
        if dim is None:
            if a.size == 0:
                raise IndexError(f"{name}(): Expected reduction dim to be specified for "
                                 "input.numel() == 0.")
            r = fn(a.reshape(-1))
            return _wrap(np.full((1,) * a.ndim if keepdim else (), r, np.int64))
        d = _check_dim(dim, a.ndim)
        if a.ndim == 0:
            return _wrap(np.zeros((), np.int64))
        _check_nonempty(name, a, (d,), False)
        r = fn(a, axis=d)
        return _wrap(_arr((np.expand_dims(r, d) if keepdim else r).astype(np.int64)))
    f.__name__ = name
    return f


argmax = torch_names("argmax")(_arg_like(_argmax, "argmax"))
argmin = torch_names("argmin")(_arg_like(_argmin, "argmin"))

samples(max, ((3,),), ((2, 3),), ((),), ((2, 3), 1), ((2, 3), 0, True), ((2, 3), -1, False), ((), 0),
        ((2, 3), (2, 3)))
samples(min, ((3,),), ((2, 3),), ((2, 3), 1), ((2, 3), 0, True), ((), 0, True))
samples(amax, *_reduce_cases())
samples(amin, *_reduce_cases(multi=False))
samples(argmax, ((2, 3),), ((2, 3), 1), ((2, 3), 0, True), ((),), ((), 0))
samples(argmin, ((2, 3),), ((2, 3), -1))
_TIES = Given([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
kinks(max, (_TIES,), (_TIES, 1), (_TIES, 0, True))
kinks(min, (_TIES,), (_TIES, 1))
kinks(amax, (_TIES,), (_TIES, 1), (_TIES, 0, True), (_TIES, [0, 1]))
kinks(amin, (_TIES, 1))


# ---- cumprod and logcumsumexp: out_k depends on x_0 .. x_k along the dim; their backward is one
# reverse scan per line (_scan_back, O(n), reading the saved x and out); cummax and cummin gather
# (the gradient goes to the index, as PyTorch's)
def _scan_back(go, ga, gb, sv, iv, do, da, db, row):
    # along a dim of size I0 whose elements are iv[1] apart; sv holds x, then out; iv[0] = 0:
    # cumprod, 1: logcumsumexp
    n = row[I0]
    inner = iv[1]
    size = ga.size
    if size == 0 or n == 0:
        return
    for o in range(size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            if iv[0] == 0:
                # cumprod, as PyTorch's cumprod_backward: before the first zero z, the reversed
                # cumulative sum of g * out over x; at z, the products that skip x_z; after it, 0
                z = n
                for k in range(n):
                    if sv[base + k * inner] == 0:
                        z = k
                        break
                r = 0.0
                for k in range(z - 1, -1, -1):
                    p = base + k * inner
                    r += go[p] * sv[size + p]
                    ga[p] += r / sv[p]
                if z < n:
                    t = sv[size + base + (z - 1) * inner] if z > 0 else 1.0
                    acc = go[base + z * inner] * t
                    for k in range(z + 1, n):
                        t *= sv[base + k * inner]
                        acc += go[base + k * inner] * t
                    ga[base + z * inner] += acc
            else:
                # logcumsumexp: ga_j = exp(x_j - out_j) * A_j, A_j = g_j + exp(out_j - out_j+1) A_j+1;
                # out never decreases along the line, so every factor is at most 1 (no overflow)
                a = 0.0
                for k in range(n - 1, -1, -1):
                    p = base + k * inner
                    if k < n - 1 and sv[size + p] != sv[size + p + inner]:
                        a *= np.exp(sv[size + p] - sv[size + p + inner])
                    a += go[p]
                    ga[p] += a * np.exp(sv[p] - sv[size + p])     # nan where x = out = -inf, as PyTorch


def _along_last(t, d):
    return t.transpose(d, -1) if t.dim() else t


def _lower(n):
    """The [k, j] mask of j <= k."""
    return np.tril(np.ones((n, n), np.bool_))


def _cumprod_back(g, x, out, node):
    # PyTorch's cumprod_backward: without zeros, the reversed cumulative sum of g * out over x;
    # with a zero, d out_k / d x_j is the product of x_i for i <= k, i != j, built here densely as
    # a product over i (n^3 per line: create_graph through cumprod of zeros is for short lines)
    if x.dim() == 0 or x.numel() <= 1 or node.i0 == 1:
        return g
    d = _dim_along(x.shape, node.i0, int(node.ints[1]))
    if not (x._a == 0).any():
        return (g * out).flip(d).cumsum(d).flip(d) / x
    xl, gl = _along_last(x, d), _along_last(g, d)
    n = xl.shape[-1]
    k, j, i = np.ogrid[:n, :n, :n]
    factors = where(_wrap((i != j) & (i <= k)), xl.unsqueeze(-2).unsqueeze(-2), 1.0)
    jac = where(_wrap(_lower(n)), factors.prod(-1), 0.0)
    return _along_last((gl.unsqueeze(-1) * jac).sum(-2), d)


def _logcumsumexp_back(g, x, out, node):
    # d out_k / d x_j = exp(x_j - out_k) for j <= k, as an (n, n) matrix per line (the exponent
    # is masked first: -inf above the diagonal, so no inf meets a zero gradient)
    if x.dim() == 0 or x.numel() <= 1 or node.i0 == 1:
        return g
    d = _dim_along(x.shape, node.i0, int(node.ints[1]))
    xl, gl, ol = _along_last(x, d), _along_last(g, d), _along_last(out, d)
    n = xl.shape[-1]
    jac = exp(where(_wrap(_lower(n)), xl.unsqueeze(-2) - ol.unsqueeze(-1), -math.inf))
    return _along_last((gl.unsqueeze(-1) * jac).sum(-2), d)


CUMPROD = defop("CumprodBackward0", _scan_back, forward=needs(_fwd_scan, "x"), saves_reads=True, x=_cumprod_back)
LOGCUMSUMEXP = defop("LogcumsumexpBackward0", _scan_back, forward=needs(_fwd_scan, "x"), saves_reads=True,
                     x=_logcumsumexp_back)
CUMMAX = defop("CummaxBackward0", _scatter, forward=needs(_fwd_cum_extreme, "x,cc"), x=scatter_formula)
CUMMIN = defop("CumminBackward0", _scatter, forward=needs(_fwd_cum_extreme, "x,cc"), x=scatter_formula)
return_types.cummax = type("cummax", (_ValuesIndices,), {"__slots__": (), "_name": "cummax"})
return_types.cummin = type("cummin", (_ValuesIndices,), {"__slots__": (), "_name": "cummin"})
_SCAN_MODE = {CUMPROD: 0, LOGCUMSUMEXP: 1}


def _record_scan(op, out, x, a, d):
    """Record a scan along dim d of a (x's values as computed): the row saves x, then out; its
    int data holds the mode and the distance between elements along the dim."""
    n = a.shape[d] if a.ndim else 1
    inner = math.prod(a.shape[d + 1:]) if a.ndim else 1
    a = a.astype(out.dtype, copy=False)
    return record(op, out, x, saves=(x if a is x._a else a,), save_out=True,
                  ints=np.array([_SCAN_MODE[op], inner], np.int64), i0=n, broadcast=False)


def _scan_input(x, dim, dtype=None):
    """x's array (cast to dtype; integers and bools as int64, as PyTorch's scans) and the dim."""
    a = x._a if dtype is None else x._a.astype(dtypes.to_numpy_dtype(dtype))
    if dtype is not None:
        _check_grad_dtype(x, a)
    if a.dtype.kind in "biu":
        a = a.astype(np.int64)
    return a, _check_dim(dim, a.ndim)


@torch_names("cumprod")
def cumprod(x, dim, *, dtype=None):
    a, d = _scan_input(x, dim, dtype)
    with quiet():
        out = _arr(np.cumprod(a.reshape(1) if a.ndim == 0 else a, axis=d).reshape(a.shape))
    return _wrap(out) if _skip_record(x) else _record_scan(CUMPROD, out, x, a, d)


@torch_names("logcumsumexp")
def logcumsumexp(x, dim):
    a = _float_input(x)
    d = _check_dim(dim, a.ndim)
    with quiet():
        out = a.copy() if a.ndim == 0 or a.size == 0 else \
            _arr(np.logaddexp.accumulate(a.astype(np.float64), axis=d).astype(a.dtype))
    return _wrap(out) if _skip_record(x) else _record_scan(LOGCUMSUMEXP, out, x, a, d)


def _cumulative_extreme(x, dim, better, op, cls):
    a = x._a
    d = _check_dim(dim, a.ndim)
    scalars = (op == CUMMIN, d)
    if a.ndim == 0:
        return cls(_gathered_row(op, x, np.zeros((), np.int64), scalars), _wrap(np.zeros((), np.int64)))
    idx = np.zeros(a.shape, np.int64)
    if a.size:
        v = np.moveaxis(a, d, -1)
        best, bi = v[..., 0].copy(), np.zeros(v.shape[:-1], np.int64)
        ix = np.moveaxis(idx, d, -1)
        with quiet():
            for k in range(1, v.shape[-1]):
                # PyTorch: the later index on ties; a NaN wins and stays
                take = ~np.isnan(best) & (better(v[..., k], best) | (v[..., k] == best) | np.isnan(v[..., k])) \
                    if a.dtype.kind == "f" else better(v[..., k], best) | (v[..., k] == best)
                best = np.where(take, v[..., k], best)
                bi = np.where(take, k, bi)
                ix[..., k] = bi
    return cls(_gathered_row(op, x, _flat_positions(a.shape, d, idx), scalars), _wrap(idx))


def _gathered_row(op, x, pos, scalars):
    """x's elements at these flat positions (shaped as pos), recorded for the _scatter rule
    (scalars: what the forward kernel reads)."""
    out = _arr(x._a.reshape(-1)[pos.reshape(-1)].reshape(pos.shape))
    if _skip_record(x):
        return _wrap(out)
    return record(op, out, x, ints=_with_count(pos), broadcast=False, scalars=scalars)


@torch_names("cummax")
def cummax(x, dim):
    return _cumulative_extreme(x, dim, np.greater, CUMMAX, return_types.cummax)


@torch_names("cummin")
def cummin(x, dim):
    return _cumulative_extreme(x, dim, np.less, CUMMIN, return_types.cummin)


samples(cumprod, ((3,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 3, 2), -2), ((), 0))
kinks(cumprod, (Given([2.0, 0.0, 3.0, 0.0, 5.0]), 0), (Given([[1.5, 0.0, 2.0], [0.0, 3.0, -1.0]]), 1))
samples(logcumsumexp, ((3,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 3, 2), -2), ((), 0),
        (Given([0.0, 100.0, -100.0]), 0))
kinks(logcumsumexp, (Given([1.0, -np.inf, 2.0]), 0), (Given([-np.inf, 1.0, 3.0]), 0))
samples(cummax, ((4,), 0), ((2, 3), 1), ((2, 3), 0), ((), 0))
samples(cummin, ((4,), 0), ((2, 3), 1), ((3, 2), -2))
kinks(cummax, (Given([1.0, 3.0, 3.0, 2.0, 3.0]), 0))
kinks(cummin, (Given([[1.0, 1.0, 0.0], [2.0, 0.5, 0.5]]), 1))
