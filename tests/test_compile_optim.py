"""jitgrad.compile runs optimizer.step() inside the compiled call that computed its gradients:
parameters, .grad, optimizer state, 'step' counts and parameter versions equal eager's after
every call, hyperparameters are read at each call, and whatever the fused update cannot do
exactly runs step() as a Python call instead."""
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import nn


def model(seed=1):
    jitgrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4), nn.ReLU(),
                         nn.Linear(4, 1)).double()


def batch(k):
    rng = np.random.default_rng(k)
    return (jitgrad.tensor(rng.standard_normal((16, 3))),
            jitgrad.tensor(rng.standard_normal((16, 1))))


def loss_of(m, X, y):
    return ((m(X) - y) ** 2).mean()


def make_step(m, opt, order="zero_first", sched=None):
    def step(X, y):
        if order == "zero_first":
            opt.zero_grad()
        loss = loss_of(m, X, y)
        loss.backward()
        opt.step()
        if order == "zero_last":
            opt.zero_grad()
        if sched is not None:
            sched.step()
        return loss
    return step


def pair(opt_name, hp, order="zero_first", sched=None, params=None):
    """An eager step and a compiled one, on twin models and optimizers."""
    out = []
    for compiled in (False, True):
        m = model()
        o = getattr(jitgrad.optim, opt_name)(m.parameters() if params is None else params(m),
                                             **hp)
        s = sched(o) if sched else None
        step = make_step(m, o, order, s)
        out.append((m, o, jitgrad.compile(step, fullgraph=True) if compiled else step))
    return out


def assert_same(a, b):
    """Parameters, .grad, versions, every state entry and the groups' hyperparameters equal."""
    (m1, o1), (m2, o2) = a, b
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
        assert p._version == q._version
        s1, s2 = dict(o1.state.get(p, {})), dict(o2.state.get(q, {}))
        assert sorted(s1) == sorted(s2)
        for k in s1:
            np.testing.assert_array_equal(np.asarray(s1[k].numpy()), np.asarray(s2[k].numpy()))
    assert [{k: v for k, v in g.items() if k != "params"} for g in o1.param_groups] == \
        [{k: v for k, v in g.items() if k != "params"} for g in o2.param_groups]


@pytest.fixture
def host_steps(monkeypatch):
    """Counts the optimizer updates step() runs in Python (_update: a fused step calls the
    compiled kernel from the replay's call instead)."""
    calls = []
    for cls in (jitgrad.optim.SGD, jitgrad.optim.Adam):
        update = cls._update

        def counted(self, flat, g, _update=update):
            calls.append(1)
            return _update(self, flat, g)
        monkeypatch.setattr(cls, "_update", counted)
    return calls


OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.05, amsgrad=True, maximize=True)),
]


@pytest.mark.parametrize("order", ["zero_first", "zero_last"])
@pytest.mark.parametrize("opt_name,hp", OPTIMIZERS)
def test_fused_step_equals_eager_after_every_call(opt_name, hp, order, host_steps):
    (m1, o1, eager), (m2, o2, compiled) = pair(opt_name, hp, order)
    for k in range(5):
        X, y = batch(k)
        assert eager(X, y).item() == compiled(X, y).item()
        assert_same((m1, o1), (m2, o2))
    # the traced call and eager's five ran step() in Python; the four replays did not
    assert len(host_steps) == 6
    if opt_name != "SGD":
        assert float(o2.state[next(m2.parameters())]["step"]) == 5


@pytest.mark.parametrize("opt_name,hp", [OPTIMIZERS[2], OPTIMIZERS[5], OPTIMIZERS[6]])
def test_scheduler_and_edited_lr_take_effect_at_the_next_replay(opt_name, hp, host_steps):
    step_lr = lambda o: jitgrad.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5)  # noqa: E731
    (m1, o1, eager), (m2, o2, compiled) = pair(opt_name, hp, sched=step_lr)
    for k in range(6):
        if k == 3:                       # an edit between calls
            for o in (o1, o2):
                o.param_groups[0]["lr"] *= 3
                if opt_name != "SGD":
                    o.param_groups[0]["betas"] = (0.7, 0.9)
        X, y = batch(k)
        eager(X, y)
        compiled(X, y)
        assert_same((m1, o1), (m2, o2))
    assert len(host_steps) == 7
    assert o2.param_groups[0]["lr"] == hp["lr"] * 3 / 8

    # a scheduler stepped outside the compiled function
    (m1, o1, eager), (m2, o2, compiled) = pair(opt_name, hp)
    scheds = [jitgrad.optim.lr_scheduler.ExponentialLR(o, gamma=0.7) for o in (o1, o2)]
    for k in range(4):
        X, y = batch(k)
        eager(X, y)
        compiled(X, y)
        for s in scheds:
            s.step()
        assert_same((m1, o1), (m2, o2))


