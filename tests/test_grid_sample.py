"""F.grid_sample and F.affine_grid: hand-computed values and identities (always), and values,
gradients (input, grid, theta), errors and warnings against PyTorch when it is installed, over
modes x padding modes x align_corners x float32/float64, with positions outside the input, on
pixel centres and on the borders (where torch's one-sided gradients are the spec)."""
import itertools
import warnings

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
MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")
ALIGN_WARNING = "Default grid_sample and affine_grid behavior has changed to align_corners=False"


def _t(a, dtype=jitgrad.float64, requires_grad=False):
    return jitgrad.tensor(np.asarray(a), dtype=dtype, requires_grad=requires_grad)


# ---- without torch ----------------------------------------------------------------------------
def test_bilinear_by_hand_on_2x2():
    x = _t([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
    # align_corners=True: -1 and 1 are the corner pixels' centres; (0, 0) is the middle
    grid = _t([[[[-1.0, -1.0], [1.0, -1.0], [0.0, 0.0], [0.5, -1.0], [-1.0, 1.0]]]], requires_grad=True)
    out = F.grid_sample(x, grid, align_corners=True)
    np.testing.assert_allclose(out.detach().numpy().ravel(), [1.0, 2.0, 2.5, 1.75, 3.0])
    out.sum().backward()
    # d out / d x at (0.5, -1): ix = 0.75 -> weights 0.25 (col 0), 0.75 (col 1)
    np.testing.assert_allclose(x.grad.numpy().ravel(), [1 + 0.25 + 0.25, 1 + 0.25 + 0.75, 0.25 + 1, 0.25])
    # d out / d gx = (right - left) * (W - 1) / 2 = 1 * 0.5 along rows with values 1|2
    np.testing.assert_allclose(grid.grad.numpy()[0, 0, 3], [0.5, 1.0])


def test_zeros_padding_and_align_false_by_hand():
    x = _t([[[[1.0, 2.0], [3.0, 4.0]]]])
    # align_corners=False: pixel centres at -0.5 and 0.5; -1 is the outer edge (half weight to 0)
    grid = _t([[[[-0.5, -0.5], [-1.0, -0.5], [-1.5, -0.5], [5.0, 0.0], [0.5, 0.5]]]])
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    np.testing.assert_allclose(out.numpy().ravel(), [1.0, 0.5, 0.0, 0.0, 4.0])
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    np.testing.assert_allclose(out.numpy().ravel(), [1.0, 1.0, 1.0, 3.0, 4.0])
    out = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    np.testing.assert_allclose(out.numpy().ravel(), [1.0, 1.0, 0.0, 0.0, 4.0])


def test_reflection_by_hand():
    x = _t([[[[0.0, 1.0, 2.0]]]])
    # align_corners=True on width 3 (ix = gx + 1) reflects about 0 and 2: ix 2.5 -> 1.5, -1 -> 1, 4 -> 0
    grid = _t([[[[1.5, 0.0], [-2.0, 0.0], [3.0, 0.0]]]])
    out = F.grid_sample(x, grid, padding_mode="reflection", align_corners=True)
    np.testing.assert_allclose(out.numpy().ravel(), [1.5, 1.0, 0.0])


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_identity_theta_gives_the_input(mode, align):
    rng = np.random.default_rng(0)
    x = _t(rng.standard_normal((2, 3, 5, 4)))
    theta = _t(np.tile(np.eye(2, 3), (2, 1, 1)))
    grid = F.affine_grid(theta, (2, 3, 5, 4), align_corners=align)
    out = F.grid_sample(x, grid, mode=mode, align_corners=align)
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-12)


def test_identity_theta_3d():
    rng = np.random.default_rng(1)
    x = _t(rng.standard_normal((1, 2, 3, 4, 5)))
    grid = F.affine_grid(_t(np.eye(3, 4)[None]), (1, 2, 3, 4, 5), align_corners=False)
    assert grid.shape == (1, 3, 4, 5, 3)
    for mode in ("bilinear", "nearest"):
        out = F.grid_sample(x, grid, mode=mode, align_corners=False)
        np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-12)


