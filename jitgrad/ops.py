"""The op table. Each op is one block: its backward rule, its registration, its forward, samples.

A backward rule is plain Python over flat arrays, compiled by engine/codegen.py, in one of two
styles (codegen tells them apart by the first parameter's name):

    rule(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb)    offsets: fast, for cheap ops
    rule(go, ga, gb, sv, iv, do, da, db, row)                         views: for shape-heavy ops

Offsets style: g is the one flat gradient buffer; the output's gradient is g[o:o+n] and the
inputs' are at offsets a and b (-1 when that input needs no gradient; va/vb are their rows);
the node's saved values start at sv[s]; its integer data at ints[k] (k = -1: none); rows[i] is
its tape row (rows[i, 5], rows[i, 6] are its attributes I0, I1).
Views style: go/ga/gb are the output's and inputs' gradients (empty when not needed), sv the
arena from the saved values on, iv the int data, do/da/db the dims, row the tape row. A generated
shim builds the views (~50 ns per node), which matters only for ops whose work is tiny.
Broadcasting never reaches a rule: record() un-broadcasts through hidden EXPAND nodes, so an
elementwise rule sees inputs of the output's size. Rules must not allocate per element.
Every index a rule reads is checked in Python before recording. A multi-input node
(record_multi) calls its rule once per input, with that input's gradient (ga, or offset a) and
its role and parameter in the int data (iv[1], iv[2], or ints[k + 1], ints[k + 2]).

Rules are few and shared (each distinct rule costs ~0.3 s of Numba compile per dtype, on first use
only): most forwards compute their local derivative with numpy and save it, and one general rule
multiplies (_times_saved, _mul, _weighted_sum, _scatter).

``samples(fn, *cases)`` gives each public function its test inputs: a case is a tuple of
arguments where a tuple stands for a random float64 tensor of that shape requiring grad
(``Pos(shape)``: positive values, ``NonZero(shape)``: bounded away from 0, ``Unit(shape)``: in
(0.1, 0.9), ``Given(values)``: exactly these values, ``Seq([shape, ...])``: a list of tensors) and
anything else (write dims and sizes as lists; index tensors as jitgrad tensors) is passed as is; a
trailing dict holds keyword arguments. tests/test_ops_gradcheck.py runs gradcheck on every case
and compares values, grad_fn names and gradients with PyTorch, and checks that every registered op
is reached by some case. ``kinks(fn, *cases)`` adds cases checked against PyTorch only: at kinks
and ties finite differences say nothing, and PyTorch's choice of subgradient is the spec.
"""
import builtins
import math
import warnings
import weakref

import numpy as np

from . import _device, dtypes
from .engine import registry
from .engine.loop import bcast_accumulate, permute_accumulate, numel
from .engine.registry import defop
from .engine.loop import F_INTS, F_MULTI, WIDTH, SER
from .engine.tape import TAPE, is_grad_enabled, F_SAVED, _grad_mode as _MODE
from .tensor import Tensor, _wrap, _to_array, _check_dim
from .creation import int_tuple, _shape as _new_shape

RULE_HELPERS = (bcast_accumulate, permute_accumulate)
SAMPLES = {}


class Pos(tuple):
    """A sample shape whose values are positive."""


class NonZero(tuple):
    """A sample shape whose values are bounded away from zero (poles and kinks)."""


class Unit(tuple):
    """A sample shape whose values lie in (0.1, 0.9) (probabilities)."""


class Given:
    """A sample tensor with exactly these values (ties, kinks)."""

    def __init__(self, values):
        self.values = values


class Seq(list):
    """A sample list of tensors, one per shape (cat, stack)."""


SAMPLE_EPS = {}     # ops whose forward loses precision get a larger finite-difference step
KINKS = {}


def samples(fn, *cases, eps=None):
    SAMPLES[fn] = SAMPLES.get(fn, ()) + cases
    if eps is not None:
        SAMPLE_EPS[fn] = eps


def kinks(fn, *cases):
    KINKS[fn] = KINKS.get(fn, ()) + cases


UNARY = (((),), ((3,),), ((2, 3),))
BINARY = (((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 1), (1, 3)), ((3,), ()), ((2, 3), (3,)),
          ((2, 3), 1.5), ((3,), 2))
_F64 = np.dtype(np.float64)


# ---- recording ---------------------------------------------------------------------------
def record(op, out, x, y=None, saves=(), consts=(), i0=0, i1=0, save_out=False, broadcast=True,
           ints=None, vshape=None):
    """Wrap the forward result ``out``; append a row if grad mode is on and an input needs grad.

    saves: tensors or arrays whose values the rule reads (broadcast to vshape when broadcast=True),
    then the output itself if save_out, then Python float consts. vshape (default: out's shape) is
    the shape the inputs' gradients arrive in: an input of another shape is un-broadcast to it by
    a hidden node. ints: integer data for the rule (the int arena; I1 then holds its offset).
    This is the forward's hot path: keep it lean.
    """
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    t = Tensor.__new__(Tensor)
    t._a = out
    t._node = t._leafvar = -1
    t._grad = t._ver = t._base = t._views = None
    if not ((x is not None and x._rg) or (y is not None and y._rg)) or not _MODE.enabled:
        t._rg = False
        return t
    t._rg = True
    tape = TAPE
    with tape.lock:
        tape.prepare(out)
        shape = out.shape if vshape is None else vshape
        if x is None or not x._rg:
            a = -1
        elif x._node >= 0 and (not broadcast or x._a.shape == shape):
            a = x._node                         # the common case, without a call
        else:
            a = tape.var(x, shape if broadcast else x._a.shape)
        if y is None or not y._rg:
            b = -1
        elif y._node >= 0 and (not broadcast or y._a.shape == shape):
            b = y._node
        else:
            b = tape.var(y, shape if broadcast else y._a.shape)
        s = -1
        flags = 0
        if saves or save_out or consts:
            s = tape.alen
            if saves or save_out:
                if save_out:
                    t._ver = [0, 64, tape.serial]
                tape.save_tensors(saves, (out,) if save_out else (), shape if broadcast else None)
                flags = F_SAVED
            if consts:
                tape.save_consts(consts)
        if ints is not None:
            i1 = tape.save_ints(ints)
            flags |= F_INTS
        t._node = tape.append(op, a, b, s, out.shape, i0, i1, flags, t)
    return t


def record_multi(op, out, inputs, saves=(), i0=0):
    """Record a node with any number of inputs (F_MULTI): inputs holds (tensor, role, param) or
    (tensor, role, param, shape) per input, shape being where its gradient arrives (default: its
    own). The rule runs once per input needing a gradient, reading role and param as iv[1], iv[2].
    saves are stored flat, unbroadcast."""
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    live = [e for e in inputs if e[0] is not None and e[0]._rg]
    if not live or not is_grad_enabled():
        return _wrap(out)
    tape = TAPE
    with tape.lock:
        tape.prepare(out)
        entries = [len(live)]
        for e in live:
            entries += [tape.var(e[0], e[3] if len(e) > 3 else e[0]._a.shape), e[1], e[2]]
        t = _wrap(out, True)
        s = -1
        flags = F_MULTI | F_INTS
        if saves:
            s = tape.save_tensors(saves)
            flags |= F_SAVED
        t._node = tape.append(op, -1, -1, s, out.shape, i0, tape.save_ints(entries), flags, t)
    return t


# numpy's floating-point warnings are off in forwards, as PyTorch gives inf and nan silently.
# The hot binary ops pay nothing for it: a filter ignores the warnings numpy raises from this
# module, and where the user made warnings errors, _quiet redoes the op with them off. Elsewhere
# ``with quiet():``, as np.errstate(all="ignore") but ~1 us faster, by numpy's context variable.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"jitgrad\.ops")
try:
    from numpy._core.umath import _extobj_contextvar as _NP_ERRSTATE, _make_extobj
    _NP_QUIET = _make_extobj(all="ignore")

    class quiet:
        __slots__ = ("_token",)

        def __enter__(self):
            self._token = _NP_ERRSTATE.set(_NP_QUIET)

        def __exit__(self, *exc):
            _NP_ERRSTATE.reset(self._token)
except (ImportError, AttributeError, TypeError):    # numpy's private API moved: the public way
    def quiet():
        return np.errstate(all="ignore")


def _quiet(ufunc, a, b):
    try:
        return ufunc(a, b)
    except RuntimeWarning:
        with quiet():
            return ufunc(a, b)


def _arr(r):
    return r if type(r) is np.ndarray else np.asarray(r)


def _needs_grad(*ts):
    if not _MODE.enabled:
        return False
    for t in ts:           # a loop, not any(<generator>): this runs once per op
        if t is not None and t._rg:
            return True
    return False


# ---- dtype promotion, as PyTorch: a category (bool < int < float) is decided by all operands;
# within it, dimensioned tensors outrank 0-dim tensors, which outrank Python scalars.
def _category(d):
    return 2 if d.kind == "f" else (0 if d.kind == "b" else 1)


def _py_scalar(v):
    """A NumPy scalar as the Python number PyTorch reads it as (a wrapped number, so it does not
    decide the dtype within its category; PyTorch reads np.bool_ as a float)."""
    return builtins.int(v) if isinstance(v, np.integer) else builtins.float(v)


def result_dtype(*operands):
    cands = []
    for o in operands:
        if isinstance(o, Tensor):
            d = o._a.dtype
            cands.append((_category(d), 2 if o._a.ndim else 1, d))
        elif isinstance(o, builtins.bool):
            cands.append((0, 0, np.dtype(np.bool_)))
        elif isinstance(o, (builtins.int, np.integer)):
            cands.append((1, 0, np.dtype(np.int64)))
        else:
            cands.append((2, 0, dtypes.default_float.np))
    cat = builtins.max(c[0] for c in cands)
    top = builtins.max(c[1] for c in cands if c[0] == cat)
    best = None
    for c, rank, d in cands:
        if c == cat and rank == top:
            best = d if best is None else np.promote_types(best, d)
    return best


def _operands(x, y):
    """Arrays for a binary op, cast to PyTorch's result dtype; y may be a Python number."""
    xa = x._a
    if isinstance(y, Tensor):
        ya = y._a
        if xa.dtype is ya.dtype or xa.dtype == ya.dtype:
            return xa, ya, y
    elif isinstance(y, np.generic) and y.ndim == 0:
        return _operands(x, _py_scalar(y))
    elif isinstance(y, (builtins.float, builtins.int)) and not isinstance(y, builtins.bool) \
            and (xa.dtype.kind == "f" or isinstance(y, builtins.int)):
        return xa, y, None
    else:
        y = _wrap(_to_array(y)) if not isinstance(y, (builtins.float, builtins.int)) else y
    d = result_dtype(x, y)
    ya = y._a if isinstance(y, Tensor) else y
    xa = xa if xa.dtype == d else xa.astype(d)
    if isinstance(y, Tensor):
        ya = ya if ya.dtype == d else ya.astype(d)
        return xa, ya, y
    return xa, np.asarray(ya, d), None


def _broadcast_shape(sa, sb):
    if sa == sb:
        return sa
    try:
        return np.broadcast_shapes(sa, sb)
    except ValueError:
        la, lb = len(sa), len(sb)
        for i in range(1, builtins.max(la, lb) + 1):
            da = sa[-i] if i <= la else 1
            db = sb[-i] if i <= lb else 1
            if da != db and da != 1 and db != 1:
                raise RuntimeError(f"The size of tensor a ({da}) must match the size of tensor b "
                                   f"({db}) at non-singleton dimension {builtins.max(la, lb) - i}")
        raise


def _check_bcast(xa, ya):
    if isinstance(ya, np.ndarray) and xa.shape != ya.shape:
        _broadcast_shape(xa.shape, ya.shape)


# ======================= elementwise binary ====================================================
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
    # _mul for saved masks (where, masked_fill, maximum, minimum): PyTorch selects, so an inf or
    # nan gradient is dropped where the mask is 0
    if a >= 0:
        for j in range(n):
            d = sv[s + j]
            if d != 0:
                g[a + j] += g[o + j] * d
        s += n
    if b >= 0:
        for j in range(n):
            d = sv[s + j]
            if d != 0:
                g[b + j] += g[o + j] * d


