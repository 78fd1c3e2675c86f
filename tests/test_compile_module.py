"""jitgrad.compile(module) differentiated outside: ``model = torch.compile(model)`` then
``loss.backward()``. A replay's results are one CompiledFunctionBackward node whose backward is
the program's; parameters, .grads, optimizer state and running statistics match an eager twin's."""
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import nn


def mlp(seed=0, dtype=jitgrad.float64, act=nn.Tanh, extra=()):
    jitgrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), act(), *extra, nn.Linear(8, 8), act(),
                         nn.Linear(8, 1)).to(dtype)


def data(dtype=np.float64, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return (jitgrad.tensor(rng.standard_normal((n, 3)).astype(dtype)),
            jitgrad.tensor(rng.standard_normal((n, 1)).astype(dtype)))


def grads(m):
    return [None if p.grad is None else p.grad.numpy().copy() for p in m.parameters()]


def same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if u is None or v is None:
            assert u is None and v is None
        else:
            np.testing.assert_array_equal(u, v)


def values(m):
    return [p.detach().numpy().copy() for p in m.parameters()] + \
        [b.numpy().copy() for b in m.buffers()]


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # a replay, never an eager fallback
        yield


@pytest.mark.parametrize("dtype,act", [(jitgrad.float64, nn.Tanh), (jitgrad.float32, nn.ReLU)],
                         ids=["f64-tanh", "f32-relu"])
@pytest.mark.parametrize("opt_name,hp", [("SGD", dict(lr=0.05, momentum=0.9)),
                                         ("Adam", dict(lr=0.01))])
def test_compiled_module_trains_as_its_eager_twin(dtype, act, opt_name, hp):
    eager, twin = mlp(1, dtype, act), mlp(1, dtype, act)
    compiled = jitgrad.compile(twin)
    opts = [getattr(jitgrad.optim, opt_name)(m.parameters(), **hp) for m in (eager, twin)]
    X, y = data(np.float64 if dtype == jitgrad.float64 else np.float32)
    for step in range(5):
        losses = []
        for model, opt in zip((eager, compiled), opts):
            opt.zero_grad()
            out = model(X)
            loss = ((out - y) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[0] == losses[1]
        # the first call is the traced eager run; replays hand out the compiled node
        assert out.grad_fn.name() == ("AddmmBackward0" if step == 0 else "CompiledFunctionBackward")
        same(values(eager), values(twin))
        same(grads(eager), grads(twin))
    assert opts[0].state_dict()["state"].keys() == opts[1].state_dict()["state"].keys()
    entry, = compiled._compiled.traces.values()
    assert entry.graph.block is not None        # (the backward's one-call path was taken)


def test_node_inputs_are_the_parameters_and_the_input():
    m = mlp()
    cm = jitgrad.compile(m)
    x = jitgrad.randn(4, 3, dtype=jitgrad.float64, requires_grad=True)
    cm(x)
    out = cm(x)
    fns = out.grad_fn.next_functions
    assert len(fns) == 1 + len(list(m.parameters()))
    assert all(type(f).__name__ == "AccumulateGrad" for f, _ in fns)
    assert {id(f.variable) for f, _ in fns} == {id(x)} | {id(p) for p in m.parameters()}
    assert out.requires_grad and not out.is_leaf


def test_input_gradients_leaf_and_non_leaf():
    """A leaf input's gradient, and a graph continuing into the input's own (h = 3x: its
    row, recorded before the call, is the node's input)."""
    eager, twin = mlp(2), mlp(2)
    cm = jitgrad.compile(twin)
    x = jitgrad.randn(5, 3, dtype=jitgrad.float64, requires_grad=True)
    for _ in range(3):
        g_eager = jitgrad.autograd.grad(eager(x).sum(), x)[0]
        g_twin = jitgrad.autograd.grad(cm(x).sum(), x)[0]
        np.testing.assert_array_equal(g_eager.numpy(), g_twin.numpy())
    for _ in range(3):
        h = x * 3
        g_eager = jitgrad.autograd.grad((eager(h) ** 2).sum(), x)[0]
        h = x * 3
        g_twin = jitgrad.autograd.grad((cm(h) ** 2).sum(), x)[0]
        np.testing.assert_array_equal(g_eager.numpy(), g_twin.numpy())
    assert len(cm._compiled.traces) == 2       # (a leaf input, a non-leaf one: two traces)


def test_gradcheck_through_the_compiled_node():
    cm = jitgrad.compile(mlp(3))
    x = jitgrad.randn(4, 3, dtype=jitgrad.float64, requires_grad=True)
    cm(x)                                       # (the trace: later calls replay)
    assert jitgrad.autograd.gradcheck(cm, (x,))


def test_two_forwards_before_one_backward():
    """The second replay overwrites the program's buffers: the first node keeps a copy of its
    values for its backward. Each call's gradient is summed before it is added to the .grad
    (eager adds each term into it): equal up to rounding."""
    eager, twin = mlp(4), mlp(4)
    cm = jitgrad.compile(twin)
    X, _ = data()
    cm(X).sum().backward()
    twin.zero_grad()
    for model in (eager, cm):
        a, b = model(X), model(X * 2)
        (a.sum() + (b * b).sum()).backward()
    for u, v in zip(grads(eager), grads(twin)):
        np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)
    # backward of the earlier one alone, after a later forward: its own values
    for model in (eager, twin):
        model.zero_grad()
    for model in (eager, cm):
        a, b = model(X), model(X * 2)
        a.sum().backward()
        del b
    same(grads(eager), grads(twin))


def test_retain_graph_and_a_freed_graph():
    eager, twin = mlp(5), mlp(5)
    cm = jitgrad.compile(twin)
    X, _ = data()
    cm(X)
    for model in (eager, cm):
        out = model(X).sum()
        out.backward(retain_graph=True)
        out.backward()
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            out.backward()
    same(grads(eager), grads(twin))


def test_create_graph_once_then_torch_compiles_error():
    """As torch.compile's node: a create_graph=True backward through it gives its gradients
    (values, eager's) as the results of CompiledFunctionBackwardBackward, whose own backward
    raises torch's error."""
    eager, twin = mlp(6), mlp(6)
    cm = jitgrad.compile(twin)
    x = jitgrad.randn(4, 3, dtype=jitgrad.float64, requires_grad=True)
    cm(x)
    out = cm(x)
    g, = jitgrad.autograd.grad(out.sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn.name() == "CompiledFunctionBackwardBackward"
    want, = jitgrad.autograd.grad(eager(x).sum(), x)
    np.testing.assert_array_equal(g.detach().numpy(), want.numpy())
    with pytest.raises(RuntimeError, match="does not currently support double backward"):
        g.sum().backward()
    out = cm(x)                                 # (the engine is usable after it)
    assert jitgrad.autograd.grad(out.sum(), x)[0].shape == x.shape


def test_a_parameter_changed_in_place_before_backward_raises():
    m = mlp(7)
    cm = jitgrad.compile(m)
    X, _ = data()
    cm(X)
    out = cm(X)
    with jitgrad.no_grad():
        m[2].weight.add_(1.0)           # (saved: the gradient of its input reads it)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_dropout_and_batchnorm_in_training():
    """Dropout draws new masks each call (the same as eager's under manual_seed), BatchNorm's
    running statistics move as eagerly."""
    def model():
        return mlp(8, extra=(nn.BatchNorm1d(8), nn.Dropout(0.3)))
    eager, twin = model(), model()
    cm = jitgrad.compile(twin)
    opts = [jitgrad.optim.SGD(m.parameters(), lr=0.1) for m in (eager, twin)]
    X, y = data()
    outs = []
    for _ in range(4):
        for seed_model, opt in zip((eager, cm), opts):
            jitgrad.manual_seed(11)
            opt.zero_grad()
            out = seed_model(X)
            ((out - y) ** 2).mean().backward()
            opt.step()
            outs.append(out.detach().numpy().copy())
        np.testing.assert_array_equal(outs[-2], outs[-1])
        same(values(eager), values(twin))
    assert not np.array_equal(outs[-1], outs[-3])       # (the parameters moved)


def test_eval_mode_under_grad_and_no_grad():
    eager, twin = mlp(9, extra=(nn.Dropout(0.5),)), mlp(9, extra=(nn.Dropout(0.5),))
    cm = jitgrad.compile(twin)
    eager.eval()
    cm.eval()
    x = jitgrad.randn(6, 3, dtype=jitgrad.float64, requires_grad=True)
    for _ in range(3):
        ge = jitgrad.autograd.grad(eager(x).sum(), x)[0]
        gt = jitgrad.autograd.grad(cm(x).sum(), x)[0]
        np.testing.assert_array_equal(ge.numpy(), gt.numpy())
        with jitgrad.no_grad():
            out = cm(x)
        assert out.grad_fn is None and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), eager(x).detach().numpy())


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4).double()
        self.head = nn.Linear(4, 2).double()

    def forward(self, x):
        h = self.body(x).tanh()
        return {"out": self.head(h), "code": h.detach() * 2, "h": h}


