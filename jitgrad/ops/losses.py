"""Softmax and log_softmax, and the losses built on them or on the shared rules: the pointwise
losses (mse, smooth_l1, huber, binary_cross_entropy[_with_logits]) save x and t for one kernel;
nll_loss scatters by saved positions; cross_entropy composes log_softmax and nll_loss.
nn.functional re-exports the losses as its own. The differentiable formulas are written from the
inputs and output, as PyTorch's derivatives; the constants they need (beta, delta, loss weights)
are saved after the rules' values.
"""
import builtins
import math
import warnings

import numpy as np

from .. import dtypes
from ..engine import codegen
from ..engine.loop import I0, I1, SHAPE_ID, numel
from ..engine.registry import defop
from ..engine.replay import (P_C, P_I0, P_K, P_I1, P_ROW, P_XSH, P_Y, P_YSH, expanded, needs,
                             nll_reduce, nll_terms, operand, pairwise_sum, reduce_dims, save_two,
                             softmax_along)
from ..tensor import Tensor, _check_dim, _wrap
from ._samples import Given, Pos, Unit, kinks, samples
from ._core import (_arr, _check_bcast, _check_tensor, _constant_arg, _float_kernel, _needs_grad, c_order, quiet,
                    record, torch_names)
from .elementwise import (DIV_SCALAR1, _float_input, abs, add, div, exp, log, log1p, maximum, mul,
                          neg, sigmoid, sub, where)
from .shape import reshape, to
from .indexing import _scatter, _with_count
from .reductions import _dim_along, mean, sum


