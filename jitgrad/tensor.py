"""The Tensor: a numpy array plus its place on the tape.

Ops (arithmetic, reductions, ...) are attached from the ops package; this file holds what every tensor has:
construction, autograd attributes, memory views and printing.
"""
import builtins
import functools
import numbers
import warnings
import weakref

import numpy as np

from . import _device, _storage, dtypes
from ._format import tensor_repr
from .engine import hook as _hook, registry
from .engine.loop import A, B, FLAGS, F_MULTI, I1, OP, SERIAL, WIDTH
from .engine.tape import TAPE, is_grad_enabled

_NONLEAF_GRAD_MSG = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad attribute "
    "won't be populated during autograd.backward(). If you indeed want the .grad field to be populated "
    "for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you access the non-leaf "
    "Tensor by mistake, make sure you access the leaf Tensor instead. See "
    "github.com/pytorch/pytorch/pull/30531 for more information.")


class Size(tuple):
    """A shape, as torch.Size: a tuple of ints (equal to the plain tuple), whose slices, sums and
    repeats are Sizes again; prints as jitgrad.Size([...])."""
    __slots__ = ()

    def __new__(cls, sizes=()):
        sizes = tuple(sizes)
        for i, s in enumerate(sizes):
            if not isinstance(s, (builtins.int, np.integer, Tensor)) or \
                    isinstance(s, Tensor) and (s.dim() != 0 or s._a.dtype.kind not in "iu"):
                raise TypeError(f"jitgrad.Size() takes an iterable of 'int' (item {i} is "
                                f"'{type(s).__name__}')")
        return tuple.__new__(cls, [builtins.int(s) for s in sizes])

    def __repr__(self):
        return f"jitgrad.Size([{', '.join(str(d) for d in self)}])"

    __str__ = __repr__

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return tuple.__new__(Size, r) if isinstance(i, slice) else r

    def __add__(self, other):
        if not isinstance(other, tuple):
            raise TypeError(f"can only concatenate tuple (not {type(other).__name__}) to "
                            "jitgrad.Size")
        return tuple.__new__(Size, tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__new__(Size, tuple.__add__(other, self))

    def __mul__(self, n):
        return tuple.__new__(Size, tuple.__mul__(self, n))

    __rmul__ = __mul__

    def numel(self):
        n = 1
        for d in self:
            n *= d
        return n


# a Size from a numpy shape (known ints: no validation on this hot path)
_size = functools.partial(tuple.__new__, Size)


class Tensor:
    """A tensor. ``_a`` is its numpy storage, ``_node`` its tape row (-1 for leaves), ``_leafvar``
    the row collecting a leaf's gradient, ``_ver`` its version record shared with views.
    A view (as PyTorch's differentiable views) has ``_base``, the tensor whose storage it shares,
    never itself a view; a base lists its views in ``_views`` (weakrefs, for in-place ops that
    rewrite the base's history: ops.rebase_views). ``_view_meta`` is set on views only."""
    __slots__ = ("_a", "_node", "_leafvar", "_rg", "_grad", "_ver", "_base", "_views", "_view_meta",
                 "__weakref__")

    # NumPy defers to Tensor's reflected operators (np.float64(2) * x, np.ones(3) + x give a
    # Tensor in the graph, not an ndarray), as it does for torch.Tensor
    __array_priority__ = 1000

    def __init__(self, *args):
        # the legacy constructor, in the default dtype
        _init(self, _legacy_array(args, dtypes.default_float.np), False)

    # ---- autograd attributes -------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad=True):
        if self._node >= 0 and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to "
                               "use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().")
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._rg = builtins.bool(requires_grad)
        return self

    @property
    def is_leaf(self):
        return self._node < 0

    @property
    def grad_fn(self):
        if self._node < 0:
            return None
        return _grad_fn_at(self._node)

    @property
    def grad(self):
        if self._node >= 0 and self._grad is None and not self.retains_grad:
            warnings.warn(_NONLEAF_GRAD_MSG, UserWarning, stacklevel=2)
        _hook.grad_epoch += 1
        if _hook.tracer is not None:
            _hook.tracer.read_grad(self)
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                                f"{type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has data of a different size: grad is "
                                   f"{value.shape} but tensor is {self.shape}")
            if value.dtype is not self.dtype:
                raise RuntimeError("assigned grad has data of a different type")
        if _hook.tracer is not None:
            _hook.tracer.set_grad(self, value)
        _hook.grad_epoch += 1
        self._grad = value

    @property
    def retains_grad(self):
        return self._node >= 0 and self._node in TAPE.retained

    def retain_grad(self):
        if self._node < 0:
            if not self._rg:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        with TAPE.lock:
            TAPE.retained[self._node] = weakref.ref(self)

    def detach(self):
        """A new leaf sharing this tensor's storage and version counter."""
        t = _wrap(self._a, False)
        t._ver = self._shared_version()
        return t

    def detach_(self):
        with TAPE.lock:
            if self._node >= 0:     # the row forgets this tensor too, or compaction re-links it
                TAPE.outs[self._node] = None
                TAPE.retained.pop(self._node, None)
            self._node = -1
            self._rg = False
        return self

    @property
    def data(self):
        """A new leaf sharing this tensor's storage but not its version counter (PyTorch's
        .data: writes through it are not seen by autograd's in-place checks)."""
        return _wrap(self._a, False)

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {_type_name(value)}")
        if self._rg and not value._a.dtype.kind == "f":
            raise RuntimeError("data set to a tensor that requires gradients must be floating "
                               "point or complex dtype")
        # the storage changes, the version counter stays this tensor's (PyTorch's set_data);
        # views of the old storage no longer alias it
        old_shape = self._a.shape
        if value._a.dtype != self._a.dtype and self._node < 0:
            self._leafvar = -1      # (a leaf row of the old dtype: see Module._apply_dtype)
        self._a = value._a
        self._base = self._views = None
        TAPE.storage_replaced(self, old_shape)

    def _is_view(self):
        return self._base is not None

    def _shared_version(self):
        if self._ver is None:
            self._ver = [0, 64]
        return self._ver

    @property
    def _version(self):
        return self._ver[0] if self._ver else 0

    def _write(self, values):
        """Copy values into this tensor's storage in place (as an optimizer step or init does),
        bumping its version: graphs that saved the old values refuse to replay."""
        with TAPE.lock:
            if values is not None:
                np.copyto(self._a, values, casting="unsafe")
            TAPE.note_modified(self)

    # ---- shape and values ------------------------------------------------------------------
    @property
    def shape(self):
        return _size(self._a.shape)

    def size(self, dim=None):
        if dim is None:
            return _size(self._a.shape)
        return self._a.shape[_check_dim(dim, self._a.ndim)]

    def dim(self):
        return self._a.ndim

    ndim = property(dim)

    def ndimension(self):
        return self._a.ndim

    def numel(self):
        return self._a.size

    nelement = numel

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._a.shape[0]

    @property
    def dtype(self):
        return dtypes.from_numpy_dtype(self._a.dtype)

    @property
    def device(self):
        return _device.CPU

    is_cuda = False
    is_cpu = True

    def get_device(self):
        return -1

    def is_floating_point(self):
        return self._a.dtype.kind == "f"

    def item(self):
        if _hook.tracer is not None:
            _hook.tracer.reads_value("item()")
        if self._a.size != 1:
            raise RuntimeError(f"a Tensor with {self._a.size} elements cannot be converted to Scalar")
        return self._a.reshape(()).item()

    def tolist(self):
        if _hook.tracer is not None:
            _hook.tracer.reads_value("tolist()")
        return self._a.tolist()

    def numpy(self, force=False):
        if self._rg and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        if _hook.tracer is not None:
            _hook.tracer.reads_value("numpy()")
        return self._a.view()      # shares memory, not the array object (its shape is ours)

    def __array__(self, dtype=None, copy=None):
        if _hook.tracer is not None:
            _hook.tracer.reads_value("a conversion to a numpy array")
        if copy:
            return self._a.astype(self._a.dtype if dtype is None else dtype)
        return self._a.view() if dtype is None else self._a.astype(dtype, copy=False).view()

    def __float__(self):
        global _scalar_warned
        if self._rg and not _scalar_warned:      # PyTorch warns once per process
            _scalar_warned = True
            warnings.warn("Converting a tensor with requires_grad=True to a scalar may lead to "
                          "unexpected behavior.\nConsider using tensor.detach() first.",
                          UserWarning, stacklevel=2)
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __bool__(self):
        if _hook.tracer is not None:
            _hook.tracer.reads_value("bool()")
        if self._a.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return builtins.bool(self._a.reshape(()).item())

    def __index__(self):
        if _hook.tracer is not None:
            _hook.tracer.reads_value("an index")
        return self._a.reshape(()).__index__()

    def __hash__(self):
        return id(self)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._a.shape[0]))

    def __repr__(self):
        suffixes = []
        if self._node >= 0:
            name = registry.OPS[TAPE.rows[self._node * WIDTH + OP]].grad_fn
            if name is None:        # an autograd.Function's output: named by its class
                name = self.grad_fn.name()
            suffixes.append(f"grad_fn=<{name}>")
        elif self._rg:
            suffixes.append("requires_grad=True")
        return tensor_repr(self._a, self.dtype, suffixes)

    __str__ = __repr__

    def __reduce__(self):
        # the array that holds the memory, pickled once per pickle, so views keep sharing it
        root = _storage.root_of(self._a)
        if root is self._a:
            return (_rebuild, (self._a, self._rg))
        a = self._a
        return (_rebuild_view, (root, _storage.byte_offset(a, root), a.shape, a.strides, a.dtype,
                                self._rg))

    def __deepcopy__(self, memo):
        if self._node >= 0:
            raise RuntimeError(
                "Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                "protocol at the moment.  If you were attempting to deepcopy a module, this may be "
                "because of a jitgrad.nn.utils.weight_norm usage, see "
                "https://github.com/pytorch/pytorch/pull/103001")
        if id(self) in memo:
            return memo[id(self)]
        t = _wrap(_storage.deepcopy_array(self._a, memo), self._rg)
        memo[id(self)] = t
        if self._grad is not None:
            _hook.grad_epoch += 1
            t._grad = self._grad.__deepcopy__(memo)
        return t

    def __format__(self, spec):
        if self._a.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    # ---- conversions and memory ------------------------------------------------------------
    def type(self, dtype=None, non_blocking=False, **kwargs):
        if dtype is None:
            return "jitgrad." + self.dtype.tensor_type
        return self.to(_type_dtype(dtype))

    def type_as(self, other):
        return self.to(other.dtype)

    def cpu(self, memory_format=None):
        return self

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        _device.as_device(device)      # x.cuda(0): the device index is refused first, as PyTorch
        raise AssertionError("Torch not compiled with CUDA enabled")

    def element_size(self):
        return self._a.itemsize

    @property
    def itemsize(self):
        return self._a.itemsize

    @property
    def nbytes(self):
        return self._a.nbytes

    def is_contiguous(self, memory_format=None):
        return self._a.flags.c_contiguous

    def stride(self, dim=None):
        """Strides in elements, as PyTorch counts them."""
        a = self._a
        if dim is None:
            return tuple(s // a.itemsize for s in a.strides)
        if a.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        return a.strides[_check_dim(dim, a.ndim)] // a.itemsize

    def data_ptr(self):
        return self._a.__array_interface__["data"][0]

    def storage_offset(self):
        """Where the first element is in the memory this tensor views, in elements."""
        root = self._a
        while isinstance(root.base, np.ndarray):
            root = root.base
        return (self.data_ptr() - root.__array_interface__["data"][0]) // self._a.itemsize

    def apply_(self, callable):
        """Applies callable to each element in place (CPU tensors without grad, as PyTorch)."""
        if self._rg:
            raise RuntimeError("Can't call apply_() on Variable that requires grad. Use "
                               "var.detach().apply_() instead.")
        with np.nditer(self._a, flags=["refs_ok"], op_flags=["readwrite"]) as it:
            for x in it:
                x[...] = _real(callable(x.item()))
        return self

    def map_(self, tensor, callable):
        """self[i] = callable(self[i], tensor[i]) in place, tensor broadcast to self's shape."""
        if self._rg:
            raise RuntimeError("Can't call map_() on Variable that requires grad. Use "
                               "var.detach().map_() instead.")
        if tensor._a.dtype != self._a.dtype:
            raise TypeError(f"map_: expected {self.type()} for 'other' (got {tensor.type()})")
        other = np.broadcast_to(tensor._a, self._a.shape)
        with np.nditer([self._a, other], flags=["refs_ok"],
                       op_flags=[["readwrite"], ["readonly"]]) as it:
            for x, y in it:
                x[...] = _real(callable(x.item(), y.item()))
        return self


_scalar_warned = False


def _real(v):
    if not isinstance(v, (numbers.Real, np.generic)):
        raise TypeError(f"must be real number, not {type(v).__name__}")
    return v


_CUDA_INIT = (
    "Cannot initialize CUDA without ATen_cuda library. PyTorch splits its backend into two shared "
    "libraries: a CPU library and a CUDA library; this error has occurred because you are trying "
    "to use some CUDA functionality, but the CUDA library has not been loaded by the dynamic "
    "linker for some reason.  The CUDA library MUST be loaded, EVEN IF you don't directly use any "
    "symbols from the CUDA library! One common culprit is a lack of -Wl,--no-as-needed in your "
    "link arguments; many dynamic linkers will delete dynamic library dependencies if you don't "
    "depend on any of their symbols.  You can check if this has occurred by using ldd on your "
    "binary to see if there is a dependency on *_cuda.so library.")


def _type_dtype(t):
    """The dtype Tensor.type(t) converts to: a dtype, a type name ("torch.FloatTensor" or
    "jitgrad.FloatTensor"), or a legacy constructor (jitgrad.FloatTensor)."""
    if isinstance(t, dtypes.dtype):
        return t
    name = t if isinstance(t, str) else getattr(t, "__name__", None)
    if isinstance(name, str):
        short = name.split(".", 1)[1] if name.startswith(("torch.", "jitgrad.")) else name
        if short.startswith("cuda."):
            raise RuntimeError(_CUDA_INIT)
        for d in dtypes._ALL:
            if d.tensor_type == short and (isinstance(t, str) or callable(t)):
                return d
        if isinstance(t, str):
            raise ValueError(f"invalid type: '{t}'")
    raise TypeError(f"type(): argument 'dtype' must be jitgrad.dtype, not {_type_name(t)}")


def _init(t, a, rg):
    t._a = a
    t._node = -1
    t._leafvar = -1
    t._rg = rg
    t._grad = None
    t._ver = None
    t._base = t._views = None


def _wrap(a, rg=False):
    t = Tensor.__new__(Tensor)
    _init(t, a, rg)
    return t


def _rebuild(a, rg):
    return _wrap(a, rg)


def _rebuild_view(root, offset, shape, strides, dtype, rg):
    return _wrap(_storage.view_of(root, offset, shape, strides, dtype), rg)


def _type_name(v):
    m = type(v).__module__
    return type(v).__name__ if m == "builtins" else f"{m}.{type(v).__name__}"


def _check_dim(dim, ndim):
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def _to_array(data, np_dtype=None):
    """Convert data as torch.tensor does: floats -> the default dtype, ints -> int64, arrays keep
    their dtype."""
    if isinstance(data, Tensor):
        a = data._a
    elif isinstance(data, (np.ndarray, np.generic)):   # numpy data keeps its dtype
        a = np.asarray(data)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
            data = _untensor(data)
        a = np.asarray(data)
        if np_dtype is None:
            if a.dtype.kind == "f":
                a = a.astype(dtypes.default_float.np)
            elif a.dtype.kind in "iu":
                a = a.astype(np.int64)
    if np_dtype is not None:
        a = a.astype(np_dtype)
    elif a.dtype.kind not in "fiub":
        raise TypeError(f"can't convert data of type {a.dtype} to a tensor")
    return np.array(a, copy=True)


def _legacy_array(args, np_dtype):
    """The array of a legacy constructor (Tensor, FloatTensor, ...): T(2, 3) or T(Size) are
    zeros of that size, T(data) a copy of data, T() empty."""
    if not args:
        return np.zeros((0,), np_dtype)
    if len(args) == 1 and isinstance(args[0], Size):
        return np.zeros(args[0], np_dtype)
    if len(args) == 1 and not isinstance(args[0], (builtins.int, np.integer)):
        return _to_array(args[0], np_dtype)
    return np.zeros(args, np_dtype)


def _flat(x):
    for v in x:
        if isinstance(v, (list, tuple)):
            yield from _flat(v)
        else:
            yield v


def _untensor(x):
    return [_untensor(v) if isinstance(v, (list, tuple)) else (v.item() if isinstance(v, Tensor) else v)
            for v in x]


# ---- grad_fn views of tape rows ----------------------------------------------------------
class Node:
    """A read-only view of one tape row, named as PyTorch names its autograd nodes."""
    __slots__ = ("_serial", "__weakref__")

    def name(self):
        return type(self).__name__

    def _row(self):
        i = TAPE.index_of_serial(self._serial)
        if i < 0:
            raise RuntimeError("this grad_fn's graph has been released")
        return i

    @property
    def next_functions(self):
        with TAPE.lock:
            i = self._row()
            row = TAPE.row(i)
            if row[FLAGS] & F_MULTI:      # inputs listed in the int arena: [n, (var, role, param) * n]
                o = row[I1]
                return tuple((_next_fn(int(TAPE.ints[o + 1 + 3 * e])), 0)
                             for e in range(int(TAPE.ints[o])))
            arity = registry.OPS[row[OP]].arity
            return tuple((_next_fn(v), 0) for v in (row[A], row[B])[:arity])

    def __repr__(self):
        return f"<{type(self).__name__} object at {hex(id(self))}>"


class AccumulateGrad:
    """The grad_fn-graph node of a leaf: where its gradient accumulates."""
    __slots__ = ("variable",)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "torch::autograd::AccumulateGrad"

    def __repr__(self):
        return f"<AccumulateGrad object at {hex(id(self))}>"


_node_types = {}


def _grad_fn_at(i):
    with TAPE.lock:
        row = TAPE.row(i)
        serial = row[SERIAL]
        fn = TAPE.grad_fns.get(serial)
        if fn is None:
            name = registry.OPS[row[OP]].grad_fn
            cls = _node_types.get(name)
            if cls is None:
                cls = _node_types[name] = type(name, (Node,), {"__slots__": ()})
            fn = cls()
            fn._serial = serial
            TAPE.grad_fns[serial] = fn
        return fn


def _next_fn(v):
    while v >= 0:
        row = TAPE.row(v)
        op = registry.OPS[row[OP]]
        if op.grad_fn is None and row[SERIAL] in TAPE.grad_fns:    # an autograd.Function's node
            return TAPE.grad_fns[row[SERIAL]]
        if op.code == registry.LEAF:
            return AccumulateGrad(TAPE.leaves.get(v))
        if op.grad_fn is not None:
            return _grad_fn_at(v)
        v = row[A]          # hidden helper node (un-broadcast): show what it feeds from
    return None


def is_tensor(obj):
    return isinstance(obj, Tensor)


__all__ = ["Tensor", "Size", "is_tensor", "is_grad_enabled"]
