"""Top-level torch functions jitgrad writes as compositions of its ops (jitgrad/ops/composite.py)
plus erfc and atan2: values and gradients against PyTorch in float32 and float64, and by hand
without it. Their grad_fn names are those of the ops they run."""
import math
import warnings

import numpy as np
import pytest

import jitgrad

try:
    import torch
except ImportError:
    torch = None

R = np.random.default_rng(7)
A = R.standard_normal((3, 4))
B = R.standard_normal((3, 4))
V3 = R.standard_normal((2, 3))
W3 = R.standard_normal((2, 3))
SPECIAL = np.array([[0.0, -0.0, 1.5, -2.0], [np.inf, -np.inf, np.nan, 3.0]])

# name -> (arrays, call(lib, *tensors)); the arrays become tensors requiring grad (float ones)
CASES = {
    "broadcast_to": ([A[:1]], lambda t, x: t.broadcast_to(x, (2, 3, 4))),
    "broadcast_tensors": ([A[:, :1], B[:1]], lambda t, x, y: t.broadcast_tensors(x, y)[0] * t.broadcast_tensors(x, y)[1]),
    "movedim": ([A.reshape(3, 2, 2)], lambda t, x: t.movedim(x, (0, 2), (2, 0))),
    "moveaxis method": ([A.reshape(3, 2, 2)], lambda t, x: x.moveaxis(-1, 0)),
    "swapaxes": ([A], lambda t, x: t.swapaxes(x, 0, 1)),
    "swapdims method": ([A], lambda t, x: x.swapdims(1, 0)),
    "ravel": ([A.T], lambda t, x: t.ravel(x)),
    "positive": ([A], lambda t, x: t.positive(x)),
    "fliplr": ([A], lambda t, x: t.fliplr(x)),
    "flipud": ([A], lambda t, x: t.flipud(x)),
    "rot90": ([A], lambda t, x: t.rot90(x)),
    "rot90 k=2": ([A], lambda t, x: t.rot90(x, 2, [1, 0])),
    "rot90 k=-1": ([A.reshape(3, 2, 2)], lambda t, x: x.rot90(-1, [0, 2])),
    "atleast_1d": ([np.array(2.0)], lambda t, x: t.atleast_1d(x)),
    "atleast_2d": ([A[0]], lambda t, x: t.atleast_2d(x)),
    "atleast_3d": ([A[0]], lambda t, x: t.atleast_3d(x)),
    "atleast_3d of 2-d": ([A], lambda t, x: t.atleast_3d(x)),
    "atleast_2d list": ([A[0], np.array(1.0)], lambda t, x, y: t.cat([v.reshape(-1) for v in t.atleast_2d([x, y])])),
    "column_stack": ([A[:, 0], B[:, :2]], lambda t, x, y: t.column_stack([x, y])),
    "dstack": ([A, B], lambda t, x, y: t.dstack([x, y])),
    "tensor_split sections": ([A], lambda t, x: t.tensor_split(x, 3, 1)[1]),
    "tensor_split indices": ([A], lambda t, x: t.cat(t.tensor_split(x, [1, 3, 9], dim=1), 1)),
    "hsplit": ([A], lambda t, x: t.hsplit(x, 2)[1]),
    "vsplit": ([A], lambda t, x: t.vsplit(x, [1])[1]),
    "dsplit": ([A.reshape(1, 3, 4)], lambda t, x: t.dsplit(x, [1, 3])[1]),
    "tile": ([A[:2, :2]], lambda t, x: t.tile(x, (2, 1, 3))),
    "tile method": ([A], lambda t, x: x.tile(2)),
    "trace": ([A], lambda t, x: t.trace(x)),
    "diff": ([A], lambda t, x: t.diff(x)),
    "diff n=2 dim=0 prepend": ([A, B[:1]], lambda t, x, y: t.diff(x, 2, 0, prepend=y)),
    "diag_embed": ([A], lambda t, x: t.diag_embed(x, 1)),
    "diag_embed dims": ([A], lambda t, x: t.diag_embed(x, -1, 0, 2)),
    "diagflat": ([A[:2, :2]], lambda t, x: t.diagflat(x, -1)),
    "deg2rad": ([A], lambda t, x: t.deg2rad(x)),
    "rad2deg": ([A], lambda t, x: x.rad2deg()),
    "absolute": ([A], lambda t, x: t.absolute(x)),
    "sgn": ([A], lambda t, x: t.sgn(x)),
    "frac": ([A * 3], lambda t, x: t.frac(x)),
    "clamp_min": ([A], lambda t, x: t.clamp_min(x, 0.1)),
    "clamp_max": ([A], lambda t, x: x.clamp_max(0.1)),
    "logaddexp2": ([A, B], lambda t, x, y: t.logaddexp2(x, y)),
    "float_power": ([np.abs(A) + 0.5, B], lambda t, x, y: t.float_power(x, y)),
    "float_power scalar": ([np.abs(A) + 0.5], lambda t, x: x.float_power(2.5)),
    "fmax": ([A, np.where(R.random((3, 4)) > 0.5, A, B)], lambda t, x, y: t.fmax(x, y)),
    "fmin": ([A, B], lambda t, x, y: t.fmin(x, y)),
    "hypot": ([A, B], lambda t, x, y: t.hypot(x, y)),
    "xlogy": ([np.where(A > 0, A, 0), np.abs(B) + 0.1], lambda t, x, y: t.xlogy(x, y)),
    "logit": ([1 / (1 + np.exp(-A))], lambda t, x: t.logit(x)),
    "logit eps": ([1 / (1 + np.exp(-3 * A))], lambda t, x: x.logit(0.1)),
    "cross": ([V3, W3], lambda t, x, y: t.cross(x, y, dim=1)),
    "cross broadcast": ([V3, W3[:1]], lambda t, x, y: x.cross(y, -1)),
    "linalg.cross": ([V3, W3], lambda t, x, y: t.linalg.cross(x, y)),
    "tensordot": ([A.reshape(3, 2, 2), B.reshape(2, 2, 3)], lambda t, x, y: t.tensordot(x, y)),
    "tensordot lists": ([A.reshape(3, 2, 2), B.reshape(2, 2, 3)], lambda t, x, y: t.tensordot(x, y, ([0], [2]))),
    "tensordot 0": ([A[0], B[0]], lambda t, x, y: t.tensordot(x, y, 0)),
    "cosine_similarity": ([A, B], lambda t, x, y: t.cosine_similarity(x, y)),
    "pairwise_distance": ([A, B], lambda t, x, y: t.pairwise_distance(x, y)),
    "atan2": ([A, B], lambda t, x, y: t.atan2(x, y)),
    "arctan2 broadcast": ([A, B[:1]], lambda t, x, y: t.arctan2(x, y)),
    "erfc": ([A * 2], lambda t, x: t.erfc(x)),
}


