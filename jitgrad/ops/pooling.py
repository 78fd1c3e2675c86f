"""Window ops: pooling, interpolation, unfold/fold (im2col/col2im), pixel shuffle, max_unpool.

Each is a linear map of x's planes (a plane: one (sample, channel) slice; or one sample) fixed by
a window pattern: out's plane p, element o = sum_t w[o, t] * x's plane p, element pos[o, t]
(pos -1: padding, contributes nothing). Max pools are the case K = 1 with a pattern per plane (the
argmax). The adjoint map scatters instead (fold, max_unpool, and every op's VJP formula). One
kernel, _window, replays both directions; the forwards are numpy (fancy indexing, bincount).
"""
import builtins
import math

import numpy as np

from .. import dtypes
from ..engine import hook
from ..engine.loop import I0, I1
from ..engine.registry import defop
from ..engine.replay import P_C, P_I0, P_K, P_OSH, P_ROW, P_XSH, needs
from ..tensor import Tensor, _wrap
from ._core import _arr, _float_kernel, _needs_grad, quiet, record
from ._samples import Given, samples


# ======================= the window kernel ===================================================
PER_PLANE = 1       # I0 bits: pos is given per plane (P * L * K), else one pattern shared by planes
WEIGHTED = 2        # the weights w[o, t] are saved (shared by planes), else all 1
ADJOINT = 4         # the row scatters: its input is the window side (L per plane), out the image side


def _window(go, ga, gb, sv, iv, do, da, db, row):
    # iv = [P, S, L, K, pos...]: P planes, S elements per image-side plane, L windows of K taps
    # per window-side plane; I0 bits PER_PLANE (1), WEIGHTED (2), ADJOINT (4) as above.
    # Gather rows: ga (image side) += w * go (window side); adjoint rows the reverse.
    nplanes = iv[0]
    s = iv[1]
    nl = iv[2]
    k = iv[3]
    fl = row[I0]
    m = nl * k
    for p in range(nplanes):
        base = 4 + (p * m if fl & 1 else 0)
        for o in range(nl):
            for t in range(k):
                q = iv[np.uint64(base + o * k + t)]
                if q < 0:
                    continue
                w = sv[o * k + t] if fl & 2 else 1.0
                if fl & 4:      # (unsigned indices: no negative-index wraparound check)
                    ga[np.uint64(p * nl + o)] += w * go[np.uint64(p * s + q)]
                else:
                    ga[np.uint64(p * s + q)] += w * go[np.uint64(p * nl + o)]


def _pattern(node):
    ints = node.ints
    nplanes, s, nl, k = (builtins.int(v) for v in ints[:4])
    m = nl * k
    pos = np.array(ints[4: 4 + (nplanes * m if node.i0 & PER_PLANE else m)]).reshape(-1, nl, k)
    w = np.array(node.saved[:m]).reshape(nl, k) if node.i0 & WEIGHTED else None
    return nplanes, s, pos, w


def _window_back(g, x, node):
    """The VJP of a window row: the adjoint map with the same pattern (linear in g), recorded as
    fold's (a scatter) or unfold's (a gather) row, whatever op the pattern came from."""
    nplanes, s, pos, w = _pattern(node)
    if hook.tracer is not None and node.op in _MAXIMA_OPS:
        # a replay's max pool finds this call's maxima for its own row only: the row recorded
        # here would keep the traced call's positions
        hook.tracer.unsupported("a max pool's gradient recorded as ops (create_graph): its "
                                "positions would stay the traced call's maxima")
    adjoint = not node.i0 & ADJOINT
    return _apply(COL2IM if adjoint else IM2COL, g, nplanes, s, pos, w, x.shape, adjoint=adjoint)


