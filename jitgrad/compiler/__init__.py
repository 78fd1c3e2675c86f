"""jitgrad.compile: a training step traced once, then replayed as compiled calls.

The first call of a compiled function runs eagerly under a Trace (trace.py), which sees every op,
backward and optimizer call; if everything it saw can be replayed, the trace becomes a Program
(program.py): each op's forward kernel and the reverse interpreter over flat buffers, one njit
call per forward+backward, with "host" calls (zero_grad, scheduler.step, ``p.grad = None``) in
between. An ``optimizer.step()`` right after a backward runs inside its call (SGD, Adam, AdamW:
their compiled update, hyperparameters read at each call), or as a host call whenever that could
differ from ``step()``. Nothing is compiled per model: the kernels are the op table's and the
optimizers', compiled once per install.

Later calls replay when their guards hold: the same grad mode, the same argument types, shapes,
dtypes, requires_grad flags and Python numbers (a change re-traces, up to CACHE_SIZE traces per
function), the same storage and requires_grad for every tensor captured from outside, the same
train/eval mode of every module called. What a replay cannot reproduce (an op without a forward
kernel, ``.item()`` and other Python reads of values, in-place ops, reseeding a generator,
autograd.grad without create_graph, backward(create_graph=True)) makes that function run eagerly, with a warning naming the reason (``fullgraph=True``: an error).
Python side effects other than those calls happen only while tracing, as under jax.jit.
``autograd.grad(..., create_graph=True)`` inside the step is traced like the rest: its gradient
walk records ops, which the program replays; tensors made by factories from Python values
(zeros, full, arange, a backward's seed of ones) are kept as traced, like captured tensors.
Random draws (dropout masks, rand/randn) are drawn again before each replay's compiled call,
from the same generator, so a replay draws what the eager call would (manual_seed outside the
function makes both reproducible). A function that returns a graph without calling backward (a
compiled module's forward under autograd) hands out its replays' results as one node whose
backward is the program's (node.py). A compiled function called while another is traced runs
inline, as part of that trace.
"""
import math
import numbers
import operator
import warnings

import numpy as np

from ..engine.loop import F_FREED, FLAGS, LEAF, OP, WIDTH
from ..engine.replay import P_X, P_Y
from ..engine.tape import TAPE, _grad_mode, grad_off, is_grad_enabled
from ..autograd.hooks import _leaf_hooks, _post_hooks
from ..engine import hook as _hook
from ..nn.modules import module as _module
from ..nn.modules.module import Module
from ..tensor import Tensor, _wrap
from .node import ForwardGraph
from .program import Program, ReplayStopped, address as _address, bump_versions
from .trace import Trace, TraceFailed

__all__ = ["compile", "CompiledFunction", "OptimizedModule"]

CACHE_SIZE = 8


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None,
            options=None, disable=False):
    """torch.compile's signature; backend, mode, dynamic and options are accepted and ignored
    (there is one backend: the compiled replay)."""
    if model is None:
        return lambda m: compile(m, fullgraph=fullgraph, dynamic=dynamic, backend=backend,
                                 mode=mode, options=options, disable=disable)
    if not callable(model):
        raise TypeError(f"jitgrad.compile expects a callable, not {type(model).__name__}")
    if disable:
        return model
    if isinstance(model, Module):
        return OptimizedModule(model, fullgraph)
    return CompiledFunction(model, fullgraph)


