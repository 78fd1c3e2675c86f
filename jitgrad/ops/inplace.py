"""In-place ops: the _inplace/_commit/rebase_views machinery, fill_, zero_, copy_, setitem
(CopySlices), in-place arithmetic for the optimizers (add_, mul_, addcmul_, ...) and the in-place
unary ops. PyTorch's version-counter and view rules are checked here, before anything is written.
"""
import builtins
import weakref

import numpy as np

from .. import dtypes
from ..engine import hook, registry
from ..engine.loop import SERIAL, WIDTH
from ..engine.registry import defop
from ..engine.tape import TAPE, _grad_mode as _MODE, is_grad_enabled
from ..tensor import Tensor, _to_array, _wrap
from ._samples import NonZero, Pos, _I, samples
from ._core import _broadcast_shape, _py_scalar, record, torch_names
from .elementwise import (ADD, DIV, DIV_SCALAR, MUL, MUL_SCALAR, SUB, abs, add, addcdiv, addcmul, clamp, div, exp, log, masked_fill, mul, neg,
                          reciprocal, relu, sigmoid, sqrt, sub, tanh, _clamp1, _clamp_max, _clamp_min, _clamp_scalar,
                          _tanh_eager)
from .shape import expand, to
from .indexing import (_consumed, _expand_items, _index_items, _put_x, _scatter, _setitem, _taken,
                       _with_count, getitem, scatter_formula)


@torch_names(methods=("masked_fill_",))
def masked_fill_(x, mask, value):
    m = mask._a if isinstance(mask, Tensor) else np.asarray(mask)
    shape = _broadcast_shape(x._a.shape, m.shape)
    if shape != x._a.shape:
        raise RuntimeError(f"output with shape {list(x._a.shape)} doesn't match the broadcast shape "
                           f"{list(shape)}")
    return _inplace(x, lambda: masked_fill(x, mask, value))


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

AS_STRIDED = defop("AsStridedBackward0", _scatter, x=scatter_formula)


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
        if r._node >= 0:
            _keep_old_values(x, r._node)
        np.copyto(x._a, r._a, casting="unsafe")
        TAPE.note_modified(x, r._node)
        if r._node >= 0:
            _commit(x, r)
    return x


def _keep_old_values(x, row=-1):
    """x's storage is about to be overwritten by a recorded op: the rows whose output the tape
    keeps in it (x's, its base's, its live views': what the formulas of a create_graph backward
    read as x, y or out) keep a copy of the value from before, as PyTorch saves original self;
    so does the row of the op writing it (row), where it keeps x as a constant (x needs no
    gradient: its value is what the other inputs' formulas read)."""
    base = x._base if x._base is not None else x
    values = TAPE.values
    for t in (base, *(ref() for ref in base._views or ())):
        if t is not None and t._node >= 0:
            v = values[t._node]
            if v is not None and np.may_share_memory(v, x._a):
                values[t._node] = v.copy()
    kept = TAPE.consts.get(row)
    if kept and builtins.any(np.may_share_memory(v, x._a) for v, _ in kept.values()):
        TAPE.keep_constants(row, {k: (v.copy() if np.may_share_memory(v, x._a) else v, shape)
                                  for k, (v, shape) in kept.items()})


def _set_node(t, r):
    """t becomes the output of r's node (r: a tensor just recorded, sharing t's values); its old
    row keeps no reference to it (a compaction would give it that row back: the new one reads
    the old row as an input, which keeps it as long as needed)."""
    old = t._node
    if old >= 0:
        ref = TAPE.outs[old]
        if ref is not None and ref() is t:
            TAPE.outs[old] = None
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
        TAPE.dirty[TAPE.rows[r._node * WIDTH + SERIAL]] = msg
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
    def method(self, *args, **kwargs):
        _check_no_partial_overlap(self, args)
        return _inplace(self, lambda: fn(self, *args, **kwargs))
    return method


FILL = defop("FillBackward0", None)   # the filled values no longer depend on the input
ZERO = defop("ZeroBackward0", None)