def test_affine_grid_values_and_theta_gradient():
    theta = _t([[[2.0, 0.0, 0.5], [0.0, 1.0, -1.0]]], requires_grad=True)
    grid = F.affine_grid(theta, (1, 1, 2, 3), align_corners=True)
    xs, ys = np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 1.0])
    np.testing.assert_allclose(grid.detach().numpy()[0], np.stack([2 * xs + 0.5, ys - 1.0], -1))
    grid.sum().backward()
    # d sum / d theta[i] = sum over the grid of (x, y, 1)
    np.testing.assert_allclose(theta.grad.numpy()[0], [[0.0, 0.0, 6.0], [0.0, 0.0, 6.0]])


def test_gradcheck_and_gradgradcheck_bilinear():
    rng = np.random.default_rng(2)
    for padding, align in itertools.product(PADDINGS, (False, True)):
        x = _t(rng.standard_normal((1, 2, 3, 4)), requires_grad=True)
        # away from the kinks (integer pixel positions, borders) finite differences are smooth
        grid = _t(rng.uniform(-0.9, 0.9, (1, 2, 3, 2)), requires_grad=True)
        fn = lambda a, g: F.grid_sample(a, g, padding_mode=padding, align_corners=align)  # noqa: E731
        assert gradcheck(fn, (x, grid))
        assert gradgradcheck(fn, (x, grid))


def test_gradcheck_bicubic_and_3d_and_affine():
    rng = np.random.default_rng(3)
    x = _t(rng.standard_normal((1, 1, 4, 4)), requires_grad=True)
    grid = _t(rng.uniform(-0.8, 0.8, (1, 2, 2, 2)), requires_grad=True)
    assert gradcheck(lambda a, g: F.grid_sample(a, g, mode="bicubic", align_corners=False), (x, grid))
    x3 = _t(rng.standard_normal((1, 2, 3, 3, 4)), requires_grad=True)
    grid3 = _t(rng.uniform(-0.8, 0.8, (1, 2, 1, 2, 3)), requires_grad=True)
    assert gradcheck(lambda a, g: F.grid_sample(a, g, align_corners=True), (x3, grid3))
    theta = _t(rng.standard_normal((2, 2, 3)), requires_grad=True)
    assert gradcheck(lambda t: F.affine_grid(t, (2, 1, 3, 2), align_corners=False), (theta,))


def test_nearest_gives_a_zero_grid_gradient():
    x = _t(np.arange(4.0).reshape(1, 1, 2, 2))
    grid = _t([[[[0.3, -0.2]]]], requires_grad=True)
    out = F.grid_sample(x, grid, mode="nearest", align_corners=False)
    assert out.requires_grad
    out.sum().backward()
    np.testing.assert_array_equal(grid.grad.numpy(), np.zeros((1, 1, 1, 2)))


def test_nan_and_huge_coordinates_do_not_crash():
    x = _t(np.arange(6.0).reshape(1, 1, 2, 3), requires_grad=True)
    grid = _t([[[[np.nan, 0.0], [1e30, 0.0], [-np.inf, 0.0]]]], requires_grad=True)
    out = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    assert np.isnan(out.detach().numpy()[0, 0, 0, 0]) and out.detach().numpy()[0, 0, 0, 1] == 0
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    out = F.grid_sample(x, grid, padding_mode="border", align_corners=True)
    np.testing.assert_allclose(out.detach().numpy().ravel(), [1.5, 3.5, 1.5])     # nan: the left border


def test_empty_batch_channels_and_outputs():
    for xs, gs, want in (((0, 2, 3, 3), (0, 2, 2, 2), (0, 2, 2, 2)), ((1, 0, 3, 3), (1, 2, 2, 2), (1, 0, 2, 2)),
                         ((1, 2, 3, 3), (1, 0, 2, 2), (1, 2, 0, 2))):
        x = _t(np.ones(xs), requires_grad=True)
        out = F.grid_sample(x, _t(np.zeros(gs)), align_corners=False)
        assert out.shape == want
        out.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros(xs))