def test_several_outputs_and_a_non_differentiable_one():
    jitgrad.manual_seed(3)
    eager = TwoHeads()
    jitgrad.manual_seed(3)
    twin = TwoHeads()
    cm = jitgrad.compile(twin)
    X, _ = data()
    for _ in range(3):
        for model in (eager, cm):
            r = model(X)
            assert not r["code"].requires_grad
            (r["out"].sum() + (r["h"] ** 2).sum()).backward()
        same(grads(eager), grads(twin))
    assert r["out"].grad_fn.name() == "CompiledFunctionBackward"


def test_a_hook_on_a_parameter_runs_at_each_backward():
    m = mlp(10)
    cm = jitgrad.compile(m)
    X, _ = data()
    seen = []
    m[0].bias.register_hook(lambda g: seen.append(g.clone()))
    for _ in range(3):
        cm(X).sum().backward()
    assert len(seen) == 3
    np.testing.assert_array_equal(seen[1].numpy(), seen[2].numpy())
    assert len(cm._compiled.traces) == 1


def test_a_compiled_module_inside_a_compiled_step_is_part_of_its_trace():
    eager, twin = mlp(11), mlp(11)
    cm = jitgrad.compile(twin)
    opts = [jitgrad.optim.SGD(m.parameters(), lr=0.1) for m in (eager, twin)]
    X, y = data()

    def step(model, opt):
        opt.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    compiled_step = jitgrad.compile(lambda: step(cm, opts[1]))
    for _ in range(4):
        assert step(eager, opts[0]).item() == compiled_step().item()
    same(values(eager), values(twin))
    assert not cm._compiled.traces                   # (inlined: never traced on its own)
    assert all(not isinstance(e, str) for e in compiled_step.traces.values())


