"""jitgrad.compile of training steps built on the losses and linear algebra: cross_entropy with
class weights, ignore_index and label smoothing, spatial targets, the pointwise losses with their
reductions, bce with weight and pos_weight, batched matmul (attention). Each step is replayed by
the forward kernels (fullgraph: an eager fallback would raise) and gives eager's losses, outputs,
gradients and parameters over several calls with changing inputs and targets: targets that are
ignored only in later calls, and class weights changed in place between calls, are read by each
replay, not taken from the traced call."""
import numpy as np
import pytest

import jitgrad
from jitgrad import nn
import jitgrad.nn.functional as F

DTYPES = [(jitgrad.float64, np.float64), (jitgrad.float32, np.float32)]
IDS = ["f64", "f32"]


def close(dtype):
    """exp, log and log1p (softmax, the logs of the losses) may differ in the last bit between
    numpy's vectorised math library (eager) and the C library's (compiled)."""
    def check(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-12 if dtype == jitgrad.float64 else 2e-5,
                                   atol=1e-14 if dtype == jitgrad.float64 else 1e-6)
    return check


def replays(compiled):
    entries = list(compiled.traces.values())
    return len(entries) == 1 and not isinstance(entries[0], str)


def run_twins(make_model, loss_fn, batches, dtype, opt=jitgrad.optim.SGD, **hp):
    """The same step eagerly and compiled on twin models; compares every call."""
    check = close(dtype)
    twins = []
    for _ in range(2):
        jitgrad.manual_seed(3)
        model = make_model().to(dtype)
        o = opt(model.parameters(), **(hp or {"lr": 0.1}))

        def step(x, y, model=model, o=o):
            o.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            o.step()
            return loss, out
        twins.append((model, step))
    (m1, eager), (m2, step) = twins
    compiled = jitgrad.compile(step, fullgraph=True)
    for x, y in batches:
        l1, o1 = eager(x, y)
        l2, o2 = compiled(x, y)
        check(l1.detach().numpy(), l2.detach().numpy())
        check(o1.detach().numpy(), o2.detach().numpy())
    assert replays(compiled)
    for p, q in zip(m1.parameters(), m2.parameters()):
        check(p.grad.numpy(), q.grad.numpy())
        check(p.detach().numpy(), q.detach().numpy())


def class_batches(np_dtype, n=6, features=5, classes=4, spatial=(), ignore=-100, count=4):
    """Inputs and int64 targets; the first batch has no ignored target, later ones do."""
    rng = np.random.default_rng(11)
    for k in range(count):
        x = rng.standard_normal((n,) + spatial + (features,)).astype(np_dtype)
        t = rng.integers(0, classes, (n,) + spatial)
        if k:
            t.reshape(-1)[rng.integers(0, t.size, 2)] = ignore
        yield jitgrad.tensor(x), jitgrad.tensor(t)


CE_CASES = [{}, {"label_smoothing": 0.1}, {"reduction": "sum", "label_smoothing": 0.2},
            {"weight": True}, {"weight": True, "label_smoothing": 0.15, "ignore_index": 1},
            {"reduction": "none", "label_smoothing": 0.1, "weight": True}]


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("kwargs", CE_CASES, ids=[str(sorted(c)) for c in CE_CASES])
def test_cross_entropy_classifier(kwargs, dtype, np_dtype):
    kwargs = dict(kwargs)
    if kwargs.get("weight"):
        kwargs["weight"] = jitgrad.tensor(np.array([0.5, 1.0, 2.0, 0.25], np_dtype))
    red = kwargs.get("reduction")

    def loss_fn(out, y):
        loss = F.cross_entropy(out, y, **kwargs)
        return loss.sum() if red == "none" else loss
    run_twins(lambda: nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4)), loss_fn,
              class_batches(np_dtype, ignore=kwargs.get("ignore_index", -100)), dtype)


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_over_positions(reduction, dtype, np_dtype):
    """(n, L, features) -> logits (n, classes, L), targets (n, L): NllLoss2D's kernel."""
    def loss_fn(out, y):
        loss = F.cross_entropy(out.permute(0, 2, 1), y, reduction=reduction, label_smoothing=0.1)
        return loss.mean() if reduction == "none" else loss
    run_twins(lambda: nn.Linear(5, 3), loss_fn,
              class_batches(np_dtype, n=3, spatial=(4,), classes=3), dtype)


