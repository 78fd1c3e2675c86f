"""autograd.Function: user-defined ops whose backward is Python.

``MyFunction.apply(*args)`` runs ``forward`` without recording, then appends one **Python node**:
a row with op PYTHON, the tensor inputs listed in its int data (F_MULTI) and the flag F_PAUSE.
The compiled replay stops before such a row; ``on_pause`` (the tape's hook) hands the row's
gradient to the Function's ``backward``, adds what it returns into the inputs' slots of the flat
gradient buffer, and the replay resumes after the row. A graph without Python nodes never stops.

One differentiable output is the node's own row. Several are laid end to end in the node's
gradient: each output gets a hidden OUTPUT row (the strided kernel) that adds its gradient into
its slice, and backward receives the slices. The context object is the node (``grad_fn``), as in
PyTorch: ``MyFunctionBackward``, one class per Function, kept by the tape (``Tape.py_nodes``)
while the row exists. With ``create_graph=True`` the recorded walk (graph.py) calls the same
backward under grad mode, so a backward written in jitgrad ops is differentiable again.
"""
import functools
import math
import warnings

import numpy as np

from .. import dtypes
from ..engine import registry
from ..engine.loop import F_F64, F_FREED, F_INTS, F_MULTI, F_PAUSE, F_SAVED, FLAGS, I1, SERIAL, WIDTH
from ..engine.tape import FREED_MSG, TAPE, _F64, _grad_mode, is_grad_enabled
from ..ops.indexing import _strided, _strided_formula
from ..tensor import Node, Tensor, _next_fn, _wrap
from . import anomaly, hooks

PYTHON = registry.defop(None, None, 0)    # a Function's node (its name is its class's)
OUTPUT = registry.defop(None, _strided, 1, x=_strided_formula)   # output j of a Function of
                                          # several: adds its gradient to its slice of the node's


def _c_strides(shape):
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= d
    return st[::-1]


class FunctionCtx:
    """What forward (or setup_context) tells backward: saved tensors and output properties."""

    def save_for_backward(self, *tensors):
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save variables, but argument {i} is of "
                                f"type {type(t).__name__}")
        self.to_save = tensors

    def save_for_forward(self, *tensors):
        self.saved_for_forward = tensors

    def mark_dirty(self, *args):
        self.dirty_tensors = args

    def mark_non_differentiable(self, *args):
        self.non_differentiable = args

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)


class _Saved:
    """A saved output of the Function itself: its values and its row's serial, not the tensor
    (which would keep its own node alive through the tape)."""
    __slots__ = ("a", "serial", "ver")

    def __init__(self, t, serial):
        self.a, self.serial, self.ver = t._a, serial, t._shared_version()

    def unpack(self):
        t = _wrap(self.a, True)
        t._node = TAPE.index_of_serial(self.serial)
        t._ver = self.ver
        return t


