"""Tracing a step for compiled replay: what the eager run did, op by op.

While a compiled function's first call runs eagerly, a Trace is ``engine.hook.tracer``: record()
reports every op (with its inputs, constants and tape row), backward() its roots and the leaves it
reached, optimizers and LR schedulers their calls (replayed as they are: "host" calls), modules
their training flag. Anything a replay could not reproduce (an op without a forward kernel, a
Python read of a tensor's value, an in-place write, a tensor made by an untraced path) makes the
trace fail with the reason: the function then runs eagerly, never a silently wrong replay.

Values get slots: every op output an offset in the trace's value buffer; tensors from outside
(arguments, parameters, captured tensors) an entry of ``ext``. Slots are keyed by the array's
identity, so a detached alias of a traced value is that value.
"""
import contextlib
import importlib
import threading

import numpy as np

from ..engine import registry
from ..engine.replay import NO_INPUT
from ..engine.tape import TAPE

_tensor = importlib.import_module("jitgrad.tensor")   # (jitgrad.tensor is also a function)


class TraceFailed(Exception):
    pass


def _fail(reason):
    raise TraceFailed(reason)


class Trace:
    def __init__(self):
        self.thread = threading.get_ident()
        self.error = None
        self.host_depth = 0
        self.slots = {}           # id(array) -> slot (see engine/replay.py)
        self.kept = []            # every array with a slot, so ids stay unique while tracing
        self.vsize = 0
        self.ext = []             # (tensor, array) per external float tensor: slot -index-2
        self.iext = []            # the same for int64 tensors (class targets)
        self.int_slots = {}       # id(array) -> slot of an integer operand
        self.arguments = {}       # id(array) -> path, of the call's tensor arguments
        self.arg_copies = []      # (path, slot, size): arguments each call copies into v
        self.int_copies = []      # (path, offset, size): integer arguments copied into pints
        self.checks = []          # (slot, size, classes, ignore_index): targets a replay checks
        self.born = {}            # id -> tensor made by an untraced path (tensor._wrap) meanwhile
        self.prog = []
        self.pints = []
        self.cv = []
        self.dtype = None
        self.events = []          # ("op", j) | ("backward", roots, leaves) | ("host", fn, args,
        self.modules = {}         # kwargs) | ("grad_none", tensor);  id -> (module, training)
        self.grad_of = {}         # id(a .grad's array) -> ext index of its tensor, after backward
        self.grad_ext = {}        # ext index -> ext index of the tensor whose .grad it is
        self._pending = None
        self._writing = None      # the tensor an in-place op reported here is about to write
        self.made_here = set()    # ids of the arrays of constants made inside the function
        self.value_guards = []    # (tensor, array, values): index tensors a replay reads as traced
        self.draw_dtypes = set()  # dtypes of random draws (a replay writes them into v)
        self.steps = {}           # event index -> optimizer step a replay may fuse (optimizer_step)

    # ---- lifetime ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def active(self):
        """Trace the body: the tape pinned (row numbers stay) and locked (rows are this
        thread's), tensor._init reporting tensors made outside record()."""
        from ..engine import hook
        init = _tensor._init
        born = self.born

        def traced_init(t, a, rg):
            init(t, a, rg)
            born[id(t)] = t
        with TAPE.lock:
            TAPE.pinned += 1
            self.start = (len(TAPE.outs), TAPE.ilen, _arena_lengths())
            hook.tracer, _tensor._init = self, traced_init
            try:
                yield self
            finally:
                hook.tracer, _tensor._init = None, init
                TAPE.pinned -= 1
                self.end = (len(TAPE.outs), TAPE.ilen, _arena_lengths())

    def _mine(self):
        return self.error is None and not self.host_depth and threading.get_ident() == self.thread

    def unsupported(self, reason):
        if self._mine():
            self.error = reason

    # ---- what the eager run reports ----------------------------------------------------------
    def op(self, op, t, x, y, consts, scalars, i0, i1, ints):
        if not self._mine():
            return
        try:
            self.born.pop(id(t), None)
            need = kernel_check(op, x, y, consts, scalars, i1, i0, t._a)
            a = t._a
            if "m" in need:           # a bool mask ("m"): its [slot, shape id] are the int data
                mask, scalars = scalars[0], scalars[1:]
                ints = [self._mask_operand(mask), _sid(mask)]
            weights = [e for e in scalars if isinstance(e, _tensor.Tensor)] if len(scalars) else ()
            if weights:       # a loss's weight tensors ("w"): their slots go to the int data
                scalars = tuple(e for e in scalars if not isinstance(e, _tensor.Tensor))
            xs = self._operand(x, a) if x is not None else NO_INPUT
            if "yi" in need:          # class targets: in range, or the replay raises as eager
                ys = self._int_operand(y)
                c = x._a.shape[1] if x._a.ndim > 1 else x._a.shape[0]
                self.checks.append((ys, y._a.size, c, int(scalars[0])))
                ints, scalars = [int(v) for v in scalars], ()     # (the kernel's int data)
            else:
                ys = self._operand(y, a) if y is not None else NO_INPUT
            if weights:       # [slot, shape id] per weight, after the op's own ints
                ints = list(ints if ints is not None else []) + \
                    [e for w in weights for e in (self._operand(w, a), _sid(w))]
            k = -1
            if ints is not None:
                k = len(self.pints)
                self.pints += np.asarray(ints, np.int64).reshape(-1).tolist()
            c = len(self.cv)
            self.cv += [float(v) for v in consts] + [float(v) for v in scalars]
            grads = (1 if x is not None and x._rg else 0) | (2 if y is not None and y._rg else 0)
            self._emit(op, t, xs, ys, _sid(x), _sid(y), i0, i1, k, c, grads)
        except TraceFailed as e:
            self.error = str(e)

    def op_multi(self, op, t, inputs, scalars, i0):
        if not self._mine():
            return
        try:
            self.born.pop(id(t), None)
            kernel_check(op, None, None, (), scalars, 0)
            entries, grads = [0], 0
            for e in inputs:
                if e[0] is None:
                    continue
                entries += [self._operand(e[0], t._a), e[1], e[2], _sid(e[0])]
                entries[0] += 1
                if e[0]._rg:
                    grads |= 1 << e[1]
            k = len(self.pints)
            self.pints += entries
            c = len(self.cv)
            self.cv += [float(v) for v in scalars]
            self._emit(op, t, NO_INPUT, NO_INPUT, -1, -1, i0, 0, k, c, grads)
        except TraceFailed as e:
            self.error = str(e)

    def backward(self, tensors, grad_tensors, inputs):
        if not self._mine():
            return
        tensors = (tensors,) if isinstance(tensors, _tensor.Tensor) else tuple(tensors)
        if inputs is not None:
            self.error = "backward(inputs=...)"
        elif grad_tensors is not None and not (isinstance(grad_tensors, (tuple, list)) and
                                               all(g is None for g in grad_tensors)):
            self.error = "backward(gradient=...)"
        elif any(t._node < 0 or id(t._a) not in self.slots for t in tensors):
            self.error = "backward() from a tensor the function did not compute"
        else:
            self._pending = [t._node for t in tensors]

    def backward_done(self, found, retained):
        if not self._mine() or self._pending is None:
            return
        if any(r() is not None for r in retained.values()):
            self.error = "retain_grad()"
            return
        leaves = []
        for t, v in found:
            if t._leafvar < 0 or TAPE.leaves.get(t._leafvar) is not t:
                self.error = "a gradient for a tensor that is not a leaf"
                return
            slot = self.slots.get(id(t._a))
            if slot is None or slot >= 0:
                self.error = "a gradient for a tensor made inside the function"
                return
            g = t._grad._a
            if g is v and g.flags.c_contiguous:   # a new .grad: a slot the replay fills
                gslot = self.slots[id(g)] = self.vsize
                self.vsize += g.size
            else:                                  # accumulated into: read from the tensor
                gslot = -1
                self.grad_of[id(g)] = -slot - 2
            self.kept.append(g)
            leaves.append((t._leafvar, -slot - 2, gslot))
        self.events.append(("backward", self._pending, leaves))
        self._pending = None

    @contextlib.contextmanager
    def host(self, fn, *args, **kwargs):
        """A call replayed as it is (optimizer.step, zero_grad, scheduler.step); what runs
        inside it is not traced."""
        if self._mine():
            for v in list(args) + list(kwargs.values()):
                if isinstance(v, _tensor.Tensor) and id(v._a) not in self.slots:
                    self.error = "a tensor argument to an optimizer or scheduler call"
            self.events.append(("host", fn, args, kwargs))
        self.host_depth += 1
        try:
            yield
        finally:
            self.host_depth -= 1

    def optimizer_step(self, optimizer, fusable):
        """optimizer.step(): a host call, which a replay may instead run inside the compiled
        call before it (program.py) with fusable, what the optimizer took just before the step
        (None: it cannot)."""
        if self._mine() and fusable is not None:
            self.steps[len(self.events)] = fusable
        return self.host(optimizer.step)

    def set_grad(self, t, value):
        if not self._mine():
            return
        try:
            slot = self._operand(t, t._a) if value is None else 0
        except TraceFailed:
            slot = 0
        if slot >= 0:
            self.error = "an assignment to .grad other than `p.grad = None` of a parameter"
        else:
            self.events.append(("grad_none", -slot - 2))

    def inplace(self, x, op, other, alpha=1):
        """x op= other without recording (a manual update, p -= lr * p.grad): the op written
        into x's own slot."""
        if not self._mine():
            return
        try:
            a = x._a
            if self.dtype is not None and a.dtype != self.dtype:
                _fail(f"an in-place update of a {a.dtype} tensor")
            if id(a) in self.made_here:     # each eager call starts from a fresh one
                _fail("an in-place update of a tensor made inside the function")
            slot = self._operand(x, a)
            ys, ysid, c = NO_INPUT, -1, len(self.cv)
            if isinstance(other, _tensor.Tensor):
                ys, ysid = self._operand(other, a), _sid(other)
                if alpha != 1:          # o * alpha first, rounded, as the eager update
                    k = self.vsize
                    self.vsize += other._a.size
                    self.cv.append(float(alpha))
                    self.prog.append([registry_op("MUL_SCALAR"), k, ys, NO_INPUT, other._a.size,
                                      ysid, ysid, -1, -1, -1, 0, 0, -1, c, 0])
                    self.events.append(("op", len(self.prog) - 1))
                    ys, c = k, len(self.cv)
            elif alpha != 1 or not isinstance(other, (int, float)) or isinstance(other, bool):
                _fail("an in-place update by a scalar with alpha, or by an array")
            else:
                self.cv.append(float(other))
            if a.dtype.kind != "f" or not a.flags.c_contiguous:
                _fail("an in-place update of a non-contiguous or integer tensor")
            if self.dtype is None:
                self.dtype = a.dtype
            sid = _sid(x)
            self.prog.append([op, slot, slot, ys, a.size, sid, sid, ysid, -1, -1, 0, 0, -1, c, 0])
            self.events.append(("op", len(self.prog) - 1))
            self._writing = x
        except TraceFailed as e:
            self.error = str(e)

    def modified(self, t):
        if t is self._writing:          # (reported by inplace just before)
            self._writing = None
            return
        self.unsupported("an in-place operation")

    def constant(self, t):
        """t was made from Python values only (a factory, a backward's seed of ones): a replay
        reads the traced array as it reads a captured tensor."""
        if self._mine():
            self.born.pop(id(t), None)
            self.made_here.add(id(t._a))

    def drawn(self, tensors, make):
        """tensors hold a random draw (a dropout mask, randn): make() draws again from the same
        generator, so the stream advances as in eager calls, and returns their new values. A
        replay runs it before the compiled call that reads them."""
        if not self._mine():
            return
        slots = []
        for t in tensors:
            a = t._a
            self.born.pop(id(t), None)
            self.draw_dtypes.add(a.dtype)
            slot = self.slots[id(a)] = self.vsize
            self.vsize += a.size
            self.kept.append(a)
            slots.append((slot, a.size))
        self.events.append(("draw", make, slots))

    def index_tensor(self, t):
        """t holds positions the kernels will read as traced. One the function was given or
        computed may differ at the next call: fail. One captured from outside (a module's
        buffer) is guarded by its values: a replay holds while it keeps them."""
        if not self._mine():
            return
        if id(t._a) in self.arguments or id(t) in self.born:
            self.error = ("an index tensor made inside the function or passed to it (a replay "
                          "would reuse the traced call's positions)")
        else:
            self.value_guards.append((t, t._a, t._a.copy()))

    def reads_value(self, what):
        self.unsupported(f"{what} reads a tensor's value in Python (data-dependent control flow)")

    def module(self, m):
        if self._mine():
            self.modules[id(m)] = (m, m.training)

    # ---- slots -------------------------------------------------------------------------------
    def _operand(self, t, out):
        a = t._a
        slot = self.slots.get(id(a))
        if slot is not None:
            return slot
        if id(a) in self.grad_of:        # a .grad the step's backward made: read at replay
            if not a.flags.c_contiguous:
                _fail("a non-contiguous .grad")
            self.ext.append((t, a))
            self.grad_ext[len(self.ext) - 1] = self.grad_of[id(a)]
            slot = self.slots[id(a)] = -len(self.ext) - 1
            return slot
        if id(t) in self.born:
            _fail("a tensor made inside the function by an operation compiled replay cannot "
                  "record (a factory, a comparison, a random or an integer op)")
        if a.dtype != out.dtype:
            _fail(f"a {a.dtype} tensor in a {out.dtype} computation")
        path = self.arguments.get(id(a))
        if path is not None and not t._rg:      # an argument: copied into v by each call
            slot = self.slots[id(a)] = self.vsize
            self.vsize += a.size
            self.kept.append(a)
            self.arg_copies.append((path, slot, a.size))
            return slot
        if not a.flags.c_contiguous:
            _fail("a non-contiguous tensor from outside the function")
        self.ext.append((t, a))
        self.kept.append(a)
        slot = self.slots[id(a)] = -len(self.ext) - 1
        return slot

    def _int_operand(self, t):
        a = t._a
        slot = self.int_slots.get(id(a))
        if slot is not None:
            return slot
        if id(a) in self.slots or id(t) in self.born:
            _fail("integer targets computed inside the function")
        if a.dtype != np.int64:
            _fail("class targets that are not an int64 tensor")
        self.kept.append(a)
        path = self.arguments.get(id(a))
        if path is not None:                    # copied into pints by each call
            slot = self.int_slots[id(a)] = len(self.pints)
            self.pints += a.reshape(-1).tolist()
            self.int_copies.append((path, slot, a.size))
            return slot
        if not a.flags.c_contiguous:
            _fail("class targets that are not a contiguous int64 tensor")
        self.iext.append((t, a))
        slot = self.int_slots[id(a)] = -len(self.iext) - 1
        return slot

    def _mask_operand(self, t):
        """A bool mask (where's condition, masked_fill's mask) as 0/1 in pints: an argument's
        copied in by each call, a captured one's kept and guarded by its values (as an index
        tensor's, see index_tensor). Returns its offset."""
        if not isinstance(t, _tensor.Tensor):
            _fail("a condition or mask that is not a tensor")
        a = t._a
        slot = self.int_slots.get(id(a))
        if slot is not None:
            return slot
        if id(a) in self.slots or id(t) in self.born:
            _fail("a mask computed inside the function (a comparison or an op on a bool tensor: "
                  "compiled replay does not record them)")
        if a.dtype != np.bool_:
            _fail(f"a {a.dtype} mask")
        self.kept.append(a)
        slot = self.int_slots[id(a)] = len(self.pints)
        self.pints += a.reshape(-1).astype(np.int64).tolist()
        path = self.arguments.get(id(a))
        if path is not None:
            self.int_copies.append((path, slot, a.size))
        else:
            self.value_guards.append((t, a, a.copy()))
        return slot

    def _emit(self, op, t, xs, ys, xsid, ysid, i0, i1, k, c, grads):
        a = t._a
        if a.dtype.kind != "f":
            _fail(f"an op with a {a.dtype} result")
        if self.dtype is None:
            self.dtype = a.dtype
        elif a.dtype != self.dtype:
            _fail("float32 and float64 tensors in one function")
        row = t._node if t._rg else -1
        slot = self.slots[id(a)] = self.vsize
        self.kept.append(a)
        self.vsize += a.size
        self.prog.append([op, slot, xs, ys, a.size, TAPE.shape_id(a.shape), xsid, ysid, row, -1,
                          i0, i1, k, c, grads])
        self.events.append(("op", len(self.prog) - 1))


