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

from ..autograd.hooks import _leaf_hooks, _post_hooks
from ..engine import hook, registry
from ..engine.replay import NO_INPUT, PROGRAM_COLUMNS
from ..engine.tape import TAPE

_tensor = importlib.import_module("jitgrad.tensor")   # (jitgrad.tensor is also a function)
_Tensor = _tensor.Tensor
_get_ident = threading.get_ident
_WIDTH = len(PROGRAM_COLUMNS)


class TraceFailed(Exception):
    pass


def _fail(reason):
    raise TraceFailed(reason)


class Trace:
    def __init__(self):
        self.thread = threading.get_ident()
        self.pinning = False      # the tape stays pinned after the body until release()
        self.error = None
        self.host_depth = 0
        self.slots = {}           # id(array) -> slot (see engine/replay.py)
        self.kept = []            # every array with a slot, so ids stay unique while tracing
                                  # (emptied when it ends)
        self.vsize = 0
        self.ext = []             # (tensor, array) per external float tensor: slot -index-2
        self.iext = []            # the same for int64 tensors (class targets)
        self.int_slots = {}       # id(array) -> slot of an integer operand
        self.arguments = {}       # id(array) -> path, of the call's tensor arguments
        self.arg_copies = []      # (path, slot, size): arguments each call copies into v
        self.int_copies = []      # (path, offset, size): integer arguments copied into pints
        self.checks = []          # (slot, size, classes, ignore_index): targets a replay checks
        self.born = {}            # id -> tensor made by an untraced path (tensor._wrap) meanwhile
        self.prog = []            # the program's rows (PROGRAM_COLUMNS) end to end, as ints
        self.pints = []
        self.cv = []
        self.dtype = None
        self.events = []          # ("ops", how many) | ("backward", roots, leaves) | ("host", fn,
        self.logged = 0           # args, kwargs) | ("grad_none", ext index) | ("draw", make, slots);
        self.modules = {}         # logged: the ops events count; modules: id -> (module, training)
        self.retains_graph = False  # a backward kept its graph (retain_graph=True)
        self.grad_of = {}         # id(a .grad's array) -> ext index of its tensor, after backward
        self.grad_ext = {}        # ext index -> ext index of the tensor whose .grad it is
        self._pending = None
        self._writing = None      # the tensor an in-place op reported here is about to write
        self.made_here = set()    # ids of the arrays of constants made inside the function
        self.value_guards = []    # (tensor, array, values): index tensors a replay reads as traced
        self.draw_dtypes = set()  # dtypes of random draws (a replay writes them into v)
        self.generators = []      # the numpy generators the draws come from
        self.steps = {}           # event index -> optimizer step a replay may fuse (optimizer_step)
        self.zeroed = []          # (optimizer, its parameters) of each zero_grad traced as such
        self.writes = {}          # ext index -> how many in-place writes the step made into it
        self.deferred = []        # (fn, [(slot, shape)] of its reads, written tensors): see later()
        # (tensor, its .grad then) of each .grad the step read before it set it: a replay sees the
        # .grad (or None) it found, as the Python code around the read did (a guard)
        self.grad_reads = []
        self.grad_known = set()   # ids of the tensors whose .grad the step read or set
        self.grads_read_at = []   # per .grad read: how many events were traced before it

    # ---- lifetime ---------------------------------------------------------------------------
    def active(self):
        """Trace the body (``with trace.active():``): the tape pinned (row numbers stay) and
        locked (rows are this thread's), tensor._init reporting tensors made outside record().
        (The Trace is its own context manager: contextlib's would cost more than the rest.)"""
        return self

    def __enter__(self):
        init = self._init = _tensor._init
        born = self.born

        def traced_init(t, a, rg):
            init(t, a, rg)
            born[id(t)] = t
        TAPE.lock.acquire()
        try:
            TAPE.compact_if_due()   # (pinned, its records cannot: in a sweep, nothing else would)
            self.start = (len(TAPE.outs), TAPE.ilen, _arena_lengths())
            self.serial0 = TAPE.serial      # (the step's rows' serials start here)
        except BaseException:       # (nothing set yet: the lock alone to give back)
            TAPE.lock.release()
            raise
        TAPE.pinned += 1
        hook.tracer, _tensor._init = self, traced_init
        return self

    def __exit__(self, *exc):
        try:
            hook.tracer, _tensor._init = None, self._init
            if exc[0] is not None:
                TAPE.pinned -= 1
            else:                   # (pinned until release(): the Program reads the rows)
                self.pinning = True
            self.end = (len(TAPE.outs), TAPE.ilen, _arena_lengths())
            self._log_ops()
            # the values go before the Program's buffers are made (held, they grew the heap
            # for each new model of a sweep: W7's first calls page-faulted ~230 times). Ids
            # looked up from here on are of arrays alive since the trace (arguments, results,
            # .grads), which no freed value's id can be.
            self.kept.clear()
            self.born.clear()
        finally:
            TAPE.lock.release()

    def release(self):
        """After the Program read the traced rows: unpin the tape, and give back the arena
        space of the rows the step's backward freed (the reclaim an eager backward does, which
        the trace deferred: else each new model of a sweep saved into new memory, W2's first
        call ~80 page faults)."""
        if self.pinning:
            self.pinning = False
            with TAPE.lock:
                TAPE.pinned -= 1
                if not TAPE.pinned:
                    TAPE.reclaim_from(self.start[0])

    def _mine(self):
        return self.error is None and not self.host_depth and threading.get_ident() == self.thread

    def unsupported(self, reason):
        if self._mine():
            self.error = reason

    # ---- what the eager run reports ----------------------------------------------------------
    def op(self, op, t, x, y, consts, scalars, i0, i1, ints):
        # Once per traced op, so most of a first call's cost over eager: the common case inline
        # (operands with slots, no masks, targets or weights; few attribute reads, as Tensor's
        # __getattr__ makes each one slow), the rest in _special_operands and _operand.
        # (t is new from record(), never in born: no born.pop as op_multi's.)
        if self.error is not None or self.host_depth or _get_ident() != self.thread:
            return
        try:
            a = t._a
            nc, ns = len(consts), len(scalars)
            checked = _CHECKED.get((op, x is None, y is None, nc, ns))
            if checked is None or (ns and (ns > 1 or type(scalars[0]) is not float)
                                   and _any_tensor(scalars)):      # (one float: the common case)
                checked = _check(op, x, y, consts, scalars, i1, i0, a)
            need, special = checked
            slots = self.slots
            sids = TAPE.shape_ids
            xs = ys = NO_INPUT
            xsid = ysid = -1
            grads = 0
            if special:
                xs, ys, scalars, ints = self._special_operands(need, x, y, scalars, ints, a)
                ns = len(scalars)
            if x is not None:
                xa = x._a
                if not special:
                    xs = slots.get(id(xa))
                    if xs is None:
                        xs = self._operand(x, a)
                xsid = sids.get(xa.shape)
                if xsid is None:
                    xsid = _shape_id(xa.shape)
                if x._rg:
                    grads = 1
            if y is not None:
                ya = y._a
                if not special:
                    ys = slots.get(id(ya))
                    if ys is None:
                        ys = self._operand(y, a)
                ysid = sids.get(ya.shape)
                if ysid is None:
                    ysid = _shape_id(ya.shape)
                if y._rg:
                    grads |= 2
            k = -1
            if ints is not None:
                k = len(self.pints)
                self.pints += np.asarray(ints, np.int64).reshape(-1).tolist()
            cv = self.cv
            c = len(cv)
            if nc == 1:                       # (one const, as x * 2.0: append costs less than map)
                cv.append(float(consts[0]))
            elif nc:
                cv += map(float, consts)
            if ns:
                cv += map(float, scalars)
            if a.dtype is not self.dtype:     # (dtypes are mostly singletons: a cheap test)
                self._check_dtype(a.dtype)
            sid = sids.get(a.shape)
            if sid is None:
                sid = _shape_id(a.shape)
            n = a.size
            slot = slots[id(a)] = self.vsize
            self.vsize = slot + n
            self.kept.append(a)
            # (t's row: -1 unless it requires grad, as record() made it)
            self.prog += (op, slot, xs, ys, n, sid, xsid, ysid, t._node, -1, i0, i1, k, c, grads)
        except TraceFailed as e:
            self.error = str(e)

    def _special_operands(self, need, x, y, scalars, ints, out):
        """(x's slot, y's slot, scalars, ints) of an op that reads a bool mask ("m"), class
        targets ("yi") or weight tensors ("w"): those go to the int data and the checks."""
        if "m" in need:           # a bool mask: its [slot, shape id] are the int data
            mask, scalars = scalars[0], scalars[1:]
            ints = [self._mask_operand(mask), _sid(mask)]
        weights = [e for e in scalars if isinstance(e, _Tensor)] if len(scalars) else ()
        if weights:               # a loss's weight tensors: their slots go to the int data
            scalars = tuple(e for e in scalars if not isinstance(e, _Tensor))
        xs = self._operand(x, out) if x is not None else NO_INPUT
        if "yi" in need:          # class targets: in range, or the replay raises as eager
            ys = self._int_operand(y)
            c = x._a.shape[1] if x._a.ndim > 1 else x._a.shape[0]
            self.checks.append((ys, y._a.size, c, int(scalars[0])))
            ints, scalars = [int(v) for v in scalars], ()     # (the kernel's int data)
        else:
            ys = self._operand(y, out) if y is not None else NO_INPUT
        if weights:               # [slot, shape id] per weight, after the op's own ints
            ints = list(ints if ints is not None else []) + \
                [e for w in weights for e in (self._operand(w, out), _sid(w))]
        return xs, ys, scalars, ints

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
            self.cv += map(float, scalars)
            a = t._a
            if a.dtype is not self.dtype:
                self._check_dtype(a.dtype)
            slot = self.slots[id(a)] = self.vsize
            self.vsize += a.size
            self.kept.append(a)
            self.prog += (op, slot, NO_INPUT, NO_INPUT, a.size, _shape_id(a.shape), -1, -1,
                          t._node if t._rg else -1, -1, i0, 0, k, c, grads)
        except TraceFailed as e:
            self.error = str(e)

    def backward(self, tensors, grad_tensors, inputs, retain_graph=None):
        if not self._mine():
            return
        self.retains_graph |= bool(retain_graph)
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
        if retained and any(r() is not None for r in retained.values()):
            self.error = "retain_grad()"
            return
        leaves = []
        slots, tape_leaves = self.slots, TAPE.leaves      # (read once: a loop per leaf)
        for t, v in found:
            leafvar = t._leafvar
            if leafvar < 0 or tape_leaves.get(leafvar) is not t:
                self.error = "a gradient for a tensor that is not a leaf"
                return
            slot = slots.get(id(t._a))
            if slot is None or slot >= 0:
                self.error = "a gradient for a tensor made inside the function"
                return
            if _leaf_hooks.get(id(t)) or _post_hooks.get(id(t)):
                self.error = "a tensor hook"          # (a replay would not call it)
                return
            g = t._grad._a
            if g is v and g.flags.c_contiguous:   # a new .grad: a slot the replay fills
                gslot = slots[id(g)] = self.vsize
                self.vsize += g.size
            else:                                  # accumulated into: read from the tensor
                # (a .grad an earlier backward of the step made has a slot, which ops after
                # this backward read: the sum is copied there, not left at the first's value)
                gslot = slots.get(id(g), -1)
                if gslot < 0:
                    gslot = -1
                    self.grad_of[id(g)] = -slot - 2
            self.kept.append(g)
            self.grad_known.add(id(t))
            leaves.append((leafvar, -slot - 2, gslot))
        self._event(("backward", self._pending, leaves))
        self._pending = None

    @contextlib.contextmanager
    def host(self, fn, *args, **kwargs):
        """A call replayed as it is (optimizer.step, zero_grad, scheduler.step); what runs
        inside it is not traced."""
        if self._mine():
            # (even a traced value's: a replay passes the traced call's tensor, as
            # ReduceLROnPlateau.step(loss) would read the first loss at every call)
            for v in list(args) + list(kwargs.values()):
                if isinstance(v, _tensor.Tensor):
                    self.error = "a tensor argument to an optimizer or scheduler call"
            self._event(("host", fn, args, kwargs))
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
            self._log_ops()         # (so the host event that follows is at this index)
            self.steps[len(self.events)] = fusable
        return self.host(optimizer.step)

    def zero_grad(self, params, optimizer=None, module=None):
        """optimizer.zero_grad() or module.zero_grad() (set_to_none=True; params: its
        parameters) as `p.grad = None` of each, so that a replay folds it into the backward's
        call (program.py) instead of calling it, while the optimizer holds the parameters it
        held (a guard: _Compiled.holds) or the module is the one traced (its tree is guarded as
        a called module's). False if it is not traced so (a host call then)."""
        if not self._mine():
            return False
        exts = []
        for p in params:
            try:
                slot = self._operand(p, p._a)
            except TraceFailed:
                return False
            if slot >= 0:           # (made inside the step)
                return False
            exts.append(-slot - 2)
        for e in exts:
            self._event(("grad_none", e))
        if module is not None:
            self.module(module)
        else:
            self.zeroed.append((optimizer, params))
        self.grad_known.update(map(id, params))
        return True

    def later(self, fn, reads, writes):
        """fn(*arrays of reads) writes into the tensors writes in place, unrecorded, reading
        values the step computed (BatchNorm's running statistics): run now, and by a replay after
        its compiled calls with the values they computed (_Compiled checks that nothing in the
        step reads what it writes). False where not traced (the caller runs fn)."""
        if not self._mine():
            return False
        try:
            slots = []
            for t in reads:
                slot = self.slots.get(id(t._a))
                if slot is None or slot < 0:
                    _fail("an unrecorded write of a value the step did not compute")
                slots.append((slot, t._a.shape))
            if any(id(t._a) in self.arguments for t in writes):
                _fail("an unrecorded in-place write into an argument")
            self.deferred.append((fn, slots, list(writes)))
        except TraceFailed as e:
            self.error = str(e)
        self.host_depth += 1
        try:
            fn(*[t._a for t in reads])
        finally:
            self.host_depth -= 1
        return True

    def read_grad(self, t):
        if self._mine():
            self.grads_read_at.append(len(self.events))
            if id(t) not in self.grad_known:
                self.grad_known.add(id(t))
                self.grad_reads.append((t, t._grad))

    def set_grad(self, t, value):
        if not self._mine():
            return
        self.grad_known.add(id(t))
        try:
            slot = self._operand(t, t._a) if value is None else 0
        except TraceFailed:
            slot = 0
        if slot >= 0:
            self.error = "an assignment to .grad other than `p.grad = None` of a parameter"
        else:
            self._event(("grad_none", -slot - 2))

    def inplace(self, x, op, other, alpha=1):
        """x op= other without recording (a manual update, p -= lr * p.grad): the op written
        into x's own slot."""
        if not self._mine():
            return
        try:
            a, slot = self._written(x)
            slots = self.slots
            ys, ysid, c = NO_INPUT, -1, len(self.cv)
            if isinstance(other, _Tensor):
                ys = slots.get(id(other._a))
                if ys is None:
                    ys = self._operand(other, a)
                ysid = _shape_id(other._a.shape)
                if alpha != 1:          # o * alpha first, rounded, as the eager update
                    k = self.vsize
                    self.vsize += other._a.size
                    self.cv.append(float(alpha))
                    self.prog += (registry_op("MUL_SCALAR"), k, ys, NO_INPUT, other._a.size,
                                  ysid, ysid, -1, -1, -1, 0, 0, -1, c, 0)
                    ys, c = k, len(self.cv)
            elif alpha != 1 or not isinstance(other, (int, float)) or isinstance(other, bool):
                _fail("an in-place update by a scalar with alpha, or by an array")
            else:
                self.cv.append(float(other))
            sid = _shape_id(a.shape)
            self.prog += (op, slot, slot, ys, a.size, sid, sid, ysid, -1, -1, 0, 0, -1, c, 0)
            self._writing = x
        except TraceFailed as e:
            self.error = str(e)

    def inplace_unary(self, x, apply, args):
        """x = apply(x, *args) in place without recording (clamp_ of a .grad: clip_grad_value_):
        the elementwise op (ops/elementwise.py's unary_op) written into x's own slot."""
        if not self._mine():
            return
        try:
            try:        # (not numbers: eager raises its own error for them, after this)
                values = [float(v) for v in args]
            except (TypeError, ValueError):
                _fail("an in-place update by bounds that are not numbers")
            a, slot = self._written(x)
            c = len(self.cv)
            self.cv += values
            sid = _shape_id(a.shape)
            self.prog += (apply.op, slot, slot, NO_INPUT, a.size, sid, sid, -1, -1, -1, apply.fid, 0,
                          -1, c, 0)
            self._writing = x
        except TraceFailed as e:
            self.error = str(e)

    def _written(self, x):
        """(x's array, its slot) for an in-place write into x a replay can make, else raises."""
        a = x._a
        dtype = a.dtype
        if dtype is not self.dtype and self.dtype is not None and dtype != self.dtype:
            _fail(f"an in-place update of a {dtype} tensor")
        if id(a) in self.made_here:     # each eager call starts from a fresh one
            _fail("an in-place update of a tensor made inside the function")
        if dtype.kind != "f" or not a.flags.c_contiguous:
            _fail("an in-place update of a non-contiguous or integer tensor")
        slot = self.slots.get(id(a))    # (mostly there: _operand's first test inline)
        if slot is None:
            slot = self._operand(x, a)
        if self.dtype is None:
            self.dtype = dtype
        return a, slot

    def modified(self, t):
        if t is self._writing:          # (reported by inplace just before)
            self._writing = None
            slot = self.slots.get(id(t._a), 0)
            # (a replay moves the version as much: _Compiled; not through `.data`, a tensor
            # with a version counter of its own)
            if slot < 0 and slot >= -len(self.ext) - 1:
                owner = self.ext[-slot - 2][0]
                if owner is t or (t._ver is not None and t._ver is owner._ver):
                    self.writes[-slot - 2] = self.writes.get(-slot - 2, 0) + 1
            return
        self.unsupported("an in-place operation")

    def constant(self, t):
        """t was made from Python values only (a factory, a backward's seed of ones): a replay
        reads the traced array as it reads a captured tensor."""
        if self._mine():
            self.born.pop(id(t), None)
            self.made_here.add(id(t._a))

    def drawn(self, tensors, make, rng):
        """tensors hold a random draw (a dropout mask, randn): make() draws again from the same
        generator (rng, numpy's), so the stream advances as in eager calls, and returns their new
        values. A replay runs it before the compiled call that reads them."""
        if not self._mine():
            return
        if not any(g is rng for g in self.generators):
            self.generators.append(rng)
        slots = []
        for t in tensors:
            a = t._a
            self.born.pop(id(t), None)
            self.draw_dtypes.add(a.dtype)
            slot = self.slots[id(a)] = self.vsize
            self.vsize += a.size
            self.kept.append(a)
            slots.append((slot, a.size))
        self._event(("draw", make, slots))

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

    def _check_dtype(self, dtype):
        if dtype.kind != "f":
            _fail(f"an op with a {dtype} result")
        if self.dtype is None:
            self.dtype = dtype
        elif dtype != self.dtype:
            _fail("float32 and float64 tensors in one function")

    def _event(self, ev):
        """Append an event other than an op, after the count of ops traced since the last."""
        self._log_ops()
        self.events.append(ev)

    def _log_ops(self):
        n = len(self.prog) // _WIDTH
        if n > self.logged:
            self.events.append(("ops", n - self.logged))
            self.logged = n