def test_a_graph_reaching_a_tensor_made_inside_runs_eagerly():
    def f(x):
        w = jitgrad.ones(3, dtype=jitgrad.float64, requires_grad=True)
        return (x * w).sum()
    cf = jitgrad.compile(f)
    x = jitgrad.randn(3, dtype=jitgrad.float64, requires_grad=True)
    with pytest.warns(UserWarning, match="made"):
        cf(x)
    out = cf(x)
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3))


def test_a_new_input_shape_traces_again():
    eager, twin = mlp(12), mlp(12)
    cm = jitgrad.compile(twin)
    for n in (4, 7, 4, 7):
        X, _ = data(n=n)
        for model in (eager, cm):
            model(X).sum().backward()
        same(grads(eager), grads(twin))
    assert len(cm._compiled.traces) == 2


def test_nodes_release_their_values():
    cm = jitgrad.compile(mlp(13))
    X, _ = data()
    cm(X)
    a, b = cm(X), cm(X)
    node = a.grad_fn
    assert node.values is not None                  # (b's replay overwrote a's values)
    a.sum().backward()                              # (b's values are kept in turn)
    assert node.values is None and b.grad_fn.values is not None
    b.sum().backward()
    assert b.grad_fn.values is None


def test_threads_sharing_a_compiled_module():
    """Replays and node backwards from two threads: each one's gradients are its own inputs'."""
    import threading
    m = mlp(14)
    cm = jitgrad.compile(m)
    X, _ = data()
    cm(X)
    rng = np.random.default_rng(1)
    inputs = [jitgrad.tensor(rng.standard_normal((16, 3)), requires_grad=True) for _ in range(8)]
    expected = [jitgrad.autograd.grad(m(x).sum(), x)[0].numpy() for x in inputs]
    failures = []

    def work(k):
        try:
            for _ in range(40):
                for i in range(k, len(inputs), 2):
                    out = cm(inputs[i])
                    g = jitgrad.autograd.grad(out.sum(), inputs[i])[0].numpy()
                    if not np.array_equal(g, expected[i]):
                        failures.append(i)
        except Exception as e:          # (reported in the main thread)
            failures.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_forwards_without_backward_stay_bounded():
    """Each replay while the last node may still run its backward copies that node's values:
    counted as held by the tape, they bring the compaction that drops dead nodes."""
    from jitgrad.engine.tape import TAPE
    cm = jitgrad.compile(mlp(15))
    X, _ = data(n=256)
    cm(X)
    before = len(TAPE.py_nodes)
    for _ in range(2000):
        out = cm(X)
    assert out.grad_fn.name() == "CompiledFunctionBackward"
    assert len(TAPE.py_nodes) - before < 500