class CompiledFunction:
    def __init__(self, fn, fullgraph=False):
        self.fn = fn
        self.fullgraph = fullgraph
        self.traces = {}          # guard key -> _Compiled, or the reason it runs eagerly
        self._warned = False
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __get__(self, obj, objtype=None):       # a compiled method binds like a function
        return self if obj is None else _bound(self, obj)

    def __call__(self, *args, **kwargs):
        if _hook.tracer is not None:    # called by a function being traced: part of its trace
            return self.fn(*args, **kwargs)
        key = _key(args, kwargs)
        entry = self.traces.get(key)
        if isinstance(entry, _Compiled):
            # (one program's buffers: one replay at a time. The tape's lock, which a backward
            # reaching a replay's node holds: one lock, taken in one order)
            with TAPE.lock:
                holds = entry.holds()
                if holds:
                    states = [g.bit_generator.state for g in entry.generators] \
                        if entry.generators else ()
                    try:
                        return entry.replay(args, kwargs)
                    except _RunEagerly:     # nothing ran: eager raises where its op is, after
                        pass                # what the step does before it
                    except ReplayStopped:   # nothing outside changed but the draws: as if not run
                        for g, state in zip(entry.generators, states):
                            g.bit_generator.state = state
            if holds:
                return self.fn(*args, **kwargs)
            del self.traces[key]                 # captured storage or a module's mode changed
            entry = None
        if entry is not None or len(self.traces) >= CACHE_SIZE:
            if entry is None:
                self._eager_because(f"more than {CACHE_SIZE} different argument signatures")
            return self.fn(*args, **kwargs)
        trace = Trace()
        if not TAPE.plain:
            trace.error = "anomaly mode (detect_anomaly) is on: its checks run eagerly"
        tensor_args = [(path, v) for path, v in _leaves((args, kwargs)) if isinstance(v, Tensor)]
        trace.arguments = {id(v._a): path for path, v in tensor_args}
        with trace.active():
            result = self.fn(*args, **kwargs)
        try:
            if trace.error:
                raise TraceFailed(trace.error)
            returned = [v for _, v in _leaves(result) if isinstance(v, Tensor)]
            # a graph for the caller to differentiate: replays record it as one node (node.py)
            graph = not _backward_ran(trace) and \
                any(v._rg and trace.slots.get(id(v._a), -1) >= 0 for v in returned)
            program = Program(trace, [trace.slots.get(id(v._a), -1) for v in returned], cut=graph)
            self.traces[key] = _Compiled(trace, program, tensor_args, result, returned, self.fn,
                                         graph)
        except TraceFailed as e:
            self.traces[key] = str(e)
            self._eager_because(str(e))
        finally:
            trace.release()
        return result

    def _eager_because(self, reason):
        if self.fullgraph:
            raise RuntimeError(f"jitgrad.compile(fullgraph=True): {self.__name__} cannot be "
                               f"replayed: {reason}")
        if not self._warned:
            self._warned = True
            warnings.warn(f"jitgrad.compile: {self.__name__} runs eagerly: {reason}", UserWarning,
                          stacklevel=3)


def _bound(compiled, obj):
    def method(*args, **kwargs):
        return compiled(obj, *args, **kwargs)
    return method


