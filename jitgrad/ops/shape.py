"""Shape ops: views (view, reshape, flatten, squeeze, unsqueeze, permute, transpose, t, expand)
and their view bookkeeping (_link_view), clone and to, the hidden EXPAND node record() uses to
un-broadcast, and the ops that join tensors (cat, stack, hstack, vstack).
"""
import builtins
import math
import warnings
import weakref

import numpy as np

from .. import _device, dtypes
from ..engine import hook, registry
from ..engine.loop import I0, bcast_accumulate, numel, permute_accumulate
from ..engine.registry import defop
from ..engine.replay import P_I0, P_K, P_OSH, P_XSH, expanded, needs, operand, permuted
from ..engine.tape import _grad_mode as _MODE
from ..tensor import Tensor, _check_dim, _wrap
from ..creation import int_tuple
from ._samples import Seq, samples
from ._formulas import inverse, permutation, sum_to
from ._core import _dims, _needs_grad, record, record_multi, result_dtype, torch_names


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
        perm[d] = iv[d] if iv.size else (row[I0] >> (4 * d)) & 15   # see _perm_attrs
    permute_accumulate(da, perm, ga, go)


def _reshape_back(g, x):
    return g.reshape(x.shape)


def _unpermute(g, x, node):
    return g.permute(inverse(permutation(node, x.dim())))