def test_a_float32_module_under_a_float64_loss_and_anomaly_mode():
    """The node adds its gradients into the caller's buffer in one compiled call where that
    buffer has the program's dtype; a float64 loss of a float32 module (the caller's backward
    then runs in float64) and anomaly mode's checks take the general path. Under the float64
    loss eager jitgrad replays the module's rows in float64 too, the node in float32 (as
    torch computes a float32 module's backward): equal to float32 rounding there."""
    eager, twin = mlp(16, jitgrad.float32, nn.ReLU), mlp(16, jitgrad.float32, nn.ReLU)
    cm = jitgrad.compile(twin)
    X, y = data(np.float32)
    for k in range(4):
        for model in (eager, cm):
            model.zero_grad() if model is eager else twin.zero_grad()
            out = model(X)
            if k % 2:
                loss = ((out.double() - y.double()) ** 2).mean()
            else:
                loss = ((out - y) ** 2).mean()
            if k == 3:
                with pytest.warns(UserWarning, match="Anomaly Detection"), \
                        jitgrad.autograd.detect_anomaly():
                    loss.backward()
            else:
                loss.backward()
        if k % 2:
            for u, v in zip(grads(eager), grads(twin)):
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-8)
        else:
            same(grads(eager), grads(twin))


def test_the_compiled_module_is_torchs_optimized_module():
    """isinstance nn.Module, the module as its child `_orig_mod` (state_dict's keys prefixed as
    torch's), train()/eval() and to() reaching it, other attributes the module's."""
    m = mlp(17)
    cm = jitgrad.compile(m)
    assert isinstance(cm, nn.Module) and type(cm).__name__ == "OptimizedModule"
    assert cm._orig_mod is m
    assert repr(cm).startswith("OptimizedModule(\n  (_orig_mod): Sequential(")
    assert list(cm.state_dict()) == ["_orig_mod." + k for k in m.state_dict()]
    assert [p for p in cm.parameters()] == list(m.parameters())
    cm.eval()
    assert not cm.training and not m.training and not m[0].training
    cm.train()
    assert m.training
    cm.scale = 2.0
    assert m.scale == 2.0
    assert cm.float() is cm and m[0].weight.dtype == jitgrad.float32
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        cm.nothing


def test_copies_and_pickles_compile_again():
    import copy
    import pickle
    m = mlp(18)
    cm = jitgrad.compile(m)
    X, _ = data()
    cm(X).sum().backward()
    cm.eval()
    for twin in (copy.deepcopy(cm), pickle.loads(pickle.dumps(cm))):
        assert type(twin).__name__ == "OptimizedModule" and twin._orig_mod is not m
        assert not twin.training and not twin._compiled.traces
        np.testing.assert_array_equal(twin(X).detach().numpy(), cm(X).detach().numpy())
        twin(X)
        assert twin(X).grad_fn.name() == "CompiledFunctionBackward"


def test_a_compiled_residual_with_its_own_derivatives():
    """A physics-informed residual u_xx + u (autograd.grad with create_graph inside), compiled
    and differentiated outside: the node's backward runs through the derivative rows the trace
    recorded, the parameters' gradients bit for bit eager's."""
    def residual_of(m):
        def residual(x):
            u = m(x)
            ux, = jitgrad.autograd.grad(u.sum(), x, create_graph=True)
            uxx, = jitgrad.autograd.grad(ux.sum(), x, create_graph=True)
            return uxx + u
        return residual

    def model():
        jitgrad.manual_seed(19)
        return nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    eager, twin = model(), model()
    residuals = (residual_of(eager), jitgrad.compile(residual_of(twin)))
    for _ in range(3):
        x = jitgrad.linspace(0, 1, 8, dtype=jitgrad.float64).reshape(-1, 1).requires_grad_()
        for r, m in zip(residuals, (eager, twin)):
            m.zero_grad()
            out = r(x)
            (out ** 2).mean().backward()
        same(grads(eager), grads(twin))
    assert out.grad_fn.name() == "CompiledFunctionBackward"