def registry_op(name):
    from .. import ops
    return getattr(ops, name)


def _sid(t):
    return -1 if t is None else TAPE.shape_id(t._a.shape)


def _arena_lengths():
    a32, l32, a64, l64 = TAPE._by_dtype()
    return {np.dtype(np.float32): l32, np.dtype(np.float64): l64}



_NEEDS = {}


def _needs(kernel):
    """The kernel's needs() spec as a tuple (split once: the check runs per traced op)."""
    spec = _NEEDS.get(kernel)
    if spec is None:
        spec = _NEEDS[kernel] = tuple(getattr(kernel, "needs", "x").split(","))
    return spec


def kernel_check(op, x, y, consts, scalars, i1, i0=0, out=None):
    """The op has a forward kernel, and this call gave it what it reads."""
    entry = registry.OPS[op]
    if entry.forward_kernel is None:
        _fail(f"{entry.grad_fn or 'an op'} ({entry.rule.__name__ if entry.rule else op}) has no "
              "forward kernel yet")
    need = _needs(entry.forward_kernel)
    given = len(consts) + len(scalars)
    if ("x" in need and x is None) or (("y" in need or "yi" in need) and y is None) or \
            ("y|c" in need and y is None and given < 1) or ("c" in need and given < 1) or \
            ("cc" in need and len(scalars) < 2) or \
            ("same" in need and (x is None or y is None or x._a.shape != y._a.shape)) or \
            ("plain" in need and i1 & 3) or \
            ("m" in need and not scalars) or \
            ("w" not in need and len(scalars) and
             any(isinstance(e, _tensor.Tensor) for e in scalars["m" in need:])):
        _fail(f"{entry.grad_fn} called without what its forward kernel reads ({','.join(need)})")
    if ("lower" in need and i0 & 1) or ("f64" in need and out.dtype != np.float64):
        _fail(f"{entry.grad_fn}'s forward kernel equals eager's LAPACK in float64 (and eigh's "
              "UPLO='L') only")
    if "empty" in need and out.size:
        _fail(f"{entry.grad_fn}'s result has a shape that depends on the values (lstsq's residuals)")
    return need
