"""jitgrad.optim against torch.optim: same gradients in, same parameters out (float64 to 1e-12)."""
import io
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import nn, optim
from jitgrad.optim import _kernels


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


SHAPES = [(4, 3), (4,), (2, 4), (2,), ()]
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.99), maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.03, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9, eps=1e-4, alpha=0.3)),
    ("RMSprop", dict(lr=0.01, centered=True, alpha=0.1, maximize=True)),
]


def _problem(seed=0, steps=100):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _run(lib, name, kw, init, grads, dtype="float64", skip=lambda k, i: k % 7 == 3 and i == 1):
    """Feed the same gradients to lib's optimizer; parameter i has no grad when skip(k, i)."""
    dt = getattr(lib, dtype)
    params = [lib.nn.Parameter(lib.tensor(a, dtype=dt)) for a in init]
    opt = getattr(lib.optim, name)(params, **kw)
    for k, gs in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, gs)):
            p.grad = None if skip(k, i) else lib.tensor(g, dtype=dt)
        opt.step()
    return [p.detach().numpy().copy() for p in params], opt


def assert_same_state(jopt, topt):
    """The state (moments, buffers, step counts) agrees key by key, in value and dtype; returns
    both state dicts."""
    js, ts = jopt.state_dict(), topt.state_dict()
    assert js["state"].keys() == ts["state"].keys()
    for k in ts["state"]:
        assert list(js["state"][k]) == list(ts["state"][k])
        for key, v in ts["state"][k].items():
            np.testing.assert_allclose(js["state"][k][key].numpy(), v.numpy(), rtol=1e-12, atol=1e-14)
            assert js["state"][k][key].dtype.name == str(v.dtype).replace("torch.", "")
    return js, ts


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_matches_torch_float64(name, kw):
    torch = _torch()
    init, grads = _problem()
    mine, jopt = _run(jitgrad, name, kw, init, grads)
    theirs, topt = _run(torch, name, kw, init, grads)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    js, ts = assert_same_state(jopt, topt)
    assert js["param_groups"] == ts["param_groups"]
    assert repr(jopt) == repr(topt)


@pytest.mark.parametrize("name,kw", [CONFIGS[2], CONFIGS[5], CONFIGS[8], CONFIGS[11]])
def test_matches_torch_float32(name, kw):
    torch = _torch()
    init, grads = _problem(1)
    mine, _ = _run(jitgrad, name, kw, init, grads, "float32")
    theirs, _ = _run(torch, name, kw, init, grads, "float32")
    for a, b in zip(mine, theirs):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_param_groups_with_their_own_hyperparameters():
    torch = _torch()
    init, grads = _problem(2)
    res = []
    for lib in (jitgrad, torch):
        ps = [lib.nn.Parameter(lib.tensor(a)) for a in init]
        opt = lib.optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.01, "momentum": 0.5}],
                            lr=0.1, momentum=0.9)
        opt.add_param_group({"params": [lib.nn.Parameter(lib.tensor(init[0]))], "nesterov": True})
        extra = opt.param_groups[-1]["params"][0]
        for k, gs in enumerate(grads):
            for p, g in zip(ps, gs):
                p.grad = lib.tensor(g)
            extra.grad = None if k % 2 else lib.tensor(gs[0])
            opt.step()
            if k == 20:
                opt.param_groups[0]["lr"] = 0.3
        res.append([p.detach().numpy() for p in ps + [extra]])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_one_compiled_call_per_group_and_dtype(monkeypatch):
    calls = []
    real = _kernels.adam_step
    # adam_step(paddr, gaddr, m, v, vmax, steps, off, ...): off[-1] is the elements it updates
    monkeypatch.setattr(_kernels, "adam_step", lambda *a: calls.append(int(a[6][-1])) or real(*a))
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters()}])
    model(jitgrad.ones(5, 3)).sum().backward()
    opt.step()
    assert calls == [3 * 8 + 8, 8 * 2 + 2]


def test_parameters_keep_their_storage_and_stay_usable():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    ps = list(model.parameters())
    before = [p._a for p in ps]
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert all(p._a is a for p, a in zip(ps, before))
    # replacing a parameter's data (p.data = ...) is picked up at the next step
    ps[1].data = jitgrad.full((4,), 2.0)
    ps[1].grad = jitgrad.ones(4)
    opt.step()
    assert np.allclose(ps[1].detach().numpy(), 1.9)
    # load_state_dict copies in place: the optimizer keeps updating the same storage
    data = ps[1].detach().numpy()
    model.load_state_dict({k: jitgrad.zeros(*v.shape) for k, v in model.state_dict().items()})
    opt.step()
    assert np.allclose(data, -0.1)


def test_step_skips_params_without_grad_and_bumps_versions():
    torch = _torch()
    w = nn.Parameter(jitgrad.ones(3))
    v = nn.Parameter(jitgrad.ones(3))
    opt = optim.SGD([w, v], lr=0.5)
    loss = (w * w).sum()
    loss.backward()
    before = w._version
    opt.step()
    assert w._version == before + 1 and v._version == 0
    assert np.array_equal(v.detach().numpy(), np.ones(3))
    assert opt.state_dict()["state"] == {}
    # a graph that saved w before the step can no longer be replayed, as in torch
    w2 = torch.nn.Parameter(torch.ones(3))
    topt = torch.optim.SGD([w2], lr=0.5)
    errs = []
    for lib_w, lib_opt in ((w, opt), (w2, topt)):
        y = (lib_w * lib_w).sum()
        lib_w.grad = None
        (lib_w * 1.0).sum().backward()
        lib_opt.step()
        with pytest.raises(RuntimeError) as e:
            y.backward()
        errs.append(str(e.value))
    assert "modified by an inplace operation" in errs[0]
    assert errs[0].split(":")[0] == errs[1].split(":")[0]


