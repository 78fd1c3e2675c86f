"""The machinery every op family shares: recording, dtype promotion, argument checks.

record() and record_multi() wrap a forward's result and append its tape row; quiet silences
numpy's floating-point warnings; result_dtype and _operands promote dtypes as PyTorch does;
_broadcast_shape and _check_bcast give PyTorch's broadcast errors; _dims and friends check dim
arguments; _ValuesIndices is the (values, indices) result of max/min/sort/topk.
"""
import array
import builtins
import struct
import warnings
import weakref

import numpy as np

from .. import dtypes
from ..engine import hook
from ..engine.registry import OPS
from ..engine.loop import F_F64, F_INTS, F_MULTI, I0, I1, SHAPE_ID, WIDTH
from ..engine.tape import _ROW, F_SAVED, TAPE, _grad_mode as _MODE, is_grad_enabled
from ..tensor import Tensor, _check_dim, _to_array, _wrap



_F64 = np.dtype(np.float64)
_new = Tensor.__new__       # (record_pair's: a global reads faster than a class's attribute)
_ref = weakref.ref
_SAVED_F64 = F_SAVED | F_F64
# record_pair's row: I0 and I1 are 0, packed as zero pad bytes (two int conversions less)
_PAIR_ROW = struct.Struct("5q16x2q")
assert (WIDTH, I0, I1) == (9, 5, 6) and _PAIR_ROW.size == _ROW.size


# ---- names -----------------------------------------------------------------------------------
NAMES = []     # (fn, jitgrad.<names>, Tensor.<names>, in-place Tensor.<names>): _methods.py binds them


def torch_names(*names, functions=(), methods=(), inplace=()):
    """Declare an op's PyTorch names, next to it: each of names is both jitgrad.<name> and
    Tensor.<name> (a dunder name is a Tensor operator only); functions are jitgrad.<name> only,
    methods Tensor.<name> only, inplace Tensor methods that write the result into the tensor
    (add_, __iadd__). A decorator; torch_names(...)(fn) for a function made by a call."""
    def declare(fn):
        NAMES.append((fn, tuple(n for n in names if not n.startswith("__")) + tuple(functions),
                      tuple(names) + tuple(methods), tuple(inplace)))
        return fn
    return declare


