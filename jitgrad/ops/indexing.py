"""Indexing: getitem, gather, index_select, and the strided views and copies built on the same
layout code (narrow, select, split, chunk, unbind, repeat, contiguous); reorderings (flip, roll,
sort, argsort, topk), tril/triu, pad and embedding. Their rules gather or scatter by saved positions.
"""
import builtins
import math
import warnings

import numpy as np

from ..engine import hook
from ..engine.loop import I0, I1, SHAPE_ID
from ..engine.registry import defop
from ..engine.replay import P_C, P_I0, P_K, P_OSH, P_ROW, P_XSH, needs, save_two
from ..tensor import Tensor, _check_dim, _wrap
from ..creation import int_tuple
from ..dtypes import scalar_name
from ._samples import Given, _I, _IDX, kinks, samples
from ._core import (_ValuesIndices, _arr, _broadcast_shape, _dims, _needs_grad, _store_, quiet, record,
                    return_types, torch_names)
from .elementwise import where
from .shape import CLONE, _link_view, _skip_record, _view_of


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
    fl = row[I0]
    for j in range(n):
        g = go[0] if fl & 1 else go[j]
        if fl & 2:
            g = g * sv[j]
        ga[iv[1 + j]] += g


def _setitem(go, ga, gb, sv, iv, do, da, db, row):
    # out = x with the positions iv[1 .. n] overwritten by value (flattened in region order):
    # value's gradient is go at those positions; x's is go everywhere else. I0 bit 0: value was
    # added instead (put(accumulate=True)), so x's gradient is go everywhere.
    n = iv[0]
    for k in range(gb.size):
        gb[k] += go[iv[1 + k]]
    if ga.size and row[I0] & 1:
        for j in range(ga.size):
            ga[j] += go[j]
    elif ga.size:
        written = np.zeros(go.size, np.uint8)
        for k in range(n):
            written[iv[1 + k]] = 1
        for j in range(ga.size):
            if written[j] == 0:
                ga[j] += go[j]


# ---- differentiable formulas: the rules' positions (node.ints) as an int64 tensor; gathering
# (take) and scatter-adding into zeros (put(accumulate=True)) are each other's VJP
def positions(node):
    """The flat positions of a _scatter/_setitem row (its int data: count, positions)."""
    ints = node.ints
    return _wrap(np.array(ints[1:1 + ints[0]], np.int64))


def _strided_positions(node):
    """The flat positions in x of a _strided row's output elements, in output order."""
    ints = node.ints
    pos = np.full((), ints[0], np.int64)
    for d, n in enumerate(node.shape):
        pos = pos[..., None] + np.arange(n, dtype=np.int64) * ints[1 + d]
    return _wrap(pos.reshape(-1))


def _zeros(shape, like):
    return _wrap(np.zeros(shape, like._a.dtype))


def scatter_formula(g, x, node):
    """The VJP of a _scatter row (out gathered x's elements): g scatter-added into zeros shaped
    as x. I0 bit 0: g is one scalar for every position; bit 1: weighted by the saved values
    (constants: the gradient is linear in g)."""
    fl = node.i0
    n = int(node.ints[0])
    g = g.reshape(-1)
    if fl & 1:
        g = g.expand(n)
    if fl & 2:
        g = g * _wrap(np.array(node.saved[:n]))
    return put(_zeros(x.shape, g), positions(node), g, True)


def _strided_formula(g, x, node):
    return put(_zeros(x.shape, g), _strided_positions(node), g.reshape(-1), True)


def _put_x(g, node):
    """put's x keeps its elements where nothing was written (or everywhere, accumulating)."""
    if node.i0 & 1:
        return g
    pos = positions(node)
    return put(g, pos, _zeros(tuple(pos.shape), g))


def _taken(g, node):
    """The VJP of the written values of a _setitem row: g at their positions."""
    return take(g, positions(node))


