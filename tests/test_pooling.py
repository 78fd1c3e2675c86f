"""Pooling, interpolation, unfold/fold, pixel shuffle, max_unpool, group/instance norm and their
modules: values and gradients against direct numpy references (always) and PyTorch (when
installed), in float32 and float64; torch's errors and reprs."""
import itertools

import numpy as np
import pytest

import jitgrad
from jitgrad import nn

F = nn.functional

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch oracle not installed")


# ---- references without torch ---------------------------------------------------------------
def test_max_pool2d_by_definition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    t = jitgrad.tensor(x, requires_grad=True)
    out, idx = F.max_pool2d(t, 3, 2, 1, return_indices=True)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    ref = np.array([[[[xp[n, c, 2 * i: 2 * i + 3, 2 * j: 2 * j + 3].max() for j in range(3)] for i in range(4)]
                     for c in range(3)] for n in range(2)])
    np.testing.assert_array_equal(out.detach().numpy(), ref)
    flat = x.reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.numpy().reshape(2, 3, -1), 2).reshape(ref.shape), ref)
    out.sum().backward()
    counts = np.zeros_like(flat)
    for n, c in itertools.product(range(2), range(3)):
        np.add.at(counts[n, c], idx.numpy()[n, c].reshape(-1), 1)
    np.testing.assert_array_equal(t.grad.numpy(), counts.reshape(x.shape))


def test_avg_pool2d_by_definition():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 5))
    for include in (True, False):
        out = F.avg_pool2d(jitgrad.tensor(x), 3, 2, 1, count_include_pad=include).numpy()
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        ones = np.pad(np.ones((5, 5)), 1)
        ref = np.array([[[[xp[0, c, 2 * i: 2 * i + 3, 2 * j: 2 * j + 3].sum()
                           / (9 if include else ones[2 * i: 2 * i + 3, 2 * j: 2 * j + 3].sum())
                           for j in range(3)] for i in range(3)] for c in range(2)]])
        np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_bilinear_align_corners_reproduces_a_linear_ramp():
    """Bilinear interpolation is exact on a function linear in both coordinates."""
    yy, xx = np.meshgrid(np.arange(4.0), np.arange(5.0), indexing="ij")
    x = (2 * yy - 3 * xx + 1)[None, None]
    out = F.interpolate(jitgrad.tensor(x), size=(7, 9), mode="bilinear", align_corners=True).numpy()
    oy, ox = np.meshgrid(np.linspace(0, 3, 7), np.linspace(0, 4, 9), indexing="ij")
    np.testing.assert_allclose(out[0, 0], 2 * oy - 3 * ox + 1, atol=1e-12)


def test_unfold_fold_are_adjoint():
    """<unfold(x), y> == <x, fold(y)> for every geometry (fold is unfold's transpose)."""
    rng = np.random.default_rng(2)
    for k, d, p, s in [(2, 1, 0, 1), (3, 2, 1, 2), ((2, 3), (1, 2), (1, 0), (2, 1))]:
        x = rng.standard_normal((2, 3, 7, 6))
        u = F.unfold(jitgrad.tensor(x), k, d, p, s)
        y = rng.standard_normal(tuple(u.shape))
        back = F.fold(jitgrad.tensor(y), (7, 6), k, d, p, s).numpy()
        np.testing.assert_allclose((u.numpy() * y).sum(), (x * back).sum(), rtol=1e-10)


def test_pixel_shuffle_round_trip():
    x = jitgrad.randn(2, 8, 3, 5)
    np.testing.assert_array_equal(F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2).numpy(), x.numpy())