def _fwd_window(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # a window row with one pattern shared by the planes: the int data [P, S, L, K, pos], I0's
    # flags, the weights (WEIGHTED) the scalars. As _apply: a gather sums w * x over each
    # window's taps in order (padding taps give 0); an adjoint row scatters, summed in float64 in
    # C order of (P, L, K) and rounded once (np.bincount). saves: the weights
    at = prog[j, P_K]
    nplanes = pints[at]
    size = pints[at + 1]
    nl = pints[at + 2]
    k = pints[at + 3]
    fl = prog[j, P_I0]
    c = prog[j, P_C]
    pos = pints[at + 4: at + 4 + nl * k]
    if fl & 4:
        acc = np.zeros(nplanes * size, np.float64)
        for p in range(nplanes):
            for o in range(nl):
                val = x[p * nl + o]
                for t in range(k):
                    q = pos[o * k + t]
                    if q >= 0:
                        acc[p * size + q] += val * cv[c + o * k + t] if fl & 2 else val
        for e in range(out.size):
            out[e] = acc[e]
    elif k == 1 and not fl & 2:
        for p in range(nplanes):
            for o in range(nl):
                q = pos[o]
                out[p * nl + o] = x[p * size + q] if q >= 0 else 0
    else:
        zero = out.dtype.type(0)
        for p in range(nplanes):
            for o in range(nl):
                total = zero
                for t in range(k):
                    q = pos[o * k + t]
                    val = x[p * size + q] if q >= 0 else zero
                    term = val * cv[c + o * k + t] if fl & 2 else val
                    total = term if t == 0 else total + term
                out[p * nl + o] = total
    if s >= 0 and fl & 2:
        for e in range(nl * k):
            sv[s + e] = cv[c + e]


def _fwd_max_pool(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # the scalars: nd, then kernel, stride, padding, dilation, each padded to 3 dims (1, 1, 0, 1).
    # As _max_pool and PyTorch's kernel, which starts from -inf and takes an input tap if val > max
    # or val is nan: per window the first maximum in kernel-offset order, or the last nan. A
    # recorded row's int data is [P, S, L, 1, the maxima's positions] (a per-plane pattern for
    # _window; -1 only for a window without an input tap).
    c = prog[j, P_C]
    nd = np.int64(cv[c])
    xs = prog[j, P_XSH]
    osh = prog[j, P_OSH]
    g = np.empty((6, 3), np.int64)          # input size, output size, kernel, stride, pad, dil
    for q in range(3):
        e = q - (3 - nd)
        g[0, q] = shapes[xs + 1 + shapes[xs] - nd + e] if e >= 0 else 1
        g[1, q] = shapes[osh + 1 + shapes[osh] - nd + e] if e >= 0 else 1
        for r in range(4):
            g[2 + r, q] = np.int64(cv[c + 1 + 3 * r + q])
    i0, i1, i2 = g[0, 0], g[0, 1], g[0, 2]
    l0, l1, l2 = g[1, 0], g[1, 1], g[1, 2]
    k0, k1, k2 = g[2, 0], g[2, 1], g[2, 2]
    s0, s1, s2 = g[3, 0], g[3, 1], g[3, 2]
    p0, p1, p2 = g[4, 0], g[4, 1], g[4, 2]
    d0, d1, d2 = g[5, 0], g[5, 1], g[5, 2]
    plane = i0 * i1 * i2
    nl = l0 * l1 * l2
    nk = k0 * k1 * k2
    nplanes = x.size // plane if plane else 0
    row = prog[j, P_ROW]
    want_pos = row >= 0
    at = rows[row, I1] + 4 if want_pos else 0
    if want_pos:
        bints[at - 4] = nplanes
        bints[at - 3] = plane
        bints[at - 2] = nl
        bints[at - 1] = 1
    pos = bints[at: at + nplanes * nl]      # (written only if want_pos)
    taps = np.empty(nk, np.int64)           # each tap's offset from its window's first element
    for a0 in range(k0):
        for a1 in range(k1):
            for a2 in range(k2):
                taps[(a0 * k1 + a1) * k2 + a2] = (a0 * d0 * i1 + a1 * d1) * i2 + a2 * d2
    box = np.empty((3, 2), np.int64)        # per dim the outputs lo..hi whose windows are inside
    for e in range(3):
        lo = min(g[1, e], (g[4, e] + g[3, e] - 1) // g[3, e])
        last = g[0, e] - 1 - (g[2, e] - 1) * g[5, e] + g[4, e]
        box[e, 0] = lo
        box[e, 1] = max(lo, min(g[1, e], last // g[3, e] + 1) if last >= 0 else 0)
    lo0, hi0, lo1, hi1, lo2, hi2 = box[0, 0], box[0, 1], box[1, 0], box[1, 1], box[2, 0], box[2, 1]
    # The windows with no padding tap, each over its taps with selects on val > best alone: a
    # nan in the select's condition made this loop 6x slower (1.29 vs 0.21 ms for LeNet's first
    # pool), so nan is only noted, and if any was read the loop below redoes these windows with
    # PyTorch's rule. (Unsigned indices: no negative-index wraparound check.)
    nan = False
    for p in range(nplanes):
        xb = p * plane
        for b0 in range(lo0, hi0):
            for b1 in range(lo1, hi1):
                q0 = ((b0 * s0 - p0) * i1 + b1 * s1 - p1) * i2 - p2
                o = p * nl + (b0 * l1 + b1) * l2
                for b2 in range(lo2, hi2):
                    qw = q0 + b2 * s2
                    bq = qw + taps[0]
                    best = x[np.uint64(xb + bq)]
                    nan |= best != best
                    for t in range(1, nk):
                        q = qw + taps[t]
                        val = x[np.uint64(xb + q)]
                        nan |= val != val
                        take = val > best
                        best = val if take else best
                        bq = q if take else bq
                    out[np.uint64(o + b2)] = best
                    if want_pos:
                        pos[np.uint64(o + b2)] = bq
    for p in range(nplanes):                # the windows with a padding tap (and all after a nan)
        xp = x[p * plane: (p + 1) * plane]
        for b0 in range(l0):
            y0 = b0 * s0 - p0
            for b1 in range(l1):
                y1 = b1 * s1 - p1
                inside = not nan and lo0 <= b0 < hi0 and lo1 <= b1 < hi1
                for b2 in range(l2):
                    if inside and lo2 <= b2 < hi2:
                        continue
                    y2 = b2 * s2 - p2
                    best = xp[0]
                    bpos = -1
                    for a0 in range(k0):
                        x0 = y0 + a0 * d0
                        for a1 in range(k1):
                            x1 = y1 + a1 * d1
                            for a2 in range(k2):
                                x2 = y2 + a2 * d2
                                if 0 <= x0 < i0 and 0 <= x1 < i1 and 0 <= x2 < i2:
                                    q = (x0 * i1 + x1) * i2 + x2
                                    val = xp[q]
                                    if bpos < 0 or val > best or val != val:
                                        best = val
                                        bpos = q
                    o = p * nl + (b0 * l1 + b1) * l2 + b2
                    out[o] = best if bpos >= 0 else -np.inf
                    if want_pos:
                        pos[o] = bpos


def _fwd_adaptive_max_pool(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # the scalar: nd. Output i's window along a dim of input size n and output size m is
    # floor(i n / m) .. ceil((i + 1) n / m) (as _adaptive_axes); its maximum as PyTorch's kernel
    # (and _fwd_max_pool): the first maximum, or the last nan. A recorded row's int data is
    # [P, S, L, 1, the maxima's positions] (a per-plane pattern for _window)
    nd = np.int64(cv[prog[j, P_C]])
    xs = prog[j, P_XSH]
    osh = prog[j, P_OSH]
    g = np.ones((2, 3), np.int64)           # input size, output size
    for q in range(3 - nd, 3):
        g[0, q] = shapes[xs + 1 + shapes[xs] - 3 + q]
        g[1, q] = shapes[osh + 1 + shapes[osh] - 3 + q]
    i0, i1, i2 = g[0, 0], g[0, 1], g[0, 2]
    l0, l1, l2 = g[1, 0], g[1, 1], g[1, 2]
    plane = i0 * i1 * i2
    nl = l0 * l1 * l2
    nplanes = x.size // plane if plane else 0
    row = prog[j, P_ROW]
    want_pos = row >= 0
    at = rows[row, I1] + 4 if want_pos else 0
    if want_pos:
        bints[at - 4] = nplanes
        bints[at - 3] = plane
        bints[at - 2] = nl
        bints[at - 1] = 1
    for p in range(nplanes):
        xp = x[p * plane: (p + 1) * plane]
        for b0 in range(l0):
            for b1 in range(l1):
                for b2 in range(l2):
                    best = -np.inf
                    bpos = -1
                    for x0 in range((b0 * i0) // l0, -((-(b0 + 1) * i0) // l0)):
                        for x1 in range((b1 * i1) // l1, -((-(b1 + 1) * i1) // l1)):
                            for x2 in range((b2 * i2) // l2, -((-(b2 + 1) * i2) // l2)):
                                q = (x0 * i1 + x1) * i2 + x2
                                val = xp[q]
                                if bpos < 0 or val > best or val != val:
                                    best = val
                                    bpos = q
                    o = p * nl + (b0 * l1 + b1) * l2 + b2
                    out[o] = best
                    if want_pos:
                        bints[at + o] = bpos


def _fwd_max_unpool(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # the int data [P, S, L, 1, positions]: zeros, then each plane's x[l] written at its
    # position, in order (a repeated position keeps the last, as the eager put_along_axis).
    # The positions were checked in range when traced; the trace guards the indices' values
    at = prog[j, P_K]
    nplanes = pints[at]
    size = pints[at + 1]
    nl = pints[at + 2]
    for e in range(out.size):
        out[e] = 0
    for p in range(nplanes):
        for o in range(nl):
            out[p * size + pints[at + 4 + p * nl + o]] = x[p * nl + o]


_WINDOW = needs(_fwd_window, "x")


def _window_op(name, forward=None):
    return defop(name, _window, 1, forward=forward, x=_window_back)


def _apply(op, x, nplanes, s, pos, w, out_shape, adjoint, compute=True):
    """Run a window map on tensor x and record it: gather (out plane has L = pos.shape[1]
    elements) or, adjoint, scatter (out plane has s elements). pos: (1 or P, L, K)."""
    a = x._a
    nl, k = pos.shape[1], pos.shape[2]
    dt = a.dtype
    if not adjoint:
        xp = np.concatenate((a.reshape(nplanes, s), np.zeros((nplanes, 1), dt)), 1)
        if pos.shape[0] == 1:
            vals = xp[:, pos[0]]                                    # (P, L, K)
        else:
            vals = np.take_along_axis(xp, pos.reshape(nplanes, nl * k), 1).reshape(nplanes, nl, k)
        # tap by tap, in order: the sum rounds as the compiled replay's (_fwd_window)
        wd = None if w is None else w.astype(dt)
        out = vals[..., 0] if wd is None else vals[..., 0] * wd[:, 0]
        for t in range(1, k):
            out = out + (vals[..., t] if wd is None else vals[..., t] * wd[:, t])
    else:
        src = a.reshape(nplanes, nl, 1)
        contrib = np.broadcast_to(src if w is None else src * w.astype(dt), (nplanes, nl, k))
        full = np.broadcast_to(pos, (nplanes, nl, k))
        valid = full >= 0
        flat = (np.arange(nplanes)[:, None, None] * s + full)[valid]
        out = np.bincount(flat, contrib[valid], nplanes * s).astype(dt, copy=False)
    # C order, as torch's output: the gather's planes-innermost layout made its strides differ
    # from torch's, and numpy's reductions of it summed in another order than a replay's
    out = _arr(np.ascontiguousarray(out).reshape(out_shape))
    return _record_window(op, out, x, nplanes, s, pos, w, adjoint)


def _record_window(op, out, x, nplanes, s, pos, w, adjoint, scalars=None):
    """scalars: what a forward kernel reads besides the pattern (default: the weights)."""
    nl, k = pos.shape[1], pos.shape[2]
    fl = (PER_PLANE if pos.shape[0] > 1 else 0) | (WEIGHTED if w is not None else 0) | \
        (ADJOINT if adjoint else 0)
    if scalars is None:
        scalars = () if w is None else w.reshape(-1)
    if not _needs_grad(x):          # (the pattern only for a trace)
        return _wrap(out) if hook.tracer is None else record(op, out, x, ints=np.concatenate(
            (np.array([nplanes, s, nl, k], np.int64), pos.reshape(-1))), i0=fl, scalars=scalars)
    ints = np.concatenate((np.array([nplanes, s, nl, k], np.int64), pos.reshape(-1)))
    saves = (np.ascontiguousarray(w, out.dtype).reshape(-1),) if w is not None else ()
    return record(op, out, x, saves=saves, ints=ints, i0=fl, broadcast=False, scalars=scalars)


# ======================= geometry ============================================================
def _tuple(v, n, name, fn):
    """An int or a sequence of n ints, as torch's pooling/conv arguments."""
    if isinstance(v, (builtins.int, np.integer)):
        return (builtins.int(v),) * n
    v = tuple(builtins.int(e) for e in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise RuntimeError(f"{fn}: {name} must either be a single int, or a tuple of {_words[n]} ints")
    return v


_words = {1: "one", 2: "two", 3: "three"}


def _window_axes(n_in, n_out, k, stride, pad, dil):
    """Per spatial dim: (n_out, k) positions o * stride - pad + t * dil, -1 outside [0, n_in)."""
    p = np.arange(n_out)[:, None] * stride - pad + np.arange(k)[None, :] * dil
    return np.where((p >= 0) & (p < n_in), p, -1)


def _combine(axes, in_sp, weights=None):
    """Per-dim (L_d, K_d) positions (and weights) as one (1, L, K) pattern over flat planes."""
    nd = len(axes)
    strides = [int(math.prod(in_sp[d + 1:])) for d in range(nd)]
    pos = np.zeros((1,) * (2 * nd), np.int64)
    bad = np.zeros((1,) * (2 * nd), bool)
    w = np.ones((1,) * (2 * nd)) if weights is not None else None
    for d, ax in enumerate(axes):
        shape = [1] * (2 * nd)
        shape[d], shape[nd + d] = ax.shape
        a = ax.reshape(shape)
        pos = pos + np.where(a < 0, 0, a) * strides[d]
        bad = bad | (a < 0)
        if weights is not None:
            w = w * weights[d].reshape(shape)
    pos = np.where(bad, -1, pos)
    nl, nk = int(math.prod(pos.shape[:nd])), int(math.prod(pos.shape[nd:]))
    pos = pos.reshape(1, nl, nk)
    return pos, (None if w is None else np.broadcast_to(w, bad.shape).reshape(nl, nk))


def _pool_out(n, k, s, p, d, ceil):
    """torch's pooling_output_shape."""
    num = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)
    out = num // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def _spatial_input(x, nd):
    a = x._a
    if a.ndim not in (nd + 1, nd + 2) or 0 in a.shape[-nd - 1:]:
        dims = {1: "2D or 3D", 2: "3D or 4D", 3: "4D or 5D"}[nd]
        raise RuntimeError(f"non-empty {dims} (batch mode) tensor expected for input")
    return a


def _pool_args(x, nd, kernel_size, stride, padding, dilation, ceil_mode, fn, dilated=True):
    a = _spatial_input(x, nd)
    k = _tuple(kernel_size, nd, "kernel_size", fn)
    s = k if stride is None or (not isinstance(stride, (builtins.int, np.integer)) and len(stride) == 0) \
        else _tuple(stride, nd, "stride", fn)
    p = _tuple(padding, nd, "padding", fn)
    d = _tuple(dilation, nd, "dilation", fn)
    if builtins.min(k) <= 0:
        raise RuntimeError(f"kernel_size must be greater than zero, but got kH: {k[0]} kW: {k[-1]}"
                           if nd == 2 else "kernel_size must be greater than zero")
    if builtins.min(s) <= 0:
        raise RuntimeError("stride should not be zero")
    if builtins.min(d) <= 0:
        names = ("dilationH", "dilationW") if nd == 2 else ("dilationT", "dilationH", "dilationW")
        raise RuntimeError("dilation should be greater than zero, but got " +
                           " ".join(f"{nm}: {v}" for nm, v in zip(names, d)))
    for kk, pp, dd in zip(k, p, d):
        if pp < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {pp}")
        if pp > ((kk - 1) * dd + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pp}, "
                               f"kernel_size={kk} and dilation={dd}")
    in_sp = a.shape[-nd:]
    out_sp = tuple(_pool_out(n, kk, ss, pp, dd, ceil_mode) for n, kk, ss, pp, dd in zip(in_sp, k, s, p, d))
    if builtins.min(out_sp) < 1:
        c = a.shape[-nd - 1]
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, (c,) + in_sp))}). Calculated output size: "
                           f"({'x'.join(map(str, (c,) + out_sp))}). Output size is too small")
    return a, k, s, p, d, in_sp, out_sp


def _planes(a, nd):
    lead = a.shape[:-nd]
    return lead, int(math.prod(lead)), int(math.prod(a.shape[-nd:]))


# ======================= max pooling =========================================================
MAX_POOL2D = _window_op("MaxPool2DWithIndicesBackward0", needs(_fwd_max_pool, "x"))
MAX_POOL3D = _window_op("MaxPool3DWithIndicesBackward0", needs(_fwd_max_pool, "x"))
ADAPTIVE_MAX_POOL2D = _window_op("AdaptiveMaxPool2DBackward0", needs(_fwd_adaptive_max_pool, "x"))
ADAPTIVE_MAX_POOL3D = _window_op("AdaptiveMaxPool3DBackward0", needs(_fwd_adaptive_max_pool, "x"))
MAX_UNPOOL2D = _window_op("MaxUnpool2DBackward0", needs(_fwd_max_unpool, "x"))
_MAXIMA_OPS = (MAX_POOL2D, MAX_POOL3D, ADAPTIVE_MAX_POOL2D, ADAPTIVE_MAX_POOL3D)  # (data-set patterns)
MAX_UNPOOL3D = _window_op("MaxUnpool3DBackward0", needs(_fwd_max_unpool, "x"))


def _max_windows(x, pattern, out_shape, op, return_indices, nd):
    """The max over each window (PyTorch's: the first maximum, or the last nan), recorded as a
    per-plane K = 1 pattern."""
    a = x._a
    lead, nplanes, s = _planes(a, nd)
    pat = pattern[0]
    fill = -np.inf if a.dtype.kind == "f" else np.iinfo(a.dtype).min
    xp = np.concatenate((a.reshape(nplanes, s), np.full((nplanes, 1), fill, a.dtype)), 1)
    vals = xp[:, pat]                                   # (P, L, K)
    arg = np.argmax(vals, -1)
    if a.dtype.kind == "f":
        nans = np.isnan(vals)
        last_nan = vals.shape[-1] - 1 - np.argmax(nans[..., ::-1], -1)
        arg = np.where(nans.any(-1), last_nan, arg)
    chosen = pat[np.arange(pat.shape[0]), arg]          # (P, L) flat positions in the plane
    out = _arr(np.take_along_axis(vals, arg[..., None], -1)[..., 0].reshape(out_shape))
    t = _record_window(op, out, x, nplanes, s, chosen[..., None], None, False, (nd,))
    if return_indices:
        return t, _wrap(chosen.reshape(out_shape).astype(np.int64))
    return t


def _max_pool(x, nd, kernel_size, stride, padding, dilation, ceil_mode, return_indices, fn, op):
    """The max over strided windows of a -inf padded view (the first maximum, or the last nan, as
    PyTorch's kernel and replay.max_pool_direct: numpy's strided views are faster here); its
    position is recorded per plane (a K = 1 pattern) for the backward."""
    a, k, s, p, d, in_sp, out_sp = _pool_args(x, nd, kernel_size, stride, padding, dilation, ceil_mode, fn)
    lead, nplanes, plane = _planes(a, nd)
    geometry = (nd,) + tuple(v for t, fill in ((k, 1), (s, 1), (p, 0), (d, 1)) for v in (fill,) * (3 - nd) + t)
    pads = [(pp, builtins.max(0, (o - 1) * ss + (kk - 1) * dd + 1 - n - pp))
            for n, o, kk, ss, pp, dd in zip(in_sp, out_sp, k, s, p, d)]
    padded = builtins.any(pd != (0, 0) for pd in pads)

    def taps(v, fill):
        """Each kernel offset's strided view of the (padded) planes v."""
        if padded:
            v = np.pad(v, [(0, 0)] + pads, constant_values=fill)
        ext = tuple((kk - 1) * dd + 1 for kk, dd in zip(k, d))
        win = np.lib.stride_tricks.sliding_window_view(v, ext, axis=tuple(range(1, nd + 1)))
        win = win[(slice(None),) + tuple(slice(0, (o - 1) * ss + 1, ss) for o, ss in zip(out_sp, s))
                  + tuple(slice(None, None, dd) for dd in d)]
        return [win[(Ellipsis,) + off] for off in np.ndindex(*k)]
    # the maximum over the kernel offsets (numpy's argmax over a short last axis is slow);
    # np.maximum propagates nan, as PyTorch
    views = taps(a.reshape((nplanes,) + in_sp), -np.inf if a.dtype.kind == "f" else np.iinfo(a.dtype).min)
    best = views[0].copy()
    for v in views[1:]:
        np.maximum(best, v, out=best)
    out = _arr(best.reshape(a.shape[:-nd] + out_sp))
    if not (return_indices or _needs_grad(x)):
        return _wrap(out) if hook.tracer is None else record(op, out, x, scalars=geometry)
    # where the maximum is: the first input offset equal to it (or the last nan)
    found = np.zeros(best.shape, bool)
    arg = np.zeros(best.shape, np.int8 if len(views) < 128 else np.int64)
    nan = a.dtype.kind == "f" and bool(np.isnan(best).any())
    inside = taps(np.ones((1,) + in_sp, bool), False) if padded else [True] * len(views)
    with quiet():
        for v, valid in zip(views, inside):
            found |= (v == best) & valid
            arg += ~found
    np.minimum(arg, len(views) - 1, out=arg)
    for e, v in enumerate(views if nan else ()):     # no offset equals a nan maximum: the last nan
        arg[v != v] = e
    strides = [int(math.prod(in_sp[dim + 1:])) for dim in range(nd)]
    if not padded:       # every window inside: origin + offset
        origin = np.zeros((1,) * nd, np.int64)
        for dim in range(nd):
            o = np.arange(out_sp[dim]).reshape(tuple(-1 if e == dim else 1 for e in range(nd)))
            origin = origin + o * s[dim] * strides[dim]
        koff = np.zeros((1,) * nd, np.int64)
        for dim in range(nd):
            o = np.arange(k[dim]).reshape(tuple(-1 if e == dim else 1 for e in range(nd)))
            koff = koff + o * d[dim] * strides[dim]
        chosen = (origin + koff.reshape(-1)[arg]).reshape(nplanes, -1)
    else:
        offs = np.unravel_index(arg, k)                     # the kernel offset of each maximum
        pos = np.zeros(arg.shape, np.int64)
        valid = np.ones(arg.shape, bool)
        for dim in range(nd):
            o = np.arange(out_sp[dim]).reshape((1,) + tuple(-1 if e == dim else 1 for e in range(nd)))
            at = o * s[dim] - p[dim] + offs[dim] * d[dim]
            valid &= (at >= 0) & (at < in_sp[dim])
            pos = pos + at * strides[dim]
        chosen = np.where(valid, pos, -1).reshape(nplanes, -1)  # -1: an all-padding window's -inf
    t = _record_window(op, out, x, nplanes, plane, chosen[..., None], None, False, geometry)
    if return_indices:
        return t, _wrap(chosen.reshape(out.shape))
    return t


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     "max_pool2d", MAX_POOL2D)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     "max_pool3d", MAX_POOL3D)


def _via_2d(fn2d, input, *args, **kwargs):
    """torch's 1-d pools: the 2-d pool on an unsqueezed input, then squeeze (SqueezeBackward1)."""
    from .shape import squeeze, unsqueeze
    if input._a.ndim not in (2, 3):
        raise RuntimeError(f"{fn2d.__name__[:-2]}1d() Expected 2D or 3D input tensor, but got "
                           f"{list(input._a.shape)}")
    out = fn2d(unsqueeze(input, -2), *args, **kwargs)
    if isinstance(out, tuple):
        return squeeze(out[0], -2), squeeze(out[1], -2)
    return squeeze(out, -2)


def _stride1d(stride, k, fn):
    if stride is None or (not isinstance(stride, (builtins.int, np.integer)) and not len(stride)):
        return k
    return _tuple(stride, 1, "stride", fn)[0]


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    fn = "max_pool1d"
    k = _tuple(kernel_size, 1, "kernel_size", fn)[0]
    return _via_2d(max_pool2d, input, (1, k), (1, _stride1d(stride, k, fn)),
                   (0, _tuple(padding, 1, "padding", fn)[0]), (1, _tuple(dilation, 1, "dilation", fn)[0]),
                   ceil_mode, return_indices)


# ======================= average pooling =====================================================
AVG_POOL2D = _window_op("AvgPool2DBackward0", _WINDOW)
AVG_POOL3D = _window_op("AvgPool3DBackward0", _WINDOW)
ADAPTIVE_AVG_POOL2D = _window_op("AdaptiveAvgPool2DBackward0", _WINDOW)
ADAPTIVE_AVG_POOL3D = _window_op("AdaptiveAvgPool3DBackward0", _WINDOW)


def _avg_pool(x, nd, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, fn, op):
    _float_kernel(x, f"{fn}_out_frame" if nd == 2 else fn)
    a, k, s, p, d, in_sp, out_sp = _pool_args(x, nd, kernel_size, stride, padding, 1, ceil_mode, fn)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    if nd == 3 and any(n < kk for n, kk in zip(in_sp, k)):     # PyTorch's 3-d check ignores padding
        raise RuntimeError(f"input image (T: {in_sp[0]} H: {in_sp[1]} W: {in_sp[2]}) smaller than kernel "
                           f"size (kT: {k[0]} kH: {k[1]} kW: {k[2]})")
    axes, weights = [], []
    for n, no, kk, ss, pp in zip(in_sp, out_sp, k, s, p):
        axes.append(_window_axes(n, no, kk, ss, pp, 1))
        start = np.arange(no) * ss - pp
        end = np.minimum(start + kk, n + pp)
        size = end - start if count_include_pad else np.minimum(end, n) - np.maximum(start, 0)
        weights.append(np.broadcast_to(size[:, None].astype(np.float64), (no, kk)))
    pattern, sizes = _combine(axes, in_sp, weights)
    w = np.full(sizes.shape, 1.0 / divisor_override) if divisor_override else 1.0 / sizes
    w = np.where(pattern[0] >= 0, w, 0.0)
    lead, nplanes, plane = _planes(a, nd)
    return _apply(op, x, nplanes, plane, pattern, w, a.shape[:-nd] + out_sp, adjoint=False)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, "avg_pool2d", AVG_POOL2D)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(input, 3, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, "avg_pool3d", AVG_POOL3D)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    fn = "avg_pool1d"
    k = _tuple(kernel_size, 1, "kernel_size", fn)[0]
    return _via_2d(avg_pool2d, input, (1, k), (1, _stride1d(stride, k, fn)),
                   (0, _tuple(padding, 1, "padding", fn)[0]), ceil_mode, count_include_pad)


# ======================= adaptive pooling ====================================================
def _adaptive_axes(n_in, n_out):
    start = (np.arange(n_out) * n_in) // n_out
    end = -((-(np.arange(n_out) + 1) * n_in) // n_out)
    k = builtins.int((end - start).max(initial=1))     # (an empty output: n_out = 0)
    p = start[:, None] + np.arange(k)[None, :]
    return np.where(p < end[:, None], p, -1), (end - start).astype(np.float64)


def _adaptive_args(x, nd, output_size, fn):
    a = x._a
    if a.ndim not in (nd + 1, nd + 2):
        dims = {1: "2D or 3D", 2: "3D or 4D", 3: "4D or 5D"}[nd]
        raise RuntimeError(f"{fn}(): Expected {dims} tensor, but got {list(a.shape)}")
    if isinstance(output_size, (builtins.int, np.integer)) or output_size is None:
        output_size = (output_size,) * nd
    output_size = tuple(output_size)
    if len(output_size) != nd:
        raise RuntimeError(f"{fn}: output_size must be {nd}")
    in_sp = a.shape[-nd:]
    out_sp = tuple(n if o is None else builtins.int(o) for n, o in zip(in_sp, output_size))
    for i in range(a.ndim - nd, a.ndim):
        if a.shape[i] == 0:
            raise RuntimeError(f"{fn}(): Expected input to have non-zero size for non-batch "
                               f"dimensions, but input has sizes {list(a.shape)} with dimension {i} "
                               f"being empty")
    if builtins.min(out_sp) < 0:
        raise RuntimeError(f"{fn}: elements of output_size must be greater than or equal to 0 but "
                           f"received {list(out_sp)}")
    return a, in_sp, out_sp


def _adaptive_avg(x, nd, output_size, fn, op):
    a, in_sp, out_sp = _adaptive_args(x, nd, output_size, fn)
    axes, weights = zip(*[_adaptive_axes(n, o) for n, o in zip(in_sp, out_sp)])
    pattern, sizes = _combine(list(axes), in_sp, [np.broadcast_to(w[:, None], ax.shape)
                                                  for w, ax in zip(weights, axes)])
    w = np.where(pattern[0] >= 0, 1.0 / sizes, 0.0)
    lead, nplanes, plane = _planes(a, nd)
    return _apply(op, x, nplanes, plane, pattern, w, a.shape[:-nd] + out_sp, adjoint=False)


def adaptive_avg_pool2d(input, output_size):
    _float_kernel(input, "adaptive_avg_pool2d")
    return _adaptive_avg(input, 2, output_size, "adaptive_avg_pool2d", ADAPTIVE_AVG_POOL2D)


def adaptive_avg_pool3d(input, output_size):
    _float_kernel(input, "adaptive_avg_pool3d_cpu")
    return _adaptive_avg(input, 3, output_size, "adaptive_avg_pool3d", ADAPTIVE_AVG_POOL3D)


def adaptive_avg_pool1d(input, output_size):
    o = _tuple(output_size, 1, "output_size", "adaptive_avg_pool1d")[0]
    return _via_2d(adaptive_avg_pool2d, input, (1, o))


def _adaptive_max(x, nd, output_size, return_indices, fn, op):
    a, in_sp, out_sp = _adaptive_args(x, nd, output_size, fn)
    axes = [_adaptive_axes(n, o)[0] for n, o in zip(in_sp, out_sp)]
    pattern, _ = _combine(axes, in_sp)
    return _max_windows(x, pattern, a.shape[:-nd] + out_sp, op, return_indices, nd)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max(input, 2, output_size, return_indices, "adaptive_max_pool2d", ADAPTIVE_MAX_POOL2D)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max(input, 3, output_size, return_indices, "adaptive_max_pool3d", ADAPTIVE_MAX_POOL3D)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    o = _tuple(output_size, 1, "output_size", "adaptive_max_pool1d")[0]
    return _via_2d(adaptive_max_pool2d, input, (1, o), return_indices)


# ======================= max_unpool ==========================================================
def _max_unpool(x, indices, nd, kernel_size, stride, padding, output_size, fn, op):
    a = x._a
    if not isinstance(indices, Tensor) or indices._a.dtype != np.int64:
        raise RuntimeError("elements in indices should be type int64 but got: "
                           f"{dtypes.scalar_name(indices._a.dtype) if isinstance(indices, Tensor) else indices}")
    if indices._a.shape != a.shape:
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor "
                           f"({list(a.shape)}) but got indices tensor with shape: {list(indices._a.shape)}")
    k = _tuple(kernel_size, nd, "kernel_size", fn)
    s = k if stride is None else _tuple(stride, nd, "stride", fn)
    p = _tuple(padding, nd, "padding", fn)
    in_sp = a.shape[-nd:]
    if output_size is None:
        out_sp = tuple((n - 1) * ss - 2 * pp + kk for n, ss, pp, kk in zip(in_sp, s, p, k))
    else:
        out_sp = tuple(builtins.int(v) for v in tuple(output_size)[-nd:])
    lead, nplanes, plane = _planes(a, nd)
    size = int(math.prod(out_sp))
    idx = indices._a.reshape(nplanes, plane)
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx[(idx < 0) | (idx >= size)][0]
        raise RuntimeError(f"Found an invalid max index: {bad} (output volumes are of size "
                           f"{'x'.join(map(str, out_sp))})")
    if hook.tracer is not None:     # a replay writes at the traced positions: guard them
        hook.tracer.index_tensor(indices)
    out = np.zeros((nplanes, size), a.dtype)
    np.put_along_axis(out, idx, a.reshape(nplanes, plane), 1)
    return _record_window(op, _arr(out.reshape(lead + out_sp)), x, nplanes, size,
                          idx.reshape(nplanes, plane, 1), None, True)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(input, indices, 2, kernel_size, stride, padding, output_size, "max_unpool2d",
                       MAX_UNPOOL2D)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(input, indices, 3, kernel_size, stride, padding, output_size, "max_unpool3d",
                       MAX_UNPOOL3D)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    from .shape import squeeze, unsqueeze
    k = _tuple(kernel_size, 1, "kernel_size", "max_unpool1d")[0]
    s = k if stride is None else _tuple(stride, 1, "stride", "max_unpool1d")[0]
    p = _tuple(padding, 1, "padding", "max_unpool1d")[0]
    osz = None if output_size is None else (1, tuple(output_size)[-1])
    return squeeze(max_unpool2d(unsqueeze(input, -2), unsqueeze(indices, -2), (1, k), (1, s), (0, p), osz), -2)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """As torch: (sum over the window of x^p)^(1/p), via avg_pool2d (so grad_fn is PowBackward0)."""
    from .elementwise import abs, mul, pow, relu, sign
    kw, kh = _tuple(kernel_size, 2, "kernel_size", "lp_pool2d")
    out = avg_pool2d(pow(input, norm_type), (kw, kh), stride, 0, ceil_mode)
    return pow(mul(mul(sign(out), relu(abs(out))), kw * kh), 1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    from .elementwise import abs, mul, pow, relu, sign
    out = avg_pool1d(pow(input, norm_type), kernel_size, stride, 0, ceil_mode)
    return pow(mul(mul(sign(out), relu(abs(out))), kernel_size), 1.0 / norm_type)


# ======================= unfold / fold (im2col / col2im) =====================================
IM2COL = _window_op("Im2ColBackward0", _WINDOW)
COL2IM = _window_op("Col2ImBackward0", _WINDOW)


def _im2col_pattern(c, in_sp, out_sp, k, s, p, d):
    """The (1, C*K*L, 1) pattern of unfold: column (c, kernel offset) x window, over one sample."""
    axes = [_window_axes(n, o, kk, ss, pp, dd) for n, o, kk, ss, pp, dd in zip(in_sp, out_sp, k, s, p, d)]
    pattern, _ = _combine(axes, in_sp)               # (1, L, K) in one channel
    plane = int(math.prod(in_sp))
    pos = pattern[0].T[None, :, :]                   # (1, K, L)
    pos = np.where(pos >= 0, pos + (np.arange(c) * plane)[:, None, None], -1)   # (C, K, L)
    return pos.reshape(1, -1, 1)


def _unfold_args(fn, kernel_size, dilation, padding, stride):
    k = _tuple(kernel_size, 2, "kernel_size", fn)
    d = _tuple(dilation, 2, "dilation", fn)
    p = _tuple(padding, 2, "padding", fn)
    s = _tuple(stride, 2, "stride", fn)
    if builtins.min(k) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_height: {k[0]} "
                           f"kernel_width: {k[1]}")
    if builtins.min(s) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got stride_height: {s[0]} "
                           f"stride_width: {s[1]}")
    if builtins.min(d) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilation_height: {d[0]} "
                           f"dilation_width: {d[1]}")
    if builtins.min(p) < 0:
        raise RuntimeError(f"padding should be non-negative, but got pad_height: {p[0]} pad_width: {p[1]}")
    return k, d, p, s


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """F.unfold: (N, C, H, W) -> (N, C * kh * kw, L), the sliding blocks as columns."""
    a = input._a
    if a.ndim not in (3, 4):
        raise NotImplementedError(f"Input Error: Only 3D or 4D input Tensors are supported (got {a.ndim}D)")
    k, d, p, s = _unfold_args("unfold", kernel_size, dilation, padding, stride)
    in_sp = a.shape[-2:]
    out_sp = tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, ss, pp, dd in zip(in_sp, k, s, p, d))
    if builtins.min(out_sp) < 1:
        raise RuntimeError(f"Given input with spatial size ({in_sp[0]}, {in_sp[1]}), kernel_size=({k[0]}, "
                           f"{k[1]}), dilation=({d[0]}, {d[1]}), padding=({p[0]}, {p[1]}), calculated shape "
                           f"of the array of sliding blocks as ({out_sp[0]}, {out_sp[1]}), but its "
                           f"components must be at least one.")
    c = a.shape[-3]
    pos = _im2col_pattern(c, in_sp, out_sp, k, s, p, d)
    lead = a.shape[:-3]
    nplanes = int(math.prod(lead))
    shape = lead + (c * k[0] * k[1], out_sp[0] * out_sp[1])
    return _apply(IM2COL, input, nplanes, c * in_sp[0] * in_sp[1], pos, None, shape, adjoint=False)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """F.fold: the adjoint of unfold, summing overlapping blocks back into (N, C, H, W)."""
    a = input._a
    if a.ndim not in (2, 3):
        raise NotImplementedError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are "
                                  f"supported (got {a.ndim}D)")
    o = _tuple(output_size, 2, "output_size", "fold")
    k, d, p, s = _unfold_args("fold", kernel_size, dilation, padding, stride)
    kk = k[0] * k[1]
    ncol, nl = a.shape[-2], a.shape[-1]
    if ncol % kk:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product of "
                           f"kernel_size, but got input.size(1)={ncol} and kernel_size=({k[0]}, {k[1]}).")
    out_sp = tuple((n + 2 * pp - dd * (kq - 1) - 1) // ss + 1 for n, kq, ss, pp, dd in zip(o, k, s, p, d))
    if out_sp[0] * out_sp[1] != nl:
        raise RuntimeError(f"Given output_size=({o[0]}, {o[1]}), kernel_size=({k[0]}, {k[1]}), "
                           f"dilation=({d[0]}, {d[1]}), padding=({p[0]}, {p[1]}), stride=({s[0]}, {s[1]}), "
                           f"expected size of input's dimension 2 to match the calculated number of "
                           f"sliding blocks {out_sp[0]} * {out_sp[1]} = {out_sp[0] * out_sp[1]}, but got "
                           f"input.size(2)={nl}.")
    c = ncol // kk
    pos = _im2col_pattern(c, o, out_sp, k, s, p, d)
    lead = a.shape[:-2]
    nplanes = int(math.prod(lead))
    return _apply(COL2IM, input, nplanes, c * o[0] * o[1], pos, None, lead + (c,) + o, adjoint=True)


# ======================= pixel shuffle =======================================================
PIXEL_SHUFFLE = _window_op("PixelShuffleBackward0", _WINDOW)
PIXEL_UNSHUFFLE = _window_op("PixelUnshuffleBackward0", _WINDOW)


def _shuffle(x, r, down, fn, op):
    a = x._a
    if a.ndim < 3:
        raise RuntimeError(f"{fn} expects input to have at least 3 dimensions, but got input with "
                           f"{a.ndim} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"{fn} expects a positive {'downscale' if down else 'upscale'}_factor, "
                           f"but got {r}")
    c, h, w = a.shape[-3:]
    if not down and c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
                           f"square of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    if down and (h % r or w % r):
        which, n = ("height", h) if h % r else ("width", w)
        raise RuntimeError(f"pixel_unshuffle expects {which} to be divisible by downscale_factor, but "
                           f"input.size({-2 if which == 'height' else -1})={n} is not divisible by {r}")
    idx = np.arange(c * h * w).reshape(c, h, w)
    if down:          # out[c * r * r + i * r + j, y, x] = in[c, y * r + i, x * r + j]
        src = idx.reshape(c, h // r, r, w // r, r).transpose(0, 2, 4, 1, 3)
        oshape = (c * r * r, h // r, w // r)
    else:             # out[c, y * r + i, x * r + j] = in[c * r * r + i * r + j, y, x]
        src = idx.reshape(c // (r * r), r, r, h, w).transpose(0, 3, 1, 4, 2)
        oshape = (c // (r * r), h * r, w * r)
    lead = a.shape[:-3]
    nplanes = int(math.prod(lead))
    pos = np.ascontiguousarray(src).reshape(1, -1, 1)
    out = _arr(a.reshape(nplanes, -1)[:, pos[0, :, 0]].reshape(lead + oshape))
    return _record_window(op, out, x, nplanes, c * h * w, pos, None, False)


def pixel_shuffle(input, upscale_factor):
    return _shuffle(input, builtins.int(upscale_factor), False, "pixel_shuffle", PIXEL_SHUFFLE)


def pixel_unshuffle(input, downscale_factor):
    return _shuffle(input, builtins.int(downscale_factor), True, "pixel_unshuffle", PIXEL_UNSHUFFLE)


# ======================= interpolation =======================================================
UPSAMPLE = {m: _window_op(f"Upsample{name}Backward0", _WINDOW)
            for m, name in (("nearest1", "Nearest1D"), ("nearest2", "Nearest2D"), ("nearest3", "Nearest3D"),
                            ("nearest-exact1", "NearestExact1D"), ("nearest-exact2", "NearestExact2D"),
                            ("nearest-exact3", "NearestExact3D"), ("linear1", "Linear1D"),
                            ("bilinear2", "Bilinear2D"), ("bicubic2", "Bicubic2D"),
                            ("trilinear3", "Trilinear3D"))}
_MODE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_MODES = "nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact"


def _source_scale(n_in, n_out, align_corners, scale):
    """torch's area_pixel_compute_scale."""
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


def _cubic_weights(t, a=-0.75):
    def near(v):
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v):
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a
    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], -1)


def _interp_axis(mode, n_in, n_out, align_corners, scale):
    o = np.arange(n_out, dtype=np.float64)
    if mode in ("nearest", "nearest-exact"):
        ones = np.ones((n_out, 1))
        if mode == "nearest" and n_out == n_in:         # torch's nearest_idx: whatever the scale
            return np.arange(n_out)[:, None], ones
        if mode == "nearest" and n_out == 2 * n_in:
            return (np.arange(n_out) >> 1)[:, None], ones
        # in float32, as torch's compute_scales_value and floorf
        sc = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(n_in) / np.float32(n_out)
        o32 = o.astype(np.float32)
        src = np.floor((o32 + np.float32(0.5)) * sc if mode == "nearest-exact" else o32 * sc).astype(np.int64)
        return np.minimum(src, n_in - 1)[:, None], ones
    sc = _source_scale(n_in, n_out, align_corners, scale)
    if mode == "bicubic":
        src = o * sc if align_corners else (o + 0.5) * sc - 0.5
        i0 = np.floor(src)
        idx = np.clip(i0[:, None].astype(np.int64) + np.arange(-1, 3), 0, n_in - 1)
        return idx, _cubic_weights(src - i0)
    src = o * sc if align_corners else np.maximum((o + 0.5) * sc - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    return np.stack([i0, i1], 1), np.stack([1 - lam, lam], 1)


def _linear_int16_weights(n_in, n_out, align_corners, scale):
    """torch's uint8 linear resampling along one axis (the separable kernel Pillow's algorithm
    came from): each output's two taps, weights normalised and then scaled to int16 with one
    precision per axis. Returns (first tap, tap count, int weights (n_out, 2), precision)."""
    sc = _source_scale(n_in, n_out, align_corners, scale)
    delta = 0.5 if align_corners else 0.0      # torch's align_corners_delta for uint8
    first = np.zeros(n_out, np.int64)
    w = np.zeros((n_out, 2))
    for i in range(n_out):
        center = sc * (i + 0.5 - delta)
        lo = builtins.max(builtins.int(center - 1.0 + 0.5 + delta), 0)
        size = builtins.min(builtins.max(builtins.min(builtins.int(center + 1.0 + 0.5 + delta), n_in) - lo, 0), 2)
        taps = [builtins.max(0.0, 1.0 - builtins.abs(j + lo - center + 0.5 - delta)) for j in range(size)]
        total = builtins.sum(taps)
        first[i] = builtins.min(lo, n_in - 1)
        w[i, :size] = [t / total for t in taps] if total != 0.0 else taps
    prec = 0
    while prec < 22 and builtins.int(0.5 + w.max() * (1 << (prec + 1))) < (1 << 15):
        prec += 1
    v = w * (1 << prec)
    return first, np.where(v < 0, np.trunc(v - 0.5), np.trunc(v + 0.5)).astype(np.int64), prec


def _interpolate_uint8(a, mode, in_sp, out_sp, align_corners, scales):
    """uint8 interpolation as torch's: nearest gathers; bilinear resamples one axis at a time
    (the last first), each pass in integer arithmetic rounded back to uint8."""
    out = a
    for dim in reversed(range(len(in_sp))):
        n_in, n_out, ax = in_sp[dim], out_sp[dim], 2 + dim
        if mode != "bilinear":
            idx = _interp_axis(mode, n_in, n_out, False, scales[dim])[0][:, 0]
            out = np.take(out, idx, axis=ax)
            continue
        if n_in == n_out:                   # torch skips the pass, whatever the scale
            continue
        first, w, prec = _linear_int16_weights(n_in, n_out, align_corners, scales[dim])
        second = np.minimum(first + 1, n_in - 1)
        shape = (1,) * ax + (n_out,) + (1,) * (out.ndim - ax - 1)
        acc = (np.take(out, first, axis=ax).astype(np.int64) * w[:, 0].reshape(shape) +
               np.take(out, second, axis=ax).astype(np.int64) * w[:, 1].reshape(shape))
        out = np.clip((acc + (1 << (prec - 1))) >> prec, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    a = input._a
    nd = a.ndim - 2
    if mode in ("nearest", "area", "nearest-exact") and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if antialias:
        raise NotImplementedError("jitgrad: interpolate(antialias=True) is not supported")
    if mode not in ("nearest", "nearest-exact", "area") and mode not in _MODE_DIMS:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {a.ndim}D) "
                                  f"for the modes: {_MODES} (got {mode})")
    if mode in _MODE_DIMS and nd != _MODE_DIMS[mode]:
        raise NotImplementedError(f"Got {a.ndim}D input, but {mode} mode needs {_MODE_DIMS[mode] + 2}D input")
    if nd not in (1, 2, 3):
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {a.ndim}D) "
                                  f"for the modes: {_MODES} (got {mode})")
    in_sp = a.shape[2:]
    if size is not None:
        sizes = (size,) * nd if isinstance(size, (builtins.int, np.integer)) else tuple(size)
        if len(sizes) != nd:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got "
                             f"input with spatial dimensions of {list(in_sp)} and output size of "
                             f"{list(sizes)}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                             f"and output size in (o1, o2, ...,oK) format.")
        out_sp = tuple(builtins.int(v) for v in sizes)
        scales = (None,) * nd
    else:
        scales = (scale_factor,) * nd if not isinstance(scale_factor, (tuple, list)) else tuple(scale_factor)
        if len(scales) != nd:
            raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but "
                             f"got input with spatial dimensions of {list(in_sp)} and scale_factor of shape "
                             f"{list(scales)}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                             f"and scale_factor in (s1, s2, ...,sK) format.")
        out_sp = tuple(builtins.int(math.floor(n * builtins.float(f))) for n, f in zip(in_sp, scales))
        scales = tuple(builtins.float(f) for f in scales)
        if recompute_scale_factor:
            scales = (None,) * nd
    if builtins.min(out_sp, default=1) <= 0 or builtins.min(in_sp, default=1) <= 0:
        names = ("D", "H", "W")[-nd:]
        shown = [", ".join(f"{nm}: {v}" for nm, v in zip(names, sp)) for sp in (in_sp, out_sp)]
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input ({shown[0]})"
                           f"{' and' if nd == 1 else ''} output ({shown[1]})")
    if mode == "area":
        from . import pooling
        fn = {1: pooling.adaptive_avg_pool1d, 2: pooling.adaptive_avg_pool2d, 3: pooling.adaptive_avg_pool3d}[nd]
        return fn(input, out_sp)
    if a.dtype == np.uint8 and (mode.startswith("nearest") or mode == "bilinear"):
        return _wrap(_interpolate_uint8(a, mode, in_sp, out_sp, bool(align_corners), scales))
    _float_kernel(input, f"upsample_{mode.replace('-', '_')}{nd}d_out_frame")
    axes, weights = zip(*[_interp_axis(mode, n, o, bool(align_corners), sc)
                          for n, o, sc in zip(in_sp, out_sp, scales)])
    pattern, w = _combine(list(axes), in_sp, list(weights))
    if mode.startswith("nearest"):
        w = None
    lead, nplanes, plane = _planes(a, nd)
    return _apply(UPSAMPLE[f"{mode}{nd}"], input, nplanes, plane, pattern, w, lead + out_sp, adjoint=False)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


