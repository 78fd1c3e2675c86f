"""A compiled replay computes 0-dim + - * / inline (Program._mark_scalars, replay.run_ops): the
same values, saved values and gradients as eager, bit for bit, whichever operands need a
gradient and wherever they live (the step's values or tensors from outside)."""
import numpy as np
import pytest

import jitgrad
from jitgrad.engine.replay import SCALAR_ADD, SCALAR_DIV, SCALAR_MUL, SCALAR_SUB


def _program(cf):
    """The program of cf's (first) replayable trace."""
    return next(v for v in cf.traces.values() if not isinstance(v, str)).program


def _inline_rows(cf):
    """How many instructions of cf's program run inline, by kind."""
    program = _program(cf)
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


# ---- runs of scalar rows alone: run_scalars' own loops (Program._plan_scalars) ---------------
def _scalar_run(cf):
    """Whether the program's backward run runs on run_scalars' codes."""
    run = next(s for s in _program(cf).segments if getattr(s, "roots", None) is not None)
    return run.fcode.shape[0] > 0


def _same_bits(got, want):
    """Equal values, nan where nan, and the same sign of every number (zeros included)."""
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(got, want)
    numbers = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))


def _random_graph(rng, leaves, size):
    """A random graph of + - * / over leaves: mostly chains through the last value (as a
    scalar loop), with fan-out to earlier values, repeated operands and leaves on either side."""
    ops = (lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b)
    plan = []
    for k in range(size):
        op = int(rng.integers(4))
        pool = len(leaves) + k
        x = pool - 1 if k and rng.random() < 0.6 else int(rng.integers(pool))
        y = int(rng.integers(pool)) if rng.random() < 0.7 else x
        plan.append((op, x, y) if rng.random() < 0.5 else (op, y, x))

    def run(*ts):
        vals = list(ts)
        for op, x, y in plan:
            vals.append(ops[op](vals[x], vals[y]))
        return vals[-1] * vals[len(ts) + size // 2] if size > 1 else vals[-1]
    return run


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # (eager numpy's, on the inf and zeros)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("seed", range(12))
def test_scalar_runs_give_eagers_values_and_gradients_bit_for_bit(dtype, seed):
    rng = np.random.default_rng(seed)
    dt = getattr(jitgrad, dtype)
    # zeros, a negative zero and an inf among the values: the signs of zero gradients and IEEE
    # division by zero are part of what must match
    pick = [0.5, -1.5, 2.0, 0.0, -0.0, 1.25, np.inf, 3.0]
    vals = [pick[i] for i in rng.integers(len(pick), size=4)]
    needs = [bool(rng.random() < 0.7) for _ in vals]
    needs[0] = True
    graph = _random_graph(rng, vals, int(rng.integers(2, 40)))
    captured = jitgrad.tensor(float(rng.choice(pick)), dtype=dt)

    def step(a, b, c, d):
        y = graph(a, b, c, d * captured)
        y.backward()
        return y

    def fresh():
        return [jitgrad.tensor(v, dtype=dt, requires_grad=n) for v, n in zip(vals, needs)]

    eager = fresh()
    want = step(*eager)
    ts = fresh()
    cf = jitgrad.compile(step, fullgraph=True)
    for _ in range(3):
        for t in ts:
            t.grad = None
        got = cf(*ts)
        _same_bits(got.detach().numpy(), want.detach().numpy())
        for a, e in zip(ts, eager):
            assert (a.grad is None) == (e.grad is None)
            if e.grad is not None:
                _same_bits(a.grad.numpy(), e.grad.numpy())
    assert _scalar_run(cf)


@pytest.mark.parametrize("leaf_first", [False, True])
def test_scalar_chains_with_an_optimizer_step_match_eager_over_steps(leaf_first):
    # y = y*w + b over and over, the parameters on either side of each op (the chain rows of
    # run_scalars' backward: each kind, both forms), then SGD with momentum in the same call
    def make():
        w = jitgrad.tensor(0.999, dtype=jitgrad.float64, requires_grad=True)
        b = jitgrad.tensor(1e-3, dtype=jitgrad.float64, requires_grad=True)
        return w, b, jitgrad.optim.SGD([w, b], lr=1e-4, momentum=0.9)

    def step(x0, w, b, opt):
        opt.zero_grad()
        y = x0
        for _ in range(50):
            y = w * y if leaf_first else y * w
            y = b - y if leaf_first else y - b
            y = w / y if leaf_first else y / w
            y = b + y if leaf_first else y + b
        loss = y * y
        loss.backward()
        opt.step()
        return loss

    x0 = jitgrad.tensor(0.5, dtype=jitgrad.float64)
    ew, eb, eopt = make()
    cw, cb, copt = make()
    cf = jitgrad.compile(step, fullgraph=True)
    for _ in range(4):
        want = step(x0, ew, eb, eopt)
        got = cf(x0, cw, cb, copt)
        _same_bits(got.detach().numpy(), want.detach().numpy())
        for c, e in ((cw, ew), (cb, eb)):
            _same_bits(c.detach().numpy(), e.detach().numpy())
            _same_bits(c.grad.numpy(), e.grad.numpy())
    assert _scalar_run(cf)


def test_scalar_runs_fall_back_where_their_loops_do_not_apply():
    w = jitgrad.tensor(1.5, dtype=jitgrad.float64, requires_grad=True)
    v = jitgrad.tensor([1.0, 2.0], dtype=jitgrad.float64, requires_grad=True)

    def two_backwards(w):           # a second backward reads the saves the scalar loops skip
        y = w * w + w
        y.backward(retain_graph=True)
        y.backward()
        return y

    def reaches_a_vector(w, v):     # the root reaches a non-scalar row
        y = (v * w).sum() * w
        y.backward()
        return y

    for fn, args in ((two_backwards, (w,)), (reaches_a_vector, (w, v))):
        cf = jitgrad.compile(fn, fullgraph=True)
        for t in (w, v):
            t.grad = None
        want = fn(*args)
        grads = [t.grad.numpy().copy() for t in args]
        for _ in range(2):
            for t in (w, v):
                t.grad = None
            got = cf(*args)
            np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
            for t, g in zip(args, grads):
                np.testing.assert_array_equal(t.grad.numpy(), g)
        assert not _scalar_run(cf)


def test_scalar_runs_add_into_existing_grads_as_eager():
    # no zero_grad: each call's gradients are added into the .grads the last one left (and into
    # one the caller set), as backward's `grad += g`
    def make():
        w = jitgrad.tensor(0.75, dtype=jitgrad.float64, requires_grad=True)
        b = jitgrad.tensor(-0.25, dtype=jitgrad.float64, requires_grad=True)
        return w, b

    def step(x, w, b):
        y = x
        for _ in range(20):
            y = y * w + b
        y.backward()
        return y

    x = jitgrad.tensor(1.5, dtype=jitgrad.float64)
    ew, eb = make()
    cw, cb = make()
    cf = jitgrad.compile(step, fullgraph=True)
    for k in range(4):
        if k == 2:
            eb.grad = jitgrad.tensor(10.0, dtype=jitgrad.float64)
            cb.grad = jitgrad.tensor(10.0, dtype=jitgrad.float64)
        step(x, ew, eb)
        cf(x, cw, cb)
        for c, e in ((cw, ew), (cb, eb)):
            _same_bits(c.grad.numpy(), e.grad.numpy())
    assert _scalar_run(cf)
