"""jitgrad.compile of steps built on convolutions, pooling and interpolation: they replay (no
eager fallback) and give eager's values, gradients and parameters over several calls with
changing inputs."""
import numpy as np
import pytest

import jitgrad
from jitgrad import nn
import jitgrad.nn.functional as F


def _tol(dtype):
    # cross-entropy's exp/log: numpy's vectorised library eager, the C library's compiled
    return dict(rtol=1e-12, atol=1e-14) if dtype == jitgrad.float64 else dict(rtol=1e-5, atol=1e-6)


def _replays(compiled):
    entries = list(compiled.traces.values())
    assert entries and not any(isinstance(e, str) for e in entries), entries
    assert len(entries) == 1


def lenet(dtype):
    jitgrad.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                         nn.Flatten(), nn.Linear(6 * 3 * 3, 10)).to(dtype)


def images(k, dtype, shape):
    rng = np.random.default_rng(k)
    return jitgrad.tensor(rng.standard_normal(shape), dtype=dtype)


@pytest.mark.parametrize("dtype", [jitgrad.float64, jitgrad.float32], ids=["f64", "f32"])
def test_lenet_sgd_step_replays(dtype):
    """A small LeNet (conv, relu, max-pool with ceil_mode, linear, cross-entropy), SGD momentum."""
    models = [lenet(dtype) for _ in range(2)]
    opts = [jitgrad.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in models]

    def make(m, o):
        def step(X, labels):
            o.zero_grad()
            loss = F.cross_entropy(m(X), labels)
            loss.backward()
            o.step()
            return loss
        return step
    eager, compiled = make(models[0], opts[0]), jitgrad.compile(make(models[1], opts[1]))
    for k in range(4):
        X = images(k, dtype, (5, 1, 14, 14))
        labels = jitgrad.tensor(np.random.default_rng(k).integers(0, 10, 5))
        np.testing.assert_allclose(eager(X, labels).item(), compiled(X, labels).item(), **_tol(dtype))
    _replays(compiled)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), **_tol(dtype))
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), **_tol(dtype))


@pytest.mark.parametrize("dtype", [jitgrad.float64, jitgrad.float32], ids=["f64", "f32"])
def test_encoder_decoder_step_replays_bit_for_bit(dtype):
    """Strided and grouped convolution, avg-pool, bilinear upsampling, a transposed convolution,
    pixel shuffle, unfold/fold and an mse loss; a manual SGD update. No transcendental function:
    replay equals eager exactly."""
    rng = np.random.default_rng(0)

    def params():
        shapes = [(4, 2, 3, 3), (4,), (4, 2, 3, 3), (4, 2, 2, 2), (2,), (8, 2, 1, 1)]
        return [jitgrad.tensor(rng.standard_normal(s) * 0.3, dtype=dtype, requires_grad=True)
                for s in shapes]
    p1 = params()
    p2 = [p.detach().clone().requires_grad_() for p in p1]

    def make(p):
        def step(x, target):
            h = F.relu(F.conv2d(x, p[0], p[1], stride=1, padding=1))             # (N, 4, 8, 8)
            h = F.conv2d(h, p[2], None, padding="same", groups=2)
            h = F.avg_pool2d(h, 2, count_include_pad=False, padding=1)           # (N, 4, 5, 5)
            h = F.interpolate(h, size=(4, 4), mode="bilinear", align_corners=False)
            h = F.conv_transpose2d(h, p[3], p[4], stride=2)                      # (N, 2, 8, 8)
            h = F.conv2d(h, p[5])                                                # (N, 8, 8, 8)
            h = F.pixel_shuffle(h, 2)                                            # (N, 2, 16, 16)
            h = F.fold(F.unfold(h, 2, stride=2), (16, 16), 2, stride=2)
            h = F.max_pool2d(h, 3, 2, 1)                                         # (N, 2, 8, 8)
            loss = F.mse_loss(h, target)
            loss.backward()
            with jitgrad.no_grad():
                for q in p:
                    q -= 0.1 * q.grad
            for q in p:
                q.grad = None
            return loss, h
        return step
    eager, compiled = make(p1), jitgrad.compile(make(p2))
    for k in range(4):
        x, target = images(k, dtype, (3, 2, 8, 8)), images(k + 10, dtype, (3, 2, 8, 8))
        l1, h1 = eager(x, target)
        l2, h2 = compiled(x, target)
        np.testing.assert_array_equal(h1.detach().numpy(), h2.detach().numpy())
        assert l1.item() == l2.item()
    _replays(compiled)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_inference_under_no_grad_replays():
    """Rows that are not recorded (no_grad, eval) replay too: conv, max-pool, adaptive avg-pool,
    conv1d and nearest upsampling, in float32."""
    jitgrad.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2, 1, dilation=2),
                          nn.AdaptiveAvgPool2d((2, 3)), nn.Upsample(scale_factor=2))
    conv1 = nn.Conv1d(5, 2, 2, dilation=2)

    def infer(x):
        with jitgrad.no_grad():
            h = model(x)
            return conv1(h.flatten(2))
    compiled = jitgrad.compile(infer)
    for k in range(3):
        x = images(k, jitgrad.float32, (2, 3, 15, 13))
        np.testing.assert_array_equal(infer(x).numpy(), compiled(x).numpy())
    _replays(compiled)