class BackwardCFunction(Node, FunctionCtx):
    """The node of a Function application and the ctx its forward and backward see."""
    _forward_cls = None
    _serial = -1
    _saved = ()
    _outputs = ()         # per forward output: None (not a tensor) or (serial, offset, shape, dtype)
    _inputs = ()          # per forward argument: None (not a tensor) or (requires_grad, shape, dtype)
    materialize_grads = True

    def name(self):
        return type(self).__name__

    def __repr__(self):
        return object.__repr__(self)

    @property
    def saved_tensors(self):
        if self._saved is None:
            raise RuntimeError(FREED_MSG)
        msg = TAPE.dirty.get(self._serial)
        if msg is not None:
            raise RuntimeError(msg)
        return tuple(t.unpack() if isinstance(t, _Saved) else t for t in self._saved)

    saved_variables = saved_tensors

    @property
    def next_functions(self):
        with TAPE.lock:
            row = self._row()
            o = TAPE.rows[row * WIDTH + I1]
            rows = {int(TAPE.ints[o + 2 + 3 * e]): int(TAPE.ints[o + 1 + 3 * e])
                    for e in range(int(TAPE.ints[o]))}
            return tuple((_next_fn(rows[p]) if p in rows else None, 0)
                         for p, meta in enumerate(self._inputs) if meta is not None)

    def apply(self, *grads):
        """Run the Function's backward on these output gradients (as the engine does)."""
        return _user_backward(self._forward_cls)(self, *grads)

    # ---- the engine's side -------------------------------------------------------------------
    def _entries(self, row):
        """(input row, forward argument position) of each input that requires grad."""
        o = TAPE.rows[row * WIDTH + I1]
        return [(int(TAPE.ints[o + 1 + 3 * e]), int(TAPE.ints[o + 2 + 3 * e]))
                for e in range(int(TAPE.ints[o]))]

    def _grads_in(self, reached, piece):
        """The gradients backward receives, one per forward output."""
        grads = []
        for spec in self._outputs:
            if spec is None:
                grads.append(None)
                continue
            serial, off, shape, dtype = spec
            if serial >= 0 and reached(serial):
                grads.append(piece(off, shape, dtype))
            else:
                grads.append(_wrap(np.zeros(shape, dtype)) if self.materialize_grads else None)
        return grads

    def _check(self, result):
        """backward's result as one gradient (or None) per forward argument, checked and fitted
        to the input's shape and dtype as torch's engine does."""
        name = self.name()
        if not isinstance(result, tuple):
            result = (result,)
        n = len(self._inputs)
        if len(result) > n and all(r is None for r in result[n:]):
            result = result[:n]
        if len(result) != n:
            raise RuntimeError(f"function {name} returned an incorrect number of gradients (expected "
                               f"{n}, got {len(result)})")
        out = []
        for i, (gi, meta) in enumerate(zip(result, self._inputs)):
            if gi is None:
                out.append(None)
                continue
            if not isinstance(gi, Tensor):
                raise RuntimeError(f"expected Variable or None (got {type(gi).__name__})")
            if meta is None:
                raise RuntimeError(f"function {name} returned a gradient different than None at "
                                   f"position {i + 1}, but the corresponding forward input was not "
                                   "a Variable")
            rg, shape, dtype = meta
            if not rg:
                out.append(None)
                continue
            if tuple(gi.shape) != shape:
                gi = _sum_to(gi, shape, name, i)
            if gi._a.dtype != dtype:
                gi = gi.to(dtypes.from_numpy_dtype(dtype))
            if TAPE.check_nan and np.isnan(gi._a).any():
                anomaly.report(self._serial, name, i)
            out.append(gi)
        return out

    def _backward_replay(self, row, g, need, goff, gsz):
        """At a pause of the compiled replay: backward on the row's gradient in g, its results
        added into the inputs' slots."""
        base = goff[row]

        def reached(serial):
            r = row if serial == self._serial else TAPE.index_of_serial(serial)
            return 0 <= r < need.size and need[r]

        def piece(off, shape, dtype):
            n = int(math.prod(shape))
            return _wrap(g[base + off: base + off + n].reshape(shape).astype(dtype))

        grads = self._grads_in(reached, piece)
        entries = self._entries(row)
        was = _grad_mode.enabled
        _grad_mode.enabled = False
        try:
            result = self._check(_user_backward(self._forward_cls)(self, *grads))
        finally:
            _grad_mode.enabled = was
        for v, p in entries:
            gi = result[p]
            if gi is not None:
                g[goff[v]: goff[v] + gsz[v]] += gi._a.reshape(-1)

    def _backward_graph(self, row, g, useful, give):
        """create_graph=True (graph.py): backward under grad mode on g (a tensor), its results
        handed to give(input row, gradient)."""
        single = len([s for s in self._outputs if s is not None and s[0] >= 0]) == 1

        def reached(serial):
            return serial == self._serial or TAPE.index_of_serial(serial) in useful

        def piece(off, shape, dtype):
            if single:
                return g
            n = int(math.prod(shape))
            return g.narrow(0, off, n).reshape(shape)

        grads = self._grads_in(reached, piece)
        result = self._check(_user_backward(self._forward_cls)(self, *grads))
        for v, p in self._entries(row):
            if result[p] is not None:
                give(v, result[p])

    def _release(self):
        self._saved = None


