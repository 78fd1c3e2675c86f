"""A compiled replay computes 0-dim + - * / inline (Program._mark_scalars, replay.run_ops): the
same values, saved values and gradients as eager, bit for bit, whichever operands need a
gradient and wherever they live (the step's values or tensors from outside)."""
import numpy as np
import pytest

import jitgrad
from jitgrad.engine.replay import SCALAR_ADD, SCALAR_DIV, SCALAR_MUL, SCALAR_SUB


def _inline_rows(cf):
    """How many instructions of cf's program run inline, by kind."""
    program = next(v for v in cf.traces.values() if not isinstance(v, str)).program
    kinds = program.faddrs[program.prog[:, 0]]
    return {k: int((kinds == k).sum()) for k in (SCALAR_ADD, SCALAR_SUB, SCALAR_MUL, SCALAR_DIV)}


def _graph(x0, w, b):
    y = x0
    for _ in range(3):
        y = y * w
        y = y + b
        y = y / w
        y = y - b
        y = b / y
        y = w - y
    return y * y


# which of x0, w, b require a gradient: each product and quotient saves what its formulas read
# for the operands that need one (all, either, or none of them, from outside or from the step)
NEEDS = [(True, True, True), (False, True, True), (True, False, False), (False, False, True)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("needs", NEEDS)
def test_scalar_rows_replay_inline_exactly(dtype, needs):
    dt = getattr(jitgrad, dtype)
    vals = (1.25, 0.75, 0.5)

    def fresh():
        return [jitgrad.tensor(v, dtype=dt, requires_grad=n) for v, n in zip(vals, needs)]

    def step(x0, w, b):
        y = _graph(x0, w, b)
        y.backward()
        return y

    eager_ts = fresh()
    want = step(*eager_ts)
    compiled_ts = fresh()
    cf = jitgrad.compile(step)
    for _ in range(3):                  # trace, then replays (each adds to the .grads, as eager)
        for t in compiled_ts:
            t.grad = None
        got = cf(*compiled_ts)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
        for a, e in zip(compiled_ts, eager_ts):
            assert (a.grad is None) == (e.grad is None)
            if e.grad is not None:
                np.testing.assert_array_equal(a.grad.numpy(), e.grad.numpy())
    inline = _inline_rows(cf)
    assert inline[SCALAR_MUL] == 4 and inline[SCALAR_DIV] == 6, inline
    assert inline[SCALAR_ADD] == 3 and inline[SCALAR_SUB] == 6, inline


def test_scalar_rows_read_captured_tensors_at_replay_time_and_divide_by_zero_as_ieee():
    w = jitgrad.tensor(2.0, dtype=jitgrad.float64)
    x = jitgrad.tensor(3.0, dtype=jitgrad.float64, requires_grad=True)

    @jitgrad.compile
    def step(x):
        y = x / w - w * x
        y.backward()
        return y

    for value in (2.0, 0.0, -0.0, 5.0):
        x.grad = None
        w.fill_(value)                  # read at replay time, not the traced value
        got = step(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.float64(value)
            want = np.float64(3.0) / c - c * 3.0
            want_grad = np.float64(1.0) / c - c
        np.testing.assert_array_equal(got.detach().numpy(), want)
        np.testing.assert_array_equal(x.grad.numpy(), want_grad)
    assert sum(_inline_rows(step).values()) == 3


def test_non_scalar_and_broadcast_rows_keep_their_kernels():
    v = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    s = jitgrad.tensor(3.0, requires_grad=True)
    one = jitgrad.tensor([4.0], requires_grad=True)

    @jitgrad.compile
    def step(v, s, one):
        y = (v * s + one / s - s).sum() * (one - s).sum()
        y.backward()
        return y

    for _ in range(3):
        for t in (v, s, one):
            t.grad = None
        got = step(v, s, one)
    want_y = ((np.array([1.0, 2.0]) * 3 + 4 / 3 - 3).sum()) * (4.0 - 3.0)
    np.testing.assert_allclose(got.detach().numpy(), want_y)
    # one / s, one - s and the product of the two sums have one element each: inline; the rows
    # with a 2-element operand (v * s, + one / s, - s) are not
    inline = _inline_rows(step)
    assert inline[SCALAR_SUB] == 1 and inline[SCALAR_MUL] == 1 and inline[SCALAR_DIV] == 1, inline
    assert inline[SCALAR_ADD] == 0, inline