# ---- recording ---------------------------------------------------------------------------
def record(op, out, x, y=None, saves=(), consts=(), i0=0, i1=0, save_out=False, broadcast=True,
           ints=None, vshape=None, scalars=()):
    """Wrap the forward result ``out``; append a row if grad mode is on and an input needs grad.

    saves: tensors or arrays whose values the rule reads (broadcast to vshape when broadcast=True),
    then the output itself if save_out, then Python float consts. vshape (default: out's shape) is
    the shape the inputs' gradients arrive in: an input of another shape is un-broadcast to it by
    a hidden node. ints: integer data for the rule (the int arena; I1 then holds its offset).
    scalars: Python numbers the op used that the row does not keep (a compiled replay of the
    op's forward kernel reads them, see jitgrad/compiler). This is the forward's hot path: keep
    it lean.
    """
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    t = _new(Tensor)
    t._a = out
    t._node = t._leafvar = -1
    t._grad = t._ver = t._base = t._views = None
    if not ((x is not None and x._rg) or (y is not None and y._rg)) or not _MODE.enabled:
        t._rg = False
        if hook.tracer is not None:
            hook.tracer.op(op, t, x, y, consts, scalars, i0, i1, ints)
        return t
    t._rg = True
    tape = TAPE
    lock = tape.lock
    lock.acquire()            # (not ``with``: its special-method lookups cost ~0.1 us)
    try:
        if (len(tape.outs) >= tape.limit or tape.alen + tape.ilen >= tape.alimit
                or tape.held >= tape.hlimit or out.dtype is not tape.last_dtype):
            tape.prepare(out)                   # (the checks inline: the common case is none)
        shape = out.shape if vshape is None else vshape
        # shape's id (None if new): the row's, and a leaf input of that shape has a row of it
        # (var's test, without another lookup; var may add shapes, never renumber them)
        sid = tape.shape_ids.get(shape)
        if x is None or not x._rg:
            a = -1
        elif x._node >= 0 and (not broadcast or x._a.shape == shape):
            a = x._node                         # the common case, without a call
        elif x._node < 0 <= x._leafvar and (
                tape.rows[x._leafvar * WIDTH + SHAPE_ID] == sid and x._a.shape == shape
                if broadcast else
                tape.rows[x._leafvar * WIDTH + SHAPE_ID] == tape.shape_ids.get(x._a.shape)):
            a = x._leafvar                      # a leaf's row, as var finds it
        else:
            a = tape.var(x, shape if broadcast else x._a.shape)
        if y is None or not y._rg:
            b = -1
        elif y._node >= 0 and (not broadcast or y._a.shape == shape):
            b = y._node
        elif y._node < 0 <= y._leafvar and (
                tape.rows[y._leafvar * WIDTH + SHAPE_ID] == sid and y._a.shape == shape
                if broadcast else
                tape.rows[y._leafvar * WIDTH + SHAPE_ID] == tape.shape_ids.get(y._a.shape)):
            b = y._leafvar
        else:
            b = tape.var(y, shape if broadcast else y._a.shape)
        serial = tape.serial        # (after var: its rows take serials)
        s = -1
        flags = 0
        if saves or save_out or consts:
            s = tape.alen
            if saves or save_out:
                if save_out:
                    t._ver = [0, 64, serial]
                # Tape.save_tensors, inline: the arena copy and the version record per saved
                # tensor of the out's shape (or unbroadcast), the rest through _put
                bshape = shape if broadcast else None
                for v in saves:
                    va = getattr(v, "_a", None)
                    if va is None:
                        tape._put(v, bshape)
                        continue
                    if va.ndim and (bshape is None or va.shape == bshape):
                        alen = tape.alen
                        end = alen + va.size
                        if end > tape.arena.size:
                            tape._reserve(va.size)
                        tape.arena[alen: end] = va.ravel()
                        tape.alen = end
                    else:
                        tape._put(va, bshape)
                    ver = v._ver
                    if ver is None:
                        v._ver = [0, 64, serial]
                    elif 1 < len(ver) < ver[1]:
                        ver.append(serial)
                    else:
                        tape.note_saved(v, serial)
                if save_out:
                    if out.ndim and (bshape is None or out.shape == bshape):    # (as above)
                        alen = tape.alen
                        end = alen + out.size
                        if end > tape.arena.size:
                            tape._reserve(out.size)
                        tape.arena[alen: end] = out.ravel()
                        tape.alen = end
                    else:
                        tape._put(out, bshape)
                tape.saver_row[serial] = len(tape.outs)     # the row appended below
                flags = F_SAVED
            if consts:
                tape.save_consts(consts)
        if ints is not None:
            i1 = tape.save_ints(ints)
            flags |= F_INTS
        outs = tape.outs
        oshape = out.shape
        if vshape is not None or sid is None:
            sid = tape.shape_ids.get(oshape)
        packed = None
        if tape.plain and sid is not None:
            try:
                packed = _ROW.pack(op, a, b, s, sid, i0, i1, flags | tape.fbit, serial)
            except struct.error:
                pass
        if packed is not None:
            # Tape.append, inline (anomaly mode wraps append: its way then; a new shape, or an
            # attribute that does not fit the row, goes the same way: append reports it)
            row = len(outs)
            try:
                tape.rows.frombytes(packed)
            except BufferError:     # a numpy view of the rows outlived a replay: detach from it
                tape.rows = array.array("q", tape.rows)
                tape.rows.frombytes(packed)
            tape.serial = serial + 1
            outs.append(_ref(t))
            tape.values.append(out)
            tape.held += out.size
            t._node = row
        else:
            t._node = tape.append(op, a, b, s, oshape, i0, i1, flags, t)
        if (a < 0 and x is not None) or (b < 0 and y is not None):
            reads = OPS[op].reads       # (what create_graph's formulas read: nll_loss's not y)
            kept = {}                   # (not a comprehension: its frame and tuples cost ~1 us)
            if a < 0 and x is not None and "x" in reads:
                kept["x"] = (x._a, shape if broadcast else None)
            if b < 0 and y is not None and "y" in reads:
                kept["y"] = (y._a, shape if broadcast else None)
            tape.keep_constants(t._node, kept)
    finally:
        lock.release()
    if hook.tracer is not None:
        hook.tracer.op(op, t, x, y, consts, scalars, i0, i1, ints)
    return t