def test_warning_when_align_corners_is_not_given():
    x, grid = _t(np.ones((1, 1, 2, 2))), _t(np.zeros((1, 1, 1, 2)))
    with pytest.warns(UserWarning, match=ALIGN_WARNING) as rec:
        F.grid_sample(x, grid)
    assert rec[0].filename == __file__
    with pytest.warns(UserWarning, match=ALIGN_WARNING):
        F.affine_grid(_t(np.eye(2, 3)[None]), (1, 1, 2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.grid_sample(x, grid, align_corners=False)


def test_compile_runs_grid_sample_eagerly_with_the_reason():
    x = _t(np.ones((1, 1, 2, 2)), requires_grad=True)
    step = jitgrad.compile(lambda g: F.grid_sample(x, g, align_corners=False).sum(), fullgraph=True)
    with pytest.raises(Exception, match="grid_sample"):
        step(_t(np.zeros((1, 1, 1, 2))))


# ---- against torch ----------------------------------------------------------------------------
SPECIAL = np.array([-3.0, -1.5, -1.25, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5,
                    2.75, 7.0, 1e30, -1e30])


def _both(x, grid, dtype, **kw):
    """out, input grad and grid grad of jitgrad and torch for a random weighted sum of the output."""
    jd, td = (jitgrad.float32, torch.float32) if dtype == "float32" else (jitgrad.float64, torch.float64)
    jx, jg = _t(x, jd, True), _t(grid, jd, True)
    tx, tg = torch.tensor(x, dtype=td, requires_grad=True), torch.tensor(grid, dtype=td, requires_grad=True)
    jo, to = F.grid_sample(jx, jg, **kw), torch.nn.functional.grid_sample(tx, tg, **kw)
    w = np.random.default_rng(9).standard_normal(tuple(to.shape))
    (jo * _t(w, jd)).sum().backward()
    (to * torch.tensor(w, dtype=td)).sum().backward()
    assert str(jo.dtype).split(".")[-1] == str(to.dtype).split(".")[-1]
    return ((jo.detach().numpy(), to.detach().numpy()), (jx.grad.numpy(), tx.grad.numpy()),
            (jg.grad.numpy(), tg.grad.numpy()))


def _close(pairs, dtype):
    tol = 2e-5 if dtype == "float32" else 1e-11
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_2d_against_torch(mode, padding, align, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 5))
    kw = dict(mode=mode, padding_mode=padding, align_corners=align)
    _close(_both(x, rng.uniform(-1.6, 1.6, (2, 6, 7, 2)), dtype, **kw), dtype)
    # every pair of special coordinates: pixel centres, borders, just outside, far outside
    grid = np.stack(np.meshgrid(SPECIAL, SPECIAL, indexing="ij"), -1).reshape(1, 1, -1, 2)
    _close(_both(x[:1], grid, dtype, **kw), dtype)


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_3d_against_torch(mode, padding, align, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 3, 4, 5))
    kw = dict(mode=mode, padding_mode=padding, align_corners=align)
    _close(_both(x, rng.uniform(-1.6, 1.6, (2, 3, 4, 2, 3)), dtype, **kw), dtype)
    grid = np.stack(np.meshgrid(SPECIAL[::2], SPECIAL[1::2], SPECIAL[::3], indexing="ij"), -1)
    _close(_both(x[:1], grid.reshape(1, 1, 1, -1, 3), dtype, **kw), dtype)


