"""What users do with create_graph=True (issue 10, "Higher-order gradients"), each end to end with
jitgrad.nn modules: the Hessian of a loss and Hessian-vector products, a physics-informed loss
(u_x and u_xx by double backward), a WGAN gradient penalty and a MAML step differentiated through.

Each use is written once against a library (jitgrad or torch: the same code runs on both), so the
torch comparisons run exactly what a torch user would write. Those skip without torch; the checks
against finite differences and the training run do not need it."""
import math

import numpy as np
import pytest

import jitgrad


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _mlp(lib, *sizes):
    """Linear layers of these sizes with Tanh between them, in float64."""
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [lib.nn.Linear(a, b), lib.nn.Tanh()]
    return lib.nn.Sequential(*layers[:-1]).double()


def _twin(model, torch, *sizes):
    """The torch model with model's weights."""
    twin = _mlp(torch, *sizes)
    twin.load_state_dict({k: torch.tensor(v.numpy().copy()) for k, v in model.state_dict().items()})
    return twin


def _grads(model):
    return [p.grad.numpy().copy() for p in model.parameters()]


def _assert_grads_match(model, twin, rtol=1e-9, atol=1e-11):
    for j, t in zip(_grads(model), _grads(twin)):
        np.testing.assert_allclose(j, t, rtol=rtol, atol=atol)


def _data(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


# ---- the Hessian of a small MLP's loss, and Hessian-vector products ---------------------------
def _mse(lib, model, X, Y):
    return ((model(lib.tensor(X)) - lib.tensor(Y)) ** 2).mean()


def _hessian(loss, params):
    """The explicit Hessian: the gradient, kept differentiable, differentiated once per entry."""
    grads = jitgrad.autograd.grad(loss, params, create_graph=True)
    rows = []
    for g in grads:
        for j in range(g.numel()):
            onehot = np.zeros(g.shape)
            onehot.flat[j] = 1
            row = jitgrad.autograd.grad(g, params, grad_outputs=jitgrad.tensor(onehot),
                                        retain_graph=True)
            rows.append(np.concatenate([r.numpy().ravel() for r in row]))
    return np.array(rows)


def _flat_grad(model, X, Y):
    model.zero_grad()
    _mse(jitgrad, model, X, Y).backward()
    return np.concatenate([g.ravel() for g in _grads(model)])


@pytest.fixture
def small_mlp():
    jitgrad.manual_seed(0)
    model = _mlp(jitgrad, 3, 4, 1)
    X, Y = _data((8, 3), (8, 1))
    return model, X, Y


def test_hessian_of_an_mlp_loss_matches_finite_differences(small_mlp):
    model, X, Y = small_mlp
    params = list(model.parameters())
    H = _hessian(_mse(jitgrad, model, X, Y), params)
    n = sum(p.numel() for p in params)
    assert H.shape == (n, n) == (21, 21)
    eps = 1e-6
    fd = np.zeros((n, n))
    k = 0
    for p in params:
        base = p.detach().numpy().copy()
        for j in range(base.size):
            columns = []
            for step in (eps, -eps):
                moved = base.copy()
                moved.flat[j] += step
                p.data = jitgrad.tensor(moved)
                columns.append(_flat_grad(model, X, Y))
            fd[:, k] = (columns[0] - columns[1]) / (2 * eps)
            k += 1
        p.data = jitgrad.tensor(base)
    np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)


def test_hessian_vector_products_by_double_backward_match_the_explicit_hessian(small_mlp):
    model, X, Y = small_mlp
    params = list(model.parameters())
    H = _hessian(_mse(jitgrad, model, X, Y), params)
    for seed in (1, 2):
        vs = _data(*[p.shape for p in params], seed=seed)
        grads = jitgrad.autograd.grad(_mse(jitgrad, model, X, Y), params, create_graph=True)
        gv = sum((g * jitgrad.tensor(v)).sum() for g, v in zip(grads, vs))
        hv = jitgrad.autograd.grad(gv, params)
        np.testing.assert_allclose(np.concatenate([h.numpy().ravel() for h in hv]),
                                   H @ np.concatenate([v.ravel() for v in vs]), rtol=1e-10, atol=1e-12)


# ---- a physics-informed loss: u'' = -pi^2 sin(pi x) on [0, 1], u(0) = u(1) = 0 ----------------
def _pinn_loss(lib, model, x, f, boundary):
    x = lib.tensor(x, requires_grad=True)
    u = model(x)
    u_x, = lib.autograd.grad(u, x, grad_outputs=lib.ones_like(u), create_graph=True)
    u_xx, = lib.autograd.grad(u_x, x, grad_outputs=lib.ones_like(u_x), create_graph=True)
    return ((u_xx - lib.tensor(f)) ** 2).mean() + (model(lib.tensor(boundary)) ** 2).mean()


def _pinn_problem(n=128, seed=0):
    x = np.random.default_rng(seed).uniform(0, 1, (n, 1))
    return x, -math.pi ** 2 * np.sin(math.pi * x), np.array([[0.0], [1.0]])