def record_pair(op, out, x, y, s0=None, s1=None, v0=None, v1=None):
    """record(op, out, x, y, saves=[s0, s1] without the Nones) where x and y are 0-dim tensors
    that both require grad, out is a 0-d float64 array and grad mode is on; v0 and v1 are the
    Python floats of s0's and s1's values (the arena stores a float without numpy's cast
    lookup for a 0-d array: ~250 instructions a value less). The same row, without
    record's general checks (shapes, broadcasting, constants, int data) and with Tape.append
    and save_tensors inline. A scalar graph's + - * / are mostly this case: W4's recording cost
    29.9k instructions per op through record, ~16.9k through this (callgrind, a window without
    compaction; torch 2.13: ~14.3k) (with the budget, see Tape.pair_budget)."""
    tape = TAPE
    t = _new(Tensor)
    t._a = out
    t._leafvar = -1
    t._rg = True
    t._grad = t._ver = t._base = t._views = None
    lock = tape.lock
    lock.acquire()
    try:
        if tape.serial >= tape.pair_until:      # (prepare's checks, rarely: see pair_budget)
            if not tape.plain:                  # anomaly mode wraps Tape.append: record's way
                return record(op, out, x, y, saves=[v for v in (s0, s1) if v is not None])
            tape.pair_budget(out)
        a = x._node
        if a < 0:       # a leaf: its row, unless it has none or its storage changed shape since
            a = x._leafvar
            if a not in tape.pair_leaves:       # (checked once while the budget lasts)
                if a < 0 or tape.rows[a * WIDTH + SHAPE_ID] != tape.pair_sid:
                    a = tape.var(x, ())
                tape.pair_leaves.add(a)
        b = y._node
        if b < 0:
            b = y._leafvar
            if b not in tape.pair_leaves:
                if b < 0 or tape.rows[b * WIDTH + SHAPE_ID] != tape.pair_sid:
                    b = tape.var(y, ())
                tape.pair_leaves.add(b)
        serial = tape.serial
        outs = tape.outs            # (after prepare and var: a compaction replaces the list)
        row = len(outs)
        if s0 is None:
            s = -1
            flags = F_F64                       # (the arena is float64 while the budget lasts)
        else:           # Tape.save_tensors, inline, for one or two 0-dim tensors
            s = tape.alen
            try:
                tape.arena[s] = v0
                if s1 is not None:
                    tape.arena[s + 1] = v1
            except IndexError:                  # the arena is full (as rarely as a check)
                tape._reserve(2)
                tape.arena[s] = v0
                if s1 is not None:
                    tape.arena[s + 1] = v1
            ver = s0._ver       # (note_saved's common cases, as save_tensors)
            if ver is None:
                s0._ver = [0, 64, serial]
            elif 1 < len(ver) < ver[1]:
                ver.append(serial)
            else:
                tape.note_saved(s0, serial)
            if s1 is None:
                tape.alen = s + 1
            else:
                tape.alen = s + 2
                ver = s1._ver
                if ver is None:
                    s1._ver = [0, 64, serial]
                elif 1 < len(ver) < ver[1]:
                    ver.append(serial)
                else:
                    tape.note_saved(s1, serial)
            tape.saver_row[serial] = row
            flags = _SAVED_F64
        packed = _PAIR_ROW.pack(op, a, b, s, tape.pair_sid, flags, serial)     # (Tape.append)
        try:
            tape.rows.frombytes(packed)
        except BufferError:     # a numpy view of the rows outlived a replay: detach from it
            tape.rows = array.array("q", tape.rows)
            tape.rows.frombytes(packed)
        tape.serial = serial + 1
        outs.append(_ref(t))
        tape.values.append(out)
        tape.held += 1
        t._node = row
    finally:
        lock.release()
    if hook.tracer is not None:
        hook.tracer.op(op, t, x, y, (), (), 0, 0, None)
    return t


_SAVE = {(): lambda x, y: [], ("x",): lambda x, y: [x], ("y",): lambda x, y: [y],
         ("x", "y"): lambda x, y: [x, y], ("y", "x"): lambda x, y: [y, x]}
_READS = {}


def reads_of(op):
    """For an op declared saves_reads: per grads (bit 0: x needs a gradient, bit 1: y), a
    function (x, y) -> the operands its formulas read (registry.Op.saved), what its row saves."""
    table = _READS.get(op)
    if table is None:
        if any("out" in OPS[op].saved(grads) for grads in (1, 2, 3)):
            raise TypeError(f"reads_of: {OPS[op].grad_fn} saves its output (record's save_out)")
        table = _READS[op] = tuple(_SAVE[OPS[op].saved(grads)] for grads in range(4))
    return table


def reads(op, x, y):
    """reads_of(op) for x and y (y may be an array operand, which needs no gradient)."""
    return reads_of(op)[(x._rg is True) + 2 * (getattr(y, "_rg", False) is True)](x, y)