def _fwd_strided(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # a strided view (a _strided row): out's element (i_0, .., i_k) is x's flat element
    # pints[k] + sum_d i_d * pints[k + 1 + d]
    os = prog[j, P_OSH]
    nd = shapes[os]
    k = prog[j, P_K]
    idx = np.zeros(nd, np.int64)
    p = pints[k]
    for e in range(out.size):
        out[e] = x[p]
        d = nd - 1
        while d >= 0:
            idx[d] += 1
            p += pints[k + 1 + d]
            if idx[d] < shapes[os + 1 + d]:
                break
            p -= pints[k + 1 + d] * shapes[os + 1 + d]
            idx[d] = 0
            d -= 1


def _fwd_gathered(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # x's elements at the flat positions of the int data [count, positions...], which depend
    # only on shapes and constants (an index tensor from inside the function or among its
    # arguments fails the trace: see _constant_index)
    k = prog[j, P_K] + 1
    for e in range(out.size):
        out[e] = x[pints[k + e]]


_STRIDED = needs(_fwd_strided, "x")
_GATHERED = needs(_fwd_gathered, "x", inline=True)
SELECT = defop("SelectBackward0", _strided, forward=_STRIDED, x=_strided_formula)
SLICE = defop("SliceBackward0", _strided, forward=_STRIDED, x=_strided_formula)
ALIAS = defop("AliasBackward0", _strided, forward=_STRIDED, x=_strided_formula)
UNSQUEEZE_INDEX = defop("UnsqueezeBackward0", _strided, forward=_STRIDED, x=_strided_formula)
INDEX = defop("IndexBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
GATHER = defop("GatherBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
INDEX_SELECT = defop("IndexSelectBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
TAKE = defop("TakeBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
def _fwd_setitem(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # a _setitem row's forward: x (or, without x, the fill value cv[0]) with y's elements (or,
    # without y, cv[0]) written in order (I0 bit 0: added) at the positions of the int data
    k = prog[j, P_K]
    fill = cv[prog[j, P_C]]
    if x.size == out.size:
        for e in range(out.size):
            out[e] = x[e]
    else:
        for e in range(out.size):
            out[e] = fill
    add = prog[j, P_I0] & 1
    for q in range(pints[k]):
        p = pints[k + 1 + q]
        val = fill if y.size == 0 else y[q if y.size > 1 else 0]     # (a 0-d src: broadcast)
        if add:
            out[p] += val
        else:
            out[p] = val


_SETITEM = needs(_fwd_setitem, "c")
PUT = defop("PutBackward0", _setitem, 2, forward=_SETITEM, x=_put_x, y=_taken)
_BASIC_OPS = {"SelectBackward0": SELECT, "SliceBackward0": SLICE, "AliasBackward0": ALIAS,
              "UnsqueezeBackward0": UNSQUEEZE_INDEX}


def _constant_index(*keys):
    """While a step is traced: a replay reuses the positions read from an index tensor now
    (the trace fails or guards it, see Trace.index_tensor)."""
    tracer = hook.tracer
    if tracer is None:
        return
    for key in keys:
        for k in key if isinstance(key, (tuple, list)) else (key,):
            if isinstance(k, Tensor):
                tracer.index_tensor(k)


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


@torch_names("__getitem__")
def getitem(x, key):
    """x[key], as PyTorch indexes: basic indices give a view (Select/Slice/Unsqueeze/Alias
    backward), integer arrays and masks a copy (IndexBackward0) whose gradient scatter-adds."""
    a = x._a
    _constant_index(key)
    items = _expand_items(_index_items(key), a.shape)
    basic = builtins.all(k is None or isinstance(k, (builtins.int, slice)) and
                         not isinstance(k, builtins.bool) for k in items)
    npkey = tuple(items)
    if basic:
        out = a[npkey + (Ellipsis,)]        # a view even when every index is an int
        if _skip_record(x):
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
    if _skip_record(x):
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


@torch_names("gather")
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
    if _skip_record(x):
        return _wrap(out)
    _constant_index(index)
    return record(GATHER, out, x, ints=_with_count(pos), broadcast=False)


@torch_names("index_select")
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
    if _skip_record(x):
        return _wrap(out)
    _constant_index(index)
    sel = np.expand_dims(idx, tuple(k for k in range(len(shape)) if k != d))
    sel = np.broadcast_to(sel, shape[:d] + (idx.size,) + shape[d + 1:])
    return record(INDEX_SELECT, out, x, ints=_with_count(_flat_positions(shape, d, sel)),
                  broadcast=False)


def _long_index(index, fn):
    if not isinstance(index, Tensor):
        raise TypeError(f"{fn}(): argument 'index' (position 1) must be Tensor, not "
                        f"{type(index).__name__}")
    if index._a.dtype != np.int64:
        raise RuntimeError(f"{fn}(): Expected a long tensor for index, but got "
                           f"{index.dtype.tensor_type[:-6]}")
    return index._a


def _flat_index(idx, n):
    """idx as flat positions in a tensor of n elements (negative ones count from the end)."""
    if idx.size:
        bad = idx[(idx < -n) | (idx >= n)]
        if bad.size:
            raise IndexError(f"out of range: tried to access index {bad.reshape(-1)[0]} on a "
                             f"tensor of {n} elements.")
    return idx.reshape(-1) % builtins.max(n, 1)


@torch_names("take")
def take(x, index):
    """x's elements at these flat positions, shaped as index (TakeBackward0: a gather)."""
    pos = _flat_index(_long_index(index, "take"), x._a.size)
    out = _arr(x._a.reshape(-1)[pos].reshape(index._a.shape))
    if _skip_record(x):
        return _wrap(out)
    _constant_index(index)
    return record(TAKE, out, x, ints=_with_count(pos), broadcast=False)


@torch_names("put", inplace=("put_",))
def put(x, index, source, accumulate=False):
    """A copy of x with source's elements written (accumulate: added) at these flat positions."""
    idx = _long_index(index, "put_")
    if not isinstance(source, Tensor):
        raise TypeError(f"put(): argument 'source' (position 2) must be Tensor, not "
                        f"{type(source).__name__}")
    if source._a.dtype != x._a.dtype:
        raise RuntimeError(f"put_(): self and source expected to have the same dtype, but got "
                           f"self.dtype = {x.dtype.tensor_type[:-6]} and source.dtype = "
                           f"{source.dtype.tensor_type[:-6]}")
    if source._a.size != idx.size:
        raise IndexError(f"put_(): Expected source and index to have the same number of elements, "
                         f"but got source.numel() = {source._a.size}, index.numel() = {idx.size}")
    pos = _flat_index(idx, x._a.size)
    out = x._a.copy()
    flat = out.reshape(-1)
    if accumulate:
        np.add.at(flat, pos, source._a.reshape(-1))
    else:
        flat[pos] = source._a.reshape(-1)
    if _skip_record(x, source):
        return _wrap(out)
    _constant_index(index)
    return record(PUT, out, x, source, ints=_with_count(pos), i0=1 if accumulate else 0,
                  broadcast=False, scalars=(0,))


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
samples(take, ((3, 4), _I(0, 5, 11, 5)), ((3, 4), _wrap(np.array([[1, -1], [2, 2]]))),
        ((), _I(0, 0)), ((3,), _I()))
samples(put, ((3, 4), _I(0, 5, -1), (3,)), ((3, 4), _I(1, 1, 2), (3,), True),
        ((3, 4), _wrap(np.array([[1, 2]])), (2, 1)), ((3,), _I(2, 2), (2,), {"accumulate": True}))
samples(index_select, ((3, 4), 0, _I(0, 2, 2)), ((3, 4), -1, _I(3, 1)), ((3,), 0, _I(1)))


# ---- more views and copies: narrow, select, split, chunk, unbind, repeat, contiguous
SPLIT = defop("SplitBackward0", _strided, forward=_STRIDED, x=_strided_formula)
SPLIT_SIZES = defop("SplitWithSizesBackward0", _strided, forward=_STRIDED, x=_strided_formula)
UNBIND = defop("UnbindBackward0", _strided, forward=_STRIDED, x=_strided_formula)
REPEAT = defop("RepeatBackward0", _scatter, forward=_GATHERED, x=scatter_formula)


def _strided_view(x, items, op, multi=None):
    """A view of x through basic index components (already checked), recorded with op
    (multi: its output number, for ops returning several views)."""
    a = x._a
    items = _expand_items(items, a.shape)
    out = a[tuple(items) + (Ellipsis,)]
    if _skip_record(x):
        t = _wrap(out)
        _link_view(t, x, op, multi)
        return t
    offset, strides, _ = _basic_layout(a.shape, items, False)
    return _view_of(op, out, x, ints=[offset] + strides, multi=multi)


@torch_names("narrow")
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
    if start < 0:
        start += a.shape[d]
    if start + length > a.shape[d]:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                           f"({a.shape[d]}).")
    return _strided_view(x, [slice(None)] * d + [slice(start, start + length)], SLICE)


@torch_names("select")
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


@torch_names("split")
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


@torch_names("chunk")
def chunk(x, chunks, dim=0):
    a = x._a
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    if a.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    n = a.shape[_check_dim(dim, a.ndim)]
    return split(x, builtins.max(-(-n // chunks), 1 if n else 0), dim)


@torch_names("unbind")
def unbind(x, dim=0):
    a = x._a
    if a.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    d = _check_dim(dim, a.ndim)
    return tuple(_strided_view(x, [slice(None)] * d + [i], UNBIND, i) for i in range(a.shape[d]))


@torch_names(methods=("repeat",))
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
    if _skip_record(x):
        return _wrap(out)
    pos = np.tile(np.arange(a.size, dtype=np.int64).reshape(shape), sizes)
    return record(REPEAT, out, x, ints=_with_count(pos), broadcast=False)


@torch_names(methods=("contiguous",))
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
FLIP = defop("FlipBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
ROLL = defop("RollBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
def _fwd_sort(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # sort/topk values along dim cv[0] (cv[1] = 1: descending): the first out-size-along-dim
    # elements of each line in a stable order with nan largest, as the eager _argsort; the
    # row's int data [count, flat positions...] gets their positions
    xs = prog[j, P_XSH]
    r = prog[j, P_ROW]
    at = rows[r, I1] if r >= 0 else 0
    if shapes[xs] == 0:
        out[0] = x[0] if pints[prog[j, P_K]] else 0
        return
    d = int(cv[prog[j, P_C]])
    descending = cv[prog[j, P_C] + 1] != 0
    n = shapes[xs + 1 + d]
    m = shapes[prog[j, P_OSH] + 1 + d]
    inner = 1
    for q in range(d + 1, shapes[xs]):
        inner *= shapes[xs + 1 + q]
    if out.size == 0:
        return
    line = np.empty(n, x.dtype)
    for o in range(x.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            for q in range(n):
                line[q] = x[base + (n - 1 - q if descending else q) * inner]
            order = np.argsort(line, kind="mergesort")
            for q in range(m):
                k = n - 1 - order[n - 1 - q] if descending else order[q]
                e = (o * m + q) * inner + i
                out[e] = x[base + k * inner]
                if r >= 0:
                    bints[at + 1 + e] = base + k * inner


SORT = defop("SortBackward0", _scatter, forward=needs(_fwd_sort, "x,cc"), x=scatter_formula)
TOPK = defop("TopkBackward0", _scatter, forward=needs(_fwd_sort, "x,cc"), x=scatter_formula)
PAD = defop("ConstantPadNdBackward0", _setitem, 2, forward=_SETITEM, y=_taken)   # x is input b: gb[k] += go[pos[k]]
return_types.sort = type("sort", (_ValuesIndices,), {"__slots__": (), "_name": "sort"})
return_types.topk = type("topk", (_ValuesIndices,), {"__slots__": (), "_name": "topk"})


def _gathered(op, x, positions, out_shape, scalars=()):
    """A copy of x's elements at these flat positions, shaped out_shape (scalars: what the
    forward kernel reads)."""
    pos = np.asarray(positions, np.int64).reshape(-1)
    out = _arr(x._a.reshape(-1)[pos].reshape(out_shape) if pos.size else
               np.zeros(out_shape, x._a.dtype))
    if _skip_record(x):
        return _wrap(out)
    return record(op, out, x, ints=_with_count(pos), broadcast=False, scalars=scalars)


def _arange_like(a):
    return np.arange(a.size, dtype=np.int64).reshape(a.shape)


@torch_names("flip")
def flip(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    axes = _dims(dims, x._a.ndim)
    return _gathered(FLIP, x, np.flip(_arange_like(x._a), axes), x._a.shape)


@torch_names("roll")
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


@torch_names("sort")
def sort(x, dim=-1, descending=False, stable=False):
    a = x._a
    d = _check_dim(dim, a.ndim)
    if a.ndim == 0:
        return return_types.sort(_gathered(SORT, x, [0], (), (0, 0)), _wrap(np.zeros((), np.int64)))
    idx = _argsort(a, d, descending)
    pos = _flat_positions(a.shape, d, idx)
    return return_types.sort(_gathered(SORT, x, pos, a.shape, (d, descending)),
                             _wrap(_arr(idx.astype(np.int64))))


@torch_names("argsort")
def argsort(x, dim=-1, descending=False, stable=False):
    return sort(x, dim, descending, stable).indices


@torch_names("topk")
def topk(x, k, dim=-1, largest=True, sorted=True):
    if not isinstance(k, (builtins.int, np.integer)):
        raise TypeError(f"topk(): argument 'k' (position 2) must be int, not {type(k).__name__}")
    a = x._a
    d = _check_dim(dim, a.ndim)
    n = a.shape[d] if a.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    if a.ndim == 0:
        return return_types.topk(_gathered(TOPK, x, [0] * k, (), (0, 0)), _wrap(np.zeros((), np.int64)))
    idx = np.take(_argsort(a, d, largest), np.arange(k), axis=d)
    pos = _flat_positions(a.shape, d, idx)
    return return_types.topk(_gathered(TOPK, x, pos, idx.shape, (d, largest)),
                             _wrap(_arr(idx.astype(np.int64))))


def _triangle_rule(g, o, a, b, n, sv, s, rows, i, shapes, ints, k, va, vb):
    # tril (I1 = 1) or triu of the last two dims about diagonal I0: the gradient where x was kept
    # (selected: an inf or nan elsewhere stays out)
    sid = rows[i, SHAPE_ID]
    nd = shapes[sid]
    rows_n = shapes[sid + nd - 1]
    cols = shapes[sid + nd]
    diag = rows[i, I0]
    lower = rows[i, I1] == 1
    for e in range(n):
        c = e % cols
        r = (e // cols) % rows_n
        if (c - r <= diag) if lower else (c - r >= diag):
            g[a + e] += g[o + e]


def _fwd_triangle(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # tril (cv[0] = 1) or triu of the last two dims about diagonal I0: x where kept, else 0
    xs = prog[j, P_XSH]
    nd = shapes[xs]
    rows_n = shapes[xs + nd - 1]
    cols = shapes[xs + nd]
    diag = prog[j, P_I0]
    lower = cv[prog[j, P_C]] != 0
    for e in range(out.size):
        c = e % cols
        r = (e // cols) % rows_n
        keep = c - r <= diag if lower else c - r >= diag
        out[e] = x[e] if keep else 0


TRIL = defop("TrilBackward0", _triangle_rule, forward=needs(_fwd_triangle, "x,c"),
             x=lambda g, node: g.tril(node.i0))
TRIU = defop("TriuBackward0", _triangle_rule, forward=needs(_fwd_triangle, "x,c"),
             x=lambda g, node: g.triu(node.i0))


def _triangle(op, keep):
    def f(x, diagonal=0):
        if not isinstance(diagonal, (builtins.int, np.integer)):
            raise TypeError(f"{f.__name__}(): argument 'diagonal' (position 1) must be int, not "
                            f"{type(diagonal).__name__}")
        a = x._a
        if a.ndim < 2:
            raise RuntimeError(f"{f.__name__}: input tensor must have at least 2 dimensions")
        out = _arr(keep(a, diagonal))
        if _skip_record(x):
            return _wrap(out)
        return record(op, out, x, i0=builtins.int(diagonal), i1=builtins.int(op == TRIL), broadcast=False,
                      scalars=(op == TRIL,))
    f.__name__ = keep.__name__
    return f


tril = torch_names("tril")(_triangle(TRIL, np.tril))
triu = torch_names("triu")(_triangle(TRIU, np.triu))


def pad(input, pad, mode="constant", value=None):
    """F.pad; negative padding crops."""
    if mode != "constant":
        return _pad_nonconstant(input, pad, mode)
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
    if _skip_record(x):
        return _wrap(out)
    pos = np.arange(out.size, dtype=np.int64).reshape(shape)[tuple(region)]
    return record(PAD, out, None, x, ints=_with_count(pos), broadcast=False,
                  scalars=(0 if value is None else value,))


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


# ---- embedding: rows of the weight picked by an index tensor
EMBEDDING = defop("EmbeddingBackward0", _scatter, 1, forward=_GATHERED, x=scatter_formula)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of weight picked by the integer input; padding_idx's row gets no gradient. max_norm
    first rescales (in place, unrecorded) each looked-up row whose norm_type-norm exceeds it;
    scale_grad_by_freq divides each row's gradient by how often the input picks it."""
    if sparse:
        raise NotImplementedError("embedding: sparse gradients (sparse=True) are not supported; "
                                  "use sparse=False (the same values, as a dense gradient)")
    idx = input._a
    if idx.dtype.kind not in "iu":
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following "
                           f"scalar types: Long, Int; but got jitgrad.{input.dtype.tensor_type} "
                           "instead (while checking arguments for embedding)")
    if weight._a.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    n, d = weight._a.shape
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= n
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    if max_norm is not None:
        _embedding_renorm_(weight, idx, max_norm, norm_type)
    out = _arr(weight._a[idx])
    if _skip_record(weight):
        return _wrap(out)
    _constant_index(input)
    pos = (idx.astype(np.int64)[..., None] * d + np.arange(d, dtype=np.int64)).reshape(-1)
    if padding_idx is None and not scale_grad_by_freq:
        return record(EMBEDDING, out, weight, ints=_with_count(pos), broadcast=False)
    flat = idx.reshape(-1)
    factor = np.ones(flat.shape, weight._a.dtype)
    if scale_grad_by_freq:
        factor /= np.bincount(flat, minlength=n)[flat]
    if padding_idx is not None:
        factor[flat == padding_idx] = 0
    return record(EMBEDDING, out, weight, saves=[np.repeat(factor, d)], ints=_with_count(pos), i0=2,
                  broadcast=False)


def _embedding_renorm_(weight, idx, max_norm, norm_type):
    """PyTorch's embedding_renorm_: each distinct picked row with norm > max_norm is multiplied
    by max_norm / (norm + 1e-7)."""
    rows = np.unique(idx)
    w = weight._a[rows]
    with quiet():
        norms = np.linalg.norm(w, ord=norm_type, axis=1).astype(np.float64)
        big = norms > max_norm
        if big.any():       # the scale is cast to the weight's dtype first, as in PyTorch
            scale = (max_norm / (norms[big] + 1e-7)).astype(w.dtype)
            _store_(weight, w[big] * scale[:, None], rows[big])


samples(embedding, (_IDX, (5, 3)), (_wrap(np.array(3, np.int64)), (5, 2)))
kinks(embedding, (_IDX, (5, 3), 0), (_IDX, (5, 3), -1))      # padding_idx: no gradient, on purpose


# ======================= scatter, scatter_add, scatter_reduce ===================================
# scatter writes src (or a number) at the positions index names along dim: a _setitem row (x the
# input, y the src elements in index's shape); scatter_add adds them (I0 bit 0); scatter_reduce
# combines them, its row saving x, src and out, which its kernel and formulas read.
SCATTER = defop("ScatterBackward0", _setitem, 2, forward=_SETITEM, x=_put_x, y=_taken)
SCATTER_VALUE = defop("ScatterBackward1", _setitem, forward=_SETITEM, x=_put_x)
SCATTER_ADD = defop("ScatterAddBackward0", _setitem, 2, forward=_SETITEM, x=_put_x, y=_taken)


def _scatter_positions(fn, x, dim, index, src=None):
    """Check scatter's arguments as PyTorch does; returns the dim and the flat positions in x of
    index's elements."""
    a = x._a
    d = _check_dim(dim, a.ndim)
    if not isinstance(index, Tensor) or index._a.dtype.kind not in "iu":
        raise RuntimeError(f"{fn}(): Expected dtype int64 for index")
    idx = index._a
    if isinstance(src, Tensor) and src._a.dtype != a.dtype:
        raise RuntimeError(f"{fn}(): Expected self.dtype to be equal to src.dtype")
    if idx.ndim != builtins.max(a.ndim, 1) and idx.size:
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    if isinstance(src, Tensor) and idx.ndim != builtins.max(src._a.ndim, 1) and idx.size:
        raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
    shape = a.shape if a.ndim else (1,)
    if idx.size and (builtins.any(i > s for k, (i, s) in enumerate(zip(idx.shape, shape)) if k != d) or
                     (isinstance(src, Tensor) and builtins.any(
                         i > s for i, s in zip(idx.shape, src._a.shape if src._a.ndim else (1,))))):
        tail = f" and to be no larger size than src {list(src._a.shape)}" if isinstance(src, Tensor) else ""
        raise RuntimeError(f"Expected index {list(idx.shape)} to be no larger than self {list(a.shape)} "
                           f"apart from dimension {d}{tail}")
    _check_bounds(idx, shape[d], d)
    return d, _flat_positions(shape, d, idx.reshape(idx.shape if a.ndim else (-1,)))


def _src_used(src, index):
    """The elements of src scatter reads: its leading block of index's shape."""
    if tuple(src.shape) == tuple(index.shape) or src._a.ndim == 0:
        return src
    return getitem(src, tuple(slice(0, n) for n in index._a.shape))


@torch_names("scatter", inplace=("scatter_",))
def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    if src is None and value is None:
        raise TypeError("scatter() missing 1 required positional argument: 'src' or 'value'")
    if src is None:
        src = value
    if reduce is not None and reduce not in ("add", "multiply"):
        raise RuntimeError("reduce argument must be either add or multiply.")
    d, pos = _scatter_positions("scatter", input, dim, index, src)
    tensor_src = isinstance(src, Tensor)
    used = _src_used(src, index) if tensor_src else None
    values = used._a.reshape(-1) if tensor_src else np.full(pos.size, src, input._a.dtype)
    out = input._a.copy()
    flat = out.reshape(-1)
    if reduce is not None:
        # the deprecated reduce= of scatter: PyTorch has no derivative for it
        (np.add if reduce == "add" else np.multiply).at(flat, pos.reshape(-1), values.astype(out.dtype))
        return _wrap(out)
    flat[pos.reshape(-1)] = values
    if _skip_record(input, used):
        return _wrap(out)
    _constant_index(index)
    if tensor_src:
        return record(SCATTER, out, input, used, ints=_with_count(pos), broadcast=False, scalars=(0,))
    return record(SCATTER_VALUE, out, input, ints=_with_count(pos), broadcast=False, scalars=(src,))


@torch_names("scatter_add", inplace=("scatter_add_",))
def scatter_add(input, dim, index, src):
    d, pos = _scatter_positions("scatter_add", input, dim, index, src)
    used = _src_used(src, index)
    out = input._a.copy()
    np.add.at(out.reshape(-1), pos.reshape(-1), used._a.reshape(-1))
    if _skip_record(input, used):
        return _wrap(out)
    _constant_index(index)
    return record(SCATTER_ADD, out, input, used, ints=_with_count(pos), i0=1, broadcast=False,
                  scalars=(0,))


# ---- index_add, index_copy, index_fill, index_put, masked_scatter: a copy of input with values
# written (or added) at flat positions, as put: one _setitem row each, under PyTorch's name
INDEX_ADD = defop("IndexAddBackward0", _setitem, 2, forward=_SETITEM, x=_put_x, y=_taken)
INDEX_COPY = defop("IndexCopyBackward0", _setitem, 2, forward=_SETITEM, x=_put_x, y=_taken)
INDEX_FILL = defop("IndexFillBackward0", _setitem, forward=_SETITEM, x=_put_x)
INDEX_FILL_TENSOR = defop("IndexFillBackward1", _setitem, 2, forward=_SETITEM, x=_put_x, y=_taken)
INDEX_PUT = defop("IndexPutBackward0", _setitem, 2, forward=_SETITEM, x=_put_x, y=_taken)
MASKED_SCATTER = defop("MaskedScatterBackward0", _setitem, 2, forward=_SETITEM, x=_put_x, y=_taken)


def _written(op, x, pos, source=None, value=0.0, accumulate=False, index=None):
    """A copy of x with source's elements (in pos order), or the number value, written at the flat
    positions pos (accumulate: added)."""
    out = x._a.copy()
    flat = out.reshape(-1)
    values = source._a.reshape(-1) if source is not None else value
    if accumulate:
        np.add.at(flat, pos, values)
    else:
        flat[pos] = values
    if _skip_record(x, source):
        return _wrap(out)
    _constant_index(index)
    return record(op, out, x, source, ints=_with_count(pos), i0=1 if accumulate else 0,
                  broadcast=False, scalars=(value,))


def _along(x, dim, index):
    """index (a vector or a scalar) along dim of x: (dim, x's shape with at least one dim, the
    index as int64 positions along dim)."""
    shape = x._a.shape if x._a.ndim else (1,)
    return _check_dim(dim, x._a.ndim), shape, index._a.reshape(-1).astype(np.int64)


def _slices_at(shape, d, idx):
    """Flat positions of the slices idx selects along dim d, in (outer, idx, inner) order: the
    order of a source whose dim d is idx's."""
    sel = np.expand_dims(idx, tuple(k for k in range(len(shape)) if k != d))
    return _flat_positions(shape, d, np.broadcast_to(sel, shape[:d] + (idx.size,) + shape[d + 1:])).reshape(-1)


def _check_bounds(idx, size, d, prefix=""):
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise (IndexError if prefix else RuntimeError)(
            f"{prefix}index {bad} is out of bounds for dimension {d} with size {size}")


@torch_names("index_add", inplace=("index_add_",))
def index_add(input, dim, index, source, *, alpha=1):
    """input with alpha * source's slices added at index along dim (IndexAddBackward0)."""
    d, shape, idx = _along(input, dim, index)
    if index._a.ndim > 1:
        raise IndexError(f"index_add_(): Index is supposed to be a vector, but got dim: {index._a.ndim} "
                         f"with type: {scalar_name(index._a.dtype)} and size: {list(index._a.shape)}")
    src_shape = source._a.shape if source._a.ndim else (1,)
    if len(src_shape) == len(shape) and src_shape[d] != idx.size:
        raise RuntimeError(f"index_add_(): Number of indices ({idx.size}) should be equal to "
                           f"source.size(dim): ({src_shape[d]}), for dim: {d}")
    if index._a.dtype not in (np.int64, np.int32):
        raise RuntimeError(f"index_add_(): Expected dtype int32/int64 for index but got: {scalar_name(index._a.dtype)}")
    if source._a.dtype != input._a.dtype:
        raise RuntimeError(f"index_add_(): self ({scalar_name(input._a.dtype)}) and source ({scalar_name(source._a.dtype)}) "
                           "must have the same scalar type")
    if len(src_shape) != len(shape) or builtins.any(a != b for k, (a, b) in enumerate(zip(shape, src_shape))
                                                    if k != d):
        raise RuntimeError("source tensor shape must match self tensor shape, excluding the specified "
                           f"dimension. Got self.shape = {list(input._a.shape)} source.shape = "
                           f"{list(source._a.shape)}")
    _check_bounds(idx, shape[d], d)
    if alpha != 1:
        source = source * (alpha if input._a.dtype.kind == "f" else builtins.int(alpha))
    return _written(INDEX_ADD, input, _slices_at(shape, d, idx), source, accumulate=True, index=index)


@torch_names("index_copy", inplace=("index_copy_",))
def index_copy(input, dim, index, source):
    """input with source's slices copied to index along dim (IndexCopyBackward0)."""
    d, shape, idx = _along(input, dim, index)
    if index._a.ndim > 1:
        raise IndexError(f"index_copy_(): Index should have dimension 1 or 0 (got {index._a.ndim})")
    src_shape = source._a.shape if source._a.ndim else (1,)
    if source._a.ndim and input._a.ndim and source._a.ndim != input._a.ndim:
        raise IndexError("index_copy_(): When source and destination are not scalars, their "
                         f"dimensionality must match. Source dimensionality ({source._a.ndim}), "
                         f"destination dimensionality ({input._a.ndim})")
    if index._a.dtype != np.int64:
        raise RuntimeError(f"index_copy_(): Expected a long tensor for index, but got {scalar_name(index._a.dtype)}")
    if source._a.dtype != input._a.dtype:
        raise RuntimeError("index_copy_(): self and source expected to have the same dtype, but got "
                           f"(self) {scalar_name(input._a.dtype)} and (source) {scalar_name(source._a.dtype)}")
    mine = [n for k, n in enumerate(input._a.shape) if k != d]
    theirs = [n for k, n in enumerate(source._a.shape) if k != d]
    if mine != theirs:
        raise RuntimeError("index_copy_(): Source/destination tensor must have same slice shapes. "
                           f"Destination slice shape: {' '.join(map(str, mine))} at dimension {d} and "
                           f"source slice shape: {' '.join(map(str, theirs))} at dimension 0.")
    if source._a.ndim and src_shape[d] != idx.size:
        raise IndexError(f"index_copy_(): Number of indices ({idx.size}) should be equal to "
                         f"source.size(dim) ({src_shape[d]})")
    _check_bounds(idx, shape[d], d, "index_copy_(): ")
    return _written(INDEX_COPY, input, _slices_at(shape, d, idx), source, index=index)


@torch_names("index_fill", inplace=("index_fill_",))
def index_fill(input, dim, index, value):
    """input with the slices at index along dim set to value (IndexFillBackward0, or 1 for a
    tensor value, whose gradient is the sum over the filled elements)."""
    d, shape, idx = _along(input, dim, index)
    if index._a.dtype != np.int64:
        raise IndexError("index_fill_(): Expected dtype int64 for index.")
    if index._a.ndim > 1:
        raise RuntimeError("Index has to be a vector/scalar")
    if isinstance(value, Tensor) and value._a.ndim:
        raise RuntimeError("index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value._a.ndim} dimension(s).")
    if idx.size and (idx.min() < -shape[d] or idx.max() >= shape[d]):
        bad = idx.min() if idx.min() < -shape[d] else idx.max()
        raise IndexError(f"index {bad} is out of bounds for dimension {d} with size {shape[d]}")
    # each filled element once: a repeated index fills nothing more (and adds no gradient)
    pos = np.unique(_slices_at(shape, d, idx % builtins.max(shape[d], 1)))
    if isinstance(value, Tensor) and _needs_grad(value):
        return _written(INDEX_FILL_TENSOR, input, pos, value.to(input.dtype).expand(pos.size), index=index)
    value = value.item() if isinstance(value, Tensor) else value
    return _written(INDEX_FILL, input, pos, value=input._a.dtype.type(value).item(), index=index)


@torch_names("index_put", inplace=("index_put_",))
def index_put(input, indices, values, accumulate=False):
    """input with values written (accumulate: added) at input[indices] (IndexPutBackward0)."""
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"index_put(): argument 'indices' (position 2) must be tuple of Tensors, not "
                        f"{type(indices).__name__}")
    for i, k in enumerate(indices):
        if not isinstance(k, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 1, but got {type(k).__name__}")
    if not indices:
        raise RuntimeError("sym_strides() called on an undefined Tensor")
    if not isinstance(values, Tensor):
        raise TypeError(f"index_put(): argument 'values' (position 3) must be Tensor, not "
                        f"{type(values).__name__}")
    if values._a.dtype != input._a.dtype:
        raise RuntimeError("Index put requires the source and destination dtypes match, got "
                           f"{scalar_name(input._a.dtype)} for the destination and {scalar_name(values._a.dtype)} for the source.")
    items = _index_items(tuple(indices))
    if builtins.sum(_consumed(k) for k in items) > input._a.ndim:
        raise IndexError(f"too many indices for tensor of dimension {input._a.ndim} (got {len(items)})")
    items = _expand_items(items, input._a.shape)
    pos = np.arange(input._a.size, dtype=np.int64).reshape(input._a.shape)[tuple(items)]
    try:
        np.broadcast_shapes(values._a.shape, pos.shape)
    except ValueError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(values._a.shape)} cannot be "
                           f"broadcast to indexing result of shape {list(pos.shape)}") from None
    if values._a.shape != pos.shape:
        values = values.expand(*pos.shape)
    return _written(INDEX_PUT, input, pos.reshape(-1), values, accumulate=builtins.bool(accumulate),
                    index=tuple(indices))


@torch_names("masked_scatter", inplace=("masked_scatter_",))
def masked_scatter(input, mask, source):
    """input (broadcast with mask) with source's leading elements written where mask is True, in
    order (MaskedScatterBackward0)."""
    if not isinstance(mask, Tensor) or mask._a.dtype.kind != "b":
        kind = scalar_name(mask._a.dtype) if isinstance(mask, Tensor) else type(mask).__name__
        raise RuntimeError(f"masked_scatter_ only supports boolean masks, but got mask with dtype {kind}")
    if source._a.dtype != input._a.dtype:
        raise RuntimeError("masked_scatter: expected self and source to have same dtypes but got"
                           f"{scalar_name(input._a.dtype)} and {scalar_name(source._a.dtype)}")
    shape = _broadcast_shape(mask._a.shape, input._a.shape)
    if input._a.shape != shape:
        input = input.expand(*shape)
    pos = np.flatnonzero(np.broadcast_to(mask._a, shape))
    if pos.size > source._a.size:
        raise RuntimeError("Number of elements of source < number of ones in mask")
    used = source.reshape(-1)
    if pos.size < source._a.size:
        used = getitem(used, slice(0, pos.size))
    return _written(MASKED_SCATTER, input, pos, used, index=mask)


samples(index_add, ((3, 4), 0, _I(0, 2, 0), (3, 4)), ((3, 4), -1, _I(3, 1), (3, 2), {"alpha": -2.0}),
        ((), 0, _wrap(np.array(0, np.int64)), ()))
samples(index_copy, ((3, 4), 0, _I(2, 0), (2, 4)), ((3, 4), 1, _I(3,), (3, 1)))
# (a tensor value with a negative index: PyTorch's own IndexFillBackward1 raises IndexError)
samples(index_fill, ((3, 4), 1, _I(3, 0, 3), -1.5), ((3, 4), 0, _I(-1,), 2.5), ((3, 4), 0, _I(2, 2), ()),
        ((3,), 0, _I(1,), 2.0))
samples(index_put, ((3, 4), [_I(0, 2), _I(1, 3)], (2,)), ((3, 4), [_I(1, 1)], (4,), True),
        ((3, 4), [_I(2, 0)], (1, 4)), ((3, 4), [_wrap(np.array([True, False, True]))], ()))
samples(masked_scatter, ((3, 4), _wrap(np.array([True, False, True, False])), (7,)),
        ((4,), _wrap(np.array([[True, False, True, True], [False, True, False, False]])), (2, 3)))


_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _scatter_reduce_back(g, role, x, src, out, node):
    """PyTorch's scatter_reduce_backward, for x (role 0) or src (role 1); the row's I0 holds dim,
    include_self and the reduction (see scatter_reduce)."""
    dim, include_self, reduce = node.i0 & 255, node.i0 >> 8 & 1, _REDUCTIONS[node.i0 >> 9]
    index = _wrap(_index_of(node, x.dim(), dim, src.shape))
    if role == 1 and index.numel() != src.numel():     # a 0-dim src that index does not read
        return src.new_zeros(src.shape)
    if reduce == "sum":
        grad_x, grad_src = g, g.gather(dim, index)
    elif reduce == "mean":
        n = x.new_ones(x.shape) if include_self else x.new_zeros(x.shape)
        n = scatter_add(n, dim, index, src.new_ones(index.shape)).detach()
        n = where(n == 0, 1.0, n)
        grad_x, grad_src = g / n, (g / n).gather(dim, index)
    elif reduce in ("amax", "amin"):
        # as PyTorch: x's ties count even where x is not included, and the ties are multiplied,
        # not selected: a nan result (no ties) gives nan
        x_hit = (x == out).to(g.dtype)
        src_hit = (src == out.gather(dim, index)).to(g.dtype)
        share = g / scatter_add(x_hit, dim, index, src_hit)
        grad_x, grad_src = x_hit * share, src_hit * share.gather(dim, index)
    else:
        masked_x = where(x == 0, 1.0, x)
        grad_x = g * scatter_reduce(masked_x, dim, index, src, "prod", include_self=include_self) / masked_x
        src_zero = src == 0
        zeros = scatter_add(x.new_zeros(x.shape), dim, index, src_zero.to(x.dtype)).gather(dim, index)
        single = _and(src_zero, zeros == 1)
        masked_src = where(single, 1.0, src)
        masked_out = scatter_reduce(x, dim, index, masked_src, "prod", include_self=include_self)
        grad_src = where(single, (g * masked_out).gather(dim, index),
                         (g * out).gather(dim, index) / where(src_zero, 1.0, src))
    if role == 0:
        return grad_x if include_self else scatter(grad_x, dim, index, 0.0)
    return grad_src


def _and(a, b):
    return where(a, b, False)


def _index_of(node, ndim, dim, shape):
    """The index tensor of a scatter_reduce row, at src's shape (but for a 0-dim src it does not
    read), recovered from its src elements' out positions."""
    ints = np.asarray(node.ints)
    pos = ints[1:1 + ints[0]]
    idx = (pos // _c_strides(tuple(node.shape))[dim]) % node.shape[dim] if ndim else np.zeros(pos.size, np.int64)
    return idx.reshape(shape if math.prod(shape) == pos.size else (pos.size,))


def _scatter_reduce(go, ga, gb, sv, iv, do, da, db, row):
    # PyTorch's scatter_reduce_backward from the values its formulas read: sv holds x and out
    # (m elements each) around src (iv[1 + q] elements); src's element j went into out[iv[1 + j]],
    # j < q = iv[0]. I0: dim | include_self << 8 | reduction << 9 (sum, prod, mean, amax, amin).
    # In the row's dtype, in PyTorch's order of operations; without include_self, x's gradient
    # is 0 where src went (PyTorch's scatter of 0). The loops over x's m elements read no
    # positions, so they vectorise
    m = go.size
    q = iv[0]
    ns = iv[1 + q]
    keep = (row[I0] >> 8) & 1
    red = row[I0] >> 9
    x = sv[:m]
    src = sv[m:m + ns]
    out = sv[m + ns:m + ns + m]
    one = go.dtype.type(1)
    zero = one - one
    qb = q if gb.size else 0
    kept = np.ones(m if ga.size else 0, np.uint8)
    if not keep:
        for j in range(q if ga.size else 0):
            kept[iv[1 + j]] = 0
    if red == 1:
        # prod: x's gradient is g * (x, a zero as 1, times src) / x (a zero as 1); src's is
        # g * out / src (a zero as 1), or for the only zero at its position, g times the product
        # of the others (x too, if included)
        if ga.size:
            p = np.empty(m, go.dtype)
            for e in range(m):
                p[e] = (one if x[e] == zero else x[e]) if kept[e] else one
            for j in range(q):
                p[iv[1 + j]] *= src[j]
            for e in range(m):
                if kept[e]:
                    ga[e] += go[e] * p[e] / (one if x[e] == zero else x[e])
        if qb:
            zeros = np.zeros(m, np.int64)
            some = False
            for j in range(q):
                if src[j] == zero:
                    zeros[iv[1 + j]] += 1
                    some = True
            others = np.empty(m if some else 0, go.dtype)
            if some:
                for e in range(m):
                    others[e] = x[e]
                if not keep:
                    for j in range(q):
                        others[iv[1 + j]] = one
                for j in range(q):
                    o = iv[1 + j]
                    if src[j] != zero or zeros[o] != 1:
                        others[o] *= src[j]
            for j in range(q):
                o = iv[1 + j]
                b = src[j]
                if b == zero and zeros[o] == 1:
                    gb[j] += go[o] * others[o]
                else:
                    gb[j] += go[o] * out[o] / (one if b == zero else b)
        return
    # sum, mean, amax/amin: each out position passes on a share of its gradient (g; g / N)
    share = go
    if red == 2:                    # N: how many were averaged (1 where none)
        share = np.empty(m, go.dtype)
        for e in range(m):
            share[e] = one if keep else zero
        for j in range(q):
            share[iv[1 + j]] += one
        for e in range(m):
            share[e] = go[e] / (one if share[e] == zero else share[e])
    elif red >= 3:                  # N: the ties with out, x's counted even when not included
        share = np.empty(m, go.dtype)
        for e in range(m):
            share[e] = one if x[e] == out[e] else zero
        for j in range(q):          # (a select, not a branch: ties are frequent, unpredictable)
            o = iv[1 + j]
            share[o] += one if src[j] == out[o] else zero
        for e in range(m):
            share[e] = go[e] / share[e]
    if red >= 3:                    # the ties times the share, as PyTorch: 0 / 0 (nan) stays
        for j in range(qb):
            o = iv[1 + j]
            gb[j] += (one if src[j] == out[o] else zero) * share[o]
        for e in range(ga.size):
            if kept[e]:
                ga[e] += (one if x[e] == out[e] else zero) * share[e]
    else:
        for j in range(qb):
            gb[j] += share[iv[1 + j]]
        for e in range(ga.size):
            if kept[e]:
                ga[e] += share[e]


def _fwd_scatter_reduce(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # x with y's elements combined in order into it (numpy's ufunc.at: a tie or a nan gives y's
    # element) at the row's out positions (int data: q, y's q positions, y's size); I0 as
    # scatter_reduce packs it. saves: x, y, out (what the formulas read)
    k = prog[j, P_K]
    q = pints[k]
    i0 = prog[j, P_I0]
    keep = (i0 >> 8) & 1            # include_self
    red = i0 >> 9                   # _REDUCTIONS: sum, prod, mean, amax, amin
    n = out.size
    count = np.zeros(n, np.int64)
    for e in range(q):
        count[pints[k + 1 + e]] += 1
    one = out.dtype.type(1)
    zero = one - one
    ident = zero if red == 0 or red == 2 else one if red == 1 else -np.inf if red == 3 else np.inf
    for e in range(n):
        out[e] = ident if keep == 0 and count[e] else x[e]
    for e in range(q):
        o = pints[k + 1 + e]
        a = out[o]
        b = y[e]
        if red == 0 or red == 2:
            out[o] = a + b
        elif red == 1:
            out[o] = a * b
        elif red == 3:
            out[o] = a if a > b or a != a else b
        else:
            out[o] = a if a < b or a != a else b
    if red == 2:                    # (numpy divides by the int64 counts in float64)
        for e in range(n):
            c = count[e] + keep
            out[e] = np.float64(out[e]) / np.float64(c if c else 1)
    if s >= 0:
        save_two(sv, s, x, y, True)
        t = s + x.size + y.size
        for e in range(n):
            sv[t + e] = out[e]


SCATTER_REDUCE = defop("ScatterReduceBackward0", _scatter_reduce, 2, forward=needs(_fwd_scatter_reduce, "x,y"),
                       saves_reads=True,
                       x=lambda g, x, y, out, node: _scatter_reduce_back(g, 0, x, y, out, node),
                       y=lambda g, x, y, out, node: _scatter_reduce_back(g, 1, x, y, out, node))


@torch_names("scatter_reduce", inplace=("scatter_reduce_",))
def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    if reduce not in _REDUCTIONS:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    d, pos = _scatter_positions("scatter_reduce", input, dim, index, src)
    used = _src_used(src, index)
    a = input._a
    p = pos.reshape(-1)
    v = used._a.reshape(-1)
    out = a.copy()
    flat = out.reshape(-1)
    if not include_self:        # the scattered positions start from the reduction's identity
        ident = {"sum": 0, "mean": 0, "prod": 1}.get(reduce)
        if ident is None:
            lim = np.finfo(a.dtype) if a.dtype.kind == "f" else np.iinfo(a.dtype)
            ident = -np.inf if reduce == "amax" and a.dtype.kind == "f" else \
                np.inf if a.dtype.kind == "f" else (lim.min if reduce == "amax" else lim.max)
        flat[p] = ident
    ufunc = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}[reduce]
    with quiet():
        ufunc.at(flat, p, v)
        if reduce == "mean":
            n = np.zeros(flat.size, np.int64)
            np.add.at(n, p, 1)
            n += 1 if include_self else 0
            n = np.where(n == 0, 1, n)
            flat[:] = flat // n if a.dtype.kind in "iu" else flat / n
    if not _needs_grad(input, used):
        return _wrap(out)
    i0 = d | builtins.int(builtins.bool(include_self)) << 8 | _REDUCTIONS.index(reduce) << 9
    _constant_index(index)
    # saves_reads: both formulas read x, src and out, as PyTorch's node saves self, src, result
    # (and index: here src's out positions, then src's size, which a 0-dim src unread can exceed)
    ints = np.concatenate(([p.size], p, [v.size]))
    return record(SCATTER_REDUCE, out, input, used, saves=(input, used), save_out=True, ints=ints, i0=i0,
                  broadcast=False)


# ======================= diagonal, diag, unfold (strided views), masked_select, nonzero ==========
DIAGONAL = defop("DiagonalBackward0", _strided, forward=_STRIDED, x=_strided_formula)
UNFOLD = defop("UnfoldBackward0", _strided, forward=_STRIDED, x=_strided_formula)
DIAG_EMBED = defop("DiagEmbedBackward0", _setitem, 2, forward=_SETITEM, y=_taken)     # x is input b, as pad's
DIAG_COPY = defop("DiagonalBackward0_copy", _scatter, forward=_GATHERED, x=scatter_formula)
MASKED_SELECT = defop("MaskedSelectBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
_as_strided = np.lib.stride_tricks.as_strided


def _strided_of(op, x, offset, shape, strides):
    """A view of x whose element (i_0, ..) is x's C-order element offset + sum_d i_d strides[d]
    (a diagonal, unfold's windows), as a numpy view sharing x's memory."""
    a = x._a
    coords = np.unravel_index(offset, a.shape) if a.size else (0,) * a.ndim
    cst = _c_strides(a.shape)
    byte_strides = []
    for st in strides:        # an element stride, rewritten on a's (maybe non-C) memory strides
        b = 0
        for d in range(a.ndim):
            b += (st // cst[d]) * a.strides[d]
            st %= cst[d]
        byte_strides.append(b)
    base = a[tuple(slice(c, None) for c in coords)] if a.size else a
    out = _as_strided(base, tuple(shape), tuple(byte_strides))
    if _skip_record(x):
        t = _wrap(out)
        _link_view(t, x, op)
        return t
    return _view_of(op, out, x, ints=[offset] + [builtins.int(s) for s in strides])


@torch_names("diagonal")
def diagonal(input, offset=0, dim1=0, dim2=1):
    a = input._a
    d1, d2 = _check_dim(dim1, a.ndim), _check_dim(dim2, a.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    r0, c0 = (0, offset) if offset >= 0 else (-offset, 0)
    n = builtins.max(builtins.min(a.shape[d1] - r0, a.shape[d2] - c0), 0)
    cst = _c_strides(a.shape)
    others = [d for d in range(a.ndim) if d not in (d1, d2)]
    start = r0 * cst[d1] + c0 * cst[d2] if n and a.size else 0
    return _strided_of(DIAGONAL, input, start, [a.shape[d] for d in others] + [n],
                       [cst[d] for d in others] + [cst[d1] + cst[d2]])


@torch_names("diag")
def diag(input, diagonal=0):
    a = input._a
    if a.ndim == 1:
        n = a.shape[0] + builtins.abs(diagonal)
        out = np.zeros((n, n), a.dtype)
        pos = np.diagonal(np.arange(n * n, dtype=np.int64).reshape(n, n), diagonal)
        out.reshape(-1)[pos] = a
        if _skip_record(input):
            return _wrap(out)
        return record(DIAG_EMBED, out, None, input, ints=_with_count(pos), broadcast=False, scalars=(0,))
    if a.ndim != 2:
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {a.ndim}D")
    pos = np.diagonal(_arange_like(a), diagonal)
    return _gathered(DIAG_COPY, input, pos, pos.shape)


@torch_names(methods=("unfold",))
def unfold(input, dimension, size, step):
    a = input._a
    d = _check_dim(dimension, builtins.max(a.ndim, 1))
    n = a.shape[d] if a.ndim else 1
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if size < 0:
        raise RuntimeError(f"size is {size} but must be >= 0")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    cst = _c_strides(a.shape) if a.ndim else [1]
    shape = list(a.shape) if a.ndim else []
    strides = list(cst) if a.ndim else []
    if a.ndim:
        shape[d] = (n - size) // step + 1
        strides[d] = cst[d] * step
    return _strided_of(UNFOLD, input, 0, shape + [size], strides + [cst[d] if a.ndim else 1])


@torch_names("masked_select")
def masked_select(input, mask):
    if not isinstance(mask, Tensor) or mask._a.dtype.kind != "b":
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    a, m = input._a, mask._a
    _broadcast_shape(a.shape, m.shape)
    _constant_index(mask)
    shape = np.broadcast_shapes(a.shape, m.shape)
    pos = np.broadcast_to(_arange_like(a), shape)[np.broadcast_to(m, shape)]
    return _gathered(MASKED_SELECT, input, pos, pos.shape)


@torch_names("nonzero")
def nonzero(input, *, as_tuple=False):
    a = input._a
    if as_tuple:
        return tuple(_wrap(_arr(i.astype(np.int64))) for i in np.nonzero(a.reshape(1) if a.ndim == 0 else a))
    if a.ndim == 0:
        return _wrap(np.zeros((1 if a else 0, 0), np.int64))
    return _wrap(_arr(np.argwhere(a).astype(np.int64)))


samples(diagonal, ((3, 3),), ((3, 4), 1), ((4, 3), -1), ((2, 3, 3), 0, -2, -1), ((2, 3, 4), 1, 2, 0), ((3, 2), 5))
samples(diag, ((3,),), ((3,), 1), ((3,), -2), ((3, 3),), ((3, 4), 1), ((4, 3), -1))
samples(unfold, ((8,), 0, 2, 1), ((8,), 0, 3, 2), ((3, 4), 1, 2, 1), ((3, 4, 2), -2, 2, 3), ((3, 3), 1, 0, 8), ((), 0, 1, 1))
samples(masked_select, ((2, 3), _wrap(np.array([[True, False, True], [False, False, True]]))),
        ((2, 3), _wrap(np.array([True, False, True]))), ((3,), _wrap(np.array([[True], [False]]))))


# ---- pad's reflect, replicate and circular modes: gathers (_scatter)
REFLECTION_PAD = {n: defop(f"ReflectionPad{n}DBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
                  for n in (1, 2, 3)}
REPLICATION_PAD = {n: defop(f"ReplicationPad{n}DBackward0", _scatter, forward=_GATHERED, x=scatter_formula)
                   for n in (1, 2, 3)}
CIRCULAR_PAD = defop("CopySlices", _scatter, forward=_GATHERED, x=scatter_formula)   # PyTorch pads circularly by copies
_PAD_SOURCE = {
    "reflect": lambda i, n: np.where(np.abs(i) >= n, 2 * (n - 1) - np.abs(i), np.abs(i)),
    "replicate": lambda i, n: np.clip(i, 0, n - 1),
}


def _pad_nonconstant(input, pad, mode):
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    a = input._a
    k = len(pad) // 2
    if len(pad) % 2 or k not in (1, 2, 3) or a.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {a.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    sources = []
    for j in range(k):                    # pad[2j], pad[2j+1] pad the last-but-j dim
        d = a.ndim - 1 - j
        lo, hi, n = pad[2 * j], pad[2 * j + 1], a.shape[d]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input "
                               f"dimension, but got: padding ({lo}, {hi}) at dimension {d} of input "
                               f"{list(a.shape)}")
        if n + lo + hi < 0:
            raise RuntimeError(f"input tensor has an invalid output size: {n + lo + hi}")
        if mode == "circular":          # PyTorch crops first, then wraps around what is left
            start, m = builtins.max(-lo, 0), n - builtins.max(-lo, 0) - builtins.max(-hi, 0)
            if lo > m or hi > m:
                raise RuntimeError("Padding value causes wrapping around more than once.")
            src = start + np.mod(np.arange(-builtins.max(lo, 0), m + builtins.max(hi, 0)), builtins.max(m, 1))
        else:
            src = _PAD_SOURCE[mode](np.arange(-lo, n + hi), n)
        sources.append((d, src))
    pos = _arange_like(a)
    for d, src in sources:
        pos = np.take(pos, src, axis=d)
    op = CIRCULAR_PAD if mode == "circular" else (REFLECTION_PAD if mode == "reflect" else REPLICATION_PAD)[k]
    return _gathered(op, input, pos, pos.shape)


samples(pad, ((2, 3), [1, 2], "reflect"), ((2, 3, 4), [2, 1, -1, 2], "reflect"), ((1, 2, 2, 3), [1, 1, 1, 0, 1, 1], "reflect"),
        ((2, 3), [2, 3], "replicate"), ((2, 3, 4), [1, -1, 3, 0], "replicate"), ((1, 2, 2, 2), [1, 0, 0, 1, 1, 1], "replicate"),
        ((2, 3), [2, 3], "circular"), ((1, 2, 3, 4), [1, 2, 3, 0], "circular"))


# ---- repeat_interleave: PyTorch's composites (an expanded copy viewed, or index_select)
@torch_names("repeat_interleave")
def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    if repeats is None:         # repeat_interleave(repeats): the indices, each repeated
        counts = input._a
        if counts.ndim > 1 or counts.dtype.kind not in "iu":
            raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
        if counts.size and counts.min() < 0:
            raise RuntimeError("repeats can not be negative")
        return _wrap(np.repeat(np.arange(counts.size, dtype=np.int64), counts))
    x = input if dim is not None else input.reshape(-1)
    d = _check_dim(0 if dim is None else dim, builtins.max(x._a.ndim, 1))
    if isinstance(repeats, Tensor):
        r = repeats._a
        if r.ndim == 0 or r.size == 1:
            repeats = builtins.int(r.reshape(-1)[0])
        else:
            if r.ndim != 1 or r.shape[0] != x._a.shape[d]:
                raise RuntimeError("repeats must have the same size as input along dim, but got "
                                   f"repeats.size(0) = {r.shape[0] if r.ndim else 1} and "
                                   f"input.size({d}) = {x._a.shape[d]}")
            return index_select(x, d, repeat_interleave(repeats))
    if repeats < 0:
        raise RuntimeError("repeats can not be negative")
    if x._a.ndim == 0:
        x = x.reshape(1)
    shape = list(x.shape)
    expanded = x.unsqueeze(d + 1).expand(*shape[:d + 1], repeats, *shape[d + 1:])
    shape[d] *= repeats
    return expanded.contiguous().view(*shape)


_SI = _wrap(np.array([[0, 1, 2, 0], [2, 0, 1, 1]]))        # unique positions along dim 0 of (3, 4)
_DUP = _wrap(np.array([[0, 1, 2, 0], [0, 1, 0, 2]]))       # repeated positions
# (a src larger than index is tested forward only: PyTorch's own backward rejects it)
samples(scatter, ((3, 4), 0, _SI, (2, 4)), ((3, 4), 1, _wrap(np.array([[3], [0], [1]])), (3, 1)),
        ((3, 4), 0, _SI, 1.5), ((3, 4), -1, _wrap(np.array([[2, 0]])), {"value": -1.0}))
samples(scatter_add, ((3, 4), 0, _DUP, (2, 4)), ((3, 4), 1, _wrap(np.array([[3, 3], [0, 1]])), (2, 2)))
for _r in _REDUCTIONS:
    samples(scatter_reduce, ((3, 4), 0, _DUP, (2, 4), _r), ((3, 4), 0, _DUP, (2, 4), _r, {"include_self": False}),
            ((3, 4), 1, _wrap(np.array([[3, 3], [0, 1]])), (2, 2), _r))
kinks(scatter_reduce, (Given([[1.0, 2.0], [3.0, 4.0]]), 0, _wrap(np.array([[1, 0], [1, 1]])),
                       Given([[3.0, 2.0], [3.0, 4.0]]), "amax"),
      (Given([[1.0, 2.0], [3.0, 4.0]]), 0, _wrap(np.array([[1, 0], [1, 1]])), Given([[3.0, 1.0], [0.5, 4.0]]), "amin",
       {"include_self": False}),
      (Given([[1.0, 0.0], [3.0, 4.0]]), 0, _wrap(np.array([[0, 0], [0, 1]])), Given([[0.0, 2.0], [3.0, 0.0]]), "prod"))
samples(repeat_interleave, ((2, 3), 2), ((2, 3), 2, 1), ((2, 3), _I(1, 0, 3), 1), ((2, 3), 3, -2), ((), 2))
