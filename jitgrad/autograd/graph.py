"""A backward pass recorded as ordinary ops: ``create_graph=True``.

The first-order backward is one compiled replay of the tape's VJP kernels. A create_graph backward
walks the same rows in Python instead and calls each op's differentiable formulas (written in
jitgrad ops, see engine/registry.py) under grad mode, so the gradients it returns are themselves
recorded on the tape and can be differentiated again, to any order.

A formula reads the op's inputs and output as tensors that stand for the tape's rows: their value
is the row's output array (kept by the tape, see Tape.values) and their node is the row itself, so
ops on them record edges into the original graph. While the pass runs the tape is pinned (no
compaction), since it refers to rows by number.
"""
import inspect
import math

import numpy as np

from .. import dtypes
from ..engine import hook, registry
from ..engine.loop import OP, A, B, SAVED_AT, I0, I1, FLAGS, SERIAL, WIDTH, LEAF, F_SAVED, F_FREED, \
    F_INTS, F_MULTI, F_F64, F_PAUSE
from ..engine.tape import TAPE, FREED_MSG, _grad_mode
from ..tensor import _wrap
from . import anomaly, hooks

_PARAMS = {}      # formula -> its parameter names


def _params(f):
    p = _PARAMS.get(f)
    if p is None:
        p = _PARAMS[f] = tuple(inspect.signature(f).parameters)
    return p


class Node:
    """What a formula may read of its row besides tensors: the row's integer attributes, its int
    data and saved values (as the kernel reads them), and shapes."""
    __slots__ = ("row", "op", "i0", "i1", "flags", "shape", "_tape")

    def __init__(self, tape, row):
        base = row * WIDTH
        self._tape = tape
        self.row = row
        self.op = tape.rows[base + OP]
        self.i0 = tape.rows[base + I0]
        self.i1 = tape.rows[base + I1]
        self.flags = tape.rows[base + FLAGS]
        self.shape = tape.shape_of(row)

    @property
    def ints(self):
        """The row's integer data (indices, offsets), from its start; None if it has none."""
        return self._tape.ints[self.i1:] if self.flags & F_INTS else None

    @property
    def saved(self):
        """The row's saved values in the arena of its dtype, from its start; None if none."""
        s = self._tape.rows[self.row * WIDTH + SAVED_AT]
        if s < 0:
            return None
        a32, _, a64, _ = self._tape._by_dtype()
        return (a64 if self.flags & F_F64 else a32)[s:]

    def shape_of(self, row):
        return self._tape.shape_of(row)


def _value(tape, row):
    """The value row stands for: a leaf's tensor, an output kept by the tape, or (a hidden
    un-broadcast node) its input broadcast to the row's shape."""
    rows = tape.rows
    if rows[row * WIDTH + OP] == LEAF:
        return tape.leaves[row]._a
    v = tape.values[row]
    if v is None and rows[row * WIDTH + OP] == registry.EXPAND:
        v = np.broadcast_to(_value(tape, rows[row * WIDTH + A]), tape.shape_of(row))
    if v is None:
        raise RuntimeError("jitgrad: create_graph=True needs the value of a node that did not "
                           "keep it")
    return v


def _tensor_at(tape, row):
    """A tensor whose value is row's and whose node is row: ops on it record edges into row. A
    hidden un-broadcast node stands for its input expanded, by an op (which a compiled replay
    can trace; the gradient reaches the input as through the node)."""
    rows = tape.rows
    if rows[row * WIDTH + OP] == registry.EXPAND and tape.values[row] is None:
        return _tensor_at(tape, rows[row * WIDTH + A]).expand(tape.shape_of(row))
    t = _wrap(_value(tape, row), True)
    t._node = row
    return t


def _constant(tape, row, key):
    """An input that needs no gradient (it has no row): the value record() kept for it."""
    kept = tape.consts.get(row, {}).get(key)
    if kept is None:
        return None
    value, shape = kept
    t = _wrap(value)
    return t if shape is None or value.shape == shape else t.expand(shape)