# ======================= samples =============================================================
for _f in (max_pool1d, max_pool2d, max_pool3d, avg_pool1d, avg_pool2d, avg_pool3d, adaptive_avg_pool1d,
           adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d, adaptive_max_pool2d,
           adaptive_max_pool3d, max_unpool1d, max_unpool2d, max_unpool3d, lp_pool1d, lp_pool2d, unfold, fold,
           pixel_shuffle, pixel_unshuffle, interpolate):
    _f.__module__ = "jitgrad.nn.functional"      # their public home, as torch.nn.functional's

samples(max_pool2d, ((2, 2, 5, 5), 2), ((1, 2, 6, 5), [3, 2], [2, 1], 1, 1, True), ((2, 5, 5), 3, 2, 1, 2))
samples(max_pool1d, ((2, 3, 7), 3, 2, 1))
samples(max_pool3d, ((1, 2, 4, 4, 4), 2, 1))
samples(avg_pool2d, ((2, 2, 5, 5), 2), ((1, 2, 6, 5), [3, 2], [2, 1], 1, True, False),
        ((2, 5, 5), 3, 2, 1, False, True, 2))
samples(avg_pool1d, ((2, 3, 7), 3, 2, 1, True))
samples(avg_pool3d, ((1, 1, 3, 3, 4), 2, 1, 1))
samples(adaptive_avg_pool2d, ((2, 2, 5, 7), [3, 2]))
samples(adaptive_avg_pool1d, ((2, 3, 7), 3))
samples(adaptive_avg_pool3d, ((1, 2, 4, 5, 3), 2))
samples(adaptive_max_pool2d, ((2, 2, 5, 7), [3, 2]))
samples(adaptive_max_pool1d, ((2, 3, 7), 3))
samples(adaptive_max_pool3d, ((1, 2, 4, 5, 3), 2))
_UNPOOL_IDX = _wrap(np.array([[[[0, 3], [9, 14]]]], np.int64))
samples(max_unpool2d, ((1, 1, 2, 2), _UNPOOL_IDX, 2))
samples(max_unpool1d, ((1, 2, 3), _wrap(np.array([[[0, 3, 4], [1, 2, 5]]], np.int64)), 2))
samples(max_unpool3d, ((1, 1, 1, 1, 2), _wrap(np.array([[[[[0, 13]]]]], np.int64)), 2))
samples(lp_pool2d, (Given(np.abs(np.random.default_rng(0).standard_normal((1, 2, 4, 4))) + 0.5), 2, 2),
        (Given(np.abs(np.random.default_rng(1).standard_normal((1, 1, 4, 5))) + 0.5), 3, [2, 3], 1))