@needs_torch
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_2d_nonfinite_coordinates_against_torch(mode, padding):
    """nan and +-inf as torch's vectorised kernel. Backward only where torch's survives: its
    border/reflection backward reads out of bounds (crashes) on nan and reflection on inf."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 3, 4))
    for value, axis, align in itertools.product((np.nan, np.inf, -np.inf), (0, 1), (False, True)):
        grid = np.full((1, 1, 2, 2), 0.3)
        grid[0, 0, 0, axis] = value
        kw = dict(mode=mode, padding_mode=padding, align_corners=align)
        backward_ok = mode != "bilinear" or padding == "zeros" or (padding == "border" and not np.isnan(value))
        if backward_ok:
            for got, want in _both(x, grid, "float64", **kw):
                np.testing.assert_allclose(got, want, atol=1e-12, equal_nan=True)
        else:
            got = F.grid_sample(_t(x), _t(grid), **kw).numpy()
            want = torch.nn.functional.grid_sample(torch.tensor(x), torch.tensor(grid), **kw).numpy()
            np.testing.assert_allclose(got, want, atol=1e-12, equal_nan=True)


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (1, 1, 1, 3), (2, 1, 5, 1), (2, 2, 3, 4, 5), (1, 1, 1, 2, 3)])
def test_affine_grid_against_torch(size, align, dtype):
    rng = np.random.default_rng(7)
    d = len(size) - 2
    theta = rng.standard_normal((size[0], d, d + 1))
    jd, td = (jitgrad.float32, torch.float32) if dtype == "float32" else (jitgrad.float64, torch.float64)
    jt, tt = _t(theta, jd, True), torch.tensor(theta, dtype=td, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jo, to = F.affine_grid(jt, size, align_corners=align), torch.nn.functional.affine_grid(tt, size, align)
    w = rng.standard_normal(tuple(to.shape))
    (jo * _t(w, jd)).sum().backward()
    (to * torch.tensor(w, dtype=td)).sum().backward()
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(jo.detach().numpy(), to.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(jt.grad.numpy(), tt.grad.numpy(), rtol=tol, atol=tol)


def _error(fn):
    try:
        fn()
    except Exception as e:           # noqa: BLE001 - the type and message are what is compared
        return type(e).__name__, str(e).replace("torch.", "jitgrad.")
    return None


@needs_torch
def test_errors_match_torch():
    rng = np.random.default_rng(8)

    def pair(shape, dtype="float32"):
        a = rng.uniform(-1, 1, shape)
        return (_t(a, getattr(jitgrad, dtype)), torch.tensor(a, dtype=getattr(torch, dtype)))

    cases = [
        ((2, 3, 4, 5), (2, 6, 7, 2), dict(mode="foo")),
        ((2, 3, 4, 5), (2, 6, 7, 2), dict(padding_mode="foo")),
        ((2, 3, 4, 5), (2, 6, 7, 2), dict(mode=None)),
        ((3, 4, 5), (6, 7, 2), {}),
        ((2, 3, 4, 5), (6, 7, 2), {}),
        ((1, 3, 4, 5), (2, 6, 7, 2), {}),
        ((2, 3, 4, 5), (2, 6, 7, 3), {}),
        ((2, 3, 4), (2, 3, 2), {}),
        ((2, 3, 4, 5), (2, 3, 2, 2, 2), {}),
        ((2, 3, 4, 5, 6), (2, 3, 2, 2, 3), dict(mode="bicubic")),
        ((2, 3, 4, 5, 6), (2, 3, 2, 2, 2), {}),
        ((1, 2, 3, 4, 5, 6), (1, 2, 6, 7, 8, 4), {}),
        ((2, 3, 0, 5), (2, 6, 7, 2), {}),
        ((2, 3, 4, 5), (2, 6, 7, 2), dict(align_corners=3)),
    ]
    for xs, gs, kw in cases:
        kw = {"align_corners": False, **kw}
        (jx, tx), (jg, tg) = pair(xs), pair(gs)
        want = _error(lambda: torch.nn.functional.grid_sample(tx, tg, **kw))
        assert want is not None, (xs, gs, kw)
        assert _error(lambda: F.grid_sample(jx, jg, **kw)) == want
    for xd, gd in (("float32", "float64"), ("float64", "float32"), ("int32", "float32"), ("float32", "int64")):
        (jx, tx), (jg, tg) = pair((1, 1, 2, 2), xd), pair((1, 1, 1, 2), gd)
        want = _error(lambda: torch.nn.functional.grid_sample(tx, tg, align_corners=False))
        assert _error(lambda: F.grid_sample(jx, jg, align_corners=False)) == want
    (jx, tx), (jg, tg) = pair((1, 1, 2, 2)), pair((1, 1, 1, 2))
    for a, b in ((jx.numpy(), jg), (jx, [1.0])):
        want = _error(lambda: torch.nn.functional.grid_sample(
            tx if isinstance(a, jitgrad.Tensor) else a, tg if isinstance(b, jitgrad.Tensor) else b,
            align_corners=False))
        assert _error(lambda: F.grid_sample(a, b, align_corners=False)) == want


@needs_torch
def test_affine_grid_errors_and_warnings_match_torch():
    theta = np.random.default_rng(9).standard_normal((2, 2, 3))
    cases = [((2, 2, 3), (3, 3, 4, 5)), ((2, 2, 3), (1, 3, 4, 5)), ((2, 2, 3), (2, 3, 4, 5, 6)),
             ((2, 2, 3), (2, 3, 4)), ((2, 2, 3), (2, 3, 0, 5)), ((2, 2, 3), (2, 0, 4, 5)),
             ((2, 2, 3), [2, 3, -1, 5]), ((2, 3), (2, 3, 4, 5)), ((2, 3, 4), (3, 3, 4, 5, 6))]
    for shape, size in cases:
        a = np.resize(theta, shape)
        want = _error(lambda: torch.nn.functional.affine_grid(torch.tensor(a), size, align_corners=False))
        assert want is not None, (shape, size)
        assert _error(lambda: F.affine_grid(_t(a), size, align_corners=False)) == want
    want = _error(lambda: torch.nn.functional.affine_grid(torch.tensor(theta).int(), (2, 3, 4, 5), False))
    assert _error(lambda: F.affine_grid(_t(theta).int(), (2, 3, 4, 5), False)) == want
    size = jitgrad.Size((2, 3, 0, 5))
    assert _error(lambda: F.affine_grid(_t(theta), size, False)) == _error(
        lambda: torch.nn.functional.affine_grid(torch.tensor(theta), torch.Size(size), False))
    with pytest.warns(UserWarning, match="unit-size grids when align_corners=True"):
        out = F.affine_grid(_t(theta), (2, 3, 1, 5), align_corners=True)
    assert out.shape == (2, 1, 5, 2)


@needs_torch
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_second_derivatives_against_torch(mode, padding):
    rng = np.random.default_rng(10)
    x, grid = rng.standard_normal((1, 2, 3, 4)), rng.uniform(-1.3, 1.3, (1, 2, 3, 2))
    kw = dict(mode=mode, padding_mode=padding, align_corners=False)
    jx, jg = _t(x, requires_grad=True), _t(grid, requires_grad=True)
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(grid, requires_grad=True)
    jgx, jgg = jitgrad.autograd.grad(F.grid_sample(jx, jg, **kw).sin().sum(), (jx, jg), create_graph=True)
    tgx, tgg = torch.autograd.grad(torch.nn.functional.grid_sample(tx, tg, **kw).sin().sum(), (tx, tg),
                                   create_graph=True)
    jr = jitgrad.autograd.grad((jgx * jgx).sum() + (jgg * jgg).sum(), (jx, jg))
    tr = torch.autograd.grad((tgx * tgx).sum() + (tgg * tgg).sum(), (tx, tg))
    for a, b in zip(jr, tr):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-9)


@needs_torch
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", PADDINGS)
def test_3d_nonfinite_coordinates_against_torch(mode, padding):
    """nan and +-inf as torch's scalar 3-d kernel: out-of-range corners skipped (0, not nan), and
    no gradient from a position its backward cannot place (nan; inf under reflection)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 2, 2, 3, 4))
    for value, axis, align in itertools.product((np.nan, np.inf, -np.inf), (0, 1, 2), (False, True)):
        grid = np.full((1, 1, 1, 2, 3), 0.3)
        grid[0, 0, 0, 0, axis] = value
        for got, want in _both(x, grid, "float64", mode=mode, padding_mode=padding, align_corners=align):
            np.testing.assert_allclose(got, want, atol=1e-12, equal_nan=True)