@torch_names(methods=("fill_",))
def fill_(x, value, _op=FILL):
    v = value.item() if isinstance(value, Tensor) else value
    return _inplace(x, lambda: record(_op, np.full(x._a.shape, v, x._a.dtype),
                                      x if x._node >= 0 else None, broadcast=False),
                    overlap_ok=True)


@torch_names(methods=("zero_",))
def zero_(x):
    return fill_(x, 0, ZERO)


def _copy(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # the old value of the destination (a) is overwritten: only the source (b) gets a gradient
    if b >= 0:
        for j in range(n):
            g[b + j] += g[o + j]


COPY = defop("CopyBackwards", _copy, 2, x=lambda g: None, y=lambda g: g)


@torch_names(methods=("copy_",))
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
# x keeps its gradient where nothing was written (as put's x); the value gets g's there
COPY_SLICES = defop("CopySlices", _setitem, 2, x=_put_x, y=_taken)
INDEX_PUT = defop("IndexPutBackward0", _setitem, 2, x=_put_x, y=_taken)
COPY_WHOLE = defop("CopyBackwards", _setitem, 2, x=_put_x, y=_taken)
FILL_WHOLE = defop("FillBackward3", _setitem, 2, x=_put_x, y=_taken)


@torch_names("__setitem__")
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
        _keep_old_values(x)
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
def _same_inplace(x, o, ufunc):
    """x <ufunc>= o, unrecorded, where o is a tensor of x's shape and dtype and nothing records
    (an optimizer's update): _start_inplace's, _write_inplace's and _set_values' work in one
    call, ~1 us less per parameter. None where another case applies, for the general path (and
    its errors: o aliasing x, x's elements aliasing each other, a tracer watching)."""
    a = x._a
    b = o._a
    if (b.shape != a.shape or (b.dtype is not a.dtype and b.dtype != a.dtype) or a.dtype.kind != "f"
            or (o._ver is x._ver and o._ver is not None)
            or hook.tracer is not None or 0 in a.strides):
        return None
    if _MODE.enabled and (x._rg or o._rg or (x._base is not None and x._base._rg)):
        return None
    lock = TAPE.lock
    lock.acquire()
    try:
        ufunc(a, b, out=a)
        TAPE.note_modified(x)
    finally:
        lock.release()
    return x


def _write_inplace(x, fn, *operands):
    """fn(*arrays, out=x's storage): the no-recording path of an in-place op."""
    a = x._a
    if len(operands) == 1:       # an optimizer's case: a tensor like x, nothing to check
        o = operands[0]
        if isinstance(o, Tensor) and o._a.shape == a.shape and o._a.dtype == a.dtype:
            b = o._a
            return _set_values(x, lambda: fn(a, b))
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


@torch_names("__iadd__", methods=("add_",))
def add_(x, other, *, alpha=1):
    if alpha == 1 and isinstance(other, Tensor) and _same_inplace(x, other, np.add) is x:
        return x
    if _start_inplace(x, other):
        return _inplace(x, lambda: add(x, other, alpha=alpha))
    if hook.tracer is not None:
        hook.tracer.inplace(x, ADD, other, alpha)
    if alpha != 1:
        return _write_inplace(x, lambda a, o: np.add(a, o * _scalar_of(alpha, a), out=a,
                                                       casting="unsafe"), other)
    return _write_inplace(x, lambda a, o: np.add(a, o, out=a, casting="unsafe"), other)


@torch_names("__isub__", methods=("sub_",))
def sub_(x, other, *, alpha=1):
    if alpha == 1 and isinstance(other, Tensor) and _same_inplace(x, other, np.subtract) is x:
        return x
    if _start_inplace(x, other):
        return _inplace(x, lambda: sub(x, other, alpha=alpha))
    if hook.tracer is not None:
        hook.tracer.inplace(x, SUB, other, alpha)
    return _write_inplace(x, lambda a, o: np.subtract(a, o * _scalar_of(alpha, a) if alpha != 1
                                                      else o, out=a, casting="unsafe"), other)


@torch_names("__imul__", methods=("mul_",))
def mul_(x, other):
    if isinstance(other, Tensor) and _same_inplace(x, other, np.multiply) is x:
        return x
    if _start_inplace(x, other):
        return _inplace(x, lambda: mul(x, other))
    if hook.tracer is not None:
        hook.tracer.inplace(x, MUL if isinstance(other, Tensor) else MUL_SCALAR, other)
    return _write_inplace(x, lambda a, o: np.multiply(a, o, out=a, casting="unsafe"), other)


@torch_names("__itruediv__", methods=("div_",))
def div_(x, other, *, rounding_mode=None):
    if _start_inplace(x, other) or rounding_mode is not None or x._a.dtype.kind != "f":
        return _inplace(x, lambda: div(x, other, rounding_mode=rounding_mode))
    if hook.tracer is not None:
        hook.tracer.inplace(x, DIV if isinstance(other, Tensor) else DIV_SCALAR, other)
    return _write_inplace(x, lambda a, o: np.divide(a, o, out=a, casting="unsafe"), other)


@torch_names(methods=("addcmul_",))
def addcmul_(x, tensor1, tensor2, *, value=1):
    if _start_inplace(x, tensor1, tensor2):
        return _inplace(x, lambda: addcmul(x, tensor1, tensor2, value=value))
    return _write_inplace(x, lambda a, b, c: np.add(a, _scalar_of(value, a) * (b * c), out=a,
                                                    casting="unsafe"), tensor1, tensor2)


@torch_names(methods=("addcdiv_",))
def addcdiv_(x, tensor1, tensor2, *, value=1):
    if _start_inplace(x, tensor1, tensor2):
        return _inplace(x, lambda: addcdiv(x, tensor1, tensor2, value=value))
    return _write_inplace(x, lambda a, b, c: np.add(a, _scalar_of(value, a) * (b / c), out=a,
                                                    casting="unsafe"), tensor1, tensor2)


@torch_names(methods=("clamp_", "clip_"))
def clamp_(x, min=None, max=None):
    if _start_inplace(x, min, max) or isinstance(min, Tensor) or isinstance(max, Tensor):
        return _inplace(x, lambda: clamp(x, min, max))
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if x._a.dtype.kind != "f":
        return _write_inplace(x, lambda a, lo, hi: np.clip(a, lo, hi, out=a), min, max)
    bounds = [v for v in (min, max) if v is not None]
    if hook.tracer is not None:
        hook.tracer.inplace_unary(x, _clamp1 if len(bounds) == 2 else _clamp_min if max is None
                                  else _clamp_max, bounds)
    return _write_inplace(x, lambda a, lo, hi: _clamp_scalar(a, lo, hi, out=a), min, max)


def _unary_inplace(fn, ufunc):
    def method(x):
        if _start_inplace(x) or x._a.dtype.kind != "f":
            return _inplace(x, lambda: fn(x))
        return _write_inplace(x, lambda a: ufunc(a, out=a))
    method.__name__ = fn.__name__ + "_"
    return method


sqrt_ = torch_names(methods=("sqrt_",))(_unary_inplace(sqrt, np.sqrt))
exp_ = torch_names(methods=("exp_",))(_unary_inplace(exp, np.exp))
log_ = torch_names(methods=("log_",))(_unary_inplace(log, np.log))
neg_ = torch_names(methods=("neg_",))(_unary_inplace(neg, np.negative))
abs_ = torch_names(methods=("abs_",))(_unary_inplace(abs, np.abs))
tanh_ = torch_names(methods=("tanh_",))(_unary_inplace(tanh, _tanh_eager))   # (tanh's own, as tanh)
reciprocal_ = torch_names(methods=("reciprocal_",))(_unary_inplace(reciprocal, np.reciprocal))
relu_ = torch_names(methods=("relu_",))(_unary_inplace(relu, lambda a, out: np.maximum(a, 0, out=out)))


@torch_names(methods=("sigmoid_",))
def sigmoid_(x):
    return _inplace(x, lambda: sigmoid(x))


def _on_copy(fn):
    """fn applied in place to a non-leaf copy of x, for the samples of in-place ops."""
    def f(x, *args, **kwargs):
        y = mul(x, 1.0)
        return fn(y, *args, **kwargs)
    f.__name__ = "_on_copy_" + fn.__name__
    return f


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