class _Compiled:
    """One trace's program and what a call must match to replay it."""

    def __init__(self, trace, program, tensor_args, result, returned, fn, graph=False):
        """tensor_args: (path, tensor) of the call's tensor arguments; returned: the tensors in
        result (both as _leaves finds them); fn: the function traced; graph: whether a replay
        hands out its results as a graph (node.py)."""
        self.program = program
        self.generators = trace.generators      # (a replay stopped early puts them back)
        self.grad_mode = is_grad_enabled()
        arg_ext = {}                 # ext index -> where that argument is (requires grad)
        for path, v in tensor_args:
            slot = trace.slots.get(id(v._a))
            if slot is not None and slot < 0 and id(v._a) not in trace.int_slots:
                arg_ext.setdefault(-slot - 2, path)
        self.arg_ext = [(e, _getter(path)) for e, path in arg_ext.items()]
        self.arg_copies = [(_getter(path), slot, n) for path, slot, n in trace.arg_copies]
        self.int_copies = [(_getter(path), slot, n) for path, slot, n in trace.int_copies]
        self.checks = trace.checks
        captured = [(t, a, t._rg) for e, (t, a) in enumerate(trace.ext)
                    if e not in arg_ext and e not in trace.grad_ext]
        captured += [(t, a, False) for t, a in trace.iext]
        # holds() checks each tensor's array (by identity: the arrays are kept alive here) and
        # requires_grad against these (one loop: faster than mapping attrgetters into lists)
        self.captured = captured
        self.modules = [m for m, _ in trace.modules.values()]
        self.training = [mode for _, mode in trace.modules.values()]
        # what the trace took as constants: fn's own globals and closure variables, Python
        # numbers by value, tensors and modules by identity (rebinding `w = ...` makes another
        # tensor); each (where, name, value), where a dict or a _Cell
        self.settings = []
        self.bound = []
        func = getattr(fn, "__func__", fn)
        code = getattr(func, "__code__", None)
        if code is not None:
            places = [(func.__globals__, k) for k in code.co_names]
            places += [(_Cell(c), k) for k, c in zip(code.co_freevars, func.__closure__ or ())]
            for where, k in places:
                v = where.get(k, _MISSING)
                if _is_setting(v):
                    self.settings.append((where, k, v))
                elif isinstance(v, (Tensor, Module)):
                    self.bound.append((where, k, v))
        self.constants = bool(self.bound or self.settings)
        # the modules the step called or reads, and all their submodules: each one's parameters,
        # buffers, submodules and hooks by identity (a layer replaced, `m.weight =
        # Parameter(...)`, a hook added is not what was traced), and its settings (Dropout's p,
        # a LeakyReLU's slope) by value; each (where, name, value) as the settings'. Checked
        # again only after a module changed (_modules_hold).
        tree = {}
        for m in self.modules + [v for _, _, v in self.bound if isinstance(v, Module)]:
            tree.update((id(sub), sub) for sub in m.modules())
        self.module_settings = [(m.__dict__, k, v) for m in tree.values() for k, v in m.__dict__.items()
                                if _is_setting(v) and k != "training"]
        self.module_stores = [(m.__dict__, kind, list((m.__dict__.get(kind) or {}).items()))
                              for m in tree.values() for kind in _MODULE_STORES]
        self.module_stores += [(_module_globals, kind, list(_module_globals[kind].items()))
                               for kind in _GLOBAL_HOOKS]
        self.modules_seen = _hook.module_changes
        self.value_guards = trace.value_guards
        # per optimizer whose zero_grad the trace folded: the ids of its groups' parameters (the
        # trace keeps them alive)
        self.zeroed = [(opt, list(map(id, params))) for opt, params in trace.zeroed]
        self.grad_reads = trace.grad_reads
        # (the guards but captured tensors and modules, which most steps have none of)
        self.other_guards = bool(self.constants or self.value_guards or self.zeroed or self.grad_reads)
        self.writes = sorted(trace.writes.items())  # (ext index, in-place writes into it)
        self.tensors = [t for t, _ in trace.ext]
        self.written = [(self.tensors[e], n) for e, n in self.writes]   # (the plain call's)
        # unrecorded writes (BatchNorm's running statistics: Trace.later), run after the call
        # with views of the values they read, where nothing in the step reads what they write
        self.later = [(fn, [program.v[s: s + math.prod(shape)].reshape(shape) for s, shape in slots])
                      for fn, slots, _ in trace.deferred]
        deferred = [t._a for _, _, ts in trace.deferred for t in ts]     # (what they write)
        slots = {trace.slots.get(id(a)) for a in deferred} - {None}
        if slots & set(program.prog[:, [P_X, P_Y]].ravel().tolist() + trace.pints) or \
                any(id(a) in trace.int_slots for a in deferred):
            raise TraceFailed("it reads a tensor it writes in place without recording "
                              "(a running statistic)")
        # the data addresses of the tensors from outside (the trace keeps the arrays alive;
        # holds() checks they are still the tensors' storage before a replay reads them)
        self.ext = np.array([_address(a) for _, a in trace.ext] + [0], np.int64)
        self.iext = np.array([_address(a) for _, a in trace.iext] + [0], np.int64)
        self.int_arrays = [a for _, a in trace.iext]
        program.bind(self.ext, self.iext)
        # (nothing to copy in or check before a call: replay goes straight to the program)
        self.plain = not (self.arg_copies or self.int_copies or self.arg_ext or self.checks or trace.deferred)
        if trace.retains_graph and any(v._rg and v._node >= 0 and
                                       not TAPE.rows[v._node * WIDTH + FLAGS] & F_FREED
                                       for v in returned):
            raise TraceFailed("it returns a tensor whose graph a caller's backward may still use "
                              "(retain_graph=True): a replay returns values, not a graph")
        # what a returned tensor from outside is after each replay, as eagerly: an argument is
        # this call's, a leaf's .grad that leaf's .grad now
        known = {id(t): ("tensor", -e - 2, None) for e, (t, _) in enumerate(trace.ext)}
        known.update((id(v), ("arg", _getter(path))) for path, v in tensor_args)
        known.update((id(t._grad), ("grad", e)) for e, (t, _) in enumerate(trace.ext)
                     if t._grad is not None)
        outside = [a for _, a in trace.ext] + [a for _, a in trace.iext] + \
            [v._a for _, v in tensor_args] + [t._grad._a for t, _ in trace.ext if t._grad is not None]
        self.result = _spec(result, trace.slots, program.v, known, outside)
        self.again = _repeats(self.result)      # (a tensor in it twice: see _build)
        made = list({id(v): v for v in returned if trace.slots.get(id(v._a), -1) >= 0}.values())
        for i, v in enumerate(made):
            if any(np.may_share_memory(v._a, w._a) for w in made[i + 1:]):
                raise TraceFailed("it returns two tensors on one storage (a view of another): a "
                                  "replay would return copies")
        # a result that is one value the program computes: its view in v
        self.one = self.result[2] if self.result[0] == "tensor" and self.result[1] >= 0 else None
        self.graph = _forward_graph(trace, program, known, made, tensor_args) if graph else None
        if graph:
            self.one = None

    def holds(self):
        for t, a, rg in self.captured:
            if t._a is not a or t._rg != rg:
                return False
        if self.other_guards and not self._others_hold():
            return False
        seen = _hook.module_changes
        if self.modules_seen != seen:
            if not self._modules_hold():
                return False
            self.modules_seen = seen
        return True

    def _others_hold(self):
        if self.constants and not self._constants_hold():
            return False
        for t, a, values in self.value_guards:
            if t._a is not a or not np.array_equal(a, values):
                return False
        for t, g in self.grad_reads:
            if t._grad is not g:
                return False
        for optimizer, ids in self.zeroed:
            if [i for group in optimizer.param_groups for i in map(id, group["params"])] != ids:
                return False
        return True

    def _modules_hold(self):
        for where, kind, items in self.module_stores:
            store = where.get(kind) or {}
            if len(store) != len(items):
                return False
            for name, v in items:
                if store.get(name) is not v:
                    return False
        for t in self.tensors if self.graph is None else ():    # (a hook registered on a
            if _leaf_hooks.get(id(t)) or _post_hooks.get(id(t)):   # leaf: a replay would skip
                return False            # it, but for a graph's, whose backward is the caller's)
        for where, k, v in self.module_settings:
            now = where.get(k, _MISSING)
            if now is not v and (type(now) is not type(v) or now != v):
                return False
        return list(map(_get_training, self.modules)) == self.training

    def _constants_hold(self):
        for where, k, v in self.bound:
            if where.get(k, _MISSING) is not v:
                return False
        for where, k, v in self.settings:
            now = where.get(k, _MISSING)
            if now is not v and (type(now) is not type(v) or now != v):
                return False
        return True

    def replay(self, args, kwargs):
        program = self.program
        if self.plain and program.only is not None:     # (the common step, without the calls)
            program._only(self.tensors)
            if self.written:
                bump_versions(self.written)
            if self.one is not None:
                return _wrap(self.one.copy())
            return _build(self.result, self.tensors, args, kwargs, {} if self.again else None)
        graph = self.graph
        if graph is not None:
            graph.before_forward()
        tensors, _copies = (self.tensors, None) if self.plain else self._take_arguments(args, kwargs)
        program.run(self.ext, self.iext, tensors)
        for fn, views in self.later:
            fn(*views)
        if self.writes:
            bump_versions((tensors[e], n) for e, n in self.writes)
        if graph is None:
            return _build(self.result, tensors, args, kwargs, {} if self.again else None)
        made = {}
        result = _build(self.result, tensors, args, kwargs, made)
        graph.record(made, tensors, args, kwargs)
        return result

    def _take_arguments(self, args, kwargs):
        """Copy this call's arguments into the program and check their class targets before
        any compiled code reads them; returns the external tensors the call reads and the
        contiguous copies of arguments it reads (to keep alive while it runs)."""
        program = self.program
        tensors = self.tensors
        v, pints = program.v, program.pints
        for get, slot, n in self.arg_copies:
            v[slot: slot + n] = get(args, kwargs)._a.reshape(-1)
        for get, slot, n in self.int_copies:
            pints[slot: slot + n] = get(args, kwargs)._a.reshape(-1)
        keep = []                  # contiguous copies read by this call
        if self.arg_ext:
            tensors = list(tensors)
            for e, get in self.arg_ext:
                t = tensors[e] = get(args, kwargs)
                a = t._a if t._a.flags.c_contiguous else keep.append(np.ascontiguousarray(t._a)) \
                    or keep[-1]
                self.ext[e] = _address(a)
        for slot, n, classes, ignore in self.checks:
            t = pints[slot: slot + n] if slot >= 0 else self.int_arrays[-slot - 2]
            if ((t != ignore) & ((t < 0) | (t >= classes))).any():
                raise _RunEagerly
        return tensors, keep


