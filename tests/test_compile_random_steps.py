"""Random training steps, compiled and eager: the same losses, parameters and .grads.

Each seed draws a small MLP whose hidden activations are a chain of ops from ACTIVATIONS, a
loss, an optimizer (or a manual update under no_grad) and a way of clearing the gradients, and
runs four steps eagerly and four through jitgrad.compile (the first traces, the rest replay).
float64 only: a replay equals eager bit for bit there on this machine, and within a few ulps
where numpy vectorises exp/log (docs/design.md); float32's last-bit differences in exp, log,
sin, cos and tanh can be amplified by a step (an Adam update of a gradient near zero) past any
tolerance, so they are checked by the op-level tests instead.
"""
import random
import warnings

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad import nn

ACTIVATIONS = {
    "relu": jitgrad.relu, "tanh": jitgrad.tanh, "sigmoid": jitgrad.sigmoid, "exp": jitgrad.exp,
    "square": lambda x: x * x, "abs": lambda x: x.abs(), "gelu": F.gelu, "softplus": F.softplus,
    "clamp": lambda x: x.clamp(-0.5, 0.5), "rational": lambda x: x / (1 + x * x),
    "sin": jitgrad.sin, "neg": lambda x: -x, "cube": lambda x: x ** 3, "cumsum": lambda x: x.cumsum(-1),
    "softmax": lambda x: F.softmax(x, -1), "log_softmax": lambda x: F.log_softmax(x, -1),
    "flip": lambda x: x.flip(-1), "transpose_twice": lambda x: x.t().t(),
    "layer_norm": lambda x: F.layer_norm(x, x.shape[-1:]),
    "mean_scaled": lambda x: x.mean(-1, keepdim=True) * x,
    "max_shifted": lambda x: x.max(-1, keepdim=True)[0] + x,
    "logsumexp_shifted": lambda x: jitgrad.logsumexp(x, -1, keepdim=True) - x,
    "dropout": lambda x: F.dropout(x, 0.3),
    # a mask computed inside the step: not replayable, so it runs eagerly (with a warning)
    "leaky_where": lambda x: jitgrad.where(x > 0, x, 0.1 * x),
}
LOSSES = {
    "mse": lambda o, y: ((o - y) ** 2).mean(), "smooth_l1": F.smooth_l1_loss,
    "l1_sum": lambda o, y: (o - y).abs().sum(), "mse_sum": lambda o, y: F.mse_loss(o, y, reduction="sum"),
}
OPTIMIZERS = {
    "sgd": lambda ps, rng: jitgrad.optim.SGD(ps, lr=0.05),
    "momentum": lambda ps, rng: jitgrad.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=rng.random() < 0.5,
                                                 weight_decay=rng.choice([0, 1e-2])),
    "adam": lambda ps, rng: jitgrad.optim.Adam(ps, lr=0.01),
    "adamw": lambda ps, rng: jitgrad.optim.AdamW(ps, lr=0.01, amsgrad=rng.random() < 0.5),
    "rmsprop": lambda ps, rng: jitgrad.optim.RMSprop(ps, lr=0.01),
    "manual": None,
}


def draw(seed, values=None):
    """The step of this seed: a function of (X, y), its parameters, and what it chose (values:
    the seed of the parameters' and data's values, if not the seed)."""
    rng = random.Random(seed)
    jitgrad.manual_seed(seed if values is None else values)
    n_in, hidden, n_out = rng.randint(1, 6), rng.choice([2, 4, 8]), rng.randint(1, 4)
    first, last = nn.Linear(n_in, hidden).double(), nn.Linear(hidden, n_out).double()
    acts = rng.sample(sorted(ACTIVATIONS), rng.randint(1, 4))
    loss_name, opt_name = rng.choice(sorted(LOSSES)), rng.choice(sorted(OPTIMIZERS))
    clearing = rng.choice(["accumulate", "zero_grad", "set_to_none"])
    params = list(first.parameters()) + list(last.parameters())
    opt = OPTIMIZERS[opt_name](params, rng) if OPTIMIZERS[opt_name] else None

    def step(X, y):
        if clearing == "set_to_none":
            for p in params:
                p.grad = None
        elif clearing == "zero_grad" and opt is not None:
            opt.zero_grad()
        h = first(X)
        for a in acts:
            h = ACTIVATIONS[a](h)
        loss = LOSSES[loss_name](last(h), y)
        loss.backward()
        if opt is not None:
            opt.step()
        else:
            with jitgrad.no_grad():
                for p in params:
                    p -= 0.05 * p.grad
        return loss
    batch = rng.randint(1, 9)
    X = jitgrad.randn(batch, n_in, dtype=jitgrad.float64)
    y = jitgrad.randn(batch, n_out, dtype=jitgrad.float64)
    return step, params, X, y, (acts, loss_name, opt_name, clearing)


def run(seed, compiled, values=None):
    step, params, X, y, choice = draw(seed, values)
    jitgrad.manual_seed(seed + 1)           # (dropout's masks: the same stream both ways)
    fn = jitgrad.compile(step) if compiled else step
    losses = [fn(X, y).item() for _ in range(4)]
    return (losses, [p.detach().numpy().copy() for p in params],
            [None if p.grad is None else p.grad.numpy().copy() for p in params], fn, choice)


@pytest.mark.parametrize("seed", range(40))
def test_a_random_step_replays_as_eager(seed):
    losses, params, grads, _, choice = run(seed, compiled=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # (the eager fallback's warning)
        c_losses, c_params, c_grads, fn, _ = run(seed, compiled=True)
    close = dict(rtol=1e-11, atol=1e-13, equal_nan=True)
    np.testing.assert_allclose(c_losses, losses, **close, err_msg=str(choice))
    for a, b in zip(c_params, params):
        np.testing.assert_allclose(a, b, **close, err_msg=str(choice))
    for a, b in zip(c_grads, grads):
        assert (a is None) == (b is None), choice
        if a is not None:
            np.testing.assert_allclose(a, b, **close, err_msg=str(choice))
    replayed = [type(v).__name__ for v in fn.traces.values()] == ["_Compiled"]
    assert replayed == ("leaky_where" not in choice[0]), (choice, fn.traces)


@pytest.mark.parametrize("seed", range(40))
def test_a_second_model_of_a_random_step_takes_the_first_ones_plan(seed, monkeypatch):
    # (a sweep's case: the conftest checks the plan taken against the second model's analysis)
    from jitgrad.compiler import program
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(seed, compiled=True)
        taken = []
        real = program.Program._take
        monkeypatch.setattr(program.Program, "_take", lambda self, *a: taken.append(1) or real(self, *a))
        c_losses, c_params, c_grads, fn, choice = run(seed, compiled=True, values=seed + 1000)
    losses, params, grads, _, _ = run(seed, compiled=False, values=seed + 1000)
    close = dict(rtol=1e-11, atol=1e-13, equal_nan=True)
    np.testing.assert_allclose(c_losses, losses, **close, err_msg=str(choice))
    for a, b in zip(c_params + c_grads, params + grads):
        assert (a is None) == (b is None), choice
        if a is not None:
            np.testing.assert_allclose(a, b, **close, err_msg=str(choice))
    assert bool(taken) == ("leaky_where" not in choice[0]), choice
