"""scatter_reduce's backward beyond the op table's samples: PyTorch's gradients (first and second
order) where they are hardest (ties, zeros in x and src, nan and inf, an empty index, 0-dim
tensors, every reduction with include_self both ways, float32 and float64), the row saving
exactly what its formulas read (x, src, out: what PyTorch's node saves), and compiled replay."""
import itertools
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import ops
from jitgrad.engine import registry
from jitgrad.engine.loop import F_F64, FLAGS, I1, SAVED_AT
from jitgrad.engine.tape import TAPE

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _cases():
    r = np.random.default_rng(3)
    vals = np.array([-1.0, 0.0, 1.0, 2.0, 0.5])        # few values: ties and zeros everywhere
    x, s, i = r.choice(vals, (4, 3)), r.choice(vals, (5, 3)), r.integers(0, 4, (5, 3))
    yield "ties", x, 0, i, s
    xn, sn = x.copy(), s.copy()
    xn[1, 1], sn[2, 0] = np.nan, np.nan
    yield "nan", xn, 0, i, sn
    xi, si = x.copy(), s.copy()
    xi[3, 2], si[0, 1] = np.inf, -np.inf
    yield "inf", xi, 0, i, si
    yield "zeros", np.array([[0.0, 1.0], [2.0, 0.0]]), 0, np.array([[0, 0], [0, 1], [1, 1]]), \
        np.array([[0.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    yield "empty", x, 0, np.zeros((0, 3), np.int64), np.zeros((0, 3))
    yield "0-dim", np.array(2.0), 0, np.array([0, 0, 0]), np.array([2.0, 0.0, 2.0])
    yield "0-dim-src", np.array(0.0), 0, np.array([0]), np.array(3.0)
    yield "last-dim", r.choice(vals, (2, 3, 4)), -1, r.integers(0, 4, (2, 2, 6)), r.choice(vals, (2, 2, 6))
    yield "random", r.standard_normal((6, 5)), 0, r.integers(0, 6, (8, 5)), r.standard_normal((8, 5))


CASES = list(_cases())


def _grads(lib, case, reduce, include_self, dtype, needs):
    _, x, dim, index, src = case
    dt = getattr(lib, dtype)
    xt = lib.tensor(x, dtype=dt, requires_grad=needs[0])
    st = lib.tensor(src, dtype=dt, requires_grad=needs[1])
    out = xt.scatter_reduce(dim, lib.tensor(index), st, reduce, include_self=include_self)
    out.backward(lib.tensor(np.linspace(-1, 2, x.size).reshape(x.shape), dtype=dt))
    return [out.detach().numpy()] + [t.grad.numpy() if t.grad is not None else None for t in (xt, st)]


def _close(got, want, dtype):
    tol = 1e-12 if dtype == "float64" else 1e-5
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, equal_nan=True)


@needs_torch
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_match_torch(case, dtype):
    """Every reduction, include_self both ways, x and src needing gradients alone and together.
    (A nan or inf result gives nan gradients, as PyTorch's products do: amax's ties are
    multiplied by g / their count, 0 / 0 without ties; prod's x is divided out of out.)"""
    for reduce, include_self, needs in itertools.product(REDUCTIONS, (True, False),
                                                         ((True, True), (True, False), (False, True))):
        want = _grads(torch, case, reduce, include_self, dtype, needs)
        got = _grads(jitgrad, case, reduce, include_self, dtype, needs)
        _close(got, want, dtype)


def _second(lib, case, reduce, include_self):
    """The gradient of sum(w * d<out, v>/d(x, src)) with respect to x and src (create_graph)."""
    _, x, dim, index, src = case
    xt = lib.tensor(x, requires_grad=True)
    st = lib.tensor(src, requires_grad=True)
    out = xt.scatter_reduce(dim, lib.tensor(index), st, reduce, include_self=include_self)
    v = lib.tensor(np.linspace(-1, 2, x.size).reshape(x.shape))
    gx, gs = lib.autograd.grad((out * v).sum(), (xt, st), create_graph=True)
    wx = lib.tensor(np.linspace(0.5, 1.5, x.size).reshape(x.shape))
    ws = lib.tensor(np.linspace(-2, 1, src.size).reshape(src.shape))
    total = (gx * wx).sum() + (gs * ws).sum()
    hx, hs = lib.autograd.grad(total, (xt, st), allow_unused=True) if total.requires_grad else (None, None)
    return [t.numpy() if t is not None else np.zeros(a.shape) for t, a in ((gx.detach(), x), (gs.detach(), src),
                                                                           (hx, x), (hs, src))]


@needs_torch
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("ties", "zeros", "random", "0-dim")],
                         ids=lambda c: c[0])