def _sum_to(gi, shape, name, index):
    """gi summed down to shape if shape expands to it, else torch's invalid-gradient error."""
    gs = tuple(gi.shape)
    lead = len(gs) - len(shape)
    ok = lead >= 0 and all(s == 1 or s == d for s, d in zip(shape, gs[lead:]))
    if not ok:
        raise RuntimeError(f"Function {name} returned an invalid gradient at index {index} - got "
                           f"{list(gs)} but expected shape compatible with {list(shape)}")
    dims = tuple(range(lead)) + tuple(lead + d for d, s in enumerate(shape) if s == 1 and gs[lead + d] != 1)
    if dims:
        gi = gi.sum(dim=dims, keepdim=True)
    return gi.reshape(shape)


def _user_backward(cls):
    backward, vjp = cls.backward, cls.vjp
    custom_backward = backward is not Function.backward
    custom_vjp = vjp is not Function.vjp
    if custom_backward and custom_vjp:
        raise RuntimeError("Implementing both 'backward' and 'vjp' for a custom Function is not "
                           "allowed. You should only implement one of them.")
    return vjp if custom_vjp else backward


class FunctionMeta(type):
    """Gives each Function subclass its node class, ``<Name>Backward``."""

    def __init__(cls, name, bases, attrs):
        cls._backward_cls = type(name + "Backward", (BackwardCFunction,), {"_forward_cls": cls})
        super().__init__(name, bases, attrs)


class Function(FunctionCtx, metaclass=FunctionMeta):
    """Base class of custom autograd ops, as torch.autograd.Function: subclass it with static
    ``forward(ctx, *args)`` (or ``forward(*args)`` plus ``setup_context(ctx, inputs, output)``)
    and ``backward(ctx, *grad_outputs)``, then call ``apply``."""

    def __init__(self, *args, **kwargs):
        warnings.warn(f"{self.__class__} should not be instantiated. Methods on autograd functions "
                      "are all static, so you should invoke them on the class itself. Instantiating "
                      "an autograd function will raise an error in a future version of PyTorch.",
                      DeprecationWarning, stacklevel=2)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Legacy autograd function with non-static forward method is deprecated. "
                           "Please use new-style autograd function with static forward method. "
                           "(Example: https://pytorch.org/docs/stable/autograd.html#torch.autograd."
                           "Function)")

    @staticmethod
    def forward(*args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for your "
                                  "custom autograd.Function to use it with backward mode AD.")

    vjp = backward

    @staticmethod
    def jvp(ctx, *grad_inputs):
        raise NotImplementedError("You must implement the jvp function for custom "
                                  "autograd.Function to use it with forward mode AD.")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = cls._backward_cls()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._rg for a in args)
        was = _grad_mode.enabled
        _grad_mode.enabled = False
        try:
            if cls.setup_context is not Function.setup_context:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        finally:
            _grad_mode.enabled = was
        if not (was and any(ctx.needs_input_grad)):
            return out
        return _record(ctx, args, out)


