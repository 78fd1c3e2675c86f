"""Convolutions and their modules: values and input/weight/bias gradients against a direct numpy
convolution (always) and PyTorch (when installed), over a grid of stride/padding/dilation/groups,
in float32 and float64; torch's errors; the modules' init, reprs and state_dict keys."""
import itertools
import math

import numpy as np
import pytest

import jitgrad
from jitgrad import nn
from jitgrad.autograd import gradcheck, gradgradcheck

F = nn.functional

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch oracle not installed")


def naive_conv(x, w, b, stride, padding, dilation, groups):
    """The definition, one output element at a time (2-d, batched)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for nn_, oc, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        g = oc // og
        for ci, a, bb in itertools.product(range(cg), range(kh), range(kw)):
            out[nn_, oc, i, j] += w[oc, ci, a, bb] * xp[nn_, g * cg + ci, i * stride[0] + a * dilation[0],
                                                        j * stride[1] + bb * dilation[1]]
    return out + (0 if b is None else b[None, :, None, None])


GRID = [dict(stride=s, padding=p, dilation=d, groups=g)
        for s, p, d, g in itertools.product([1, 2], [0, 1], [1, 2], [1, 2])]


@pytest.mark.parametrize("kw", GRID, ids=[str(sorted(k.values())) for k in GRID])
def test_conv2d_matches_the_definition(kw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((6, 4 // kw["groups"], 3, 2))
    b = rng.standard_normal(6)
    out = F.conv2d(jitgrad.tensor(x), jitgrad.tensor(w), jitgrad.tensor(b), **kw)
    ref = naive_conv(x, w, b, (kw["stride"],) * 2, (kw["padding"],) * 2, (kw["dilation"],) * 2, kw["groups"])
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)


def _pair(fn, tfn, x, w, b, dtype, **kw):
    """Values and input/weight/bias gradients of jitgrad's fn and torch's tfn, in dtype."""
    res = []
    for mod, f in ((jitgrad, fn), (torch, tfn)):
        ts = [mod.tensor(v.astype(dtype), requires_grad=True) for v in (x, w, b)]
        out = f(*ts, **kw)
        g = np.cos(np.arange(out.numel())).reshape(tuple(out.shape)).astype(dtype)
        out.backward(mod.tensor(g))
        res.append([out.detach().numpy()] + [t.grad.numpy() for t in ts])
    return res


CONV_CASES = [
    ("conv1d", (2, 4, 9), (6, 2, 3), dict(stride=2, padding=1, dilation=2, groups=2)),
    ("conv1d", (1, 3, 8), (4, 3, 4), dict(padding="same", dilation=1)),
    ("conv2d", (2, 3, 8, 7), (4, 3, 3, 2), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
    ("conv2d", (2, 4, 6, 6), (4, 1, 3, 3), dict(padding="same", groups=4)),
    ("conv2d", (1, 2, 5, 5), (3, 2, 5, 5), dict(padding="valid")),
    ("conv3d", (1, 2, 5, 4, 4), (3, 2, 2, 3, 2), dict(stride=(1, 2, 1), padding=(1, 1, 0))),
    ("conv_transpose1d", (2, 4, 5), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("conv_transpose2d", (2, 4, 3, 4), (4, 2, 3, 2), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2),
                                                        groups=2, dilation=(1, 2))),
    ("conv_transpose2d", (1, 3, 4, 4), (3, 2, 4, 4), dict(stride=2, padding=1)),
    ("conv_transpose3d", (1, 2, 3, 2, 3), (2, 2, 2, 2, 3), dict(stride=2, padding=(0, 1, 1), output_padding=1)),
]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,xs,ws,kw", CONV_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONV_CASES)])
def test_conv_matches_torch(name, xs, ws, kw, dtype):
    rng = np.random.default_rng(1)
    transposed = name.startswith("conv_transpose")
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[1] * kw.get("groups", 1) if transposed else ws[0])
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    (jo, *jg), (to, *tg) = _pair(getattr(F, name), getattr(torch.nn.functional, name), x, w, b, dtype, **kw)
    assert jo.dtype == dtype and jo.shape == to.shape
    np.testing.assert_allclose(jo, to, **tol)
    for a, e in zip(jg, tg):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, e, **tol)


def test_grad_fn_and_next_functions():
    x = jitgrad.randn(1, 2, 5, 5, requires_grad=True)
    w = jitgrad.randn(3, 2, 3, 3, requires_grad=True)
    b = jitgrad.randn(3, requires_grad=True)
    out = F.conv2d(x, w, b)
    assert type(out.grad_fn).__name__ == "ConvolutionBackward0"
    assert [type(f).__name__ for f, _ in out.grad_fn.next_functions] == ["AccumulateGrad"] * 3
    assert F.conv2d(x[0], w).grad_fn.name() == "SqueezeBackward1"       # unbatched, as torch


def test_double_backward_through_conv():
    """Second derivatives (create_graph) of conv and conv_transpose, by finite differences."""
    rng = np.random.default_rng(2)
    for fn, ws in ((F.conv2d, (3, 2, 2, 2)), (F.conv_transpose2d, (2, 3, 2, 2))):
        x = jitgrad.tensor(rng.standard_normal((1, 2, 4, 3)), requires_grad=True)
        w = jitgrad.tensor(rng.standard_normal(ws), requires_grad=True)
        b = jitgrad.tensor(rng.standard_normal(3), requires_grad=True)
        assert gradcheck(lambda *t: fn(*t, stride=2, padding=1), (x, w, b))
        assert gradgradcheck(lambda *t: fn(*t, stride=2, padding=1), (x, w, b))


def test_groups_and_strides_without_bias_float32_keeps_dtype():
    x = jitgrad.randn(2, 4, 6, 6, requires_grad=True)
    w = jitgrad.randn(8, 2, 3, 3, requires_grad=True)
    out = F.conv2d(x, w, stride=2, groups=2)
    out.sum().backward()
    assert out.dtype == jitgrad.float32 and x.grad.dtype == jitgrad.float32 and w.grad.shape == w.shape


ERRORS = [
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 3, 3, 3)), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 4, 3)), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 4, 9, 9)), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(4, 2, 3, 3), groups=3), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 4, 3, 3), bias=m.ones(4)), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 4, 3, 3), stride=2, padding="same"),
     RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 4, 3, 3), padding="foo"), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 4, 3, 3), stride=0), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 4, 3, 3), padding=-1), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(2, 4, 8, 8), m.ones(3, 4, 3, 3, dtype=m.float64)), RuntimeError),
    (lambda m: m.nn.functional.conv2d(m.ones(8, 8), m.ones(3, 4, 3, 3)), RuntimeError),
    (lambda m: m.nn.functional.conv_transpose2d(m.ones(2, 4, 8, 8), m.ones(4, 2, 3, 3), stride=2,
                                                output_padding=2), RuntimeError),
]


@pytest.mark.parametrize("make,exc", ERRORS, ids=range(len(ERRORS)))
def test_errors_as_torch(make, exc):
    with pytest.raises(exc) as ours:
        make(jitgrad)
    if torch is not None:
        with pytest.raises(exc) as theirs:
            make(torch)
        assert str(ours.value) == str(theirs.value)
    x = jitgrad.randn(1, 1, 4, 4, requires_grad=True)      # the engine is usable after the error
    F.conv2d(x, jitgrad.ones(1, 1, 2, 2)).sum().backward()
    assert x.grad.shape == (1, 1, 4, 4)


# ---- modules ----------------------------------------------------------------------------------
REPRS = [
    (lambda m: m.nn.Conv2d(1, 6, 5)),
    (lambda m: m.nn.Conv1d(2, 3, 3, padding="same", bias=False)),
    (lambda m: m.nn.Conv3d(1, 2, (1, 3, 3), stride=2, dilation=(1, 2, 2), groups=1)),
    (lambda m: m.nn.Conv2d(4, 4, 3, groups=2, padding_mode="reflect", padding=1)),
    (lambda m: m.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)),
    (lambda m: m.nn.ConvTranspose1d(2, 2, 3)),
]


@needs_torch
@pytest.mark.parametrize("make", REPRS, ids=range(len(REPRS)))
def test_module_repr_and_state_dict_as_torch(make):
    ours, theirs = make(jitgrad), make(torch)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]


def test_default_init_bounds():
    """kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight, as the bias."""
    jitgrad.manual_seed(0)
    for conv, fan_in in ((nn.Conv2d(6, 16, 5), 150), (nn.ConvTranspose2d(6, 4, 3), 4 * 9)):
        bound = 1 / math.sqrt(fan_in)
        for p in (conv.weight, conv.bias):
            v = p.detach().numpy()
            assert np.abs(v).max() <= bound and np.abs(v).max() > 0.8 * bound


def test_conv_transpose_output_size():
    m = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    x = jitgrad.randn(1, 2, 4, 4)
    assert tuple(m(x).shape) == (1, 3, 7, 7)
    assert tuple(m(x, output_size=[8, 8]).shape) == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="requested an output size of"):
        m(x, output_size=[10, 10])


@needs_torch
def test_module_forward_matches_torch_with_copied_weights():
    jm, tm = nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    jm.load_state_dict({k: jitgrad.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(jm(jitgrad.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_lenet_trains():
    """A LeNet-5 on a fixed batch: SGD steps bring the loss down (the whole chain differentiates)."""
    jitgrad.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(16 * 5 * 5, 32), nn.ReLU(), nn.Linear(32, 10))
    x = jitgrad.randn(16, 1, 28, 28)
    y = jitgrad.tensor(np.arange(16) % 10)
    opt = jitgrad.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