_get_training = operator.attrgetter("training")
_MODULE_STORES = ("_parameters", "_buffers", "_modules") + _module._HOOK_DICTS
_GLOBAL_HOOKS = tuple(k for k in vars(_module) if k.startswith("_global_") and k.endswith("hooks"))
_module_globals = vars(_module)
_PLAIN = {int, float, bool, str, type(None)}
_MISSING = object()


def _is_setting(v):
    """A Python value a trace takes as a constant: a number, a string, None, a tuple of them."""
    return type(v) in _PLAIN or (type(v) is tuple and all(type(x) in _PLAIN for x in v))


class _Cell:
    """A closure cell read as a one-entry dict."""
    __slots__ = ("cell",)

    def __init__(self, cell):
        self.cell = cell

    def get(self, _name, default):
        try:
            return self.cell.cell_contents
        except ValueError:          # (deleted)
            return default


class _RunEagerly(Exception):
    """A replay found, before running anything, that this call's eager run raises (a class
    target out of range): the call runs eagerly instead."""


def _getter(path):
    """A function of (args, kwargs) reading the value at path (see _leaves)."""
    if len(path) == 2 and path[0] == 0:
        i = path[1]
        return lambda args, kwargs: args[i]

    def get(args, kwargs):
        obj = (args, kwargs)
        for k in path:
            obj = obj[k]
        return obj
    return get