def registry_op(name):
    from .. import ops
    return getattr(ops, name)


def _sid(t):
    return -1 if t is None else _shape_id(t._a.shape)


def _shape_id(shape):
    sid = TAPE.shape_ids.get(shape)
    return sid if sid is not None else TAPE.shape_id(shape)


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _arena_lengths():
    a32, l32, a64, l64 = TAPE._by_dtype()
    return {_F32: l32, _F64: l64}



_NEEDS = {}


def _needs(kernel):
    """The kernel's needs() spec as a tuple (split once: the check runs per traced op)."""
    spec = _NEEDS.get(kernel)
    if spec is None:
        spec = _NEEDS[kernel] = tuple(getattr(kernel, "needs", "x").split(","))
    return spec


_SPECIAL = frozenset(("m", "yi", "w"))            # operands op() hands to _special_operands
_COUNTS_ONLY = frozenset(("x", "y", "y|c", "c", "cc", "multi"))   # checks of presence, counts
_CHECKED = {}    # (op, x is None, y is None, len(consts), len(scalars)) -> _check's result


def _check(op, x, y, consts, scalars, i1, i0, out):
    """kernel_check's need, and whether it has _SPECIAL operands. Remembered in _CHECKED for ops
    whose check reads nothing else (most: it runs per traced op) unless scalars hold a tensor;
    forward kernels are given once, when ops are defined."""
    need = kernel_check(op, x, y, consts, scalars, i1, i0, out)
    checked = (need, not _SPECIAL.isdisjoint(need))
    if _COUNTS_ONLY.issuperset(need):
        _CHECKED[(op, x is None, y is None, len(consts), len(scalars))] = checked
    return checked


def _any_tensor(values):
    return any(isinstance(v, _Tensor) for v in values)


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
