"""Linear algebra: matmul, mm, bmm, mv, dot, outer, addmm, linear and einsum (composed from
permute, sum, reshape and bmm). One rule (_mm) serves all the products, one (_addmm) the affine ops.
"""
import builtins
import math

import numpy as np

from .. import dtypes
from ..engine.blas import gemm
from ..engine.loop import F_APART, FLAGS, I0, I1, SHAPE_ID
from ..engine.registry import defop
from ..engine.tape import _grad_mode as _MODE
from ..engine.replay import P_C, P_GRADS, P_I0, P_K, P_OSH, P_XSH, by_role, expanded, needs, trailing
from ..tensor import Tensor
from ._samples import samples
from ._core import _arr, _broadcast_shape, _needs_grad, reads_of, record, record_multi, torch_names
from .elementwise import add, mul
from .shape import _fwd_copy, _identity, _view_of, expand, permute, reshape, t, transpose, unsqueeze
from ._formulas import sum_to
from .reductions import sum
from .indexing import diagonal


# ======================= linear algebra ======================================================
def _mm(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # out (bt, m, n) = x (bt, m, kk) @ y (bt, kk, n), bt batches; I0 = m | bt << 32 (kk: x's last
    # dim, y's first but the batch), or (m, bt, kk) in the int data when they do not fit (see
    # _record_mm). saved: y if x needs a gradient, then x if y does (x at I1 with F_APART: a
    # compiled replay reads it where its forward wrote it, see compiler/program.py)
    if k >= 0:
        m = ints[k]
        bt = ints[k + 1]
        kk = ints[k + 2]
    else:
        m = rows[i, I0] & 0xFFFFFFFF
        bt = rows[i, I0] >> 32
        if a >= 0:
            sid = rows[va, SHAPE_ID]
            kk = shapes[sid + shapes[sid]]
        else:
            sid = rows[vb, SHAPE_ID]
            kk = shapes[sid + 2] if shapes[sid] == 3 else shapes[sid + 1]
    bt = bt if bt > 1 else 1      # (not max(): the ops modules shadow it with the tensor op)
    if n == 0 or kk == 0:
        return
    nn = n // (bt * m)
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + (bt * kk * nn if a >= 0 else 0)
    for q in range(bt):          # (BLAS accumulates into the gradients: beta 1)
        if a >= 0:               # ga (m, kk) += g (m, n) @ y (kk, n).T
            gemm(False, True, m, kk, nn, 1.0, g, o + q * m * nn, sv, s + q * kk * nn, 1.0, g, a + q * m * kk)
        if b >= 0:               # gb (kk, n) += x (m, kk).T @ g (m, n)
            gemm(True, False, kk, nn, m, 1.0, sv, t + q * m * kk, g, o + q * m * nn, 1.0, g, b + q * kk * nn)


def _fwd_mm(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # out (bt, m, n) = x (bt, m, k) @ y (bt, k, n) batch by batch, for bmm (bt > 0), mm, mv, dot
    # and vm (bt = 0: one batch); saves y if x needs a gradient, then x if y does (as _record_mm)
    if prog[j, P_K] >= 0:
        m = pints[prog[j, P_K]]
        bt = pints[prog[j, P_K] + 1]
        k = pints[prog[j, P_K] + 2]
    else:
        m = prog[j, P_I0] & 0xFFFFFFFF
        bt = prog[j, P_I0] >> 32
        xs = prog[j, P_XSH]
        k = shapes[xs + shapes[xs]]
    bt = bt if bt > 1 else 1
    n = out.size // (bt * m) if m else 0
    for b in range(bt):          # (written into out: no temporary; k 0 writes zeros)
        gemm(False, False, m, n, k, 1.0, x, b * m * k, y, b * k * n, 0.0, out, b * m * n)
    if s >= 0:
        if prog[j, P_GRADS] & 1:
            sv[s: s + y.size] = y
            s += y.size
        if prog[j, P_GRADS] & 2:
            sv[s: s + x.size] = x


def _fwd_affine(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # out = beta bias + alpha x @ (W.T if I0 else W), inputs by role in the int data (bias 0,
    # x 1, W 2); beta, alpha are the scalars. saves: beta, alpha, W if x needs a gradient, x if
    # W does (as _affine)
    bias, bsid = by_role(v, ext, pints, prog[j, P_K], shapes, 0)
    xm, xsid = by_role(v, ext, pints, prog[j, P_K], shapes, 1)
    w = by_role(v, ext, pints, prog[j, P_K], shapes, 2)[0]
    beta = cv[prog[j, P_C]]
    alpha = cv[prog[j, P_C] + 1]
    m = shapes[xsid + 1]
    k = shapes[xsid + 2]
    n = out.size // m if m else 0
    gemm(False, prog[j, P_I0] != 0, m, n, k, alpha, xm, 0, w, 0, 0.0, out, 0)
    # beta 0: input is ignored, nan and inf too, as PyTorch's; an empty output has nothing to add
    if bsid >= 0 and beta != 0 and out.size:
        # a bias row is read in place, not broadcast into a copy (bb is never empty here)
        bb = bias if trailing(bias, shapes, bsid, prog[j, P_OSH]) else \
            expanded(bias, out.size, shapes, bsid, prog[j, P_OSH])
        p = bb.size
        for o in range(0, out.size, p):
            for e in range(p):
                out[o + e] = out[o + e] + (bb[e] if beta == 1 else bb[e] * beta)
    if s >= 0:
        sv[s] = beta
        sv[s + 1] = alpha
        s += 2
        if prog[j, P_GRADS] & 2:
            sv[s: s + w.size] = w
            s += w.size
        if prog[j, P_GRADS] & 4:
            sv[s: s + xm.size] = xm


# The formulas, as derivatives.yaml (the products record with broadcast=False: x, y at their shapes)
# (saves_reads: a row saves y, x as the formulas read them; the kernel reads k from their shapes,
# so I1 stays free for F_APART)
MM = defop("MmBackward0", _mm, 2, forward=needs(_fwd_mm, "x,y"), saves_reads=True, x=lambda g, y: mm(g, t(y)),
           y=lambda g, x: mm(t(x), g))
MV = defop("MvBackward0", _mm, 2, forward=needs(_fwd_mm, "x,y"), saves_reads=True, x=lambda g, y: outer(g, y),
           y=lambda g, x: mv(t(x), g))
DOT = defop("DotBackward0", _mm, 2, forward=needs(_fwd_mm, "x,y"), saves_reads=True, x=lambda g, y: g * y,
            y=lambda g, x: g * x)
# x (k,) @ y (k, n): PyTorch's x.unsqueeze(0).mm(y).squeeze(0), one row here
VM = defop("SqueezeBackward4", _mm, 2, forward=needs(_fwd_mm, "x,y"), saves_reads=True, x=lambda g, y: mv(y, g),
           y=lambda g, x: outer(x, g))
BMM = defop("BmmBackward0", _mm, 2, forward=needs(_fwd_mm, "x,y"), saves_reads=True,
            x=lambda g, y: bmm(g, transpose(y, 1, 2)), y=lambda g, x: bmm(transpose(x, 1, 2), g))
PRODUCTS = frozenset((MM, MV, DOT, VM, BMM))    # (compiled replay reads their saves in place)


def _mm_bias(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # compiled replay's x (m, kk) @ W (kk, nn) + bias: an MM row, the bias's EXPAND row and their
    # ADD row folded into one (compiler/program.py, _fold_bias_adds). Multi-input; I0 = m; per
    # input its role (0 the bias, nn elements; 1 x; 2 W) and where in sv the matrix it is
    # multiplied by is (the MM row's saves: W for x, x for W). Each input gets what the three
    # rows gave it, in their order (the bias's sums over the rows, as EXPAND's, first: it is
    # listed first), from g itself where the ADD copied g into zeroed slots: the same values,
    # as no gradient slot ever holds -0.0 (they start +0.0 and are only added into)
    if n == 0:
        return
    m = rows[i, I0]
    nn = n // m
    role = ints[k + 1]
    if role == 0:
        for r in range(m):
            at = o + r * nn
            for j in range(nn):
                g[a + j] += g[at + j]
    elif role == 1:             # gx (m, kk) += g (m, nn) @ W (kk, nn).T
        kk = shapes[rows[va, SHAPE_ID] + 2]
        gemm(False, True, m, kk, nn, 1.0, g, o, sv, ints[k + 2], 1.0, g, a)
    else:                       # gW (kk, nn) += x (m, kk).T @ g (m, nn)
        kk = shapes[rows[va, SHAPE_ID] + 1]
        gemm(True, False, kk, nn, m, 1.0, sv, ints[k + 2], g, o, 1.0, g, a)


def _mm_bias_grad(g, role, inputs):
    """The gradient of one input of x @ W + bias (MM_BIAS's roles: 0 bias, 1 x, 2 W)."""
    if role == 0:
        return sum_to(g, inputs[0].shape)
    return mm(g, t(inputs[2])) if role == 1 else mm(t(inputs[1]), g)


# compiled replay only (never recorded): the MM, EXPAND and ADD rows of x @ W + bias as one
MM_BIAS = defop(None, _mm_bias, 0, each=_mm_bias_grad)
UNSAFE_VIEW = defop("UnsafeViewBackward0", _identity, forward=needs(_fwd_copy, "x", inline=True),
                    x=lambda g, x: g.reshape(x.shape))


def _same_dtype(xa, ya, what="expected m1 and m2 to have the same dtype"):
    if xa.dtype != ya.dtype:
        raise RuntimeError(f"{what}, but got: {dtypes.c_name(xa.dtype)} != "
                           f"{dtypes.c_name(ya.dtype)}")


_MM_READS = {op: reads_of(op) for op in (MM, MV, DOT, VM, BMM)}


def _record_mm(op, out, x, y, m, k, bt=0):
    # (_needs_grad and reads, inline: three calls less per product)
    if not ((x._rg or y._rg) and _MODE.enabled):    # (recorded for compiled replay only: no row)
        return record(op, out, x, y, i0=m | (bt << 32), broadcast=False) \
            if not (m >> 32 or bt >> 31) else record(op, out, x, y, ints=(m, bt, k), broadcast=False)
    saves = _MM_READS[op][(x._rg is True) + 2 * (y._rg is True)](x, y)
    if m >> 32 or bt >> 31:       # does not pack into I0 as a positive int64
        return record(op, out, x, y, saves=saves, ints=(m, bt, k), broadcast=False)
    return record(op, out, x, y, saves=saves, i0=m | (bt << 32), broadcast=False)


@torch_names("matmul", "__matmul__")
def matmul(x, y):
    if not isinstance(y, Tensor):
        raise TypeError(f"matmul(): argument 'other' (position 2) must be Tensor, not {type(y).__name__}")
    xa, ya = x._a, y._a
    _same_dtype(xa, ya)
    nx, ny = xa.ndim, ya.ndim
    if nx == 0 or ny == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {nx}D and {ny}D")
    if nx > 2 or ny > 2:
        return _batched_matmul(x, y)
    if nx == 1 and ny == 1:
        if xa.shape[0] != ya.shape[0]:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{xa.shape[0]}] and src "
                               f"[{ya.shape[0]}] to have the same number of elements, but got "
                               f"{xa.shape[0]} and {ya.shape[0]} elements respectively")
        op, m, k = DOT, 1, xa.shape[0]
    elif nx == 2 and ny == 1:
        if xa.shape[1] != ya.shape[0]:
            raise RuntimeError(f"size mismatch, got input ({xa.shape[0]}), mat ({xa.shape[0]}x"
                               f"{xa.shape[1]}), vec ({ya.shape[0]})")
        op, m, k = MV, xa.shape[0], xa.shape[1]
    else:
        x2 = xa.reshape(1, -1) if nx == 1 else xa
        if x2.shape[1] != ya.shape[0]:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({x2.shape[0]}x{x2.shape[1]} "
                               f"and {ya.shape[0]}x{ya.shape[1]})")
        op, m, k = (VM if nx == 1 else MM), x2.shape[0], x2.shape[1]
    return _record_mm(op, _arr(np.matmul(xa, ya)), x, y, m, k)


def _batched_matmul(x, y):
    """matmul with a batch: broadcast the batch dims, fold them into one, bmm, unfold (the
    result's grad_fn is UnsafeViewBackward0, as in PyTorch)."""
    xa, ya = x._a, y._a
    x3 = unsqueeze(x, 0) if xa.ndim == 1 else x
    y3 = unsqueeze(y, -1) if ya.ndim == 1 else y
    (m, k), (k2, n) = x3._a.shape[-2:], y3._a.shape[-2:]
    batch = _broadcast_shape(x3._a.shape[:-2], y3._a.shape[:-2])
    bt = 1
    for d in batch:
        bt *= d
    if k != k2:          # PyTorch folds x's batch into an mm when y has none, else runs bmm
        if ya.ndim == 1:
            raise RuntimeError(f"size mismatch, got input ({m}), mat ({m}x{k}), vec ({k2})")
        if ya.ndim == 2:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied "
                               f"({builtins.int(math.prod(x3._a.shape[:-1]))}x{k} and {k2}x{n})")
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{bt}, {k}] but got: [{bt}, {k2}].")
    xb = reshape(expand(x3, batch + (m, k)), bt, m, k)
    yb = reshape(expand(y3, batch + (k, n)), bt, k, n)
    out = bmm(xb, yb)
    shape = batch + ((m,) if xa.ndim > 1 else ()) + ((n,) if ya.ndim > 1 else ())
    return _view_of(UNSAFE_VIEW, out._a.reshape(shape), out)