def _backward_ran(trace):
    return any(ev[0] == "backward" for ev in trace.events)


def _forward_graph(trace, program, known, made, tensor_args):
    """The ForwardGraph of a trace whose results a caller differentiates (known: id(tensor) ->
    its result spec; made: the distinct returned tensors the program computes; tensor_args:
    the call's (path, tensor))."""
    inputs = []
    for e, (t, _) in enumerate(trace.ext):
        if t._rg:
            try:            # (its row, or a non-leaf argument's: the graph's boundary)
                inputs.append((e, program.row_of(t._node if t._node >= 0 else t._leafvar)))
            except TraceFailed:
                pass        # (not in the graph: no gradient, as eagerly)
    leaves = set(np.flatnonzero(program.rows[:, OP] == LEAF).tolist())
    if leaves - {r for _, r in inputs}:
        raise TraceFailed("it returns a graph reaching a tensor it made that requires grad (a "
                          "replay would lose that tensor's gradient)")
    def saved_here(t):      # (by a row of the step: its serial is past the trace's first)
        ver = t._ver
        return ver is not None and any(s >= trace.serial0 for s in ver[2:])
    outputs, constant = [], []
    for v in made:
        kind, spec = known[id(v)]
        if kind != "again":             # (an argument returned as it is)
            continue
        if v._rg:
            outputs.append((id(spec), program.row_of(v._node), saved_here(v)))
        else:
            constant.append(id(spec))
    saved = ([e for e, (t, _) in enumerate(trace.ext) if saved_here(t)],
             [_getter(path) for path, v in tensor_args if not v._rg and saved_here(v)],
             [t for t, _ in trace.iext if saved_here(t)])
    return ForwardGraph(program, inputs, outputs, constant, [trace.ext[e][0] for e, _ in inputs],
                        saved)