def test_zero_grad():
    w = nn.Parameter(jitgrad.ones(2))
    opt = optim.Adam([w])
    (w * 3).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and not w.grad.numpy().any()
    opt.zero_grad()
    assert w.grad is None


@pytest.mark.parametrize("name,kw", [CONFIGS[2], CONFIGS[5], CONFIGS[11]])
def test_state_dict_round_trip_through_save_load_resumes_exactly(name, kw, tmp_path):
    init, grads = _problem(3)
    straight, _ = _run(jitgrad, name, kw, init, grads)
    first, opt = _run(jitgrad, name, kw, init, grads[:40])
    jitgrad.save(opt.state_dict(), tmp_path / "opt.npz")
    params = [nn.Parameter(jitgrad.tensor(a)) for a in first]
    opt2 = getattr(optim, name)(params, **kw)
    opt2.load_state_dict(jitgrad.load(tmp_path / "opt.npz"))
    for k, gs in enumerate(grads[40:], 40):
        for i, (p, g) in enumerate(zip(params, gs)):
            p.grad = None if (k % 7 == 3 and i == 1) else jitgrad.tensor(g)
        opt2.step()
    for a, p in zip(straight, params):
        np.testing.assert_array_equal(a, p.detach().numpy())


def test_loads_a_torch_optimizer_state_dict_and_continues_like_torch():
    torch = _torch()
    init, grads = _problem(4)
    kw = dict(lr=0.01, amsgrad=True)
    t_params = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    topt = torch.optim.Adam(t_params, **kw)
    for gs in grads[:10]:
        for p, g in zip(t_params, gs):
            p.grad = torch.tensor(g)
        topt.step()
    sd = topt.state_dict()
    j_sd = {"state": {k: {n: jitgrad.tensor(v.numpy().copy()) for n, v in st.items()}
                      for k, st in sd["state"].items()},
            "param_groups": sd["param_groups"]}
    j_params = [nn.Parameter(jitgrad.tensor(p.detach().numpy().copy())) for p in t_params]
    jopt = optim.Adam(j_params, **kw)
    jopt.load_state_dict(j_sd)
    for gs in grads[10:]:
        for tp, jp, g in zip(t_params, j_params, gs):
            tp.grad, jp.grad = torch.tensor(g), jitgrad.tensor(g)
        topt.step()
        jopt.step()
    for tp, jp in zip(t_params, j_params):
        np.testing.assert_allclose(jp.detach().numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        jopt.load_state_dict({"state": {}, "param_groups": []})


def test_constructor_errors_match_torch():
    torch = _torch()
    for lib in (jitgrad, torch):
        p = lib.nn.Parameter(lib.ones(1))
        with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
            lib.optim.SGD([], lr=0.1)
        with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
            lib.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
        with pytest.raises(ValueError, match="Invalid learning rate"):
            lib.optim.Adam([p], lr=-1)
        with pytest.raises(ValueError, match="Nesterov momentum requires"):
            lib.optim.SGD([p], lr=0.1, nesterov=True)
        with pytest.raises(TypeError, match="should be an iterable of Tensors or dicts"):
            lib.optim.SGD(p, lr=0.1)


def test_closure_is_called_with_grad_enabled():
    w = nn.Parameter(jitgrad.ones(2))
    opt = optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with jitgrad.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 2.0 and np.allclose(w.detach().numpy(), 0.8)


# ---- schedulers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sched,kw", [("StepLR", dict(step_size=3, gamma=0.5)),
                                      ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
                                      ("CosineAnnealingLR", dict(T_max=10))])
def test_schedulers_match_torch(sched, kw):
    torch = _torch()
    lrs = []
    for lib in (jitgrad, torch):
        opt = lib.optim.SGD([{"params": [lib.nn.Parameter(lib.ones(1))]},
                             {"params": [lib.nn.Parameter(lib.ones(1))], "lr": 0.3}], lr=0.1)
        s = getattr(lib.optim.lr_scheduler, sched)(opt, **kw)
        seq = [s.get_last_lr()]
        for _ in range(30):
            opt.step()
            s.step()
            seq.append(s.get_last_lr())
        lrs.append(seq)
        state = s.state_dict()
        assert state["last_epoch"] == 30 and "optimizer" not in state
    assert lrs[0] == lrs[1]


def test_scheduler_warns_when_stepped_before_the_optimizer():
    opt = optim.SGD([nn.Parameter(jitgrad.ones(1))], lr=0.1)
    s = optim.lr_scheduler.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        s.step()
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.step()


def test_optimizer_state_dict_saves_to_a_buffer():
    w = nn.Parameter(jitgrad.ones(3))
    opt = optim.RMSprop([w], momentum=0.9, centered=True)
    w.grad = jitgrad.ones(3)
    opt.step()
    buf = io.BytesIO()
    jitgrad.save(opt.state_dict(), buf)
    buf.seek(0)
    sd = jitgrad.load(buf)
    assert list(sd["state"][0]) == ["step", "square_avg", "momentum_buffer", "grad_avg"]
    assert sd["state"][0]["step"].item() == 1.0 and sd["state"][0]["step"].dtype is jitgrad.float32
    assert sd["param_groups"][0]["momentum"] == 0.9 and sd["param_groups"][0]["params"] == [0]