def _record(ctx, args, out, force=False):
    """Append the Python node of ctx's application to args, which returned out; returns out
    with its tensors made the node's outputs (force: record even if no input requires grad)."""
    tape = TAPE
    outs = out if isinstance(out, tuple) else (out,)
    non_diff = {id(t) for t in getattr(ctx, "non_differentiable", ())}
    dirty = {id(t) for t in getattr(ctx, "dirty_tensors", ())}
    inputs = {id(a) for a in args if isinstance(a, Tensor)}
    results, diff = list(outs), []
    for j, o in enumerate(outs):
        if not isinstance(o, Tensor):
            continue
        if id(o) in dirty:
            if o._node < 0 and o._rg:
                raise RuntimeError("a leaf Variable that requires grad has been used in an "
                                   "in-place operation.")
            t = o
        elif id(o) in inputs:             # returned as is: an alias, as torch's view_as
            t = _wrap(o._a)
            t._ver = o._shared_version()
            t._base = o
        else:
            t = o
        results[j] = t
        if id(o) not in non_diff and t._a.dtype.kind == "f":
            diff.append((j, t))
    ctx._inputs = tuple((a._rg, tuple(a._a.shape), a._a.dtype) if isinstance(a, Tensor) else None
                        for a in args)
    specs = [None if not isinstance(t, Tensor) else [-1, 0, tuple(t._a.shape), t._a.dtype]
             for t in results]
    if not diff and not force:
        ctx._outputs = tuple(None if s is None else tuple(s) for s in specs)
        return out
    with tape.lock:
        if diff:
            tape.prepare(diff[0][1]._a)
        entries = [0]
        for p, a in enumerate(args):
            if isinstance(a, Tensor) and a._rg:
                entries += [tape.var(a, a._a.shape), p, 0]
                entries[0] += 1
        for j, t in diff:
            if id(outs[j]) in dirty:
                tape.note_modified(t)
                if t._node >= 0:
                    tape.outs[t._node] = None   # its tensor moves to this Function's node
        saved = [t for t in getattr(ctx, "to_save", ()) if t is not None]
        flags = F_MULTI | F_INTS | F_PAUSE | (F_SAVED if saved else 0)
        single = len(diff) == 1
        shape = diff[0][1]._a.shape if single else (sum(t._a.size for _, t in diff),)
        serial = tape.serial
        if saved:
            tape.saver_row[serial] = len(tape.outs)
        hub = tape.append(PYTHON, -1, -1, -1, shape, 0, tape.save_ints(entries), flags,
                          diff[0][1] if single else None)
        ctx._serial = serial
        tape.py_nodes[serial] = ctx
        tape.grad_fns[serial] = ctx
        if single:
            j, t = diff[0]
            t._node, t._rg = hub, True
            specs[j][0] = serial
        else:
            if diff:
                tape.values[hub] = np.broadcast_to(np.zeros((), diff[0][1]._a.dtype), shape)
            off = 0
            for j, t in diff:
                s = tape.serial
                r = tape.append(OUTPUT, hub, -1, -1, t._a.shape, 0,
                                tape.save_ints([off] + _c_strides(t._a.shape)), F_INTS, t)
                if (t._a.dtype == _F64) != tape.f64:      # flagged with its own dtype
                    tape.rows[r * WIDTH + FLAGS] ^= F_F64
                    tape.has64 = True
                tape.grad_fns[s] = ctx
                t._node, t._rg = r, True
                specs[j][0], specs[j][1] = s, off
                off += t._a.size
        ctx._outputs = tuple(None if s is None else tuple(s) for s in specs)
        by_output = {id(outs[j]): specs[j][0] for j, t in diff if t is outs[j]}   # (not aliases)
        kept = []
        for t in getattr(ctx, "to_save", ()):
            if t is None:
                kept.append(None)
                continue
            tape.note_saved(t, serial)
            kept.append(_Saved(t, by_output[id(t)]) if id(t) in by_output else t)
        ctx._saved = tuple(kept)
    return tuple(results) if isinstance(out, tuple) else results[0]


