"""The op table: one entry per op code, everything the engine knows about an op.

An entry holds PyTorch's grad_fn name, the VJP kernel (plain Python over flat arrays, compiled by
codegen.py; what a first-order backward replays), the differentiable VJP formulas (written in
jitgrad ops; what ``create_graph=True`` records, see autograd/graph.py) and a forward kernel slot
(filled by compiled replay). The op files in jitgrad/ops/ fill the table with ``defop``.

A formula is one function per input, named by what it reads, as in PyTorch's derivatives.yaml:

    MUL = defop("MulBackward0", _mul, 2, x=lambda g, y: g * y, y=lambda g, x: g * x)

Its parameters are looked up by name: ``g`` the output's gradient, ``x``/``y`` the inputs (as the
kernel sees them: broadcast inputs at the output's shape), ``out`` the output, ``cond`` the bool
condition a row saved (where's condition, masked_fill's mask: a constant, at the output's shape),
``node`` the row's attributes (i0, i1, its int data, its saved values, shapes: see graph.Node). A multi-input op
(F_MULTI) gives ``each``: the gradient of one input, which also reads ``role`` and ``param`` (that
input's entry in the int data), ``input`` (that input) and ``inputs`` (all of them, by role, those
needing no gradient too). An input that needs no gradient has no row: record() keeps its value for
the formulas (Tape.consts). A formula returns a tensor of the input's gradient shape, or None.
"""
import inspect


class Op:
    __slots__ = ("code", "grad_fn", "rule", "arity", "formulas", "reads", "forward_kernel", "plan")

    def __init__(self, code, grad_fn, rule, arity, formulas, forward_kernel=None, saves_reads=False):
        self.code = code
        self.grad_fn = grad_fn    # PyTorch's node name, e.g. "AddBackward0"; None: hidden helper node
        self.rule = rule          # the VJP kernel, compiled via codegen; None: no gradient flows
        self.arity = arity        # how many inputs next_functions shows
        self.formulas = formulas  # input name ("x", "y" or "each") -> differentiable VJP formula
        params = {k: tuple(inspect.signature(f).parameters) for k, f in formulas.items()}
        # what the formulas read, by name: the values a create_graph backward needs
        self.reads = frozenset(p for names in params.values() for p in names)
        # the forward as plain Python over flat arrays (compiled by codegen; signature in
        # engine/replay.py), for compiled replay; None: a step using the op replays eagerly
        self.forward_kernel = forward_kernel
        # saves_reads: the row saves exactly the values the formulas read (x, y, out, cond), and
        # the kernel reads them in Op.saved's order; plan: those names, per input (x's, y's).
        # A formula that reads node reads the row's numeric arguments, saved after them
        self.plan = None
        if saves_reads:
            self.plan = tuple(tuple(p for p in params.get(k, ()) if p not in ("g", "node"))
                              for k in ("x", "y"))
            names = set(self.plan[0] + self.plan[1])
            if not names <= {"x", "y", "out", "cond"}:
                raise TypeError(f"defop: {grad_fn}'s formulas read {sorted(names)}: a row saving "
                                "what they read saves x, y, out and cond")

    def saved(self, grads):
        """The names of the values a row of this op saves when the inputs in grads (bit 0: x,
        bit 1: y) need a gradient: the values x's formula reads, then those y's reads, each
        once, then out if one reads it (record saves the output after its operands)."""
        names = dict.fromkeys((self.plan[0] if grads & 1 else ()) + (self.plan[1] if grads & 2 else ()))
        if "out" in names:
            del names["out"]
            names["out"] = None
        return tuple(names)


OPS = []


def defop(grad_fn, rule, arity=1, forward=None, saves_reads=False, **formulas):
    """Register an op; returns its op code (the row's OP column). formulas: see the docstring;
    forward: its forward kernel (engine/replay.py); saves_reads: the row saves the values its
    formulas read, in their order (Op.saved), nothing else."""
    unknown = set(formulas) - {"x", "y", "each"}
    if unknown:
        raise TypeError(f"defop: formulas are named x, y or each, not {sorted(unknown)}")
    OPS.append(Op(len(OPS), grad_fn, rule, arity, formulas, forward, saves_reads))
    return len(OPS) - 1


LEAF = defop("AccumulateGrad", None, 0)
assert LEAF == 0
EXPAND = None   # set by ops/shape.py: the hidden node that un-broadcasts an input's gradient
