"""Adversarial jitgrad.compile cases: each runs the same step eagerly and compiled and compares
what the user can observe (values, .grad, hooks' effects, exceptions, aliasing)."""
import warnings

import numpy as np
import pytest

import jitgrad as torch
from jitgrad import nn


def batches(n=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [(torch.tensor(rng.standard_normal((8, 3)).astype(dtype)),
             torch.tensor(rng.standard_normal((8, 1)).astype(dtype))) for _ in range(n)]


def model_and_step():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)

    def step(X, y):
        opt.zero_grad()
        loss = ((m(X) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return m, opt, step


def both(run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run(lambda f: f), run(torch.compile)


def test_leaf_tensor_hook_runs_on_every_call():
    """A hook on a parameter that zeroes its gradient from the 2nd call on (freezing a layer)."""
    def run(C):
        m, opt, step = model_and_step()
        calls = [0]

        def hook(g):
            calls[0] += 1
            if calls[0] >= 2:
                return torch.zeros_like(g)
        m[0].weight.register_hook(hook)
        step = C(step)
        out = []
        for X, y in batches():
            step(X, y)
            out.append((calls[0], m[0].weight.grad.numpy().copy()))
        return out, m[0].weight.detach().numpy().copy()
    (e, pe), (c, pc) = both(run)
    assert [k for k, _ in c] == [k for k, _ in e]
    for (_, ge), (_, gc) in zip(e, c):
        np.testing.assert_array_equal(gc, ge)
    np.testing.assert_array_equal(pc, pe)


def test_post_accumulate_grad_hook_runs_on_every_call():
    def run(C):
        m, opt, step = model_and_step()
        seen = []
        m[0].weight.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad))
        step = C(step)
        for X, y in batches():
            step(X, y)
        return [t.numpy().copy() for t in seen]
    e, c = both(run)
    assert len(c) == len(e)
    for a, b in zip(e, c):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("kind", ["forward", "forward_pre", "global_forward"])
def test_forward_hooks_run_on_every_call(kind):
    """Activation capture with a forward hook: the captured value must be this call's."""
    def run(C):
        m, opt, step = model_and_step()
        seen = []
        if kind == "forward":
            h = m[0].register_forward_hook(lambda mod, i, o: seen.append(o.detach()))
        elif kind == "forward_pre":
            h = m[2].register_forward_pre_hook(lambda mod, i: seen.append(i[0].detach()))
        else:
            h = nn.modules.module.register_module_forward_hook(
                lambda mod, i, o: seen.append(o.detach()) if mod is m else None)
        try:
            step = C(step)
            for X, y in batches():
                step(X, y)
        finally:
            h.remove()
        return [t.numpy().copy() for t in seen]
    e, c = both(run)
    assert len(c) == len(e)
    for a, b in zip(e, c):
        np.testing.assert_array_equal(b, a)


def test_detect_anomaly_between_calls():
    """Eager's backward raises in anomaly mode on a nan gradient (as torch does); a replay traced
    outside anomaly mode must not silently return."""
    def run(C):
        w = torch.ones(3, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = torch.sqrt(w * x).sum()
            loss.backward()
            opt.step()
            return loss
        step = C(step)
        out = []
        for k in range(3):
            x = torch.zeros(3, dtype=torch.float64)
            try:
                if k == 2:
                    with torch.autograd.detect_anomaly():
                        step(x)
                else:
                    step(x)
                out.append("ok")
            except RuntimeError as err:
                out.append(str(err).splitlines()[0])
        return out
    e, c = both(run)
    assert e[2] != "ok"
    assert c == e


def test_float64_model_converted_to_float32_replays_bit_for_bit():
    def run(C):
        m, opt, step = model_and_step()
        rng = np.random.default_rng(0)
        step(torch.tensor(rng.standard_normal((16, 3))), torch.tensor(rng.standard_normal((16, 1))))
        m.float()
        s = C(step)
        grads = []
        for X, y in batches(4, seed=1, dtype=np.float32):
            s(X, y)
            grads.append(m[0].weight.grad.numpy().copy())
        return grads, [p.detach().numpy().copy() for p in m.parameters()]
    (ge, pe), (gc, pc) = both(run)
    for a, b in zip(ge, gc):
        np.testing.assert_array_equal(b, a)
    for a, b in zip(pe, pc):
        np.testing.assert_array_equal(b, a)


def test_returned_view_of_returned_tensor_stays_a_view():
    def run(C):
        torch.manual_seed(0)
        lin = nn.Linear(3, 4).double()

        def f(X):
            with torch.no_grad():
                h = lin(X)
                return h, h[:, :2]
        f = C(f)
        X = torch.tensor(np.arange(6.0).reshape(2, 3))
        for _ in range(3):
            h, v = f(X)
        h.mul_(0)
        return v.numpy().copy(), v._version, v._base is h
    (ve, verse, be), (vc, verc, bc) = both(run)
    np.testing.assert_array_equal(vc, ve)
    assert (verc, bc) == (verse, be)
