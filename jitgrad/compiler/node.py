"""A replayed forward under autograd: ``model = jitgrad.compile(model)``, then ``loss.backward()``
outside.

A compiled function that returns a graph (a tensor requiring grad, without calling backward
itself) replays its forward as values, like any other, and then records one Python node (an
autograd.Function's, named as torch.compile's: ``CompiledFunctionBackward``) from its inputs that
require grad (parameters, arguments) to its results. That node's backward is the program's: the
reverse interpreter over the program's own copy of the traced rows, seeded with the gradients
of the results, reading the values the forward left in the program's buffers; it returns the
gradients of the inputs, which the caller's backward accumulates as eager's does.

The buffers hold one forward's values (v and the saved values, the int data: a max pool's
positions, class targets). A node whose forward was overwritten by a later call before its
backward ran (two forwards, then one backward) keeps a copy of them, taken when that later call
starts, and puts it back for its backward. The node saves (for the in-place checks) the tensors
the traced eager rows saved, its own outputs among them, as eager's nodes would: an in-place
write into one of them before the backward raises torch's error, into another does not. As
torch.compile's, its backward runs under create_graph=True too, but its results (values) are the
outputs of a node whose backward raises: differentiable once, not twice.
"""
import weakref

import numpy as np

from ..autograd.function import PYTHON, BackwardCFunction, Function, _record
from ..engine.loop import F_INTS, F_MULTI, F_PAUSE, F_SAVED, I1, WIDTH
from ..engine.replay import BLOCK_ARRAYS
from ..engine.tape import FREED_MSG, TAPE, is_grad_enabled
from ..tensor import _wrap
from .program import address


class CompiledForward(Function):
    """The node recorded by a replay of a compiled forward (see the module's docstring)."""

    @staticmethod
    def forward(ctx, *inputs):
        raise RuntimeError("CompiledForward is recorded by a compiled replay, not applied")

    @staticmethod
    def backward(ctx, *grads):
        found = ctx.forward_graph.backward(ctx, grads)
        if not is_grad_enabled():
            return found
        # (create_graph=True: the gradients are values. As torch.compile's, they are the results
        # of a node whose own backward raises: differentiable once, not twice)
        again = _AGAIN()
        sources = tuple(g for g in grads if g is not None and g._rg)
        again.needs_input_grad = tuple(True for _ in sources)
        wired = iter(_record(again, sources, tuple(g for g in found if g is not None), force=True))
        return tuple(None if g is None else next(wired) for g in found)


class _NotTwice(Function):
    """The node of a compiled forward's gradients computed with create_graph=True."""

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("torch.compile with aot_autograd does not currently support double "
                           "backward")


_AGAIN = _NotTwice._backward_cls
_AGAIN.__name__ = _AGAIN.__qualname__ = "CompiledFunctionBackwardBackward"     # torch's


CompiledForward._backward_cls.__name__ = "CompiledFunctionBackward"         # torch's
CompiledForward._backward_cls.__qualname__ = "CompiledFunctionBackward"