@torch_names("bmm")
def bmm(x, y):
    xa, ya = x._a, y._a
    if xa.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if ya.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    _same_dtype(xa, ya, "expected scalar type")
    if ya.shape[0] != xa.shape[0] or ya.shape[1] != xa.shape[2]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{xa.shape[0]}, {xa.shape[2]}] but got: [{ya.shape[0]}, {ya.shape[1]}].")
    return _record_mm(BMM, _arr(np.matmul(xa, ya)), x, y, xa.shape[1], xa.shape[2], xa.shape[0])


@torch_names("mm")
def mm(x, y):
    if x._a.ndim != 2 or y._a.ndim != 2:
        raise RuntimeError("self must be a matrix" if x._a.ndim != 2 else "mat2 must be a matrix")
    return matmul(x, y)


@torch_names("dot")
def dot(x, y):
    if x._a.ndim != 1 or y._a.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {x._a.ndim}D and {y._a.ndim}D tensors")
    if x._a.dtype != y._a.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                           f"{dtypes.scalar_name(x._a.dtype)} and {dtypes.scalar_name(y._a.dtype)}")
    return matmul(x, y)


@torch_names("mv")
def mv(x, y):
    if x._a.ndim != 2 or y._a.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {x._a.ndim}, {y._a.ndim}")
    return matmul(x, y)


