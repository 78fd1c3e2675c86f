"""Tensor hooks (leaves, non-leaves, post-accumulate) and Module hooks (forward, full backward,
global), against PyTorch where installed and hand-computed gradients always."""
import warnings

import numpy as np
import pytest

import jitgrad as torch
import jitgrad.nn as nn
from jitgrad.nn.modules import module as module_mod


@pytest.fixture
def pt():
    return pytest.importorskip("torch")


def _hooked_program(lib, log):
    """x -> y = 3x (retained, hook adds 1) -> sum(y * y); x's hooks double, then observe."""
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x.register_hook(lambda g: log.append(("x1", g.tolist())) or g * 2)
    x.register_hook(lambda g: log.append(("x2", g.tolist())))
    y = x * 3
    y.retain_grad()
    y.register_hook(lambda g: log.append(("y", g.tolist())) or g + 1)
    (y * y).sum().backward()
    return x, y


def test_hooks_scale_and_observe_on_leaves_and_non_leaves():
    log = []
    x, y = _hooked_program(torch, log)
    # d/dy sum(y^2) = 2y = [6, 12, 18]; +1 -> [7, 13, 19]; d/dx = 3 * that; doubled by x's hook
    assert log == [("y", [6, 12, 18]), ("x1", [21, 39, 57]), ("x2", [42, 78, 114])]
    np.testing.assert_array_equal(y.grad.numpy(), [7, 13, 19])      # retain_grad sees the hooked
    np.testing.assert_array_equal(x.grad.numpy(), [42, 78, 114])


def test_hooks_match_torch(pt):
    log, tlog = [], []
    x, y = _hooked_program(torch, log)
    tx, ty = _hooked_program(pt, tlog)
    assert log == tlog
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_array_equal(y.grad.numpy(), ty.grad.numpy())


def test_handles_remove_hooks_and_grad_runs_leaf_hooks():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x.register_hook(lambda g: g * 10)
    x.register_hook(lambda g: seen.append(g.tolist()))
    g, = torch.autograd.grad((x * x).sum(), x)
    np.testing.assert_array_equal(g.numpy(), [20, 40])        # autograd.grad runs them too
    h.remove()
    h.remove()                                                 # twice is fine
    g, = torch.autograd.grad((x * x).sum(), x)
    np.testing.assert_array_equal(g.numpy(), [2, 4])
    assert seen == [[20, 40], [2, 4]]
    with h:
        pass


def test_post_accumulate_grad_hook():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append((t is x, t.grad.tolist())))
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    assert seen == [(True, [3, 3]), (True, [6, 6])]
    with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered on "
                                           "non-leaf tensors"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)


@pytest.mark.parametrize("hook,error,msg", [
    (lambda g: g[:1], RuntimeError, "hook '<lambda>' has changed the size of value"),
    (lambda g: g.double(), RuntimeError, "hook '<lambda>' has changed the type of value (was "
                                         "jitgrad.FloatTensor got jitgrad.DoubleTensor)"),
    (lambda g: 3, TypeError, "expected Variable, but hook returned 'int'"),
])
def test_hook_results_are_checked_as_torch(hook, error, msg):
    x = torch.ones(3, requires_grad=True)
    z = x * 2
    z.register_hook(hook)
    with pytest.raises(error) as e:
        z.sum().backward()
    assert str(e.value) == msg
    (x * 2).sum().backward()                     # the engine stays usable
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require "
                                           "gradient"):
        torch.ones(2).register_hook(lambda g: g)


def test_hooks_under_create_graph_are_differentiated_through():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = x ** 2
    y.register_hook(lambda g: g * x)          # a hook written in ops: part of the graph
    g, = torch.autograd.grad(y.sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 2 * x.detach().numpy() ** 2)   # x * 2x
    gg, = torch.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 4 * x.detach().numpy())


def test_hooks_under_create_graph_match_torch(pt):
    out = []
    for lib in (torch, pt):
        x = lib.tensor([1.0, -2.0, 0.5], dtype=lib.float64, requires_grad=True)
        x.register_hook(lambda g: g * 3)
        y = x.sin() * x
        y.register_hook(lambda g, x=x: g * x)
        g, = lib.autograd.grad(y.sum(), x, create_graph=True)
        gg, = lib.autograd.grad(g.sum(), x)
        out.append((g.detach().numpy(), gg.numpy()))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-12)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-12)


def _net(lib, seed):
    rng = np.random.default_rng(seed)
    net = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Tanh(), lib.nn.Linear(4, 2))
    with lib.no_grad():
        for p in net.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)), dtype=p.dtype))
    return net


