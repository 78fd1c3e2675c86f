"""jitgrad.compile replays steps built on reductions, shape and indexing ops: the replay gives
eager's values, gradients and parameter updates over several calls with changing inputs (ops
whose positions depend on the values, as max(dim), cummax, get them from each call's values),
and really replays (one compiled trace, not an eager fallback). An index tensor that may change
between calls (an argument, or computed inside the step) makes the step run eagerly instead."""
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import nn


def _replayed(compiled):
    """The one trace of compiled, which must be a replay (not the reason it runs eagerly)."""
    (entry,) = compiled.traces.values()
    assert not isinstance(entry, str), entry
    return entry


def _check(a, b, dtype):
    if dtype == jitgrad.float64:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    else:
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def _twins(make_step, dtype, seed=0):
    """Two identical (model, optimizer, step) triples: one run eagerly, one compiled."""
    out = []
    for _ in range(2):
        jitgrad.manual_seed(seed)
        out.append(make_step(dtype))
    return out


def _compare(make_step, inputs, dtype):
    (m1, step1), (m2, step2) = _twins(make_step, dtype)
    compiled = jitgrad.compile(step2, fullgraph=True)
    for xs in inputs:
        r1 = step1(*[jitgrad.tensor(x, dtype=dtype) for x in xs])
        r2 = compiled(*[jitgrad.tensor(x, dtype=dtype) for x in xs])
        for a, b in zip(r1, r2):
            _check(b.detach().numpy(), a.detach().numpy(), dtype)
        for p, q in zip(m1.parameters(), m2.parameters()):
            _check(q.detach().numpy(), p.detach().numpy(), dtype)
            _check(q.grad.numpy(), p.grad.numpy(), dtype)
    return _replayed(compiled)


def _inputs(shape, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape),) for _ in range(n)]


DTYPES = pytest.mark.parametrize("dtype", [jitgrad.float64, jitgrad.float32], ids=["f64", "f32"])


