"""The op table's index: op code -> grad_fn name, backward rule, display arity.

ops.py fills it; codegen.py turns it into the interpreter's dispatcher.
"""


class Op:
    __slots__ = ("code", "grad_fn", "rule", "arity")

    def __init__(self, code, grad_fn, rule, arity):
        self.code = code
        self.grad_fn = grad_fn    # PyTorch's node name, e.g. "AddBackward0"; None: hidden helper node
        self.rule = rule          # plain-Python backward rule, compiled via codegen; None for leaves
        self.arity = arity        # how many inputs next_functions shows


OPS = []


def defop(grad_fn, rule, arity=1):
    """Register an op; returns its op code (the row's OP column)."""
    OPS.append(Op(len(OPS), grad_fn, rule, arity))
    return len(OPS) - 1


LEAF = defop("AccumulateGrad", None, 0)
assert LEAF == 0
EXPAND = None   # set by ops.py: the hidden node that un-broadcasts an input's gradient