@torch_names("outer")
def outer(x, y):
    """PyTorch computes it as x[:, None] * y (MulBackward0)."""
    if x._a.ndim != 1 or y._a.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument self, but got {x._a.ndim}-D"
                           if x._a.ndim != 1 else
                           f"outer: Expected 1-D argument vec2, but got {y._a.ndim}-D")
    return mul(reshape(x, -1, 1), y)


def _addmm(go, ga, gb, sv, iv, do, da, db, row):
    # multi-input: out (m, n) = beta bias + alpha x (m, k) @ w, w being W.T for W (n, k) (I0 = 1,
    # F.linear) or mat2 (k, n) itself (I0 = 0, addmm). saved: beta, alpha, then the matrices.
    # Role iv[1]: 0 bias, 1 x, 2 W/mat2; iv[2]: where the matrix this role multiplies by starts
    # in sv (W/mat2 for x, x for W/mat2).
    role = iv[1]
    m = do[0]
    n = do[1]
    if role == 0:
        beta = sv[0]
        if ga.size == go.size:
            for j in range(go.size):
                ga[j] += beta * go[j]
        else:                                   # a bias of shape (n,): sum over the rows
            for i in range(m):
                for j in range(n):
                    ga[j] += beta * go[i * n + j]
        return
    alpha = sv[1]
    if go.size == 0 or ga.size == 0:
        return
    off = iv[2]
    if role == 1:           # x (m, k): alpha g @ W (n, k) for F.linear (I0), g @ mat2 (k, n).T
        gemm(False, row[I0] == 0, m, da[1], n, alpha, go, 0, sv, off, 1.0, ga, 0)
    elif row[I0]:           # W (n, k): alpha g.T @ x (m, k)
        gemm(True, False, n, da[1], m, alpha, go, 0, sv, off, 1.0, ga, 0)
    else:                   # mat2 (k, n): alpha x (m, k).T @ g
        gemm(True, False, da[0], n, m, alpha, sv, off, go, 0, 1.0, ga, 0)