def _fwd_copy(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # a view or copy of the same elements in the same (C) order: reshape, squeeze, clone...
    for e in range(out.size):
        out[e] = x[e]


def _fwd_expand(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    xb = expanded(x, out.size, shapes, prog[j, P_XSH], prog[j, P_OSH])
    for e in range(out.size):
        out[e] = xb[e]


def _fwd_permute(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    nd = shapes[prog[j, P_XSH]]
    perm = np.empty(nd, np.int64)
    for d in range(nd):     # as _perm_attrs packed it
        perm[d] = pints[prog[j, P_K] + d] if prog[j, P_K] >= 0 else (prog[j, P_I0] >> (4 * d)) & 15
    permuted(out, x, shapes, prog[j, P_XSH], perm)


registry.EXPAND = defop(None, _expand, x=lambda g, x: sum_to(g, x.shape))
VIEW = defop("ViewBackward0", _identity, forward=needs(_fwd_copy, "x", inline=True), x=_reshape_back)
SQUEEZE = defop("SqueezeBackward0", _identity, forward=needs(_fwd_copy, "x", inline=True), x=_reshape_back)
SQUEEZE_DIM = defop("SqueezeBackward1", _identity, forward=needs(_fwd_copy, "x", inline=True), x=_reshape_back)
UNSQUEEZE = defop("UnsqueezeBackward0", _identity, forward=needs(_fwd_copy, "x", inline=True), x=_reshape_back)
CLONE = defop("CloneBackward0", _identity, forward=needs(_fwd_copy, "x", inline=True), x=lambda g: g)
# (cast to x's dtype for us). A replay's values have one dtype: only a copy to x's own reaches
# the forward kernel (a cast fails the trace on its operand's dtype)
TO_COPY = defop("ToCopyBackward0", _identity, forward=needs(_fwd_copy, "x", inline=True), x=lambda g: g)
EXPAND_USER = defop("ExpandBackward0", _expand, forward=needs(_fwd_expand, "x"), x=lambda g, x: sum_to(g, x.shape))
T = defop("TBackward0", _permute, forward=needs(_fwd_permute, "x"), x=_unpermute)
TRANSPOSE = defop("TransposeBackward0", _permute, forward=needs(_fwd_permute, "x"), x=_unpermute)
PERMUTE = defop("PermuteBackward0", _permute, forward=needs(_fwd_permute, "x"), x=_unpermute)


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


@torch_names("reshape")
def reshape(x, *shape):
    shape = _infer_shape(shape, x._a.size)
    return _view_of(VIEW, x._a.reshape(shape), x)


@torch_names(methods=("view",))
def view(x, *shape):
    if len(shape) == 1 and _is_dtype(shape[0]):
        return _view_as_dtype(x, shape[0])
    shape = _infer_shape(shape, x._a.size, "view", "size")
    if not x._a.flags.c_contiguous and x._a.size > 1:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least "
                           "one dimension spans across two contiguous subspaces). Use .reshape(...) "
                           "instead.")
    return _view_of(VIEW, x._a.reshape(shape), x)


@torch_names("flatten")
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


@torch_names("squeeze")
def squeeze(x, dim=None):
    a = x._a
    if dim is None:
        return _view_of(SQUEEZE, a.reshape(tuple(d for d in a.shape if d != 1)), x)
    axes = _dims(dim, a.ndim)
    shape = tuple(d for i, d in enumerate(a.shape) if not (i in axes and d == 1))
    return _view_of(SQUEEZE_DIM, a.reshape(shape), x)


@torch_names("unsqueeze")
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


@torch_names("permute")
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


@torch_names("transpose")
def transpose(x, dim0, dim1):
    nd = x._a.ndim
    if nd == 0:     # (a new view object: a trace tells values apart by their array's identity)
        return _view_of(TRANSPOSE, x._a.view(), x)
    d0, d1 = _check_dim(dim0, nd), _check_dim(dim1, nd)
    perm = list(range(nd))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _view_of(TRANSPOSE, x._a.transpose(perm), x, *_perm_attrs(perm))


@torch_names("t")
def t(x):
    nd = x._a.ndim
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return _view_of(T, x._a.T, x, *_perm_attrs((1, 0))) if nd == 2 else _view_of(T, x._a.view(), x)


def T_(x):
    return permute(x, tuple(range(x._a.ndim - 1, -1, -1)))


@torch_names(methods=("expand",))
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


@torch_names("clone")
def clone(x):
    return record(CLONE, x._a.copy(), x, broadcast=False)


_TO_SIGNATURES = "".join(
    f" * ({first}, bool non_blocking = False, bool copy = False, *, jitgrad.memory_format "
    f"memory_format = None)\n" for first in (
        "jitgrad.device device = None, jitgrad.dtype dtype = None", "jitgrad.dtype dtype",
        "Tensor tensor"))


def _is_dtype(v):
    return isinstance(v, dtypes.dtype) or v in (builtins.float, builtins.int, builtins.bool)


@torch_names(methods=("to",))
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
samples(to, ((2, 3), dtypes.float32), ((2, 3), {"copy": True}), eps=1e-2)


# ---- cat and stack: one node with an input per tensor (F_MULTI)
def _cat(go, ga, gb, sv, iv, do, da, db, row):
    # multi-input: this input's slab starts at iv[2] along dim I0 of the output
    d = row[I0]
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


def _fwd_cat(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # cat and stack: each outer slice of the output (the dims before I0) holds every input's
    # block, input q's at its param (cat: its start along dim I0; stack: its index) times inner
    os = prog[j, P_OSH]
    d = prog[j, P_I0]
    inner = 1
    for q in range(d + 1, shapes[os]):
        inner *= shapes[os + 1 + q]
    span = shapes[os + 1 + d] * inner
    if out.size == 0:
        return
    outer = out.size // span
    k = prog[j, P_K]
    for q in range(pints[k]):
        e = k + 1 + 4 * q
        m = numel(shapes, pints[e + 3])
        src = operand(v, ext, pints[e], m)
        w = m // outer
        start = pints[e + 2] * inner
        for o in range(outer):
            for t in range(w):
                out[o * span + start + t] = src[o * w + t]


# param: where the input's slab starts along dim I0 (cat) or its index there (stack)
CAT = defop("CatBackward0", _cat, 0, forward=needs(_fwd_cat, "multi"),
            each=lambda g, input, param, node: g.narrow(node.i0, param, input.shape[node.i0]))
STACK = defop("StackBackward0", _cat, 0, forward=needs(_fwd_cat, "multi"),
              each=lambda g, param, node: g.select(node.i0, param))


def _skip_record(*ts):
    """No input needs grad and no compiled step is being traced: a forward may return an
    unrecorded tensor (a trace needs every op reported, record() does it)."""
    return not _needs_grad(*ts) and hook.tracer is None


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


@torch_names(functions=("cat", "concat", "concatenate"))
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
    if _skip_record(*parts):
        return _wrap(out)
    entries, start = [], 0
    for t in parts:
        entries.append((t, len(entries), start))
        start += t._a.shape[d]
    return record_multi(CAT, out, entries, i0=d)


@torch_names(functions=("stack",))
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
    if _skip_record(*ts):
        return _wrap(out)
    return record_multi(STACK, out, [(t, i, i) for i, t in enumerate(ts)], i0=d)


samples(cat, (Seq([(2, 3), (1, 3)]),), (Seq([(2, 3), (2, 2), (2, 1)]), 1),
        (Seq([(2, 3), (2, 3)]), -1), (Seq([(3,), (2,)]),), (Seq([(2, 3)]),),
        (Seq([(2, 3, 2), (2, 1, 2)]), 1))
samples(stack, (Seq([(2, 3), (2, 3)]),), (Seq([(2, 3), (2, 3), (2, 3)]), 1),
        (Seq([(2, 3), (2, 3)]), -1), (Seq([(), ()]),), (Seq([(3,)]), 0))


@torch_names(functions=("hstack",))
def hstack(tensors):
    ts = _tensor_list(tensors, "hstack")
    if not ts:
        raise RuntimeError("hstack expects a non-empty TensorList")
    ts = [reshape(t, 1) if t._a.ndim == 0 else t for t in ts]
    return cat(ts, 0 if ts and ts[0]._a.ndim == 1 else 1)


@torch_names(functions=("vstack",))
def vstack(tensors):
    ts = _tensor_list(tensors, "vstack")
    if not ts:
        raise RuntimeError("vstack expects a non-empty TensorList")
    return cat([reshape(t, 1, -1) if t._a.ndim < 2 else t for t in ts], 0)


samples(hstack, (Seq([(2, 3), (2, 2)]),), (Seq([(3,), (2,)]),))
samples(vstack, (Seq([(2, 3), (1, 3)]),), (Seq([(3,), (3,)]),))


# ---- issue 14: view(dtype), unflatten, meshgrid
def _view_as_dtype(x, dtype):
    """x's memory read as another dtype (no gradient: the bits are reinterpreted). A different
    item size rescales the last dim, which must then be contiguous."""
    a = x._a
    nd = dtypes.to_numpy_dtype(dtype)
    if nd == a.dtype:
        return _view_of(VIEW, a.view(), x)
    if nd.itemsize != a.itemsize:
        if a.ndim == 0:
            raise RuntimeError(f"self.dim() cannot be 0 to view {dtypes.c_name(a.dtype).title()} as "
                               f"{dtypes.c_name(nd).title()} (different element sizes)")
        if a.ndim and a.strides[-1] != a.itemsize:
            raise RuntimeError("self.stride(-1) must be 1 to view "
                               f"{dtypes.scalar_name(a.dtype)} as {dtypes.scalar_name(nd)} (different element sizes)")
        if (a.shape[-1] * a.itemsize) % nd.itemsize:
            raise RuntimeError(f"self.size(-1) must be divisible by {nd.itemsize // a.itemsize} to view "
                               f"{dtypes.scalar_name(a.dtype)} as {dtypes.scalar_name(nd)} (different element sizes), "
                               f"but got {a.shape[-1]}")
    t = _wrap(a.view(nd))
    _link_view(t, x)
    return t


@torch_names("unflatten")
def unflatten(x, dim, sizes):
    a = x._a
    d = _check_dim(dim, a.ndim)
    sizes = list(sizes)
    given = list(sizes)
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    known = math.prod(n for n in sizes if n != -1)
    if sizes.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if -1 in sizes:
        sizes[sizes.index(-1)] = a.shape[d] // known if known else 0
    if math.prod(sizes) != a.shape[d]:
        raise RuntimeError(f"unflatten: Provided sizes {given} don't multiply up to the size of "
                           f"dim {d} ({a.shape[d]}) in the input tensor")
    return view(x, *a.shape[:d], *sizes, *a.shape[d + 1:]) if a.flags.c_contiguous else \
        reshape(x, *a.shape[:d], *sizes, *a.shape[d + 1:])


@torch_names(functions=("meshgrid",))
def meshgrid(*tensors, indexing=None):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing "
                      "argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {indexing}")
    for t in tensors:
        if t._a.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {t._a.ndim}D")
    sizes = [t._a.size for t in tensors]
    if indexing == "xy" and len(tensors) >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(tensors):
        at = i if indexing == "ij" or len(tensors) < 2 else {0: 1, 1: 0}.get(i, i)
        shape = [1] * len(tensors)
        shape[at] = -1
        out.append(expand(reshape(t, *shape), *sizes))
    return tuple(out)


samples(unflatten, ((2, 6), 1, [2, 3]), ((6,), 0, [3, -1]), ((2, 3, 4), -1, [2, 1, 2]))
samples(meshgrid, ((3,), (2,), {"indexing": "ij"}), ((3,), (2,), {"indexing": "xy"}), ((2,), (), (3,), {"indexing": "ij"}))