def _mul(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # g[a] += go * (saved d out/d x), g[b] += go * (saved d out/d y): the forward saves each
    # factor only for an input needing a gradient (x's first). Shared by every binary op whose
    # local derivatives the forward can compute: mul, maximum, where, pointwise losses. I0 = 1:
    # the output is a reduction of the elementwise values, so go is one scalar for all of them.
    red = rows[i, 5]
    m = numel(shapes, rows[va if a >= 0 else vb, 4]) if red else n
    if a >= 0:
        for j in range(m):
            g[a + j] += g[o if red else o + j] * sv[s + j]
        s += m
    if b >= 0:
        for j in range(m):
            g[b + j] += g[o if red else o + j] * sv[s + j]


def _scale(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    c = sv[s]
    for j in range(n):
        g[a + j] += g[o + j] * c


def _times_saved(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # g[a] += go * (saved d out/d x): every unary op whose forward can compute its local derivative
    for j in range(n):
        g[a + j] += g[o + j] * sv[s + j]


def _select_saved(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # as _times_saved where the derivative is a mask (clamp, hardtanh, tril): PyTorch selects, so
    # an inf or nan gradient is dropped where the mask is 0 (0 * inf would be nan)
    for j in range(n):
        d = sv[s + j]
        if d != 0:
            g[a + j] += g[o + j] * d


def _div(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # saved: y, then x if y needs a gradient
    for j in range(n):
        y = sv[s + j]
        if a >= 0:
            g[a + j] += g[o + j] / y
        if b >= 0:
            g[b + j] -= g[o + j] * (sv[s + n + j] / y / y)      # as PyTorch: y * y overflows


def _div_scalar(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    c = sv[s]
    for j in range(n):
        g[a + j] += g[o + j] / c


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


ADD = defop("AddBackward0", _add, 2)
SUB = defop("SubBackward0", _sub, 2)
RSUB = defop("RsubBackward1", _neg, 1)
NEG = defop("NegBackward0", _neg, 1)
MUL = defop("MulBackward0", _mul, 2)
MUL_SCALAR = defop("MulBackward0", _scale, 2)
DIV = defop("DivBackward0", _div, 2)
DIV_SCALAR = defop("DivBackward0", _div_scalar, 2)
DIV_SCALAR1 = defop("DivBackward1", _div_scalar, 2)    # Tensor.div(Scalar) as ATen composites call it
POW_SCALAR = defop("PowBackward0", _pow_scalar, 1)
RPOW = defop("PowBackward2", _times_saved, 1)      # c ** x: the forward saves d out/d x
POW = defop("PowBackward1", _mul, 2)               # x ** y: the forward saves both derivatives


def add(x, y, alpha=1):
    if type(alpha) is not builtins.int:
        _check_alpha_type(alpha)
    if alpha == 1 and isinstance(x, Tensor) and x._a.dtype.kind == "f":   # fast paths
        if type(y) is builtins.float:
            try:
                return record(ADD, x._a + y, x)
            except RuntimeWarning:      # numpy's, with warnings made errors (see _quiet)
                return record(ADD, _quiet(np.add, x._a, y), x)
        if isinstance(y, Tensor) and y._a.dtype is x._a.dtype and y._a.shape == x._a.shape:
            try:
                return record(ADD, x._a + y._a, x, y)
            except RuntimeWarning:
                return record(ADD, _quiet(np.add, x._a, y._a), x, y)
    if not isinstance(x, Tensor):
        x, y = y, x
    xa, ya, yt = _operands(x, y)
    if alpha != 1:
        _check_alpha(xa, ya, alpha)
        return add(x, mul(yt if yt is not None else _wrap(np.asarray(ya)), alpha))
    _check_bcast(xa, ya)
    return record(ADD, _arr(_quiet(np.add, xa, ya)), x, yt)


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


def sub(x, y, alpha=1):
    if type(alpha) is not builtins.int:
        _check_alpha_type(alpha)
    if x._a.dtype.kind == "b" or (isinstance(y, Tensor) and y._a.dtype.kind == "b"):
        _check_sub_bool(x, y)
    if alpha != 1:
        _check_alpha(x._a, y._a if isinstance(y, Tensor) else np.asarray(y), alpha)
        return sub(x, mul(y, alpha))
    xa, ya, yt = _operands(x, y)
    _check_bcast(xa, ya)
    return record(SUB, _arr(_quiet(np.subtract, xa, ya)), x, yt)


def rsub(x, y):
    """y - x for a Python number y (x.__rsub__)."""
    if isinstance(y, Tensor):
        return sub(y, x)
    if x._a.dtype.kind == "b":
        _check_sub_bool(x, y)
    xa, ya, _ = _operands(x, y)
    return record(RSUB, _arr(_quiet(np.subtract, ya, xa)), x)


_NEG_BOOL = ("Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
             "invert a mask, use the `~` or `logical_not()` operator instead.")


def neg(x):
    if x._a.dtype.kind == "b":
        raise RuntimeError(_NEG_BOOL)
    return record(NEG, _arr(-x._a), x)


def mul(x, y):
    if isinstance(x, Tensor) and x._a.dtype.kind == "f":                 # fast paths
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
            if not _needs_grad(x, y):
                return _wrap(_arr(out))
            return record(MUL, out, x, y, saves=([y] if x._rg else []) + ([x] if y._rg else []))
    if not isinstance(x, Tensor):
        x, y = y, x
    xa, ya, yt = _operands(x, y)
    if yt is None and np.ndim(ya) == 0:
        return record(MUL_SCALAR, _arr(_quiet(np.multiply, xa, ya)), x,
                      consts=(builtins.float(ya),))
    _check_bcast(xa, ya)
    out = _arr(_quiet(np.multiply, xa, ya))
    if not _needs_grad(x, yt):
        return _wrap(out)
    saves = ([yt if yt is not None else ya] if x._rg else []) + ([x] if yt is not None and yt._rg else [])
    return record(MUL, out, x, yt, saves=saves)


def div(x, y, rounding_mode=None):
    if rounding_mode not in (None, "trunc", "floor"):
        raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                           f"found '{rounding_mode}'")
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
        return _wrap(out)
    saves = [yt if yt is not None else ya] + ([x] if yt is not None and yt._rg else [])
    return record(DIV, out, x, yt, saves=saves)


def rdiv(x, y):
    """y / x for a Python number y; PyTorch records it as y * reciprocal(x)."""
    return mul(reciprocal(x), y)


def pow(x, y):
    if not isinstance(x, Tensor):
        return _rpow_fn(y, x)
    xa, ya, yt = _operands(x, y)
    if yt is None and np.ndim(ya) == 0:
        if xa.dtype.kind in "biu" and np.asarray(ya).dtype.kind in "iu" and ya < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        p = builtins.float(ya)
        with quiet():
            # PyTorch computes x ** +-0.5 with sqrt: (-0.) ** -0.5 is -inf, (-inf) ** 0.5 nan
            out = _arr(np.sqrt(xa) if p == 0.5 else 1 / np.sqrt(xa) if p == -0.5 else
                       xa ** ya)
        return record(POW_SCALAR, out, x, saves=(x,), consts=(p,))
    _check_bcast(xa, ya)
    with quiet():
        out = _arr(_tensor_pow(xa, ya))
        if not _needs_grad(x, yt):
            return _wrap(out)
        xb, yb = np.broadcast_arrays(xa, ya)
        # PyTorch: d/dx is 0 where y == 0; d/dy is 0 where x == 0 and y >= 0, else out * log(x)
        saves = ([np.where(yb == 0, 0, yb * _tensor_pow(xb, yb - 1))] if x._rg else []) + \
            ([np.where((xb == 0) & (yb >= 0), 0, out * np.log(xb))] if yt is not None and yt._rg
             else [])
    return record(POW, out, x, yt, saves=[v.astype(out.dtype) for v in saves])


def _tensor_pow(x, y):
    """x ** y elementwise as PyTorch's pow(Tensor, Tensor): C's pow, (-inf) ** 0.5 = inf (numpy
    takes sqrt for a 0-d 0.5, which gives nan)."""
    return np.power(np.atleast_1d(x), np.atleast_1d(y)).reshape(
        np.broadcast_shapes(np.shape(x), np.shape(y)))


def _rpow_fn(x, c):
    """c ** x for a Python number c."""
    xa = x._a if x._a.dtype.kind == "f" else x._a.astype(dtypes.default_float.np)
    with quiet():
        out = _arr(np.power(xa.dtype.type(c), xa))
        if not _needs_grad(x):
            return _wrap(out)
        d = np.where((c == 0) & (xa >= 0), 0, out * np.log(xa.dtype.type(c)))
    return record(RPOW, out, x, saves=(d.astype(out.dtype),))


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


# ---- maximum, minimum, where: the forward saves each input's local derivative (mask) for _mul
MAXIMUM = defop("MaximumBackward0", _select, 2)
MINIMUM = defop("MinimumBackward0", _select, 2)
WHERE = defop("WhereBackward0", _select, 2)


def _binary_masks(x, y, fn, op, name):
    if not isinstance(y, Tensor):
        raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not "
                        f"{type(y).__name__}")
    xa, ya, yt = _operands(x, y)
    _check_bcast(xa, ya)
    out = _arr(fn(ya, xa))     # on a tie numpy returns its second operand, PyTorch its first
    if not _needs_grad(x, yt):
        return _wrap(out)
    xb, yb = np.broadcast_arrays(xa, ya)
    share = np.where(xb == yb, 0.5, 1.0)     # PyTorch splits the gradient of a tie evenly
    lose_x, lose_y = (xb < yb, xb > yb) if fn is np.maximum else (xb > yb, xb < yb)
    saves = ([share * ~lose_x] if x._rg else []) + ([share * ~lose_y] if yt._rg else [])
    return record(op, out, x, yt, saves=[v.astype(out.dtype) for v in saves])


def maximum(x, other):
    return _binary_masks(x, other, np.maximum, MAXIMUM, "maximum")


def minimum(x, other):
    return _binary_masks(x, other, np.minimum, MINIMUM, "minimum")


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
    shape = _broadcast_shape(_broadcast_shape(c.shape, xa.shape), ya.shape)
    out = _arr(np.where(c, xa, ya))
    if not _needs_grad(x, y):
        return _wrap(out)
    cb = np.broadcast_to(c, shape)
    saves = ([cb] if x is not None and x._rg else []) + ([~cb] if y is not None and y._rg else [])
    return record(WHERE, out, x, y, saves=[v.astype(d) for v in saves])


MASKED_FILL = defop("MaskedFillBackward0", _select, 2)
MASKED_FILL_T = defop("MaskedFillBackward1", _select, 2)


def masked_fill(x, mask, value):
    """x with value where mask (broadcast to x) is True; a 0-d tensor value gets the gradient
    summed over the filled positions."""
    m = mask._a if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{dtypes.c_name(m.dtype)}")
    a = x._a
    shape = _broadcast_shape(m.shape, a.shape)      # a larger mask broadcasts x, as in PyTorch
    v = value if isinstance(value, Tensor) else None
    if v is not None and v._a.ndim != 0:
        raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor "
                           f"with {v._a.ndim} dimension(s).")
    fill = v._a if v is not None else value
    out = _arr(np.where(m, np.asarray(fill, a.dtype), a))
    if not _needs_grad(x, v):
        return _wrap(out)
    mb = np.broadcast_to(m, shape)
    saves = ([~mb] if x._rg else []) + ([mb] if v is not None and v._rg else [])
    return record(MASKED_FILL_T if v is not None else MASKED_FILL, out, x, v,
                  saves=[w.astype(a.dtype) for w in saves])


def masked_fill_(x, mask, value):
    m = mask._a if isinstance(mask, Tensor) else np.asarray(mask)
    shape = _broadcast_shape(x._a.shape, m.shape)
    if shape != x._a.shape:
        raise RuntimeError(f"output with shape {list(x._a.shape)} doesn't match the broadcast shape "
                           f"{list(shape)}")
    return _inplace(x, lambda: masked_fill(x, mask, value))


_MASK = _wrap(np.array([[True, False, True], [False, False, True]]))
samples(masked_fill, ((2, 3), _MASK, 0.5), ((2, 3), _wrap(np.array([False, True, True])), -1.0),
        ((2, 3), _MASK, ()), ((), _wrap(np.array(True)), 2.0))

samples(maximum, *[c for c in BINARY if isinstance(c[1], tuple)])
samples(minimum, ((2, 3), (2, 3)), ((2, 1), (1, 3)), ((), (3,)))
kinks(maximum, (Given([1.0, 2.0, 3.0]), Given([1.0, 0.0, 3.0])))
kinks(minimum, (Given([1.0, 2.0, 3.0]), Given([1.0, 0.0, 3.0])))
samples(where, (_MASK, (2, 3), (2, 3)), (_MASK, (3,), (2, 1)), (_MASK, (2, 3), 0.5),
        (_MASK, 1.0, (2, 3)), (_wrap(np.array(True)), (), (3,)))


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
    for j in range(n):
        if not sv[s + j] <= 0:      # PyTorch: zero where out <= 0, so a nan passes its gradient
            g[a + j] += g[o + j]


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


EXP = defop("ExpBackward0", _times_saved)
LOG = defop("LogBackward0", _over_saved)
SQRT = defop("SqrtBackward0", _sqrt)
TANH = defop("TanhBackward0", _tanh)
SIGMOID = defop("SigmoidBackward0", _sigmoid)
RELU = defop("ReluBackward0", _relu)
ABS = defop("AbsBackward0", _abs)
RECIPROCAL = defop("ReciprocalBackward0", _reciprocal)


def _float_input(x):
    a = x._a
    return a if a.dtype.kind == "f" else a.astype(dtypes.default_float.np)


def _unary(op, fn, save_input=False, save_out=False):
    def f(x):
        a = _float_input(x)
        with quiet():
            out = _arr(fn(a))
        return record(op, out, x, saves=(x,) if save_input else (), save_out=save_out)
    return f


exp = _unary(EXP, np.exp, save_out=True)
log = _unary(LOG, np.log, save_input=True)
sqrt = _unary(SQRT, np.sqrt, save_out=True)
tanh = _unary(TANH, np.tanh, save_out=True)
reciprocal = _unary(RECIPROCAL, np.reciprocal, save_out=True)


def sigmoid(x):
    a = _float_input(x)
    with quiet():
        out = _arr(np.where(a >= 0, 1 / (1 + np.exp(-np.abs(a))), np.exp(-np.abs(a)) / (1 + np.exp(-np.abs(a))))
                   .astype(a.dtype))
    return record(SIGMOID, out, x, save_out=True)


def relu(x):
    # numpy's maximum returns its second operand on a tie, PyTorch its first: relu(-0.) is -0.
    return record(RELU, _arr(np.maximum(x._a.dtype.type(0), x._a)), x, save_out=True)


def abs(x):
    if x._a.dtype.kind == "b":
        raise NotImplementedError("\"abs_cpu\" not implemented for 'Bool'")
    return record(ABS, _arr(np.abs(x._a)), x, saves=(x,))


for _f in (exp, tanh, sigmoid, neg):
    samples(_f, *UNARY)
for _f in (log, sqrt):
    samples(_f, *[(Pos(c[0]),) for c in UNARY])
for _f in (relu, abs, reciprocal):
    samples(_f, *[(NonZero(c[0]),) for c in UNARY])
for _f, _n in ((exp, "exp"), (log, "log"), (sqrt, "sqrt"), (tanh, "tanh"), (reciprocal, "reciprocal")):
    _f.__name__ = _n


# ---- unary ops whose forward also computes the local derivative, saved for _times_saved
def unary_op(grad_fn, forward, keep_int=False, int_in_place=False, mask=False):
    """Register an elementwise op: forward(a, *args) returns (out, derivative), the derivative a
    callable of out computed only when a gradient is needed. keep_int: the op has a zero
    gradient and keeps integer dtypes; int_in_place: integers keep their dtype (no gradient);
    mask: the derivative is 0 on whole regions, where PyTorch selects rather than multiplies."""
    op = defop(grad_fn, None if keep_int else _select_saved if mask else _times_saved)

    def apply(x, *args):
        a = x._a if keep_int or int_in_place or x._a.dtype.kind == "f" else \
            x._a.astype(dtypes.default_float.np)
        with quiet():
            out, deriv = forward(a, *args)
            out = _arr(np.asarray(out, a.dtype))
            if keep_int or not _needs_grad(x):
                return record(op, out, x if x._rg and a.dtype.kind == "f" else None, broadcast=False)
            d = np.broadcast_to(np.asarray(deriv(out), a.dtype), out.shape)
        return record(op, out, x, saves=(d,), broadcast=False)
    apply.op = op
    return apply


_LN2 = math.log(2.0)
sin = unary_op("SinBackward0", lambda a: (np.sin(a), lambda out: np.cos(a)))
cos = unary_op("CosBackward0", lambda a: (np.cos(a), lambda out: -np.sin(a)))
tan = unary_op("TanBackward0", lambda a: (np.tan(a), lambda out: 1 + out * out))
sinh = unary_op("SinhBackward0", lambda a: (np.sinh(a), lambda out: np.cosh(a)))
cosh = unary_op("CoshBackward0", lambda a: (np.cosh(a), lambda out: np.sinh(a)))
asin = unary_op("AsinBackward0", lambda a: (np.arcsin(a), lambda out: 1 / np.sqrt(1 - a * a)))
acos = unary_op("AcosBackward0", lambda a: (np.arccos(a), lambda out: -1 / np.sqrt(1 - a * a)))
atan = unary_op("AtanBackward0", lambda a: (np.arctan(a), lambda out: 1 / (1 + a * a)))
log1p = unary_op("Log1PBackward0", lambda a: (np.log1p(a), lambda out: 1 / (1 + a)))
expm1 = unary_op("Expm1Backward0", lambda a: (np.expm1(a), lambda out: out + 1))
exp2 = unary_op("Exp2Backward0", lambda a: (np.exp2(a), lambda out: out * _LN2))
log2 = unary_op("Log2Backward0", lambda a: (np.log2(a), lambda out: 1 / (a * _LN2)))
log10 = unary_op("Log10Backward0", lambda a: (np.log10(a), lambda out: 1 / (a * math.log(10.0))))
rsqrt = unary_op("RsqrtBackward0", lambda a: (1 / np.sqrt(a), lambda out: -0.5 * out * out * out))
square = unary_op("PowBackward0", lambda a: (a * a, lambda out: 2 * a))
sign = unary_op("SignBackward0", lambda a: (a if a.dtype.kind == "b" else
                                            np.where(a != a, 0, np.sign(a)), None), keep_int=True)
floor = unary_op("FloorBackward0", lambda a: (np.floor(a), None), keep_int=True)
ceil = unary_op("CeilBackward0", lambda a: (np.ceil(a), None), keep_int=True)
trunc = unary_op("TruncBackward0", lambda a: (np.trunc(a), None), keep_int=True)
_round = unary_op("RoundBackward0", lambda a: (np.round(a), None), keep_int=True)
_round_decimals = unary_op("RoundBackward1", lambda a, n: (np.round(a, n), None), keep_int=True)


def round(x, *, decimals=0):
    return _round_decimals(x, decimals) if decimals else _round(x)


def _erf(a):
    from scipy.special import erf
    return erf(a)


erf = unary_op("ErfBackward0", lambda a: (_erf(a), lambda out: 2 / math.sqrt(math.pi) * np.exp(-a * a)))


def _clamp_scalar(a, lo, hi):
    out = a      # the bound first: on a tie numpy returns the second operand, PyTorch x
    if lo is not None:
        out = np.maximum(a.dtype.type(lo), out)
    if hi is not None:
        out = np.minimum(a.dtype.type(hi), out)
    keep = np.ones(a.shape, np.bool_)
    if lo is not None:
        keep &= a >= lo          # PyTorch passes the gradient on the boundary
    if hi is not None:
        keep &= a <= hi
    return out, lambda o: keep


_clamp1 = unary_op("ClampBackward1", _clamp_scalar, mask=True)


def _multi_times_saved(go, ga, gb, sv, iv, do, da, db, row):
    # multi-input elementwise: this input's local derivative starts at sv[iv[2]] (out-shaped)
    off = iv[2]
    for j in range(ga.size):
        ga[j] += go[j] * sv[off + j]


def _multi_select_saved(go, ga, gb, sv, iv, do, da, db, row):
    # _multi_times_saved for masks (clamp): selects, as _select_saved
    off = iv[2]
    for j in range(ga.size):
        d = sv[off + j]
        if d != 0:
            ga[j] += go[j] * d


CLAMP_T = defop("ClampBackward0", _multi_select_saved, 0)


def clamp(x, min=None, max=None):
    min, max = (_py_scalar(v) if isinstance(v, np.generic) else v for v in (min, max))
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if not isinstance(min, Tensor) and not isinstance(max, Tensor):
        if x._a.dtype.kind != "f" and builtins.all(isinstance(v, (builtins.int, type(None)))
                                                   for v in (min, max)):
            return _wrap(_arr(np.clip(x._a, min, max)))
        return _clamp1(x, min, max)
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
    if not _needs_grad(x, lo, hi):
        return _wrap(out)
    ab = np.broadcast_to(a, shape)
    # PyTorch: x passes where min <= x <= max; min gets it where x < min (and min < max), max
    # where x > max (or max < min)
    wx = np.ones(shape, np.bool_)
    if la is not None:
        wx = wx & (ab >= la)
    if ha is not None:
        wx = wx & (ab <= ha)
    entries, saves, off = [], [], 0
    for t, w in ((x, wx), (lo, None), (hi, None)):
        if t is None or not t._rg:
            continue
        if t is lo:
            w = (ab < la) & (la < ha) if ha is not None else ab < la
        elif t is hi:
            w = (ab > ha) | (ha < la) if la is not None else ab > ha
        entries.append((t, len(entries), off, shape))
        saves.append(w.astype(d))
        off += w.size
    return record_multi(CLAMP_T, out, entries, saves=saves)


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


# ======================= reductions ===========================================================
def _sum(go, ga, gb, sv, iv, do, da, db, row):
    small = da.copy()
    for d in range(da.shape[0]):
        if (row[5] >> d) & 1:
            small[d] = 1
    bcast_accumulate(da, small, False, 1.0, ga, go, sv[:0])


def _mean(go, ga, gb, sv, iv, do, da, db, row):
    small = da.copy()
    for d in range(da.shape[0]):
        if (row[5] >> d) & 1:
            small[d] = 1
    bcast_accumulate(da, small, False, go.size / ga.size, ga, go, sv[:0])


def _weighted_sum(go, ga, gb, sv, iv, do, da, db, row):
    # a reduction whose local derivative w (input-shaped) was saved by the forward: ga += go * w
    small = da.copy()
    for d in range(da.shape[0]):
        if (row[5] >> d) & 1:
            small[d] = 1
    bcast_accumulate(da, small, False, 1.0, ga, go, sv[: ga.size])


SUM = defop("SumBackward0", _sum)
SUM_DIM = defop("SumBackward1", _sum)
MEAN = defop("MeanBackward0", _mean)
MEAN_DIM = defop("MeanBackward1", _mean)
NORM = defop("LinalgVectorNormBackward0", _weighted_sum)


def _dims(dim, ndim):
    """Normalise dim (int, tuple or None) to a sorted tuple of axes, checking the range."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, Tensor) or isinstance(dim, builtins.float):
        raise TypeError(f"dim must be an int or a tuple of ints, not {type(dim).__name__}")
    if isinstance(dim, (builtins.int, np.integer)):
        dim = (dim,)
    for i, d in enumerate(dim):
        if not isinstance(d, (builtins.int, np.integer)):
            raise TypeError(f"argument 'dim' failed to unpack the object at pos {i + 1} with error "
                            f'"type must be tuple of ints,but got {type(d).__name__}"')
    axes = [_check_dim(builtins.int(d), ndim) for d in dim]
    _check_unique(axes)
    axes = tuple(sorted(axes))
    if ndim == 0:
        return ()
    return axes


def _check_unique(axes):
    """PyTorch rejects a dim listed twice (normalised); a set would silently merge them."""
    if len(set(axes)) != len(axes):
        seen = set()
        for d in axes:
            if d in seen:
                raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
            seen.add(d)


def _mask(axes):
    m = 0
    for d in axes:
        m |= 1 << d
    # dim 63 (numpy allows 64 dims) is the sign bit: store the int64 with the same bits; the
    # rules' arithmetic shift (I0 >> d) & 1 still reads bit d
    return m - (1 << 64) if m >> 63 else m


def _check_grad_dtype(x, a):
    """A result dtype autograd cannot carry, for an input that needs grad: PyTorch refuses it."""
    if a.dtype.kind != "f" and x._rg and _MODE.enabled:
        raise RuntimeError(f"Autograd not support dtype: {dtypes.scalar_name(a.dtype)}")


def sum(x, dim=None, keepdim=False, dtype=None):
    a = x._a
    if dtype is not None:
        a = a.astype(dtypes.to_numpy_dtype(dtype))
        _check_grad_dtype(x, a)
    elif a.dtype.kind in "biu":
        a = a.astype(np.int64)
    axes = _dims(dim, a.ndim)
    with quiet():
        out = _arr(a.sum(axis=axes, keepdims=keepdim))
    return record(SUM if dim is None else SUM_DIM, out, x, i0=_mask(axes), broadcast=False)


def mean(x, dim=None, keepdim=False, dtype=None):
    a = x._a if dtype is None else x._a.astype(dtypes.to_numpy_dtype(dtype))
    if a.dtype.kind != "f":
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {x.dtype.tensor_type[:-6]}")
    axes = _dims(dim, a.ndim)
    with quiet():
        out = _arr(a.mean(axis=axes, keepdims=keepdim) if a.size else np.full(
            _reduced_shape(a.shape, axes, keepdim), np.nan, a.dtype))
    return record(MEAN if dim is None else MEAN_DIM, out, x, i0=_mask(axes), broadcast=False)


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
    absa = np.abs(a)
    empty = [d for d in axes if a.shape[d] == 0]
    if builtins.abs(p) == math.inf and empty:       # max and min have no identity
        pname = "inf" if p > 0 else "-inf"
        if dim is None:
            raise RuntimeError(f"linalg.vector_norm cannot compute the {pname} norm on an empty "
                               "tensor because the operation does not have an identity")
        raise RuntimeError(f"linalg.vector_norm cannot compute the {pname} norm on the dimension "
                           f"{empty[0]}because this dimension is empty and the operation does not "
                           "have an identity")
    with quiet():
        if builtins.abs(p) == math.inf:
            r = (absa.max if p > 0 else absa.min)(axis=axes, keepdims=True)
        elif p == 0:
            r = (absa != 0).sum(axis=axes, keepdims=True).astype(a.dtype)
        else:
            r = (absa ** p).sum(axis=axes, keepdims=True) ** (1 / p)
        out = _arr((r if keepdim else r.reshape(_reduced_shape(a.shape, axes))).astype(a.dtype))
        if not _needs_grad(x):
            return _wrap(out)
        # d|x|_p / dx = sign(x) |x|^(p-1) / |x|_p^(p-1); 0 where the norm or x is 0. PyTorch's
        # sign of nan is 0, so a nan gets no gradient from the 1- and inf-norms
        sign = np.where(a != a, 0, np.sign(a))
        if builtins.abs(p) == math.inf:
            hit = absa == r
            w = sign * hit / np.maximum(hit.sum(axis=axes, keepdims=True), 1)
        elif p == 0:
            w = np.zeros_like(a)
        elif p == 1:
            w = sign
        else:   # as PyTorch: a zero x gets 0 (also for p < 1), but a nan norm makes every w nan
            w = np.where(r == 0, 0, np.where(a == 0, 0, sign * absa ** (p - 1)) / r ** (p - 1))
    return record(NORM, out, x, saves=(w.astype(a.dtype),), i0=_mask(axes), broadcast=False)


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
      (Given([0.0, 2.0, -2.0]), math.inf), (Given([0.0, 1.0]), 1))


# ---- prod, var, std, logsumexp: the forward computes d out / d x, saved for _weighted_sum
PROD = defop("ProdBackward0", _weighted_sum)
PROD_DIM = defop("ProdBackward1", _weighted_sum)
VAR = defop("VarBackward0", _weighted_sum)
STD = defop("StdBackward0", _weighted_sum)
LOGSUMEXP = defop("LogsumexpBackward0", _weighted_sum)


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


def prod(x, dim=None, keepdim=False, dtype=None):
    a = x._a if dtype is None else x._a.astype(dtypes.to_numpy_dtype(dtype))
    if dtype is not None:
        _check_grad_dtype(x, a)
    if a.dtype.kind in "biu":
        a = a.astype(np.int64)
    if dim is None:
        with quiet():
            out = _arr(np.prod(a))
        if not _needs_grad(x):
            return _wrap(out)
        return record(PROD, out, x, saves=(_prod_grad(a, out, None),), i0=_mask(range(a.ndim)),
                      broadcast=False)
    d = _check_dim(dim, a.ndim)
    axes = (d,) if a.ndim else ()
    with quiet():
        keep = np.prod(a, axis=axes, keepdims=True)
    out = _arr(keep if keepdim else keep.reshape(_reduced_shape(a.shape, axes)))
    if not _needs_grad(x):
        return _wrap(out)
    w = _prod_grad(a, keep, d) if a.ndim else np.ones_like(a)
    return record(PROD_DIM, out, x, saves=(w,), i0=_mask(axes), broadcast=False)


def _prod_grad(a, out_keep, dim):
    """d prod / d x as PyTorch computes it: out / x without zeros (nan for an inf, 0 where the
    product underflows), else the product of the others (prod(): 0 everywhere for two zeros)."""
    if a.ndim == 0:
        return np.ones_like(a)
    zeros = a == 0
    if not zeros.any():
        with quiet():
            return out_keep / a
    if dim is None:
        if np.count_nonzero(zeros) > 1:
            return np.zeros_like(a)
        return _exclusive_prod(a.reshape(-1), 0).reshape(a.shape)
    with quiet():
        return _exclusive_prod(a, dim)


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
        a64 = a.astype(np.float64, copy=False)
        dev = a64 - a64.mean(axis=axes, keepdims=True) if a.size else a64
        denom = builtins.max(n - correction, 0)
        var = (dev * dev).sum(axis=axes, keepdims=True) / np.float64(denom)
    if n - correction <= 0:
        warnings.warn(f"{name}(): degrees of freedom is <= 0. Correction should be strictly less "
                      "than the reduction factor (input numel divided by output numel).",
                      UserWarning, stacklevel=3)
    return a, axes, dev, denom, var


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, keepdim, correction = _var_args(dim, unbiased, keepdim, correction)
    a, axes, dev, denom, v = _var_core(x, dim, keepdim, correction, "var")
    with quiet():
        out = _arr(_reduced(v, axes, keepdim, a).astype(a.dtype))
    if not _needs_grad(x):
        return _wrap(out)
    with quiet():
        w = dev * (2 / np.float64(denom))
    return record(VAR, out, x, saves=(w.astype(a.dtype),), i0=_mask(axes), broadcast=False)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, keepdim, correction = _var_args(dim, unbiased, keepdim, correction)
    a, axes, dev, denom, v = _var_core(x, dim, keepdim, correction, "std")
    with quiet():
        sd = np.sqrt(v)
        out = _arr(_reduced(sd, axes, keepdim, a).astype(a.dtype))
        if not _needs_grad(x):
            return _wrap(out)
        w = np.where(sd == 0, 0, dev / (np.float64(denom) * sd))    # PyTorch: 0 where std is 0
    return record(STD, out, x, saves=(w.astype(a.dtype),), i0=_mask(axes), broadcast=False)


def logsumexp(x, dim, keepdim=False):
    a = _float_input(x)
    axes = _dims(dim, a.ndim) if not (dim == () or dim == []) else tuple(range(a.ndim))
    with quiet():
        if a.size:
            m = a.max(axis=axes, keepdims=True)
            m = np.where(np.isinf(m), 0, m)
            keep = np.log(np.exp(a - m).sum(axis=axes, keepdims=True)) + m
        else:
            keep = np.log(np.exp(a).sum(axis=axes, keepdims=True))
        out = _arr(_reduced(keep, axes, keepdim, a).astype(a.dtype))
        if not _needs_grad(x):
            return _wrap(out)
        w = np.exp(a - keep)
    return record(LOGSUMEXP, out, x, saves=(w.astype(a.dtype),), i0=_mask(axes), broadcast=False)


# ---- cumsum: the gradient is a reversed cumulative sum along the dim
def _cumsum(go, ga, gb, sv, iv, do, da, db, row):
    # along a dim of size I0 whose elements are I1 apart
    n = row[5]
    inner = row[6]
    if ga.size == 0:
        return
    for o in range(ga.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            s = np.float64(0.0)     # float64 for float32 too: 1e6 small terms stay exact
            for k in range(n - 1, -1, -1):
                s += go[base + k * inner]
                ga[base + k * inner] += s


CUMSUM = defop("CumsumBackward0", _cumsum)


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
samples(prod, (Given([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]),), (Given([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]), 1))
_SPREAD = [c for c in _reduce_cases() if c[0] != ()]     # var of one element is nan
_ONE = ({"correction": 0},)
for _f in (var, std):
    samples(_f, *_SPREAD, ((2, 3), 1, False), ((2, 3), 1, True, True), ((2, 3), True),
            ((2, 3), {"dim": 0, "correction": 0}), ((2, 3), {"correction": 2}), ((),) + _ONE,
            ((), {"dim": 0, "correction": 0, "keepdim": True}))
samples(logsumexp, *[c for c in _reduce_cases() if len(c) > 1],
        (Given([[1e3, 0.0], [-1e3, -1e3]]), 1))
samples(cumsum, ((3,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 3, 2), -2), ((), 0))


# ---- max and min: ties share the gradient evenly (max(), amax) or it goes to the index (max(dim))
MAX_ALL = defop("MaxBackward1", _weighted_sum)
MIN_ALL = defop("MinBackward1", _weighted_sum)
AMAX = defop("AmaxBackward0", _weighted_sum)
AMIN = defop("AminBackward0", _weighted_sum)


class _ValuesIndices(tuple):
    """A (values, indices) pair, as torch.return_types.max and friends."""
    __slots__ = ()
    _name = "max"

    def __new__(cls, values, indices):
        return tuple.__new__(cls, (values, indices))

    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])

    def __repr__(self):
        return f"jitgrad.return_types.{self._name}(\nvalues={self[0]!r},\nindices={self[1]!r})"


class return_types:
    max = type("max", (_ValuesIndices,), {"__slots__": (), "_name": "max"})
    min = type("min", (_ValuesIndices,), {"__slots__": (), "_name": "min"})


def _check_nonempty(name, a, axes, whole):
    if a.size:
        return
    if whole:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                           "Specify the reduction dim with the 'dim' argument.")
    for d in axes:
        if a.shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


def _even_split(a, out_keep, axes, nan_hits=True):
    """Weights spreading a reduction's gradient evenly over the elements equal to its result.
    A nan result: max() spreads it over the nans; amax, as PyTorch, matches nothing (0 / 0: nan)."""
    hit = (np.isnan(a) & np.isnan(out_keep)) | (a == out_keep) if nan_hits else a == out_keep
    with quiet():
        return hit / hit.sum(axis=axes, keepdims=True)


def _extreme_all(x, fn, op, name):
    a = x._a
    _check_nonempty(name, a, (), True)
    with quiet():
        out = _arr(fn(a))
    if not _needs_grad(x):
        return _wrap(out)
    axes = tuple(range(a.ndim))
    return record(op, out, x, saves=(_even_split(a, out, axes).astype(a.dtype),), i0=_mask(axes),
                  broadcast=False)


def _flat_positions(shape, dim, idx):
    """Flat (C-order) positions in a tensor of this shape of the elements idx picks along dim:
    idx has the tensor's number of dims, and element (i_0, .., i_k) of idx names the element at
    i_dim = idx[...] and i_d = i_d elsewhere (gather's rule)."""
    nd = len(shape)
    strides = [1] * nd
    for d in range(nd - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    pos = idx.astype(np.int64) * (strides[dim] if nd else 1)
    for d in range(nd):
        if d != dim:
            r = np.arange(idx.shape[d], dtype=np.int64) * strides[d]
            pos = pos + r.reshape((-1,) + (1,) * (nd - 1 - d))
    return pos


def _extreme_dim(x, dim, keepdim, argfn, op, cls, name):
    a = x._a
    d = _check_dim(dim, a.ndim)
    if a.ndim == 0:
        return cls(record(op, _arr(a.copy()), x, ints=[1, 0], broadcast=False),
                   _wrap(np.zeros((), np.int64)))
    _check_nonempty(name, a, (d,), False)
    idx = np.expand_dims(argfn(a, axis=d), d)
    vals = np.take_along_axis(a, idx, axis=d)
    if not keepdim:
        vals, idxo = vals.squeeze(d), idx.squeeze(d)
    else:
        idxo = idx
    indices = _wrap(_arr(idxo.astype(np.int64)))
    if not _needs_grad(x):
        return cls(_wrap(_arr(vals)), indices)
    pos = _flat_positions(a.shape, d, idx).reshape(-1)
    return cls(record(op, _arr(vals), x, ints=np.concatenate(([pos.size], pos)), broadcast=False),
               indices)


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


def max(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    if dim is None:
        return _extreme_all(x, np.max, MAX_ALL, "max")
    return _extreme_dim(x, dim, keepdim, _argmax, MAX_DIM, return_types.max, "max")


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
        _check_nonempty(name, a, axes, dim == () or dim == [])
        with quiet():
            keep = fn(a, axis=axes, keepdims=True)
        out = _arr(keep if keepdim else keep.reshape(_reduced_shape(a.shape, axes)))
        if not _needs_grad(x):
            return _wrap(out)
        return record(op, out, x, saves=(_even_split(a, keep, axes, False).astype(a.dtype),),
                      i0=_mask(axes), broadcast=False)
    f.__name__ = name
    return f


amax = _amax_like(np.max, AMAX, "amax")
amin = _amax_like(np.min, AMIN, "amin")


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


argmax = _arg_like(_argmax, "argmax")
argmin = _arg_like(_argmin, "argmin")

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


# ======================= shape ===============================================================
def _identity(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    for j in range(n):
        g[a + j] += g[o + j]


def _expand(go, ga, gb, sv, iv, do, da, db, row):
    bcast_accumulate(do, da, True, 1.0, ga, go, sv[:0])


def _permute(go, ga, gb, sv, iv, do, da, db, row):
    nd = da.shape[0]
    perm = np.empty(nd, np.int64)
    for d in range(nd):
        perm[d] = iv[d] if iv.size else (row[5] >> (4 * d)) & 15   # see _perm_attrs
    permute_accumulate(da, perm, ga, go)


registry.EXPAND = defop(None, _expand)
VIEW = defop("ViewBackward0", _identity)
SQUEEZE = defop("SqueezeBackward0", _identity)
SQUEEZE_DIM = defop("SqueezeBackward1", _identity)
UNSQUEEZE = defop("UnsqueezeBackward0", _identity)
CLONE = defop("CloneBackward0", _identity)
TO_COPY = defop("ToCopyBackward0", _identity)
EXPAND_USER = defop("ExpandBackward0", _expand)
T = defop("TBackward0", _permute)
TRANSPOSE = defop("TransposeBackward0", _permute)
PERMUTE = defop("PermuteBackward0", _permute)


def _view_of(op, out, x, i0=0, ints=None, multi=None):
    """Record a view op: the result shares x's storage and version counter, and is a view of
    x's base (multi: its output number when op returns several views)."""
    t = record(op, out, x, i0=i0, broadcast=False, ints=ints)
    if out.size and np.may_share_memory(out, x._a):
        _link_view(t, x, op, multi)
    return t


def _link_view(t, x, op=None, multi=None):
    """t is a view of x: share x's version counter, point t at x's base and list t there (an
    in-place op that rewrites the base's history regenerates t's: rebase_views). Like PyTorch's
    CreationMeta, _view_meta records what forbids modifying t in place: a view made in no_grad
    mode, or one of several views returned by one op (split, unbind); views of it inherit it."""
    t._ver = x._shared_version()
    base = x._base
    if base is None:
        base = x
        meta = None
    else:
        meta = x._view_meta
    if multi is not None:
        meta = ("multi", multi)
    elif not _MODE.enabled:
        meta = ("no_grad", 0)
    elif meta is not None:
        meta = (meta[0], 0)
    t._base = base
    t._view_meta = None if meta is None else meta + (op,)
    views = base._views
    if views is None:
        base._views = [weakref.ref(t)]
    else:
        views.append(weakref.ref(t))
        n = len(views)
        if n >= 64 and not n & (n - 1):     # drop dead entries at each power of two
            views[:] = [r for r in views if r() is not None]


def _infer_shape(shape, n, fn="reshape", arg="shape"):
    shape = int_tuple(shape, fn, arg)
    known = 1
    inferred = False
    for i, s in enumerate(shape):
        if s == -1:
            if inferred:
                raise RuntimeError("only one dimension can be inferred")
            inferred = True
        elif s < 0:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(shape)}")
        else:
            known *= s
    if -1 in shape:
        if known == 0 and n == 0:
            raise RuntimeError(f"cannot reshape tensor of 0 elements into shape {list(shape)} because "
                               "the unspecified dimension size -1 can be any value and is ambiguous")
        if known == 0 or n % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {n}")
        shape = tuple(n // known if s == -1 else s for s in shape)
    elif known != n:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {n}")
    return shape


def reshape(x, *shape):
    shape = _infer_shape(shape, x._a.size)
    return _view_of(VIEW, x._a.reshape(shape), x)


def view(x, *shape):
    shape = _infer_shape(shape, x._a.size, "view", "size")
    if not x._a.flags.c_contiguous and x._a.size > 1:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least "
                           "one dimension spans across two contiguous subspaces). Use .reshape(...) "
                           "instead.")
    return _view_of(VIEW, x._a.reshape(shape), x)


def flatten(x, start_dim=0, end_dim=-1):
    a = x._a
    if a.ndim == 0:
        return reshape(x, 1)
    s = _check_dim(start_dim, a.ndim)
    e = _check_dim(end_dim, a.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    n = 1
    for d in a.shape[s:e + 1]:
        n *= d
    return reshape(x, a.shape[:s] + (n,) + a.shape[e + 1:])


def squeeze(x, dim=None):
    a = x._a
    if dim is None:
        return _view_of(SQUEEZE, a.reshape(tuple(d for d in a.shape if d != 1)), x)
    axes = _dims(dim, a.ndim)
    shape = tuple(d for i, d in enumerate(a.shape) if not (i in axes and d == 1))
    return _view_of(SQUEEZE_DIM, a.reshape(shape), x)


def unsqueeze(x, dim):
    a = x._a
    d = _check_dim(dim, a.ndim + 1)
    return _view_of(UNSQUEEZE, a.reshape(a.shape[:d] + (1,) + a.shape[d:]), x)


def _perm_attrs(perm):
    """(i0, ints) of a permuting view: up to 15 dims packed 4 bits each into I0 (it must stay
    a positive int64), more in the int arena."""
    if len(perm) > 15:
        return 0, perm
    code = 0
    for d, p in enumerate(perm):
        code |= p << (4 * d)
    return code, None


def permute(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    nd = x._a.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not "
                           f"match the length of the desired ordering of dimensions i.e. input.dim() "
                           f"= {nd} is not equal to len(dims) = {len(dims)}")
    perm = tuple(_check_dim(d, nd) for d in dims)
    if len(set(perm)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return _view_of(PERMUTE, x._a.transpose(perm), x, *_perm_attrs(perm))


def transpose(x, dim0, dim1):
    nd = x._a.ndim
    if nd == 0:
        return _view_of(TRANSPOSE, x._a, x)
    d0, d1 = _check_dim(dim0, nd), _check_dim(dim1, nd)
    perm = list(range(nd))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _view_of(TRANSPOSE, x._a.transpose(perm), x, *_perm_attrs(perm))


def t(x):
    nd = x._a.ndim
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return _view_of(T, x._a.T, x, *_perm_attrs((1, 0))) if nd == 2 else _view_of(T, x._a, x)


def T_(x):
    return permute(x, tuple(range(x._a.ndim - 1, -1, -1)))


def expand(x, *sizes):
    sizes = int_tuple(sizes, "expand")
    a = x._a
    lead = len(sizes) - a.ndim
    if lead < 0:
        raise RuntimeError(f"expand(jitgrad.{x.dtype.tensor_type}{{{list(a.shape)}}}, size={list(sizes)}): "
                           f"the number of sizes provided ({len(sizes)}) must be greater or equal to "
                           f"the number of dimensions in the tensor ({a.ndim})")
    for i in range(lead):
        if sizes[i] < 0:
            raise RuntimeError(f"The expanded size of the tensor ({sizes[i]}) isn't allowed in a "
                               f"leading, non-existing dimension {i}")
    shape = tuple(a.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    for i in range(a.ndim):
        if a.shape[i] != 1 and a.shape[i] != shape[i + lead]:
            raise RuntimeError(f"The expanded size of the tensor ({shape[i + lead]}) must match the "
                               f"existing size ({a.shape[i]}) at non-singleton dimension {i + lead}.  "
                               f"Target sizes: {list(sizes)}.  Tensor sizes: {list(a.shape)}")
    # writable, as PyTorch's: in-place ops refuse the aliased elements (_check_no_overlap), but
    # fill_ and writes through a non-aliasing view of it reach the base
    st = np.broadcast_to(a, shape).strides
    out = np.lib.stride_tricks.as_strided(a, shape, st, writeable=a.flags.writeable)
    return _view_of(EXPAND_USER, out, x)


def clone(x):
    return record(CLONE, x._a.copy(), x, broadcast=False)


_TO_SIGNATURES = "".join(
    f" * ({first}, bool non_blocking = False, bool copy = False, *, jitgrad.memory_format "
    f"memory_format = None)\n" for first in (
        "jitgrad.device device = None, jitgrad.dtype dtype = None", "jitgrad.dtype dtype",
        "Tensor tensor"))


def _is_dtype(v):
    return isinstance(v, dtypes.dtype) or v in (builtins.float, builtins.int, builtins.bool)


def to(x, *args, dtype=None, device=None, non_blocking=False, copy=False, memory_format=None):
    """Tensor.to as PyTorch parses it: (device, dtype), (dtype) or (other), then non_blocking and
    copy, positionally or by name. x itself when nothing changes and no copy is asked for."""
    rest = args
    if args and isinstance(args[0], Tensor):
        dtype, rest = args[0].dtype, args[1:]
    elif args and _is_dtype(args[0]):
        dtype, rest = args[0], args[1:]
    elif args and not isinstance(args[0], builtins.bool):
        device, rest = args[0], args[1:]
        if rest and (rest[0] is None or _is_dtype(rest[0])):
            dtype, rest = rest[0], rest[1:]
    if len(rest) > 2 or not builtins.all(isinstance(v, builtins.bool) for v in rest):
        got = ", ".join("jitgrad." + type(v).__name__ if isinstance(v, dtypes.dtype) else
                        type(v).__name__ for v in args)
        raise TypeError(f"to() received an invalid combination of arguments - got ({got}), but "
                        f"expected one of:\n{_TO_SIGNATURES}")
    if len(rest) == 2:
        copy = rest[1]
    if device is not None:
        _device.as_device(device)
    nd = x._a.dtype if dtype is None else dtypes.to_numpy_dtype(dtype)
    if nd == x._a.dtype and not copy:
        return x
    out = x._a.astype(nd)
    if nd.kind != "f":
        return _wrap(out)
    return record(TO_COPY, out, x, broadcast=False)


samples(reshape, ((2, 3), 3, 2), ((2, 3), -1), ((), 1), ((6,), [2, 3]))
samples(view, ((2, 3), 6))
samples(flatten, ((2, 3, 2),), ((2, 3, 2), 1), ((),))
samples(squeeze, ((2, 1, 3),), ((2, 1, 3), 1), ((1,),))
samples(unsqueeze, ((2, 3), 0), ((2, 3), -1), ((), 0))
samples(permute, ((2, 3, 4), [2, 0, 1]), ((2, 3), 1, 0))
samples(transpose, ((2, 3), 0, 1), ((2, 3, 4), 0, 2), ((3,), 0, 0))
samples(t, ((2, 3),), ((3,),))
samples(T_, ((2, 3),), ((2, 3, 4),))
samples(expand, ((3, 1), 3, 4), ((3,), 2, 3), ((1, 3), -1, 3))
samples(clone, ((2, 3),))
samples(to, ((2, 3), dtypes.float32), eps=1e-2)


# ======================= softmax family ======================================================
def _softmax(go, ga, gb, sv, iv, do, da, db, row):
    # y = softmax(x) along a dim of size I0 whose elements are I1 apart; saved: y
    n = row[5]
    inner = row[6]
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
    n = row[5]
    inner = row[6]
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


SOFTMAX = defop("SoftmaxBackward0", _softmax)
LOG_SOFTMAX = defop("LogSoftmaxBackward0", _log_softmax)


def _softmax_core(x, dim, dtype, op, log):
    if dtype is not None:
        x = to(x, dtype)
    a = x._a
    if a.dtype.kind != "f":
        raise NotImplementedError(f'"{"log_" if log else ""}softmax_lastdim_kernel_impl" not '
                                  f"implemented for '{x.dtype.tensor_type[:-6]}'")
    d = _check_dim(dim, a.ndim)
    a1 = a.reshape(1) if a.ndim == 0 else a
    if a1.size == 0:
        out = a1.copy()
    else:
        with quiet():
            z = a1 - a1.max(axis=d, keepdims=True)
            if log:
                out = z - np.log(np.exp(z).sum(axis=d, keepdims=True))
            else:
                e = np.exp(z)
                out = e / e.sum(axis=d, keepdims=True)
    out = _arr(out.reshape(a.shape))
    inner = 1
    for k in a1.shape[d + 1:]:
        inner *= k
    return record(op, out, x, save_out=True, i0=a1.shape[d], i1=inner, broadcast=False)


def softmax(x, dim, dtype=None):
    """Numerically stable softmax along dim."""
    return _softmax_core(x, dim, dtype, SOFTMAX, False)


def log_softmax(x, dim, dtype=None):
    """Numerically stable log-softmax along dim."""
    return _softmax_core(x, dim, dtype, LOG_SOFTMAX, True)


for _f in (softmax, log_softmax):
    samples(_f, ((3,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 3), -1), ((), 0), ((2, 3, 2), 1),
            ((2, 3, 2), -1), ((1, 3), 0))
samples(log_softmax, (Given([[1e3, 0.0, -1e3], [-1e3, -1e3, 1e3]]), 1))
samples(softmax, (Given([[1e3, 0.0, -1e3], [-1e3, -1e3, 1e3]]), 1))


# ======================= indexing ============================================================
def _strided(go, ga, gb, sv, iv, do, da, db, row):
    # out is a strided view of x: out's element (i_0, .., i_k) is x's flat element
    # iv[0] + sum_d i_d * iv[1 + d] (basic indexing, select, narrow, split, unbind)
    nd = do.shape[0]
    idx = np.zeros(nd, np.int64)
    s = iv[0]
    for j in range(go.size):
        ga[s] += go[j]
        d = nd - 1
        while d >= 0:
            idx[d] += 1
            s += iv[1 + d]
            if idx[d] < do[d]:
                break
            s -= iv[1 + d] * do[d]
            idx[d] = 0
            d -= 1


def _scatter(go, ga, gb, sv, iv, do, da, db, row):
    # ga[iv[1 + j]] += go[j] for j < iv[0]: out gathered x's elements at these flat positions
    # (advanced indexing, gather, index_select, repeat, max over a dim, nll_loss); repeated
    # positions sum. I0 bit 0: go is one scalar for every j (a reduced loss); bit 1: each term is
    # weighted by sv[j]. Positions are checked in Python before recording.
    n = iv[0]
    fl = row[5]
    for j in range(n):
        g = go[0] if fl & 1 else go[j]
        if fl & 2:
            g = g * sv[j]
        ga[iv[1 + j]] += g


def _setitem(go, ga, gb, sv, iv, do, da, db, row):
    # out = x with the positions iv[1 .. n] overwritten by value (flattened in region order):
    # value's gradient is go at those positions; x's is go everywhere else
    n = iv[0]
    for k in range(gb.size):
        gb[k] += go[iv[1 + k]]
    if ga.size:
        written = np.zeros(go.size, np.uint8)
        for k in range(n):
            written[iv[1 + k]] = 1
        for j in range(ga.size):
            if written[j] == 0:
                ga[j] += go[j]


SELECT = defop("SelectBackward0", _strided)
SLICE = defop("SliceBackward0", _strided)
ALIAS = defop("AliasBackward0", _strided)
UNSQUEEZE_INDEX = defop("UnsqueezeBackward0", _strided)
INDEX = defop("IndexBackward0", _scatter)
GATHER = defop("GatherBackward0", _scatter)
INDEX_SELECT = defop("IndexSelectBackward0", _scatter)
MAX_DIM = defop("MaxBackward0", _scatter)
MIN_DIM = defop("MinBackward0", _scatter)
_BASIC_OPS = {"SelectBackward0": SELECT, "SliceBackward0": SLICE, "AliasBackward0": ALIAS,
              "UnsqueezeBackward0": UNSQUEEZE_INDEX}


def _c_strides(shape):
    st = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        st[d] = st[d + 1] * shape[d + 1]
    return st


def _index_items(key):
    """The index as a tuple of components; 0-d integer tensors count as ints, as in PyTorch."""
    if isinstance(key, list) and len(key) < 32 and builtins.any(
            isinstance(k, (list, tuple, slice, Tensor, np.ndarray)) or k is None or k is Ellipsis
            for k in key):
        # PyTorch (like old numpy) reads such a list as a tuple
        warnings.warn("Using a non-tuple sequence for multidimensional indexing is deprecated and "
                      "will be changed in pytorch 2.9; use x[tuple(seq)] instead of x[seq]. In "
                      "pytorch 2.9 this will be interpreted as tensor index, x[torch.tensor(seq)], "
                      "which will result either in an error or a different result", UserWarning,
                      stacklevel=3)
        key = tuple(key)
    if not isinstance(key, tuple):
        key = (key,)
    items = []
    for k in key:
        if isinstance(k, Tensor):
            if k._a.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            if k._a.ndim == 0 and k._a.dtype.kind in "iu":
                k = builtins.int(k._a)
            else:
                k = k._a.astype(np.bool_) if k._a.dtype == np.uint8 else k._a
        elif isinstance(k, (list, np.ndarray)):
            k = np.asarray(k)
            if k.dtype.kind == "f" or k.dtype == object:
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        elif isinstance(k, (builtins.float, complex)):
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte "
                             f"Variables are valid indices (got {type(k).__name__})")
        elif isinstance(k, np.integer):
            k = builtins.int(k)
        items.append(k)
    return items


def _consumed(k):
    if k is None or k is Ellipsis:
        return 0
    if isinstance(k, np.ndarray) and k.dtype == np.bool_:
        return builtins.max(k.ndim, 1)
    if isinstance(k, builtins.bool):
        return 0
    return 1


def _expand_items(items, shape):
    """Replace the ellipsis by full slices, pad with full slices, and check each index against
    the dims it consumes, raising PyTorch's IndexError."""
    nd = len(shape)
    used = builtins.sum(_consumed(k) for k in items)
    if used > nd:
        raise IndexError(f"too many indices for tensor of dimension {nd}")
    ellipses = builtins.sum(1 for k in items if k is Ellipsis)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    out = []
    for k in items:
        if k is Ellipsis:
            out.extend([slice(None)] * (nd - used))
        else:
            out.append(k)
    if not ellipses:
        out.extend([slice(None)] * (nd - used))
    # report dims as PyTorch does: an integer's dim in x; an array's dim once the integers are
    # applied (they remove their dims), counted from the first array's
    d = cur = 0
    first_array = None
    for k in out:
        if isinstance(k, builtins.int) and not isinstance(k, builtins.bool):
            if not -shape[d] <= k < shape[d]:
                raise IndexError(f"index {k} is out of bounds for dimension {d} with size {shape[d]}")
        elif isinstance(k, slice):
            if k.step is not None and k.step <= 0:
                raise ValueError("step must be greater than zero")
        elif isinstance(k, np.ndarray):
            first_array = cur if first_array is None else first_array
            if k.dtype == np.bool_:
                for j in range(k.ndim):
                    if k.shape[j] != shape[d + j]:
                        raise IndexError(f"The shape of the mask {list(k.shape)} at index {j} does "
                                         f"not match the shape of the indexed tensor "
                                         f"{list(shape)} at index {d + j}")
            elif k.size:
                bad = k[(k < -shape[d]) | (k >= shape[d])]
                if bad.size:
                    raise IndexError(f"index {bad.reshape(-1)[0]} is out of bounds for dimension "
                                     f"{cur - first_array} with size {shape[d]}")
        d += _consumed(k)
        if k is None or not isinstance(k, builtins.int) or isinstance(k, builtins.bool):
            cur += builtins.max(_consumed(k), 1) if not isinstance(k, builtins.bool) else 1
    return out


def _basic_layout(shape, items, single_slice):
    """(offset, out strides, grad_fn) of a basic index, in x's C-order element positions.

    items must cover every dim (_expand_items). The grad_fn is the one PyTorch's last applied
    step gets; full slices apply no step."""
    if builtins.sum(_consumed(k) for k in items) != len(shape):
        raise AssertionError("jitgrad: a basic index must cover every dim")   # never reaches njit
    cst = _c_strides(shape)
    offset, strides, name, d = 0, [], None, 0
    for k in items:
        if k is None:
            strides.append(0)
            name = "UnsqueezeBackward0"
            continue
        if isinstance(k, slice):
            start, stop, step = k.indices(shape[d])
            n = len(range(start, stop, step))
            if n:
                offset += start * cst[d]
            strides.append(step * cst[d])
            if not (start == 0 and step == 1 and n == shape[d]):
                name = "SliceBackward0"
        else:
            offset += (k % shape[d]) * cst[d]
            name = "SelectBackward0"
        d += 1
    if name is None:
        name = "SliceBackward0" if single_slice else "AliasBackward0"
    return offset, strides, name


def getitem(x, key):
    """x[key], as PyTorch indexes: basic indices give a view (Select/Slice/Unsqueeze/Alias
    backward), integer arrays and masks a copy (IndexBackward0) whose gradient scatter-adds."""
    a = x._a
    items = _expand_items(_index_items(key), a.shape)
    basic = builtins.all(k is None or isinstance(k, (builtins.int, slice)) and
                         not isinstance(k, builtins.bool) for k in items)
    npkey = tuple(items)
    if basic:
        out = a[npkey + (Ellipsis,)]        # a view even when every index is an int
        if not _needs_grad(x):
            t = _wrap(out)
            _link_view(t, x, SLICE)
            return t
        offset, strides, name = _basic_layout(a.shape, items, isinstance(key, slice))
        return _view_of(_BASIC_OPS[name], out, x, ints=[offset] + strides)
    # PyTorch applies integer indices first (as selects), then the advanced index to what is left
    first = []
    for k in items:
        if k is not None:
            first.extend([k] if isinstance(k, builtins.int) and not isinstance(k, builtins.bool)
                         else [slice(None)] * _consumed(k))
    rest = tuple(k for k in items if not (isinstance(k, builtins.int) and
                                          not isinstance(k, builtins.bool)))
    out = _arr(a[tuple(first)][rest])
    if not _needs_grad(x):
        return _wrap(out)
    if len(rest) == len(items):
        pos = _index_positions(a.shape, items)
    else:
        pos = np.arange(a.size, dtype=np.int64).reshape(a.shape)[tuple(first)][rest].reshape(-1)
    return record(INDEX, out, x, ints=_with_count(pos), broadcast=False)


def _index_positions(shape, items):
    """Flat positions in x of the elements an advanced index picks."""
    k0 = items[0]
    if isinstance(k0, np.ndarray) and k0.dtype.kind in "iu" and builtins.all(
            isinstance(k, slice) and k == slice(None) for k in items[1:]):
        inner = 1
        for s in shape[1:]:
            inner *= s         # x[idx]: rows of x (embedding lookups), without an arange of x
        rows = k0.astype(np.int64) % shape[0]
        return (rows[..., None] * inner + np.arange(inner, dtype=np.int64)).reshape(-1)
    n = 1
    for s in shape:
        n *= s
    return np.arange(n, dtype=np.int64).reshape(shape)[tuple(items)].reshape(-1)


def _with_count(pos):
    pos = np.asarray(pos, np.int64).reshape(-1)
    return np.concatenate((np.array([pos.size], np.int64), pos))


def gather(x, dim, index, *, sparse_grad=False):
    a = x._a
    if not isinstance(index, Tensor) or index._a.dtype not in (np.int64, np.int32):
        raise RuntimeError("gather(): Expected dtype int32/int64 for index")
    idx = index._a.astype(np.int64, copy=False)
    d = _check_dim(dim, a.ndim)
    if idx.ndim != builtins.max(a.ndim, 1) and not (a.ndim == 0 and idx.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    shape = a.shape if a.ndim else (1,)
    idx1 = idx.reshape(idx.shape if idx.ndim else (1,))
    for k in range(len(shape)):
        if k != d and idx1.shape[k] > shape[k]:
            raise RuntimeError(f"Size does not match at dimension {k} expected index "
                               f"{list(idx.shape)} to be no larger than self {list(a.shape)} apart "
                               f"from dimension {d}")
    if idx1.size:
        bad = idx1[(idx1 < 0) | (idx1 >= shape[d])]     # PyTorch: no negative indices here
        if bad.size:
            raise RuntimeError(f"index {bad.reshape(-1)[0]} is out of bounds for dimension {d} "
                               f"with size {shape[d]}")
    pos = _flat_positions(shape, d, idx1)
    out = _arr(a.reshape(-1)[pos].reshape(idx.shape))
    if not _needs_grad(x):
        return _wrap(out)
    return record(GATHER, out, x, ints=_with_count(pos), broadcast=False)


def index_select(x, dim, index):
    a = x._a
    if not isinstance(index, Tensor) or index._a.dtype.kind not in "iu":
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    idx = index._a
    if idx.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    idx = idx.reshape(-1).astype(np.int64)
    d = _check_dim(dim, a.ndim)
    shape = a.shape if a.ndim else (1,)
    if idx.size and (idx.min() < 0 or idx.max() >= shape[d]):
        raise IndexError("index out of range in self")
    out = _arr(np.take(a.reshape(shape), idx, axis=d).reshape(
        a.shape if a.ndim == 0 else shape[:d] + (idx.size,) + shape[d + 1:]))
    if not _needs_grad(x):
        return _wrap(out)
    sel = np.expand_dims(idx, tuple(k for k in range(len(shape)) if k != d))
    sel = np.broadcast_to(sel, shape[:d] + (idx.size,) + shape[d + 1:])
    return record(INDEX_SELECT, out, x, ints=_with_count(_flat_positions(shape, d, sel)),
                  broadcast=False)


_I = lambda *v: _wrap(np.array(v, np.int64))       # noqa: E731  (an index tensor in samples)
def _idx(x, *key):
    """x[key] with the key's components as arguments (sample cases write tuples as shapes)."""
    return getitem(x, key[0] if len(key) == 1 else key)


samples(_idx, ((3, 4), 1), ((3, 4), slice(None), 2), ((3, 4), slice(1, 3)),
        ((3, 4), slice(None, None, 2), slice(1, None, 2)), ((3, 4), Ellipsis, -1),
        ((3, 4), None, 0), ((3, 4), slice(None), None), ((3, 4), Ellipsis), ((3,), slice(None)),
        ((3, 4), slice(None), slice(None)), ((3, 4), 1, 2), ((3, 4), _I(0, 2, 2)),
        ((3, 4), slice(None), _I(3, 0, 3)), ((3, 4), _I(0, 1), _I(1, 1)),
        ((3, 4), _wrap(np.array([True, False, True]))),
        ((3, 4), _wrap(np.array([[True, False, True, True]] * 2 + [[False] * 4]))),
        ((3, 4), [[0, 2], [1, 1]]), ((3, 4), _wrap(np.array(1)), slice(0, 2)),
        ((), None), ((), Ellipsis), ((2, 3, 4), 0, Ellipsis, _I(1, 2)),
        ((3, 4), slice(-2, None), slice(5, 1)), ((4, 3), slice(1, None, 2)))
samples(gather, ((3, 4), 1, _wrap(np.array([[0, 0], [3, 1], [2, 2]]))),
        ((3, 4), 0, _wrap(np.array([[0, 2, 1, 0]]))), ((3,), 0, _I(2, 2, 0)))
samples(index_select, ((3, 4), 0, _I(0, 2, 2)), ((3, 4), -1, _I(3, 1)), ((3,), 0, _I(1)))


# ---- cat and stack: one node with an input per tensor (F_MULTI)
def _cat(go, ga, gb, sv, iv, do, da, db, row):
    # multi-input: this input's slab starts at iv[2] along dim I0 of the output
    d = row[5]
    inner = 1
    for k in range(d + 1, do.shape[0]):
        inner *= do[k]
    span = do[d] * inner
    if span == 0 or go.size == 0:
        return
    outer = go.size // span
    w = ga.size // outer
    start = iv[2] * inner
    for o in range(outer):
        src = o * span + start
        dst = o * w
        for j in range(w):
            ga[dst + j] += go[src + j]


CAT = defop("CatBackward0", _cat, 0)
STACK = defop("StackBackward0", _cat, 0)


def _tensor_list(tensors, name):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{name}(): argument 'tensors' (position 1) must be tuple of Tensors, not "
                        f"{type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got "
                            f"{type(t).__name__}")
    return list(tensors)


def _common_dtype(ts):
    d = ts[0]._a.dtype
    for t in ts[1:]:
        if t._a.dtype != d:
            d = result_dtype(*ts)
            break
    return d


def cat(tensors, dim=0):
    ts = _tensor_list(tensors, "cat")
    if not ts:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    parts = [t for t in ts if not (t._a.ndim == 1 and t._a.size == 0)] or ts[:1]
    ref = parts[0]._a
    if ref.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = _check_dim(dim, ref.ndim)
    for i, t in enumerate(parts):
        if t._a.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and "
                               f"{t._a.ndim}")
        for k in range(ref.ndim):
            if k != d and t._a.shape[k] != ref.shape[k]:
                num = next(j for j, u in enumerate(ts) if u is t)
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected "
                                   f"size {ref.shape[k]} but got size {t._a.shape[k]} for tensor "
                                   f"number {num} in the list.")
    dt = _common_dtype(parts)
    out = np.concatenate([t._a.astype(dt, copy=False) for t in parts], axis=d)
    if not _needs_grad(*parts):
        return _wrap(out)
    entries, start = [], 0
    for t in parts:
        entries.append((t, len(entries), start))
        start += t._a.shape[d]
    return record_multi(CAT, out, entries, i0=d)


def stack(tensors, dim=0):
    ts = _tensor_list(tensors, "stack")
    if not ts:
        raise RuntimeError("stack expects a non-empty TensorList")
    s0 = ts[0]._a.shape
    for i, t in enumerate(ts):
        if t._a.shape != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} at "
                               f"entry 0 and {list(t._a.shape)} at entry {i}")
    d = _check_dim(dim, len(s0) + 1)
    dt = _common_dtype(ts)
    out = np.stack([t._a.astype(dt, copy=False) for t in ts], axis=d)
    if not _needs_grad(*ts):
        return _wrap(out)
    return record_multi(STACK, out, [(t, i, i) for i, t in enumerate(ts)], i0=d)


samples(cat, (Seq([(2, 3), (1, 3)]),), (Seq([(2, 3), (2, 2), (2, 1)]), 1),
        (Seq([(2, 3), (2, 3)]), -1), (Seq([(3,), (2,)]),), (Seq([(2, 3)]),),
        (Seq([(2, 3, 2), (2, 1, 2)]), 1))
samples(stack, (Seq([(2, 3), (2, 3)]),), (Seq([(2, 3), (2, 3), (2, 3)]), 1),
        (Seq([(2, 3), (2, 3)]), -1), (Seq([(), ()]),), (Seq([(3,)]), 0))


# ---- more views and copies: narrow, select, split, chunk, unbind, repeat, contiguous
SPLIT = defop("SplitBackward0", _strided)
SPLIT_SIZES = defop("SplitWithSizesBackward0", _strided)
UNBIND = defop("UnbindBackward0", _strided)
REPEAT = defop("RepeatBackward0", _scatter)


def _strided_view(x, items, op, multi=None):
    """A view of x through basic index components (already checked), recorded with op
    (multi: its output number, for ops returning several views)."""
    a = x._a
    items = _expand_items(items, a.shape)
    out = a[tuple(items) + (Ellipsis,)]
    if not _needs_grad(x):
        t = _wrap(out)
        _link_view(t, x, op, multi)
        return t
    offset, strides, _ = _basic_layout(a.shape, items, False)
    return _view_of(op, out, x, ints=[offset] + strides, multi=multi)


def narrow(x, dim, start, length):
    a = x._a
    if a.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = _check_dim(dim, a.ndim)
    for v in (start, length):
        if not isinstance(v, (builtins.int, np.integer)):
            raise TypeError(f"narrow(): start and length must be ints, not {type(v).__name__}")
    start = builtins.int(start)
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if not -a.shape[d] <= start <= a.shape[d]:
        raise IndexError(f"start out of range (expected to be in range of [{-a.shape[d]}, "
                         f"{a.shape[d]}], but got {start})")
    start %= builtins.max(a.shape[d], 1)
    if length < 0 or start + length > a.shape[d]:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                           f"({a.shape[d]}).")
    return _strided_view(x, [slice(None)] * d + [slice(start, start + length)], SLICE)


def select(x, dim, index):
    a = x._a
    if a.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = _check_dim(dim, a.ndim)
    if not isinstance(index, (builtins.int, np.integer)):
        raise TypeError(f"select(): argument 'index' (position 2) must be int, not "
                        f"{type(index).__name__}")
    index = builtins.int(index)
    if not -a.shape[d] <= index < a.shape[d]:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{list(a.shape)} at dimension {d}")
    return _strided_view(x, [slice(None)] * d + [index % a.shape[d]], SELECT)


def split(x, split_size_or_sections, dim=0):
    a = x._a
    if a.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = _check_dim(dim, a.ndim)
    n = a.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [builtins.int(v) for v in split_size_or_sections]
        if builtins.sum(sizes) != n or builtins.any(v < 0 for v in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input "
                               f"tensor's size at dimension {d}), but got split_sizes={sizes}")
        op = SPLIT_SIZES
    else:
        size = split_size_or_sections
        if not isinstance(size, (builtins.int, np.integer)):
            raise TypeError("split_with_sizes(): argument 'split_sizes' (position 2) must be tuple "
                            f"of ints, not {type(size).__name__}")
        if size < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
        if size == 0 and n != 0:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension "
                               f"size of {n}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if size else [0]
        op = SPLIT
    out, start = [], 0
    for j, v in enumerate(sizes):
        out.append(_strided_view(x, [slice(None)] * d + [slice(start, start + v)], op, j))
        start += v
    return tuple(out)


def chunk(x, chunks, dim=0):
    a = x._a
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    if a.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    n = a.shape[_check_dim(dim, a.ndim)]
    return split(x, builtins.max(-(-n // chunks), 1 if n else 0), dim)


def unbind(x, dim=0):
    a = x._a
    if a.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    d = _check_dim(dim, a.ndim)
    return tuple(_strided_view(x, [slice(None)] * d + [i], UNBIND, i) for i in range(a.shape[d]))


def repeat(x, *sizes):
    sizes = int_tuple(sizes, "repeat", "repeats")
    a = x._a
    if len(sizes) < a.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of "
                           "dimensions of tensor")
    shape = (1,) * (len(sizes) - a.ndim) + a.shape
    target = [n * r for n, r in zip(shape, sizes)]
    for n in target:
        if n < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {n}: {target}")
    out = _arr(np.tile(a.reshape(shape), sizes))
    if not _needs_grad(x):
        return _wrap(out)
    pos = np.tile(np.arange(a.size, dtype=np.int64).reshape(shape), sizes)
    return record(REPEAT, out, x, ints=_with_count(pos), broadcast=False)


def contiguous(x, memory_format=None):
    """x itself if its storage is in C order, else a C-order copy (CloneBackward0)."""
    if x._a.flags.c_contiguous:
        return x
    return record(CLONE, np.ascontiguousarray(x._a), x, broadcast=False)


samples(narrow, ((4, 3), 0, 1, 2), ((4, 3), -1, -2, 2), ((3,), 0, 0, 0))
samples(select, ((4, 3), 1, -1), ((4,), 0, 2), ((2, 3, 4), 1, 1))
samples(split, ((5, 3), 2), ((5, 3), [1, 4]), ((2, 6), 3, 1), ((2, 6), [1, 0, 5], -1), ((4,), 4))
samples(chunk, ((5, 3), 2), ((2, 6), 4, 1), ((4,), 3))
samples(unbind, ((3, 2),), ((2, 3), 1), ((3,),))
samples(repeat, ((2, 3), 2, 1), ((3,), 2, 2), ((2, 3), [1, 1]), ((), 3), ((2, 1), 1, 2, 3))
samples(contiguous, ((2, 3),), ((3, 2),))


# ---- reorderings: flip, roll, sort, topk (gathers: _scatter); tril/triu (masks); pad
FLIP = defop("FlipBackward0", _scatter)
ROLL = defop("RollBackward0", _scatter)
SORT = defop("SortBackward0", _scatter)
TOPK = defop("TopkBackward0", _scatter)
PAD = defop("ConstantPadNdBackward0", _setitem, 2)     # x is input b: gb[k] += go[pos[k]]
return_types.sort = type("sort", (_ValuesIndices,), {"__slots__": (), "_name": "sort"})
return_types.topk = type("topk", (_ValuesIndices,), {"__slots__": (), "_name": "topk"})


def _gathered(op, x, positions, out_shape):
    """A copy of x's elements at these flat positions, shaped out_shape."""
    pos = np.asarray(positions, np.int64).reshape(-1)
    out = _arr(x._a.reshape(-1)[pos].reshape(out_shape) if pos.size else
               np.zeros(out_shape, x._a.dtype))
    if not _needs_grad(x):
        return _wrap(out)
    return record(op, out, x, ints=_with_count(pos), broadcast=False)


def _arange_like(a):
    return np.arange(a.size, dtype=np.int64).reshape(a.shape)


def flip(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    axes = _dims(dims, x._a.ndim)
    return _gathered(FLIP, x, np.flip(_arange_like(x._a), axes), x._a.shape)


def roll(x, shifts, dims=None):
    a = x._a
    if dims is None:
        if not isinstance(shifts, (builtins.int, np.integer)):
            if len(shifts) != 1:   # PyTorch: a tuple of shifts needs its dims (it never sums them)
                raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
            shifts = shifts[0]
        return _gathered(ROLL, x, np.roll(np.arange(a.size, dtype=np.int64), shifts), a.shape)
    shifts = (shifts,) if isinstance(shifts, builtins.int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, builtins.int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:"
                           f"{len(dims)}")
    return _gathered(ROLL, x, np.roll(_arange_like(a), shifts, tuple(_check_dim(d, a.ndim)
                                                                    for d in dims)), a.shape)


def _argsort(a, d, descending):
    """A stable argsort with NaN largest, as PyTorch's. Descending: the ascending order of the
    reversed array, reversed (negating would wrap unsigned ints and put NaN last)."""
    if not descending:
        return np.argsort(a, axis=d, kind="stable")
    n = a.shape[d]
    return n - 1 - np.flip(np.argsort(np.flip(a, d), axis=d, kind="stable"), d)


def sort(x, dim=-1, descending=False, stable=False):
    a = x._a
    d = _check_dim(dim, a.ndim)
    if a.ndim == 0:
        return return_types.sort(_gathered(SORT, x, [0], ()), _wrap(np.zeros((), np.int64)))
    idx = _argsort(a, d, descending)
    pos = _flat_positions(a.shape, d, idx)
    return return_types.sort(_gathered(SORT, x, pos, a.shape), _wrap(_arr(idx.astype(np.int64))))


def argsort(x, dim=-1, descending=False, stable=False):
    return sort(x, dim, descending, stable).indices


def topk(x, k, dim=-1, largest=True, sorted=True):
    if not isinstance(k, (builtins.int, np.integer)):
        raise TypeError(f"topk(): argument 'k' (position 2) must be int, not {type(k).__name__}")
    a = x._a
    d = _check_dim(dim, a.ndim)
    n = a.shape[d] if a.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    if a.ndim == 0:
        return return_types.topk(_gathered(TOPK, x, [0] * k, ()), _wrap(np.zeros((), np.int64)))
    idx = np.take(_argsort(a, d, largest), np.arange(k), axis=d)
    pos = _flat_positions(a.shape, d, idx)
    return return_types.topk(_gathered(TOPK, x, pos, idx.shape), _wrap(_arr(idx.astype(np.int64))))


tril = unary_op("TrilBackward0", lambda a, k=0: (np.tril(a, k), lambda out: np.tril(np.ones_like(a), k)),
                int_in_place=True, mask=True)
triu = unary_op("TriuBackward0", lambda a, k=0: (np.triu(a, k), lambda out: np.triu(np.ones_like(a), k)),
                int_in_place=True, mask=True)
tril.__name__, triu.__name__ = "tril", "triu"


def _matrix_only(fn):
    def f(x, diagonal=0):
        if not isinstance(diagonal, (builtins.int, np.integer)):
            raise TypeError(f"{fn.__name__}(): argument 'diagonal' (position 1) must be int, not "
                            f"{type(diagonal).__name__}")
        if x._a.ndim < 2:
            raise RuntimeError(f"{fn.__name__}: input tensor must have at least 2 dimensions")
        return fn(x, diagonal)
    f.__name__ = fn.__name__
    return f


tril, triu = _matrix_only(tril), _matrix_only(triu)


def pad(input, pad, mode="constant", value=None):
    """F.pad in constant mode; negative padding crops."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode '{mode}' is not supported by jitgrad yet")
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    for j in range(len(pad) // 2):
        if input._a.ndim > j and input._a.shape[-1 - j] - builtins.max(-pad[2 * j], 0) - \
                builtins.max(-pad[2 * j + 1], 0) < 0:
            raise RuntimeError("narrow(): length must be non-negative.")
    a = input._a
    if len(pad) // 2 > a.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pad)} and input of dimension "
                           f"{a.ndim}")
    x = input
    for j in range(len(pad) // 2):           # pad[2j], pad[2j+1] pad the last-but-j dim
        d = a.ndim - 1 - j
        lo, hi = pad[2 * j], pad[2 * j + 1]
        if lo < 0 or hi < 0:
            n = x._a.shape[d]
            x = narrow(x, d, builtins.max(-lo, 0), n - builtins.max(-lo, 0) - builtins.max(-hi, 0))
    xa = x._a
    shape = list(xa.shape)
    region = [slice(None)] * xa.ndim
    for j in range(len(pad) // 2):
        d = a.ndim - 1 - j
        lo, hi = builtins.max(pad[2 * j], 0), builtins.max(pad[2 * j + 1], 0)
        region[d] = slice(lo, lo + xa.shape[d])
        shape[d] += lo + hi
    out = np.full(shape, 0 if value is None else value, xa.dtype)
    out[tuple(region)] = xa
    if not _needs_grad(x):
        return _wrap(out)
    pos = np.arange(out.size, dtype=np.int64).reshape(shape)[tuple(region)]
    return record(PAD, out, None, x, ints=_with_count(pos), broadcast=False)


def hstack(tensors):
    ts = _tensor_list(tensors, "hstack")
    if not ts:
        raise RuntimeError("hstack expects a non-empty TensorList")
    ts = [reshape(t, 1) if t._a.ndim == 0 else t for t in ts]
    return cat(ts, 0 if ts and ts[0]._a.ndim == 1 else 1)


def vstack(tensors):
    ts = _tensor_list(tensors, "vstack")
    if not ts:
        raise RuntimeError("vstack expects a non-empty TensorList")
    return cat([reshape(t, 1, -1) if t._a.ndim < 2 else t for t in ts], 0)


_TIED = Given([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0]])
samples(flip, ((2, 3), 0), ((2, 3), [0, 1]), ((2, 3, 2), -1), ((3,), 0))
samples(roll, ((2, 3), 1), ((2, 3), 1, 1), ((2, 3), [1, -1], [0, 1]), ((3,), -4))
samples(sort, ((2, 3),), ((2, 3), 0), ((2, 3), 1, True), ((3,),), ((),))
samples(topk, ((2, 3), 2), ((2, 3), 1, 0), ((2, 3), 2, -1, False), ((4,), 3))
kinks(sort, (_TIED,), (_TIED, 1, True))
kinks(topk, (_TIED, 2), (_TIED, 2, 1, False), (_TIED, 2, 0))
samples(tril, ((3, 3),), ((3, 4), 1), ((2, 3, 3), -1))
samples(triu, ((3, 3),), ((3, 4), -1))
samples(pad, ((2, 3), [1, 2]), ((2, 3), [1, 0, 0, 1]), ((2, 3), [-1, 1], "constant", 2.0),
        ((3,), [2, 0]))
samples(hstack, (Seq([(2, 3), (2, 2)]),), (Seq([(3,), (2,)]),))
samples(vstack, (Seq([(2, 3), (1, 3)]),), (Seq([(3,), (3,)]),))


# ======================= linear algebra ======================================================
def _mm(go, ga, gb, sv, iv, do, da, db, row):
    # out (bt, m, n) = x (bt, m, k) @ y (bt, k, n), bt batches; I0 = m | bt << 32, I1 = k, or
    # (m, bt, k) in the int arena when they do not fit (see _record_mm).
    # saved: y if x needs a gradient, then x if y does. Accumulation is an explicit loop: an
    # array-expression `dst[:, :] += ...` costs seconds of compile time.
    if iv.size:
        m = iv[0]
        bt = iv[1]
        k = iv[2]
    else:
        m = row[5] & 0xFFFFFFFF
        bt = row[5] >> 32
        k = row[6]
    bt = bt if bt > 1 else 1      # (not max(): ops.py shadows it with the tensor op)
    if go.size == 0 or k == 0:
        return
    n = go.size // (bt * m)
    yoff = 0
    xoff = bt * k * n if ga.size else 0
    for b in range(bt):
        g = go[b * m * n: (b + 1) * m * n].reshape((m, n))
        if ga.size:
            y = sv[yoff + b * k * n: yoff + (b + 1) * k * n].reshape((k, n))
            r = np.dot(g, y.T).reshape(-1)
            dst = ga[b * m * k: (b + 1) * m * k]
            for j in range(m * k):
                dst[j] += r[j]
        if gb.size:
            x = sv[xoff + b * m * k: xoff + (b + 1) * m * k].reshape((m, k))
            r = np.dot(x.T, g).reshape(-1)
            dst = gb[b * k * n: (b + 1) * k * n]
            for j in range(k * n):
                dst[j] += r[j]


MM = defop("MmBackward0", _mm, 2)
MV = defop("MvBackward0", _mm, 2)
DOT = defop("DotBackward0", _mm, 2)
VM = defop("SqueezeBackward4", _mm, 2)
BMM = defop("BmmBackward0", _mm, 2)
UNSAFE_VIEW = defop("UnsafeViewBackward0", _identity)


def _same_dtype(xa, ya, what="expected m1 and m2 to have the same dtype"):
    if xa.dtype != ya.dtype:
        raise RuntimeError(f"{what}, but got: {dtypes.c_name(xa.dtype)} != "
                           f"{dtypes.c_name(ya.dtype)}")


def _record_mm(op, out, x, y, m, k, bt=0):
    if not _needs_grad(x, y):
        return _wrap(out)
    saves = ([y] if x._rg else []) + ([x] if y._rg else [])
    if m >> 32 or bt >> 31:       # does not pack into I0 as a positive int64
        return record(op, out, x, y, saves=saves, ints=(m, bt, k), broadcast=False)
    return record(op, out, x, y, saves=saves, i0=m | (bt << 32), i1=k, broadcast=False)


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
                               f"({builtins.int(np.prod(x3._a.shape[:-1]))}x{k} and {k2}x{n})")
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{bt}, {k}] but got: [{bt}, {k2}].")
    xb = reshape(expand(x3, batch + (m, k)), bt, m, k)
    yb = reshape(expand(y3, batch + (k, n)), bt, k, n)
    out = bmm(xb, yb)
    shape = batch + ((m,) if xa.ndim > 1 else ()) + ((n,) if ya.ndim > 1 else ())
    return _view_of(UNSAFE_VIEW, out._a.reshape(shape), out)


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


def mm(x, y):
    if x._a.ndim != 2 or y._a.ndim != 2:
        raise RuntimeError("self must be a matrix" if x._a.ndim != 2 else "mat2 must be a matrix")
    return matmul(x, y)


def dot(x, y):
    if x._a.ndim != 1 or y._a.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {x._a.ndim}D and {y._a.ndim}D tensors")
    if x._a.dtype != y._a.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                           f"{dtypes.scalar_name(x._a.dtype)} and {dtypes.scalar_name(y._a.dtype)}")
    return matmul(x, y)


def mv(x, y):
    if x._a.ndim != 2 or y._a.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {x._a.ndim}, {y._a.ndim}")
    return matmul(x, y)


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
    g = go.reshape((m, n))
    off = iv[2]
    if role == 1:
        k = da[1]
        if row[5]:
            r = np.dot(g, sv[off: off + n * k].reshape((n, k)))
        else:
            r = np.dot(g, sv[off: off + k * n].reshape((k, n)).T)
    else:
        k = da[1] if row[5] else da[0]
        x = sv[off: off + m * k].reshape((m, k))
        if row[5]:
            r = np.dot(g.T, x)
        else:
            r = np.dot(x.T, g)
    flat = r.reshape(-1)
    for j in range(ga.size):
        ga[j] += alpha * flat[j]


ADDMM = defop("AddmmBackward0", _addmm, 0)
LINEAR_MM = defop("MmBackward0", _addmm, 0)


def _affine(x, w, bias, transposed, op, beta=1, alpha=1):
    """out = beta bias + alpha x @ (w.T if transposed else w), one node for every input."""
    xa, wa = x._a, w._a
    out = xa @ (wa.T if transposed else wa)
    if alpha != 1:
        out = out * out.dtype.type(alpha)
    if bias is not None:
        out = out + (bias._a if beta == 1 else bias._a * out.dtype.type(beta))
    out = _arr(out)
    if not _needs_grad(x, w, bias):
        return _wrap(out)
    saves, entries, woff = [np.array([beta, alpha], out.dtype)], [], 2
    if x._rg:
        saves.append(w)
        woff += w._a.size
    if bias is not None:
        n = out.shape[1]
        entries.append((bias, 0, 0) if bias._a.shape in ((n,), out.shape) else (bias, 0, 0, out.shape))
    entries.append((x, 1, 2))
    if w._rg:
        saves.append(x)
    entries.append((w, 2, woff))
    return record_multi(op, out, entries, saves=saves, i0=1 if transposed else 0)


def linear(input, weight, bias=None):
    x, W = input, weight
    xa, wa = x._a, W._a
    if wa.ndim != 2 or xa.ndim == 0 or (xa.ndim > 2 and bias is not None and bias._a.ndim > 1):
        out = matmul(x, t(W))     # PyTorch too: a bias of more than one dim is broadcast, not folded
        return out if bias is None else add(out, bias)
    _same_dtype(xa, wa, "mat1 and mat2 must have the same dtype")
    k = xa.shape[-1]
    if k != wa.shape[1]:
        m = builtins.int(np.prod(xa.shape[:-1]))
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({m}x{k} and "
                           f"{wa.shape[1]}x{wa.shape[0]})")
    if bias is not None:
        _same_dtype(xa, bias._a, "mat1 and bias must have the same dtype")
        _check_expands_to(bias, [builtins.int(np.prod(xa.shape[:-1])), wa.shape[0]])
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
def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    if "." in eq:
        raise NotImplementedError("einsum(): '...' (ellipsis) is not supported by jitgrad yet")
    lhs, out = eq.split("->") if "->" in eq else (eq, None)
    terms = lhs.split(",")
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
        if len(set(term)) != len(term):
            raise NotImplementedError("einsum(): repeated subscripts (diagonals) are not supported "
                                      "by jitgrad yet")
        for c, n in zip(term, x._a.shape):
            m = sizes.get(c, 1)
            if n != m and n != 1 and m != 1:
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {i} which does "
                                   f"not broadcast with previously seen size {m}")
            sizes[c] = n if m == 1 else m
    if out is None:
        counts = {}
        for c in lhs.replace(",", ""):
            counts[c] = counts.get(c, 0) + 1
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
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
    n = lambda letters: builtins.int(np.prod([sizes[c] for c in letters], dtype=np.int64))  # noqa: E731
    a3 = reshape(arrange(a, ta, batch + left + contract), n(batch), n(left), n(contract))
    b3 = reshape(arrange(b, tb, batch + contract + right), n(batch), n(contract), n(right))
    c = reshape(bmm(a3, b3), tuple(sizes[c] for c in batch + left + right))
    return c, "".join(batch + left + right)


samples(einsum, ("ij,jk->ik", (2, 3), (3, 4)), ("ij,kj->ik", (2, 3), (4, 3)),
        ("bij,bjk->bik", (2, 2, 3), (2, 3, 4)), ("i,i->", (3,), (3,)), ("ij->ji", (2, 3)),
        ("ij,j->i", (2, 3), (3,)), ("i,j->ij", (2,), (3,)), ("ij,jk->ki", (2, 3), (3, 4)),
        ("ij->", (2, 3)), ("ij->j", (2, 3)), ("ij,jk", (2, 3), (3, 4)), ("bij,jk->bik", (2, 2, 3), (3, 4)),
        ("ij,ij->i", (2, 3), (2, 3)), ("ijk,ik->j", (2, 3, 4), (2, 4)), ("i,j,j->i", (2,), (3,), (3,)))


# ======================= comparisons and logic (no gradient) ===================================
def _compare(fn):
    def f(x, y):
        ya = y._a if isinstance(y, Tensor) else y
        if isinstance(ya, np.ndarray):
            _check_bcast(x._a, ya)
        return _wrap(_arr(fn(x._a, ya)))
    return f


eq, ne, lt, le, gt, ge = (_compare(f) for f in (np.equal, np.not_equal, np.less, np.less_equal,
                                                np.greater, np.greater_equal))


def all(x, dim=None, keepdim=False):
    return _wrap(_arr(np.all(x._a, axis=None if dim is None else _dims(dim, x._a.ndim), keepdims=keepdim)))


def any(x, dim=None, keepdim=False):
    return _wrap(_arr(np.any(x._a, axis=None if dim is None else _dims(dim, x._a.ndim), keepdims=keepdim)))


def equal(x, y):
    return x._a.shape == y._a.shape and builtins.bool(np.array_equal(x._a, y._a))


def allclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    _check_bcast(x._a, y._a)
    return builtins.bool(np.allclose(x._a, y._a, rtol, atol, equal_nan))


def isclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    _check_bcast(x._a, y._a)
    return _wrap(np.isclose(x._a, y._a, rtol, atol, equal_nan))


# ======================= in-place ops ==========================================================
# An in-place op runs its out-of-place op, copies the result into x's storage and makes x the
# output of the recorded node. On a view it also rewrites its base's history as PyTorch does:
# the base becomes CopySlices(base, result) and every live view of the base (x included) is
# regenerated from it as an AsStridedBackward0 node, so views and base see each other's
# in-place ops in their gradients.
_LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."
_VIEW_OF_LEAF_INPLACE = ("a view of a leaf Variable that requires grad is being used in an "
                         "in-place operation.")
_OVERLAP = ("unsupported operation: more than one element of the written-to tensor refers to a "
            "single memory location. Please clone() the tensor before performing the operation.")
_MULTI_VIEW = (" This view is the output of a function that returns multiple views. Such functions "
               "do not allow the output views to be modified inplace. You should replace the "
               "inplace operation by an out-of-place one.")
_NO_GRAD_VIEW = (" Given that this use case is ambiguous and error-prone, it is forbidden. You can "
                 "clarify your code by moving both the view and the inplace either both inside the "
                 "no_grad block (if you don't want the inplace to be tracked) or both outside (if "
                 "you want the inplace to be tracked).")

AS_STRIDED = defop("AsStridedBackward0", _scatter)


_PARTIAL_OVERLAP = ("unsupported operation: some elements of the input tensor and the written-to "
                    "tensor refer to a single memory location. Please clone() the tensor before "
                    "performing the operation.")


def _check_no_partial_overlap(x, operands, written=None):
    """PyTorch refuses an input that aliases part of the written-to tensor (the same elements
    in the same layout are fine: y.add_(y)). Aliases share the version record, a cheap test."""
    ver = x._ver
    if ver is None:
        return
    w = x._a if written is None else written
    for o in operands:
        if isinstance(o, Tensor) and o._ver is ver:
            b = o._a
            if not (_address(b) == _address(w) and b.shape == w.shape and b.strides == w.strides) \
                    and np.shares_memory(b, w):
                raise RuntimeError(_PARTIAL_OVERLAP)


def _check_no_overlap(a):
    """PyTorch refuses to write into a tensor whose elements alias each other (an expand)."""
    if 0 in a.strides and builtins.any(st == 0 and n > 1 for n, st in zip(a.shape, a.strides)):
        raise RuntimeError(_OVERLAP)


def _check_inplace_target(x, requires_grad, leaf_msg=_LEAF_INPLACE):
    """PyTorch's check_inplace: requires_grad tells whether the result will need a gradient."""
    base = x._base
    if not (requires_grad or (base is not None and base._rg)) or not is_grad_enabled():
        return
    if base is not None:
        if x._view_meta is not None:
            raise RuntimeError(_view_meta_error(x, "is being"))
        if (x._rg or base._rg) and base._node < 0:
            raise RuntimeError(_VIEW_OF_LEAF_INPLACE)
    if x._rg and x._node < 0:
        raise RuntimeError(leaf_msg)


def _view_meta_error(x, modified):
    """PyTorch's message for modifying a view its creation forbids to modify (handle_view_on_rebase):
    modified is "is being" (the view itself) or "its base or another view of its base has been"."""
    kind, nr, op = x._view_meta
    name = registry.OPS[op].grad_fn.rsplit("Backward", 1)[0] if op is not None else ""
    if kind == "no_grad" or x._node < 0:
        prefix = (f"Output {nr} of {name} is a view of a view which was created in"
                  if x._node >= 0 else "A view was created in")
        msg = f"{prefix} no_grad mode and {modified} modified inplace with grad mode enabled."
    else:
        msg = f"Output {nr} of {name} is a view and {modified} modified inplace."
    return msg + (_MULTI_VIEW if kind == "multi" else _NO_GRAD_VIEW)


def _inplace(x, compute, overlap_ok=False):
    """Run compute() (an out-of-place op) and store its result in x, as PyTorch's in-place ops do.
    overlap_ok: the op writes one value everywhere (fill_), so an expanded x is fine."""
    r = compute()
    _check_inplace_target(x, r._rg)        # autograd's errors first, as in PyTorch
    if not overlap_ok:
        _check_no_overlap(x._a)
    if r._a.shape != x._a.shape:
        raise RuntimeError(f"output with shape {list(x._a.shape)} doesn't match the broadcast shape "
                           f"{list(r._a.shape)}")
    if r._a.dtype != x._a.dtype and not np.can_cast(r._a.dtype, x._a.dtype, "same_kind"):
        raise RuntimeError(f"result type {r.dtype.tensor_type[:-6]} can't be cast to the desired "
                           f"output type {x.dtype.tensor_type[:-6]}")
    with TAPE.lock:
        np.copyto(x._a, r._a, casting="unsafe")
        TAPE.note_modified(x, r._node)
        if r._node >= 0:
            _commit(x, r)
    return x


def _set_node(t, r):
    """t becomes the output of r's node (r: a tensor just recorded, sharing t's values)."""
    t._node = r._node
    t._rg = True
    TAPE.outs[r._node] = weakref.ref(t)


def _commit(x, r):
    """x's storage now holds r's value, r's node recorded: x becomes its output. A view's base
    gets CopySlices(base, r) over the view's positions instead, and every live view of the base
    (x included) a fresh AsStridedBackward0 node over it."""
    if r._ver is not None and len(r._ver) > 2:     # r saved its output: now x's value
        x._shared_version().extend(r._ver[2:])
    base = x._base
    if base is None:
        _set_node(x, r)
    else:
        pos = _positions_in(base._a, x._a)
        if pos is None:
            raise RuntimeError("jitgrad: a view whose base's storage was replaced (.data = ...) "
                               "cannot be modified in place in the graph")
        c = record(COPY_SLICES, base._a, base if base._rg else None, r, ints=_with_count(pos),
                   broadcast=False)
        _set_node(base, c)
        x = base
    if x._views:
        rebase_views(x)


def rebase_views(base):
    """After an in-place op rewrote base's history, regenerate each live view's from it. A view
    its creation forbids to modify (no_grad mode, split/unbind outputs) gets a node whose
    backward raises PyTorch's error (PyTorch raises when its grad_fn is next used)."""
    live = []
    for ref in base._views:
        v = ref()
        if v is None:
            continue
        pos = _positions_in(base._a, v._a)
        if pos is None:            # no longer aliases the base (its .data was replaced)
            continue
        live.append(ref)
        if v._view_meta is None:
            _set_node(v, record(AS_STRIDED, v._a, base, ints=_with_count(pos), broadcast=False))
            continue
        msg = _view_meta_error(v, "its base or another view of its base has been")
        r = record(AS_STRIDED, v._a, base, saves=(_NOTHING,), ints=_with_count(pos),
                   broadcast=False)          # saving nothing makes the row checkable as dirty
        _set_node(v, r)
        TAPE.dirty[TAPE.rows[r._node * WIDTH + SER]] = msg
        TAPE._dirty_sorted = None
    base._views = live


_NOTHING = np.zeros(0)


def _address(a):
    return a.__array_interface__["data"][0]


_byte_bounds = getattr(np.lib, "array_utils", np).byte_bounds     # moved in NumPy 2


def _positions_in(base_a, view_a):
    """Flat C-order positions in base_a of view_a's elements (view_a aliases base_a's memory),
    or None if view_a lies outside base_a's memory."""
    isz = base_a.itemsize
    lo, hi = _byte_bounds(base_a)
    vlo, vhi = _byte_bounds(view_a)
    if view_a.size and (vlo < lo or vhi > hi or view_a.itemsize != isz):
        return None
    if builtins.any(st % isz for st in view_a.strides + base_a.strides):
        return None
    start = (_address(view_a) - lo) // isz
    if base_a.flags.c_contiguous:          # position = memory offset: no table needed
        pos = np.full((), start, np.int64)
        for n, st in zip(view_a.shape, view_a.strides):
            pos = pos[..., None] + np.arange(n, dtype=np.int64) * (st // isz)
        return pos.reshape(-1)
    # any other layout: a table from memory offset to base position, read through view's strides
    table = np.full((hi - lo) // isz, -1, np.int64)
    as_strided = np.lib.stride_tricks.as_strided
    as_strided(table[(_address(base_a) - lo) // isz:], base_a.shape,
               [st // isz * 8 for st in base_a.strides])[...] = \
        np.arange(base_a.size, dtype=np.int64).reshape(base_a.shape)
    pos = as_strided(table[start:], view_a.shape, [st // isz * 8 for st in view_a.strides])
    pos = pos.reshape(-1)
    return None if pos.size and pos.min() < 0 else pos


def _inplace_method(fn):
    def method(self, other, *args, **kwargs):
        _check_no_partial_overlap(self, (other,))
        return _inplace(self, lambda: fn(self, other, *args, **kwargs))
    return method


FILL = defop("FillBackward0", None)   # the filled values no longer depend on the input
ZERO = defop("ZeroBackward0", None)


def fill_(x, value, _op=FILL):
    v = value.item() if isinstance(value, Tensor) else value
    return _inplace(x, lambda: record(_op, np.full(x._a.shape, v, x._a.dtype),
                                      x if x._node >= 0 else None, broadcast=False),
                    overlap_ok=True)


def zero_(x):
    return fill_(x, 0, ZERO)


def _copy(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # the old value of the destination (a) is overwritten: only the source (b) gets a gradient
    if b >= 0:
        for j in range(n):
            g[b + j] += g[o + j]


COPY = defop("CopyBackwards", _copy, 2)


def copy_(x, src):
    _check_no_partial_overlap(x, (src,))
    s = src if isinstance(src, Tensor) else _wrap(_to_array(src))
    if s._a.dtype != x._a.dtype and x.dtype.is_floating_point:
        s = to(s, x.dtype)
    _broadcast_shape(x._a.shape, s._a.shape)
    return _inplace(x, lambda: record(COPY, np.broadcast_to(s._a, x._a.shape).copy(), x, s))


def copy_into_copy(x, src):
    """x.clone().copy_(src): the sample that exercises copy_'s gradients."""
    return copy_(x * 1, src)


samples(copy_into_copy, ((2, 3), (2, 3)), ((2, 3), (3,)))


def _set_values(x, write, overlap_ok=False):
    """Apply write() to x's storage in place under no recording: bump its version."""
    if not overlap_ok:
        _check_no_overlap(x._a)
    with TAPE.lock:
        write()
        TAPE.note_modified(x)
    return x


# ---- x[key] = value: CopySlices, recorded in place
COPY_SLICES = defop("CopySlices", _setitem, 2)
INDEX_PUT = defop("IndexPutBackward0", _setitem, 2)
COPY_WHOLE = defop("CopyBackwards", _setitem, 2)
FILL_WHOLE = defop("FillBackward3", _setitem, 2)


def setitem(x, key, value):
    """x[key] = value. On a tensor in the graph this is recorded in place (CopySlices); on a leaf
    requiring grad it raises PyTorch's error."""
    a = x._a
    items = _expand_items(_index_items(key), a.shape)
    first = []
    for k in items:
        if k is not None:
            first.extend([k] if isinstance(k, builtins.int) and not isinstance(k, builtins.bool)
                         else [slice(None)] * _consumed(k))
    rest = tuple(k for k in items if not (isinstance(k, builtins.int) and
                                          not isinstance(k, builtins.bool)))
    target = a[tuple(first) + (Ellipsis,)]
    region = target[rest].shape if rest else target.shape
    v = value if isinstance(value, Tensor) else None
    written = x
    if x._base is not None and x._view_meta is not None and builtins.all(
            k is None or isinstance(k, (builtins.int, slice)) for k in items):
        written = getitem(x, key)     # PyTorch names the view the index takes in its error
    _check_inplace_target(written, x._rg or (v is not None and v._rg), _VIEW_OF_LEAF_INPLACE)
    _check_no_overlap(target)
    basic = builtins.all(k is None or isinstance(k, slice) for k in rest)
    _check_no_partial_overlap(x, (v,), (target[rest] if rest else target) if basic else a)
    va = v._a if v is not None else np.asarray(value)
    if va.dtype.kind == "f" and a.dtype.kind in "biu":
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{x.dtype.tensor_type[:-6]} for the destination and "
                           f"{dtypes.from_numpy_dtype(va.dtype).tensor_type[:-6]} for the source.")
    try:
        np.broadcast_shapes(va.shape, region)
    except ValueError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(va.shape)} cannot be "
                           f"broadcast to indexing result of shape {list(region)}") from None
    vb = va.astype(a.dtype, copy=False)

    def write():
        if rest:
            target[rest] = vb
        else:
            target[...] = vb
    if not (is_grad_enabled() and (x._rg or (v is not None and v._rg))):
        return _set_values(x, write, overlap_ok=True)     # checked on the written-to region
    pos = np.arange(a.size, dtype=np.int64).reshape(a.shape)[tuple(first)]
    pos = pos[rest] if rest else pos
    if v is not None and v._rg and tuple(v._a.shape) != tuple(region):
        v = expand(v, region)
    # PyTorch's node: index_put_ for arrays, copy_/fill_ for the whole tensor, else a copy into
    # a view of x (CopySlices)
    ints = builtins.any(isinstance(k, builtins.int) and not isinstance(k, builtins.bool)
                        for k in items)
    arrays = builtins.any(isinstance(k, np.ndarray) for k in items)
    whole = not ints and not arrays and builtins.all(
        isinstance(k, slice) and k.indices(n) == (0, n, 1) for k, n in zip(items, a.shape))
    op = (INDEX_PUT if arrays and not ints else COPY_SLICES if not whole else
          COPY_WHOLE if isinstance(value, Tensor) else FILL_WHOLE)
    with TAPE.lock:
        write()
        r = record(op, a, x if x._node >= 0 else None, v, ints=_with_count(pos), broadcast=False)
        TAPE.note_modified(x, r._node)
        _commit(x, r)
    return x


def _inplace_on_view(x, y):
    """(x * 1)'s view multiplied in place by y, the base returned: CopySlices over the view."""
    b = x * 1.0
    b.T[1:].mul_(y)
    return b


def _view_of_inplace_base(x, y):
    """A view taken before its base is multiplied in place by y: AsStridedBackward0."""
    b = x * 1.0
    v = b.T[1:]
    b.mul_(y)
    return v


def _setitem_on_view(x, y):
    """y written into a slice of a view of x * 1; the view and the base returned."""
    b = x * 1.0
    v = b[1:]
    v[:, 1:] = y
    return v, b


SAME_IN_TORCH = (_inplace_on_view, _view_of_inplace_base, _setitem_on_view)  # torch runs them as is
samples(_inplace_on_view, ((3, 2), (1, 3)), ((3, 2), 2.0))
samples(_view_of_inplace_base, ((3, 2), (3, 2)), ((3, 2), (2,)))
samples(_setitem_on_view, ((3, 3), (2, 2)), ((3, 3), (2,)))


def _set_case(x, *key_and_value):
    """(x * 1)[key] = value, returning the result: setitem on a non-leaf, for the samples."""
    y = mul(x, 1.0)
    setitem(y, key_and_value[0] if len(key_and_value) == 2 else key_and_value[:-1],
            key_and_value[-1])
    return y


samples(_set_case, ((3, 4), 1, (4,)), ((3, 4), 1, ()), ((3, 4), slice(None), 2, (3,)),
        ((3, 4), _I(0, 2), (2, 4)), ((3, 4), _wrap(np.array([True, False, True])), (1, 4)),
        ((3, 4), slice(0, 2), slice(1, None, 2), (2, 1)), ((3, 4), 0, 0, 5.0), ((3,), Ellipsis, (3,)),
        ((3, 4), Ellipsis, 2.0), ((3, 4), 0, _I(1, 2), (2,)), ((3, 4), _I(1, 2), 1.5))


# ---- in-place arithmetic (optimizers): numpy in place when nothing is recorded
def _write_inplace(x, fn, *operands):
    """fn(*arrays, out=x's storage): the no-recording path of an in-place op."""
    a = x._a
    arrs = [o._a if isinstance(o, Tensor) else _py_scalar(o) if isinstance(o, np.generic) else o
            for o in operands]
    for o in arrs:
        if isinstance(o, np.ndarray) and o.shape != a.shape:
            shape = _broadcast_shape(a.shape, o.shape)
            if shape != a.shape:
                raise RuntimeError(f"output with shape {list(a.shape)} doesn't match the broadcast "
                                   f"shape {list(shape)}")
        if isinstance(o, np.ndarray) and o.dtype.kind == "f" and a.dtype.kind in "biu":
            raise RuntimeError(f"result type {dtypes.from_numpy_dtype(o.dtype).tensor_type[:-6]} "
                               f"can't be cast to the desired output type "
                               f"{x.dtype.tensor_type[:-6]}")
        if isinstance(o, builtins.float) and a.dtype.kind in "biu":
            raise RuntimeError(f"result type Float can't be cast to the desired output type "
                               f"{x.dtype.tensor_type[:-6]}")
        if type(o) is builtins.int and a.dtype.kind == "b":
            raise RuntimeError("result type Long can't be cast to the desired output type Bool")
    return _set_values(x, lambda: fn(a, *arrs))


def _recording(x, *others):
    """Whether an in-place op on x goes through the graph (else numpy writes in place). A view
    whose base requires grad does, so that it raises PyTorch's errors."""
    return is_grad_enabled() and (x._rg or (x._base is not None and x._base._rg) or builtins.any(
        isinstance(t, Tensor) and t._rg for t in others))


def _start_inplace(x, *others):
    """PyTorch's check of an in-place op's operands, then _recording."""
    _check_no_partial_overlap(x, others)
    return _recording(x, *others)


def _scalar_of(v, a):
    return a.dtype.type(v) if a.dtype.kind == "f" and not isinstance(v, np.ndarray) else v


def add_(x, other, *, alpha=1):
    if _start_inplace(x, other):
        return _inplace(x, lambda: add(x, other, alpha=alpha))
    if alpha != 1:
        return _write_inplace(x, lambda a, o: np.add(a, o * _scalar_of(alpha, a), out=a,
                                                       casting="unsafe"), other)
    return _write_inplace(x, lambda a, o: np.add(a, o, out=a, casting="unsafe"), other)


def sub_(x, other, *, alpha=1):
    if _start_inplace(x, other):
        return _inplace(x, lambda: sub(x, other, alpha=alpha))
    return _write_inplace(x, lambda a, o: np.subtract(a, o * _scalar_of(alpha, a) if alpha != 1
                                                      else o, out=a, casting="unsafe"), other)


def mul_(x, other):
    if _start_inplace(x, other):
        return _inplace(x, lambda: mul(x, other))
    return _write_inplace(x, lambda a, o: np.multiply(a, o, out=a, casting="unsafe"), other)


def div_(x, other, *, rounding_mode=None):
    if _start_inplace(x, other) or rounding_mode is not None or x._a.dtype.kind != "f":
        return _inplace(x, lambda: div(x, other, rounding_mode=rounding_mode))
    return _write_inplace(x, lambda a, o: np.divide(a, o, out=a, casting="unsafe"), other)


def addcmul(input, tensor1, tensor2, *, value=1):
    return _addc(input, tensor1, tensor2, value, False)


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


ADDCMUL = defop("AddcmulBackward0", _multi_times_saved, 0)
ADDCDIV = defop("AddcdivBackward0", _multi_times_saved, 0)


def _addc(x, t1, t2, value, divide):
    d = result_dtype(x, t1, t2)
    a, b, c = (t._a.astype(d, copy=False) for t in (x, t1, t2))
    shape = _broadcast_shape(_broadcast_shape(a.shape, b.shape), c.shape)
    v = d.type(value)
    with quiet():
        out = _arr(a + v * (b / c if divide else b * c))
        if not _needs_grad(x, t1, t2):
            return _wrap(out)
        derivs = (np.ones(shape, d), v / c if divide else v * c,
                  -v * b / (c * c) if divide else v * b)
    entries, saves, off = [], [], 0
    for t, w in zip((x, t1, t2), derivs):
        if t._rg:
            entries.append((t, len(entries), off, shape))
            saves.append(np.broadcast_to(w, shape).astype(d))
            off += saves[-1].size
    return record_multi(ADDCDIV if divide else ADDCMUL, out, entries, saves=saves)


def addcmul_(x, tensor1, tensor2, *, value=1):
    if _start_inplace(x, tensor1, tensor2):
        return _inplace(x, lambda: addcmul(x, tensor1, tensor2, value=value))
    return _write_inplace(x, lambda a, b, c: np.add(a, _scalar_of(value, a) * (b * c), out=a,
                                                    casting="unsafe"), tensor1, tensor2)


def addcdiv_(x, tensor1, tensor2, *, value=1):
    if _start_inplace(x, tensor1, tensor2):
        return _inplace(x, lambda: addcdiv(x, tensor1, tensor2, value=value))
    return _write_inplace(x, lambda a, b, c: np.add(a, _scalar_of(value, a) * (b / c), out=a,
                                                    casting="unsafe"), tensor1, tensor2)


def clamp_(x, min=None, max=None):
    if _start_inplace(x, min, max) or isinstance(min, Tensor) or isinstance(max, Tensor):
        return _inplace(x, lambda: clamp(x, min, max))
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    return _write_inplace(x, lambda a, lo, hi: np.clip(a, lo, hi, out=a), min, max)


def _unary_inplace(fn, ufunc):
    def method(x):
        if _start_inplace(x) or x._a.dtype.kind != "f":
            return _inplace(x, lambda: fn(x))
        return _write_inplace(x, lambda a: ufunc(a, out=a))
    method.__name__ = fn.__name__ + "_"
    return method


sqrt_ = _unary_inplace(sqrt, np.sqrt)
exp_ = _unary_inplace(exp, np.exp)
log_ = _unary_inplace(log, np.log)
neg_ = _unary_inplace(neg, np.negative)
abs_ = _unary_inplace(abs, np.abs)
tanh_ = _unary_inplace(tanh, np.tanh)
reciprocal_ = _unary_inplace(reciprocal, np.reciprocal)
relu_ = _unary_inplace(relu, lambda a, out: np.maximum(a, 0, out=out))


def sigmoid_(x):
    return _inplace(x, lambda: sigmoid(x))


def lerp(input, end, weight):
    if isinstance(end, Tensor) and end._a.dtype != input._a.dtype:
        raise RuntimeError(f"expected dtype {dtypes.c_name(input._a.dtype)} for `end` but got dtype "
                           f"{dtypes.c_name(end._a.dtype)}")
    _check_bcast(input._a, end._a if isinstance(end, Tensor) else np.asarray(end))
    # PyTorch's formula: x + w (e - x) for |w| < 0.5, else e - (e - x)(1 - w) (exact at w = 1)
    diff = sub(end, input)
    if isinstance(weight, Tensor):
        return where(lt(abs(weight), 0.5), add(input, mul(diff, weight)),
                     sub(end, mul(diff, rsub(weight, 1))))
    if builtins.abs(weight) < 0.5:
        return add(input, mul(diff, weight))
    return sub(end, mul(diff, 1 - weight))


def _on_copy(fn):
    """fn applied in place to a non-leaf copy of x, for the samples of in-place ops."""
    def f(x, *args, **kwargs):
        y = mul(x, 1.0)
        return fn(y, *args, **kwargs)
    f.__name__ = "_on_copy_" + fn.__name__
    return f


samples(addcmul, ((2, 3), (2, 3), (2, 3)), ((2, 3), (3,), (2, 1), {"value": 0.5}), ((), (3,), ()))
samples(addcdiv, ((2, 3), (2, 3), NonZero((2, 3))), ((2, 3), (3,), NonZero((2, 1)), {"value": -2.0}))
for _f in (add_, sub_):
    samples(_on_copy(_f), ((2, 3), (2, 3)), ((2, 3), (3,), {"alpha": 0.5}), ((2, 3), 2.0))
samples(_on_copy(mul_), ((2, 3), (2, 3)), ((2, 3), 3.0))
samples(_on_copy(div_), ((2, 3), NonZero((3,))), ((2, 3), 4.0))
samples(_on_copy(addcmul_), ((2, 3), (2, 3), (2, 3), {"value": 2.0}))
samples(_on_copy(addcdiv_), ((2, 3), (2, 3), NonZero((2, 3)), {"value": 0.5}))
samples(_on_copy(clamp_), ((2, 3), -0.5, 0.5), ((2, 3), (2, 3), None))
for _f in (sqrt_, log_):
    samples(_on_copy(_f), (Pos((2, 3)),))
for _f in (exp_, neg_, tanh_, sigmoid_):
    samples(_on_copy(_f), ((2, 3),))
for _f in (abs_, relu_, reciprocal_):
    samples(_on_copy(_f), (NonZero((2, 3)),))


# ======================= random ==================================================================
# Values come from generator= or the default generator (jitgrad/random.py), so manual_seed makes
# them reproducible.
# Filling a tensor in the graph records a node without a rule: its input gets a zero gradient.
NORMAL = defop("NormalBackward0", None)
UNIFORM = defop("UniformBackward0", None)
BERNOULLI = defop("BernoulliBackward0", None)
BERNOULLI_P = defop("BernoulliBackward2", None)
EXPONENTIAL = defop("ExponentialBackward0", None)


def _rng(generator, fn):
    from .random import _numpy_rng
    return _numpy_rng(generator, fn)


def _random_fill(x, op, values):
    """x filled in place with values (an array of x's shape)."""
    if not _recording(x):
        return _set_values(x, lambda: np.copyto(x._a, values, casting="unsafe"))
    return _inplace(x, lambda: record(op, values.astype(x._a.dtype), x, broadcast=False))


def normal_(x, mean=0.0, std=1.0, *, generator=None):
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _random_fill(x, NORMAL, _rng(generator, "normal_").normal(mean, std, x._a.shape))


def uniform_(x, from_=0.0, to=1.0, *, generator=None, **kwargs):
    from_ = kwargs.pop("from", from_)
    if from_ > to:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={from_} > "
                           f"to={to}")
    return _random_fill(x, UNIFORM, _rng(generator, "uniform_").uniform(from_, to, x._a.shape))


def exponential_(x, lambd=1.0, *, generator=None):
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    values = _rng(generator, "exponential_").exponential(1.0 / lambd, x._a.shape)
    return _random_fill(x, EXPONENTIAL, values)


def bernoulli_(x, p=0.5, *, generator=None):
    pa = p._a if isinstance(p, Tensor) else p
    if np.any((np.asarray(pa) < 0) | (np.asarray(pa) > 1)):
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    return _random_fill(x, BERNOULLI_P, _rng(generator, "bernoulli_").random(x._a.shape) < pa)


def bernoulli(input, p=None, *, generator=None):
    """0/1 draws with the probabilities in input (or p), in input's dtype."""
    a = _float_input(input)
    if p is not None and not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    probs = a if p is None else np.full(a.shape, p)
    if probs.size and ((probs < 0) | (probs > 1) | np.isnan(probs)).any():
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.  (Could this "
                           "error message be improved?  If so, please report an enhancement "
                           "request to PyTorch.)")
    out = _arr((_rng(generator, "bernoulli").random(a.shape) < probs).astype(a.dtype))
    return record(BERNOULLI, out, input, broadcast=False)


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad=False):
    """torch.normal: tensor or float mean/std (broadcast), or floats with a size."""
    if device is not None:
        _device.as_device(device, factory=True)
    if not isinstance(mean, Tensor) and not isinstance(std, Tensor):
        if size is None:
            raise TypeError("normal() received an invalid combination of arguments - got (float, "
                            "float), but expected one of: (float mean, float std, tuple of ints "
                            "size)")
        if std < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
        shape = _new_shape((size,), "normal")
        a = _rng(generator, "normal").normal(mean, std, shape)
        a = a.astype(dtypes.to_numpy_dtype(dtype or dtypes.default_float))
        t = _wrap(a)
        return t.requires_grad_(True) if requires_grad else t
    m = mean._a if isinstance(mean, Tensor) else mean
    s = std._a if isinstance(std, Tensor) else std
    if np.any(np.asarray(s) < 0):
        raise RuntimeError("normal expects all elements of std >= 0.0" if isinstance(std, Tensor)
                           else f"normal expects std >= 0.0, but found std {std:g}")
    d = (mean if isinstance(mean, Tensor) else std)._a.dtype
    z = _rng(generator, "normal").standard_normal(np.broadcast(m, s).shape)
    return _wrap(_arr((m + s * z).astype(d)))