def _affine_grad(g, role, inputs, node):
    """The gradient of one input of beta bias + alpha x @ w (w = W.T when node.i0, as _addmm)."""
    beta, alpha = float(node.saved[0]), float(node.saved[1])
    if role == 0:        # a bias of shape (n,) or the output's (broadcast ones arrive at the output's)
        gb = sum_to(g, inputs[0].shape)
        return gb if beta == 1 else gb * beta
    if role == 1:
        w = inputs[2]
        gi = mm(g, w) if node.i0 else mm(g, t(w))
    else:
        x = inputs[1]
        gi = mm(t(g), x) if node.i0 else mm(t(x), g)
    return gi if alpha == 1 else gi * alpha


ADDMM = defop("AddmmBackward0", _addmm, 0, forward=needs(_fwd_affine, "multi,cc"), each=_affine_grad)
LINEAR_MM = defop("MmBackward0", _addmm, 0, forward=needs(_fwd_affine, "multi,cc"), each=_affine_grad)


_ONES = {}       # dtype -> [1, 1]: _affine's saved beta and alpha, as they mostly are


def _affine(x, w, bias, transposed, op, beta=1, alpha=1):
    """out = beta bias + alpha x @ (w.T if transposed else w), one node for every input."""
    xa, wa = x._a, w._a
    out = xa @ (wa.T if transposed else wa)
    if alpha != 1:
        out = out * out.dtype.type(alpha)
    if bias is not None and beta != 0:      # beta 0: input is ignored, nan and inf too, as PyTorch's
        if beta == 1 and bias._a.dtype is out.dtype:
            np.add(out, bias._a, out=out)   # (out is the product's own new array; expands checked)
        else:
            out = out + (bias._a if beta == 1 else bias._a * out.dtype.type(beta))
    out = _arr(out)
    entries, woff = [], 2
    if bias is not None:
        n = out.shape[1]
        entries.append((bias, 0, 0) if bias._a.shape in ((n,), out.shape) else (bias, 0, 0, out.shape))
    if not _needs_grad(x, w, bias):     # (recorded for compiled replay only: no row)
        return record_multi(op, out, entries + [(x, 1, 2), (w, 2, 2)], i0=1 if transposed else 0,
                            scalars=(beta, alpha))
    if type(beta) is type(alpha) is builtins.int and beta == alpha == 1:     # the defaults: saved
        ones = _ONES.get(out.dtype)
        if ones is None:
            ones = _ONES[out.dtype] = np.ones(2, out.dtype)
            ones.flags.writeable = False
        saves = [ones]                  # from an array made once
    else:
        saves = [np.array([beta, alpha], out.dtype)]
    if x._rg:
        saves.append(w)
        woff += w._a.size
    entries.append((x, 1, 2))
    if w._rg:
        saves.append(x)
    entries.append((w, 2, woff))
    return record_multi(op, out, entries, saves=saves, i0=1 if transposed else 0,
                        scalars=(beta, alpha))


