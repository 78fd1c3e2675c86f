"""Elementwise ops: binary arithmetic and pow, maximum/minimum/where/masked_fill, unary math,
clamp, addcmul/addcdiv and lerp. Most rows save what their formulas read (defop's saves_reads:
x, y, out, or where's and masked_fill's condition, cond) and the kernel computes the derivative
from it; addcmul/addcdiv, lerp by a tensor and clamp by tensors save their inputs (_ternary,
_clamp_by_tensors).
Each op's differentiable formulas (for create_graph) are on its defop line, written from x, y,
out and cond as PyTorch's derivatives.yaml; the condition is read from the row's saved values,
a constant, and a number the formulas need (pow's base, addcmul's value) is saved too.
"""
import builtins
import functools
import math
import sys

import numpy as np

from .. import dtypes
from ..engine.loop import F_APART, FLAGS, I0, I1, numel
from ..engine import codegen, hook, registry
from ..engine.registry import defop
from ..engine.replay import (P_C, P_GRADS, P_I0, P_I1, P_K, P_OSH, P_XSH, P_YSH, expanded, needs, operand, trailing,
                             save_two, sigmoid_backward_into, tanh_backward_into, tanh_into)
from ..engine.tape import _grad_mode as _MODE, grad_off as _GRAD_OFF
from ..tensor import Tensor, _wrap
from ._samples import BINARY, Given, NonZero, Pos, UNARY, Unit, kinks, samples
from ._core import (_arr, _broadcast_shape, _check_bcast, _needs_grad, _operands, _py_scalar, _quiet, quiet, quietly,
                    reads, reads_of, record, record_multi, record_pair, result_dtype, torch_names)


# ======================= elementwise binary ====================================================
# _F64_SCALARS: the arithmetic fast paths compute on 0-dim float64 tensors with Python floats.
# Python's float +, -, *, / are the same IEEE double operations as numpy's, bit for bit (nan,
# inf and signed zeros included, and silent as numpy's under quiet()), and skip a ufunc call on a
# 0-d array (~0.5-1 us) and the scalar it returns, wrapped back into an array; division by zero,
# which Python raises on, takes numpy's path.
_F64 = np.dtype(np.float64)
_array = np.array       # a Python float as a 0-d float64 array: np.asarray's, 25 ns sooner


