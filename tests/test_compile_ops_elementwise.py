"""jitgrad.compile of training steps built on the elementwise family (activations, pow, clamp,
maximum/minimum, where/masked_fill, lerp, addcmul, remainder...): the step is replayed by the
forward kernels (not run eagerly) and gives eager's losses, outputs, gradients and parameters over
several calls with changing inputs. Steps of arithmetic, comparisons and selections only are
compared bit for bit; those with exp, log, tanh, erf or pow may differ in the last bit (numpy's
vectorised math library in eager, the C library's in compiled code), rounding amplified where an
activation cancels (gelu's 1 + erf(x) for large negative x)."""
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import nn
import jitgrad.nn.functional as F

DTYPES = [(jitgrad.float64, np.float64), (jitgrad.float32, np.float32)]
IDS = ["f64", "f32"]


def close(dtype):
    def check(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-12 if dtype == jitgrad.float64 else 2e-5,
                                   atol=1e-14 if dtype == jitgrad.float64 else 1e-6)
    return check


def replays(compiled):
    """The step ran from a trace (a program), not eagerly (a trace entry is then its reason)."""
    entries = list(compiled.traces.values())
    return len(entries) == 1 and not isinstance(entries[0], str)


def batches(np_dtype, shape_x, shape_y, count=5):
    rng = np.random.default_rng(7)
    for _ in range(count):
        x = rng.standard_normal(shape_x) * 2
        yield (jitgrad.tensor(x.astype(np_dtype)),
               jitgrad.tensor(rng.standard_normal(shape_y).astype(np_dtype)))


def run_twins(make_model, make_opt, loss_fn, dtype, np_dtype, check, shape_x=(16, 4),
              shape_y=(16, 1)):
    """The same step eagerly and compiled (fullgraph: a fallback would raise), on twin models."""
    twins = []
    for _ in range(2):
        jitgrad.manual_seed(3)
        model = make_model().to(dtype)
        opt = make_opt(model.parameters())

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            opt.step()
            return loss, out
        twins.append((model, step))
    (m1, eager), (m2, step) = twins
    compiled = jitgrad.compile(step, fullgraph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # no "runs eagerly" warning
        for x, y in batches(np_dtype, shape_x, shape_y):
            l1, o1 = eager(x, y)
            l2, o2 = compiled(x, y)
            check(l1.detach().numpy(), l2.detach().numpy())
            check(o1.detach().numpy(), o2.detach().numpy())
    assert replays(compiled)
    for p, q in zip(m1.parameters(), m2.parameters()):
        check(p.detach().numpy(), q.detach().numpy())
        check(p.grad.numpy(), q.grad.numpy())


ACTIVATIONS = [lambda: nn.GELU(), lambda: nn.GELU(approximate="tanh"), nn.SiLU, nn.Mish,
               nn.Softplus, lambda: nn.Softplus(2.0, 1.0), nn.ELU, nn.SELU, lambda: nn.CELU(0.5),
               nn.LogSigmoid, nn.Hardswish]
ACT_IDS = ["gelu", "gelu_tanh", "silu", "mish", "softplus", "softplus_beta", "elu", "selu", "celu",
           "logsigmoid", "hardswish"]


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("act", ACTIVATIONS, ids=ACT_IDS)
def test_mlp_with_activation_replays(act, dtype, np_dtype):
    run_twins(lambda: nn.Sequential(nn.Linear(4, 8), act(), nn.Linear(8, 8), act(), nn.Linear(8, 1)),
              lambda ps: jitgrad.optim.Adam(ps, lr=0.01), F.mse_loss, dtype, np_dtype, close(dtype))


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("act", [lambda: nn.LeakyReLU(0.1), lambda: nn.Hardtanh(-0.5, 0.7),
                                 nn.Hardsigmoid, nn.ReLU6], ids=["leaky_relu", "hardtanh",
                                                                 "hardsigmoid", "relu6"])
def test_piecewise_linear_activations_replay_bit_for_bit(act, dtype, np_dtype):
    run_twins(lambda: nn.Sequential(nn.Linear(4, 8), act(), nn.Linear(8, 1)),
              lambda ps: jitgrad.optim.SGD(ps, lr=0.05, momentum=0.9), F.mse_loss, dtype, np_dtype,
              np.testing.assert_array_equal)


def _robust_loss(out, y):
    """A loss of the family's arithmetic and selections: clamp by numbers and by tensors,
    maximum/minimum, pow by a number and by a tensor, lerp, addcmul/addcdiv, copysign,
    remainder, fmod, square, sign, floor and round of a quantity that needs no gradient."""
    err = out - y
    huber = err.clamp(-1.0, 1.0) ** 2 + (err.abs() - 1.0).clamp(min=0.0) * 2.0
    band = jitgrad.clamp(out, min=y - 0.5, max=y * 1.0 + 0.5)
    mixed = jitgrad.lerp(out, band, 0.75) + jitgrad.lerp(band, out, 0.25)
    peak = jitgrad.maximum(out, y) - jitgrad.minimum(out, y * 0.5)
    powered = (out * out + 1.0) ** (y.abs() * 0.5 + 0.5)          # pow(Tensor, Tensor)
    extra = jitgrad.addcmul(err, out, y, value=0.5) + jitgrad.addcdiv(out, err, y.abs() + 1.0, value=-0.25)
    signs = jitgrad.copysign(out, y) + jitgrad.remainder(out, 0.7) + jitgrad.fmod(out, y.abs() + 0.5)
    quantised = jitgrad.round(y * 4.0) * 0.25 + jitgrad.floor(y) + jitgrad.sign(y) + jitgrad.square(y)
    return (huber.mean() + mixed.mean() + peak.mean() + powered.mean() * 0.1 + extra.mean()
            + signs.mean() * 0.1 + (out * quantised).mean() * 0.01)


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
def test_step_of_arithmetic_and_selections_replays(dtype, np_dtype):
    # pow(Tensor, Tensor) and its log in the gradient: the last bit may differ
    run_twins(lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)),
              lambda ps: jitgrad.optim.SGD(ps, lr=0.01), _robust_loss, dtype, np_dtype, close(dtype))