def test_second_derivatives_match_torch(case):
    for reduce, include_self in itertools.product(REDUCTIONS, (True, False)):
        if reduce == "prod" and case[0] in ("ties", "zeros"):
            continue        # PyTorch refuses (two zeros of src at one position: DelayedError)
        want = _second(torch, case, reduce, include_self)
        got = _second(jitgrad, case, reduce, include_self)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_row_saves_x_src_and_out(dtype):
    """Whichever input needs a gradient, the row saves x, src (the elements it read) and out, in
    that order (registry.Op.saved), and nothing computed from them; its int data is src's out
    positions and src's size."""
    op = registry.OPS[ops.SCATTER_REDUCE]
    assert op.plan is not None and all(op.saved(g) == ("x", "y", "out") for g in (1, 2, 3))
    x = np.array([[1.0, 0.0, 2.0], [3.0, 4.0, -1.0]])
    src = np.array([[5.0, 0.0, 2.0, 9.0], [1.0, 1.0, -3.0, 9.0]])      # its last column unread
    index = jitgrad.tensor([[1, 0, 1], [1, 1, 0]])
    for reduce, needs in itertools.product(REDUCTIONS, ((True, True), (True, False), (False, True))):
        xt = jitgrad.tensor(x, dtype=getattr(jitgrad, dtype), requires_grad=needs[0])
        st = jitgrad.tensor(src, dtype=getattr(jitgrad, dtype), requires_grad=needs[1])
        out = xt.scatter_reduce(0, index, st, reduce, include_self=False)
        with TAPE.lock:
            row = TAPE.row(out._node)
            a32, _, a64, _ = TAPE._by_dtype()
            arena = a64 if row[FLAGS] & F_F64 else a32
            got = arena[row[SAVED_AT]: row[SAVED_AT] + 2 * x.size + index.numel() + 1].copy()
            ints = TAPE.ints[row[I1]: row[I1] + 8].copy()
        want = np.concatenate([x.reshape(-1), src[:, :3].reshape(-1), out.detach().numpy().reshape(-1)])
        np.testing.assert_array_equal(got[:want.size], want.astype(got.dtype))
        np.testing.assert_array_equal(ints, [6, 3, 1, 5, 3, 4, 2, 6])


@needs_torch
def test_saved_src_and_out_written_in_place_refuse_backward_as_torch():
    """PyTorch's node saves self, src and result: writing src or the result in place before the
    backward is refused; x.scatter_reduce_ (which writes the row's own x) is not."""
    for lib in (jitgrad, torch):
        for target in ("src", "out"):
            x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
            src = lib.tensor([4.0, 0.5], requires_grad=True) * 1
            out = x.scatter_reduce(0, lib.tensor([0, 0]), src, "sum")
            (src if target == "src" else out).mul_(2)
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()
    got = []
    for lib in (jitgrad, torch):
        leaf = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        src = lib.tensor([4.0, 0.5], requires_grad=True)
        x = leaf * 1
        x.scatter_reduce_(0, lib.tensor([0, 2]), src, "prod")
        (x * lib.tensor([1.0, -1.0, 2.0])).sum().backward()
        got.append((leaf.grad.numpy(), src.grad.numpy()))
    for a, b in zip(*got):
        np.testing.assert_array_equal(a, b)


def test_unread_0_dim_src_gets_zero_gradient():
    """An empty index reads nothing of a 0-dim src: its gradient is 0, first order and through a
    create_graph backward."""
    x = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    src = jitgrad.tensor(3.0, requires_grad=True)
    for reduce in REDUCTIONS:
        out = x.scatter_reduce(0, jitgrad.tensor([], dtype=jitgrad.long), src, reduce)
        gx, gs = jitgrad.autograd.grad(out.sum(), (x, src), create_graph=True)
        np.testing.assert_array_equal(gx.detach().numpy(), [1.0, 1.0])
        assert gs.shape == () and gs.item() == 0.0
        out = x.scatter_reduce(0, jitgrad.tensor([], dtype=jitgrad.long), src, reduce)
        out.sum().backward()
        assert src.grad.item() == 0.0
        x.grad = src.grad = None


@pytest.mark.parametrize("case", [c for c in CASES if c[0] != "0-dim-src"], ids=lambda c: c[0])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_replay_matches_eager(case, dtype):
    """The forward kernel writes out and the saves (x, src, out) the VJP kernel reads: a replay
    on new values gives eager's values and gradients."""
    _, x, dim, index, src = case
    dt = getattr(jitgrad, dtype)
    idx = jitgrad.tensor(index)
    w = jitgrad.tensor(np.linspace(-1, 2, x.size).reshape(x.shape), dtype=dt)
    for reduce, include_self in itertools.product(REDUCTIONS, (True, False)):
        def step(xt, st):
            out = (xt * 1).scatter_reduce(dim, idx, st * 1, reduce, include_self=include_self)
            (out * w).sum().backward()
            return out

        compiled = jitgrad.compile(step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled(jitgrad.tensor(x, dtype=dt, requires_grad=True), jitgrad.tensor(src, dtype=dt, requires_grad=True))
        (entry,) = compiled.traces.values()
        assert not isinstance(entry, str), entry
        results = []
        for fn in (step, compiled):
            # new values, with the case's zeros, ties and nans where they were
            xt = jitgrad.tensor(np.where(x == np.round(x), x, x * 0.75 + 0.125), dtype=dt, requires_grad=True)
            st = jitgrad.tensor(np.where(src == np.round(src), src, src * 0.75 + 0.125), dtype=dt, requires_grad=True)
            out = fn(xt, st)
            results.append([out.detach().numpy(), xt.grad.numpy(), st.grad.numpy()])
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b)