@DTYPES
def test_feature_mixing_step(dtype):
    """views, cat, split/chunk, slices, select, stack, index_select/gather with constant
    indices, repeat, flip: a small model mixing its features, trained by SGD."""
    perm = jitgrad.tensor([2, 0, 1, 3, 5, 4])
    rows = jitgrad.tensor([[1, 0, 2, 1, 0, 1]] * 4)

    def make(dtype):
        model = nn.Linear(6, 6).to(dtype)
        opt = jitgrad.optim.SGD(model.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            h = model(x.reshape(4, 6)).tanh()
            a, b = h.split(3, dim=1)
            c, d = h.chunk(2, dim=0)
            z = jitgrad.cat([a * b, h[:, ::2], h[1:3].flatten().reshape(2, 6)[:, :3]], 0)
            z = z + jitgrad.stack([h[:, 0], h.select(1, 2), h[..., -1]], 1).sum(0)
            w = h.index_select(1, perm).gather(1, rows).repeat(1, 2).flip(0)
            loss = (z * z).mean() + (c - d).abs().sum() + (w * h.narrow(1, 0, 6).repeat(1, 2)).mean()
            loss.backward()
            opt.step()
            return loss, z
        return model, step

    entry = _compare(make, _inputs((2, 12)), dtype)
    assert entry.program.prog.shape[0] > 20


@DTYPES
def test_reduction_head_step(dtype):
    """max/min along a dim, amax, logsumexp, var/std, prod, cumsum, cumprod, logcumsumexp,
    cummax and the sums over several dims, on inputs whose argmax moves between calls."""
    def make(dtype):
        model = nn.Linear(3, 4).to(dtype)
        opt = jitgrad.optim.SGD(model.parameters(), lr=0.05)

        def step(x):
            opt.zero_grad()
            h = model(x)                                      # (5, 2, 4)
            top = h.max(dim=-1).values + h.min(2, keepdim=True).values.squeeze(2)
            terms = [top.sum(), h.amax((0, 2)).sum(), h.amin(1).mean(), h.logsumexp(-1).sum(),
                     h.var(0).sum(), h.std(dim=(0, 1)).sum(), (h * 0.5).tanh().prod(1).sum(),
                     h.cumsum(0)[-1].sum(), (h * 0.1).cumprod(2).sum(), h.logcumsumexp(1).mean(),
                     h.cummax(0).values.sum(), h.cummin(2).values.mean(), h.sum((0, 2)).sum(),
                     h.mean((1, 2)).sum(), h.max(), h.min(), h.var()]
            loss = terms[0]
            for t in terms[1:]:
                loss = loss + t
            loss.backward()
            opt.step()
            return loss, top
        return model, step

    _compare(make, _inputs((5, 2, 3), n=5, seed=1), dtype)


@DTYPES
def test_sorting_and_masks_step(dtype):
    """sort/topk values (their order changes between calls), norms, tril/triu, scatter_add and
    put with constant indices, constant and reflect padding, diag."""
    index = jitgrad.tensor([[0, 1, 1, 0], [2, 2, 0, 1]])
    flat = jitgrad.tensor([0, 5, 5, 11])

    def make(dtype):
        model = nn.Linear(3, 4).to(dtype)
        opt = jitgrad.optim.SGD(model.parameters(), lr=0.05)
        base = jitgrad.zeros(3, 4, dtype=dtype)

        def step(x):
            opt.zero_grad()
            h = model(x)                                        # (4, 4)
            s = h.sort(1, descending=True).values
            t = h.topk(2, 0).values
            sq = h.tril(-1) + h.triu(1) * 0.5
            sc = base.scatter_add(0, index, h[:2])
            pu = h.put(flat, h[0], accumulate=True)
            pd = nn.functional.pad(h, (1, 2)).sum() + nn.functional.pad(h.unsqueeze(0), (2, 1), "reflect").sum()
            loss = (s[:, 0] * s[:, 1]).sum() + t.prod() + h.norm(dim=1).sum() + h.norm(1.5) + \
                h.norm(float("inf"), 0).sum() + (sq * sq).sum() + (sc * sc).sum() + (pu * h).mean() + \
                pd + h[0].diag().sum() + h.diagonal().sum()
            loss.backward()
            opt.step()
            return loss, s, t
        return model, step

    _compare(make, _inputs((4, 3), n=5, seed=2), dtype)


def test_positions_follow_the_values():
    """max(dim) and cummax route the gradient to each call's positions, not the traced call's."""
    scale = jitgrad.tensor([1.0, 2.0], dtype=jitgrad.float64)

    def step(x):
        v = x.max(1).values * scale + x.cummax(1).values.sum()
        v.sum().backward()
        return v
    compiled = jitgrad.compile(step, fullgraph=True)
    for k, a in enumerate(([[1.0, 5.0, 2.0], [3.0, 0.0, 4.0]], [[6.0, 5.0, 2.0], [3.0, 9.0, 4.0]],
                           [[1.0, 1.0, 7.0], [np.nan, 0.0, 4.0]])):
        x1 = jitgrad.tensor(a, dtype=jitgrad.float64, requires_grad=True)
        x2 = jitgrad.tensor(a, dtype=jitgrad.float64, requires_grad=True)
        want = step(x1)
        got = compiled(x2)
        np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
        np.testing.assert_array_equal(x2.grad.numpy(), x1.grad.numpy())
        if k == 0:
            np.testing.assert_array_equal(x1.grad.numpy(), [[2, 5, 0], [4, 0, 4]])   # by hand
    _replayed(compiled)


def test_inputs_without_grad_are_traced():
    """Ops on tensors that need no gradient (cat of arguments, a reduction of data) are recorded
    for the trace, not made by an untraced path."""
    w = jitgrad.tensor([0.5, -1.0, 2.0, 0.25], dtype=jitgrad.float64, requires_grad=True)

    def step(a, b):
        z = jitgrad.cat([a, b], 1)                      # (2, 4)
        scale = z.std(0) + z.amax(1).sum() + z.logsumexp(1).sum() + z.cumsum(1)[:, -1].sum()
        loss = (z * w * scale).sum()
        loss.backward()
        return loss
    compiled = jitgrad.compile(step, fullgraph=True)
    rng = np.random.default_rng(3)
    for _ in range(3):
        a, b = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
        w.grad = None
        want = step(jitgrad.tensor(a), jitgrad.tensor(b)).item()
        g = w.grad.numpy().copy()
        w.grad = None
        got = compiled(jitgrad.tensor(a), jitgrad.tensor(b)).item()
        assert abs(got - want) <= 1e-12 * max(1.0, abs(want))
        np.testing.assert_allclose(w.grad.numpy(), g, rtol=1e-12)
    _replayed(compiled)


def test_index_tensor_argument_runs_eagerly():
    """Positions read from an index the step is given would be stale at the next call."""
    x = jitgrad.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)

    def step(idx):
        return x[idx].sum() + x.index_select(0, idx).sum()
    strict = jitgrad.compile(step, fullgraph=True)
    with pytest.raises(RuntimeError, match="index tensor"):
        strict(jitgrad.tensor([0, 2]))
    lenient = jitgrad.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert lenient(jitgrad.tensor([0, 2])).item() == 28.0
        assert lenient(jitgrad.tensor([1, 2])).item() == 36.0     # eager, not a stale replay

    def masked(y):
        return y[y > 2].sum()          # a mask computed inside the step
    with pytest.raises(RuntimeError, match="index tensor"):
        jitgrad.compile(masked, fullgraph=True)(jitgrad.tensor([1.0, 3.0, 4.0]))


def test_captured_index_changed_in_place_traces_again():
    """A captured index tensor is a guard: after an in-place change the step is traced again
    (with the new positions), never replayed with the old ones."""
    x = jitgrad.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    idx = jitgrad.tensor([0, 2])

    def step(w):
        x.grad = None
        loss = (x.index_select(0, idx) * w).sum() + x[idx].sum()
        loss.backward()
        return loss
    compiled = jitgrad.compile(step, fullgraph=True)
    w = jitgrad.tensor([[1.0, 1.0], [1.0, 1.0]])
    assert compiled(w).item() == 28.0
    assert compiled(w).item() == 28.0
    _replayed(compiled)
    with jitgrad.no_grad():
        idx.copy_(jitgrad.tensor([1, 1]))
    assert compiled(w).item() == 28.0          # 3 + 4 + 3 + 4, twice
    assert compiled(w).item() == 28.0
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0], [4, 4], [0, 0]])
    idx.copy_(jitgrad.tensor([2, 0]))
    assert compiled(w * 2).item() == 42.0      # 2 * 14 + 14
    np.testing.assert_array_equal(x.grad.numpy(), [[3, 3], [0, 0], [3, 3]])
    _replayed(compiled)