def record_multi(op, out, inputs, saves=(), i0=0, scalars=()):
    """Record a node with any number of inputs (F_MULTI): inputs holds (tensor, role, param) or
    (tensor, role, param, shape) per input, shape being where its gradient arrives (default: its
    own). The rule runs once per input needing a gradient, reading role and param as iv[1], iv[2].
    saves are stored flat, unbroadcast; scalars as record's."""
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    live = 0
    for e in inputs:        # (a loop, not a list: this runs once per op)
        if e[0] is not None and e[0]._rg:
            live += 1
    if not live or not _MODE.enabled:
        t = _wrap(out)
        if hook.tracer is not None:
            hook.tracer.op_multi(op, t, inputs, scalars, i0)
        return t
    tape = TAPE
    with tape.lock:
        if (len(tape.outs) >= tape.limit or tape.alen + tape.ilen >= tape.alimit
                or tape.held >= tape.hlimit or out.dtype is not tape.last_dtype):
            tape.prepare(out)                   # (the checks inline, as record's)
        entries = [live]
        for e in inputs:
            v = e[0]
            if v is not None and v._rg:
                entries += (tape.var(v, e[3] if len(e) > 3 else v._a.shape), e[1], e[2])
        t = Tensor.__new__(Tensor)              # _wrap(out, True), inline
        t._a = out
        t._node = t._leafvar = -1
        t._rg = True
        t._grad = t._ver = t._base = t._views = None
        s = -1
        flags = F_MULTI | F_INTS
        if saves:
            s = tape.save_tensors(saves)
            flags |= F_SAVED
        t._node = tape.append(op, -1, -1, s, out.shape, i0, tape.save_int_list(entries), flags, t)
        if live < len(inputs):
            tape.keep_constants(t._node, {e[1]: (e[0]._a, e[3] if len(e) > 3 else None)
                                          for e in inputs if e[0] is not None and not e[0]._rg})
    if hook.tracer is not None:
        hook.tracer.op_multi(op, t, inputs, scalars, i0)
    return t


# numpy's floating-point warnings are off in forwards, as PyTorch gives inf and nan silently.
# The hot binary ops pay nothing for it: a filter ignores the warnings numpy raises from this
# module, and where the user made warnings errors, _quiet redoes the op with them off. Elsewhere
# ``with quiet():``, as np.errstate(all="ignore") but ~1 us faster, by numpy's context variable.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"jitgrad\.ops")
try:
    from numpy._core.umath import _extobj_contextvar as _NP_ERRSTATE, _make_extobj
    _NP_QUIET = _make_extobj(all="ignore")

    def quietly(fn, *args):
        """fn(*args) as ``with quiet():`` would run it, for the hot paths: 0.7 us less (no
        context manager object and its two method calls)."""
        token = _NP_ERRSTATE.set(_NP_QUIET)
        try:
            return fn(*args)
        finally:
            _NP_ERRSTATE.reset(token)

    class quiet:
        __slots__ = ("_token",)

        def __enter__(self):
            self._token = _NP_ERRSTATE.set(_NP_QUIET)

        def __exit__(self, *exc):
            _NP_ERRSTATE.reset(self._token)
except (ImportError, AttributeError, TypeError):    # numpy's private API moved: the public way
    def quiet():
        return np.errstate(all="ignore")

    def quietly(fn, *args):
        with np.errstate(all="ignore"):
            return fn(*args)


def _quiet(ufunc, a, b):
    try:
        return ufunc(a, b)
    except RuntimeWarning:
        with quiet():
            return ufunc(a, b)


def _arr(r):
    return r if type(r) is np.ndarray else np.asarray(r)


def c_order(a):
    """a, or a C-order copy of a strided one, for a sum: numpy adds a strided array's elements
    in memory order, a compiled replay (which holds every value in C order) in C order."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


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
        sa, sb = xa.shape, ya.shape
        if len(sb) < len(sa) and sa[len(sa) - len(sb):] == sb:
            return          # (y's dims are x's last ones, as a bias: no np.broadcast_shapes, 2 us)
        _broadcast_shape(sa, sb)


def _float_kernel(input, kernel):
    """PyTorch's error for an op whose CPU kernel has no integer version."""
    if input._a.dtype.kind != "f":
        raise NotImplementedError(f'"{kernel}" not implemented for '
                                  f"'{dtypes.scalar_name(input._a.dtype)}'")


def _check_tensor(v, name, pos, fn):
    if not isinstance(v, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not "
                        f"{type(v).__name__}")


def _constant_arg(fn, name, t):
    if t is not None and t._rg and is_grad_enabled():
        raise RuntimeError(f"The function '{fn}' is not differentiable with respect to argument "
                           f"'{name}'. This input cannot have requires_grad True.")


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


def _store_(t, value, where=Ellipsis):
    """t[where] = value in place, unrecorded (running statistics, renormalised embedding rows:
    PyTorch's no_grad writes); the version moves, so backwards that saved t refuse to run."""
    with TAPE.lock:
        t._a[where] = value
        TAPE.note_modified(t)