# ======================= softmax family ======================================================
def _softmax(go, ga, gb, sv, iv, do, da, db, row):
    # y = softmax(x) along a dim of size I0 whose elements are I1 apart; saved: y
    n = row[I0]
    inner = row[I1]
    if ga.size == 0:
        return
    for o in range(ga.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            s = 0.0
            for k in range(n):
                s += go[base + k * inner] * sv[base + k * inner]
            for k in range(n):
                j = base + k * inner
                ga[j] += sv[j] * (go[j] - s)


def _log_softmax(go, ga, gb, sv, iv, do, da, db, row):
    # y = log_softmax(x) along a dim of size I0 whose elements are I1 apart; saved: y
    n = row[I0]
    inner = row[I1]
    if ga.size == 0:
        return
    for o in range(ga.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            s = 0.0
            for k in range(n):
                s += go[base + k * inner]
            for k in range(n):
                j = base + k * inner
                ga[j] += go[j] - np.exp(sv[j]) * s


def _along(t, node):
    """t summed along the row's softmax dim, kept (a 0-d t is its own sum)."""
    return t.sum(_dim_along(t.shape, node.i0, node.i1), keepdim=True) if t.dim() else t


# (they read out alone, as PyTorch's nodes save result alone: saves_reads, the row saves out)
def _softmax_back(g, out, node):
    return out * (g - _along(g * out, node))


def _log_softmax_back(g, out, node):
    return g - exp(out) * _along(g, node)


def _fwd_softmax(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    softmax_along(out, x, prog[j, P_I0], prog[j, P_I1], False)
    if s >= 0:
        sv[s: s + out.size] = out


def _fwd_log_softmax(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    softmax_along(out, x, prog[j, P_I0], prog[j, P_I1], True)
    if s >= 0:
        sv[s: s + out.size] = out


SOFTMAX = defop("SoftmaxBackward0", _softmax, forward=needs(_fwd_softmax, "x"), saves_reads=True, x=_softmax_back)
LOG_SOFTMAX = defop("LogSoftmaxBackward0", _log_softmax, forward=needs(_fwd_log_softmax, "x"), saves_reads=True,
                    x=_log_softmax_back)


def _softmax_core(x, dim, dtype, op, log):
    if dtype is not None:
        x = to(x, dtype)
    a = x._a
    if a.dtype.kind != "f":
        raise NotImplementedError(f'"{"log_" if log else ""}softmax_lastdim_kernel_impl" not '
                                  f"implemented for '{x.dtype.tensor_type[:-6]}'")
    d = _check_dim(dim, a.ndim)
    a1 = a.reshape(1) if a.ndim == 0 else a
    inner = 1
    for k in a1.shape[d + 1:]:
        inner *= k
    # the compiled replay's kernel, one call (numpy's six ufunc calls cost 25 us on a 64x10 batch)
    out = np.empty(a.shape, a.dtype)
    kernel = codegen.interpreter().softmax_along if a.dtype in (np.float32, np.float64) else softmax_along
    kernel(out.reshape(-1), np.ascontiguousarray(a1).reshape(-1), a1.shape[d], inner, log)
    return record(op, _arr(out), x, save_out=True, i0=a1.shape[d], i1=inner, broadcast=False)


@torch_names("softmax")
def softmax(x, dim, dtype=None):
    """Numerically stable softmax along dim."""
    return _softmax_core(x, dim, dtype, SOFTMAX, False)


@torch_names("log_softmax")
def log_softmax(x, dim, dtype=None):
    """Numerically stable log-softmax along dim."""
    return _softmax_core(x, dim, dtype, LOG_SOFTMAX, True)


for _f in (softmax, log_softmax):
    samples(_f, ((3,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 3), -1), ((), 0), ((2, 3, 2), 1),
            ((2, 3, 2), -1), ((1, 3), 0))
samples(log_softmax, (Given([[1e3, 0.0, -1e3], [-1e3, -1e3, 1e3]]), 1))
samples(softmax, (Given([[1e3, 0.0, -1e3], [-1e3, -1e3, 1e3]]), 1))


_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
_MEAN = 4      # I1 bit of a pointwise loss's row: its reduction is the mean


def _reduction(reduction, size_average=None, reduce=None):
    """The reduction code (0 none, 1 mean, 2 sum); the legacy size_average/reduce win, warning."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else ("mean" if size_average else "sum")
        warnings.warn("size_average and reduce args will be deprecated, please use "
                      f"reduction='{reduction}' instead.", UserWarning, stacklevel=3)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return _REDUCTIONS[reduction]


def _reduce(elem, red):
    if red == 0:
        return elem
    elem = c_order(elem)            # (the elements of strided inputs: summed in C order)
    with quiet():
        return (elem.mean() if red == 1 else elem.sum()).astype(elem.dtype)


def _pointwise_loss(op, input, target, red, fn, weights=(), consts=(), i1=0, tensors=()):
    """A loss computed elementwise on broadcast (input, target), then reduced.

    fn(x, t) returns the elementwise loss. The row saves what the formulas read: x and t (at
    the broadcast shape), then the constant weights (arrays, at that shape), then the Python
    floats consts; I1 holds the weights' bits (see _loss_weights), _MEAN and, from bit 3, the
    loss's kind (_pointwise_loss_rule); tensors: the weight tensors, for the forward kernels."""
    if input._a.dtype.kind != "f" and target._a.dtype.kind != "f":
        _float_kernel(input, _LOSS_KERNELS[op])
    x = _float_input(input)
    _check_bcast(x, target._a)
    dt = np.result_type(x.dtype, target._a.dtype) if target._a.dtype.kind == "f" else x.dtype
    xd, td = x.astype(dt, copy=False), target._a.astype(dt, copy=False)
    xb, tb = np.broadcast_arrays(xd, td)
    with quiet():
        elem = fn(xb, tb)
    out = _arr(_reduce(np.asarray(elem, dt), red))
    i1 |= _MEAN if red == 1 else 0
    if not _needs_grad(input, target):      # (recorded for compiled replay only: no row)
        return record(op, out, input, target, consts=consts, i0=1 if red else 0, i1=i1,
                      scalars=tuple(tensors))
    saves = [input if xd is input._a else xd, target if td is target._a else td]
    return record(op, out, input, target, saves=saves + [np.asarray(w, dt) for w in weights], consts=consts,
                  i0=1 if red else 0, i1=i1, vshape=xb.shape, scalars=tuple(tensors))


def _warn_size(input, target):
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size "
                      f"({input.shape}). This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", UserWarning,
                      stacklevel=3)


def _weighted(elem, weight, input, red):
    """PyTorch's weighted mse/l1: elementwise loss times weight, the mean dividing by sum(weight)."""
    if weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    w = mul(elem, weight)
    if red == 0:
        return w
    return sum(w) if red == 2 else div(sum(w), sum(weight))


# ======================= pointwise losses ========================================================
def _loss_scale(x, node):
    """The factor of a loss's reduction: 1 / n for the mean."""
    return 1.0 / builtins.max(x.numel(), 1) if node.i1 & _MEAN else 1.0


def _after_operands(x):
    """Where the formulas' constants start in node.saved: after x and t."""
    return 2 * x.numel()


def _loss_const(x, y, node, k=0):
    """The k-th Python float const a pointwise loss saved (after its weights)."""
    weights = (node.i1 & 1) + (node.i1 >> 1 & 1)
    return builtins.float(node.saved[_after_operands(x) + weights * x.numel() + k])


def _loss_weights(x, y, node):
    """The weights a loss saved, by I1 bit: 1 weight, 2 pos_weight (None: not given)."""
    at = _after_operands(x)
    found = []
    for bit in (1, 2):
        if node.i1 & bit:
            found.append(_wrap(np.array(node.saved[at: at + x.numel()]).reshape(x.shape)))
            at += x.numel()
        else:
            found.append(None)
    return found


def _mse_back(sign):
    return lambda g, x, y, node: (x - y) * (sign * 2.0 * _loss_scale(x, node)) * g


def _smooth_l1_slope(x, y, node):
    # PyTorch's smooth_l1_loss_backward: d / beta inside (-beta, beta), the sign outside
    beta = _loss_const(x, y, node)
    d = x - y
    return where(d >= beta, 1.0, where(d <= -beta, -1.0, d / beta))


def _huber_slope(x, y, node):
    delta = _loss_const(x, y, node)
    d = x - y
    return where(d >= delta, delta, where(d <= -delta, -delta, d))


def _slope_back(slope, sign):
    return lambda g, x, y, node: slope(x, y, node) * (sign * _loss_scale(x, node)) * g


def _weighted_back(f):
    """f's gradient times the loss's weight (if any) and the reduction's scale."""
    def back(g, x, y, node):
        w = _loss_weights(x, y, node)[0]
        r = f(x, y, node) * _loss_scale(x, node) * g
        return r if w is None else r * w
    return back


def _bce_x(x, y, node):
    return (x - y) / maximum(x * (1 - x), _wrap(np.asarray(1e-12, x._a.dtype)))


def _bce_y(x, y, node):
    return log1p(-x) - log(x)       # -logit(x)


def _bce_logits_x(x, y, node):
    pw = _loss_weights(x, y, node)[1]
    if pw is None:
        return sigmoid(x) - y
    t = pw * y
    return (t + 1 - y) * sigmoid(x) - t


def _log_sigmoid(x):
    """log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)): no overflow, its derivative sigmoid(-x)
    everywhere (0.5 at 0)."""
    ax = abs(x)
    return (x - ax) * 0.5 - log1p(exp(-ax))


def _bce_logits_y(x, y, node):
    pw = _loss_weights(x, y, node)[1]
    return -x if pw is None else _log_sigmoid(-x) - pw * _log_sigmoid(x)



_MSE, _SMOOTH_L1, _HUBER, _BCE, _BCE_LOGITS = range(5)      # a pointwise loss's kind, I1 >> 3


def _pointwise_loss_rule(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x, t (broadcast), then the weights (I1 & 1: weight, I1 & 2: pos_weight), then beta
    # or delta; I1 >> 3 the loss's kind (0 mse, 1 smooth_l1, 2 huber, 3 bce, 4 with logits).
    # I0 = 1: out is the reduction, so its gradient is one scalar for every element (I1 & 4: the
    # mean, scaled by 1 / size). PyTorch's derivatives (bce's logs clamped at -100, x (1 - x) at
    # 1e-12)
    red = rows[i, I0]
    flags = rows[i, I1]
    kind = flags >> 3
    m = numel(shapes, rows[va if a >= 0 else vb, SHAPE_ID]) if red else n
    scale = 1.0 / m if red and flags & 4 else 1.0
    w_at = s + 2 * m if flags & 1 else -1
    pw_at = s + (3 if flags & 1 else 2) * m if flags & 2 else -1
    c = sv[s + 2 * m] if kind == 1 or kind == 2 else 1.0
    for e in range(m):
        x = sv[s + e]
        t = sv[s + m + e]
        d = x - t
        dt = 0.0
        if kind == 0:
            dx = 2 * d
        elif kind == 1:     # d / beta inside (-beta, beta), sign(d) outside (nan passes)
            dx = d / c if np.abs(d) < c else (1.0 if d > 0 else (-1.0 if d < 0 else d))
        elif kind == 2:     # d clipped to [-delta, delta]
            dx = -c if d < -c else (c if d > c else d)
        elif kind == 3:
            q = x * (1 - x)
            dx = d / (q if q >= 1e-12 or q != q else 1e-12)
            if b >= 0:
                dt = max(np.log1p(-x), -100.0) - max(np.log(x), -100.0)
        else:                       # with logits: sigmoid(x) from exp(-|x|), which cannot overflow
            z = np.exp(-np.abs(x))
            sig = 1 / (1 + z) if x >= 0 else z / (1 + z)
            pw = sv[pw_at + e] if pw_at >= 0 else 1.0
            dx = ((pw - 1) * t + 1) * sig - pw * t
            if b >= 0:      # log sigmoid(x) = min(x, 0) - log1p(exp(-|x|))
                dt = -x - (pw - 1) * ((x if x <= 0 or x != x else 0.0) - np.log1p(z))
        if kind < 3:
            dt = -dx
        if w_at >= 0:
            dx *= sv[w_at + e]
            dt *= sv[w_at + e]
        go = g[o] if red else g[o + e]
        if a >= 0:
            g[a + e] += go * (dx * scale)
        if b >= 0:
            g[b + e] += go * (dt * scale)


def _fwd_mse_loss(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # as _pointwise_loss(_mse) for input and target of one shape: elem = (x - t)^2, reduced by
    # numpy's pairwise sum (I0 = 0: none; I1 & _MEAN: the mean); saves x, t
    n = x.size
    d = np.empty(n, out.dtype)
    for k in range(n):
        d[k] = x[k] - y[k]
    mean = prog[j, P_I1] & 4
    if prog[j, P_I0] == 0:
        for k in range(n):
            out[k] = d[k] * d[k]
    else:
        e = np.empty(n, out.dtype)
        for k in range(n):
            e[k] = d[k] * d[k]
        out[0] = pairwise_sum(e, 0, n) / n if mean else pairwise_sum(e, 0, n)
    if s >= 0:
        save_two(sv, s, x, y, True)


MSE_LOSS = defop("MseLossBackward0", _pointwise_loss_rule, 2, forward=needs(_fwd_mse_loss, "x,y,same"), saves_reads=True,
                 x=_mse_back(1), y=_mse_back(-1))


def _fwd_pointwise_loss(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # smooth_l1 (kind 1), huber (2) and binary_cross_entropy (3; I1 & 1: a weight, [slot, shape
    # id] in the int data), input and target of one shape, as _pointwise_loss: the elementwise
    # losses in the dtype as numpy computes them (beta or delta, cv[P_C], rounded to it as numpy
    # rounds a Python float operand), reduced by numpy's pairwise sum (I0 = 0: none; I1 & _MEAN:
    # the mean). Saves x, t, then the weight (broadcast to the input) or beta or delta
    n = x.size
    kind = prog[j, P_I1] >> 3
    one = out.dtype.type(1)
    half = one / (one + one)
    c = cv[prog[j, P_C]] if kind != 3 else one
    halfc = half * c
    floor = np.empty(1, out.dtype)      # bce's clamp of its logs at -100
    floor[0] = -100.0
    has_w = kind == 3 and prog[j, P_I1] & 1
    w = x[:0]
    if has_w:
        at = prog[j, P_K]
        w = expanded(operand(v, ext, pints[at], numel(shapes, pints[at + 1])), n, shapes,
                     pints[at + 1], prog[j, P_XSH])
    if kind == 3:
        for k in range(n):
            if not (x[k] >= 0 and x[k] <= 1):   # (nan too) eager raises: stop the replay
                pints[pints.size - 1] = j + 1
                return
    e = np.empty(n, out.dtype)
    for k in range(n):
        d = x[k] - y[k]
        ad = np.abs(d)
        if kind == 1:
            e[k] = half * d * d / c if ad < c else ad - halfc
        elif kind == 2:
            e[k] = half * d * d if ad < c else c * (ad - halfc)
        else:                   # bce: -(t log p + (1 - t) log(1 - p)), the logs clamped at -100
            p = x[k]
            t = y[k]
            lp = np.log(p)
            lp = lp if lp >= floor[0] or lp != lp else floor[0]
            l1p = np.log1p(-p)
            l1p = l1p if l1p >= floor[0] or l1p != l1p else floor[0]
            e[k] = -(w[k] if has_w else one) * (t * lp + (one - t) * l1p)
    if prog[j, P_I0] == 0:
        for k in range(n):
            out[k] = e[k]
    else:
        out[0] = pairwise_sum(e, 0, n) / n if prog[j, P_I1] & 4 else pairwise_sum(e, 0, n)
    if s >= 0:
        save_two(sv, s, x, y, True)
        if has_w:
            sv[s + n + n: s + 3 * n] = w
        if kind != 3:
            sv[s + n + n] = c


_BCE_RANGE = "all elements of input should be between 0 and 1"


def _bce_range_failure(x, y, i0, ints):
    """What the kernel met when it stopped a replay: bce's input outside [0, 1] (only bce stops)."""
    raise RuntimeError(_BCE_RANGE)


# (one kernel for the three: needs() sets its attributes, so each declares the same)
_POINTWISE_LOSS = needs(_fwd_pointwise_loss, "x,y,same,w", fails=_bce_range_failure)
SMOOTH_L1_LOSS = defop("SmoothL1LossBackward0", _pointwise_loss_rule, 2, forward=_POINTWISE_LOSS,
                       saves_reads=True, x=_slope_back(_smooth_l1_slope, 1), y=_slope_back(_smooth_l1_slope, -1))
HUBER_LOSS = defop("HuberLossBackward0", _pointwise_loss_rule, 2, forward=_POINTWISE_LOSS,
                   saves_reads=True, x=_slope_back(_huber_slope, 1), y=_slope_back(_huber_slope, -1))
BCE = defop("BinaryCrossEntropyBackward0", _pointwise_loss_rule, 2, forward=_POINTWISE_LOSS,
            saves_reads=True, x=_weighted_back(_bce_x), y=_weighted_back(_bce_y))

def _fwd_bce_logits(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # as binary_cross_entropy_with_logits, input and target of one shape, with weight (I1 & 1)
    # and pos_weight (I1 & 2) given as [slot, shape id] in the int data, broadcast to the input:
    # log_sig = min(x, 0) - log1p(exp(-|x|)), lw = (pw - 1) t + 1 (1 without pos_weight);
    # elem = w ((1 - t) x - lw log_sig), reduced as _pointwise_loss; saves x, t, then the
    # weights (constants typed as out's dtype: an untyped 1 would turn float32 arithmetic into
    # float64)
    n = x.size
    zero = out.dtype.type(0)
    one = out.dtype.type(1)
    has_w = prog[j, P_I1] & 1
    has_pw = prog[j, P_I1] & 2
    xs = prog[j, P_XSH]
    at = prog[j, P_K]
    w = x[:0]
    if has_w:
        w = expanded(operand(v, ext, pints[at], numel(shapes, pints[at + 1])), n, shapes,
                     pints[at + 1], xs)
        at += 2
    pw = x[:0]
    if has_pw:
        pw = expanded(operand(v, ext, pints[at], numel(shapes, pints[at + 1])), n, shapes,
                      pints[at + 1], xs)
    e = np.empty(n, out.dtype)
    for k in range(n):
        xk = x[k]
        t = y[k]
        m = xk if xk <= zero or xk != xk else zero       # np.minimum(x, 0): nan passes
        ls = m - np.log1p(np.exp(-np.abs(xk)))
        lw = (pw[k] - one) * t + one if has_pw else one
        e[k] = (one - t) * xk - lw * ls
        if has_w:
            e[k] = w[k] * e[k]
    if prog[j, P_I0] == 0:
        for k in range(n):
            out[k] = e[k]
    else:
        out[0] = pairwise_sum(e, 0, n) / n if prog[j, P_I1] & 4 else pairwise_sum(e, 0, n)
    if s >= 0:
        save_two(sv, s, x, y, True)
        s += n + n
        if has_w:
            sv[s: s + n] = w
            s += n
        if has_pw:
            sv[s: s + n] = pw


BCE_LOGITS = defop("BinaryCrossEntropyWithLogitsBackward0", _pointwise_loss_rule, 2,
                   forward=needs(_fwd_bce_logits, "x,y,same,w"), saves_reads=True, x=_weighted_back(_bce_logits_x),
                   y=_weighted_back(_bce_logits_y))
# PyTorch's kernel names, for its error on an integer input and target
_LOSS_KERNELS = {MSE_LOSS: "mse_cpu", SMOOTH_L1_LOSS: "smooth_l1_cpu", HUBER_LOSS: "huber_cpu",
                 BCE: "binary_cross_entropy", BCE_LOGITS: "log_sigmoid_cpu"}


def _mse(x, t):
    d = x - t
    return d * d


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _check_tensor(target, "target", 2, "mse_loss")
    red = _reduction(reduction, size_average, reduce)
    _warn_size(input, target)
    if weight is not None:
        return _weighted(_pointwise_loss(MSE_LOSS, input, target, 0, _mse), weight, input, red)
    return _pointwise_loss(MSE_LOSS, input, target, red, _mse)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """PyTorch composes it: |input - target| then the reduction (AbsBackward0, MeanBackward0)."""
    _check_tensor(target, "target", 2, "l1_loss")
    red = _reduction(reduction, size_average, reduce)
    _warn_size(input, target)
    elem = abs(sub(input, target))
    if weight is not None:
        return _weighted(elem, weight, input, red)
    return elem if red == 0 else (mean(elem) if red == 1 else sum(elem))


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    _check_tensor(target, "target", 2, "smooth_l1_loss")
    red = _reduction(reduction, size_average, reduce)
    _warn_size(input, target)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0.0:
        return l1_loss(input, target, reduction=reduction)

    def fn(x, t):
        d = x - t
        ad = np.abs(d)
        return np.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta)
    return _pointwise_loss(SMOOTH_L1_LOSS, input, target, red, fn, consts=(beta,), i1=_SMOOTH_L1 << 3)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    _check_tensor(target, "target", 2, "huber_loss")
    red = _reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _warn_size(input, target)

    def fn(x, t):
        d = x - t
        ad = np.abs(d)
        return np.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))
    if weight is not None:
        if weight.shape != input.shape:
            raise ValueError("Weights and input must have the same size.")
        w = mul(_pointwise_loss(HUBER_LOSS, input, target, 0, fn, consts=(delta,), i1=_HUBER << 3),
                weight)
        return w if red == 0 else (mean(w) if red == 1 else sum(w))
    return _pointwise_loss(HUBER_LOSS, input, target, red, fn, consts=(delta,), i1=_HUBER << 3)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    _check_tensor(target, "target", 2, "binary_cross_entropy")
    red = _reduction(reduction, size_average, reduce)
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same size.")
    _constant_arg("binary_cross_entropy", "weight", weight)
    if target._a.dtype != input._a.dtype and (input._a.dtype.kind == "f" or
                                              target._a.dtype.kind == "f"):
        raise RuntimeError(f"Found dtype {dtypes.scalar_name(target._a.dtype)} but expected "
                           f"{dtypes.scalar_name(input._a.dtype)}")
    x = input._a
    if x.size and not ((x >= 0) & (x <= 1)).all():
        raise RuntimeError(_BCE_RANGE)
    w = 1.0 if weight is None else np.broadcast_to(weight._a, np.broadcast_shapes(
        target._a.shape, weight._a.shape))

    def fn(p, t):
        lp = np.maximum(np.log(p), -100)
        l1p = np.maximum(np.log1p(-p), -100)
        return -w * (t * lp + (1 - t) * l1p)
    return _pointwise_loss(BCE, input, target, red, fn, weights=() if weight is None else (w,),
                           i1=(weight is not None) | _BCE << 3,
                           tensors=() if weight is None else (weight,))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    _check_tensor(target, "target", 2, "binary_cross_entropy_with_logits")
    red = _reduction(reduction, size_average, reduce)
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    _constant_arg("binary_cross_entropy_with_logits", "weight", weight)
    _constant_arg("binary_cross_entropy_with_logits", "pos_weight", pos_weight)
    w = 1.0 if weight is None else weight._a
    pw = None if pos_weight is None else pos_weight._a

    def fn(x, t):
        log_sig = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))        # log(sigmoid(x))
        lw = 1.0 if pw is None else (pw - 1) * t + 1
        return w * ((1 - t) * x - lw * log_sig)
    given = [v for v in (weight, pos_weight) if v is not None]
    return _pointwise_loss(BCE_LOGITS, input, target, red, fn, weights=[v._a for v in given],
                           i1=(weight is not None) | (pos_weight is not None) << 1 | _BCE_LOGITS << 3, tensors=given)


_REDS = ({}, {"reduction": "sum"}, {"reduction": "none"})
for _f in (mse_loss, l1_loss, smooth_l1_loss, huber_loss):
    samples(_f, ((3,), (3,)), ((2, 3), (2, 3), {"reduction": "sum"}),
            ((2, 3), (2, 3), {"reduction": "none"}), ((), ()), ((2, 3), (3,)))
samples(mse_loss, ((2, 3), (2, 3), None, None, "mean", Pos((2, 3))),
        ((2, 3), (2, 3), None, None, "none", Pos((2, 3))))
samples(l1_loss, ((2, 3), (2, 3), None, None, "sum", Pos((2, 3))))
samples(smooth_l1_loss, ((2, 3), (2, 3), {"beta": 0.5}), ((2, 3), (2, 3), {"beta": 0.0}))
samples(huber_loss, ((2, 3), (2, 3), {"delta": 0.5}))
samples(binary_cross_entropy, (Unit((3,)), Unit((3,))), (Unit((2, 3)), Unit((2, 3)), _REDS[1]),
        (Unit((2, 3)), Unit((2, 3)), _REDS[2]), (Unit(()), Unit(())))
_W23 = _wrap(np.array([[0.5, 1.0, 2.0], [1.5, 0.1, 1.0]]))
_PW = _wrap(np.array([0.3, 1.0, 4.0]))
samples(binary_cross_entropy_with_logits, ((3,), (3,)), ((2, 3), (2, 3), _REDS[1]),
        ((2, 3), Unit((2, 3)), _REDS[2]), ((), ()), ((2, 3), Unit((2, 3)), _W23),
        ((2, 3), Unit((2, 3)), None, None, None, "mean", _PW),
        ((2, 3), (2, 3), _W23, None, None, "none", _PW))
samples(binary_cross_entropy, (Unit((2, 3)), Unit((2, 3)), _W23),
        (Unit((2, 3)), Unit((2, 3)), _PW, None, None, "sum"))
kinks(smooth_l1_loss, (Given([0.0, 1.0, 2.0]), Given([0.0, 0.0, 1.0])))
kinks(l1_loss, (Given([0.0, 1.0, 2.0]), Given([0.0, 0.0, 1.0])))
kinks(huber_loss, (Given([0.0, 1.0, -2.0]), Given([0.0, 0.0, -1.0])),
      (Given([0.0, 0.5, 2.0]), Given([0.0, 0.0, 1.5]), {"delta": 0.5, "reduction": "sum"}))


# ======================= class-index losses ======================================================
def _nll_back(g, x, node):
    # -weight[target] * g (over the total weight for the mean) at each target's position, 0
    # elsewhere: linear in g. The int data holds the positions, node.saved their coefficients
    if not x.numel():
        return None
    count = node.ints[0]
    pos = node.ints[1:count + 1]
    coef = np.zeros(x.numel(), x._a.dtype)
    coef[pos] = node.saved[:count]
    hit = np.zeros(x.numel(), np.bool_)
    hit[pos] = True
    if not node.i0 & 1:     # one loss per target: its gradient is shared by the classes
        n = x.shape[0] if x.dim() > 1 else 1
        c = x.shape[1] if x.dim() > 1 else x.numel()
        g = g.reshape(n, 1, -1).expand(n, c, x.numel() // builtins.max(n * c, 1)).reshape(x.shape)
    return where(_wrap(hit.reshape(x.shape)), g * _wrap(coef.reshape(x.shape)), 0.0)


def _fwd_nll_loss(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # x: log-probabilities (n, c, spatial...) or (c,); the targets are int operand y (checked in
    # range by the replay); the int data: ignore_index, reduction (0 none, 1 mean, 2 sum), 1 if
    # a class weight follows (its slot, shape id). As nll_loss: losses = -w * x[pos] with w the
    # target's weight (1 without) times 0 where ignored; saved: the coefficients, the positions
    # (the row's int data)
    at = prog[j, P_Y]
    m = numel(shapes, prog[j, P_YSH])
    t = pints[at: at + m] if at >= 0 else span(iext[-at - 2], m, pints)  # noqa: F821 (codegen's)
    k0 = prog[j, P_K]
    ignore = pints[k0]
    red = pints[k0 + 1]
    xs = prog[j, P_XSH]
    c = shapes[xs + 1] if shapes[xs] == 1 else shapes[xs + 2]
    sp = m // shapes[xs + 1] if shapes[xs] > 1 and shapes[xs + 1] else 1   # positions per sample
    wc = operand(v, ext, pints[k0 + 3], c) if pints[k0 + 2] else x[:0]
    w, losses, pos, _ = nll_terms(x, t, wc, pints[k0 + 2] != 0, c, sp, ignore)   # (targets checked)
    nll_reduce(w, losses, red, out, sv[s: s + m] if s >= 0 else sv[:0])
    if s >= 0:
        at = rows[prog[j, P_ROW], I1]
        bints[at] = m
        for k in range(m):
            bints[at + 1 + k] = pos[k]


NLL_LOSS = defop("NllLossBackward0", _scatter, 1, forward=needs(_fwd_nll_loss, "x,yi,cc,w"), x=_nll_back)
NLL_LOSS2D = defop("NllLoss2DBackward0", _scatter, 1, forward=needs(_fwd_nll_loss, "x,yi,cc,w"), x=_nll_back)     # inputs with spatial dims


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    _check_tensor(target, "target", 2, "nll_loss")
    red = _reduction(reduction, size_average, reduce)
    a, t = input._a, target._a
    if a.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {a.ndim})")
    if a.ndim == 1:
        if t.ndim > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if t.ndim == 1:
            if t.shape[0] != 1:
                raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: "
                                 f"{t.shape[0]}")
            t = t.reshape(())       # PyTorch: one class index for one unbatched input
        n, c, s = 1, a.shape[0], 1
    else:
        n, c = a.shape[0], a.shape[1]
        if t.ndim == 0 or t.shape[0] != n:
            raise ValueError(f"Expected input batch_size ({n}) to match target batch_size "
                             f"({t.shape[0] if t.ndim else 0}).")
        if a.ndim == 2 and t.ndim != 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if t.shape[1:] != a.shape[2:]:
            raise RuntimeError(f"Expected target size {[n] + list(a.shape[2:])}, got "
                               f"{list(t.shape)}")
        s = 1
        for k in a.shape[2:]:
            s *= k
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{target.dtype.tensor_type[:-6]}")
    _constant_arg("nll_loss_forward", "weight", weight)
    if weight is not None and weight._a.shape != (c,):
        raise RuntimeError(f"weight tensor should be defined either for all {c} classes or no "
                           f"classes but got weight tensor of shape: {list(weight._a.shape)}")
    if weight is not None and weight._a.dtype != a.dtype:
        raise RuntimeError(f"expected scalar type {input.dtype.tensor_type[:-6]} but found "
                           f"{weight.dtype.tensor_type[:-6]}")
    tf = t.reshape(-1).astype(np.int64, copy=False)
    # the replay's kernel, one compiled pass (float16: as Python)
    terms = codegen.interpreter().nll_terms if a.dtype in (np.float32, np.float64) else nll_terms
    w, losses, pos, bad = terms(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(tf),
                                a[:0].reshape(-1) if weight is None else weight._a, weight is not None,
                                c, s, builtins.int(ignore_index))
    if bad >= 0:
        raise IndexError(f"Target {tf[bad]} is out of bounds.")
    with quiet():
        total = w.sum()
        if red == 0:
            out = losses.reshape(t.shape)
        elif red == 2:
            out = losses.sum()
        else:
            out = losses.sum() / total
        coef = -w if red != 1 else np.where(w != 0, -w / total, 0)
    out = _arr(np.asarray(out, a.dtype))
    spatial = a.ndim > 2
    # (compiled replay reads the targets, ignore_index, the reduction and the weight)
    replay = dict(y=target, scalars=(ignore_index, red, 0) if weight is None else
                  (ignore_index, red, 1, weight)) if t.dtype == np.int64 else {}
    if not _needs_grad(input):
        return record(NLL_LOSS2D if spatial else NLL_LOSS, out, input, **replay) if replay else _wrap(out)
    view = spatial and red == 0 and a.ndim != 4     # PyTorch runs these as 4-d, then views back
    r = record(NLL_LOSS2D if spatial else NLL_LOSS, out.reshape(n, -1) if view else out, input,
               saves=[coef.astype(a.dtype)], ints=_with_count(pos), i0=(1 if red else 0) | 2,
               broadcast=False, **replay)
    return reshape(r, t.shape) if view else r


# ---- cross_entropy's label-smoothing term: -sum over classes, 0 where the target is ignored
def _spread_classes(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # out (lead, sp) = sum over the classes of x (lead, c, sp) times a per-position coefficient
    # (saved, lead * sp of them); I1 = c | sp << 32; I0 bit 0: out is one scalar (reduced)
    red = rows[i, I0] & 1
    c = rows[i, I1] & 0xFFFFFFFF
    sp = rows[i, I1] >> 32
    total = numel(shapes, rows[va, SHAPE_ID])
    lead = total // (c * sp) if c * sp else 0
    for q in range(lead):
        for r in range(sp):
            e = q * sp + r
            gv = g[o if red else o + e] * sv[s + e]
            for cc in range(c):
                g[a + (q * c + cc) * sp + r] += gv


def _spread_classes_back(g, x, node):
    c = node.i1 & 0xFFFFFFFF
    sp = node.i1 >> 32
    lead = x.numel() // builtins.max(c * sp, 1)
    coef = _wrap(np.array(node.saved[:lead * sp]).reshape(lead, 1, sp))
    per = g if node.i0 & 1 else g.reshape(lead, 1, sp)
    return (per * coef).expand(lead, c, sp).reshape(x.shape)


def _fwd_label_smoothing(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # x: the log-probabilities (times the class weights) (n, c, spatial...) or (c,); the targets
    # are int operand y; the int data: ignore_index, reduction (0 none, 1 mean, 2 sum), 1 if the
    # class weight follows (its slot, shape id: the mean divides by the targets' total weight).
    # As _label_smoothing: -(x summed over the classes in numpy's order), 0 where ignored, then
    # reduced; saved: the coefficients (-1, or -1 / total for the mean; 0 where ignored)
    at = prog[j, P_Y]
    m = numel(shapes, prog[j, P_YSH])
    t = pints[at: at + m] if at >= 0 else span(iext[-at - 2], m, pints)  # noqa: F821 (codegen's)
    k0 = prog[j, P_K]
    ignore = pints[k0]
    red = pints[k0 + 1]
    xs = prog[j, P_XSH]
    c = shapes[xs + 1] if shapes[xs] == 1 else shapes[xs + 2]
    zero = out.dtype.type(0)
    one = out.dtype.type(1)
    sums = np.empty(m, out.dtype)
    reduce_dims(sums, x, shapes, xs, 1 if shapes[xs] == 1 else 2, False)
    w = np.empty(m, out.dtype)          # the weight of each target (0 where ignored)
    masked = np.empty(m, out.dtype)
    wc = sums[:0]
    if pints[k0 + 2]:
        wc = operand(v, ext, pints[k0 + 3], c)
    for k in range(m):
        valid = t[k] != ignore
        masked[k] = -sums[k] if valid else zero
        if pints[k0 + 2]:
            w[k] = wc[t[k] if valid else 0] * (one if valid else zero)
        else:
            w[k] = one if valid else zero
    total = pairwise_sum(w, 0, m)
    if red == 0:
        for k in range(m):
            out[k] = masked[k]
    elif red == 2:
        out[0] = pairwise_sum(masked, 0, m)
    else:
        out[0] = pairwise_sum(masked, 0, m) / total
    if s >= 0:
        for k in range(m):
            valid = t[k] != ignore
            sv[s + k] = (-one / total if red == 1 else -one) if valid else zero


# grad_fn names as PyTorch's last node of the term: masked_fill_, then sum() or sum() / total
LABEL_SMOOTHING = defop("MaskedFillBackward0", _spread_classes, 1,
                        forward=needs(_fwd_label_smoothing, "x,yi,cc,w"), x=_spread_classes_back)
LABEL_SMOOTHING_SUM = defop("SumBackward0", _spread_classes, 1,
                            forward=needs(_fwd_label_smoothing, "x,yi,cc,w"), x=_spread_classes_back)
LABEL_SMOOTHING_MEAN = defop("DivBackward0", _spread_classes, 1,
                             forward=needs(_fwd_label_smoothing, "x,yi,cc,w"), x=_spread_classes_back)


def _label_smoothing(prod, target, weight, ignore_index, red, cdim):
    """cross_entropy's smoothing term from prod = log-probabilities (times the class weights):
    -prod summed over the classes, 0 where the target is ignore_index, reduced (the mean over the
    targets' total weight) as PyTorch's cross_entropy_loss_label_smoothing."""
    a, t = prod._a, target._a
    valid = t != ignore_index
    with quiet():
        masked = np.where(valid, -a.sum(axis=cdim), 0).astype(a.dtype)
        if weight is None:
            total = np.asarray(valid.sum(), a.dtype)
        else:
            total = (weight._a[np.where(valid, t, 0).astype(np.int64)] * valid).sum()
        if red == 0:
            out = masked
        elif red == 2:
            out = masked.sum()
        else:
            out = masked.sum() / total
        coef = np.where(valid, -a.dtype.type(1) / total if red == 1 else -1, 0).astype(a.dtype)
    out = _arr(np.asarray(out, a.dtype))
    c = a.shape[cdim] if a.ndim else 1
    sp = builtins.int(math.prod(a.shape[cdim + 1:]))
    op = (LABEL_SMOOTHING, LABEL_SMOOTHING_MEAN, LABEL_SMOOTHING_SUM)[red]
    replay = dict(y=target, scalars=(ignore_index, red, 0) if weight is None else
                  (ignore_index, red, 1, weight)) if t.dtype == np.int64 else {}
    if not _needs_grad(prod):
        return record(op, out, prod, **replay) if replay else _wrap(out)
    return record(op, out, prod, saves=[coef.reshape(-1)], i0=1 if red else 0, i1=c | sp << 32,
                  broadcast=False, **replay)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """log_softmax over the class dim, then nll_loss (class indices) or a soft-target sum."""
    if (weight is None and label_smoothing == 0.0 and size_average is None and reduce is None
            and type(reduction) is str and isinstance(input, Tensor) and isinstance(target, Tensor)):
        a, t = input._a, target._a
        if (a.ndim == 2 and t.ndim == 1 and t.dtype == np.int64 and a.dtype in _ROWS_DTYPES
                and a.size and t.shape[0] == a.shape[0] and reduction in _REDUCTIONS):
            return _cross_entropy_rows(input, target, a, t, ignore_index, _REDUCTIONS[reduction])
    _check_tensor(target, "target", 2, "cross_entropy")
    red = _reduction(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    cdim = 1 if input._a.ndim >= 2 else 0
    logp = log_softmax(input, cdim)
    c = input._a.shape[cdim] if input._a.ndim else 1
    if target._a.shape == input._a.shape:       # PyTorch: same shape means class probabilities
        if target._a.dtype.kind != "f":
            raise RuntimeError("Expected floating point type for target with class probabilities, "
                               f"got {target.dtype.tensor_type[:-6]}")
        return _soft_cross_entropy(logp, target, weight, red, label_smoothing, cdim, c)
    # the reduction as resolved from the legacy size_average/reduce, if given
    nll = nll_loss(logp, target, weight, None, ignore_index, None, ("none", "mean", "sum")[red])
    if label_smoothing == 0.0:
        return nll
    wshape = [1] * logp._a.ndim
    wshape[cdim] = c
    prod = logp if weight is None else mul(logp, reshape(weight, wshape))
    smooth = _label_smoothing(prod, target, weight, ignore_index, red, cdim)
    return add(mul(nll, 1 - label_smoothing), mul(smooth, label_smoothing / c))


_ROWS_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _cross_entropy_rows(input, target, a, t, ignore_index, red):
    """cross_entropy's common case, an (n, c) batch of logits and n class indices without weights
    or smoothing: the rows log_softmax and nll_loss record, with their values, from one compiled
    call (the general path's checks, two calls and numpy's small ops cost a 64x10 batch ~40 us,
    twice torch's whole cross_entropy)."""
    n, c = a.shape
    logp = np.empty((n, c), a.dtype)
    coef = np.empty(n, a.dtype)
    ints = np.empty(n + 1, np.int64)        # (_with_count's layout)
    out = np.empty(n if red == 0 else (), a.dtype)
    bad = codegen.interpreter().cross_entropy_rows(
        (a if a.flags.c_contiguous else np.ascontiguousarray(a)).reshape(-1),
        t if t.flags.c_contiguous else np.ascontiguousarray(t), builtins.int(ignore_index), red,
        logp.reshape(-1), coef, ints, out.reshape(-1))
    if bad >= 0:
        raise IndexError(f"Target {t[bad]} is out of bounds.")
    lp = record(LOG_SOFTMAX, logp, input, save_out=True, i0=c, i1=1, broadcast=False)
    scalars = (ignore_index, red, 0)        # (what compiled replay reads, as nll_loss's)
    if not lp._rg:
        return record(NLL_LOSS, out, lp, y=target, scalars=scalars)
    return record(NLL_LOSS, out, lp, y=target, saves=[coef], ints=ints, i0=(1 if red else 0) | 2,
                  broadcast=False, scalars=scalars)


def _soft_cross_entropy(logp, target, weight, red, ls, cdim, c):
    """Cross-entropy against class probabilities, composed as PyTorch does."""
    if target.shape != logp.shape:
        raise RuntimeError(f"Expected target size {list(logp.shape)}, got {list(target.shape)}")
    if ls > 0:
        target = add(mul(target, 1 - ls), ls / c)
    prod = mul(logp, target)
    if weight is not None:
        wshape = [1] * logp._a.ndim
        wshape[cdim] = c
        prod = mul(prod, reshape(weight, wshape))
    loss = neg(sum(prod, cdim))
    if red == 0:
        return loss
    if red == 2:
        return sum(loss)
    total = sum(loss)
    n = logp._a.size // c
    return record(DIV_SCALAR1, _arr(total._a / total._a.dtype.type(n)), total,
                  consts=(builtins.float(n),))


_T3 = _wrap(np.array([0, 2, 1], np.int64))
_TGT = _wrap(np.array([[0, 1], [2, -100]], np.int64))
_W3 = _wrap(np.array([0.2, 1.0, 3.0]))
for _f in (nll_loss, cross_entropy):
    samples(_f, ((3, 3), _T3), ((3, 3), _T3, {"reduction": "sum"}),
            ((3, 3), _T3, {"reduction": "none"}), ((3, 3), _T3, {"weight": _W3}),
            ((3, 3), _T3, {"weight": _W3, "reduction": "sum"}),
            ((3, 3), _T3, {"ignore_index": 2}), ((3,), _wrap(np.array(1))),
            ((2, 3, 2), _TGT), ((2, 3, 2), _TGT, {"reduction": "none", "weight": _W3}),
            ((3, 3), _T3, {"weight": _W3, "reduction": "none", "ignore_index": 0}))
samples(cross_entropy, ((3, 3), _T3, {"label_smoothing": 0.1}),
        ((3, 3), _T3, {"label_smoothing": 0.2, "weight": _W3, "ignore_index": 1}),
        ((2, 3, 2), _TGT, {"label_smoothing": 0.3, "reduction": "sum"}),
        ((2, 3, 2), _TGT, {"label_smoothing": 0.3, "reduction": "none"}),
        ((3, 3), Unit((3, 3))), ((3, 3), Unit((3, 3)), {"label_smoothing": 0.1, "weight": _W3}),
        ((3, 3), Unit((3, 3)), {"reduction": "none"}))
_TGT4 = _wrap(np.array([[[0, 1], [2, 2]], [[1, -100], [0, 1]]], np.int64))
samples(nll_loss, ((2, 3, 2, 2), _TGT4, {"reduction": "none"}), ((2, 3, 2, 2), _TGT4, {"weight": _W3}))