# ---- against torch ----------------------------------------------------------------------------
CASES = [
    ("max_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    ("max_pool2d", (2, 3, 7, 6), dict(kernel_size=(3, 2), stride=(2, 1), padding=1)),
    ("max_pool2d", (2, 3, 8, 8), dict(kernel_size=2)),
    ("max_pool2d", (1, 2, 7, 7), dict(kernel_size=3, stride=2, ceil_mode=True, dilation=2, padding=1)),
    ("max_pool3d", (1, 2, 5, 4, 6), dict(kernel_size=(2, 3, 2), stride=2, padding=(1, 1, 0))),
    ("avg_pool1d", (2, 3, 9), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg_pool2d", (1, 2, 6, 6), dict(kernel_size=2, divisor_override=3)),
    ("avg_pool3d", (1, 2, 5, 4, 6), dict(kernel_size=2, stride=(1, 2, 2), padding=1)),
    ("adaptive_avg_pool1d", (2, 3, 10), dict(output_size=4)),
    ("adaptive_avg_pool2d", (2, 3, 7, 9), dict(output_size=(3, 4))),
    ("adaptive_avg_pool2d", (2, 3, 7, 9), dict(output_size=(None, 2))),
    ("adaptive_avg_pool3d", (1, 2, 5, 4, 6), dict(output_size=(2, 3, 4))),
    ("adaptive_max_pool1d", (2, 3, 10), dict(output_size=4)),
    ("adaptive_max_pool2d", (2, 3, 7, 9), dict(output_size=(3, 4))),
    ("adaptive_max_pool3d", (1, 2, 5, 4, 6), dict(output_size=2)),
    ("lp_pool2d", (1, 2, 6, 6), dict(norm_type=2, kernel_size=2)),
    ("lp_pool1d", (1, 2, 9), dict(norm_type=3, kernel_size=3, stride=2)),
    ("pixel_shuffle", (2, 12, 3, 4), dict(upscale_factor=2)),
    ("pixel_unshuffle", (2, 3, 6, 4), dict(downscale_factor=2)),
    ("unfold", (2, 3, 7, 6), dict(kernel_size=(3, 2), dilation=(1, 2), padding=1, stride=(2, 1))),
]
INTERP = [
    ((1, 2, 5), dict(scale_factor=2.5, mode="nearest")),
    ((1, 2, 5), dict(size=3, mode="nearest-exact")),
    ((1, 2, 5), dict(size=8, mode="linear")),
    ((1, 2, 5), dict(scale_factor=1.7, mode="linear", align_corners=True)),
    ((2, 2, 4, 5), dict(size=(7, 3), mode="nearest")),
    ((2, 2, 4, 5), dict(scale_factor=(1.5, 2), mode="bilinear")),
    ((2, 2, 4, 5), dict(size=(7, 9), mode="bilinear", align_corners=True)),
    ((2, 2, 4, 5), dict(scale_factor=0.6, mode="bilinear")),
    ((2, 2, 4, 5), dict(size=(7, 8), mode="bicubic")),
    ((2, 2, 4, 5), dict(scale_factor=2, mode="bicubic", align_corners=True)),
    ((2, 2, 7, 5), dict(size=(3, 2), mode="area")),
    ((1, 2, 3, 4, 3), dict(size=(5, 6, 4), mode="trilinear")),
    ((1, 2, 3, 4, 3), dict(scale_factor=2, mode="nearest")),
    ((2, 2, 4, 5), dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True)),
]
ALL = [(n, s, k) for n, s, k in CASES] + [("interpolate", s, k) for s, k in INTERP]


def _run(mod, name, x, dtype, kw):
    t = mod.tensor(x.astype(dtype), requires_grad=True)
    out = getattr(mod.nn.functional, name)(t, **kw)
    g = np.sin(np.arange(out.numel()) + 1.0).reshape(tuple(out.shape)).astype(dtype)
    out.backward(mod.tensor(g))
    return out.detach().numpy(), t.grad.numpy(), out.grad_fn.name()


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,shape,kw", ALL, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(ALL)])
def test_matches_torch(name, shape, kw, dtype):
    x = np.random.default_rng(3).standard_normal(shape)
    if name.startswith("lp_pool"):
        x = np.abs(x) + 0.5
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    jo, jg, jname = _run(jitgrad, name, x, dtype, kw)
    to, tg, tname = _run(torch, name, x, dtype, kw)
    assert jo.dtype == dtype and jg.dtype == dtype and jo.shape == to.shape
    np.testing.assert_allclose(jo, to, **tol)
    np.testing.assert_allclose(jg, tg, **tol)
    assert jname == tname


@needs_torch
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear"])
def test_interpolate_uint8_equals_torch(mode):
    """uint8 images as torch resizes them: nearest gathers; bilinear is torch's integer separable
    kernel (int16 weights, each axis rounded back to uint8), so every value must be identical."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (2, 3, 17, 23)).astype(np.uint8)
    x[0, 0, :4] = 255                                     # saturated and flat areas round too
    x[0, 1, 4:8] = 0
    corners = [None] if mode != "bilinear" else [False, True]
    kws = [dict(size=s) for s in [(31, 40), (9, 11), (17, 50), (5, 23), (34, 46), (1, 3)]] + \
          [dict(scale_factor=f) for f in [2, 0.5, 1.7, (1.3, 0.6), 1.02]] + \
          [dict(scale_factor=1.7, recompute_scale_factor=True)]
    for ac, kw in itertools.product(corners, kws):
        want = torch.nn.functional.interpolate(torch.from_numpy(x), mode=mode, align_corners=ac, **kw)
        got = F.interpolate(jitgrad.tensor(x), mode=mode, align_corners=ac, **kw)
        assert got.dtype == jitgrad.uint8
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=f"{ac} {kw}")
    if mode != "bilinear":                                # nearest: 1-d and 3-d as well
        for shape, size in (((2, 3, 9), 13), ((1, 2, 3, 4, 5), (5, 3, 7))):
            x = rng.integers(0, 256, shape).astype(np.uint8)
            want = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode=mode)
            np.testing.assert_array_equal(F.interpolate(jitgrad.tensor(x), size=size, mode=mode).numpy(),
                                          want.numpy())


@needs_torch
def test_nearest_keeps_an_unchanged_size_whatever_the_scale():
    """torch's nearest copies a dim whose size does not change (scale_factor 1.1 on 7 -> 7)."""
    x = np.arange(2 * 7 * 4, dtype=np.float32).reshape(1, 2, 7, 4)
    want = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=1.1, mode="nearest")
    np.testing.assert_array_equal(F.interpolate(jitgrad.tensor(x), scale_factor=1.1, mode="nearest").numpy(),
                                  want.numpy())