# ---- guards and results --------------------------------------------------------------------
def _leaves(obj, path=(), out=None):
    """[(path, value)] of every leaf of nested tuples, lists and dicts (a list, not a
    generator: nested generators cost a resume per level per leaf)."""
    if out is None:
        out = []
    if isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            _leaves(v, path + (i,), out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _leaves(v, path + (k,), out)
    else:
        out.append((path, obj))
    return out


def _key(args, kwargs):
    """What a call must match to replay a trace (the flat common case without a generator).
    A tensor: its shape, dtype, requires_grad and whether it is a graph's non-leaf; and which
    tensors are one storage (traced as one, they are read as one)."""
    # (grad mode as is_grad_enabled(), without reading the thread-local flag while no thread
    # turned it off: see engine/tape.py's grad_off)
    parts = [not grad_off or _grad_mode.enabled, TAPE.plain]     # (plain: no anomaly mode)
    arrays = []
    for v in args:
        if isinstance(v, Tensor):
            a = v._a
            parts.append((a.shape, a.dtype, v._rg, v._node >= 0))
            arrays.append(a)
        elif v is None or isinstance(v, (bool, int, float, str)):
            parts.append((type(v), v))
        elif isinstance(v, (tuple, list, dict)):
            parts.append(_key_of(v, arrays))
        else:
            parts.append(id(v))
    if kwargs:
        parts.append(_key_of(kwargs, arrays))
    if len(arrays) > 1:
        ids = list(map(id, arrays))
        if len(set(ids)) < len(ids):
            parts.append(tuple(map(ids.index, ids)))
    return tuple(parts)


def _key_of(obj, arrays):
    parts = []
    for path, v in _leaves(obj):
        if isinstance(v, Tensor):
            parts.append((path, v._a.shape, v._a.dtype, v._rg, v._node >= 0))
            arrays.append(v._a)
        elif v is None or isinstance(v, (bool, int, float, str)):
            parts.append((path, type(v), v))
        else:
            parts.append((path, id(v)))
    return tuple(parts)


def _spec(obj, slots, v, known, outside):
    """How to rebuild the function's result from a replay's buffers (v: the values; known:
    id(tensor) -> its spec, for the call's tensor arguments and the leaves' .grads; outside:
    the arrays of the tensors from outside the function)."""
    if isinstance(obj, (tuple, list)):
        return (type(obj), [_spec(e, slots, v, known, outside) for e in obj])
    if isinstance(obj, dict):
        return (dict, {k: _spec(e, slots, v, known, outside) for k, e in obj.items()})
    if isinstance(obj, Tensor):
        if id(obj) in known:
            return known[id(obj)]
        slot = slots.get(id(obj._a))
        if slot is None:
            raise TraceFailed("it returns a tensor made by an untraced operation")
        if slot < 0:
            spec = ("alias", slot)      # w.detach(), w.data: a new tensor on w's storage
        elif any(np.may_share_memory(obj._a, a) for a in outside):
            raise TraceFailed("it returns a view of a tensor from outside the function (a "
                              "replay would return a copy)")
        else:   # (a value's view kept shaped: a slice and a reshape per call cost more than the copy)
            spec = ("tensor", slot, v[slot: slot + obj._a.size].reshape(obj._a.shape))
        known[id(obj)] = ("again", spec)    # (returned twice: one object twice, as eagerly)
        return spec
    if isinstance(obj, (numbers.Number, str, bytes, np.generic)):
        raise TraceFailed(f"it returns a Python {type(obj).__name__}, which a replay cannot compute "
                          "(the traced call's value would be returned every time); return a tensor")
    return ("value", obj)


def _repeats(spec):
    """Whether a result spec holds one tensor twice."""
    kind = spec[0]
    if isinstance(kind, str):
        return kind == "again"
    return any(map(_repeats, spec[1].values() if kind is dict else spec[1]))


def _build(spec, tensors, args, kwargs, made=None):
    """The result spec describes (_spec) after a replay; made: id(spec) -> the tensor built for
    it, where a tensor is in the result twice."""
    kind = spec[0]
    if kind == "tensor":
        _, slot, view = spec
        if slot < 0:
            return tensors[-slot - 2]
        t = _wrap(view.copy())
        if made is not None:
            made[id(spec)] = t
        return t
    if kind == "again":
        return made[id(spec[1])]
    if kind == "value":
        return spec[1]
    if kind == "grad":
        _hook.grad_epoch += 1       # (the caller holds it now)
        return tensors[spec[1]]._grad
    if kind == "arg":
        return spec[1](args, kwargs)
    if kind == "alias":
        t = _wrap(tensors[-spec[1] - 2]._a)
        if made is not None:
            made[id(spec)] = t
        return t
    if kind is dict:
        return {k: _build(s, tensors, args, kwargs, made) for k, s in spec[1].items()}
    items = [_build(s, tensors, args, kwargs, made) for s in spec[1]]
    if kind is tuple or kind is list:
        return kind(items)
    return kind(*items) if hasattr(kind, "_fields") else kind(items)    # (a namedtuple)


class OptimizedModule(Module):
    """What jitgrad.compile(module) returns, as torch.compile's: a Module whose child
    ``_orig_mod`` is the module (so parameters(), train()/eval(), to() reach it, and state_dict()'s
    keys start with ``_orig_mod.``, as torch's), whose calls run the module's ``__call__``
    through a compiled function, and whose other attributes are the module's."""

    def __init__(self, module, fullgraph=False):
        super().__init__()
        self._modules["_orig_mod"] = module
        self.__dict__["_compiled"] = CompiledFunction(module.__call__, fullgraph)

    def forward(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        modules = self.__dict__.get("_modules")
        if modules is None or "_orig_mod" not in modules:    # (not initialised: a copy's)
            raise AttributeError(f"'OptimizedModule' object has no attribute '{name}'")
        if name == "_orig_mod":
            return modules["_orig_mod"]
        return getattr(modules["_orig_mod"], name)

    def __setattr__(self, name, value):
        if name == "training":          # (train()/eval() set both, recursively)
            Module.__setattr__(self, name, value)
        else:
            setattr(self._orig_mod, name, value)

    def __reduce__(self):
        """Pickled or copied as the module, compiled again (its traces are this process's)."""
        return _optimized, (self._orig_mod, self._compiled.fullgraph, self.training)


def _optimized(module, fullgraph, training):
    m = OptimizedModule(module, fullgraph)
    m.__dict__["training"] = training
    return m