class ForwardGraph:
    """What a replay of one trace needs to hand out its results as a graph: inputs, (ext index,
    program row) per tensor from outside that requires grad and the step's graph reaches;
    outputs, (spec id, program row, whether a traced row saved it) per returned tensor that
    requires grad; constant, the spec ids of the returned tensors that do not (see _Compiled's
    result spec); inputs_of: the traced call's tensors of inputs; saved: (ext indices, getters
    of (args, kwargs), tensors) of the tensors the traced rows saved (ext tensors, arguments,
    captured int tensors). Replays run holding the tape's lock, and so does a backward reaching
    the node (which may put its values back)."""

    def __init__(self, program, inputs, outputs, constant, inputs_of, saved):
        self.program = program
        self.inputs = [e for e, _ in inputs]
        self.leaves = np.array([r for _, r in inputs], np.int64)
        self.outputs = [k for k, _, _ in outputs]
        self.roots = np.array([r for _, r, _ in outputs], np.int64)
        self.saved_outputs = [k for k, _, saved_by_rows in outputs if saved_by_rows]
        self.constant = constant
        self.saved_ext, self.saved_args, self.saved_fixed = saved
        # (what the guards fix about the inputs: function._record's per-call metadata)
        self.needs = tuple(t._rg for t in inputs_of)
        self.metadata = tuple((t._rg, tuple(t._a.shape), t._a.dtype) for t in inputs_of)
        self.owner = _DEAD                   # the node whose forward's values the buffers hold
        # after the first backward: the inputs it reached (indices), and the block of the call
        # adding their gradients into the tape's buffer (gcopy: [row, -1, address] each)
        self.reached = self.gcopy = self.block = None

    def before_forward(self):
        """A replay is about to overwrite the buffers: keep a copy for the node whose values
        they hold, if its backward may still run."""
        node = self.owner()
        if node is not None and node._saved is not None and node.values is None:
            program = self.program
            node.values = (program.sv.copy(), program.bints.copy(), program.pints.copy())
            # (counted as held by the tape: forwards without backwards, whose nodes only a
            # compaction drops, then bring it sooner)
            TAPE.held += sum(a.size for a in node.values)
        self.owner = _DEAD          # (until the replay's node: it may raise before)

    def record(self, made, tensors, args, kwargs):
        """Make the replay's results (made: spec id -> tensor) the outputs of a new node whose
        inputs are tensors' (the call's external tensors) that require grad."""
        ctx = _NODE()
        inputs = tuple([tensors[e] for e in self.inputs])
        saved = [tensors[e] for e in self.saved_ext]
        if self.saved_args:
            saved += [get(args, kwargs) for get in self.saved_args]
        saved = tuple(saved + self.saved_fixed)
        ctx.forward_graph, ctx.values = self, None
        ctx.needs_input_grad = self.needs
        if self.constant or len(self.outputs) != 1:
            ctx.to_save = saved + tuple(made[k] for k in self.saved_outputs)
            constant = [made[k] for k in self.constant]
            if constant:
                ctx.mark_non_differentiable(*constant)
            _record(ctx, inputs, tuple(made[k] for k in self.outputs) + tuple(constant))
        else:
            self._record_one(ctx, inputs, made[self.outputs[0]], saved)
        self.owner = weakref.ref(ctx)

    def _record_one(self, ctx, inputs, out, saved):
        """function._record's work for one differentiable output, whose node's inputs and their
        metadata the guards fix (half the cost of the general recording)."""
        tape = TAPE
        a = out._a
        with tape.lock:
            tape.prepare(a)
            entries = [len(inputs)]
            for p, t in enumerate(inputs):
                entries += (tape.var(t, t._a.shape), p, 0)
            serial = tape.serial
            tape.saver_row[serial] = len(tape.outs)
            row = tape.append(PYTHON, -1, -1, -1, a.shape, 0, tape.save_int_list(entries),
                              _FLAGS, out)
            ctx._serial = serial
            tape.py_nodes[serial] = ctx
            tape.grad_fns[serial] = ctx
            out._node, out._rg = row, True
            for t in saved:
                tape.note_saved(t, serial)
            if self.saved_outputs:      # (a tanh's output: written in place, torch's error)
                tape.note_saved(out, serial)
        ctx._inputs = self.metadata
        ctx._outputs = ((serial, 0, a.shape, a.dtype),)
        ctx._saved = saved

    def backward(self, ctx, grads):
        """The node's backward on its results' gradients (tensors): its inputs' gradients."""
        n = len(self.outputs)
        found = self._gradients(ctx, np.concatenate([g._a.reshape(-1) for g in grads[:n]]))
        return tuple(None if g is None else _wrap(g.reshape(meta[1]))
                     for g, meta in zip(found, ctx._inputs))

    def _gradients(self, ctx, seeds):
        """The program's backward seeded with seeds (flat), from ctx's forward's values: the
        gradient of each input (a flat view), None where it does not reach it."""
        program = self.program
        if seeds.dtype != program.dtype:
            seeds = seeds.astype(program.dtype)
        with TAPE.lock:
            self._values_of(ctx)
            found = program.gradients(self.roots, seeds, self.leaves)
        if self.block is None and len(self.outputs) == 1:   # (the reach is the rows': fixed)
            self.reached = np.array([e for e, g in enumerate(found) if g is not None], np.int64)
            self.gcopy = np.array([x for e in self.reached.tolist()
                                   for x in (self.leaves[e], -1, 0)], np.int64)
            self.block = program.backward_block(self.roots, self.gcopy)
        return found

    def _values_of(self, ctx):
        """Put ctx's forward's values back into the buffers if a later forward overwrote them."""
        if self.owner() is not ctx:
            if ctx.values is None:      # (freed by a backward: a node that saved no tensor)
                raise RuntimeError(FREED_MSG)
            self.before_forward()
            program = self.program
            program.sv[:], program.bints[:], program.pints[:] = ctx.values
            ctx.values = None
            self.owner = weakref.ref(ctx)

    def _add_into(self, ctx, row, g, goff, gsz, inputs):
        """The backward from the gradient of row (the node's) in the tape's buffer g, whose
        gradients the compiled call adds into the slots of the rows inputs there (g of the
        program's dtype): no array made, no Python per input."""
        program = self.program
        base = address(g)
        size = g.itemsize
        gcopy, block = self.gcopy, self.block
        gcopy[2::3] = base + goff[inputs[self.reached]] * size
        block[_SEEDS] = base + int(goff[row]) * size
        block[_SEEDS + 1] = gsz[row]
        with TAPE.lock:
            self._values_of(ctx)
            err = program.module.run_block(block, program.v, program.need)
        if err:
            program.work[:] = 0         # (it may have stopped with the buffer in use)
            raise RuntimeError(f"jitgrad.compile: the compiled backward failed (error {err})")


def _backward_replay(ctx, row, g, need, goff, gsz):
    """(At the compiled replay's pause on the node: its backward on the row's gradient in g,
    added into its inputs' slots in one compiled call, where it can: one output, a buffer of the
    program's dtype, no anomaly checks, and the reach known from a first backward. Else
    function.BackwardCFunction's, which calls CompiledForward.backward.)"""
    graph = ctx.forward_graph
    if graph.block is None or len(graph.outputs) != 1 or graph.constant or TAPE.check_nan or \
            g.dtype != graph.program.dtype or not (g.flags.c_contiguous and g.flags.writeable):
        return BackwardCFunction._backward_replay(ctx, row, g, need, goff, gsz)
    at = TAPE.rows[row * WIDTH + I1]
    ints = TAPE.ints
    graph._add_into(ctx, row, g, goff, gsz, ints[at + 1: at + 1 + 3 * int(ints[at]): 3])


def _release(ctx):
    """(A freed node: its saved tensors and its copy of the values go.)"""
    ctx._saved = ctx.values = None


_NODE = CompiledForward._backward_cls
_NODE.named_in_errors = False       # (torch's in-place error names no node for its outputs)
_NODE._release = _release
_NODE._backward_replay = _backward_replay
_FLAGS = F_MULTI | F_INTS | F_PAUSE | F_SAVED
_SEEDS = 3 * BLOCK_ARRAYS.index("seeds")       # (its address and length in a block)


def _DEAD():
    return None