def test_max_pool_ties_nan_and_padding_as_eager():
    """The first maximum of a window wins a tie, a nan wins, and an all -inf window whose first
    tap is padding sends its gradient nowhere: the replay's backward reads the positions the
    compiled forward wrote."""
    w = jitgrad.tensor(np.linspace(-1, 1, 2 * 3 * 3).reshape(1, 2, 3, 3))

    def step(x):
        y = F.max_pool2d(x, 2, 2, 1)
        (y * w).sum().backward()
        return y
    compiled = jitgrad.compile(step)
    base = np.array([[1, 1, 2, 2], [0, 1, 2, 2], [np.nan, 3, 3, -np.inf], [3, 0, -np.inf, -np.inf]])
    for k in range(3):
        a = np.stack([base, np.roll(base, k, 1)])[None] * (k + 1)
        x1 = jitgrad.tensor(a, requires_grad=True)
        x2 = jitgrad.tensor(a, requires_grad=True)
        y1, y2 = step(x1), compiled(x2)
        np.testing.assert_array_equal(y1.detach().numpy(), y2.detach().numpy())
        np.testing.assert_array_equal(x1.grad.numpy(), x2.grad.numpy())
    _replays(compiled)
    # by hand: plane 0's top-left window holds only x[0, 0] = 1 (padding elsewhere)
    assert x1.grad.numpy()[0, 0, 0, 0] == w.numpy()[0, 0, 0, 0]


@pytest.mark.parametrize("dtype", [jitgrad.float64, jitgrad.float32], ids=["f64", "f32"])
def test_layer_norm_step_replays_bit_for_bit(dtype):
    """nn.LayerNorm (affine, over two dims) and F.layer_norm without weights, in a step with an
    Adam update and a no-grad evaluation of the updated model: bit for bit (numpy's pairwise
    sums and rounding per statistic are reproduced)."""
    def model():
        jitgrad.manual_seed(1)
        return nn.Sequential(nn.Linear(6, 12), nn.Unflatten(1, (3, 4)), nn.LayerNorm([3, 4]),
                             nn.ReLU(), nn.Flatten(), nn.Linear(12, 5)).to(dtype)
    models = [model(), model()]
    opts = [jitgrad.optim.Adam(m.parameters(), lr=0.01) for m in models]

    def make(m, o):
        def step(x, target):
            o.zero_grad()
            d = F.layer_norm(m(x), [5], eps=1e-3) - target
            loss = (d * d).mean()
            loss.backward()
            o.step()
            with jitgrad.no_grad():
                return loss, m(x)
        return step
    eager, compiled = make(models[0], opts[0]), jitgrad.compile(make(models[1], opts[1]))
    for k in range(4):
        x, target = images(k, dtype, (7, 6)), images(k + 5, dtype, (7, 5))
        (l1, e1), (l2, e2) = eager(x, target), compiled(x, target)
        assert l1.item() == l2.item()
        np.testing.assert_array_equal(e1.numpy(), e2.numpy())
    _replays(compiled)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