def test_accumulated_gradients_are_added_inside_the_call():
    """Without zero_grad (or with set_to_none=False) the existing .grads are added into in
    compiled code, and the step reads the sums, as eagerly."""
    for zero in (None, False):
        out = []
        for compiled in (False, True):
            m = model()
            o = jitgrad.optim.Adam(m.parameters(), lr=0.01)

            def step(X, y, m=m, o=o):
                if zero is not None:
                    o.zero_grad(set_to_none=zero)
                loss_of(m, X, y).backward()
                o.step()
            out.append((m, o, jitgrad.compile(step, fullgraph=True) if compiled else step))
        (m1, o1, eager), (m2, o2, comp) = out
        grads = []
        for k in range(4):
            X, y = batch(k)
            eager(X, y)
            comp(X, y)
            assert_same((m1, o1), (m2, o2))
            grads.append(next(m2.parameters()).grad)
        if zero is False:          # the same .grad tensor, zeroed and added into each call
            assert all(g is grads[0] for g in grads)


def test_an_input_whose_grad_accumulates_like_w7():
    """The physics-informed step's input x requires grad and is in no optimizer: its .grad
    accumulates call after call (in place, in the compiled call) while Adam is fused."""
    out = []
    rng = np.random.default_rng(0)
    xv = rng.uniform(0, 1, (16, 1))
    for compiled in (False, True):
        jitgrad.manual_seed(3)
        net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        opt = jitgrad.optim.Adam(net.parameters(), lr=1e-2)
        x = jitgrad.tensor(xv, requires_grad=True)

        def step(_, net=net, opt=opt, x=x):
            opt.zero_grad()
            u = net(x)
            ux = jitgrad.autograd.grad(u, x, jitgrad.ones_like(u), create_graph=True)[0]
            loss = ((ux - 1) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        out.append((net, opt, x, jitgrad.compile(step, fullgraph=True) if compiled else step))
    (n1, o1, x1, eager), (n2, o2, x2, comp) = out
    for _ in range(4):
        assert eager(None).item() == comp(None).item()
        assert_same((n1, o1), (n2, o2))
        np.testing.assert_array_equal(x1.grad.numpy(), x2.grad.numpy())
    prog = next(iter(comp.traces.values())).program
    assert any(getattr(s, "ustop", 0) > getattr(s, "ustart", 0) for s in prog.segments)


def test_versions_move_so_graphs_that_saved_a_parameter_fail():
    (_, _, eager), (m2, _, compiled) = pair("SGD", dict(lr=0.1, momentum=0.9))
    X, y = batch(0)
    compiled(X, y)
    w = next(m2.parameters())
    kept = (w * w).sum()               # saves w
    compiled(X, y)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        kept.backward()


# ---- what the fused update cannot do: step() runs as a Python call, results stay eager's -----
def _idle_param_gets_a_grad(ms, os_):
    for m in ms:
        m.extra.grad = jitgrad.ones(2, dtype=jitgrad.float64)


def _storage_swapped_and_restored(ms, os_):
    # p.data replaced, an eager step() binds the new storage, then the old storage comes back
    for m, o in zip(ms, os_):
        w = m[0].weight
        old = w.data
        w.data = old.clone()
        w.grad = jitgrad.zeros_like(w)
        o.step()
        w.data = old
        w.grad = None


def _group_added(ms, os_):
    for o in os_:
        p = jitgrad.zeros(3, dtype=jitgrad.float64, requires_grad=True)
        p.grad = jitgrad.ones(3, dtype=jitgrad.float64)
        o.add_param_group({"params": [p], "lr": 0.05})


def _amsgrad_on(ms, os_):
    for o in os_:
        o.param_groups[0]["amsgrad"] = True


def _momentum_on(ms, os_):
    for o in os_:
        o.param_groups[0]["momentum"] = 0.9


def _state_loaded(ms, os_):
    for o in os_:
        o.load_state_dict(o.state_dict())


def _grad_not_contiguous(ms, os_):
    for m in ms:
        w = m[0].weight
        w.grad = jitgrad.ones(tuple(reversed(w.shape)), dtype=jitgrad.float64).t()
        assert not w.grad.is_contiguous()


@pytest.mark.parametrize("opt_name,hp,change", [
    ("Adam", dict(lr=0.01), _idle_param_gets_a_grad),
    ("Adam", dict(lr=0.01), _storage_swapped_and_restored),
    ("SGD", dict(lr=0.1, momentum=0.9), _group_added),
    ("Adam", dict(lr=0.01), _amsgrad_on),
    ("SGD", dict(lr=0.1), _momentum_on),
    ("AdamW", dict(lr=0.01), _state_loaded),
    ("SGD", dict(lr=0.1, momentum=0.9), _grad_not_contiguous),
])
def test_what_the_fused_update_cannot_do_runs_step_in_python(opt_name, hp, change, host_steps):
    out = []
    for compiled in (False, True):
        m = model()
        m.extra = nn.Parameter(jitgrad.zeros(2, dtype=jitgrad.float64))   # in no loss
        o = getattr(jitgrad.optim, opt_name)(list(m.parameters()), **hp)

        def step(X, y, m=m, o=o):       # no zero_grad: a .grad set between calls is used
            loss_of(m, X, y).backward()
            o.step()
            return loss_of(m, X, y)
        out.append((m, o, jitgrad.compile(step, fullgraph=True) if compiled else step))
    (m1, o1, eager), (m2, o2, compiled) = out
    for k in range(5):
        if k == 2:
            change([m1, m2], [o1, o2])
        X, y = batch(k)
        assert eager(X, y).item() == compiled(X, y).item()
        assert_same((m1, o1), (m2, o2))
        np.testing.assert_array_equal(m1.extra.detach().numpy(), m2.extra.detach().numpy())
        if k == 1:
            assert len(host_steps) == 3          # eager's two and the traced call
    assert len(host_steps) > 3 + 3               # the compiled calls after the change


def test_steps_the_fused_update_does_not_cover_run_in_python(host_steps):
    """A subclass with its own _update, a second optimizer stepped after the first, a closure."""
    class Clipped(jitgrad.optim.SGD):
        def _update(self, flat, g):          # its own update, which a replay cannot know
            super()._update(flat, g)

    out = []
    for compiled in (False, True):
        m = model()
        params = list(m.parameters())
        o1 = Clipped(params[:2], lr=0.1)
        o2 = jitgrad.optim.Adam(params[2:], lr=0.01)

        def step(X, y, m=m, o1=o1, o2=o2):
            o1.zero_grad()
            o2.zero_grad()
            loss_of(m, X, y).backward()
            o1.step()
            o2.step()
        out.append((m, (o1, o2), jitgrad.compile(step, fullgraph=True) if compiled else step))
    (m1, (a1, b1), eager), (m2, (a2, b2), comp) = out
    host_steps.clear()
    for k in range(3):
        X, y = batch(k)
        eager(X, y)
        comp(X, y)
        assert_same((m1, a1), (m2, a2))
        assert_same((m1, b1), (m2, b2))
    assert len(host_steps) == 2 * 3 * 2      # both optimizers, every call, both twins

    m = model()
    o = jitgrad.optim.SGD(m.parameters(), lr=0.1)

    def with_closure(X, y):
        def closure():
            o.zero_grad()
            loss = loss_of(m, X, y)
            loss.backward()
            return loss
        return o.step(closure)
    cf = jitgrad.compile(with_closure)
    with pytest.warns(UserWarning, match="closure"):
        cf(*batch(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf(*batch(1))
    assert isinstance(next(iter(cf.traces.values())), str)


def test_gradients_changed_after_the_backward_reach_grad_and_the_step():
    """Ops right after the backward that rewrite .grads (scaling, a manual update) are seen
    by .grad and by the step, whether the .grads are new or added into."""
    out = []
    for compiled in (False, True):
        m = model()
        o = jitgrad.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)

        def step(X, y, m=m, o=o):
            loss_of(m, X, y).backward()
            with jitgrad.no_grad():
                for p in m.parameters():
                    p.grad.mul_(0.5)
            o.step()
        out.append((m, o, jitgrad.compile(step, fullgraph=True) if compiled else step))
    (m1, o1, eager), (m2, o2, comp) = out
    for k in range(4):
        if k == 2:
            for m in (m1, m2):
                m.zero_grad()           # new .grads again
        X, y = batch(k)
        eager(X, y)
        comp(X, y)
        assert_same((m1, o1), (m2, o2))


def test_new_grads_after_a_call_that_could_not_add_into_one():
    """A call that meets a .grad it cannot add into (non-contiguous) runs apart; a later call
    whose .grads are all new must not add into the ones the earlier calls saw."""
    out = []
    for compiled in (False, True):
        m = model()
        o = jitgrad.optim.Adam(m.parameters(), lr=0.01)

        def step(X, y, m=m, o=o):
            loss_of(m, X, y).backward()
            o.step()
        out.append((m, o, jitgrad.compile(step, fullgraph=True) if compiled else step))
    (m1, o1, eager), (m2, o2, comp) = out
    for k in range(6):
        for m in (m1, m2):
            if k in (2, 4):
                m.zero_grad()
            if k == 3:
                w = m[2].weight          # (a leaf in the middle: others are met before it)
                w.grad = jitgrad.ones(tuple(reversed(w.shape)), dtype=jitgrad.float64).t()
        X, y = batch(k)
        eager(X, y)
        comp(X, y)
        assert_same((m1, o1), (m2, o2))