def linear(input, weight, bias=None):
    x, W = input, weight
    xa, wa = x._a, W._a
    if wa.ndim != 2 or xa.ndim == 0 or (xa.ndim > 2 and bias is not None and bias._a.ndim > 1):
        out = matmul(x, t(W))     # PyTorch too: a bias of more than one dim is broadcast, not folded
        return out if bias is None else add(out, bias)
    if xa.dtype is not wa.dtype:
        _same_dtype(xa, wa, "mat1 and mat2 must have the same dtype")
    k = xa.shape[-1]
    if k != wa.shape[1]:
        m = builtins.int(math.prod(xa.shape[:-1]))
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({m}x{k} and "
                           f"{wa.shape[1]}x{wa.shape[0]})")
    if bias is not None:
        ba = bias._a
        if ba.dtype is not xa.dtype:
            _same_dtype(xa, ba, "mat1 and bias must have the same dtype")
        if ba.ndim != 1 or ba.shape[0] != wa.shape[0]:      # (a bias of shape (n,) expands)
            _check_expands_to(bias, [builtins.int(math.prod(xa.shape[:-1])), wa.shape[0]])
    if xa.ndim == 2:
        return _affine(x, W, bias, True, ADDMM if bias is not None else LINEAR_MM)
    out = _affine(reshape(x, -1, k), W, bias, True, ADDMM if bias is not None else LINEAR_MM)
    return reshape(out, xa.shape[:-1] + (wa.shape[0],))


