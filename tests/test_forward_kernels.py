"""Generated from the op table: every op's forward kernel, replayed by jitgrad.compile, gives the
eager forward's values, and the values it saves for backward give the eager gradients.

Each sample case (ops/_samples.py) becomes a step `out = op(inputs); (out * w).sum().backward()`,
traced once and replayed on fresh inputs of the same shapes; cases using an op without a forward
kernel run eagerly (the trace says so) and are not compared. Every op that has a kernel must be
replayed by some case.
"""
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import ops
from jitgrad.engine import registry

from test_ops_gradcheck import CASES, IDS, as_outputs, jg_call, make_inputs, _pick

REPLAYED = set()


def _step(fn, args, kwargs, where, weights):
    def step(*xs):
        outs = [o for o in as_outputs(jg_call(fn, args, kwargs, where, xs))
                if o.dtype.is_floating_point]
        loss = None
        for o, w in zip(outs, weights):
            term = (o * w).sum()
            loss = term if loss is None else loss + term
        if loss is not None and loss.requires_grad:
            loss.backward()
        # (copies: a view op's output is a view of an argument, which a replay cannot return)
        return [o.clone() for o in outs]
    return step


def _run(step, values, dtype):
    xs = [jitgrad.tensor(v, dtype=dtype, requires_grad=True) for v in values]
    outs = step(*xs)
    return [o.detach().numpy().copy() for o in outs], [None if x.grad is None else x.grad.numpy()
                                                       for x in xs]


def _cast(args, kwargs, dtype):
    """The case's other tensor arguments (weights, targets) in dtype, as test_float32 does."""
    def c(a):
        return a.to(dtype) if isinstance(a, jitgrad.Tensor) and a.is_floating_point() else a
    return [c(a) for a in args], {k: c(a) for k, a in kwargs.items()}


@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_replay_matches_eager(fn, i, case):
    """float64, then (if the case replays) float32: the kernels compile per dtype."""
    args, kwargs, where = make_inputs(case, seed=i)
    first = _pick(args, where)
    probe = as_outputs(jg_call(fn, args, kwargs, where,
                               [jitgrad.tensor(v, requires_grad=True, dtype=jitgrad.float64)
                                for v in first]))
    shapes = [o.shape for o in probe if o.dtype.is_floating_point]
    again = [v * 0.75 + 0.125 for v in first]
    for dtype in (jitgrad.float64, jitgrad.float32):
        cargs, ckwargs = _cast(args, kwargs, dtype)
        weights = [jitgrad.tensor(np.linspace(-1, 2, int(np.prod(s))).reshape(s), dtype=dtype)
                   for s in shapes]
        step = _step(fn, cargs, ckwargs, where, weights)
        compiled = jitgrad.compile(step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled(*[jitgrad.tensor(v, dtype=dtype, requires_grad=True) for v in first])
        (entry,) = compiled.traces.values()
        if isinstance(entry, str):        # an op of this case has no forward kernel: eager
            return
        REPLAYED.update(entry.program.prog[:, 0].tolist())
        want_out, want_grad = _run(step, again, dtype)
        got_out, got_grad = _run(compiled, again, dtype)
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == jitgrad.float64 else dict(rtol=1e-5,
                                                                                  atol=1e-6)
        for a, b in zip(got_out, want_out):
            np.testing.assert_allclose(a, b, **tol)
        for a, b in zip(got_grad, want_grad):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a, b, **tol)


def test_every_forward_kernel_is_replayed():
    """Runs after the cases above (same module): each op with a forward kernel was replayed."""
    with_kernel = {op.code for op in registry.OPS if op.forward_kernel is not None}
    missing = [registry.OPS[c].grad_fn for c in sorted(with_kernel - REPLAYED)]
    if not REPLAYED:
        pytest.skip("run with the replay cases")
    assert not missing, f"forward kernels no sample replays: {missing}"


def test_ops_package_exports_samples():
    assert ops.SAMPLES