def _add(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    if a >= 0:
        for j in range(n):
            g[a + j] += g[o + j]
    if b >= 0:
        for j in range(n):
            g[b + j] += g[o + j]


def _sub(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    if a >= 0:
        for j in range(n):
            g[a + j] += g[o + j]
    if b >= 0:
        for j in range(n):
            g[b + j] -= g[o + j]


def _neg(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    for j in range(n):
        g[a + j] -= g[o + j]


def _select(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: the condition, 0/1 at the output's shape. where (I0 = 0) takes x where it is set
    # and y elsewhere; masked_fill (I0 = 1) is where(mask, value, x). PyTorch selects: each
    # gradient goes whole (an inf or nan too) to one input, the other's is 0
    if rows[i, I0] == 1:
        a, b = b, a
    if a >= 0:
        for j in range(n):
            g[a + j] += g[o + j] if sv[s + j] != 0 else 0
    if b >= 0:
        for j in range(n):
            g[b + j] += 0 if sv[s + j] != 0 else g[o + j]


def _mul(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # g[a] += go * y, g[b] += go * x: the row saves y if x needs a gradient, then x if y does
    # (at I1 when apart)
    if a >= 0:
        for j in range(n):
            g[a + j] += g[o + j] * sv[s + j]
        s = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    if b >= 0:
        for j in range(n):
            g[b + j] += g[o + j] * sv[s + j]


def _scale(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    c = sv[s]
    for j in range(n):
        g[a + j] += g[o + j] * c


def _times_saved(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # g[a] += go * (saved d out/d x): every unary op whose forward can compute its local derivative
    for j in range(n):
        g[a + j] += g[o + j] * sv[s + j]


def _div(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: y, then x if y needs a gradient
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    for j in range(n):
        y = sv[s + j]
        if a >= 0:
            g[a + j] += g[o + j] / y
        if b >= 0:
            g[b + j] -= g[o + j] * (sv[t + j] / y / y)      # as PyTorch: y * y overflows


def _div_scalar(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    c = sv[s]
    for j in range(n):
        g[a + j] += g[o + j] / c


def _pow(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x, y (y at I1 when apart), then out if y needs a gradient. As PyTorch's, d/dx is 0
    # where y == 0 (selected: a nan gradient stays out), d/dy 0 where x == 0 <= y (multiplied)
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    for j in range(n):
        x = sv[s + j]
        y = sv[t + j]
        if a >= 0 and y != 0:
            g[a + j] += g[o + j] * (y * x ** (y - 1))
        if b >= 0:
            g[b + j] += g[o + j] * (0 if x == 0 and y >= 0 else sv[s + n + n + j] * np.log(x))


def _rpow(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # c ** x; saved: x, out, then c. 0 ** x has no gradient for x >= 0 (multiplied, as PyTorch's)
    c = sv[s + n + n]
    log_c = np.log(c)
    for j in range(n):
        g[a + j] += g[o + j] * (0 if c == 0 and sv[s + j] >= 0 else sv[s + n + j] * log_c)


def _pow_scalar(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    p = sv[s + n]
    if p == 0:
        return
    q = p - 1
    half = q == 0.5 or q == -0.5
    for j in range(n):
        x = sv[s + j]
        if half:    # PyTorch computes x ** +-0.5 with sqrt: -0. stays -0., below 0 (and -inf) is nan
            r = x if x == 0 else (np.sqrt(x) if x > 0 else np.nan)
            g[a + j] += g[o + j] * p * (r if q > 0 else 1 / r)
        else:
            g[a + j] += g[o + j] * p * x ** q


# ---- forward kernels (compiled replay, engine/replay.py): out from x and y (or the scalar after
# the op's consts), and, for a recorded row (s >= 0), the values its VJP kernel reads
def _fwd_add(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    n = out.size
    if x.size == n and 0 < y.size < n and trailing(y, shapes, prog[j, P_YSH], prog[j, P_OSH]):
        p = y.size              # + a bias: read in place, not broadcast into a new array
        for o in range(0, n, p):
            for e in range(p):
                out[o + e] = x[o + e] + y[e]
        return
    if y.size == n and 0 < x.size < n and trailing(x, shapes, prog[j, P_XSH], prog[j, P_OSH]):
        p = x.size              # a bias +
        for o in range(0, n, p):
            for e in range(p):
                out[o + e] = x[e] + y[o + e]
        return
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    if y.size == 0 and prog[j, P_YSH] < 0:
        c = cv[prog[j, P_C]]
        for e in range(n):
            out[e] = xb[e] + c
        return
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    for e in range(n):
        out[e] = xb[e] + yb[e]


def _fwd_sub(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    if y.size == 0 and prog[j, P_YSH] < 0:
        c = cv[prog[j, P_C]]
        for e in range(n):
            out[e] = xb[e] - c
        return
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    for e in range(n):
        out[e] = xb[e] - yb[e]


def _fwd_rsub(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    c = cv[prog[j, P_C]]
    for e in range(out.size):
        out[e] = c - x[e]


def _fwd_neg(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    for e in range(out.size):
        out[e] = -x[e]


def _fwd_mul(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # saves (broadcast): y if x needs a gradient, then x if y does (as mul's record)
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    for e in range(n):
        out[e] = xb[e] * yb[e]
    if s >= 0:
        if prog[j, P_GRADS] & 1:
            for e in range(n):
                sv[s + e] = yb[e]
            s += n
        if prog[j, P_GRADS] & 2:
            for e in range(n):
                sv[s + e] = xb[e]


def _fwd_mul_scalar(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    c = cv[prog[j, P_C]]
    for e in range(out.size):
        out[e] = x[e] * c


def _fwd_div(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # saves (broadcast): y, then x if y needs a gradient (as div's record)
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    for e in range(n):
        out[e] = xb[e] / yb[e]
    if s >= 0:
        save_two(sv, s, yb, xb, prog[j, P_GRADS] & 2)


def _fwd_div_scalar(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    c = cv[prog[j, P_C]]
    for e in range(out.size):
        out[e] = x[e] / c


# ---- forward kernels of pow, maximum/minimum, lerp and the binary ops below (logaddexp,
# copysign, remainder, fmod): out and, for a recorded row, the derivatives the forward saved,
# broadcast, for the inputs needing a gradient (x's first)
def _fwd_pow_scalar(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # x ** p with numpy's fast exponents (x ** 2 is x * x, ...); PyTorch's sqrt for +-0.5.
    # saves: x (the exponent after it is the row's const)
    p = cv[prog[j, P_C]]
    one = out.dtype.type(1)
    for e in range(out.size):
        a = x[e]
        if p == 2:
            out[e] = a * a
        elif p == 0.5:
            out[e] = np.sqrt(a)
        elif p == -0.5:
            out[e] = one / np.sqrt(a)
        elif p == 1:
            out[e] = a
        elif p == -1:
            out[e] = one / a
        elif p == 0:
            out[e] = one
        else:
            out[e] = a ** p
        if s >= 0:
            sv[s + e] = a


def _fwd_rpow(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # c ** x; saves x, out
    c = cv[prog[j, P_C]]
    for e in range(out.size):
        out[e] = c ** x[e]
    if s >= 0:
        save_two(sv, s, x, out, True)


def _fwd_pow(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # x ** y; saves x, y (broadcast), then out if y needs a gradient
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    for e in range(n):
        out[e] = xb[e] ** yb[e]
    if s >= 0:
        save_two(sv, s, xb, yb, True)
        if prog[j, P_GRADS] & 2:
            save_two(sv, s + n + n, out, out, False)


def _fwd_max_min(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # maximum (I0 = 0) or minimum (I0 = 1) as numpy's of (y, x): y on a tie, a nan passes.
    # saves x, y (broadcast)
    n = out.size
    lower = prog[j, P_I0] == 1
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    for e in range(n):
        p = yb[e]
        q = xb[e]
        out[e] = p if (p <= q if lower else p >= q) or p != p else q
    if s >= 0:
        save_two(sv, s, xb, yb, True)


def _fwd_lerp(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # x + w (y - x) for |w| < 0.5, else y - (y - x)(1 - w): the number w is the row's const,
    # 1 - w (rounded from float64, as numpy's) the call's scalar after it
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    w = cv[prog[j, P_C]]
    rest = cv[prog[j, P_C] + 1]
    for e in range(n):
        diff = yb[e] - xb[e]
        out[e] = xb[e] + w * diff if np.abs(w) < 0.5 else yb[e] - diff * rest


def _fwd_logaddexp(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # numpy's logaddexp; saves x, y (broadcast)
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    k = np.empty(1, out.dtype)
    k[0] = 0.6931471805599453                   # log(2)
    for e in range(n):
        p = xb[e]
        q = yb[e]
        if p == q:
            out[e] = p + k[0]
        elif p - q > 0:
            out[e] = p + np.log1p(np.exp(q - p))
        elif p - q <= 0:
            out[e] = q + np.log1p(np.exp(p - q))
        else:
            out[e] = p - q
    if s >= 0:
        save_two(sv, s, xb, yb, True)


def _fwd_copysign(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # copysign(x, y or a number); saves x, out (broadcast) when x needs a gradient
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    scalar = y.size == 0 and prog[j, P_YSH] < 0
    yb = y if scalar or y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    c = cv[prog[j, P_C]] if scalar else xb[0]
    for e in range(n):
        out[e] = np.copysign(xb[e], c if scalar else yb[e])
    if s >= 0 and (scalar or prog[j, P_GRADS] & 1):
        save_two(sv, s, xb, out, True)


def _fwd_remainder(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # numpy's remainder (npy_divmod: the sign of y) by y or a number; saves x, y (broadcast)
    # where y is a tensor needing a gradient
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    scalar = y.size == 0 and prog[j, P_YSH] < 0
    yb = y if scalar or y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    one = out.dtype.type(1)
    zero = one - one
    c = cv[prog[j, P_C]] if scalar else zero
    for e in range(n):
        b = c if scalar else yb[e]
        m = np.fmod(xb[e], b)
        if b != 0:
            if m != 0:
                if (b < 0) != (m < 0):
                    m += b
            else:
                m = np.copysign(zero, b)
        out[e] = m
    if s >= 0 and not scalar and prog[j, P_GRADS] & 2:
        save_two(sv, s, xb, yb, True)


def _fwd_fmod(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # C's fmod (the sign of x) by y or a number; saves as _fwd_remainder
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    scalar = y.size == 0 and prog[j, P_YSH] < 0
    yb = y if scalar or y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    one = out.dtype.type(1)
    c = cv[prog[j, P_C]] if scalar else one
    for e in range(n):
        out[e] = np.fmod(xb[e], c if scalar else yb[e])
    if s >= 0 and not scalar and prog[j, P_GRADS] & 2:
        save_two(sv, s, xb, yb, True)


def _fwd_ternary(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # the three-input ops, by I0: 0 addcmul, 1 addcdiv (input + value * (t1 * t2), t1 / t2;
    # value the call's scalar), 2 clamp(x, min, max) by tensors (either bound may be absent),
    # 3 lerp(x, end, weight) by a tensor. The inputs by role in the int data (0, 1, 2 in those
    # argument orders; clamp's I0 also says which bounds are given, 4 min, 8 max). saves (as the
    # forwards): addcmul/addcdiv value, then the inputs at their params
    at = prog[j, P_K]
    n = out.size
    f = prog[j, P_I0] & 3
    a = v[:0]
    b = v[:0]
    c = v[:0]
    given = np.zeros(3, np.bool_)
    params = np.zeros(3, np.int64)
    for q in range(pints[at]):
        t = at + 1 + 4 * q
        role = pints[t + 1]
        val = operand(v, ext, pints[t], numel(shapes, pints[t + 3]))
        if val.size != n:
            val = expanded(val, n, shapes, pints[t + 3], prog[j, P_OSH])
        if role == 0:
            a = val
        elif role == 1:
            b = val
        else:
            c = val
        given[role] = True
        params[role] = pints[t + 2]
    one = out.dtype.type(1)
    if s >= 0:
        for e in range(n):
            sv[s + params[0] + e] = a[e]
            if given[1]:
                sv[s + params[1] + e] = b[e]
            if given[2]:
                sv[s + params[2] + e] = c[e]
    if f <= 1:
        w = cv[prog[j, P_C]]
        if s >= 0:
            sv[s] = w
        for e in range(n):
            out[e] = a[e] + w * (b[e] / c[e] if f == 1 else b[e] * c[e])
    elif f == 2:        # np.maximum(min, x), then np.minimum(max, .): a nan bound passes
        for e in range(n):
            o = a[e]
            if given[1]:
                o = b[e] if b[e] >= o or b[e] != b[e] else o
            if given[2]:
                o = c[e] if c[e] <= o or c[e] != c[e] else o
            out[e] = o
    else:
        for e in range(n):
            diff = b[e] - a[e]
            out[e] = a[e] + c[e] * diff if np.abs(c[e]) < 0.5 else b[e] - diff * (one - c[e])


ADD = defop("AddBackward0", _add, 2, forward=needs(_fwd_add, "x,y|c", inline=True), x=lambda g: g, y=lambda g: g)
SUB = defop("SubBackward0", _sub, 2, forward=needs(_fwd_sub, "x,y|c", inline=True), x=lambda g: g, y=lambda g: -g)
RSUB = defop("RsubBackward1", _neg, 1, forward=needs(_fwd_rsub, "x,c", inline=True), x=lambda g: -g)
NEG = defop("NegBackward0", _neg, 1, forward=needs(_fwd_neg, "x", inline=True), x=lambda g: -g)
MUL = defop("MulBackward0", _mul, 2, forward=needs(_fwd_mul, "x,y", inline=True), saves_reads=True, x=lambda g, y: g * y, y=lambda g, x: g * x)
# a Python scalar operand c is the row's one saved value
MUL_SCALAR = defop("MulBackward0", _scale, 2, forward=needs(_fwd_mul_scalar, "x,c", inline=True), x=lambda g, node: g * float(node.saved[0]))
DIV = defop("DivBackward0", _div, 2, forward=needs(_fwd_div, "x,y", inline=True), saves_reads=True, x=lambda g, y: g / y, y=lambda g, y, x: -g * (x / y) / y)
DIV_SCALAR = defop("DivBackward0", _div_scalar, 2, forward=needs(_fwd_div_scalar, "x,c", inline=True), x=lambda g, node: g / float(node.saved[0]))
# Tensor.div(Scalar) as ATen composites call it
DIV_SCALAR1 = defop("DivBackward1", _div_scalar, 2, forward=needs(_fwd_div_scalar, "x,c", inline=True), x=lambda g, node: g / float(node.saved[0]))
# x ** p: the row saves x, then the exponent p
POW_SCALAR = defop("PowBackward0", _pow_scalar, 1, forward=needs(_fwd_pow_scalar, "x,c"), saves_reads=True,
                   x=lambda g, x, node: _pow_self(g, x, _number_after(node, 1)))
# c ** x: the row saves x, out, then the base c
RPOW = defop("PowBackward2", _rpow, 1, forward=needs(_fwd_rpow, "x,c"), saves_reads=True,
             x=lambda g, x, out, node: _pow_exponent(g, x, out, _number_after(node, 2)))
# x ** y. As PyTorch: d/dx is 0 where y == 0; d/dy is 0 where x == 0 and y >= 0
POW = defop("PowBackward1", _pow, 2, forward=needs(_fwd_pow, "x,y"), saves_reads=True,
            x=lambda g, x, y: where(y == 0, 0, g * (y * x ** (y - 1))),
            y=lambda g, x, y, out: g * where(_both(x == 0, y >= 0), 0, out * x.log()))


def _number_after(node, arrays):
    """The Python number a row saves after its output-shaped arrays (pow's exponent or base)."""
    return builtins.float(node.saved[arrays * math.prod(node.shape)])


def _pow_self(g, x, p):
    """PyTorch's pow_backward: zeros for a zero exponent (even where x ** -1 is inf)."""
    return _wrap(np.zeros(x.shape, x.dtype.np)) if p == 0 else g * (p * x ** (p - 1))


def unary_args(node, k):
    """The k numeric arguments a unary_op row saves after x or its derivative (an activation's
    slope, alpha...), as Python floats."""
    n = math.prod(node.shape)
    return tuple(builtins.float(v) for v in node.saved[n: n + k])


def _pow_exponent(g, x, out, c):
    """PyTorch's pow_backward_exponent for a number base c: 0 ** x has no gradient for x >= 0."""
    with quiet():
        log_c = builtins.float(np.log(np.float64(c)))      # -inf for 0, nan below
    return g * (where(x >= 0, 0, out * log_c) if c == 0 else out * log_c)


def _both(a, b):
    """a and b, for bool tensors."""
    return where(a, b, False)


@torch_names("add", "__add__", "__radd__")
def add(x, y, alpha=1):
    if type(alpha) is not builtins.int:
        _check_alpha_type(alpha)
    if alpha == 1 and isinstance(x, Tensor):                              # fast paths
        xa = x._a
        xd = xa.dtype
        if xd is _F64 and not xa.ndim:             # (see _F64_SCALARS)
            if type(y) is builtins.float:
                return record(ADD, _array(builtins.float(xa) + y), x, scalars=(y,))
            if isinstance(y, Tensor):
                ya = y._a
                if ya.dtype is _F64 and not ya.ndim:
                    out = _array(builtins.float(xa) + builtins.float(ya))
                    if x._rg and y._rg and (not _GRAD_OFF or _MODE.enabled):
                        return record_pair(ADD, out, x, y)
                    return record(ADD, out, x, y)
        if xd.kind == "f":
            if type(y) is builtins.float:
                try:
                    return record(ADD, x._a + y, x, scalars=(y,))
                except RuntimeWarning:      # numpy's, with warnings made errors (see _quiet)
                    return record(ADD, _quiet(np.add, x._a, y), x, scalars=(y,))
            if isinstance(y, Tensor) and y._a.dtype is x._a.dtype:   # (a bias too: 5 us less)
                try:
                    return record(ADD, x._a + y._a, x, y)
                except RuntimeWarning:
                    return record(ADD, _quiet(np.add, x._a, y._a), x, y)
                except ValueError:      # shapes that do not broadcast: torch's error below
                    pass
    if not isinstance(x, Tensor):
        x, y = y, x
    xa, ya, yt = _operands(x, y)
    if alpha != 1:
        _check_alpha(xa, ya, alpha)
        return add(x, mul(yt if yt is not None else _wrap(np.asarray(ya)), alpha))
    _check_bcast(xa, ya)
    return record(ADD, _arr(_quiet(np.add, xa, ya)), x, yt, scalars=_scalar(yt, ya))


def _scalar(yt, ya):
    """The scalar operand of a binary op, for compiled replay (record's scalars): () if the
    operand is a tensor or an array."""
    return () if yt is not None or np.ndim(ya) else (builtins.float(ya),)


def _check_alpha_type(alpha):
    if isinstance(alpha, Tensor) or not isinstance(alpha, (builtins.int, builtins.float, np.number)):
        raise TypeError(f"add(): argument 'alpha' must be Number, not {type(alpha).__name__}")


def _check_alpha(xa, ya, alpha):
    if isinstance(alpha, builtins.float) and np.result_type(xa, ya).kind in "biu":
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                           "point number.")


def _check_sub_bool(x, y):
    xb = x._a.dtype.kind == "b"
    yb = y._a.dtype.kind == "b" if isinstance(y, Tensor) else isinstance(y, builtins.bool)
    if xb and yb:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    if xb or yb:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If "
                           "you are trying to invert a mask, use the `~` or `logical_not()` operator "
                           "instead.")


@torch_names("sub", "subtract", "__sub__")
def sub(x, y, alpha=1):
    if type(alpha) is not builtins.int:
        _check_alpha_type(alpha)
    if x._a.dtype.kind == "b" or (isinstance(y, Tensor) and y._a.dtype.kind == "b"):
        _check_sub_bool(x, y)
    if alpha != 1:
        _check_alpha(x._a, y._a if isinstance(y, Tensor) else np.asarray(y), alpha)
        return sub(x, mul(y, alpha))
    xa = x._a
    if xa.dtype is _F64 and not xa.ndim:           # (see _F64_SCALARS)
        if type(y) is builtins.float:
            return record(SUB, np.asarray(builtins.float(xa) - y), x, scalars=(y,))
        if isinstance(y, Tensor) and y._a.dtype is _F64 and not y._a.ndim:
            out = _array(builtins.float(xa) - builtins.float(y._a))
            if x._rg and y._rg and (not _GRAD_OFF or _MODE.enabled):
                return record_pair(SUB, out, x, y)
            return record(SUB, out, x, y)
    xa, ya, yt = _operands(x, y)
    _check_bcast(xa, ya)
    return record(SUB, _arr(_quiet(np.subtract, xa, ya)), x, yt, scalars=_scalar(yt, ya))


@torch_names("__rsub__")
def rsub(x, y):
    """y - x for a Python number y (x.__rsub__)."""
    if isinstance(y, Tensor):
        return sub(y, x)
    if x._a.dtype.kind == "b":
        _check_sub_bool(x, y)
    xa, ya, _ = _operands(x, y)
    return record(RSUB, _arr(_quiet(np.subtract, ya, xa)), x, scalars=_scalar(None, ya))


_NEG_BOOL = ("Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
             "invert a mask, use the `~` or `logical_not()` operator instead.")


@torch_names("neg", "negative", "__neg__")
def neg(x):
    xa = x._a
    if xa.dtype is _F64 and not xa.ndim:           # (see _F64_SCALARS)
        return record(NEG, np.asarray(-builtins.float(xa)), x)
    if xa.dtype.kind == "b":
        raise RuntimeError(_NEG_BOOL)
    return record(NEG, _arr(-xa), x)


_MUL_READS = reads_of(MUL)     # (the fast path's table: reads(MUL, ...) without its call)


@torch_names("mul", "multiply", "__mul__", "__rmul__")
def mul(x, y):
    if isinstance(x, Tensor):                                             # fast paths
        xa = x._a
        xd = xa.dtype
        if xd is _F64 and not xa.ndim:             # (see _F64_SCALARS)
            if type(y) is builtins.float:
                return record(MUL_SCALAR, _array(builtins.float(xa) * y), x, consts=(y,))
            if isinstance(y, Tensor):
                ya = y._a
                if ya.dtype is _F64 and not ya.ndim:
                    fx = builtins.float(xa)
                    fy = builtins.float(ya)
                    out = _array(fx * fy)
                    if x._rg and y._rg and (not _GRAD_OFF or _MODE.enabled):
                        return record_pair(MUL, out, x, y, y, x, fy, fx)      # (_MUL_READS[3])
                    if not ((x._rg or y._rg) and _MODE.enabled):
                        return record(MUL, out, x, y)
                    return record(MUL, out, x, y, saves=_MUL_READS[x._rg + 2 * y._rg](x, y))
        if xd.kind == "f":
            if type(y) is builtins.float:
                try:
                    return record(MUL_SCALAR, x._a * y, x, consts=(y,))
                except RuntimeWarning:      # numpy's, with warnings made errors (see _quiet)
                    return record(MUL_SCALAR, _quiet(np.multiply, x._a, y), x, consts=(y,))
            if isinstance(y, Tensor) and y._a.dtype is x._a.dtype and y._a.shape == x._a.shape:
                try:
                    out = x._a * y._a
                except RuntimeWarning:
                    out = _quiet(np.multiply, x._a, y._a)
                if not ((x._rg or y._rg) and _MODE.enabled):       # (_needs_grad, inline)
                    return record(MUL, _arr(out), x, y)
                return record(MUL, out, x, y, saves=_MUL_READS[x._rg + 2 * y._rg](x, y))
    if not isinstance(x, Tensor):
        x, y = y, x
    xa, ya, yt = _operands(x, y)
    if yt is None and np.ndim(ya) == 0:
        return record(MUL_SCALAR, _arr(_quiet(np.multiply, xa, ya)), x,
                      consts=(builtins.float(ya),))
    _check_bcast(xa, ya)
    out = _arr(_quiet(np.multiply, xa, ya))
    if not _needs_grad(x, yt):
        return record(MUL, out, x, yt)
    return record(MUL, out, x, yt, saves=reads(MUL, x, yt if yt is not None else ya))


@torch_names("div", "divide", "true_divide", "__truediv__")
def div(x, y, rounding_mode=None):
    if rounding_mode not in (None, "trunc", "floor"):
        raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                           f"found '{rounding_mode}'")
    xa = x._a
    if rounding_mode is None and xa.dtype is _F64 and not xa.ndim:      # (see _F64_SCALARS)
        if type(y) is builtins.float and y:
            return record(DIV_SCALAR, np.asarray(builtins.float(xa) / y), x, consts=(y,))
        if isinstance(y, Tensor) and y._a.dtype is _F64 and not y._a.ndim and y._a:
            fx = builtins.float(xa)
            fy = builtins.float(y._a)
            out = _array(fx / fy)
            if x._rg and y._rg and (not _GRAD_OFF or _MODE.enabled):
                return record_pair(DIV, out, x, y, y, x, fy, fx)      # (reads(DIV, x, y))
            if not ((x._rg or y._rg) and _MODE.enabled):
                return record(DIV, out, x, y)
            return record(DIV, out, x, y, saves=reads(DIV, x, y))
    xa, ya, yt = _operands(x, y)
    if rounding_mode is not None:
        r = _quiet(np.floor_divide, xa, ya) if rounding_mode == "floor" else \
            np.trunc(_quiet(np.divide, xa, ya))
        return _wrap(_arr(r.astype(result_dtype(x, y))))
    if xa.dtype.kind != "f":   # true division of integers gives the default float dtype
        xa = xa.astype(dtypes.default_float.np)
        ya = ya.astype(dtypes.default_float.np) if isinstance(ya, np.ndarray) else ya
    if yt is None and np.ndim(ya) == 0:
        return record(DIV_SCALAR, _arr(_quiet(np.divide, xa, ya)), x, consts=(builtins.float(ya),))
    _check_bcast(xa, ya)
    out = _arr(_quiet(np.divide, xa, ya))
    if not _needs_grad(x, yt):
        return record(DIV, out, x, yt)
    return record(DIV, out, x, yt, saves=reads(DIV, x, yt if yt is not None else ya))


@torch_names("__rtruediv__")
def rdiv(x, y):
    """y / x for a Python number y; PyTorch records it as y * reciprocal(x)."""
    return mul(reciprocal(x), y)


@torch_names("pow", "__pow__", inplace=("pow_", "__ipow__"))
def pow(x, y):
    if not isinstance(x, Tensor):
        return _rpow_fn(y, x)
    xa, ya, yt = _operands(x, y)
    if yt is None and (type(ya) is builtins.int or type(ya) is builtins.float or np.ndim(ya) == 0):
        if xa.dtype.kind in "biu" and np.asarray(ya).dtype.kind in "iu" and ya < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        p = builtins.float(ya)
        out = _arr(quietly(_pow_number, xa, ya, p))
        return record(POW_SCALAR, out, x, saves=(x,), consts=(p,))
    _check_bcast(xa, ya)
    with quiet():
        out = _arr(_tensor_pow(xa, ya))
    return _record_reads(POW, out, x, yt, xa, ya)


def _pow_number(xa, ya, p):
    # PyTorch computes x ** +-0.5 with sqrt: (-0.) ** -0.5 is -inf, (-inf) ** 0.5 nan
    return np.sqrt(xa) if p == 0.5 else 1 / np.sqrt(xa) if p == -0.5 else xa ** ya


def _tensor_pow(x, y):
    """x ** y elementwise as PyTorch's pow(Tensor, Tensor): C's pow, (-inf) ** 0.5 = inf (numpy
    takes sqrt for a 0-d 0.5, which gives nan)."""
    return np.power(np.atleast_1d(x), np.atleast_1d(y)).reshape(
        np.broadcast_shapes(np.shape(x), np.shape(y)))


@torch_names("__rpow__")
def _rpow_fn(x, c):
    """c ** x for a Python number c."""
    xa = x._a if x._a.dtype.kind == "f" else x._a.astype(dtypes.default_float.np)
    with quiet():
        out = _arr(np.power(xa.dtype.type(c), xa))
    return _record_reads(RPOW, out, x, None, xa, None, consts=(c,))


for _f in (add, sub, mul):
    samples(_f, *BINARY, ((2, 3), (2, 3), {"alpha": 2.0}) if _f is not mul else ((2,), (1,)))
samples(div, *[(a, NonZero(b) if isinstance(b, tuple) else b) for a, b in BINARY])
samples(pow, (Pos((3,)), 2), (Pos((2, 3)), 0.5), (Pos((2, 3)), -1.5), ((3,), 3), ((3,), 0),
        (Pos((2, 3)), (2, 3)), (Pos((2, 1)), (1, 3)), (Pos(()), (3,)))
samples(rsub, ((3,), 2.0), ((), 1))
samples(rdiv, (NonZero((3,)), 2.0))
samples(_rpow_fn, ((3,), 2.0), ((2, 3), 0.5))
kinks(pow, (Given([-2.0, 0.0, 0.0, 0.0, 2.0, -2.0]), Given([2.0, 2.0, 0.0, -1.0, 0.5, 0.5])),
      (Given([0.0, 1.0, -1.0]), 0.0), (Given([0.0, 1.0, -1.0]), 2.0))
kinks(_rpow_fn, (Given([-1.0, 0.0, 2.0]), 0.0), (Given([-1.0, 0.0, 2.0]), -2.0))


# ---- maximum, minimum: the row saves x and y; where, masked_fill: the condition
def _max_min(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x, y (y at I1 when apart); I0 = 1: minimum. As PyTorch: a tie's gradient is split
    # evenly, the loser's is 0 (selected), a nan passes it to both
    lower = rows[i, I0] == 1
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    for j in range(n):
        p = sv[s + j]
        q = sv[t + j]
        if p == q:
            if a >= 0:
                g[a + j] += g[o + j] * 0.5
            if b >= 0:
                g[b + j] += g[o + j] * 0.5
            continue
        if a >= 0 and not (p > q if lower else p < q):
            g[a + j] += g[o + j]
        if b >= 0 and not (p < q if lower else p > q):
            g[b + j] += g[o + j]


# I0: 0 maximum, 1 minimum
MAXIMUM = defop("MaximumBackward0", _max_min, 2, forward=needs(_fwd_max_min, "x,y"), saves_reads=True,
                x=lambda g, x, y: where(x == y, g / 2, g).masked_fill(x < y, 0),
                y=lambda g, x, y: where(x == y, g / 2, g).masked_fill(x > y, 0))
MINIMUM = defop("MinimumBackward0", _max_min, 2, forward=needs(_fwd_max_min, "x,y"), saves_reads=True,
                x=lambda g, x, y: where(x == y, g / 2, g).masked_fill(x > y, 0),
                y=lambda g, x, y: where(x == y, g / 2, g).masked_fill(x < y, 0))


def _fwd_where(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # where(mask, x, y), x or y a number (the scalar after the consts) when absent; masked_fill
    # (I0 = 1) is where(mask, y, x). The bool mask is 0/1 in the int data ([slot, shape id] at
    # P_K: Trace._mask_operand). saves: the mask, 0/1 at the output's shape (as the forwards)
    n = out.size
    at = prog[j, P_K]
    mask = pints[pints[at]: pints[at] + numel(shapes, pints[at + 1])]
    mb = mask if mask.size == n else expanded(mask, n, shapes, pints[at + 1], prog[j, P_OSH])
    swap = prog[j, P_I0] == 1
    c = cv[prog[j, P_C]]
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH]) \
        if prog[j, P_XSH] >= 0 else x
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH]) \
        if prog[j, P_YSH] >= 0 else y
    for e in range(n):
        p = xb[e] if xb.size else c
        q = yb[e] if yb.size else c
        out[e] = (q if swap else p) if mb[e] != 0 else (p if swap else q)
    if s >= 0:
        for e in range(n):
            sv[s + e] = 1 if mb[e] != 0 else 0


WHERE = defop("WhereBackward0", _select, 2, forward=needs(_fwd_where, "m"), saves_reads=True,
              x=lambda g, cond: where(cond, g, 0),
              y=lambda g, cond: where(cond, 0, g))


def _binary_masks(x, y, fn, op, name):
    if not isinstance(y, Tensor):
        raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not "
                        f"{type(y).__name__}")
    xa, ya, yt = _operands(x, y)
    _check_bcast(xa, ya)
    out = _arr(fn(ya, xa))     # on a tie numpy returns its second operand, PyTorch its first
    return _record_reads(op, out, x, yt, xa, ya, i0=0 if fn is np.maximum else 1)


@torch_names("maximum")
def maximum(x, other):
    return _binary_masks(x, other, np.maximum, MAXIMUM, "maximum")


@torch_names("minimum")
def minimum(x, other):
    return _binary_masks(x, other, np.minimum, MINIMUM, "minimum")


@torch_names(functions=("where",))
def where(condition, input=None, other=None):
    if (input is None) != (other is None):
        raise TypeError("where() received an invalid combination of arguments - got (Tensor, "
                        "Tensor), but expected (Tensor condition) or (Tensor condition, Tensor "
                        "input, Tensor other)")
    c = condition._a if isinstance(condition, Tensor) else np.asarray(condition)
    if input is None and other is None:
        return tuple(_wrap(i.astype(np.int64)) for i in np.nonzero(c))
    if c.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with "
                           f"dtype {dtypes.from_numpy_dtype(c.dtype).tensor_type[:-6]}")
    x = input if isinstance(input, Tensor) else None
    y = other if isinstance(other, Tensor) else None
    if x is None and y is None:
        d = result_dtype(input, other)
        return _wrap(_arr(np.where(c, input, other).astype(d)))
    d = result_dtype(*[v for v in (input, other)])
    xa = x._a.astype(d, copy=False) if x is not None else np.asarray(input, d)
    ya = y._a.astype(d, copy=False) if y is not None else np.asarray(other, d)
    _broadcast_shape(_broadcast_shape(c.shape, xa.shape), ya.shape)     # (PyTorch's errors)
    out = _arr(np.where(c, xa, ya))
    # the condition and a number operand for the forward kernel
    scalars = (condition,) if x is not None and y is not None else (condition, input if x is None else other)
    if not _needs_grad(x, y):
        return record(WHERE, out, x, y, scalars=scalars) if out.dtype.kind == "f" else _wrap(out)
    return _record_reads(WHERE, out, x, y, xa, ya, scalars=scalars,
                         cond=condition if isinstance(condition, Tensor) else c)


# the value's gradient is summed over the filled positions by un-broadcasting (it is 0-dim)
MASKED_FILL = defop("MaskedFillBackward0", _select, 2, forward=needs(_fwd_where, "m"), saves_reads=True,
                    x=lambda g, cond: g.masked_fill(cond, 0))
MASKED_FILL_T = defop("MaskedFillBackward1", _select, 2, forward=needs(_fwd_where, "m"), saves_reads=True,
                      x=lambda g, cond: g.masked_fill(cond, 0),
                      y=lambda g, cond: where(cond, g, 0))


@torch_names("masked_fill")
def masked_fill(x, mask, value):
    """x with value where mask (broadcast to x) is True; a 0-d tensor value gets the gradient
    summed over the filled positions."""
    m = mask._a if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{dtypes.c_name(m.dtype)}")
    a = x._a
    _broadcast_shape(m.shape, a.shape)      # (PyTorch's error; a larger mask broadcasts x)
    v = value if isinstance(value, Tensor) else None
    if v is not None and v._a.ndim != 0:
        raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor "
                           f"with {v._a.ndim} dimension(s).")
    fill = v._a if v is not None else value
    out = _arr(np.where(m, np.asarray(fill, a.dtype), a))
    op = MASKED_FILL_T if v is not None else MASKED_FILL
    scalars = (mask,) if v is not None else (mask, value)     # (for the forward kernel: I0 = 1)
    if not _needs_grad(x, v):
        return record(op, out, x, v, i0=1, scalars=scalars) if a.dtype.kind == "f" else _wrap(out)
    return _record_reads(op, out, x, v, a, fill, i0=1, scalars=scalars,
                         cond=mask if isinstance(mask, Tensor) else m)


_MASK = _wrap(np.array([[True, False, True], [False, False, True]]))
samples(masked_fill, ((2, 3), _MASK, 0.5), ((2, 3), _wrap(np.array([False, True, True])), -1.0),
        ((2, 3), _MASK, ()), ((), _wrap(np.array(True)), 2.0), ((3,), _MASK, 0.5), ((1, 3), _MASK, ()))

samples(maximum, *[c for c in BINARY if isinstance(c[1], tuple)])
samples(minimum, ((2, 3), (2, 3)), ((2, 1), (1, 3)), ((), (3,)))
kinks(maximum, (Given([1.0, 2.0, 3.0]), Given([1.0, 0.0, 3.0])))
kinks(minimum, (Given([1.0, 2.0, 3.0]), Given([1.0, 0.0, 3.0])))
samples(where, (_MASK, (2, 3), (2, 3)), (_MASK, (3,), (2, 1)), (_MASK, (2, 3), 0.5),
        (_MASK, 1.0, (2, 3)), (_wrap(np.array(True)), (), (3,)),
        (_wrap(np.array([[True], [False]])), (2, 3), (3,)), (_wrap(np.array(False)), (), ()))


# ======================= elementwise unary =====================================================
def _over_saved(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    for j in range(n):
        g[a + j] += g[o + j] / sv[s + j]


def _sqrt(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    for j in range(n):
        g[a + j] += g[o + j] / (sv[s + j] + sv[s + j])


def _tanh(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    for j in range(n):
        y = sv[s + j]
        g[a + j] += g[o + j] * (1 - y * y)


def _sigmoid(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    for j in range(n):
        y = sv[s + j]
        g[a + j] += g[o + j] * y * (1 - y)


def _relu(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # PyTorch: zero where out <= 0, so a nan passes its gradient. Branch-free, unsigned
    # indices: this vectorises (a branch on the sign mispredicts half the time)
    for j in range(n):
        g[np.uint64(a + j)] += g[np.uint64(o + j)] if not sv[np.uint64(s + j)] <= 0 else 0


def _abs(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    for j in range(n):
        x = sv[s + j]
        if x > 0:
            g[a + j] += g[o + j]
        elif x < 0:
            g[a + j] -= g[o + j]


def _reciprocal(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    for j in range(n):
        y = sv[s + j]
        g[a + j] -= g[o + j] * y * y


def _fwd_exp(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    for e in range(out.size):
        out[e] = np.exp(x[e])
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = out[e]


def _fwd_log(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    for e in range(out.size):
        out[e] = np.log(x[e])
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = x[e]


def _fwd_tanh(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    tanh_into(out, x)       # as the eager float64 forward (float32 rounds the float64 value)
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = out[e]


def _fwd_sigmoid(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    one = out.dtype.type(1)  # (an untyped 1 would compute float32 in float64)
    for e in range(out.size):       # as the eager forward: exp(-|x|) never overflows
        z = np.exp(-np.abs(x[e]))
        out[e] = one / (one + z) if x[e] >= 0 else z / (one + z)
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = out[e]


def _fwd_relu(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    zero = out.dtype.type(0)
    for e in range(out.size):
        out[e] = zero if zero >= x[e] else x[e]      # np.maximum(0, x): nan passes, -0. gives 0
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = out[e]


EXP = defop("ExpBackward0", _times_saved, forward=needs(_fwd_exp, "x", inline=True), saves_reads=True, x=lambda g, out: g * out)
LOG = defop("LogBackward0", _over_saved, forward=needs(_fwd_log, "x", inline=True), saves_reads=True, x=lambda g, x: g / x)
def _fwd_sqrt(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    for e in range(out.size):
        out[e] = np.sqrt(x[e])
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = out[e]


def _fwd_abs(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    for e in range(out.size):
        out[e] = np.abs(x[e])
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = x[e]


def _fwd_reciprocal(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    one = out.dtype.type(1)  # (an untyped 1 would compute float32 in float64)
    for e in range(out.size):
        out[e] = one / x[e]
    if s >= 0:
        for e in range(out.size):
            sv[s + e] = out[e]


SQRT = defop("SqrtBackward0", _sqrt, forward=needs(_fwd_sqrt, "x", inline=True), saves_reads=True, x=lambda g, out: g / (2 * out))
TANH = defop("TanhBackward0", _tanh, forward=needs(_fwd_tanh, "x", inline=True), saves_reads=True, x=lambda g, out: tanh_backward(g, out))
SIGMOID = defop("SigmoidBackward0", _sigmoid, forward=needs(_fwd_sigmoid, "x", inline=True), saves_reads=True, x=lambda g, out: sigmoid_backward(g, out))
# PyTorch's threshold_backward(g, out, 0): selects, so a nan output passes its gradient
RELU = defop("ReluBackward0", _relu, forward=needs(_fwd_relu, "x", inline=True), saves_reads=True, x=lambda g, out: where(out <= 0, 0, g))
ABS = defop("AbsBackward0", _abs, forward=needs(_fwd_abs, "x", inline=True), saves_reads=True, x=lambda g, x: g * x.sign())
RECIPROCAL = defop("ReciprocalBackward0", _reciprocal, forward=needs(_fwd_reciprocal, "x", inline=True), saves_reads=True,
                   x=lambda g, out: -g * (out * out))


def _float_input(x):
    a = x._a
    return a if a.dtype.kind == "f" else a.astype(dtypes.default_float.np)


# numpy >= 2 returns a ufunc's 0-d result as an array with out=..., not as a scalar that record()
# wraps again (~0.3 us of a 0-dim op)
_AS_ARRAY = {"out": ...} if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else {}


def _unary(op, fn):
    save_input, save_out = (registry.OPS[op].saved(1) == (name,) for name in ("x", "out"))
    if isinstance(fn, np.ufunc) and _AS_ARRAY:
        fn = functools.partial(fn, **_AS_ARRAY)

    def f(x):
        a = x._a
        if a.dtype.kind != "f":
            a = a.astype(dtypes.default_float.np)
        try:            # (numpy's warnings are filtered, see _core.quiet; made errors, redone quietly)
            out = fn(a)
        except (RuntimeWarning, FloatingPointError):
            out = quietly(fn, a)
        return record(op, out, x, saves=(x,) if save_input else (), save_out=save_out)
    return f


exp = torch_names("exp")(_unary(EXP, np.exp))
log = torch_names("log")(_unary(LOG, np.log))
sqrt = torch_names("sqrt")(_unary(SQRT, np.sqrt))
def _tanh_eager(a, out=None):
    """float64: the replay's tanh (vectorised: 3x numpy's speed); numpy's otherwise (its float32
    tanh is vectorised). out: write there (tanh_)."""
    if a.dtype != np.float64:
        return np.tanh(a, out=out)
    res = np.empty(a.shape)
    codegen.interpreter().tanh_into(res.reshape(-1), np.ascontiguousarray(a).reshape(-1))
    if out is None:
        return res
    out[...] = res
    return out


_tanh_any = _unary(TANH, _tanh_eager)


@torch_names("tanh")
def tanh(x):
    a = x._a
    if a.dtype is _F64:     # the compiled kernel: no numpy arithmetic, no warnings to silence
        if not a.ndim:      # its scalar function: no arrays to make and unbox (~1 us)
            return record(TANH, np.asarray(codegen.interpreter().tanh_value(builtins.float(a))),
                          x, save_out=True)
        return record(TANH, _tanh_eager(a), x, save_out=True)
    return _tanh_any(x)


# ---- tanh_backward: what tanh's create_graph backward records, one op as in PyTorch
# (TanhBackwardBackward0), not the three of g * (1 - out * out)
def _tanh_backward(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: the output y, then the gradient x if y needs a gradient
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    for j in range(n):
        y = sv[s + j]
        if a >= 0:
            g[a + j] += g[o + j] * (1 - y * y)
        if b >= 0:
            g[b + j] += g[o + j] * (-2 * y * sv[t + j])


def _fwd_activation_backward(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # tanh_backward (I1 = 0) or sigmoid_backward (I1 = 1) of the gradient x and the output y;
    # saves (as their record): y, then x if y needs a gradient
    if prog[j, P_I1]:
        sigmoid_backward_into(out, x, y)
    else:
        tanh_backward_into(out, x, y)
    if s >= 0:
        save_two(sv, s, y, x, prog[j, P_GRADS] & 2)


TANH_BACKWARD = defop("TanhBackwardBackward0", _tanh_backward, 2, forward=needs(_fwd_activation_backward, "x,y,same"),
                      saves_reads=True, x=lambda g, y: tanh_backward(g, y), y=lambda g, y, x: g * (-2 * y * x))


def _pointwise(kernel, g, y):
    """kernel(out, g, y) over flat arrays, into a new array of g's shape: the compiled replay's
    kernel run eagerly, so both round alike."""
    out = np.empty(g.shape, g.dtype)
    kernel(out.reshape(-1), np.ascontiguousarray(g).reshape(-1), np.ascontiguousarray(y).reshape(-1))
    return out


def _activation_backward(op, name, which, grad_output, output):
    """tanh_backward or sigmoid_backward (which: their forward kernel's I1): the compiled
    replay's kernel `name`_into run eagerly, the row saving what the formulas read."""
    if grad_output._a.shape != output._a.shape or grad_output._a.dtype != output._a.dtype:
        raise RuntimeError(f"{name}: grad_output and output must have one shape and dtype")
    out = _pointwise(getattr(codegen.interpreter(), name + "_into"), grad_output._a, output._a)
    return record(op, out, grad_output, output, saves=reads(op, grad_output, output), i1=which)


def tanh_backward(grad_output, output):
    """PyTorch's tanh_backward (aten): grad_output * (1 - output ** 2), tanh's derivative formula."""
    return _activation_backward(TANH_BACKWARD, "tanh_backward", 0, grad_output, output)


# ---- sigmoid_backward: sigmoid's, as tanh_backward (SigmoidBackwardBackward0)
def _sigmoid_backward(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: the output y, then the gradient x if y needs a gradient
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    for j in range(n):
        y = sv[s + j]
        if a >= 0:
            g[a + j] += g[o + j] * (1 - y) * y
        if b >= 0:
            g[b + j] += g[o + j] * sv[t + j] * (1 - 2 * y)


SIGMOID_BACKWARD = defop("SigmoidBackwardBackward0", _sigmoid_backward, 2,
                         forward=needs(_fwd_activation_backward, "x,y,same"), saves_reads=True,
                         x=lambda g, y: sigmoid_backward(g, y), y=lambda g, y, x: g * x * (-2 * y + 1))


def sigmoid_backward(grad_output, output):
    """PyTorch's sigmoid_backward (aten): grad_output * (1 - output) * output."""
    return _activation_backward(SIGMOID_BACKWARD, "sigmoid_backward", 1, grad_output, output)


def _grad_with_graph(method):
    """f(x, g): the gradient of x.method() with create_graph, by the calling tensor's own library
    (jitgrad or torch): the result's node is TanhBackwardBackward0 (SigmoidBackwardBackward0) in
    both."""
    def f(x, g):
        lib = sys.modules[type(x).__module__.partition(".")[0]]
        with lib.enable_grad():         # (gradcheck evaluates it on inputs needing no gradient too)
            x = x if x.requires_grad else x.detach().requires_grad_()
            return lib.autograd.grad(getattr(x, method)(), x, g, create_graph=True)[0]
    f.__name__ = f.__qualname__ = f"_{method}_grad_with_graph"
    return f


_tanh_grad_with_graph, _sigmoid_grad_with_graph = _grad_with_graph("tanh"), _grad_with_graph("sigmoid")
for _f in (_tanh_grad_with_graph, _sigmoid_grad_with_graph):
    samples(_f, ((), ()), ((3,), (3,)), ((2, 3), (2, 3)))
SAME_IN_TORCH = (_tanh_grad_with_graph, _sigmoid_grad_with_graph)    # torch runs them as is
reciprocal = torch_names("reciprocal")(_unary(RECIPROCAL, np.reciprocal))


@torch_names("sigmoid")
def sigmoid(x):
    a = _float_input(x)
    with quiet():
        out = _arr(np.where(a >= 0, 1 / (1 + np.exp(-np.abs(a))), np.exp(-np.abs(a)) / (1 + np.exp(-np.abs(a))))
                   .astype(a.dtype))
    return record(SIGMOID, out, x, save_out=True)


_ZEROS = {}     # dtype -> a 0-d zero of it: maximum takes it ~0.4 us faster than a new scalar


@torch_names("relu")
def relu(x):
    a = x._a
    zero = _ZEROS.get(a.dtype)
    if zero is None:
        zero = _ZEROS[a.dtype] = np.zeros((), a.dtype)
    # numpy's maximum returns its second operand on a tie, PyTorch its first: relu(-0.) is -0.
    return record(RELU, _arr(np.maximum(zero, a)), x, save_out=True)


@torch_names("abs", "__abs__")
def abs(x):
    if x._a.dtype.kind == "b":
        raise NotImplementedError("\"abs_cpu\" not implemented for 'Bool'")
    return record(ABS, _arr(np.abs(x._a)), x, saves=reads(ABS, x, None))


for _f in (exp, tanh, sigmoid, neg):
    samples(_f, *UNARY)
for _f in (log, sqrt):
    samples(_f, *[(Pos(c[0]),) for c in UNARY])
for _f in (relu, abs, reciprocal):
    samples(_f, *[(NonZero(c[0]),) for c in UNARY])
for _f, _n in ((exp, "exp"), (log, "log"), (sqrt, "sqrt"), (tanh, "tanh"), (reciprocal, "reciprocal")):
    _f.__name__ = _n


# ---- forward kernels of the unary_op table (compiled replay, engine/replay.py). One kernel per
# family, the op picked by the row's I0 (unary_op's replay id): only the function differs, and
# each distinct kernel costs a compile. Each writes out and, for a recorded row, the derivative
# (or mask) the forward saved, in the values' dtype as numpy computes them (constants typed:
# an untyped 1 or 0.5 would compute float32 in float64).
def _fwd_unary(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # ids: the U_* names below the kernel. The differentiable ones save what their formula reads
    # (x, or out for tan, expm1, exp2 and rsqrt; then clamp's bounds), for _unary_math
    f = prog[j, P_I0]
    n = out.size
    one = out.dtype.type(1)
    zero = one - one
    k = np.empty(1, out.dtype)
    if f < 18:     # (a loop per op: one that branches per element does not vectorise)
        if f == 0:
            for e in range(n):
                out[e] = np.sin(x[e])
        elif f == 1:
            for e in range(n):
                out[e] = np.cos(x[e])
        elif f == 2:
            for e in range(n):
                out[e] = np.tan(x[e])
        elif f == 3:
            for e in range(n):
                out[e] = np.sinh(x[e])
        elif f == 4:
            for e in range(n):
                out[e] = np.cosh(x[e])
        elif f == 5:
            for e in range(n):
                out[e] = np.arcsin(x[e])
        elif f == 6:
            for e in range(n):
                out[e] = np.arccos(x[e])
        elif f == 7:
            for e in range(n):
                out[e] = np.arctan(x[e])
        elif f == 8:
            for e in range(n):
                out[e] = np.log1p(x[e])
        elif f == 9:
            for e in range(n):
                out[e] = np.expm1(x[e])
        elif f == 10:
            for e in range(n):
                out[e] = np.exp2(x[e])
        elif f == 11:
            for e in range(n):
                out[e] = np.log2(x[e])
        elif f == 12:
            for e in range(n):
                out[e] = np.log10(x[e])
        elif f == 13:
            for e in range(n):
                out[e] = one / np.sqrt(x[e])
        elif f == 14:
            for e in range(n):
                out[e] = x[e] * x[e]
        elif f == 15:
            for e in range(n):
                out[e] = np.arccosh(x[e])
        elif f == 16:
            for e in range(n):
                out[e] = np.arcsinh(x[e])
        else:
            for e in range(n):
                out[e] = np.arctanh(x[e])
        if s >= 0:
            read = out if f == 2 or f == 9 or f == 10 or f == 13 else x
            for e in range(n):
                sv[s + e] = read[e]
    elif f == 18:                               # sign: 0 for nan and for -0. (numpy's sign)
        for e in range(n):
            out[e] = one if x[e] > 0 else -one if x[e] < 0 else zero
    elif f == 19:                               # floor
        for e in range(n):
            out[e] = np.floor(x[e])
    elif f == 20:                               # ceil
        for e in range(n):
            out[e] = np.ceil(x[e])
    elif f == 21:                               # trunc
        for e in range(n):
            out[e] = np.trunc(x[e])
    elif f == 22:                               # round (half to even)
        for e in range(n):
            out[e] = np.rint(x[e])
    elif f == 27:                               # round(decimals) as numpy: rint(x * 10^d) / 10^d
        d = cv[prog[j, P_C]]
        k[0] = 10.0 ** np.abs(np.float64(d))
        for e in range(n):
            out[e] = np.rint(x[e] * k[0]) / k[0] if d >= 0 else np.rint(x[e] / k[0]) * k[0]
    elif f == 23:                               # nan_to_num(nan, posinf, neginf); saves x
        c = prog[j, P_C]
        for e in range(n):
            a = x[e]
            out[e] = cv[c] if a != a else cv[c + 1] if a == np.inf else cv[c + 2] if a == -np.inf else a
        if s >= 0:
            for e in range(n):
                sv[s + e] = x[e]
    elif f >= 24:                               # clamp (both bounds, min, max); saves x, bounds
        c = prog[j, P_C]
        lo = cv[c]
        hi = cv[c + (1 if f == 24 else 0)]
        for e in range(n):
            o = x[e]
            if f != 26:          # np.maximum(lo, a): a nan bound or input propagates
                o = lo if lo >= o or lo != lo else o
            if f != 25:
                o = hi if hi <= o or hi != hi else o
            out[e] = o
        if s >= 0:
            for e in range(n):
                sv[s + e] = x[e]
            for q in range(2 if f == 24 else 1):
                sv[s + n + q] = cv[c + q]


(U_SIN, U_COS, U_TAN, U_SINH, U_COSH, U_ASIN, U_ACOS, U_ATAN, U_LOG1P, U_EXPM1, U_EXP2, U_LOG2,
 U_LOG10, U_RSQRT, U_SQUARE, U_ACOSH, U_ASINH, U_ATANH, U_SIGN, U_FLOOR, U_CEIL, U_TRUNC, U_ROUND,
 U_NAN_TO_NUM, U_CLAMP, U_CLAMP_MIN, U_CLAMP_MAX, U_ROUND_DECIMALS) = range(28)
UNARY_MATH = needs(_fwd_unary, "x")


def _unary_math(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # g[a] += go * (d out / d x) for the unary_op in I0 (U_*), from the saved t: x, or out for
    # tan, expm1, exp2 and rsqrt, as each formula reads it (clamp's bounds after it). A loop per
    # op, as _fwd_unary; PyTorch's clamp and nan_to_num select (an inf or nan gradient is dropped)
    f = rows[i, I0]
    if f == 0:                              # sin
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * np.cos(t)
    elif f == 1:                            # cos
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * -np.sin(t)
    elif f == 2:                            # tan: 1 + out^2
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 + t * t)
    elif f == 3:                            # sinh
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * np.cosh(t)
    elif f == 4:                            # cosh
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * np.sinh(t)
    elif f == 5:                            # asin
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 / np.sqrt(1 - t * t))
    elif f == 6:                            # acos
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (-1 / np.sqrt(1 - t * t))
    elif f == 7:                            # atan
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 / (1 + t * t))
    elif f == 8:                            # log1p
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 / (1 + t))
    elif f == 9:                            # expm1: out + 1
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (t + 1)
    elif f == 10:                           # exp2: out log 2
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (t * 0.6931471805599453)
    elif f == 11:                           # log2
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 / (t * 0.6931471805599453))
    elif f == 12:                           # log10
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 / (t * 2.302585092994046))
    elif f == 13:                           # rsqrt: -out^3 / 2
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (-0.5 * t * t * t)
    elif f == 14:                           # square
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (2 * t)
    elif f == 15:                           # acosh
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 / np.sqrt((t - 1) * (t + 1)))
    elif f == 16:                           # asinh
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 / np.sqrt(t * t + 1))
    elif f == 23:                           # nan_to_num: selects where x is finite
        for j in range(n):
            if np.isfinite(sv[s + j]):
                g[a + j] += g[o + j]
    elif f >= 24:                           # clamp: selects where min <= x <= max (the bounds
        lo = sv[s + n]                      # follow x: both, min alone or max alone)
        hi = sv[s + n + (1 if f == 24 else 0)]
        for j in range(n):
            t = sv[s + j]
            if (f == 26 or t >= lo) and (f == 25 or t <= hi):
                g[a + j] += g[o + j]
    else:                                   # atanh
        for j in range(n):
            t = sv[s + j]
            g[a + j] += g[o + j] * (1 / (1 - t * t))


def _fwd_erf(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # erf (I0 = E_ERF), gelu (E_GELU: x (1 + erf(x / sqrt 2)) / 2) and erfc (E_ERFC), as their
    # forwards. Numba has no erf for arrays: in float64 (scipy's float32 erf computes in float64
    # too) by the series erf t = 2/sqrt(pi) exp(-t^2) sum 2^n t^(2n+1) / (2n+1)!!, whose terms are
    # all positive, below |t| = 3, above it by the continued fraction of erfc (|t| >= 6: erf is
    # +-1 in float64). erfc from |t| = 1 by the fraction itself (1 - erf would lose its digits;
    # 200 terms reach float64's precision there, 60 from 3), 0 where exp(-t^2) underflows, as scipy
    f = prog[j, P_I0]
    c = np.empty(5, out.dtype)
    c[0] = 0.7071067811865476                   # sqrt(1/2)
    c[1] = 0.5
    one = out.dtype.type(1)
    for e in range(out.size):
        a = x[e]
        t = np.float64(a * c[0] if f == 1 else a)
        m = np.abs(t)
        if f == 2 and m >= 1.0:
            tail = 0.0
            if m * m < 709.782712893384:
                frac = m
                for q in range(200 if m < 3.0 else 60, 0, -1):
                    frac = m + (q * 0.5) / frac
                tail = np.exp(-m * m) / (1.7724538509055159 * frac)
            out[e] = tail if t > 0 else 2.0 - tail
            continue
        if m < 3.0:
            term = m
            total = m
            q = 0
            while term > total * 1e-17:
                q += 1
                term *= 2.0 * m * m / (2 * q + 1)
                total += term
            r = 1.1283791670955126 * np.exp(-m * m) * total
        elif m < 6.0:
            frac = m
            for q in range(60, 0, -1):
                frac = m + (q * 0.5) / frac
            r = 1.0 - np.exp(-m * m) / (1.7724538509055159 * frac)
        else:
            r = 1.0 if m == m else m
        c[4] = np.copysign(r, t)                # (rounded to the values' dtype)
        if f == 0:
            out[e] = c[4]
        elif f == 2:
            out[e] = 1.0 - np.copysign(r, t)
        else:
            out[e] = a * (c[1] * (one + c[4]))       # x Phi(x), as the eager forward
    if s >= 0:                                  # x, what the formulas read (see _erf_family)
        for e in range(out.size):
            sv[s + e] = x[e]


def _fwd_activation(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # the activations of nn.functional (ids: the A_* names below), their arguments the row's
    # consts; log_sigmoid(a) = min(a, 0) - log1p(exp(-|a|)) as nn/functional.py computes it, log(1
    # + exp z) as numpy's logaddexp(0, z). A recorded row saves x and the arguments (_activation)
    f = prog[j, P_I0]
    one = out.dtype.type(1)
    zero = one - one
    c = prog[j, P_C]            # (read only by the ops that have arguments)
    nc = 1 if f == 0 or f == 2 else 3 if f == 1 else 2 if f == 3 or f == 10 else 0
    c0 = cv[c] if nc else one
    c1 = cv[c + 1] if nc >= 2 else one
    c2 = cv[c + 2] if nc == 3 else one
    k = np.empty(6, out.dtype)
    k[0] = 0.5
    k[1] = 3.0
    k[2] = 6.0
    k[3] = 0.6931471805599453                   # log(2)
    k[4] = 0.7978845608028654                   # sqrt(2 / pi)
    k[5] = 0.044715
    for e in range(out.size):
        a = x[e]
        o = a
        if f == 0:                              # leaky_relu(slope)
            if not a > 0:
                o = a * c0
        elif f == 1:                            # elu(alpha, scale, input_scale)
            o = c1 * a
            if not a > 0:
                o = c1 * c0 * np.expm1(a * c2)
        elif f == 2:                            # celu(alpha)
            if not a > 0:
                o = c0 * np.expm1(a / c0)
        elif f == 3:                            # hardtanh(min, max): np.clip, nan passes
            if a == a:
                o = a if a >= c0 else c0
                o = o if o <= c1 else c1
        elif f == 5:                            # hardsigmoid
            z = a / k[2] + k[0]
            if z == z:                          # np.clip(z, 0, 1)
                z = z if z >= zero else zero
                z = z if z <= one else one
            o = z
        elif f == 6:                            # hardswish
            z = a + k[1]
            if z == z:                          # np.clip(z, 0, 6)
                z = z if z >= zero else zero
                z = z if z <= k[2] else k[2]
            o = a * z / k[2]
        elif f == 9:                            # gelu(approximate="tanh")
            o = k[0] * a * (one + np.tanh(k[4] * (a + k[5] * a ** k[1])))
        elif f == 4:                            # silu: a sigmoid(a), sigmoid = exp(log_sigmoid)
            o = a * np.exp((a if a <= 0 or a != a else zero) - np.log1p(np.exp(-np.abs(a))))
        elif f == 8:                            # logsigmoid
            o = (a if a <= 0 or a != a else zero) - np.log1p(np.exp(-np.abs(a)))
        else:                                   # mish, softplus(beta, threshold)
            z = a * c0 if f == 10 else a
            if z == 0:                          # numpy's logaddexp(0, z)
                sp = k[3]
            elif -z > 0:
                sp = np.log1p(np.exp(z))
            elif -z <= 0:
                sp = z + np.log1p(np.exp(-z))
            else:
                sp = -z
            if f == 7:
                o = a * np.tanh(sp)
            elif not z > c1:
                o = sp / c0
        out[e] = o
    if s >= 0:
        n = out.size
        for e in range(n):
            sv[s + e] = x[e]
        for q in range(nc):
            sv[s + n + q] = cv[c + q]


def _activation(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # g[a] += go * (d out / d x) for the activation in I0 (A_*), from the saved x and, after it,
    # the arguments; as PyTorch's backward kernels, the hard* ops select (a nan or inf gradient
    # is dropped where the derivative is 0), the others multiply
    f = rows[i, I0]
    c = s + n
    for j in range(n):
        t = sv[s + j]
        go = g[o + j]
        if f == 3:                              # hardtanh(min, max): nan passes
            if not (t <= sv[c] or t >= sv[c + 1]):
                g[a + j] += go
            continue
        if f == 5:                              # hardsigmoid: float32(1/6), as PyTorch
            if t > -3 and t < 3:
                g[a + j] += go * 0.1666666716337204
            continue
        if f == 6:                              # hardswish: nan passes
            if not t <= -3:
                g[a + j] += go * (t / 3 + 0.5) if t < 3 else go
            continue
        if f == 0:                              # leaky_relu(slope)
            d = 1.0 if t > 0 else sv[c]
        elif f == 1:                            # elu(alpha, scale, input_scale)
            d = sv[c + 1] * sv[c] * sv[c + 2] * np.exp(t * sv[c + 2]) if t <= 0 else sv[c + 1]
        elif f == 2:                            # celu(alpha)
            d = np.exp(t / sv[c]) if t <= 0 else 1.0
        elif f == 9:                            # gelu(approximate="tanh")
            th = np.tanh(0.7978845608028654 * (t + 0.044715 * t * t * t))
            d = 0.5 * (1 + th) + 0.5 * t * (1 - th * th) * 0.7978845608028654 * (1 + 0.134145 * t * t)
        else:                                   # silu, mish, logsigmoid, softplus: from sigmoid(z)
            z = t * sv[c] if f == 10 else -t if f == 8 else t
            sg = 1 / (1 + np.exp(-z))
            if f == 4:
                d = sg * (1 + t * (1 - sg))
            elif f == 7:
                th = np.tanh(np.logaddexp(0.0, t))
                d = th + t * sg * (1 - th * th)
            elif f == 8:
                d = sg                          # sigmoid(-x)
            else:
                d = 1.0 if z > sv[c + 1] else sg
        g[a + j] += go * d


(A_LEAKY_RELU, A_ELU, A_CELU, A_HARDTANH, A_SILU, A_HARDSIGMOID, A_HARDSWISH, A_MISH,
 A_LOGSIGMOID, A_GELU_TANH, A_SOFTPLUS) = range(11)
ACTIVATIONS = needs(_fwd_activation, "x")
ERF_FAMILY = needs(_fwd_erf, "x")
E_ERF, E_GELU, E_ERFC = 0, 1, 2


def _erf_family(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # g[a] += go * (d out / d x) for erf, gelu or erfc (I0: E_*) at the saved x
    f = rows[i, I0]
    for j in range(n):
        t = sv[s + j]
        if f == 1:                              # gelu: Phi(x) + x phi(x)
            d = 0.5 * (1 + math.erf(t * 0.7071067811865476)) + t * np.exp(-0.5 * t * t) / 2.5066282746310002
        else:                                   # (+-) 2 / sqrt(pi) exp(-x^2)
            d = (1.1283791670955126 if f == 0 else -1.1283791670955126) * np.exp(-t * t)
        g[a + j] += g[o + j] * d


# ---- unary ops of a forward-kernel family (one kernel per family, the op picked by I0)
def unary_op(grad_fn, forward, keep_int=False, x=None, rule=None):
    """Register an elementwise op, apply(x, *args), args numbers; forward(a, *args) returns out.
    rule: the family's VJP kernel, reading the op's id in I0; the row saves what the formula x
    reads (x or out: defop's saves_reads), then args, and rule computes the derivative from
    them. x: the differentiable formula (see engine/registry.py), which reads args with
    unary_args. keep_int (no rule, no x): the op has a zero gradient and keeps integer dtypes.
    replay_with gives the op its forward kernel and id."""
    op = defop(grad_fn, rule, saves_reads=True, x=x) if rule is not None else defop(grad_fn, None)
    save_input, save_out = (rule is not None and registry.OPS[op].saved(1) == (name,) for name in ("x", "out"))

    def apply(x, *args):
        a = x._a if keep_int or x._a.dtype.kind == "f" else x._a.astype(dtypes.default_float.np)
        out = _arr(np.asarray(quietly(forward, a, *args), a.dtype))
        if rule is None or not _needs_grad(x):
            return record(op, out, x if x._a.dtype.kind == "f" else None, broadcast=False,
                          scalars=args, i0=apply.fid)
        return record(op, out, x, saves=(x,) if save_input else (), save_out=save_out, consts=args,
                      broadcast=False, i0=apply.fid)
    apply.op = op
    apply.fid = 0
    return apply


def replay_with(apply, kernel, fid):
    """Give a unary_op its forward kernel for compiled replay: kernel computes the op whose id
    is fid (the row's I0, as the family's kernels above read it)."""
    registry.OPS[apply.op].forward_kernel = kernel
    apply.fid = fid


_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
sin = unary_op("SinBackward0", np.sin, rule=_unary_math, x=lambda g, x: g * x.cos())
cos = unary_op("CosBackward0", np.cos, rule=_unary_math, x=lambda g, x: g * -x.sin())
tan = unary_op("TanBackward0", np.tan, rule=_unary_math, x=lambda g, out: g * (1 + out * out))
sinh = unary_op("SinhBackward0", np.sinh, rule=_unary_math, x=lambda g, x: g * x.cosh())
cosh = unary_op("CoshBackward0", np.cosh, rule=_unary_math, x=lambda g, x: g * x.sinh())
asin = unary_op("AsinBackward0", np.arcsin, rule=_unary_math, x=lambda g, x: g * (1 - x * x).rsqrt())
acos = unary_op("AcosBackward0", np.arccos, rule=_unary_math, x=lambda g, x: g * -(1 - x * x).rsqrt())
atan = unary_op("AtanBackward0", np.arctan, rule=_unary_math, x=lambda g, x: g / (x * x + 1))
log1p = unary_op("Log1PBackward0", np.log1p, rule=_unary_math, x=lambda g, x: g / (x + 1))
expm1 = unary_op("Expm1Backward0", np.expm1, rule=_unary_math, x=lambda g, out: g * (out + 1))
exp2 = unary_op("Exp2Backward0", np.exp2, rule=_unary_math, x=lambda g, out: g * out * _LN2)
log2 = unary_op("Log2Backward0", np.log2, rule=_unary_math, x=lambda g, x: g / (x * _LN2))
log10 = unary_op("Log10Backward0", np.log10, rule=_unary_math, x=lambda g, x: g / (x * _LN10))
rsqrt = unary_op("RsqrtBackward0", lambda a: 1 / np.sqrt(a), rule=_unary_math, x=lambda g, out: -0.5 * g * out ** 3)
square = unary_op("PowBackward0", lambda a: a * a, rule=_unary_math, x=lambda g, x: g * (2 * x))
sign = unary_op("SignBackward0", lambda a: a if a.dtype.kind == "b" else np.where(a != a, 0, np.sign(a)),
                keep_int=True)
floor = unary_op("FloorBackward0", np.floor, keep_int=True)
ceil = unary_op("CeilBackward0", np.ceil, keep_int=True)
trunc = unary_op("TruncBackward0", np.trunc, keep_int=True)
_round = unary_op("RoundBackward0", np.round, keep_int=True)
_round_decimals = unary_op("RoundBackward1", lambda a, n: np.round(a, n), keep_int=True)


@torch_names("round", inplace=("round_",))
def round(x, *, decimals=0):
    return _round_decimals(x, decimals) if decimals else _round(x)


def _erf(a):
    from scipy.special import erf
    return erf(a)


erf = unary_op("ErfBackward0", _erf, rule=_erf_family, x=lambda g, x: 2 / math.sqrt(math.pi) * (-(x * x)).exp() * g)


for _f, _id in ((sin, U_SIN), (cos, U_COS), (tan, U_TAN), (sinh, U_SINH), (cosh, U_COSH),
                (asin, U_ASIN), (acos, U_ACOS), (atan, U_ATAN), (log1p, U_LOG1P), (expm1, U_EXPM1),
                (exp2, U_EXP2), (log2, U_LOG2), (log10, U_LOG10), (rsqrt, U_RSQRT),
                (square, U_SQUARE), (sign, U_SIGN), (floor, U_FLOOR), (ceil, U_CEIL),
                (trunc, U_TRUNC), (_round, U_ROUND), (_round_decimals, U_ROUND_DECIMALS)):
    replay_with(_f, UNARY_MATH, _id)
replay_with(erf, ERF_FAMILY, E_ERF)
for _f, _names in ((sin, "sin"), (cos, "cos"), (tan, "tan"), (sinh, "sinh"), (cosh, "cosh"),
                   (asin, "asin arcsin"), (acos, "acos arccos"), (atan, "atan arctan"),
                   (log1p, "log1p"), (expm1, "expm1"), (exp2, "exp2"), (log2, "log2"),
                   (log10, "log10"), (rsqrt, "rsqrt"), (square, "square"), (sign, "sign"),
                   (floor, "floor"), (ceil, "ceil"), (trunc, "trunc"), (erf, "erf")):
    torch_names(*_names.split(), inplace=tuple(n + "_" for n in _names.split()))(_f)


def _clamp_scalar(a, lo, hi, out=None):
    """a clamped to [lo, hi] (either None: no bound), into out if given (clamp_: a itself)."""
    r = a        # the bound first: on a tie numpy returns the second operand, PyTorch x
    if lo is not None:
        r = np.maximum(a.dtype.type(lo), r, out=out)
    if hi is not None:
        r = np.minimum(a.dtype.type(hi), r, out=out)
    return r


# PyTorch's clamp_backward: g where min <= x <= max (so on the boundary too). One op per set of
# bounds, so the row's numbers are the bounds given
_clamp1 = unary_op("ClampBackward1", _clamp_scalar, rule=_unary_math,
                   x=lambda g, x, node: where((x >= unary_args(node, 2)[0]) & (x <= unary_args(node, 2)[1]), g, 0))
_clamp_min = unary_op("ClampBackward1", lambda a, lo: _clamp_scalar(a, lo, None), rule=_unary_math,
                      x=lambda g, x, node: where(x >= unary_args(node, 1)[0], g, 0))
_clamp_max = unary_op("ClampBackward1", lambda a, hi: _clamp_scalar(a, None, hi), rule=_unary_math,
                      x=lambda g, x, node: where(x <= unary_args(node, 1)[0], g, 0))


def _ternary(go, ga, gb, sv, iv, do, da, db, row):
    # the gradient of the input of role iv[1] of addcmul (I0 = 0: input + v t1 t2), addcdiv (1:
    # input + v t1 / t2) or lerp by a tensor (3: x + w (end - x)); saved: addcmul's and addcdiv's
    # value v, then the three inputs at the output's shape, by role
    f = row[I0]
    n = go.size
    role = iv[1]
    s = 1 if f <= 1 else 0
    v = sv[0]
    for j in range(n):
        p = sv[s + j]
        q = sv[s + n + j]
        r = sv[s + n + n + j]
        if f <= 1:
            if role == 0:
                d = 1.0
            elif role == 1:
                d = v / r if f == 1 else v * r
            else:
                d = -v * q / (r * r) if f == 1 else v * q
        else:
            d = 1 - r if role == 0 else (r if role == 1 else q - p)
        ga[j] += go[j] * d


def _clamp_by_tensors(go, ga, gb, sv, iv, do, da, db, row):
    # the gradient of the input of role iv[1] (0 x, 1 min, 2 max); saved: x, then min (I0 & 4),
    # then max (I0 & 8), at the output's shape. As PyTorch's clamp_backward_min_max: x's where
    # min <= x <= max, min's where x < min (and min < max), max's where x > max (or max < min),
    # selected: an inf or nan gradient elsewhere stays out
    n = go.size
    lo = row[I0] & 4 != 0
    hi = row[I0] & 8 != 0
    h = n + n if lo else n
    role = iv[1]
    for j in range(n):
        x = sv[j]
        if role == 0:
            keep = (not lo or x >= sv[n + j]) and (not hi or x <= sv[h + j])
        elif role == 1:
            keep = x < sv[n + j] and (not hi or sv[n + j] < sv[h + j])
        else:
            keep = x > sv[h + j] or (lo and sv[h + j] < sv[n + j])
        if keep:
            ga[j] += go[j]


def _clamp_by_tensors_back(g, role, inputs):
    # the masks of _clamp_by_tensors, from the inputs' values (constants: no derivative)
    xa, lo, hi = inputs[0]._a, inputs.get(1), inputs.get(2)
    la, ha = (None if t is None else t._a for t in (lo, hi))
    if role == 0:
        keep = np.ones(g.shape, np.bool_)
        if la is not None:
            keep = keep & (xa >= la)
        if ha is not None:
            keep = keep & (xa <= ha)
    elif role == 1:
        keep = (xa < la) & (la < ha) if ha is not None else xa < la
    else:
        keep = (xa > ha) | (ha < la) if la is not None else xa > ha
    return where(_wrap(np.broadcast_to(keep, g.shape)), g, 0)


for _f, _id in ((_clamp1, U_CLAMP), (_clamp_min, U_CLAMP_MIN), (_clamp_max, U_CLAMP_MAX)):
    replay_with(_f, UNARY_MATH, _id)


# roles: 0 x, 1 min, 2 max; I0 = 2 (for _fwd_ternary) | 4 min given | 8 max given
CLAMP_T = defop("ClampBackward0", _clamp_by_tensors, 0, forward=needs(_fwd_ternary, "multi"),
                each=_clamp_by_tensors_back)


@torch_names("clamp", "clip")
def clamp(x, min=None, max=None):
    min, max = (_py_scalar(v) if isinstance(v, np.generic) else v for v in (min, max))
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if not isinstance(min, Tensor) and not isinstance(max, Tensor):
        if x._a.dtype.kind != "f" and builtins.all(isinstance(v, (builtins.int, type(None)))
                                                   for v in (min, max)):
            return _wrap(_arr(np.clip(x._a, min, max)))
        return _clamp1(x, min, max) if min is not None and max is not None else \
            _clamp_min(x, min) if max is None else _clamp_max(x, max)
    lo = min if isinstance(min, Tensor) or min is None else _wrap(np.asarray(min, x._a.dtype))
    hi = max if isinstance(max, Tensor) or max is None else _wrap(np.asarray(max, x._a.dtype))
    d = result_dtype(*[v for v in (x, lo, hi) if v is not None])
    a = x._a.astype(d, copy=False)
    la = lo._a.astype(d, copy=False) if lo is not None else None
    ha = hi._a.astype(d, copy=False) if hi is not None else None
    shape = a.shape
    for v in (la, ha):
        if v is not None:
            shape = _broadcast_shape(shape, v.shape)
    out = np.broadcast_to(a, shape)
    if la is not None:
        out = np.maximum(la, out)
    if ha is not None:
        out = np.minimum(ha, out)
    out = _arr(out)
    given = 2 | (4 if lo is not None else 0) | (8 if hi is not None else 0)
    if not _needs_grad(x, lo, hi):
        return record_multi(CLAMP_T, out, [(t, role, 0) for role, t in enumerate((x, lo, hi))], i0=given)
    # the row saves x and the given bounds, what the formulas read, at the output's shape
    entries, saves = [], []
    for t, v, role in ((x, a, 0), (lo, la, 1), (hi, ha, 2)):
        if t is not None:
            entries.append((t, role, len(saves) * out.size, shape))
            saves.append(t if v is t._a and v.shape == shape else np.broadcast_to(v, shape))
    return record_multi(CLAMP_T, out, entries, saves=saves, i0=given)


clip = clamp


for _f in (sin, cos, tan, sinh, cosh, atan, expm1, exp2, square, erf, sign, floor, ceil, trunc, round):
    samples(_f, *UNARY)
for _f in (log1p, log2, log10, rsqrt):
    samples(_f, *[(Pos(c[0]),) for c in UNARY])
for _f in (asin, acos):
    samples(_f, *[(Unit(c[0]),) for c in UNARY])
samples(round, ((2, 3), {"decimals": 1}))
samples(clamp, ((2, 3), -0.5, 0.5), ((2, 3), 0.0), ((2, 3), None, 0.2), ((), -0.1, 0.1),
        ((2, 3), (2, 3)), ((2, 3), None, (3,)), ((2, 3), (2, 1), (1, 3)),
        ((2, 3), _wrap(np.zeros(3)), _wrap(np.full((2, 1), 0.3))))
_KINK = Given([-1.0, -0.5, 0.0, 0.5, 1.0])
kinks(clamp, (_KINK, -0.5, 0.5), (_KINK, 0.0), (_KINK, _KINK, Given([0.0] * 5)),
      (Given([0.0, 1.0, 2.0]), Given([1.0, 1.0, 3.0]), Given([0.5, 2.0, 3.0])))
kinks(relu, (_KINK,))
kinks(abs, (_KINK,))
kinks(sign, (_KINK,))
for _f, _n in ((_round, "round"), (sin, "sin"), (cos, "cos"),
               (tan, "tan"), (sinh, "sinh"), (cosh, "cosh"), (asin, "asin"), (acos, "acos"),
               (atan, "atan"), (log1p, "log1p"), (expm1, "expm1"), (exp2, "exp2"), (log2, "log2"),
               (log10, "log10"), (rsqrt, "rsqrt"), (square, "square"), (sign, "sign"),
               (floor, "floor"), (ceil, "ceil"), (trunc, "trunc"), (erf, "erf")):
    _f.__name__ = _n


@torch_names("addcmul")
def addcmul(input, tensor1, tensor2, *, value=1):
    return _addc(input, tensor1, tensor2, value, False)


@torch_names("addcdiv")
def addcdiv(input, tensor1, tensor2, *, value=1):
    if tensor1._a.dtype.kind != "f" and tensor2._a.dtype.kind != "f":
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a future "
                           "release addcdiv will perform a true division of tensor1 and tensor2. "
                           "The historic addcdiv behavior can be implemented as (input + value * "
                           "torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer inputs and "
                           "as (input + value * tensor1 / tensor2) for float inputs. The future "
                           "addcdiv behavior is just the latter implementation: (input + value * "
                           "tensor1 / tensor2), for all dtypes.")
    return _addc(input, tensor1, tensor2, value, True)


# roles: 0 input, 1 tensor1, 2 tensor2 (at the output's shape); the row saves value, then them
_ADDCMUL = (lambda g, t1, t2, v: g, lambda g, t1, t2, v: g * (t2 * v), lambda g, t1, t2, v: g * (t1 * v))
_ADDCDIV = (lambda g, t1, t2, v: g, lambda g, t1, t2, v: g * (v / t2),
            lambda g, t1, t2, v: -g * (v * t1 / (t2 * t2)))
# I0: 0 addcmul, 1 addcdiv (for their forward kernel, _fwd_ternary)
ADDCMUL = defop("AddcmulBackward0", _ternary, 0, forward=needs(_fwd_ternary, "multi,c"), each=lambda g, role, inputs, node:
                _ADDCMUL[role](g, inputs[1], inputs[2], builtins.float(node.saved[0])))
ADDCDIV = defop("AddcdivBackward0", _ternary, 0, forward=needs(_fwd_ternary, "multi,c"), each=lambda g, role, inputs, node:
                _ADDCDIV[role](g, inputs[1], inputs[2], builtins.float(node.saved[0])))


def _addc(x, t1, t2, value, divide):
    d = result_dtype(x, t1, t2)
    a, b, c = (t._a.astype(d, copy=False) for t in (x, t1, t2))
    shape = _broadcast_shape(_broadcast_shape(a.shape, b.shape), c.shape)
    v = d.type(value)
    op = ADDCDIV if divide else ADDCMUL
    with quiet():
        out = _arr(a + v * (b / c if divide else b * c))
    if not _needs_grad(x, t1, t2):
        return record_multi(op, out, [(t, role, 0) for role, t in enumerate((x, t1, t2))],
                            i0=builtins.int(divide), scalars=(builtins.float(v),))
    # value first (the formulas read it at saved[0]), then the inputs, what the kernel reads
    entries, saves = _ternary_saves((x, t1, t2), (a, b, c), shape, 1)
    return record_multi(op, out, entries, saves=[np.array([v], d)] + saves, i0=builtins.int(divide),
                        scalars=(builtins.float(v),))


def _ternary_saves(tensors, arrays, shape, start):
    """A three-input row's entries (every input, by role: record_multi keeps those needing no
    gradient for the formulas) and saves: the inputs at the output's shape, from start on (the
    tensors themselves where those are their values, so an in-place write is refused)."""
    n = math.prod(shape)
    entries = [(t, role, start + role * n, shape) for role, t in enumerate(tensors)]
    saves = [t if a is t._a and a.shape == shape else np.broadcast_to(a, shape)
             for t, a in zip(tensors, arrays)]
    return entries, saves


def _lerp_scalar(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    w = sv[s]
    if a >= 0:
        for j in range(n):
            g[a + j] += g[o + j] * (1 - w)
    if b >= 0:
        for j in range(n):
            g[b + j] += g[o + j] * w


# a number weight w is the row's one saved value
LERP = defop("LerpBackward0", _lerp_scalar, 2, forward=needs(_fwd_lerp, "x,y,c"), x=lambda g, node: g * (1 - builtins.float(node.saved[0])),
             y=lambda g, node: g * builtins.float(node.saved[0]))
# a tensor weight: roles 0 input, 1 end, 2 weight (at the output's shape), as in _addc
_LERP = (lambda g, x, e, w: g * (1 - w), lambda g, x, e, w: g * w, lambda g, x, e, w: g * (e - x))
LERP_T = defop("LerpBackward1", _ternary, 0, forward=needs(_fwd_ternary, "multi"),     # I0 = 3
               each=lambda g, role, inputs: _LERP[role](g, inputs[0], inputs[1], inputs[2]))


@torch_names("lerp")
def lerp(input, end, weight):
    if not isinstance(end, Tensor):
        raise TypeError(f"lerp() received an invalid combination of arguments - got (Tensor, "
                        f"{type(end).__name__}, {type(weight).__name__}), but expected one of:\n"
                        " * (Tensor input, Tensor end, Tensor weight, *, Tensor out = None)\n"
                        " * (Tensor input, Tensor end, Number weight, *, Tensor out = None)\n")
    d = input._a.dtype
    for name, t in (("end", end), ("weight", weight)):
        if isinstance(t, Tensor) and t._a.dtype != d and (t is end or t._a.ndim):
            raise RuntimeError(f"expected dtype {dtypes.c_name(d)} for `{name}` but got dtype "
                               f"{dtypes.c_name(t._a.dtype)}")
    xa, ea = input._a, end._a
    _check_bcast(xa, ea)
    tensor_weight = isinstance(weight, Tensor)
    w = weight._a.astype(d, copy=False) if tensor_weight else weight
    if tensor_weight:
        _broadcast_shape(_broadcast_shape(xa.shape, ea.shape), w.shape)
    # PyTorch's formula: x + w (e - x) for |w| < 0.5, else e - (e - x)(1 - w) (exact at w = 1)
    with quiet():
        diff = ea - xa
        if not tensor_weight:
            out = _arr(xa + w * diff if builtins.abs(w) < 0.5 else ea - diff * (1 - w))
            return record(LERP, out, input, end, consts=(builtins.float(w),), scalars=(1 - w,))
        out = _arr(np.where(np.abs(w) < 0.5, xa + w * diff, ea - diff * (1 - w)))
    if not _needs_grad(input, end, weight):
        return record_multi(LERP_T, out, [(t, role, 0) for role, t in enumerate((input, end, weight))], i0=3)
    entries, saves = _ternary_saves((input, end, weight), (xa, ea, w), out.shape, 0)
    return record_multi(LERP_T, out, entries, saves=saves, i0=3)


samples(addcmul, ((2, 3), (2, 3), (2, 3)), ((2, 3), (3,), (2, 1), {"value": 0.5}), ((), (3,), ()))
samples(addcdiv, ((2, 3), (2, 3), NonZero((2, 3))), ((2, 3), (3,), NonZero((2, 1)), {"value": -2.0}))
samples(lerp, ((2, 3), (2, 3), 0.3), ((2, 3), (3,), 0.8), ((2, 3), (2, 3), (2, 3)), ((2, 1), (3,), (2, 3)))
kinks(lerp, ((3,), (3,), Given([0.5, -0.5, 1.0])))


# ======================= more unary math: inverse hyperbolics, nan_to_num =====================
acosh = torch_names("acosh", "arccosh")(unary_op("AcoshBackward0", np.arccosh, rule=_unary_math,
                                                  x=lambda g, x: g * (x * x - 1).rsqrt()))
asinh = torch_names("asinh", "arcsinh")(unary_op("AsinhBackward0", np.arcsinh, rule=_unary_math,
                                                  x=lambda g, x: g * (x * x + 1).rsqrt()))
atanh = torch_names("atanh", "arctanh")(unary_op("AtanhBackward0", np.arctanh, rule=_unary_math,
                                                  x=lambda g, x: g / (1 - x * x)))
# PyTorch's nan_to_num backward: g where x is finite
_nan_to_num = unary_op("NanToNumBackward0",
                       lambda a, nan, posinf, neginf: np.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf),
                       rule=_unary_math, x=lambda g, x: where(x.isfinite(), g, 0))


@torch_names("nan_to_num")
def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    a = input._a
    if a.dtype.kind != "f":
        return clone_values(input)
    info = np.finfo(a.dtype)
    return _nan_to_num(input, builtins.float(nan), builtins.float(info.max if posinf is None else posinf),
                       builtins.float(info.min if neginf is None else neginf))


def clone_values(x):
    """A copy of an integer tensor (nan_to_num leaves integers unchanged)."""
    return _wrap(x._a.copy())


for _f, _n in ((acosh, "acosh"), (asinh, "asinh"), (atanh, "atanh")):
    _f.__name__ = _n
for _f, _id in ((acosh, U_ACOSH), (asinh, U_ASINH), (atanh, U_ATANH), (_nan_to_num, U_NAN_TO_NUM)):
    replay_with(_f, UNARY_MATH, _id)
samples(acosh, (Given([1.5, 2.0, 4.0]),), (Given([[1.25, 3.0], [2.5, 10.0]]),))
samples(asinh, *UNARY)
samples(atanh, *[(Unit(c[0]),) for c in UNARY])
samples(nan_to_num, ((2, 3),), ((2, 3), 1.0, 2.0, -3.0))
kinks(nan_to_num, (Given([0.5, np.nan, np.inf, -np.inf]),), (Given([np.nan, np.inf, -np.inf]), 1.0, 2.0, -3.0))


# ======================= binary: logaddexp, copysign, remainder, fmod, floor_divide ==========
def _record_reads(op, out, x, yt, xa, ya, i0=0, consts=(), scalars=(), cond=None):
    """Record an op declared saves_reads: its row saves the values its formulas read
    (registry.Op.saved), the values xa, ya the forward computed with and the bool condition
    cond (broadcast by record, a condition cast to 0/1), then out, then consts: the tensors
    themselves where those are their arrays, so writing them in place later makes backward
    refuse. x is None for where(cond, number, y)."""
    grads = (x is not None and x._rg is True) + 2 * (yt is not None and yt._rg is True)
    if not grads:
        return record(op, out, x, yt, i0=i0, consts=consts, scalars=scalars)
    operands = {"x": x if x is not None and xa is x._a else xa,
                "y": yt if yt is not None and ya is yt._a else ya, "cond": cond}
    names = registry.OPS[op].saved(grads)
    return record(op, out, x, yt, saves=[operands[k] for k in names if k != "out"],
                  save_out="out" in names, consts=consts, i0=i0, scalars=scalars)


def _float_operands(x, y):
    """x, y as arrays of their float result dtype (integers promote to the default float)."""
    xa, ya, yt = _operands(x, y)
    if xa.dtype.kind != "f":
        d = dtypes.default_float.np
        xa = xa.astype(d)
        ya = np.asarray(ya, d) if not isinstance(ya, np.ndarray) else ya.astype(d)
    _check_bcast(xa, ya)
    return xa, ya, yt


def _logaddexp(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x, y (y at I1 when apart)
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    for j in range(n):
        p = sv[s + j]
        q = sv[t + j]
        if a >= 0:
            g[a + j] += g[o + j] / (1 + np.exp(q - p))
        if b >= 0:
            g[b + j] += g[o + j] / (1 + np.exp(p - q))


LOGADDEXP = defop("LogaddexpBackward0", _logaddexp, 2, forward=needs(_fwd_logaddexp, "x,y"), saves_reads=True,
                  x=lambda g, x, y: g / (1 + (y - x).exp()), y=lambda g, x, y: g / (1 + (x - y).exp()))


@torch_names("logaddexp", inplace=("logaddexp_",))
def logaddexp(input, other):
    x, y = (v if isinstance(v, Tensor) else _wrap(np.asarray(v)) for v in (input, other))
    xa, ya, yt = _float_operands(x, y)
    with quiet():
        out = _arr(np.logaddexp(xa, ya))
    return _record_reads(LOGADDEXP, out, x, yt, xa, ya)


def _copysign_self(g, x, out):
    # PyTorch's copysign_tensor_self_backward: g * out / x, 0 where x is 0 (out / x is still
    # differentiated there: a second derivative at 0 is nan, as PyTorch's)
    return g * where(x == 0, 0, out / x)


def _copysign(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # d/dx = out / x, 0 where x == 0; saved: x, out (at I1 when apart). d/dother is zeros, as
    # PyTorch's zeros_like (not 0 times an inf or nan)
    if a >= 0:
        t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
        for j in range(n):
            x = sv[s + j]
            g[a + j] += g[o + j] * (0 if x == 0 else sv[t + j] / x)


COPYSIGN = defop("CopysignBackward0", _copysign, 2, forward=needs(_fwd_copysign, "x,y|c"), saves_reads=True,
                 x=_copysign_self, y=lambda g: g.new_zeros(g.shape))
COPYSIGN_SCALAR = defop("CopysignBackward1", _copysign, 1, forward=needs(_fwd_copysign, "x,y|c"), saves_reads=True,
                        x=_copysign_self)


@torch_names("copysign", inplace=("copysign_",))
def copysign(input, other):
    xa, ya, yt = _float_operands(input, other)
    with quiet():
        out = _arr(np.copysign(xa, ya))
    if yt is None:
        return _record_reads(COPYSIGN_SCALAR, out, input, None, xa, None, scalars=_scalar(None, ya))
    return _record_reads(COPYSIGN, out, input, yt, xa, ya)


def _int_division_by_zero(xa, ya):
    if xa.dtype.kind in "biu" and np.any(np.asarray(ya) == 0):
        raise RuntimeError("ZeroDivisionError")


def _rounded_division(fn, scalar_op, tensor_op, rounded):
    """remainder (floor) and fmod (trunc): x - rounded(x / y) * y. d/dx = 1; d/dy = -rounded(x / y)."""
    def f(input, other):
        if not isinstance(input, Tensor):        # a number first (100 % x): PyTorch wraps it
            input = _wrap(np.asarray(input, result_dtype(input, other)))
        xa, ya, yt = _operands(input, other)
        _check_bcast(xa, ya)
        _int_division_by_zero(xa, ya)
        with quiet():
            out = _arr(fn(xa, ya))
        if xa.dtype.kind != "f":
            return _wrap(out)
        if yt is None:
            return record(scalar_op, out, input, scalars=_scalar(None, ya))
        if not _needs_grad(input, yt):
            return record(tensor_op, out, input, yt)
        with quiet():
            return _record_reads(tensor_op, out, input, yt, xa, ya, i0=int(rounded is np.trunc))
    return f


REMAINDER_SCALAR = defop("RemainderBackward0", _add, 1, forward=needs(_fwd_remainder, "x,y|c"), x=lambda g: g)


def _rounded_quotient(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # d/dx = 1, d/dy = -rounded(x / y), rounded floor (remainder) or, I0 = 1, trunc (fmod);
    # saved: x, y (y at I1 when apart) when y needs a gradient
    if a >= 0:
        for j in range(n):
            g[a + j] += g[o + j]
    if b >= 0:
        t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
        trunc = rows[i, I0] == 1
        for j in range(n):
            q = sv[s + j] / sv[t + j]
            g[b + j] -= g[o + j] * (np.trunc(q) if trunc else np.floor(q))


REMAINDER = defop("RemainderBackward1", _rounded_quotient, 2, forward=needs(_fwd_remainder, "x,y|c"),
                  saves_reads=True, x=lambda g: g, y=lambda g, x, y: -g * (x / y).floor())
FMOD_SCALAR = defop("FmodBackward0", _add, 1, forward=needs(_fwd_fmod, "x,y|c"), x=lambda g: g)
FMOD = defop("FmodBackward1", _rounded_quotient, 2, forward=needs(_fwd_fmod, "x,y|c"), saves_reads=True,
             x=lambda g: g, y=lambda g, x, y: -g * (x / y).trunc())
remainder = torch_names("remainder", "__mod__", inplace=("remainder_", "__imod__"))(
    _rounded_division(np.remainder, REMAINDER_SCALAR, REMAINDER, np.floor))
fmod = torch_names("fmod", inplace=("fmod_",))(_rounded_division(np.fmod, FMOD_SCALAR, FMOD, np.trunc))
remainder.__name__, fmod.__name__ = "remainder", "fmod"


@torch_names("__rmod__")
def rremainder(x, y):
    """y % x for a number y (x.__rmod__)."""
    return remainder(y, x)


@torch_names("floor_divide", "__floordiv__", inplace=("floor_divide_", "__ifloordiv__"))
def floor_divide(input, other):
    """input // other, rounded toward minus infinity; as PyTorch's, it has no derivative."""
    xa, ya, yt = _operands(input, other)
    _check_bcast(xa, ya)
    _int_division_by_zero(xa, ya)
    with quiet():
        return _wrap(_arr(np.floor_divide(xa, ya)))


@torch_names("__rfloordiv__")
def rfloor_divide(x, y):
    return floor_divide(_wrap(np.asarray(y, result_dtype(x, y))), x)


samples(logaddexp, *BINARY[:6])
samples(copysign, ((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 3), -1.5), ((), 2.0))
samples(remainder, ((2, 3), NonZero((2, 3))), ((2, 3), NonZero((3,))), ((2, 3), 1.5), ((3,), -0.7))
samples(fmod, ((2, 3), NonZero((2, 3))), ((2, 1), NonZero((3,))), ((2, 3), 1.5), ((3,), -0.7))
kinks(copysign, (Given([0.0, -0.0, 1.0, -2.0]), Given([-1.0, 1.0, -0.0, 3.0])))


# ---- erfc and atan2, PyTorch's ErfcBackward0 and Atan2Backward0
def _erfc(a):
    from scipy.special import erfc
    return erfc(a)


erfc = torch_names("erfc", inplace=("erfc_",))(unary_op(
    "ErfcBackward0", _erfc, rule=_erf_family, x=lambda g, x: -2 / math.sqrt(math.pi) * (-(x * x)).exp() * g))
erfc.__name__ = "erfc"
replay_with(erfc, ERF_FAMILY, E_ERFC)
def _fwd_atan2(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # numpy's arctan2; saves x, y (broadcast)
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    for e in range(n):
        out[e] = np.arctan2(xb[e], yb[e])
    if s >= 0:
        save_two(sv, s, xb, yb, True)


def _atan2(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x, y (y at I1 when apart)
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    for j in range(n):
        p = sv[s + j]
        q = sv[t + j]
        r = p * p + q * q
        if a >= 0:
            g[a + j] += g[o + j] * q / r
        if b >= 0:
            g[b + j] += g[o + j] * -p / r


ATAN2 = defop("Atan2Backward0", _atan2, 2, forward=needs(_fwd_atan2, "x,y"), saves_reads=True,
              x=lambda g, x, y: g * y / (x * x + y * y), y=lambda g, x, y: g * -x / (x * x + y * y))


@torch_names("atan2", "arctan2", inplace=("atan2_", "arctan2_"))
def atan2(input, other):
    """The angle of (other, input): d/dinput = other / r^2, d/dother = -input / r^2."""
    if not isinstance(other, Tensor):
        raise TypeError(f"atan2(): argument 'other' (position 2) must be Tensor, not {type(other).__name__}")
    xa, ya, yt = _float_operands(input, other)
    with quiet():
        out = _arr(np.arctan2(xa, ya))
    return _record_reads(ATAN2, out, input, yt, xa, ya)


samples(erfc, *UNARY)
samples(atan2, *BINARY[:6])


def _xlogy_x(g, x, y):
    # derivatives.yaml: xlogy(grad, other), 0 where self == 0 and other <= 0
    return where((x == 0) & (y <= 0), 0.0, g * y.log())


def _fwd_hypot(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # numpy's hypot; saves x if x needs a gradient, y if y does, then out
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    for e in range(n):
        out[e] = np.hypot(xb[e], yb[e])
    if s >= 0:
        grads = prog[j, P_GRADS]
        if grads == 3:
            save_two(sv, s, xb, yb, True)
            save_two(sv, s + n + n, out, out, False)
        else:
            save_two(sv, s, xb if grads == 1 else yb, out, True)


def _hypot(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x if x needs a gradient, y if y does, then out (at I1 when apart)
    both = a >= 0 and b >= 0
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + (n + n if both else n)
    u = s + n if both else s
    for j in range(n):
        r = sv[t + j]
        if a >= 0:
            g[a + j] += g[o + j] * (sv[s + j] / r)
        if b >= 0:
            g[b + j] += g[o + j] * (sv[u + j] / r)


def _fwd_xlogy(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # x log y, 0 where x == 0 unless y is nan (a number operand is a constant tensor here);
    # saves x, y (broadcast)
    n = out.size
    xb = x if x.size == n else expanded(x, n, shapes, prog[j, P_XSH], prog[j, P_OSH])
    yb = y if y.size == n else expanded(y, n, shapes, prog[j, P_YSH], prog[j, P_OSH])
    zero = out.dtype.type(0)
    for e in range(n):
        out[e] = zero if xb[e] == 0 and yb[e] == yb[e] else xb[e] * np.log(yb[e])
    if s >= 0:
        save_two(sv, s, xb, yb, True)


def _xlogy(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: x, y (y at I1 when apart). d/dx as PyTorch's xlogy(g, y) (0 for g == 0 unless y
    # is nan), selected 0 where x == 0 and y <= 0
    t = rows[i, I1] if rows[i, FLAGS] & F_APART else s + n
    for j in range(n):
        x = sv[s + j]
        y = sv[t + j]
        if a >= 0 and not (x == 0 and y <= 0) and (g[o + j] != 0 or y != y):
            g[a + j] += g[o + j] * np.log(y)
        if b >= 0:
            g[b + j] += g[o + j] * (x / y)


HYPOT = defop("HypotBackward0", _hypot, 2, forward=needs(_fwd_hypot, "x,y"), saves_reads=True,
              x=lambda g, x, out: g * x / out, y=lambda g, y, out: g * y / out)
XLOGY = defop("XlogyBackward0", _xlogy, 2, forward=needs(_fwd_xlogy, "x,y"), saves_reads=True,
              x=_xlogy_x, y=lambda g, x, y: g * x / y)
XLOGY_SELF_NUMBER = defop("XlogyBackward1", _xlogy, 2, forward=needs(_fwd_xlogy, "x,y"), saves_reads=True,
                          y=lambda g, x, y: g * x / y)
XLOGY_OTHER_NUMBER = defop("XlogyBackward2", _xlogy, 2, forward=needs(_fwd_xlogy, "x,y"), saves_reads=True,
                           x=_xlogy_x)


@torch_names("hypot", inplace=("hypot_",))
def hypot(input, other):
    """sqrt(input^2 + other^2) without overflow (inf wins over nan, as C's hypot)."""
    xa, ya, yt = _float_operands(input, other)
    with quiet():
        out = _arr(np.hypot(xa, ya))
    return _record_reads(HYPOT, out, input, yt, xa, ya)


@torch_names("xlogy", inplace=("xlogy_",))
def xlogy(input, other):
    """input * log(other), 0 where input is 0 (unless other is nan)."""
    op = XLOGY
    # a number operand becomes a constant tensor, so the formulas can read it (PyTorch names
    # these nodes XlogyBackward1 and 2)
    for number, which in ((input, XLOGY_SELF_NUMBER), (other, XLOGY_OTHER_NUMBER)):
        if not isinstance(number, Tensor):
            op = which
    like = other if isinstance(other, Tensor) else input
    dtype = like._a.dtype if like._a.dtype.kind == "f" else dtypes.default_float.np
    input, other = (v if isinstance(v, Tensor) else _number_tensor(v, dtype) for v in (input, other))
    xa, ya, yt = _float_operands(input, other)
    with quiet():
        out = _arr(np.where((xa == 0) & ~np.isnan(ya), 0, xa * np.log(ya)).astype(xa.dtype))
    return _record_reads(op, out, input, yt, xa, ya)


def _number_tensor(v, dtype):
    """A number operand as a 0-d tensor; a compiled step's trace keeps it as a constant."""
    t = _wrap(np.asarray(v, dtype))
    if hook.tracer is not None:
        hook.tracer.constant(t)
    return t


samples(hypot, *BINARY[:6])
samples(xlogy, ((2, 3), Pos((2, 3))), ((3,), Pos(())), ((2, 3), 1.5), ((2, 1), Pos((1, 3))), (2.0, Pos((2, 3))))