def _inputs(tape, row):
    rows = tape.rows
    if rows[row * WIDTH + FLAGS] & F_MULTI:
        o = rows[row * WIDTH + I1]
        return [tape.ints[o + 1 + 3 * e] for e in range(tape.ints[o])]
    return [v for v in (rows[row * WIDTH + A], rows[row * WIDTH + B]) if v >= 0]


def _reachable(tape, roots, targets):
    """Rows reachable from roots that lead to a target (all of them if targets is None)."""
    rows = tape.rows
    seen = set()
    stack = list(roots)
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        if rows[i * WIDTH + OP] != LEAF:
            stack.extend(_inputs(tape, i))
    if targets is None:
        return seen
    useful = set()
    for i in sorted(seen):        # inputs come before the rows that use them
        if i in targets or (rows[i * WIDTH + OP] != LEAF and
                            any(v in useful for v in _inputs(tape, i))):
            useful.add(i)
    return useful


def _check_replayable(tape, nodes):
    rows = tape.rows
    for i in nodes:
        fl = rows[i * WIDTH + FLAGS]
        if fl & F_SAVED:
            if fl & F_FREED:
                raise RuntimeError(FREED_MSG)
            msg = tape.dirty.get(rows[i * WIDTH + SERIAL])
            if msg is not None:
                raise RuntimeError(msg)


def _missing(op, name):
    return RuntimeError(f"jitgrad: {op.grad_fn or 'a hidden node'} has no differentiable formula "
                        f"for its input {name}, so create_graph=True cannot differentiate through "
                        "it yet")


def _zeros(tape, row):
    v = _value(tape, row)
    t = _wrap(np.zeros(v.shape, v.dtype))
    if hook.tracer is not None:
        hook.tracer.constant(t)
    return t


def _fit(tape, gi, row, op):
    """gi as the gradient of row: its shape and dtype."""
    shape = tape.shape_of(row)
    if tuple(gi.shape) != shape:
        if gi._a.size != int(math.prod(shape)):
            raise RuntimeError(f"jitgrad: the formula of {op.grad_fn} returned a gradient of shape "
                               f"{list(gi.shape)} for an input of shape {list(shape)}")
        gi = gi.reshape(shape)
    want = _value(tape, row).dtype
    if gi._a.dtype != want and want.kind == "f":
        gi = gi.to(dtypes.from_numpy_dtype(want))
    return gi


class _Reads:
    """What a formula of row i may read, built on first use and shared by its formulas."""

    def __init__(self, tape, i, g):
        self.tape, self.i, self.g = tape, i, g
        self.cache = {}
        self.ins = self.entries = None
        self.input = self.role = self.param = None

    def at(self, v, role, param):
        """The input of a multi-input row that the next `each` call differentiates for."""
        self.input, self.role, self.param = v, role, param
        self.cache.pop("input", None)

    def value(self, name):
        tape, i = self.tape, self.i
        if name == "g":
            return self.g
        if name in ("role", "param"):
            return getattr(self, name)
        got = self.cache.get(name)
        if got is not None:
            return got
        if name in ("x", "y"):
            w = self.ins[0 if name == "x" else 1]
            got = _tensor_at(tape, w) if w >= 0 else _constant(tape, i, name)
        elif name == "input":
            got = _tensor_at(tape, self.input)
        elif name == "inputs":            # every input by role, those without rows too
            got = {e[1]: _tensor_at(tape, e[0]) for e in self.entries}
            for role in tape.consts.get(i, ()):
                got[role] = _constant(tape, i, role)
        elif name == "out":
            got = _tensor_at(tape, i)
        elif name == "node":
            got = Node(tape, i)
        elif name == "cond":        # saved 0/1 at the output's shape, in Op.saved's order
            node = Node(tape, i)
            n = math.prod(node.shape)
            at = n * registry.OPS[node.op].saved((self.ins[0] >= 0) | (self.ins[1] >= 0) << 1).index("cond")
            got = _wrap(node.saved[at: at + n].reshape(node.shape) != 0)
        else:
            raise KeyError(name)
        self.cache[name] = got
        return got

    def args(self, f, op):
        try:
            return {p: self.value(p) for p in _params(f)}
        except KeyError as e:
            raise TypeError(f"jitgrad: a formula of {op.grad_fn} reads unknown {e.args[0]!r}")