@needs_torch
def test_max_pool_indices_and_unpool_match_torch():
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6))
    x[0, 0, 2:4, 2:4] = 1.5              # ties: the first maximum, as torch
    x[1, 1, 0, 0] = np.nan               # nan wins
    res = []
    for mod in (jitgrad, torch):
        t = mod.tensor(x, requires_grad=True)
        out, idx = mod.nn.functional.max_pool2d(t, 2, return_indices=True)
        up = mod.nn.functional.max_unpool2d(out, idx, 2, output_size=(7, 6))
        up.backward(mod.ones_like(up))
        res.append((out.detach().numpy(), idx.numpy(), up.detach().numpy(), t.grad.numpy(), up.grad_fn.name()))
    for a, b in zip(*res):
        if isinstance(a, str):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)


@needs_torch
def test_fold_matches_torch():
    y = np.random.default_rng(5).standard_normal((2, 12, 10))
    res = []
    for mod in (jitgrad, torch):
        t = mod.tensor(y, requires_grad=True)
        out = mod.nn.functional.fold(t, (4, 5), 2, padding=(1, 0), stride=(1, 2))
        (out * out).sum().backward()
        res.append((out.detach().numpy(), t.grad.numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@needs_torch
def test_group_and_instance_norm_match_torch():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4, 5, 6))
    res = []
    for mod in (jitgrad, torch):
        gn, inn = mod.nn.GroupNorm(2, 4).double(), mod.nn.InstanceNorm2d(4, affine=True, track_running_stats=True)
        inn = inn.double()
        t = mod.tensor(x, requires_grad=True)
        out = gn(t) * 2 + inn(t)
        out.backward(mod.tensor(np.cos(np.arange(out.numel())).reshape(x.shape)))
        inn.eval()
        ev = inn(t)
        res.append((out.detach().numpy(), t.grad.numpy(), gn.weight.grad.numpy(), inn.bias.grad.numpy(),
                    inn.running_mean.numpy(), inn.running_var.numpy(), ev.detach().numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


ERRORS = [
    lambda m: m.nn.functional.max_pool2d(m.ones(2, 4, 8, 8), 2, padding=2),
    lambda m: m.nn.functional.avg_pool2d(m.ones(2, 4, 8, 8), 2, padding=2),
    lambda m: m.nn.functional.max_pool2d(m.ones(2, 4, 8, 8), 10),
    lambda m: m.nn.functional.avg_pool2d(m.ones(2, 4, 8, 8), 10),
    lambda m: m.nn.functional.max_pool2d(m.ones(2, 4, 8, 8), 2, stride=0),
    lambda m: m.nn.functional.max_pool2d(m.ones(8), 2),
    lambda m: m.nn.functional.max_pool2d(m.ones(2, 4, 8, 8), (2, 2, 2)),
    lambda m: m.nn.functional.adaptive_avg_pool2d(m.ones(2, 4, 8, 8), (2, 2, 2)),
    lambda m: m.nn.functional.pixel_shuffle(m.ones(2, 4, 8, 8), 3),
    lambda m: m.nn.functional.interpolate(m.ones(2, 4, 8, 8), scale_factor=2, mode="linear"),
    lambda m: m.nn.functional.interpolate(m.ones(2, 4, 8, 8), scale_factor=2, mode="nearest", align_corners=True),
    lambda m: m.nn.functional.interpolate(m.ones(2, 4, 8, 8)),
    lambda m: m.nn.functional.interpolate(m.ones(2, 4, 8, 8), size=4, scale_factor=2),
    lambda m: m.nn.functional.interpolate(m.ones(2, 4, 8, 8), size=3, mode="foo"),
    lambda m: m.nn.functional.fold(m.ones(2, 7, 12), (4, 5), 2),
    lambda m: m.nn.functional.max_pool2d(m.ones(1, 2, 4, 4), 2, dilation=0),
    lambda m: m.nn.functional.max_pool3d(m.ones(1, 2, 4, 4, 4), 2, dilation=0),
    lambda m: m.nn.functional.max_pool2d(m.ones(1, 2, 4, 4), 2, padding=-1),
    lambda m: m.nn.functional.interpolate(m.ones(1, 2, 4), size=0),
    lambda m: m.nn.functional.interpolate(m.ones(1, 2, 4, 4), size=0),
    lambda m: m.nn.functional.max_unpool2d(m.ones(1, 1, 2, 2), m.tensor([[[[0, 1], [2, 99]]]]), 2),
]


@pytest.mark.parametrize("make", ERRORS, ids=range(len(ERRORS)))
def test_errors_as_torch(make):
    with pytest.raises((RuntimeError, ValueError, NotImplementedError)) as ours:
        make(jitgrad)
    if torch is not None:
        with pytest.raises((RuntimeError, ValueError, NotImplementedError)) as theirs:
            make(torch)
        assert type(ours.value) is type(theirs.value)
        assert str(ours.value) == str(theirs.value)


REPRS = [
    lambda m: m.nn.MaxPool2d(2), lambda m: m.nn.MaxPool1d(3, 2, 1, ceil_mode=True),
    lambda m: m.nn.AvgPool2d(3, 2, 1), lambda m: m.nn.AvgPool1d(3), lambda m: m.nn.AdaptiveAvgPool2d((1, 1)),
    lambda m: m.nn.AdaptiveMaxPool2d(2), lambda m: m.nn.MaxUnpool2d(2), lambda m: m.nn.LPPool2d(2, 3),
    lambda m: m.nn.Upsample(scale_factor=2), lambda m: m.nn.Upsample(size=(3, 4), mode="bilinear"),
    lambda m: m.nn.PixelShuffle(2), lambda m: m.nn.PixelUnshuffle(3), lambda m: m.nn.Fold((4, 4), 2),
    lambda m: m.nn.Unfold(2, padding=1), lambda m: m.nn.GroupNorm(2, 4), lambda m: m.nn.InstanceNorm2d(3),
    lambda m: m.nn.InstanceNorm1d(3, affine=True), lambda m: m.nn.Dropout2d(),
]


@needs_torch
@pytest.mark.parametrize("make", REPRS, ids=range(len(REPRS)))
def test_module_reprs_and_state_dicts_as_torch(make):
    ours, theirs = make(jitgrad), make(torch)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_empty_adaptive_output():
    """output_size 0 gives an empty result (as torch) whose backward leaves zero gradients."""
    for fn in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
        x = jitgrad.ones(1, 2, 4, 4, requires_grad=True)
        out = fn(x, (0, 2))
        assert tuple(out.shape) == (1, 2, 0, 2)
        out.sum().backward()
        assert not x.grad.numpy().any()


def test_modules_run_the_functionals():
    x = jitgrad.randn(2, 4, 8, 8, requires_grad=True)
    net = nn.Sequential(nn.MaxPool2d(2), nn.Upsample(scale_factor=2, mode="bilinear"), nn.AvgPool2d(2),
                        nn.AdaptiveAvgPool2d(3), nn.PixelShuffle(2), nn.GroupNorm(1, 1), nn.InstanceNorm2d(1))
    out = net(x)
    assert tuple(out.shape) == (2, 1, 6, 6)
    out.sum().backward()
    assert x.grad is not None and np.isfinite(x.grad.numpy()).all()


def test_avg_pool3d_refuses_an_input_smaller_than_its_kernel():
    """PyTorch's 3-d average pooling checks the input against the kernel before padding (its 1-d and
    2-d ones do not); found by a differential fuzz."""
    with pytest.raises(RuntimeError, match=r"input image \(T: 2 H: 4 W: 4\) smaller than kernel size "
                                           r"\(kT: 3 kH: 3 kW: 3\)"):
        F.avg_pool3d(jitgrad.ones(2, 1, 2, 4, 4), 3, 2, 1)
    assert F.avg_pool2d(jitgrad.ones(2, 1, 2, 2), 3, 2, 1).shape == (2, 1, 1, 1)


@pytest.mark.parametrize("compiled", [False, True])
def test_max_pool_index_of_nan_and_minus_inf_windows_as_torch(compiled):
    """PyTorch's kernel starts from -inf and takes a tap if val > max or isnan(val): a window
    holding nans points at its last nan (its gradient goes there), an all -inf window next to
    padding at its first input tap. The same in eager, the compiled forward kernel, and the
    adaptive pools."""
    nan, inf = np.nan, np.inf
    x = np.array([[nan, 1., nan, 2.], [3., nan, 5., 4.], [-inf, -inf, 0., 0.]])[None]
    t = jitgrad.tensor(x, requires_grad=True)

    def step():
        t.grad = None
        out = F.max_pool1d(t, 2, 2, 1)          # windows [pad, a], [b, c], [d, pad]
        out.sum().backward()
        return out
    run = jitgrad.compile(step) if compiled else step
    for _ in range(2):
        out = run()
    _, idx = F.max_pool1d(t, 2, 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx.numpy()[0], [[0, 2, 3], [0, 1, 3], [0, 2, 3]])
    np.testing.assert_array_equal(out.detach().numpy()[0], [[nan, nan, 2.], [3., nan, 4.], [-inf, 0., 0.]])
    np.testing.assert_array_equal(t.grad.numpy()[0], [[1, 0, 1, 1], [1, 1, 0, 1], [1, 0, 1, 1]])
    _, idx = F.adaptive_max_pool1d(t, 1, return_indices=True)
    np.testing.assert_array_equal(idx.numpy()[0, :, 0], [2, 1, 2])


def test_adaptive_max_pool_and_max_unpool_replay_compiled():
    """Their forward kernels replay a step as eager computes it; max_unpool's indices are
    positions the replay reuses, so a captured index tensor is guarded by its values (an in-place
    change re-traces) and one computed inside the function makes the step run eagerly."""
    import warnings
    rng = np.random.default_rng(0)
    x = jitgrad.tensor(rng.standard_normal((2, 3, 7, 9)), requires_grad=True)
    x3 = jitgrad.tensor(rng.standard_normal((2, 2, 5, 4, 6)), requires_grad=True)
    _, idx = F.max_pool2d(x.detach(), 3, 2, return_indices=True)
    y = jitgrad.tensor(rng.standard_normal(idx.shape), requires_grad=True)

    def step():
        for t in (x, x3, y):
            t.grad = None
        loss = (F.adaptive_max_pool2d(x, (3, 4)) ** 2).sum() + F.adaptive_max_pool3d(x3, (2, 3, 4)).sum() \
            + (F.max_unpool2d(y, idx, 3, 2, output_size=(7, 9)) ** 2).sum()
        loss.backward()
        return loss.detach()

    def grads():
        return [t.grad.numpy().copy() for t in (x, x3, y)]
    want, want_grads = step(), grads()
    compiled = jitgrad.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            got = compiled()
    assert not any(isinstance(v, str) for v in compiled.traces.values())
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    for a, b in zip(grads(), want_grads):
        np.testing.assert_array_equal(a, b)
    idx[0, 0, 0, 0] = idx[0, 0, 0, 1]             # an in-place change of the captured indices
    want, want_grads = step(), grads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = compiled()
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    for a, b in zip(grads(), want_grads):
        np.testing.assert_array_equal(a, b)

    def inside():
        y.grad = None
        _, i = F.max_pool2d(x.detach(), 3, 2, return_indices=True)
        F.max_unpool2d(y, i, 3, 2, output_size=(7, 9)).sum().backward()
    with pytest.warns(UserWarning, match="runs eagerly"):
        jitgrad.compile(inside)()


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, dilation=2),
                                dict(kernel_size=(2, 3), stride=1, padding=1)])
def test_max_pool_replay_equals_eager_with_ties_and_nans(kw):
    """The compiled forward's fast pass over windows without padding ignores nan in its selects
    and redoes every window by PyTorch's rule once it has read one: ties pick the first tap, a
    nan window its last nan, in the replay as eagerly; the gradients land alike."""
    rng = np.random.default_rng(0)
    for with_nan in (False, True):
        x = np.round(rng.standard_normal((2, 3, 9, 10)) * 2)      # many ties
        if with_nan:
            x[0, 1, 4, 4] = x[1, 2, 0, 7] = x[1, 2, 1, 7] = np.nan
        t = jitgrad.tensor(x, requires_grad=True)

        def step():
            t.grad = None
            out, idx = F.max_pool2d(t, return_indices=True, **kw)
            (out * jitgrad.arange(out.numel(), dtype=out.dtype).reshape(out.shape)).sum().backward()
            return out
        eager = step()
        want_grad = t.grad.numpy().copy()
        run = jitgrad.compile(step, fullgraph=True)
        for _ in range(2):
            got = run()
        np.testing.assert_array_equal(got.detach().numpy(), eager.detach().numpy())
        np.testing.assert_array_equal(t.grad.numpy(), want_grad)