def test_a_max_pools_positions_are_kept_with_a_nodes_values():
    """A later forward overwrites the program's int data too (a max pool's positions): the
    earlier node's backward routes its gradient through its own call's maxima."""
    def model():
        jitgrad.manual_seed(0)
        return nn.Sequential(nn.Conv1d(1, 1, 1, bias=False), nn.MaxPool1d(2), nn.Flatten()).double()
    eager, twin = model(), model()
    cm = jitgrad.compile(twin)
    x1 = jitgrad.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=jitgrad.float64, requires_grad=True)
    x2 = jitgrad.tensor([[[4.0, 3.0, 2.0, 1.0]]], dtype=jitgrad.float64, requires_grad=True)
    cm(x1)
    found = []
    for m in (eager, cm):
        a, b = m(x1), m(x2)
        found.append(jitgrad.autograd.grad(a.sum(), x1)[0].numpy())
        found.append(jitgrad.autograd.grad(b.sum(), x2)[0].numpy())
    np.testing.assert_array_equal(found[0], found[2])
    np.testing.assert_array_equal(found[1], found[3])
    assert found[0][0, 0, 0] == 0 and found[0][0, 0, 1] != 0


@pytest.mark.parametrize("frozen", [False, True])
def test_in_place_checks_are_of_what_the_traced_rows_saved(frozen):
    """An in-place write between the forward and the backward raises where eager's would (a
    tensor some row saved: a frozen weight the input's gradient reads) and only there (a first
    layer's weight, whose input needs no gradient, is not saved)."""
    def model():
        jitgrad.manual_seed(0)
        m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).double()
        m[0].weight.requires_grad_(not frozen)
        return m
    x = jitgrad.randn(2, 3, dtype=jitgrad.float64, requires_grad=frozen)
    outcomes = []
    for compiled in (False, True):
        net = model()
        m = jitgrad.compile(net) if compiled else net
        m(x)
        out = m(x)
        with jitgrad.no_grad():
            net[0].weight.add_(1.0)
        try:
            out.sum().backward()
            outcomes.append("ok")
        except RuntimeError as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0] == "ok") != frozen


def test_dropout_on_a_non_leaf_input_replays():
    eager, twin = (mlp(20, extra=(nn.Dropout(0.3),)) for _ in range(2))
    cm = jitgrad.compile(twin)
    x = jitgrad.randn(5, 3, dtype=jitgrad.float64, requires_grad=True)
    for _ in range(3):
        grads_x = []
        for m in (eager, cm):
            jitgrad.manual_seed(21)
            grads_x.append(jitgrad.autograd.grad(m(x * 2).sum(), x)[0].numpy())
        np.testing.assert_array_equal(*grads_x)
    assert len(cm._compiled.traces) == 1 and not isinstance(*cm._compiled.traces.values(), str)


def test_the_nodes_apply_runs_its_backward():
    """grad_fn.apply(g), as torch's nodes: the inputs' gradients (not the double-backward
    error, which is create_graph's)."""
    eager, twin = mlp(22), mlp(22)
    cm = jitgrad.compile(twin)
    x = jitgrad.randn(4, 3, dtype=jitgrad.float64, requires_grad=True)
    cm(x)
    out = cm(x)
    g = jitgrad.ones(4, 1, dtype=jitgrad.float64)
    got = out.grad_fn.apply(g)
    inputs = [f.variable for f, _ in out.grad_fn.next_functions]    # (the gradients' order)
    twin_of = dict(zip(map(id, twin.parameters()), eager.parameters()))
    twin_of[id(x)] = x
    want = jitgrad.autograd.grad(eager(x), [twin_of[id(t)] for t in inputs], g)
    assert len(got) == len(want) == 7
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a.detach().numpy(), b.numpy())