def _check_expands_to(x, target):
    """x must expand to target (a bias added to a product), with expand's errors."""
    s = x._a.shape
    if len(s) > len(target):
        raise RuntimeError(f"expand(jitgrad.{x.dtype.tensor_type}{{{list(s)}}}, size={target}): "
                           f"the number of sizes provided ({len(target)}) must be greater or equal "
                           f"to the number of dimensions in the tensor ({len(s)})")
    for i, n in enumerate(s):
        j = i + len(target) - len(s)
        if n != 1 and n != target[j]:
            raise RuntimeError(f"The expanded size of the tensor ({target[j]}) must match the "
                               f"existing size ({n}) at non-singleton dimension {j}.  Target sizes: "
                               f"{target}.  Tensor sizes: {list(s)}")


@torch_names("addmm")
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    if mat1._a.ndim != 2 or mat2._a.ndim != 2:
        raise RuntimeError("mat1 must be a matrix, got " + f"{mat1._a.ndim}-D tensor"
                           if mat1._a.ndim != 2 else f"mat2 must be a matrix, got {mat2._a.ndim}-D tensor")
    m, k = mat1._a.shape
    if mat2._a.shape[0] != k:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({m}x{k} and "
                           f"{mat2._a.shape[0]}x{mat2._a.shape[1]})")
    _check_expands_to(input, [m, mat2._a.shape[1]])
    return _affine(mat1, mat2, input, False, ADDMM, beta, alpha)


samples(matmul, ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((1, 1), (1, 1)),
        ((2, 2, 3), (3, 4)), ((2, 2, 3), (2, 3, 4)), ((3,), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 2)),
        ((2, 2, 3), (3,)))
samples(mm, ((2, 3), (3, 4)))
samples(bmm, ((2, 2, 3), (2, 3, 4)), ((1, 1, 1), (1, 1, 2)))
samples(dot, ((3,), (3,)))
samples(mv, ((2, 3), (3,)))
samples(outer, ((3,), (2,)))
samples(linear, ((4, 3), (2, 3), (2,)), ((4, 3), (2, 3)), ((3,), (2, 3), (2,)),
        ((2, 4, 3), (2, 3), (2,)), ((4, 3), (2, 3), (4, 2)), ((4, 3), (2, 3), ()),
        ((1, 3), (2, 3), (2,)))