def on_pause(row, g, need, goff, gsz, free_graph):
    """The tape's pause hook: run row's tensor hooks on its gradient in g, then its Function's
    backward if it is a Python node. Returns True if row's compiled rule must still run."""
    tape = TAPE
    base = row * WIDTH
    serial = tape.rows[base + SERIAL]
    was = _grad_mode.enabled
    _grad_mode.enabled = False
    try:
        on_row = tape.hooks.get(serial)
        if on_row:
            o, n = goff[row], gsz[row]
            value = tape.values[row]
            dtype = value.dtype if value is not None else (
                _F64 if tape.rows[base + FLAGS] & F_F64 else np.dtype(np.float32))
            grad = _wrap(g[o: o + n].reshape(tape.shape_of(row)).astype(dtype))
            new = hooks.run(on_row, grad)
            g[o: o + n] = new._a.reshape(-1)
    finally:
        _grad_mode.enabled = was
    node = tape.py_nodes.get(serial)
    if node is None:
        return True
    try:
        node._backward_replay(row, g, need, goff, gsz)
    except Exception:
        if anomaly.is_anomaly_enabled():
            anomaly.warn_forward_trace(serial, node.name())
        raise
    if free_graph:
        tape.rows[base + FLAGS] |= F_FREED
        node._release()
    return False


TAPE.on_pause = on_pause


def once_differentiable(fn):
    """A backward that is not itself differentiable: it runs without recording, and a second
    differentiation through its result raises (as torch.autograd.function.once_differentiable)."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        was = _grad_mode.enabled
        _grad_mode.enabled = False
        try:
            outputs = fn(ctx, *args)
        finally:
            _grad_mode.enabled = was
        if not is_grad_enabled() or not any(isinstance(a, Tensor) and a._rg for a in args):
            return outputs
        if not isinstance(outputs, tuple):
            return _DelayedError.apply_to(outputs)
        return tuple(_DelayedError.apply_to(o) for o in outputs)
    return wrapper


class _DelayedError(Function):
    """Marks a once_differentiable backward's results: differentiating them raises."""

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("trying to differentiate twice a function that was marked with "
                           "@once_differentiable")

    @classmethod
    def apply_to(cls, t):
        if not isinstance(t, Tensor):
            return t
        ctx = cls._backward_cls()
        ctx.needs_input_grad = (False,)
        return _record(ctx, (t,), t, force=True)


_DelayedError._backward_cls.__name__ = _DelayedError._backward_cls.__qualname__ = "Error"   # torch's


class NestedIOFunction(Function):
    """The legacy interface: an instance is called on tensors; subclasses define
    ``forward_extended(*inputs)`` and ``backward_extended(*grad_outputs)`` and use ``self`` as
    the context (save_for_backward, saved_tensors, mark_dirty, mark_non_differentiable)."""
    _applies = {}

    def __init__(self):
        self._ctx = None

    def __call__(self, *inputs):
        cls = type(self)
        fn = NestedIOFunction._applies.get(cls)
        if fn is None:
            fn = NestedIOFunction._applies[cls] = FunctionMeta(cls.__name__, (_Nested,), {})
        return fn.apply(self, *inputs)

    def save_for_backward(self, *args):
        self.to_save = args

    @property
    def saved_tensors(self):
        return self._ctx.saved_tensors

    def forward_extended(self, *input):
        raise NotImplementedError

    def backward_extended(self, *grad_output):
        raise NotImplementedError


class _Nested(Function):
    """The Function a NestedIOFunction instance applies: its first argument is the instance."""

    @staticmethod
    def forward(ctx, fn, *inputs):
        fn._ctx = ctx
        out = fn.forward_extended(*inputs)
        for name in ("to_save", "dirty_tensors", "non_differentiable"):
            if hasattr(fn, name):
                setattr(ctx, name, getattr(fn, name))
        ctx.fn = fn
        return out

    @staticmethod
    def backward(ctx, *grads):
        result = ctx.fn.backward_extended(*grads)
        return (None,) + (result if isinstance(result, tuple) else (result,))


# the functions' and hooks' Tensor methods (tensor.py imports nothing above the engine)
Tensor.register_hook = hooks.register_hook
Tensor.register_post_accumulate_grad_hook = hooks.register_post_accumulate_grad_hook
