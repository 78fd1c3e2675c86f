"""The op table. Each op is one block: its backward rule, its registration, its forward, samples.

A backward rule is plain Python over flat arrays, compiled by engine/codegen.py:

    rule(go, ga, gb, sv, iv, do, da, db, row)

go is the output's gradient (flat); ga/gb are the inputs' gradients to accumulate into (empty when
that input needs none); sv is the arena from this node's saved values on; do/da/db are the output's
and inputs' dims; row is the tape row (row[5], row[6] hold the op's integer attributes I0, I1).
Broadcasting never reaches a rule: record() un-broadcasts through hidden EXPAND nodes, so an
elementwise rule sees inputs of the output's size. Rules must not allocate per element.

``samples(fn, *cases)`` gives each public function its test inputs: a case is a tuple of
arguments where a tuple stands for a random float64 tensor of that shape requiring grad (``Pos(shape)``:
positive values, ``NonZero(shape)``: bounded away from 0) and anything else (write dims and
sizes as lists) is passed as is; a
trailing dict holds keyword arguments. tests/test_ops_gradcheck.py runs gradcheck on every case
and compares with PyTorch, and checks that every registered op is reached by some case.
"""
import builtins
import math

import numpy as np

from . import dtypes
from .engine import registry
from .engine.loop import bcast_accumulate, permute_accumulate
from .engine.registry import defop
from .engine.tape import TAPE, is_grad_enabled, F_SAVED
from .tensor import Tensor, _wrap, _to_array, _check_dim, Size

RULE_HELPERS = (bcast_accumulate, permute_accumulate)
SAMPLES = {}


class Pos(tuple):
    """A sample shape whose values are positive."""


class NonZero(tuple):
    """A sample shape whose values are bounded away from zero (poles and kinks)."""


SAMPLE_EPS = {}     # ops whose forward loses precision get a larger finite-difference step


def samples(fn, *cases, eps=None):
    SAMPLES[fn] = cases
    if eps is not None:
        SAMPLE_EPS[fn] = eps


UNARY = (((),), ((3,),), ((2, 3),))
BINARY = (((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 1), (1, 3)), ((3,), ()), ((2, 3), (3,)),
          ((2, 3), 1.5), ((3,), 2))
_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)


# ---- recording ---------------------------------------------------------------------------
def record(op, out, x, y=None, saves=(), consts=(), i0=0, i1=0, save_out=False, broadcast=True):
    """Wrap the forward result ``out``; append a row if grad mode is on and an input needs grad.

    saves: tensors or arrays whose values the rule reads (broadcast to out's shape when
    broadcast=True), then the output itself if save_out, then Python float consts.
    """
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if not ((x is not None and x._rg) or (y is not None and y._rg)) or not is_grad_enabled():
        return _wrap(out)
    tape = TAPE
    with tape.lock:
        tape.maybe_compact()
        shape = out.shape
        a = tape.var(x, shape if broadcast else x._a.shape) if x is not None and x._rg else -1
        b = tape.var(y, shape if broadcast else y._a.shape) if y is not None and y._rg else -1
        t = _wrap(out, True)
        s = -1
        flags = 0
        serial = tape.serial
        if saves or save_out or consts:
            vals = [v._a if isinstance(v, Tensor) else v for v in saves]
            if save_out:
                vals.append(out)
            s = tape.save(vals + list(consts), shape if broadcast else None)
            if saves or save_out:
                flags = F_SAVED
                for v in saves:
                    if isinstance(v, Tensor):
                        tape.note_saved(v, serial)
                if save_out:
                    t._ver = [0, serial]
        t._node = tape.append(op, a, b, s, shape, i0, i1, flags, t)
    return t


def _arr(r):
    return r if type(r) is np.ndarray else np.asarray(r)


def _needs_grad(*ts):
    return is_grad_enabled() and builtins.any(t is not None and t._rg for t in ts)


# ---- dtype promotion, as PyTorch: a category (bool < int < float) is decided by all operands;
# within it, dimensioned tensors outrank 0-dim tensors, which outrank Python scalars.
def _category(d):
    return 2 if d.kind == "f" else (0 if d.kind == "b" else 1)