samples(addmm, ((2,), (4, 3), (3, 2)), ((4, 2), (4, 3), (3, 2)), ((4, 1), (4, 3), (3, 2)),
        ((2,), (4, 3), (3, 2), {"beta": 0.5, "alpha": 2.0}))


# ---- einsum: composed from permute, sum, reshape and bmm (PyTorch's ViewBackward0 on top)
@torch_names(functions=("einsum",))
def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    if "." in eq:
        eq = _expand_ellipsis(eq, operands)
    lhs, out = eq.split("->") if "->" in eq else (eq, _implicit_output(eq))
    terms = lhs.split(",")
    if len(terms) == len(operands):
        operands, terms = zip(*(_take_diagonals(x, t, i) for i, (x, t) in enumerate(zip(operands, terms))))
        lhs = ",".join(terms)
    if len(terms) < len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    if len(terms) > len(operands):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
    sizes = {}
    for i, (term, x) in enumerate(zip(terms, operands)):
        if not term.isalpha() and term:
            raise RuntimeError(f"einsum(): invalid subscript given at index {eq.index(term)} in the "
                               "equation string, subscripts must be in [a-zA-Z]")
        if len(term) != x._a.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(term)}) "
                               f"does not match the number of dimensions ({x._a.ndim}) for operand "
                               f"{i} and no ellipsis was given")
        for c, n in zip(term, x._a.shape):
            m = sizes.get(c, 1)
            if n != m and n != 1 and m != 1:
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {i} which does "
                                   f"not broadcast with previously seen size {m}")
            sizes[c] = n if m == 1 else m
    for i, c in enumerate(out):
        if c in out[:i]:
            raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
        if c not in sizes:
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation for "
                               "any input operand")
    x, tx = operands[0], terms[0]
    for k in range(1, len(operands)):
        later = set(out).union(*terms[k + 1:])
        keep = "".join(c for c in dict.fromkeys(tx + terms[k]) if c in later)
        x, tx = _einsum_pair(x, tx, operands[k], terms[k], keep if k < len(operands) - 1 else out,
                             sizes)
    if len(operands) == 1:
        drop = [i for i, c in enumerate(tx) if c not in out]
        if drop:
            x, tx = sum(x, drop), "".join(c for c in tx if c in out)
    if tx != out:
        x = permute(x, [tx.index(c) for c in out])
    return x


def _implicit_output(lhs):
    """The output of an equation without '->': the letters used once, sorted."""
    counts = {}
    for c in lhs.replace(",", ""):
        counts[c] = counts.get(c, 0) + 1
    return "".join(sorted(c for c, k in counts.items() if k == 1))


def _expand_ellipsis(eq, operands):
    """eq with each '...' spelled out in letters the equation does not use: the ellipsis dims of
    all operands broadcast from the right, and lead the output when it is implicit (PyTorch)."""
    lhs, out = eq.split("->") if "->" in eq else (eq, None)
    terms = lhs.split(",")
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in eq]
    ranks = []
    for i, term in enumerate(terms):
        if term.count("...") > 1 or term.replace("...", "").count("."):
            raise RuntimeError(f"einsum(): found {term.count('.')} '.' for operand {i} that is not part "
                               "of any ellipsis")
        if "..." in term and i < len(operands):
            ranks.append(builtins.max(operands[i]._a.ndim - (len(term) - 3), 0))
    letters = "".join(free[:builtins.max(ranks, default=0)])
    spelled = []
    for i, term in enumerate(terms):
        if "..." in term:
            r = builtins.max(operands[i]._a.ndim - (len(term) - 3), 0) if i < len(operands) else 0
            term = term.replace("...", letters[len(letters) - r:] if r else "")
        spelled.append(term)
    lhs = ",".join(spelled)
    if out is None:
        out = letters + "".join(c for c in _implicit_output(lhs) if c not in letters)
    else:
        out = out.replace("...", letters)
    return lhs + "->" + out