def test_physics_informed_mlp_trains_with_adam():
    jitgrad.manual_seed(0)
    model = _mlp(jitgrad, 1, 32, 32, 1)
    opt = jitgrad.optim.Adam(model.parameters(), lr=1e-2)
    x, f, boundary = _pinn_problem()
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = _pinn_loss(jitgrad, model, x, f, boundary)
        loss.backward()
        assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all()
                   for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_physics_informed_gradients_match_torch():
    torch = _torch()
    jitgrad.manual_seed(1)
    model = _mlp(jitgrad, 1, 32, 32, 1)
    twin = _twin(model, torch, 1, 32, 32, 1)
    x, f, boundary = _pinn_problem(seed=1)
    loss = _pinn_loss(jitgrad, model, x, f, boundary)
    loss.backward()
    want = _pinn_loss(torch, twin, x, f, boundary)
    want.backward()
    np.testing.assert_allclose(loss.item(), want.item(), rtol=1e-10)
    _assert_grads_match(model, twin)


# ---- WGAN-GP: the critic's loss with a gradient penalty ----------------------------------------
def _critic_loss(lib, critic, real, fake, mix, weight=10.0):
    real, fake, mix = lib.tensor(real), lib.tensor(fake), lib.tensor(mix)
    x_hat = (mix * real + (1 - mix) * fake).requires_grad_(True)
    d = critic(x_hat)
    g, = lib.autograd.grad(d, x_hat, grad_outputs=lib.ones_like(d), create_graph=True)
    penalty = ((g.norm(2, dim=1) - 1) ** 2).mean()
    return critic(fake).mean() - critic(real).mean() + weight * penalty, penalty


def test_wgan_gradient_penalty_gradients_match_torch():
    torch = _torch()
    jitgrad.manual_seed(2)
    critic = _mlp(jitgrad, 4, 16, 16, 1)
    twin = _twin(critic, torch, 4, 16, 16, 1)
    real, fake = _data((16, 4), (16, 4), seed=3)
    fake = fake * 0.5 + 1.0
    mix = np.random.default_rng(4).uniform(0, 1, (16, 1))
    loss, penalty = _critic_loss(jitgrad, critic, real, fake, mix)
    loss.backward()
    want, want_penalty = _critic_loss(torch, twin, real, fake, mix)
    want.backward()
    np.testing.assert_allclose(penalty.item(), want_penalty.item(), rtol=1e-10)
    assert penalty.item() > 1e-3     # the penalty is not ~0: its gradient is tested
    _assert_grads_match(critic, twin)


# ---- MAML: an inner SGD step differentiated through -------------------------------------------
def _maml_loss(lib, model, tasks, inner_lr=0.1):
    """The mean query loss after one inner SGD step per task, as a function of the model's
    initial weights (the step is differentiated through: second-order MAML)."""
    F = lib.nn.functional
    params = list(model.parameters())
    total = 0
    for xs, ys, xq, yq in tasks:
        inner = ((model(lib.tensor(xs)) - lib.tensor(ys)) ** 2).mean()
        grads = lib.autograd.grad(inner, params, create_graph=True)
        w1, b1, w2, b2 = [p - inner_lr * g for p, g in zip(params, grads)]
        pred = F.linear(F.linear(lib.tensor(xq), w1, b1).tanh(), w2, b2)
        total = total + ((pred - lib.tensor(yq)) ** 2).mean()
    return total / len(tasks)


def _tasks():
    tasks = []
    for seed in range(3):
        rng = np.random.default_rng(10 + seed)
        amp, phase = rng.uniform(0.5, 2), rng.uniform(0, math.pi)
        xs, xq = rng.uniform(-2, 2, (10, 1)), rng.uniform(-2, 2, (10, 1))
        tasks.append((xs, amp * np.sin(xs + phase), xq, amp * np.sin(xq + phase)))
    return tasks


def test_maml_meta_gradient_matches_finite_differences():
    jitgrad.manual_seed(3)
    model = _mlp(jitgrad, 1, 8, 1)
    tasks = _tasks()
    _maml_loss(jitgrad, model, tasks).backward()
    got = np.concatenate([g.ravel() for g in _grads(model)])
    eps = 1e-6
    fd = []
    for p in model.parameters():
        base = p.detach().numpy().copy()
        for j in range(base.size):
            values = []
            for step in (eps, -eps):
                moved = base.copy()
                moved.flat[j] += step
                p.data = jitgrad.tensor(moved)
                values.append(_maml_loss(jitgrad, model, tasks).item())
            fd.append((values[0] - values[1]) / (2 * eps))
        p.data = jitgrad.tensor(base)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-8)


def test_maml_meta_gradient_matches_torch():
    torch = _torch()
    jitgrad.manual_seed(4)
    model = _mlp(jitgrad, 1, 16, 1)
    twin = _twin(model, torch, 1, 16, 1)
    tasks = _tasks()
    loss = _maml_loss(jitgrad, model, tasks)
    loss.backward()
    want = _maml_loss(torch, twin, tasks)
    want.backward()
    np.testing.assert_allclose(loss.item(), want.item(), rtol=1e-10)
    _assert_grads_match(model, twin)
