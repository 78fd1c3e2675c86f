"""The test samples of the ops: each family file calls ``samples``/``kinks`` next to each op.

``samples(fn, *cases)`` gives each public function its test inputs: a case is a tuple of
arguments where a tuple stands for a random float64 tensor of that shape requiring grad
(``Pos(shape)``: positive values, ``NonZero(shape)``: bounded away from 0, ``Unit(shape)``: in
(0.1, 0.9), ``Given(values)``: exactly these values, ``Seq([shape, ...])``: a list of tensors) and
anything else (write dims and sizes as lists; index tensors as jitgrad tensors) is passed as is; a
trailing dict holds keyword arguments. tests/test_ops_gradcheck.py runs gradcheck on every case
and compares values, grad_fn names and gradients with PyTorch, and checks that every registered op
is reached by some case. ``kinks(fn, *cases)`` adds cases checked against PyTorch only: at kinks
and ties finite differences say nothing, and PyTorch's choice of subgradient is the spec.
"""
import numpy as np

from ..tensor import _wrap


SAMPLES = {}


class Pos(tuple):
    """A sample shape whose values are positive."""


class NonZero(tuple):
    """A sample shape whose values are bounded away from zero (poles and kinks)."""


class Unit(tuple):
    """A sample shape whose values lie in (0.1, 0.9) (probabilities)."""


class Given:
    """A sample tensor with exactly these values (ties, kinks)."""

    def __init__(self, values):
        self.values = values


class Seq(list):
    """A sample list of tensors, one per shape (cat, stack)."""


SAMPLE_EPS = {}     # ops whose forward loses precision get a larger finite-difference step
KINKS = {}


def samples(fn, *cases, eps=None):
    SAMPLES[fn] = SAMPLES.get(fn, ()) + cases
    if eps is not None:
        SAMPLE_EPS[fn] = eps


def kinks(fn, *cases):
    KINKS[fn] = KINKS.get(fn, ()) + cases


UNARY = (((),), ((3,),), ((2, 3),))
BINARY = (((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 1), (1, 3)), ((3,), ()), ((2, 3), (3,)),
          ((2, 3), 1.5), ((3,), 2))
_I = lambda *v: _wrap(np.array(v, np.int64))       # noqa: E731  (an index tensor in samples)
_IDX = _wrap(np.array([[0, 2], [4, 0]], np.int64))      # embedding indices (embedding, one_hot)