def _gradient_flow(lib):
    """The gradient-visualisation tutorial's pattern: backward hooks on each layer, a tensor hook
    on the module output, a pre-hook scaling grad_output of the last layer."""
    net = _net(lib, 0)
    rec = {}
    for i, layer in enumerate(net):
        layer.register_full_backward_hook(
            lambda m, gin, gout, i=i: rec.__setitem__(i, ([None if g is None else g.tolist()
                                                            for g in gin], [g.tolist() for g in gout])))
    net[2].register_full_backward_pre_hook(lambda m, gout: (gout[0] * 2,))
    x = lib.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype=lib.float32, requires_grad=True)
    out = net(x)
    out.register_hook(lambda g: rec.__setitem__("out", g.tolist()))
    (out * lib.tensor([[1.0, -1.0]])).sum().backward()
    return rec, x.grad.tolist(), net[0].weight.grad.tolist()


def test_module_backward_hooks_see_and_scale_gradients():
    rec, xg, wg = _gradient_flow(torch)
    assert rec["out"] == [[1, -1], [1, -1]]
    gin2, gout2 = rec[2]
    assert gout2 == [[[2, -2], [2, -2]]]                # the pre-hook doubled grad_output
    w2 = np.asarray(_net(torch, 0)[2].weight.detach().numpy(), np.float64)
    np.testing.assert_allclose(gin2[0], np.asarray(gout2[0]) @ w2, rtol=1e-6)   # by hand: g @ W
    assert rec[0][1][0] == rec[1][0][0]                  # Tanh's grad_input is Linear0's output's


def test_module_backward_hooks_match_torch(pt):
    rec, xg, wg = _gradient_flow(torch)
    trec, txg, twg = _gradient_flow(pt)
    assert rec.keys() == trec.keys() and rec["out"] == trec["out"]
    np.testing.assert_allclose(xg, txg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(wg, twg, rtol=1e-5, atol=1e-6)
    for k in (0, 1, 2):
        for a, b in zip(rec[k][0] + rec[k][1], trec[k][0] + trec[k][1]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_backward_hook_without_inputs_requiring_grad_warns_and_fires():
    lin = nn.Linear(2, 1)
    seen = []
    lin.register_full_backward_hook(lambda m, gin, gout: seen.append((gin, tuple(gout[0].shape))))
    out = lin(torch.ones(4, 2))
    assert out.grad_fn.name() == "BackwardHookFunctionBackward"
    with pytest.warns(UserWarning, match="Full backward hook is firing when gradients are computed "
                                         "with respect to module outputs"):
        out.sum().backward()
    assert seen == [((None,), (4, 1))]


def test_forward_hooks_kwargs_prepend_always_call_and_removal():
    lin = nn.Linear(2, 2)
    order = []
    lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    h1 = lin.register_forward_hook(lambda m, args, out: order.append("second") or out + 1)
    lin.register_forward_hook(lambda m, args, kwargs, out: order.append(("first", kwargs)),
                              with_kwargs=True, prepend=True)
    x = torch.ones(1, 2)
    with torch.no_grad():
        want = x * 2 @ lin.weight.t() + lin.bias + 1
    np.testing.assert_allclose(lin(x).detach().numpy(), want.numpy(), rtol=1e-6)
    assert order == [("first", {}), "second"]
    h1.remove()
    np.testing.assert_allclose(lin(x).detach().numpy(), (want - 1).numpy(), rtol=1e-6)

    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    called = []
    m = Boom()
    m.register_forward_hook(lambda mod, a, o: called.append(o), always_call=True)
    with pytest.raises(ValueError):
        m(x)
    assert called == [None]
    pre = lin.register_forward_pre_hook(lambda m, args, kwargs: ((args[0] * 0,), kwargs),
                                        with_kwargs=True)
    np.testing.assert_allclose(lin(x).detach().numpy(), lin.bias.detach().numpy()[None], rtol=1e-6)
    pre.remove()


def test_global_module_hooks_run_before_local_ones():
    order = []
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    net.register_forward_hook(lambda m, a, o: order.append("local"))
    handles = [module_mod.register_module_forward_pre_hook(lambda m, a: order.append("pre " + type(m).__name__)),
               module_mod.register_module_forward_hook(lambda m, a, o: order.append("post " + type(m).__name__)),
               module_mod.register_module_full_backward_hook(lambda m, gi, go: order.append("bw " + type(m).__name__))]
    try:
        net(torch.ones(1, 2, requires_grad=True)).sum().backward()
    finally:
        for h in handles:
            h.remove()
    assert order[:2] == ["pre Sequential", "pre Linear"]
    assert order[order.index("post Sequential") + 1] == "local"
    assert [o for o in order if o.startswith("bw")] == ["bw ReLU", "bw Linear", "bw Sequential"]
    order.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(torch.ones(1, 2))
    assert order == ["local"]
