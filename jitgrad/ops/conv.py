"""Convolutions, 1-d to 3-d, and their transposes: one N-d implementation (1-d and 2-d are 3-d
with unit dims) through BLAS, im2col + matmul (a direct loop for few output channels).

Both are one relation between an image-side tensor (spatial size S, C_img channels) and a
column-side tensor (L window positions, C_col channels) through a weight (C_col, C_img / groups,
*k): per group, col = W @ im2col(img). A convolution computes col from img (x is the image); a
transposed convolution computes img = col2im(W^T @ col) (x is the column side). The backward of
one is the forward of the other, so one kernel, _conv, replays both; the formulas (what
create_graph records) are the same relation written with unfold/fold rows and matmul.
"""
import builtins
import math

import numpy as np
from numba import config

from .. import dtypes
from ..engine import codegen
from ..engine.blas import gemm
from ..engine.registry import defop
from ..engine.replay import P_C, P_GRADS, P_K, by_role, conv_dims, conv_forward, im2col, needs
from ..tensor import Tensor
from ._core import _arr, _needs_grad, record_multi
from ._samples import samples
from .linalg import matmul
from .pooling import COL2IM, IM2COL, _apply, _im2col_pattern
from .reductions import sum
from .shape import reshape, squeeze, transpose, unsqueeze

_NGEO = 23                 # geometry values saved at a row's start, each as two floats (see _geometry)
_SPLIT = 1 << 20


def _conv(go, ga, gb, sv, iv, do, da, db, row):
    # multi-input: role iv[1] 0 input, 1 weight, 2 bias; iv[2]: where in sv the factor this role
    # multiplies by starts (the weight for the input, the input for the weight). sv starts with
    # the geometry, 23 ints saved as hi * 2^20 + lo floats: transposed, groups, N, C_img, C_col,
    # image dims (3), column dims (3), kernel (3), stride (3), padding (3), dilation (3).
    # One sample at a time: its im2col columns (C_img/G * K, L) stay in cache.
    geo = np.empty(23, np.int64)
    for j in range(23):
        geo[j] = np.int64(sv[2 * j]) * 1048576 + np.int64(sv[2 * j + 1])
    g = conv_dims(geo)
    tr, grp, nb, ci, cc = g[0], g[1], g[2], g[3], g[4]
    role = iv[1]
    off = iv[2]
    ns = g[5] * g[6] * g[7]
    nl = g[8] * g[9] * g[10]
    cig = ci // grp
    ccg = cc // grp
    rows = cig * g[11] * g[12] * g[13]
    if role == 2:                       # bias: the output's gradient summed over batch and space
        ch = ci if tr else cc
        per = ns if tr else nl
        for n in range(nb):
            for c in range(ch):
                acc = 0.0
                base = (n * ch + c) * per
                for j in range(per):
                    acc += go[np.uint64(base + j)]
                ga[c] += acc
        return
    scatter = tr == 0 and role == 0     # convolution's input: col2im(W^T @ go)
    for gr in range(grp):
        wat = off + gr * ccg * rows                   # the group's weight in sv (input's role)
        cols = np.zeros(rows * nl, go.dtype)     # one sample's im2col columns, or W^T @ go (never
                                                 # rebound: LLVM then keeps the gather loop tight)
        img = go if tr else sv[off: off + nb * ci * ns]
        for n in range(nb):
            colat = (n * cc + gr * ccg) * nl          # this sample's group in the column-side tensor
            imgat = (n * ci + gr * cig) * ns          # ... and in the image-side tensor
            if scatter:                               # col2im(W^T (rows, ccg) @ go (ccg, nl))
                gemm(True, False, rows, nl, ccg, 1.0, sv, wat, go, colat, 0.0, cols, 0)
                im2col(cols, ga, imgat, g, True)
                continue
            im2col(cols, img, imgat, g, False)
            if role == 1:             # weight (ccg, rows) += (column side) (ccg, nl) @ columns^T
                if tr:
                    gemm(False, True, ccg, rows, nl, 1.0, sv, off + colat, cols, 0, 1.0, ga, gr * ccg * rows)
                else:
                    gemm(False, True, ccg, rows, nl, 1.0, go, colat, cols, 0, 1.0, ga, gr * ccg * rows)
            else:                     # transposed convolution's input += W @ im2col(go)
                gemm(False, False, ccg, nl, rows, 1.0, sv, wat, cols, 0, 1.0, ga, colat)