def _run(lib, arrays, call, dtype):
    ts = [lib.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = call(lib, *ts)
    w = lib.tensor(np.linspace(-1, 2, out.numel()).reshape(tuple(out.shape)).astype(dtype))
    grads = lib.autograd.grad((out * w).sum(), ts, allow_unused=True)
    # (torch's sign() gives a ZeroTensor gradient, which numpy() refuses without force)
    return out.detach().numpy(), [None if g is None else (g.numpy(force=True) if lib is torch else g.numpy())
                                  for g in grads]


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_values_and_gradients_match_torch(case, dtype):
    arrays, call = CASES[case]
    got, got_grads = _run(jitgrad, arrays, call, dtype)
    want, want_grads = _run(torch, arrays, call, dtype)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=1e-5)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **tol)
    for a, b in zip(got_grads, want_grads):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, **tol)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("name", ["fmax", "fmin", "hypot", "atan2", "logaddexp2", "xlogy"])
def test_binary_special_values_match_torch(name):
    """inf, nan, signed zeros and ties, in every pairing of the two operands."""
    x = np.repeat(SPECIAL.reshape(-1), SPECIAL.size)
    y = np.tile(SPECIAL.reshape(-1), SPECIAL.size)
    got = getattr(jitgrad, name)(jitgrad.tensor(x), jitgrad.tensor(y)).numpy()
    want = getattr(torch, name)(torch.tensor(x), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)     # (libm's last bit may differ)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("name", ["signbit", "isposinf", "isneginf", "sgn", "frac", "erfc", "deg2rad", "logit"])