def _take_diagonals(x, term, i):
    """An operand whose term repeats a letter ('ii'), reduced to its diagonals: each repeated
    letter becomes one dim, last (as torch.diagonal puts it)."""
    while len(set(term)) != len(term) and len(term) == x._a.ndim:
        c = next(c for c in term if term.count(c) > 1)
        a = term.index(c)
        b = term.index(c, a + 1)
        if x._a.shape[a] != x._a.shape[b]:
            raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {i} but the sizes "
                               f"don't match, {x._a.shape[b]} != {x._a.shape[a]}")
        x = diagonal(x, 0, a, b)
        term = term[:a] + term[a + 1:b] + term[b + 1:] + c
    return x, term


def _einsum_pair(a, ta, b, tb, out, sizes):
    """Contract two operands into the letters of out (in out's order when a bmm allows)."""
    def drop_unused(x, t, other):
        idx = [i for i, c in enumerate(t) if c not in out and c not in other]
        return (sum(x, idx), "".join(c for c in t if c not in out or c in other)) if idx else (x, t)
    a, ta = drop_unused(a, ta, tb)
    b, tb = drop_unused(b, tb, ta)
    batch = [c for c in out if c in ta and c in tb]
    contract = [c for c in ta if c in tb and c not in out]
    left = [c for c in out if c in ta and c not in tb]
    right = [c for c in out if c in tb and c not in ta]
    if not contract:                        # nothing to sum: a broadcast product (MulBackward0)
        def spread(x, t):
            order = [c for c in out if c in t]
            if order != list(t):
                x = permute(x, [t.index(c) for c in order])
            dim = dict(zip(t, x._a.shape)) if order == list(t) else dict(zip(order, x._a.shape))
            return reshape(x, tuple(dim.get(c, 1) for c in out))
        return mul(spread(a, ta), spread(b, tb)), out
    rest = [c for c in out if c not in batch]
    if rest and rest[0] in right:           # put the operand whose letters lead the output first
        a, ta, b, tb, left, right = b, tb, a, ta, right, left

    def arrange(x, t, order):
        if list(t) != order:
            x = permute(x, [t.index(c) for c in order])
        full = tuple(sizes[c] for c in order)
        return expand(x, full) if tuple(x._a.shape) != full else x
    n = lambda letters: builtins.int(math.prod([sizes[c] for c in letters]))  # noqa: E731
    a3 = reshape(arrange(a, ta, batch + left + contract), n(batch), n(left), n(contract))
    b3 = reshape(arrange(b, tb, batch + contract + right), n(batch), n(contract), n(right))
    c = reshape(bmm(a3, b3), tuple(sizes[c] for c in batch + left + right))
    return c, "".join(batch + left + right)


samples(einsum, ("ij,jk->ik", (2, 3), (3, 4)), ("ij,kj->ik", (2, 3), (4, 3)),
        ("bij,bjk->bik", (2, 2, 3), (2, 3, 4)), ("i,i->", (3,), (3,)), ("ij->ji", (2, 3)),
        ("ij,j->i", (2, 3), (3,)), ("i,j->ij", (2,), (3,)), ("ij,jk->ki", (2, 3), (3, 4)),
        ("ij->", (2, 3)), ("ij->j", (2, 3)), ("ij,jk", (2, 3), (3, 4)), ("bij,jk->bik", (2, 2, 3), (3, 4)),
        ("ij,ij->i", (2, 3), (2, 3)), ("ijk,ik->j", (2, 3, 4), (2, 4)), ("i,j,j->i", (2,), (3,), (3,)),
        ("...id,...jd->...ij", (2, 3, 4), (2, 2, 4)), ("...,...", (2, 3), (3,)), ("i...->...", (2, 3, 2)),
        ("ii->", (3, 3)), ("iij->j", (3, 3, 2)), ("bii,bi->b", (2, 3, 3), (2, 3)))