# ---- geometry ---------------------------------------------------------------------------------
class _Geo:
    """A convolution's shapes, everything padded to 3 spatial dims with unit sizes."""
    __slots__ = ("tr", "groups", "n", "c_img", "c_col", "img", "col", "k", "s", "p", "d", "nd")

    def __init__(self, tr, groups, n, c_img, c_col, img, col, k, s, p, d):
        self.nd = len(img)
        pad3 = lambda v, fill: tuple(v) + (fill,) * (3 - len(v))       # noqa: E731
        self.tr, self.groups, self.n, self.c_img, self.c_col = tr, groups, n, c_img, c_col
        self.img, self.col, self.k = pad3(img, 1), pad3(col, 1), pad3(k, 1)
        self.s, self.p, self.d = pad3(s, 1), pad3(p, 0), pad3(d, 1)

    def values(self):
        return (self.tr, self.groups, self.n, self.c_img, self.c_col) + self.img + self.col + self.k + \
            self.s + self.p + self.d

    def encode(self, dtype):
        v = np.array(self.values(), np.int64)
        return np.stack((v // _SPLIT, v % _SPLIT), 1).reshape(-1).astype(dtype)

    @classmethod
    def decode(cls, saved, nd):
        v = [builtins.int(saved[2 * j]) * _SPLIT + builtins.int(saved[2 * j + 1]) for j in range(_NGEO)]
        g = cls(v[0], v[1], v[2], v[3], v[4], v[5:5 + nd], v[8:8 + nd], v[11:11 + nd], v[14:14 + nd],
                v[17:17 + nd], v[20:20 + nd])
        return g

    def sp(self, t):
        return t[:self.nd]

    def kk(self):
        return int(math.prod(self.k))


def _im2col(img, g):
    """(N, C_img, *img) -> (N, C_img * K, L), recorded as an unfold row (differentiable)."""
    pos = _im2col_pattern(g.c_img, g.sp(g.img), g.sp(g.col), g.sp(g.k), g.sp(g.s), g.sp(g.p), g.sp(g.d))
    n = img.shape[0]
    return _apply(IM2COL, img, n, g.c_img * int(math.prod(g.img)), pos, None,
                  (n, g.c_img * g.kk(), int(math.prod(g.col))), adjoint=False)


def _col2im(cols, g):
    pos = _im2col_pattern(g.c_img, g.sp(g.img), g.sp(g.col), g.sp(g.k), g.sp(g.s), g.sp(g.p), g.sp(g.d))
    n = cols.shape[0]
    return _apply(COL2IM, cols, n, g.c_img * int(math.prod(g.img)), pos, None,
                  (n, g.c_img) + g.sp(g.img), adjoint=True)


def _grouped(t, g, c):
    """(N, C, ...) -> (N, G, C / G, L)."""
    return reshape(t, t.shape[0], g.groups, c // g.groups, -1)


def _conv_grad(g, role, inputs, node):
    """The gradient of one input of a convolution row, in jitgrad ops (so differentiable)."""
    x, w = inputs[0], inputs[1]
    geo = _Geo.decode(node.saved, x.dim() - 2)
    nb, grp = geo.n, geo.groups
    if role == 2:
        return sum(g, (0,) + tuple(range(2, g.dim())))
    wg = reshape(w, grp, geo.c_col // grp, -1)                           # (G, Ccg, Cig K)
    if not geo.tr:
        if role == 0:                                                    # col2im(W^T @ g)
            cols = matmul(transpose(wg, 1, 2), _grouped(g, geo, geo.c_col))
            return _col2im(reshape(cols, nb, geo.c_img * geo.kk(), -1), geo)
        cols = reshape(_im2col(x, geo), nb, grp, -1, int(math.prod(geo.col)))
        gw = sum(matmul(_grouped(g, geo, geo.c_col), transpose(cols, 2, 3)), 0)
        return reshape(gw, tuple(w.shape))
    cols = reshape(_im2col(g, geo), nb, grp, -1, int(math.prod(geo.col)))
    if role == 0:                                                        # W @ im2col(g)
        return reshape(matmul(wg, cols), tuple(x.shape))
    gw = sum(matmul(_grouped(x, geo, geo.c_col), transpose(cols, 2, 3)), 0)
    return reshape(gw, tuple(w.shape))


def _fwd_conv(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # the inputs by role in the int data (0 input, 1 weight, 2 bias), the geometry (_Geo's 23
    # values) the scalars; computed by replay.conv_forward, which the eager forward runs too.
    # saves: the geometry as hi/lo pairs, the weight if the input needs a gradient, the input if
    # the weight does (as _record)
    img = by_role(v, ext, pints, prog[j, P_K], shapes, 0)[0]
    w = by_role(v, ext, pints, prog[j, P_K], shapes, 1)[0]
    bias = by_role(v, ext, pints, prog[j, P_K], shapes, 2)[0]
    geo = np.empty(23, np.int64)
    for q in range(23):
        geo[q] = np.int64(cv[prog[j, P_C] + q])
    conv_forward(out, img, w, bias, geo)
    if s >= 0:
        for q in range(23):
            sv[s + 2 * q] = geo[q] // 1048576
            sv[s + 2 * q + 1] = geo[q] % 1048576
        s += 46
        if prog[j, P_GRADS] & 1:
            sv[s: s + w.size] = w
            s += w.size
        if prog[j, P_GRADS] & 2:
            sv[s: s + img.size] = img


CONVOLUTION = defop("ConvolutionBackward0", _conv, 3, forward=needs(_fwd_conv, "multi"), each=_conv_grad)


# ---- the numpy forward -----------------------------------------------------------------------
def _np_im2col(a, g):
    """(N, C, *img) array -> (N, G, C/G * K, L) columns, by strided windows."""
    nd = g.nd
    pads = [(0, 0), (0, 0)] + [(p, builtins.max(0, (l - 1) * s + (k - 1) * d + 1 - n - p))
                               for n, l, k, s, p, d in zip(g.sp(g.img), g.sp(g.col), g.sp(g.k), g.sp(g.s),
                                                           g.sp(g.p), g.sp(g.d))]
    if builtins.any(p != (0, 0) for p in pads):
        a = np.pad(a, pads)
    ext = tuple((k - 1) * d + 1 for k, d in zip(g.sp(g.k), g.sp(g.d)))
    win = np.lib.stride_tricks.sliding_window_view(a, ext, axis=tuple(range(2, 2 + nd)))
    sl = (slice(None), slice(None)) + tuple(slice(0, (l - 1) * s + 1, s) for l, s in zip(g.sp(g.col), g.sp(g.s))) \
        + tuple(slice(None, None, d) for d in g.sp(g.d))
    win = win[sl]                                       # (N, C, *L, *K)
    perm = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
    cols = win.transpose(perm)                          # (N, C, *K, *L)
    return cols.reshape(g.n, g.groups, (g.c_img // g.groups) * g.kk(), int(math.prod(g.col)))


def _np_col2im(cols, g, dtype):
    """(G, C/G * K, N * L) -> (N, C, *img): an im2col's adjoint (summing overlaps)."""
    nd = g.nd
    col, k, s, p, d, img = g.sp(g.col), g.sp(g.k), g.sp(g.s), g.sp(g.p), g.sp(g.d), g.sp(g.img)
    full = tuple(n + pp + builtins.max(0, (ll - 1) * ss + (kk - 1) * dd + 1 - n - pp)
                 for n, ll, kk, ss, pp, dd in zip(img, col, k, s, p, d))
    out = np.zeros((g.n, g.c_img) + full, dtype)
    c = cols.reshape((g.c_img,) + k + (g.n,) + col)
    c = np.moveaxis(c, 1 + nd, 0)                       # (N, C, *K, *L)
    for offs in np.ndindex(*k):
        dst = (slice(None), slice(None)) + tuple(slice(o * dd, o * dd + (ll - 1) * ss + 1, ss)
                                                 for o, dd, ll, ss in zip(offs, d, col, s))
        out[dst] += c[(slice(None), slice(None)) + offs]
    crop = (slice(None), slice(None)) + tuple(slice(pp, pp + n) for pp, n in zip(p, img))
    return out[crop]


def _forward(x, w, bias, g):
    xa, wa = x._a, w._a
    if xa.dtype in (np.float32, np.float64) and not config.DISABLE_JIT:
        # the replay's kernel (per-sample im2col and BLAS, or direct): 2x numpy's batched matmul
        # over one big im2col copy for LeNet's second convolution, and bit for bit the replay's
        out = np.empty((g.n, g.c_img if g.tr else g.c_col) + g.sp(g.img if g.tr else g.col), xa.dtype)
        ba = bias._a if bias is not None else xa[:0].reshape(-1)
        codegen.interpreter().conv_forward(out.reshape(-1), np.ascontiguousarray(xa).reshape(-1),
                                           np.ascontiguousarray(wa).reshape(-1), np.ascontiguousarray(ba),
                                           np.array(g.values(), np.int64))
        return out
    grp = g.groups
    wg = wa.reshape(grp, g.c_col // grp, (g.c_img // grp) * g.kk())
    if not g.tr:
        out = np.matmul(wg, _np_im2col(xa, g)).reshape((g.n, g.c_col) + g.sp(g.col))
        shape_c = g.c_col
    else:
        nl = int(math.prod(g.col))
        xc = xa.reshape(g.n, grp, g.c_col // grp, nl).transpose(1, 2, 0, 3).reshape(grp, g.c_col // grp, g.n * nl)
        out = _np_col2im(np.matmul(wg.transpose(0, 2, 1), xc), g, xa.dtype)
        shape_c = g.c_img
    if bias is not None:
        out = out + bias._a.reshape((shape_c,) + (1,) * g.nd)
    return np.ascontiguousarray(out)


def _record(out, x, w, bias, g):
    """One ConvolutionBackward0 row: saved are the geometry, then the weight if the input needs a
    gradient, then the input if the weight does (each role's param: where its factor starts)."""
    out = _arr(out)
    if not _needs_grad(x, w, bias):      # (recorded for compiled replay only: no row)
        return record_multi(CONVOLUTION, out, [(x, 0, -1), (w, 1, -1)] + ([(bias, 2, 0)] if bias is not None
                                                                          else []), scalars=g.values())
    geo = g.encode(out.dtype)
    saves, woff, xoff = [geo], -1, -1
    if x._rg:
        saves.append(w)
        woff = geo.size
    if w._rg:
        saves.append(x)
        xoff = geo.size + (w._a.size if x._rg else 0)
    roles = [(x, 0, woff), (w, 1, xoff)] + ([(bias, 2, 0)] if bias is not None else [])
    return record_multi(CONVOLUTION, out, roles, saves=saves, scalars=g.values())


# ---- argument checks, as torch -----------------------------------------------------------------
def _ints(v, nd, name):
    if isinstance(v, (builtins.int, np.integer)):
        return (builtins.int(v),) * nd
    v = tuple(builtins.int(e) for e in v)
    if len(v) == 1 and nd > 1:
        return v * nd
    if len(v) != nd:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {nd} values to match "
                           f"the convolution dimensions, but got {name}={list(v)}")
    return v


def _check(x, w, bias, nd, groups, fn, stride):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}() received an invalid combination of arguments - got "
                        f"({type(x).__name__}, ...)")
    if not isinstance(w, Tensor):
        raise TypeError(f"{fn}(): argument 'weight' (position 2) must be Tensor, not {type(w).__name__}")
    xa, wa = x._a, w._a
    if xa.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {fn}, but got "
                           f"input of size: {list(xa.shape)}")
    if xa.dtype != wa.dtype or (bias is not None and bias._a.dtype != xa.dtype):
        other = wa.dtype if xa.dtype != wa.dtype else bias._a.dtype
        what = "weight" if xa.dtype != wa.dtype else "bias"
        if what == "bias":
            raise RuntimeError(f"Input type ({dtypes.c_name(xa.dtype)}) and bias type ({dtypes.c_name(other)}) "
                               f"should be the same")
        raise RuntimeError(f"Input type (torch.{dtypes.from_numpy_dtype(xa.dtype).tensor_type}) and weight type "
                           f"(torch.{dtypes.from_numpy_dtype(other).tensor_type}) should be the same or input "
                           f"should be a MKLDNN tensor and weight is a dense tensor")
    if xa.dtype.kind != "f":
        raise NotImplementedError(f'"slow_conv2d_cpu" not implemented for \'{dtypes.scalar_name(xa.dtype)}\'')
    if wa.ndim < 3:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if wa.ndim != nd + 2:      # torch reads the dims from the weight, so the stride mismatches first
        raise RuntimeError(f"expected stride to be a single integer value or a list of {wa.ndim - 2} values to "
                           f"match the convolution dimensions, but got stride={list(_ints(stride, nd, 'stride'))}")


def _conv_nd(input, weight, bias, stride, padding, dilation, groups, nd, fn):
    _check(input, weight, bias, nd, groups, fn, stride)
    if input._a.ndim == nd + 1:
        return squeeze(_conv_nd(unsqueeze(input, 0), weight, bias, stride, padding, dilation, groups, nd, fn), 0)
    xa, wa = input._a, weight._a
    s = _ints(stride, nd, "stride")
    d = _ints(dilation, nd, "dilation")
    if builtins.min(s) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if builtins.min(d) <= 0:
        raise RuntimeError("dilation should be greater than zero")
    k = wa.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            left = right = (0,) * nd
        elif padding == "same":
            if builtins.any(v != 1 for v in s):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            total = [dd * (kk - 1) for dd, kk in zip(d, k)]
            left = tuple(t // 2 for t in total)
            right = tuple(t - t // 2 for t in total)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        left = right = _ints(padding, nd, "padding")
        if builtins.min(left) < 0:
            raise RuntimeError("negative padding is not supported")
    n, c = xa.shape[:2]
    if wa.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size [{list(wa.shape)}] instead")
    if c != wa.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(wa.shape)}, expected input"
                           f"{list(xa.shape)} to have {wa.shape[1] * groups} channels, but got {c} channels "
                           f"instead")
    if bias is not None and (bias._a.ndim != 1 or bias._a.shape[0] != wa.shape[0]):
        raise RuntimeError(f"Given weight of size {list(wa.shape)}, expected bias to be 1-dimensional with "
                           f"{wa.shape[0]} elements, but got bias of size {list(bias._a.shape)} instead")
    img = xa.shape[2:]
    padded = tuple(i + lf + r for i, lf, r in zip(img, left, right))
    ext = tuple(dd * (kk - 1) + 1 for dd, kk in zip(d, k))
    if builtins.any(e > p for e, p in zip(ext, padded)):
        raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
                           f"Kernel size: ({' x '.join(map(str, ext))}). Kernel size can't be greater than "
                           f"actual input size")
    col = tuple((p - e) // ss + 1 for p, e, ss in zip(padded, ext, s))
    g = _Geo(0, groups, n, c, wa.shape[0], img, col, k, s, left, d)
    return _record(_forward(input, weight, bias, g), input, weight, bias, g)


def _conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, nd, fn):
    _check(input, weight, bias, nd, groups, fn, stride)
    if input._a.ndim == nd + 1:
        return squeeze(_conv_transpose_nd(unsqueeze(input, 0), weight, bias, stride, padding, output_padding,
                                          groups, dilation, nd, fn), 0)
    xa, wa = input._a, weight._a
    s = _ints(stride, nd, "stride")
    d = _ints(dilation, nd, "dilation")
    p = _ints(padding, nd, "padding")
    op = _ints(output_padding, nd, "output_padding")
    if builtins.min(s) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if builtins.min(d) <= 0:
        raise RuntimeError("dilation should be greater than zero")
    if builtins.min(p) < 0:
        raise RuntimeError("negative padding is not supported")
    if builtins.min(op) < 0:
        raise RuntimeError("negative output_padding is not supported")
    for o, ss, dd in zip(op, s, d):
        if o >= ss and o >= dd:
            names = ("height", "width") if nd == 2 else ("depth", "height", "width")[-nd:]
            raise RuntimeError("output padding must be smaller than either stride or dilation, but got " +
                               " ".join(f"output_padding_{nm}: {o}" for nm, o in zip(names, op)) + " " +
                               " ".join(f"stride_{nm}: {v}" for nm, v in zip(names, s)) + " " +
                               " ".join(f"dilation_{nm}: {v}" for nm, v in zip(names, d)))
    n, c = xa.shape[:2]
    if c != wa.shape[0]:
        raise RuntimeError(f"Given transposed=1, weight of size {list(wa.shape)}, expected input{list(xa.shape)} "
                           f"to have {wa.shape[0]} channels, but got {c} channels instead")
    if wa.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size [{list(wa.shape)}] instead")
    c_out = wa.shape[1] * groups
    if bias is not None and (bias._a.ndim != 1 or bias._a.shape[0] != c_out):
        raise RuntimeError(f"Given transposed=1, weight of size {list(wa.shape)}, expected bias to be "
                           f"1-dimensional with {c_out} elements, but got bias of size {list(bias._a.shape)} "
                           f"instead")
    k = wa.shape[2:]
    col = xa.shape[2:]
    img = tuple((i - 1) * ss - 2 * pp + dd * (kk - 1) + o + 1 for i, ss, pp, dd, kk, o in zip(col, s, p, d, k, op))
    if builtins.min(img) <= 0:
        raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, col))}). Calculated output "
                           f"size per channel: ({' x '.join(map(str, img))}). Output size is too small")
    g = _Geo(1, groups, n, c_out, c, img, col, k, s, p, d)
    return _record(_forward(input, weight, bias, g), input, weight, bias, g)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv_nd(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv_nd(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv_nd(input, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, 1,
                              "conv_transpose1d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, 2,
                              "conv_transpose2d")


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, 3,
                              "conv_transpose3d")


for _f in (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d):
    _f.__module__ = "jitgrad.nn.functional"      # their public home, as torch.nn.functional's

samples(conv2d, ((2, 3, 5, 5), (4, 3, 3, 3), (4,)), ((1, 4, 6, 5), (6, 2, 2, 3), None, [2, 1], 1, [1, 2], 2),
        ((3, 5, 4), (2, 3, 3, 2), (2,), 1, "same"), ((1, 2, 5, 5), (2, 1, 3, 3), None, 2, 0, 1, 2))
samples(conv1d, ((2, 2, 7), (3, 2, 3), (3,), 2, 1), ((1, 4, 6), (4, 2, 2), None, 1, "same", 2, 2))
samples(conv3d, ((1, 2, 4, 4, 3), (2, 2, 2, 3, 2), (2,), 1, [1, 0, 1]))
samples(conv_transpose2d, ((2, 3, 3, 3), (3, 2, 3, 3), (2,), 2, 1, 1),
        ((1, 4, 3, 4), (4, 1, 2, 3), None, [1, 2], 0, 0, 2, [2, 1]))
samples(conv_transpose1d, ((2, 2, 4), (2, 3, 3), (3,), 3, 1, 2))
samples(conv_transpose3d, ((1, 2, 2, 3, 2), (2, 2, 2, 2, 3), (2,), [2, 1, 1], 0, [1, 0, 0]))