def test_class_weights_changed_in_place_are_read_by_each_replay():
    w = jitgrad.tensor([1.0, 1.0, 1.0, 1.0], dtype=jitgrad.float64)

    def f(x, y):
        loss = F.nll_loss(F.log_softmax(x, 1), y, weight=w)
        loss.backward()
        return loss
    compiled = jitgrad.compile(f, fullgraph=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        x = rng.standard_normal((5, 4))
        y = jitgrad.tensor(rng.integers(0, 4, 5))
        got, want = (jitgrad.tensor(x, requires_grad=True) for _ in range(2))
        compiled(got, y)
        f(want, y)
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=1e-12, atol=1e-14)
        with jitgrad.no_grad():
            w.mul_(jitgrad.tensor([2.0, 0.5, 1.0, 3.0], dtype=jitgrad.float64))
    assert replays(compiled)


def test_replayed_label_smoothing_checks_targets():
    def f(x, y):
        loss = F.cross_entropy(x, y, label_smoothing=0.1)
        loss.backward()
        return loss
    compiled = jitgrad.compile(f, fullgraph=True)
    x = jitgrad.tensor(np.zeros((2, 3)), requires_grad=True)
    compiled(x, jitgrad.tensor([0, 2]))
    with pytest.raises(IndexError, match="Target 3 is out of bounds."):
        compiled(x, jitgrad.tensor([3, 2]))


def regression_batches(np_dtype, count=4):
    rng = np.random.default_rng(5)
    for _ in range(count):
        yield (jitgrad.tensor((rng.standard_normal((8, 3)) * 2).astype(np_dtype)),
               jitgrad.tensor(rng.standard_normal((8, 2)).astype(np_dtype)))


REGRESSION = [(F.smooth_l1_loss, {"beta": 0.5}), (F.smooth_l1_loss, {"reduction": "sum"}),
              (F.huber_loss, {"delta": 0.7}), (F.huber_loss, {"reduction": "none"}),
              (F.mse_loss, {"reduction": "sum"}), (F.l1_loss, {})]


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("loss,kwargs", REGRESSION, ids=[f"{f.__name__}-{sorted(k.items())}"
                                                         for f, k in REGRESSION])
def test_regression_losses(loss, kwargs, dtype, np_dtype):
    def loss_fn(out, y):
        v = loss(out, y, **kwargs)
        return v.mean() if kwargs.get("reduction") == "none" else v
    run_twins(lambda: nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2)), loss_fn,
              regression_batches(np_dtype), dtype, jitgrad.optim.Adam, lr=0.05)


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("which", ["logits", "logits_weights", "probabilities_weight"])
def test_binary_cross_entropy(which, dtype, np_dtype):
    w = jitgrad.tensor(np.array([[0.5, 2.0]], np_dtype))
    pw = jitgrad.tensor(np.array([3.0, 0.5], np_dtype))

    def loss_fn(out, y):
        if which == "logits":
            return F.binary_cross_entropy_with_logits(out, y, reduction="sum")
        if which == "logits_weights":
            return F.binary_cross_entropy_with_logits(out, y, weight=w, pos_weight=pw)
        return F.binary_cross_entropy(jitgrad.sigmoid(out), y, weight=w)

    def batches():
        rng = np.random.default_rng(2)
        for _ in range(4):
            yield (jitgrad.tensor(rng.standard_normal((6, 3)).astype(np_dtype)),
                   jitgrad.tensor((rng.random((6, 2)) > 0.5).astype(np_dtype)))
    run_twins(lambda: nn.Linear(3, 2), loss_fn, batches(), dtype)


class Attention(nn.Module):
    def __init__(self, d=4):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.w = nn.Parameter(jitgrad.randn(d, 2))

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = jitgrad.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1)
        mixed = jitgrad.bmm(scores, v)
        return jitgrad.einsum("btd,de->bte", mixed, self.w)


@pytest.mark.parametrize("dtype,np_dtype", DTYPES, ids=IDS)
def test_attention_with_batched_matmul(dtype, np_dtype):
    rng = np.random.default_rng(9)
    batches = [(jitgrad.tensor(rng.standard_normal((2, 3, 4)).astype(np_dtype)),
                jitgrad.tensor(rng.standard_normal((2, 3, 2)).astype(np_dtype)))
               for _ in range(4)]
    # (SGD: the key bias's gradient is 0 up to rounding, which Adam would scale to full steps)
    run_twins(Attention, F.mse_loss, batches, dtype)