def _give(add, tape, gi, v, op, row=-1, index=0):
    """Add gi, row's gradient for its input v (its index-th), to v's; anomaly mode checks it."""
    if gi is not None:
        if tape.check_nan and row >= 0 and np.isnan(gi._a).any():
            anomaly.report(tape.rows[row * WIDTH + SERIAL], op.grad_fn, index)
        add(v, _fit(tape, gi, v, op))


def run(roots, seeds, targets=None, retain_graph=True):
    """Differentiate the rows roots, seeded with the tensors seeds, through the differentiable
    formulas. Returns {row: gradient tensor} for every reached row in targets (if targets is None:
    every reached leaf and retain_grad() row)."""
    tape = TAPE
    with tape.lock:
        tape.pinned += 1
        was = _grad_mode.enabled
        _grad_mode.enabled = True
        try:
            return _run(tape, roots, seeds, targets, retain_graph)
        finally:
            _grad_mode.enabled = was
            tape.pinned -= 1


def _run(tape, roots, seeds, targets, retain_graph):
    rows = tape.rows
    keep = set(targets) if targets is not None else set(tape.retained)
    useful = _reachable(tape, roots, targets)
    nodes = sorted((i for i in useful if rows[i * WIDTH + OP] != LEAF), reverse=True)
    _check_replayable(tape, nodes)
    grads = {}

    def add(row, g):
        old = grads.get(row)
        grads[row] = g if old is None else old + g

    for r, s in zip(roots, seeds):
        if r in useful:
            add(r, s)
    for i in nodes:
        g = grads.get(i) if i in keep else grads.pop(i, None)
        if g is None:
            continue
        op = registry.OPS[rows[i * WIDTH + OP]]
        if rows[i * WIDTH + FLAGS] & F_PAUSE:       # tensor hooks, or an autograd.Function
            serial = rows[i * WIDTH + SERIAL]
            on_row = tape.hooks.get(serial)
            if on_row:
                g = hooks.run(on_row, g)
                if i in keep:
                    grads[i] = g
            node = tape.py_nodes.get(serial)
            if node is not None:
                node._backward_graph(i, g, useful, lambda v, gi: _give(add, tape, gi, v, op))
                continue
        if op.rule is None:             # no gradient flows through this op
            continue
        reads = _Reads(tape, i, g)
        if rows[i * WIDTH + FLAGS] & F_MULTI:
            f = op.formulas.get("each")
            o = rows[i * WIDTH + I1]
            reads.entries = [tuple(tape.ints[o + 1 + 3 * e: o + 4 + 3 * e])
                             for e in range(tape.ints[o])]
            for e, (v, role, param) in enumerate(reads.entries):
                if v in useful:
                    if f is None:
                        raise _missing(op, role)
                    reads.at(v, role, param)
                    _give(add, tape, f(**reads.args(f, op)), v, op, i, e)
            continue
        reads.ins = (rows[i * WIDTH + A], rows[i * WIDTH + B])
        for e, (name, v) in enumerate(zip(("x", "y"), reads.ins)):
            if v >= 0 and v in useful:
                f = op.formulas.get(name)
                if f is None:
                    raise _missing(op, name)
                _give(add, tape, f(**reads.args(f, op)), v, op, i, e)
    if not retain_graph:
        for i in nodes:
            rows[i * WIDTH + FLAGS] |= F_FREED
    for r in useful:    # reached, but no gradient flowed (only through floor, say): zeros, as the
        if r not in grads and (r in keep or rows[r * WIDTH + OP] == LEAF):     # kernels give
            grads[r] = _zeros(tape, r)
    if targets is None:
        return {r: g for r, g in grads.items() if r in keep or rows[r * WIDTH + OP] == LEAF}
    return {r: g for r, g in grads.items() if r in keep}