def test_unary_special_values_match_torch(name):
    got = getattr(jitgrad, name)(jitgrad.tensor(SPECIAL)).numpy()
    want = getattr(torch, name)(torch.tensor(SPECIAL)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def test_by_hand():
    x = jitgrad.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert jitgrad.trace(x).item() == 5.0
    np.testing.assert_array_equal(jitgrad.rot90(x).detach().numpy(), [[2, 4], [1, 3]])
    np.testing.assert_array_equal(jitgrad.diff(x, dim=0).detach().numpy(), [[2, 2]])
    np.testing.assert_array_equal(jitgrad.tile(x, (1, 2)).detach().numpy(), [[1, 2, 1, 2], [3, 4, 3, 4]])
    assert jitgrad.movedim(jitgrad.zeros(2, 3, 4), 0, -1).shape == (3, 4, 2)
    assert [t.shape[1] for t in jitgrad.tensor_split(jitgrad.zeros(2, 7), 3, 1)] == [3, 2, 2]
    assert jitgrad.numel(x) == 4 and jitgrad.is_floating_point(x)
    assert abs(jitgrad.atan2(jitgrad.tensor(1.0), jitgrad.tensor(-1.0)).item() - 3 * math.pi / 4) < 1e-6
    np.testing.assert_array_equal(jitgrad.cross(jitgrad.tensor([1.0, 0, 0]), jitgrad.tensor([0.0, 1, 0]), 0).numpy(),
                                  [0, 0, 1])
    np.testing.assert_array_equal(jitgrad.fmax(jitgrad.tensor([1.0, np.nan]), jitgrad.tensor([np.nan, 2.0])).numpy(),
                                  [1, 2])
    jitgrad.xlogy(x, x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.log([[1, 2], [3, 4]]) + 1)
    assert jitgrad.xlogy(jitgrad.tensor(0.0), jitgrad.tensor(0.0)).item() == 0.0
    assert math.isnan(jitgrad.xlogy(jitgrad.tensor(0.0), jitgrad.tensor(np.nan)).item())
    with pytest.warns(UserWarning, match="without specifying the dim arg is deprecated"):
        jitgrad.cross(jitgrad.ones(3, 2), jitgrad.ones(3, 2))


ERRORS = [
    lambda t: t.movedim(t.zeros(2, 3), (0, 1), (0,)),
    lambda t: t.movedim(t.zeros(2, 3), (0, 0), (0, 1)),
    lambda t: t.rot90(t.zeros(2, 3), 1, [0, 0]),
    lambda t: t.rot90(t.zeros(2), 1),
    lambda t: t.fliplr(t.zeros(2)),
    lambda t: t.trace(t.zeros(2, 2, 2)),
    lambda t: t.diff(t.tensor(1.0)),
    lambda t: t.tensor_split(t.zeros(4), 0),
    lambda t: t.hsplit(t.zeros(2, 5), 2),
    lambda t: t.vsplit(t.zeros(5), 1),
    lambda t: t.tensordot(t.zeros(2, 3), t.zeros(4, 2), ([1], [0])),
    lambda t: t.tensordot(t.zeros(2, 3), t.zeros(3, 2), -1),
    lambda t: t.cross(t.zeros(2, 2), t.zeros(2, 2), dim=1),
    lambda t: t.frac(t.tensor([1, 2])),
    lambda t: t.positive(t.tensor([True])),
    lambda t: t.atan2(t.zeros(2), 1.0),
    lambda t: t.diag_embed(t.zeros(2, 3), 0, 1, 1),
]


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_errors_as_torch(i):
    with pytest.raises(Exception) as theirs:
        ERRORS[i](torch)
    with pytest.raises(type(theirs.value)) as mine:
        ERRORS[i](jitgrad)
    assert str(mine.value) == str(theirs.value).splitlines()[0]