samples(lp_pool1d, (Given(np.abs(np.random.default_rng(2).standard_normal((1, 2, 6))) + 0.5), 2, 3))
samples(unfold, ((2, 2, 5, 4), [2, 3]), ((1, 2, 5, 5), 3, 2, 1, 2), ((2, 4, 4), 2, 1, 0, 2))
samples(fold, ((2, 8, 12), [4, 5], 2), ((1, 18, 4), [5, 5], 3, 2, 1, 2))
samples(pixel_shuffle, ((2, 8, 2, 3), 2))
samples(pixel_unshuffle, ((2, 2, 4, 6), 2))
samples(interpolate, ((2, 2, 3, 4), None, 2.0), ((1, 2, 3, 4), [5, 7]),
        ((1, 2, 5), None, 1.5, "nearest-exact"), ((1, 2, 5), 8, None, "linear"),
        ((1, 2, 5), 8, None, "linear", True), ((1, 2, 3, 4), [5, 7], None, "bilinear"),
        ((1, 2, 4, 4), None, 0.7, "bilinear", True), ((1, 2, 3, 4), [5, 6], None, "bicubic"),
        ((1, 1, 4, 3), [6, 5], None, "bicubic", True), ((1, 1, 2, 3, 2), [3, 4, 3], None, "trilinear"),
        ((1, 2, 7, 5), [3, 2], None, "area"), ((1, 1, 2, 2, 3), None, 2, "nearest"),
        ((1, 2, 5), 7), ((1, 2, 3, 5), [4, 7], None, "nearest-exact"),
        ((1, 1, 2, 3, 2), None, [1.5, 2, 1.7], "nearest-exact"))