def result_dtype(*operands):
    cands = []
    for o in operands:
        if isinstance(o, Tensor):
            d = o._a.dtype
            cands.append((_category(d), 2 if o._a.ndim else 1, d))
        elif isinstance(o, builtins.bool):
            cands.append((0, 0, np.dtype(np.bool_)))
        elif isinstance(o, builtins.int):
            cands.append((1, 0, np.dtype(np.int64)))
        else:
            cands.append((2, 0, _F32))
    cat = max(c[0] for c in cands)
    top = max(c[1] for c in cands if c[0] == cat)
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
def _add(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        ga[j] += go[j]
    for j in range(gb.size):
        gb[j] += go[j]


def _sub(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        ga[j] += go[j]
    for j in range(gb.size):
        gb[j] -= go[j]


def _neg(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        ga[j] -= go[j]


def _mul(go, ga, gb, sv, iv, do, da, db, row):
    # saved: y's values if x needs a gradient, then x's values if y does
    for j in range(ga.size):
        ga[j] += go[j] * sv[j]
    k = ga.size
    for j in range(gb.size):
        gb[j] += go[j] * sv[k + j]


def _scale(go, ga, gb, sv, iv, do, da, db, row):
    c = sv[0]
    for j in range(ga.size):
        ga[j] += go[j] * c


def _div(go, ga, gb, sv, iv, do, da, db, row):
    # saved: y, then x if y needs a gradient
    n = go.size
    for j in range(ga.size):
        ga[j] += go[j] / sv[j]
    for j in range(gb.size):
        yj = sv[j]
        gb[j] -= go[j] * sv[n + j] / (yj * yj)


def _div_scalar(go, ga, gb, sv, iv, do, da, db, row):
    c = sv[0]
    for j in range(ga.size):
        ga[j] += go[j] / c


def _pow_scalar(go, ga, gb, sv, iv, do, da, db, row):
    n = ga.size
    p = sv[n]
    if p == 0:
        return
    for j in range(n):
        ga[j] += go[j] * p * sv[j] ** (p - 1)


def _rpow(go, ga, gb, sv, iv, do, da, db, row):
    # c ** x: saved out, then log(c)
    n = ga.size
    lc = sv[n]
    for j in range(n):
        ga[j] += go[j] * sv[j] * lc


def _pow(go, ga, gb, sv, iv, do, da, db, row):
    # x ** y with tensors: saved x, y, out
    n = go.size
    for j in range(ga.size):
        if sv[n + j] != 0:
            ga[j] += go[j] * sv[n + j] * sv[j] ** (sv[n + j] - 1)
    for j in range(gb.size):
        if sv[j] > 0:
            gb[j] += go[j] * sv[2 * n + j] * np.log(sv[j])
        elif sv[j] < 0:
            gb[j] += go[j] * sv[2 * n + j] * np.log(-sv[j])   # nan like torch only for out!=0


ADD = defop("AddBackward0", _add, 2)
SUB = defop("SubBackward0", _sub, 2)
RSUB = defop("RsubBackward1", _neg, 1)
NEG = defop("NegBackward0", _neg, 1)
MUL = defop("MulBackward0", _mul, 2)
MUL_SCALAR = defop("MulBackward0", _scale, 2)
DIV = defop("DivBackward0", _div, 2)
DIV_SCALAR = defop("DivBackward0", _div_scalar, 2)
POW_SCALAR = defop("PowBackward0", _pow_scalar, 1)
RPOW = defop("PowBackward2", _rpow, 1)
POW = defop("PowBackward1", _pow, 2)


def add(x, y, alpha=1):
    if not isinstance(x, Tensor):
        x, y = y, x
    xa, ya, yt = _operands(x, y)
    if alpha != 1:
        return add(x, mul(yt if yt is not None else _wrap(np.asarray(ya)), alpha))
    _check_bcast(xa, ya)
    return record(ADD, _arr(xa + ya), x, yt)


def sub(x, y, alpha=1):
    if alpha != 1:
        return sub(x, mul(y, alpha))
    xa, ya, yt = _operands(x, y)
    _check_bcast(xa, ya)
    return record(SUB, _arr(xa - ya), x, yt)


def rsub(x, y):
    """y - x for a Python number y (x.__rsub__)."""
    if isinstance(y, Tensor):
        return sub(y, x)
    xa, ya, _ = _operands(x, y)
    return record(RSUB, _arr(ya - xa), x)


def neg(x):
    return record(NEG, _arr(-x._a), x)


def mul(x, y):
    if not isinstance(x, Tensor):
        x, y = y, x
    xa, ya, yt = _operands(x, y)
    if yt is None and np.ndim(ya) == 0:
        return record(MUL_SCALAR, _arr(xa * ya), x, consts=(builtins.float(ya),))
    _check_bcast(xa, ya)
    out = _arr(xa * ya)
    if not _needs_grad(x, yt):
        return _wrap(out)
    saves = ([yt if yt is not None else ya] if x._rg else []) + ([x] if yt is not None and yt._rg else [])
    return record(MUL, out, x, yt, saves=saves)


def div(x, y, rounding_mode=None):
    xa, ya, yt = _operands(x, y)
    if rounding_mode is not None:
        r = np.floor_divide(xa, ya) if rounding_mode == "floor" else np.trunc(xa / ya)
        return _wrap(_arr(r.astype(result_dtype(x, y))))
    if xa.dtype.kind != "f":   # true division of integers gives the default float dtype
        xa = xa.astype(_F32)
        ya = ya.astype(_F32) if isinstance(ya, np.ndarray) else ya
    if yt is None and np.ndim(ya) == 0:
        return record(DIV_SCALAR, _arr(xa / ya), x, consts=(builtins.float(ya),))
    _check_bcast(xa, ya)
    out = _arr(xa / ya)
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
        p = builtins.float(ya)
        return record(POW_SCALAR, _arr(xa ** ya), x, saves=(x,), consts=(p,))
    _check_bcast(xa, ya)
    out = _arr(np.power(xa, ya))
    yt = yt if yt is not None else _wrap(np.asarray(ya))
    return record(POW, out, x, yt, saves=(x, yt), save_out=True)


def _rpow_fn(x, c):
    """c ** x for a Python number c."""
    xa = x._a if x._a.dtype.kind == "f" else x._a.astype(_F32)
    out = _arr(np.power(xa.dtype.type(c), xa))
    return record(RPOW, out, x, save_out=True, consts=(math.log(c) if c > 0 else math.nan,))


for _f in (add, sub, mul):
    samples(_f, *BINARY, ((2, 3), (2, 3), {"alpha": 2.0}) if _f is not mul else ((2,), (1,)))
samples(div, *[(a, NonZero(b) if isinstance(b, tuple) else b) for a, b in BINARY])
samples(pow, (Pos((3,)), 2), (Pos((2, 3)), 0.5), (Pos((2, 3)), -1.5), ((3,), 3), ((3,), 0),
        (Pos((2, 3)), (2, 3)), (Pos((2, 1)), (1, 3)), (Pos(()), (3,)))
samples(rsub, ((3,), 2.0), ((), 1))
samples(rdiv, (NonZero((3,)), 2.0))
samples(_rpow_fn, ((3,), 2.0), ((2, 3), 0.5))


# ======================= elementwise unary =====================================================
def _times_saved(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        ga[j] += go[j] * sv[j]


def _over_saved(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        ga[j] += go[j] / sv[j]


def _sqrt(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        ga[j] += go[j] / (sv[j] + sv[j])


def _tanh(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        y = sv[j]
        ga[j] += go[j] * (1 - y * y)


def _sigmoid(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        y = sv[j]
        ga[j] += go[j] * y * (1 - y)


def _relu(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        if sv[j] > 0:
            ga[j] += go[j]


def _abs(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        if sv[j] > 0:
            ga[j] += go[j]
        elif sv[j] < 0:
            ga[j] -= go[j]


def _reciprocal(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        y = sv[j]
        ga[j] -= go[j] * y * y


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
    return a if a.dtype.kind == "f" else a.astype(_F32)


def _unary(op, fn, save_input=False, save_out=False):
    def f(x):
        a = _float_input(x)
        with np.errstate(all="ignore"):
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
    with np.errstate(over="ignore"):
        out = _arr(np.where(a >= 0, 1 / (1 + np.exp(-np.abs(a))), np.exp(-np.abs(a)) / (1 + np.exp(-np.abs(a))))
                   .astype(a.dtype))
    return record(SIGMOID, out, x, save_out=True)


def relu(x):
    return record(RELU, _arr(np.maximum(x._a, x._a.dtype.type(0))), x, save_out=True)


def abs(x):
    return record(ABS, _arr(np.abs(x._a)), x, saves=(x,))


for _f in (exp, tanh, sigmoid, neg):
    samples(_f, *UNARY)
for _f in (log, sqrt):
    samples(_f, *[(Pos(c[0]),) for c in UNARY])
for _f in (relu, abs, reciprocal):
    samples(_f, *[(NonZero(c[0]),) for c in UNARY])
for _f, _n in ((exp, "exp"), (log, "log"), (sqrt, "sqrt"), (tanh, "tanh"), (reciprocal, "reciprocal")):
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
    axes = tuple(sorted({_check_dim(builtins.int(d), ndim) for d in dim}))
    if ndim == 0:
        return ()
    return axes


def _mask(axes):
    m = 0
    for d in axes:
        m |= 1 << d
    return m


def sum(x, dim=None, keepdim=False, dtype=None):
    a = x._a
    if dtype is not None:
        a = a.astype(dtypes.to_numpy_dtype(dtype))
    elif a.dtype.kind in "biu":
        a = a.astype(np.int64)
    axes = _dims(dim, a.ndim)
    out = _arr(a.sum(axis=axes, keepdims=keepdim))
    return record(SUM if dim is None else SUM_DIM, out, x, i0=_mask(axes), broadcast=False)


def mean(x, dim=None, keepdim=False, dtype=None):
    a = x._a if dtype is None else x._a.astype(dtypes.to_numpy_dtype(dtype))
    if a.dtype.kind != "f":
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {x.dtype.tensor_type[:-6]}")
    axes = _dims(dim, a.ndim)
    with np.errstate(all="ignore"):
        out = _arr(a.mean(axis=axes, keepdims=keepdim) if a.size else np.full(
            np.sum(a, axis=axes, keepdims=keepdim).shape, np.nan, a.dtype))
    return record(MEAN if dim is None else MEAN_DIM, out, x, i0=_mask(axes), broadcast=False)


def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over dim (all elements by default); 'fro' is the 2-norm."""
    a = _float_input(x)
    p = 2.0 if p == "fro" else builtins.float(p)
    axes = _dims(dim, a.ndim)
    absa = np.abs(a)
    with np.errstate(all="ignore"):
        if p == math.inf:
            r = absa.max(axis=axes, keepdims=True)
        elif p == 0:
            r = (absa != 0).sum(axis=axes, keepdims=True).astype(a.dtype)
        else:
            r = (absa ** p).sum(axis=axes, keepdims=True) ** (1 / p)
        out = _arr((r if keepdim else r.reshape(np.sum(a, axis=axes).shape)).astype(a.dtype))
        if not _needs_grad(x):
            return _wrap(out)
        # d|x|_p / dx = sign(x) |x|^(p-1) / |x|_p^(p-1); 0 where the norm is 0
        if p == math.inf:
            hit = absa == r
            w = np.sign(a) * hit / np.maximum(hit.sum(axis=axes, keepdims=True), 1)
        elif p == 0:
            w = np.zeros_like(a)
        else:
            w = np.where(r == 0, 0, np.sign(a) * absa ** (p - 1) / r ** (p - 1))
    return record(NORM, out, x, saves=(w.astype(a.dtype),), i0=_mask(axes), broadcast=False)


REDUCE = (((),), ((3,),), ((2, 3),), ((2, 3), 0), ((2, 3), 1, True), ((2, 3), -1), ((2, 3, 2), [0, 2]),
          ((2, 3, 2), [0, 2], True), ((), 0))
samples(sum, *REDUCE)
samples(mean, *REDUCE)
samples(norm, (NonZero((3,)),), (NonZero((2, 3)),), (NonZero((2, 3)), 2, 1), (NonZero((2, 3)), 3, 0),
        (NonZero((2, 3)), 1, [0, 1], True), ((2, 3), "fro", 1))


# ======================= shape ===============================================================
def _identity(go, ga, gb, sv, iv, do, da, db, row):
    for j in range(ga.size):
        ga[j] += go[j]


def _expand(go, ga, gb, sv, iv, do, da, db, row):
    bcast_accumulate(do, da, True, 1.0, ga, go, sv[:0])


def _permute(go, ga, gb, sv, iv, do, da, db, row):
    nd = da.shape[0]
    perm = np.empty(nd, np.int64)
    for d in range(nd):
        perm[d] = (row[5] >> (4 * d)) & 15
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


def _view_of(op, out, x, i0=0):
    """Record a view op: the result shares x's storage and version counter."""
    t = record(op, out, x, i0=i0, broadcast=False)
    if np.shares_memory(out, x._a) if out.size else False:
        t._ver = x._shared_version()
    return t


def _infer_shape(shape, n):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = tuple(shape[0])
    shape = tuple(builtins.int(s) for s in shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if -1 in shape:
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
    shape = _infer_shape(shape, x._a.size)
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


def _pack_perm(perm):
    code = 0
    for d, p in enumerate(perm):
        code |= p << (4 * d)
    return code


def permute(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    nd = x._a.ndim
    perm = tuple(_check_dim(d, nd) for d in dims)
    if len(perm) != nd or sorted(perm) != list(range(nd)):
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not "
                           f"match the length of the desired ordering of dimensions i.e. input.dim() "
                           f"= {nd} is not equal to len(dims) = {len(perm)}")
    if nd > 16:
        raise NotImplementedError("permute supports at most 16 dimensions")
    return _view_of(PERMUTE, x._a.transpose(perm), x, _pack_perm(perm))


def transpose(x, dim0, dim1):
    nd = x._a.ndim
    if nd == 0:
        return _view_of(TRANSPOSE, x._a, x)
    d0, d1 = _check_dim(dim0, nd), _check_dim(dim1, nd)
    perm = list(range(nd))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _view_of(TRANSPOSE, x._a.transpose(perm), x, _pack_perm(perm))


def t(x):
    nd = x._a.ndim
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return _view_of(T, x._a.T, x, _pack_perm((1, 0))) if nd == 2 else _view_of(T, x._a, x)


def T_(x):
    return permute(x, tuple(range(x._a.ndim - 1, -1, -1)))


def expand(x, *sizes):
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    a = x._a
    lead = len(sizes) - a.ndim
    if lead < 0:
        raise RuntimeError(f"expand(jitgrad.{x.dtype.tensor_type}{{{list(a.shape)}}}, size={list(sizes)}): "
                           "the number of sizes provided must be greater or equal to the number of "
                           "dimensions in the tensor")
    shape = tuple(a.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    for i in range(a.ndim):
        if a.shape[i] != 1 and a.shape[i] != shape[i + lead]:
            raise RuntimeError(f"The expanded size of the tensor ({shape[i + lead]}) must match the "
                               f"existing size ({a.shape[i]}) at non-singleton dimension {i + lead}.  "
                               f"Target sizes: {list(sizes)}.  Tensor sizes: {list(a.shape)}")
    out = np.broadcast_to(a, shape)
    return _view_of(EXPAND_USER, out, x)


def clone(x):
    return record(CLONE, x._a.copy(), x, broadcast=False)


def to(x, *args, dtype=None, **kwargs):
    for a in args:
        if isinstance(a, dtypes.dtype):
            dtype = a
        elif isinstance(a, Tensor):
            dtype = a.dtype
    if dtype is None or dtype is x.dtype:
        return x
    nd = dtypes.to_numpy_dtype(dtype)
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


# ======================= linear algebra ======================================================
def _mm(go, ga, gb, sv, iv, do, da, db, row):
    # out (bt, m, n) = x (bt, m, k) @ y (bt, k, n), bt batches; I0 = m | bt << 32, I1 = k.
    # saved: y if x needs a gradient, then x if y does. Accumulation is an explicit loop: an
    # array-expression `dst[:, :] += ...` costs seconds of compile time.
    m = row[5] & 0xFFFFFFFF
    bt = max(row[5] >> 32, 1)
    k = row[6]
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


def matmul(x, y):
    if not isinstance(y, Tensor):
        raise TypeError(f"matmul(): argument 'other' (position 2) must be Tensor, not {type(y).__name__}")
    xa, ya = x._a, y._a
    if xa.dtype != ya.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {xa.dtype} != {ya.dtype}")
    nx, ny = xa.ndim, ya.ndim
    if nx == 0 or ny == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {nx}D and {ny}D")
    if nx > 2 or ny > 2:
        raise NotImplementedError("matmul of tensors with more than 2 dimensions is not supported yet")
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
    out = _arr(np.matmul(xa, ya))
    if not _needs_grad(x, y):
        return _wrap(out)
    saves = ([y] if x._rg else []) + ([x] if y._rg else [])
    return record(op, out, x, y, saves=saves, i0=m, i1=k, broadcast=False)


def mm(x, y):
    if x._a.ndim != 2 or y._a.ndim != 2:
        raise RuntimeError("self must be a matrix" if x._a.ndim != 2 else "mat2 must be a matrix")
    return matmul(x, y)


samples(matmul, ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((1, 1), (1, 1)))
samples(mm, ((2, 3), (3, 4)))


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
    return builtins.bool(np.allclose(x._a, y._a, rtol, atol, equal_nan))


def isclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _wrap(np.isclose(x._a, y._a, rtol, atol, equal_nan))


# ======================= losses =====================================================================
def _bce_logits(go, ga, gb, sv, iv, do, da, db, row):
    # saved: x, target; I0 = reduction (0 none, 1 mean, 2 sum)
    n = ga.size if ga.size else gb.size
    red = row[5]
    for j in range(n):
        g = go[0] if red else go[j]
        if red == 1:
            g = g / n
        x = sv[j]
        if ga.size:
            if x >= 0:
                s = 1 / (1 + np.exp(-x))
            else:
                e = np.exp(x)
                s = e / (1 + e)
            ga[j] += g * (s - sv[n + j])
        if gb.size:
            gb[j] -= g * x


BCE_LOGITS = defop("BinaryCrossEntropyWithLogitsBackward0", _bce_logits, 2)
_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if not isinstance(target, Tensor):
        raise TypeError(f"binary_cross_entropy_with_logits(): argument 'target' (position 2) must be "
                        f"Tensor, not {type(target).__name__}")
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    if weight is not None or pos_weight is not None:
        raise NotImplementedError("weight and pos_weight are not supported yet")
    x = _float_input(input)
    tt = target._a.astype(x.dtype) if target._a.dtype != x.dtype else target._a
    with np.errstate(over="ignore"):
        elem = np.maximum(x, 0) - x * tt + np.log1p(np.exp(-np.abs(x)))
    red = _REDUCTIONS[reduction]
    out = _arr(elem if red == 0 else (elem.mean() if red == 1 else elem.sum()).astype(x.dtype))
    return record(BCE_LOGITS, out, input, target, saves=(input, target), i0=red, broadcast=False)


samples(binary_cross_entropy_with_logits, ((3,), (3,)), ((2, 3), (2, 3), {"reduction": "sum"}),
        ((2, 3), (2, 3), {"reduction": "none"}), ((), ()))


# ======================= in-place ops ==========================================================
_LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."


def _inplace(x, compute):
    """Run compute() (an out-of-place op) and store its result in x, as PyTorch's in-place ops do."""
    recording = is_grad_enabled()
    if recording and x._rg and x._node < 0:
        raise RuntimeError(_LEAF_INPLACE)
    r = compute()
    if r._a.shape != x._a.shape:
        raise RuntimeError(f"output with shape {list(x._a.shape)} doesn't match the broadcast shape "
                           f"{list(r._a.shape)}")
    if r._a.dtype != x._a.dtype and not np.can_cast(r._a.dtype, x._a.dtype, "same_kind"):
        raise RuntimeError(f"result type {r.dtype.tensor_type[:-6]} can't be cast to the desired "
                           f"output type {x.dtype.tensor_type[:-6]}")
    with TAPE.lock:
        np.copyto(x._a, r._a, casting="unsafe")
        TAPE.note_modified(x)
        if r._node >= 0:
            x._node = r._node
            x._rg = True
            import weakref
            TAPE.outs[r._node] = weakref.ref(x)
            if r._ver is not None and len(r._ver) > 1:
                x._ver.extend(r._ver[1:])
    return x


def _inplace_method(fn):
    def method(self, other, *args, **kwargs):
        return _inplace(self, lambda: fn(self, other, *args, **kwargs))
    return method


FILL = defop("FillBackward0", None)   # the filled values no longer depend on the input
ZERO = defop("ZeroBackward0", None)


def fill_(x, value, _op=FILL):
    v = value.item() if isinstance(value, Tensor) else value
    return _inplace(x, lambda: record(_op, np.full_like(x._a, v), x if x._node >= 0 else None,
                                      broadcast=False))


def zero_(x):
    return fill_(x, 0, ZERO)


def copy_(x, src):
    s = src if isinstance(src, Tensor) else _wrap(_to_array(src))
    return _inplace(x, lambda: expand(to(s, x.dtype) if x.dtype.is_floating_point else s, x._a.shape))
