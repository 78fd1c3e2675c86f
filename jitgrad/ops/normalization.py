"""Layer normalization as one op (PyTorch's native_layer_norm: one NativeLayerNormBackward0 node
for the input, weight and bias), instead of a chain of mean, sub, mul, rsqrt nodes."""
import numpy as np

from ..engine.loop import I0
from ..engine.registry import defop
from ..engine.replay import P_C, P_GRADS, P_I0, P_K, P_OSH, by_role, needs, pairwise_sum
from ._core import _needs_grad, c_order, quiet, record_multi
from ._samples import samples


def _layer_norm(go, ga, gb, sv, iv, do, da, db, row):
    # multi-input: role iv[1] 0 input, 1 weight, 2 bias; out = xhat * w + b over rows of m
    # elements (the normalized dims). saved: eps, rstd (one per row), xhat, then the weight
    # when the input needs a gradient (its offset is the input's param iv[2], -1: no weight).
    role = iv[1]
    m = 1
    for d in range(do.shape[0] - row[I0], do.shape[0]):         # I0: how many dims are normalized
        m *= do[d]
    rows = go.size // m if m else 0
    rstd = sv[1: 1 + rows]
    xhat = sv[1 + rows: 1 + rows + rows * m]
    if role == 1 or role == 2:
        for i in range(rows):
            for j in range(m):
                k = i * m + j
                ga[j] += go[k] * xhat[k] if role == 1 else go[k]
        return
    woff = iv[2]
    for i in range(rows):
        a = 0.0
        b = 0.0
        for j in range(m):
            k = i * m + j
            gw = go[k] * sv[woff + j] if woff >= 0 else go[k]
            a += gw
            b += gw * xhat[k]
        a /= m
        b /= m
        r = rstd[i]
        for j in range(m):
            k = i * m + j
            gw = go[k] * sv[woff + j] if woff >= 0 else go[k]
            ga[k] += r * (gw - a - xhat[k] * b)


def _stats(x, ndims, eps):
    """xhat and rstd from x in jitgrad ops (so the formulas differentiate through them)."""
    dims = tuple(range(x.dim() - ndims, x.dim()))
    centred = x - x.mean(dims, keepdim=True)
    rstd = ((centred * centred).mean(dims, keepdim=True) + eps).rsqrt()
    return centred * rstd, rstd, dims


def _layer_norm_grad(g, role, inputs, node):
    """derivatives.yaml's native_layer_norm_backward, written in jitgrad ops."""
    x, w = inputs[0], inputs.get(1)
    ndims, eps = node.i0, float(node.saved[0])
    lead = tuple(range(g.dim() - ndims))
    if role == 2:
        return g.sum(lead) if lead else g
    xhat, rstd, dims = _stats(x, ndims, eps)
    if role == 1:
        return (g * xhat).sum(lead) if lead else g * xhat
    gw = g * w if w is not None else g
    return rstd * (gw - gw.mean(dims, keepdim=True) - xhat * (gw * xhat).mean(dims, keepdim=True))


def _fwd_layer_norm(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # inputs by role in the int data (0 input, 1 weight, 2 bias), I0 the number of normalized
    # dims, eps the scalar. As layer_norm, per row of m elements: mean and variance by numpy's
    # pairwise sums, rstd = 1 / sqrt(var + eps), xhat = (x - mean) * rstd, out = xhat * w + b.
    # saves: eps, rstd, xhat, then the weight if the input needs a gradient
    xa = by_role(v, ext, pints, prog[j, P_K], shapes, 0)[0]
    w = by_role(v, ext, pints, prog[j, P_K], shapes, 1)[0]
    bias = by_role(v, ext, pints, prog[j, P_K], shapes, 2)[0]
    osh = prog[j, P_OSH]
    m = 1
    for d in range(shapes[osh] - prog[j, P_I0], shapes[osh]):
        m *= shapes[osh + 1 + d]
    nrows = out.size // m if m else 0
    eps = cv[prog[j, P_C]]
    centred = np.empty(m, out.dtype)
    stat = np.empty(2, out.dtype)      # numpy rounds each statistic to the dtype: so do we
    rec = s >= 0
    for r in range(nrows):
        stat[0] = pairwise_sum(xa, r * m, m) / m
        mean = stat[0]
        for e in range(m):
            centred[e] = xa[r * m + e] - mean
        for e in range(m):
            out[r * m + e] = centred[e] * centred[e]
        stat[1] = pairwise_sum(out, r * m, m) / m
        stat[1] = 1 / np.sqrt(stat[1] + eps)
        rstd = stat[1]
        if rec:
            sv[s + 1 + r] = rstd
        for e in range(m):
            xhat = centred[e] * rstd
            if rec:
                sv[s + 1 + nrows + r * m + e] = xhat
            if w.size:
                xhat = xhat * w[e]
            if bias.size:
                xhat = xhat + bias[e]
            out[r * m + e] = xhat
    if rec:
        sv[s] = eps
        if prog[j, P_GRADS] & 1 and w.size:
            sv[s + 1 + nrows + nrows * m: s + 1 + nrows + nrows * m + m] = w


LAYER_NORM = defop("NativeLayerNormBackward0", _layer_norm, 3, forward=needs(_fwd_layer_norm, "multi,c"),
                   each=_layer_norm_grad)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing dims (arguments checked by
    nn.functional.layer_norm)."""
    a = c_order(input._a)          # (summed in C order, as a replay)
    nd = len(normalized_shape)
    axes = tuple(range(a.ndim - nd, a.ndim))
    with quiet():
        mean = a.mean(axes, keepdims=True)
        centred = a - mean
        rstd = 1 / np.sqrt((centred * centred).mean(axes, keepdims=True) + a.dtype.type(eps))
        xhat = centred * rstd
    out = xhat
    if weight is not None:
        out = out * weight._a
    if bias is not None:
        out = out + bias._a
    out = np.ascontiguousarray(out, a.dtype)
    affine = ([(weight, 1, 0)] if weight is not None else []) + ([(bias, 2, 0)] if bias is not None else [])
    if not _needs_grad(input, weight, bias):      # (recorded for compiled replay only: no row)
        return record_multi(LAYER_NORM, out, [(input, 0, -1)] + affine, i0=nd, scalars=(eps,))
    saves = [np.array([eps], a.dtype), rstd.reshape(-1), xhat.reshape(-1)]
    woff = -1
    if input._rg and weight is not None:
        woff = 1 + rstd.size + xhat.size
        saves.append(weight)
    return record_multi(LAYER_NORM, out, [(input, 0, woff)] + affine, saves=saves, i0=nd, scalars=(eps,))


layer_norm.__module__ = "jitgrad.nn.functional"      # its public home (torch_fn finds torch's there)
samples(layer_norm, ((2, 3, 4), [4], (4,), (4,)), ((3, 2, 5), [2, 5], (2, 5), None),
        ((2, 6), [6], (6,), (6,), 1e-3), ((4,), [4]))  # (torch has no double backward with bias alone)