def _selection_loss(out, y):
    err = out - y
    return (err.clamp(-1.0, 1.0) ** 2 + jitgrad.maximum(out, y) * 0.5 - jitgrad.minimum(out, y)
            + jitgrad.clamp(out, min=y - 0.5) + jitgrad.lerp(out, y, 0.8) + jitgrad.remainder(out, -0.7)
            + jitgrad.addcmul(out, err, err, value=0.5) + out.clamp(max=0.25) ** 3.0).mean()


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
def test_step_without_transcendentals_replays_bit_for_bit(dtype, np_dtype):
    run_twins(lambda: nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)),
              lambda ps: jitgrad.optim.Adam(ps, lr=0.01), _selection_loss, dtype, np_dtype,
              np.testing.assert_array_equal)


def test_unary_math_of_inputs_without_gradients_replays():
    """Ops whose inputs need no gradient (features computed inside the step) are traced too."""
    w = jitgrad.tensor(np.linspace(-1, 1, 6), requires_grad=True)

    def step(x):
        w.grad = None
        feats = (x.sin() + x.cos() + x.atan() + jitgrad.erf(x) + x.expm1() + F.gelu(x)
                 + x.clamp(-0.5, 0.5) + x ** 2 + 2.0 ** x + jitgrad.maximum(x, x * 0.5))
        loss = (F.silu(feats * w) ** 2).sum()
        loss.backward()
        return loss
    compiled = jitgrad.compile(step, fullgraph=True)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = jitgrad.tensor(rng.standard_normal(6))
        want = step(x).item()
        want_grad = w.grad.numpy().copy()
        got = compiled(x).item()
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(w.grad.numpy(), want_grad, rtol=1e-12)
    assert replays(compiled)


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
def test_step_with_where_and_masked_fill_replays_bit_for_bit(dtype, np_dtype):
    """A bool mask passed to the step is read at each call; a captured one is guarded by its
    values (changed in place: traced again); one computed inside the step runs eagerly."""
    keep = jitgrad.tensor(np.array([True, False, True, True, False, True, True, False]))
    twins = []
    for _ in range(2):
        jitgrad.manual_seed(3)
        lin1, lin2 = nn.Linear(4, 8).to(dtype), nn.Linear(8, 1).to(dtype)
        opt = jitgrad.optim.Adam(list(lin1.parameters()) + list(lin2.parameters()), lr=0.01)

        def step(x, y, mask, lin1=lin1, lin2=lin2, opt=opt):
            opt.zero_grad()
            h = jitgrad.where(keep, lin1(x), lin1(x) * 0.25).masked_fill(mask, -1.0)
            out = lin2(h)
            loss = jitgrad.where(mask, 0.0, (out - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss, out
        twins.append(((lin1, lin2), step))
    (m1, eager), (m2, step) = twins
    compiled = jitgrad.compile(step, fullgraph=True)
    rng = np.random.default_rng(5)
    for k, (x, y) in enumerate(batches(np_dtype, (16, 4), (16, 1), count=6)):
        if k == 4:
            traced = next(iter(compiled.traces.values()))
            keep[1] = True                  # (a replay must not reuse the traced values)
        mask = jitgrad.tensor(rng.random((16, 1)) < 0.3)
        for a, b in zip(eager(x, y, mask), compiled(x, y, mask)):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    (entry,) = compiled.traces.values()
    assert not isinstance(entry, str) and entry is not traced
    for p, q in zip([p for m in m1 for p in m.parameters()], [p for m in m2 for p in m.parameters()]):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    inside = jitgrad.compile(lambda x: jitgrad.where(x > 0, x, 0.0))
    with pytest.warns(UserWarning, match="mask computed inside the function"):
        inside(jitgrad.tensor([1.0, -2.0], requires_grad=True))
