"""The layers, containers and nn.utils small scripts use, against torch.nn (same weights copied
in, same inputs: values, gradients, running statistics, reprs, state_dict keys) and, without
torch, against known values."""
import math
import warnings

import numpy as np
import pytest

import jitgrad
from jitgrad import nn
from jitgrad.nn import functional as F


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _copy_weights(src, dst, torch):
    dst.load_state_dict({k: torch.tensor(v.numpy().copy()) for k, v in src.state_dict().items()})


def _err(lib_call):
    """(type name, message) of the exception lib_call raises, with torch's names as ours."""
    try:
        lib_call()
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, str(e).replace("torch.", "jitgrad.")
    return None


def _same_error(make, torch, within=False):
    """make(lib) raises the same exception type and message in jitgrad and torch (within: ours is
    part of torch's, where torch wraps a C++ error with its trace)."""
    j, t = _err(lambda: make(jitgrad)), _err(lambda: make(torch))
    assert t is not None and j is not None
    if within:
        assert j[0] == t[0] and j[1] in t[1]
    else:
        assert j == t


def _run(lib, module, x, requires_grad=True):
    """Forward, backward of sum(y * w) for fixed w; returns (y, x.grad, param grads)."""
    xi = lib.tensor(x, requires_grad=requires_grad)
    y = module(xi)
    w = lib.tensor(np.cos(np.arange(y.numel())).reshape(tuple(y.shape)), dtype=y.dtype)
    (y * w).sum().backward()
    return (y.detach().numpy(), None if xi.grad is None else xi.grad.numpy(),
            [p.grad.numpy() for p in module.parameters()])


def _compare(torch, make, x, tol=1e-10, train=True):
    j, t = make(jitgrad).to(getattr(jitgrad, x.dtype.name)), make(torch).to(getattr(torch, x.dtype.name))
    _copy_weights(j, t, torch)
    j.train(train)
    t.train(train)
    (yj, gj, pj), (yt, gt, pt) = _run(jitgrad, j, x), _run(torch, t, x)
    np.testing.assert_allclose(yj, yt, rtol=tol, atol=tol)
    np.testing.assert_allclose(gj, gt, rtol=tol, atol=tol)
    assert len(pj) == len(pt)
    for a, b in zip(pj, pt):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    return j, t


_RNG = np.random.default_rng(13)
_X = _RNG.standard_normal((4, 5, 3))


# ---- reprs and names -------------------------------------------------------------------------
def _everything(lib):
    n = lib.nn
    return n.Sequential(
        n.Flatten(), n.Flatten(0, 2), n.Unflatten(1, (2, 5)), n.Unflatten(-1, [2, -1]), n.Identity(),
        n.BatchNorm1d(4), n.BatchNorm2d(3, eps=1e-3, momentum=None, affine=False),
        n.BatchNorm3d(2, track_running_stats=False, bias=False),
        n.LogSoftmax(dim=1), n.Softmin(), n.Softmax2d(), n.Softmax(-1), n.GELU(approximate="tanh"),
        n.SiLU(), n.SiLU(inplace=True), n.Mish(), n.Hardtanh(-2.0, 2.0), n.Hardtanh(inplace=True),
        n.ReLU6(), n.ReLU6(True), n.LeakyReLU(0.2, True), n.PReLU(), n.PReLU(3, 0.1), n.ELU(),
        n.ELU(0.5, True), n.CELU(2.0), n.SELU(True), n.Softplus(2, 10), n.Tanh(), n.Sigmoid(),
        n.Hardsigmoid(), n.Hardswish(), n.LogSigmoid(), n.Softsign(), n.Tanhshrink(),
        n.Threshold(0.1, 20), n.Threshold(0.5, 1.0, True), n.Hardshrink(), n.Softshrink(0.3),
        n.GLU(), n.ReLU(inplace=True),
        n.Embedding(10, 3, padding_idx=0, max_norm=1.0, norm_type=1.0, scale_grad_by_freq=True),
        n.Dropout(0.1, inplace=True), n.Dropout1d(), n.Dropout2d(0.2), n.Dropout3d(),
        n.AlphaDropout(0.3), n.FeatureAlphaDropout(),
        n.ModuleDict({"b": n.ReLU(), "a": n.Linear(1, 2)}), n.ModuleDict(),
        n.ModuleList([n.Tanh(), n.Tanh()]), n.ParameterList(), n.ParameterDict())


def test_reprs_match_torch():
    torch = _torch()
    assert repr(_everything(jitgrad)) == repr(_everything(torch))


def test_module_names_are_exported_like_torch():
    torch = _torch()
    names = [n for n in dir(torch.nn) if n in nn.__all__]
    for name in ("Flatten", "Unflatten", "BatchNorm1d", "BatchNorm2d", "PReLU", "Softmax2d",
                 "ModuleDict", "ParameterList", "ParameterDict", "Dropout1d", "AlphaDropout"):
        assert name in names and getattr(nn, name).__name__ == name
    for name in ("clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
                 "vector_to_parameters", "get_total_norm", "clip_grads_with_norm_"):
        assert callable(getattr(nn.utils, name)) and hasattr(torch.nn.utils, name)


# ---- Flatten, Unflatten ------------------------------------------------------------------------
def test_flatten_unflatten_known_values():
    x = jitgrad.arange(24.0).reshape(2, 3, 4).requires_grad_()
    assert nn.Flatten()(x).shape == (2, 12)
    assert nn.Flatten(0, 1)(x).shape == (6, 4)
    y = nn.Unflatten(1, (3, 1, -1))(nn.Flatten()(x))
    assert y.shape == (2, 3, 1, 4) and np.array_equal(y.detach().numpy().ravel(), np.arange(24.0))
    (y * 2).sum().backward()
    assert np.array_equal(x.grad.numpy(), np.full((2, 3, 4), 2.0))
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints, but found type "
                                        "int"):
        nn.Unflatten(1, 5)
    with pytest.raises(RuntimeError, match=r"Provided sizes \[4, 4\] don't multiply up to the "
                                           r"size of dim 1 \(12\)"):
        nn.Unflatten(1, (4, 4))(nn.Flatten()(x))


def test_flatten_unflatten_match_torch():
    torch = _torch()
    for make in (lambda lib: lib.nn.Flatten(), lambda lib: lib.nn.Flatten(0, -2),
                 lambda lib: lib.nn.Unflatten(1, (5, 1)), lambda lib: lib.nn.Unflatten(-1, [1, -1]),
                 lambda lib: lib.nn.Sequential(lib.nn.Flatten(), lib.nn.Unflatten(1, (3, 5)))):
        _compare(torch, make, _X)
    x3 = np.arange(12.0).reshape(2, 6)
    for sizes in ((4, 3), (-1, 4), (), (0, -1)):
        _same_error(lambda lib: lib.nn.Unflatten(1, sizes)(lib.tensor(x3)), torch)
    _same_error(lambda lib: lib.nn.Unflatten(1, (-1, -1))(lib.tensor(x3)), torch, within=True)
    _same_error(lambda lib: lib.nn.Unflatten(0, (0, -1))(lib.zeros(0, 2)), torch, within=True)
    _same_error(lambda lib: lib.nn.Unflatten(2, (1,))(lib.tensor(x3)), torch)
    _same_error(lambda lib: lib.nn.Unflatten(1, (2, 2.5)), torch)


# ---- activations -------------------------------------------------------------------------------
_ACTIVATIONS = {
    "LogSoftmax": lambda lib: lib.nn.LogSoftmax(dim=1),
    "Softmin": lambda lib: lib.nn.Softmin(dim=-1),
    "Softmax2d": lambda lib: lib.nn.Softmax2d(),
    "GELU": lambda lib: lib.nn.GELU(),
    "GELU-tanh": lambda lib: lib.nn.GELU(approximate="tanh"),
    "SiLU": lambda lib: lib.nn.SiLU(),
    "Mish": lambda lib: lib.nn.Mish(),
    "Hardtanh": lambda lib: lib.nn.Hardtanh(-0.5, 0.7),
    "ReLU6": lambda lib: lib.nn.ReLU6(),
    "LeakyReLU": lambda lib: lib.nn.LeakyReLU(0.2),
    "PReLU": lambda lib: lib.nn.PReLU(),
    "PReLU-channels": lambda lib: lib.nn.PReLU(5, init=0.3),
    "ELU": lambda lib: lib.nn.ELU(0.7),
    "CELU": lambda lib: lib.nn.CELU(1.5),
    "SELU": lambda lib: lib.nn.SELU(),
    "Softplus": lambda lib: lib.nn.Softplus(2.0, 1.0),
    "Tanh": lambda lib: lib.nn.Tanh(),
    "Sigmoid": lambda lib: lib.nn.Sigmoid(),
    "Hardsigmoid": lambda lib: lib.nn.Hardsigmoid(),
    "Hardswish": lambda lib: lib.nn.Hardswish(),
    "LogSigmoid": lambda lib: lib.nn.LogSigmoid(),
    "Softsign": lambda lib: lib.nn.Softsign(),
    "Tanhshrink": lambda lib: lib.nn.Tanhshrink(),
    "Threshold": lambda lib: lib.nn.Threshold(0.1, 20.0),
    "Hardshrink": lambda lib: lib.nn.Hardshrink(0.4),
    "Softshrink": lambda lib: lib.nn.Softshrink(0.4),
    "GLU": lambda lib: lib.nn.GLU(dim=0),
    "ReLU": lambda lib: lib.nn.ReLU(),
    "Identity": lambda lib: lib.nn.Identity(54, unused=True),
}
# the kinks and thresholds of the modules above, where PyTorch's choice of gradient is the spec
_KINKS = np.array([-0.5, -0.4, 0.0, 0.1, 0.4, 0.7, 6.0, -3.0, 3.0, 1.0, -1.0, 2.5, -2.5, 0.3, 7.0])


@pytest.mark.parametrize("name", sorted(_ACTIVATIONS))
def test_activation_modules_match_torch(name):
    torch = _torch()
    x = _X.copy()
    x.flat[:len(_KINKS)] = _KINKS
    _compare(torch, _ACTIVATIONS[name], x)
    _compare(torch, _ACTIVATIONS[name], x.astype(np.float32), tol=1e-5)


def test_prelu_known_values_and_weight_gradient():
    m = nn.PReLU(2, init=0.5).double()
    x = jitgrad.tensor([[[-2.0, 3.0]], [[0.0, -4.0]]], dtype=jitgrad.float64).transpose(1, 2)
    x.requires_grad_()
    y = m(x)
    assert np.array_equal(y.detach().numpy().ravel(), [-1.0, 3.0, 0.0, -2.0])
    y.sum().backward()
    # x <= 0 takes the slope (x = 0 too, as PyTorch); the slope's gradient is the sum of those x
    assert np.array_equal(x.grad.numpy().ravel(), [0.5, 1.0, 0.5, 0.5])
    assert np.array_equal(m.weight.grad.numpy(), [-2.0, -4.0])


def test_prelu_errors_match_torch():
    torch = _torch()
    for shape, w in (((3,), [0.1, 0.2, 0.3]), ((), [0.1, 0.2, 0.3]), ((2, 5), [0.1, 0.2])):
        _same_error(lambda lib: lib.nn.functional.prelu(lib.tensor(np.ones(shape, np.float32)),
                                                        lib.tensor(w)), torch)
    _same_error(lambda lib: lib.nn.functional.prelu(lib.randn(2, 3), lib.ones(3, 1)), torch)
    _same_error(lambda lib: lib.nn.functional.prelu(lib.ones(3, dtype=lib.int64),
                                                    lib.ones(1, dtype=lib.int64)), torch)
    _same_error(lambda lib: lib.nn.functional.prelu(lib.ones(3), lib.ones(1, dtype=lib.float64)),
                torch)
    # one slope: any input, a 0-d one included, keeps its shape
    for shape in ((), (3,), (2, 5)):
        assert nn.PReLU()(jitgrad.randn(*shape)).shape == shape


def test_activation_functional_errors_match_torch():
    torch = _torch()
    _same_error(lambda lib: lib.nn.functional.glu(lib.tensor(1.0)), torch)
    _same_error(lambda lib: lib.nn.functional.glu(lib.randn(3)), torch)
    _same_error(lambda lib: lib.nn.functional.glu(lib.randn(2, 3), 2), torch)
    _same_error(lambda lib: lib.nn.functional.glu(lib.ones(2, dtype=lib.int64)), torch)
    _same_error(lambda lib: lib.nn.functional.softshrink(lib.ones(2), -1.0), torch)
    _same_error(lambda lib: lib.nn.functional.hardshrink(lib.ones(2, dtype=lib.int64)), torch)
    _same_error(lambda lib: lib.nn.Hardtanh(1.0, 0.0), torch)
    _same_error(lambda lib: lib.nn.Softmax2d()(lib.randn(2, 3)), torch)
    # threshold keeps integer inputs integer, and lets nan through (x <= threshold is False)
    for lib in (jitgrad, torch):
        t = lib.nn.functional.threshold(lib.tensor([1, 2, 3]), 1.5, 7.9)
        assert t.tolist() == [7, 2, 3] and t.dtype == lib.int64
        t = lib.nn.functional.threshold(lib.tensor([1.0, float("nan"), 3.0]), 1.5, 7.0)
        assert np.isnan(t.numpy()[1]) and t.tolist()[::2] == [7.0, 3.0]


@pytest.mark.parametrize("make", [lambda lib: lib.nn.ReLU(inplace=True),
                                  lambda lib: lib.nn.LeakyReLU(0.1, inplace=True),
                                  lambda lib: lib.nn.ELU(inplace=True),
                                  lambda lib: lib.nn.SiLU(inplace=True),
                                  lambda lib: lib.nn.Hardtanh(inplace=True),
                                  lambda lib: lib.nn.Threshold(0.2, -1.0, inplace=True)])
def test_inplace_activation_modules_write_their_input(make):
    torch = _torch()
    out = []
    for lib in (jitgrad, torch):
        leaf = lib.tensor(_X, requires_grad=True)
        h = leaf * 1.0
        y = make(lib)(h)
        assert y is h                   # the module wrote into its input, as PyTorch's
        (y * y).sum().backward()
        out.append((h.detach().numpy(), leaf.grad.numpy()))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-12)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-12)


# ---- BatchNorm ---------------------------------------------------------------------------------
def _bn_steps(lib, bn, batches, dtype):
    """Train on each batch (forward and backward), then evaluate on the last: everything seen."""
    seen = []
    for x in batches + [None]:
        if x is None:
            bn.eval()
            x = batches[-1]
        xi = lib.tensor(x, dtype=dtype, requires_grad=True)
        y = bn(xi)
        w = lib.tensor(np.sin(np.arange(y.numel())).reshape(tuple(y.shape)), dtype=dtype)
        (y * w).sum().backward()
        params = [p.grad.numpy().copy() for p in bn.parameters()]
        bn.zero_grad()
        bufs = [b.numpy().copy() for b in bn.buffers()]
        seen.append((y.detach().numpy(), xi.grad.numpy(), params, bufs))
    return seen


_BN_CASES = {
    "1d-2d": (lambda lib: lib.nn.BatchNorm1d(3), (6, 3)),
    "1d-3d": (lambda lib: lib.nn.BatchNorm1d(3, momentum=0.3), (4, 3, 5)),
    "2d": (lambda lib: lib.nn.BatchNorm2d(3), (2, 3, 4, 5)),
    "3d": (lambda lib: lib.nn.BatchNorm3d(2), (2, 2, 3, 2, 2)),
    "cumulative": (lambda lib: lib.nn.BatchNorm1d(3, momentum=None), (5, 3)),
    "no-running-stats": (lambda lib: lib.nn.BatchNorm2d(3, track_running_stats=False), (2, 3, 2, 2)),
    "no-affine": (lambda lib: lib.nn.BatchNorm1d(3, affine=False, eps=0.1), (6, 3)),
    "no-bias": (lambda lib: lib.nn.BatchNorm1d(3, bias=False), (6, 3)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(_BN_CASES))
def test_batchnorm_training_and_eval_match_torch(case, dtype):
    torch = _torch()
    make, shape = _BN_CASES[case]
    j, t = make(jitgrad).to(getattr(jitgrad, dtype)), make(torch).to(getattr(torch, dtype))
    if j.affine:        # weights away from 1 and 0, so that their gradients matter
        j.weight.data = jitgrad.tensor(np.linspace(0.5, 2.0, j.num_features), dtype=j.weight.dtype)
        if j.bias is not None:
            j.bias.data = jitgrad.tensor(np.linspace(-1, 1, j.num_features), dtype=j.bias.dtype)
    _copy_weights(j, t, torch)
    rng = np.random.default_rng(len(case))
    batches = [rng.standard_normal(shape) * 3 + 2 for _ in range(3)]
    tol = 1e-10 if dtype == "float64" else 2e-5
    for (yj, gj, pj, bj), (yt, gt, pt, bt) in zip(_bn_steps(jitgrad, j, batches, getattr(jitgrad, dtype)),
                                                  _bn_steps(torch, t, batches, getattr(torch, dtype))):
        np.testing.assert_allclose(yj, yt, rtol=tol, atol=tol)
        np.testing.assert_allclose(gj, gt, rtol=tol, atol=tol)
        for a, b in zip(pj + bj, pt + bt):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert list(j.state_dict()) == list(t.state_dict())
    assert [n for n, _ in j.named_buffers()] == [n for n, _ in t.named_buffers()]


def test_batchnorm_known_values_without_torch():
    bn = nn.BatchNorm1d(2, momentum=0.5).double()
    x = jitgrad.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]], dtype=jitgrad.float64)
    y = bn(x).detach().numpy()
    # biased variance normalises: column 0 has mean 3, var 8/3
    np.testing.assert_allclose(y[:, 0], np.array([-2.0, 0.0, 2.0]) / math.sqrt(8 / 3 + 1e-5))
    # running statistics move halfway to the batch mean and the *unbiased* variance
    np.testing.assert_allclose(bn.running_mean.numpy(), [1.5, 6.0])
    np.testing.assert_allclose(bn.running_var.numpy(), [0.5 + 0.5 * 4.0, 0.5 + 0.5 * 12.0])
    assert bn.num_batches_tracked.item() == 1 and bn.num_batches_tracked.dtype == jitgrad.int64
    bn.eval()
    np.testing.assert_allclose(bn(x).detach().numpy()[:, 1],
                               (np.array([10.0, 10.0, 16.0]) - 6.0) / math.sqrt(6.5 + 1e-5))
    assert bn.num_batches_tracked.item() == 1       # eval mode counts nothing


def test_batchnorm_cumulative_average_and_reset():
    bn = nn.BatchNorm1d(1, momentum=None).double()
    means = []
    for k in range(4):
        x = jitgrad.tensor([[k], [k + 2.0]], dtype=jitgrad.float64)
        bn(x)
        means.append(k + 1.0)
        # momentum=None: the plain average of every batch mean so far (the initial 0 forgotten)
        np.testing.assert_allclose(bn.running_mean.numpy(), [np.mean(means)])
        np.testing.assert_allclose(bn.running_var.numpy(), [2.0])
    assert bn.num_batches_tracked.item() == 4
    bn.reset_running_stats()
    assert bn.running_mean.tolist() == [0.0] and bn.running_var.tolist() == [1.0]
    assert bn.num_batches_tracked.item() == 0


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval():
    bn = nn.BatchNorm1d(2, track_running_stats=False).eval()
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    y = bn(jitgrad.tensor([[1.0, 2.0], [3.0, 6.0]])).detach().numpy()
    np.testing.assert_allclose(y, [[-1, -1], [1, 1]], atol=1e-4)
    bn = nn.BatchNorm1d(2, affine=False)
    assert list(bn.parameters()) == [] and list(bn.state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]


def test_batchnorm_state_dict_round_trips_with_torch():
    torch = _torch()
    t = torch.nn.BatchNorm2d(3)
    t(torch.randn(4, 3, 2, 2) * 2 + 1)
    j = nn.BatchNorm2d(3)
    j.load_state_dict({k: jitgrad.tensor(v.numpy()) for k, v in t.state_dict().items()})
    assert list(j.state_dict()) == list(t.state_dict())
    for (k, a), b in zip(j.state_dict().items(), t.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()), k
    assert j.num_batches_tracked.item() == 1
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    j.eval(), t.eval()
    np.testing.assert_allclose(j(jitgrad.tensor(x, dtype=jitgrad.float32)).detach().numpy(),
                               t(torch.tensor(x, dtype=torch.float32)).detach().numpy(), atol=1e-6)


def test_batchnorm_errors_match_torch():
    torch = _torch()
    _same_error(lambda lib: lib.nn.BatchNorm1d(3)(lib.randn(2, 3, 4, 5)), torch)
    _same_error(lambda lib: lib.nn.BatchNorm2d(3)(lib.randn(2, 3)), torch)
    _same_error(lambda lib: lib.nn.BatchNorm3d(3)(lib.randn(2, 3, 1, 1)), torch)
    _same_error(lambda lib: lib.nn.BatchNorm1d(3)(lib.randn(1, 3)), torch)
    _same_error(lambda lib: lib.nn.BatchNorm1d(4)(lib.randn(5, 3)), torch)
    bn = lambda lib, *a, **k: lib.nn.functional.batch_norm(*a, **k)      # noqa: E731
    for make in (
            lambda lib: bn(lib, lib.randn(3), lib.zeros(3), lib.ones(3), training=True),
            lambda lib: bn(lib, lib.randn(3), None, None, training=True),
            lambda lib: bn(lib, lib.randn(4, 3), None, None, training=False),
            lambda lib: bn(lib, lib.randn(4, 3), lib.zeros(3), None, training=False),
            lambda lib: bn(lib, lib.randn(4, 3), lib.zeros(3), None, training=True),
            lambda lib: bn(lib, lib.randn(4, 3), lib.zeros(4), lib.ones(3), training=True),
            lambda lib: bn(lib, lib.randn(4, 3), None, None, lib.ones(4), training=True),
            lambda lib: bn(lib, lib.randn(4, 3), None, None, None, lib.ones(4), training=True),
            lambda lib: bn(lib, lib.randn(4, 3), None, None, training=True, eps=0),
            lambda lib: bn(lib, lib.randn(4, 3), lib.zeros(3), lib.ones(3), eps=-1),
            lambda lib: bn(lib, lib.randn(4, 3).double(), lib.zeros(3), lib.ones(3), training=True),
            lambda lib: bn(lib, lib.randn(4, 3), lib.zeros(3).double(), lib.ones(3).double()),
            lambda lib: bn(lib, lib.ones(4, 3, dtype=lib.int64), None, None, training=True),
            lambda lib: bn(lib, lib.randn(4, 3), lib.zeros(3, requires_grad=True), lib.ones(3))):
        _same_error(make, torch)


def test_batch_norm_functional_matches_torch():
    torch = _torch()
    rng = np.random.default_rng(5)
    x, rm, rv = rng.standard_normal((4, 3, 2)), rng.standard_normal(3), rng.random(3) + 0.5
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    for training in (False, True):
        out = []
        for lib in (jitgrad, torch):
            ts = [lib.tensor(v, requires_grad=True) for v in (x, w, b)]
            stats = [lib.tensor(rm), lib.tensor(rv)]
            y = lib.nn.functional.batch_norm(ts[0], *stats, ts[1], ts[2], training, 0.2, 1e-3)
            (y * y).sum().backward()
            out.append([y.detach().numpy()] + [t.grad.numpy() for t in ts] +
                       [s.numpy() for s in stats])
        for a, c in zip(*out):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
    # an empty batch normalises nothing and leaves the statistics alone
    stats = [jitgrad.zeros(3), jitgrad.ones(3)]
    y = F.batch_norm(jitgrad.randn(0, 3), *stats, training=True)
    assert y.shape == (0, 3) and stats[0].tolist() == [0.0] * 3 and stats[1].tolist() == [1.0] * 3


def test_batchnorm_statistics_update_bumps_the_version():
    """The running statistics are written in place (as PyTorch's kernel does)."""
    bn = nn.BatchNorm1d(2)
    before = bn.running_mean._version
    bn(jitgrad.randn(4, 2))
    assert bn.running_mean._version > before


def test_batchnorm_in_a_trained_mlp_matches_torch():
    """A few SGD steps of Linear-BatchNorm-PReLU-Linear, with clip_grad_norm_: same weights."""
    torch = _torch()

    def build(lib):
        n = lib.nn
        return n.Sequential(n.Linear(3, 8), n.BatchNorm1d(8), n.PReLU(8), n.Dropout(0.0),
                            n.Linear(8, 1)).double()

    j, t = build(jitgrad), build(torch)
    _copy_weights(j, t, torch)
    rng = np.random.default_rng(3)
    data = [(rng.standard_normal((16, 3)), rng.standard_normal((16, 1))) for _ in range(4)]
    norms = []
    for lib, m in ((jitgrad, j), (torch, t)):
        opt = lib.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        seen = []
        for x, y in data:
            opt.zero_grad()
            loss = lib.nn.functional.mse_loss(m(lib.tensor(x)), lib.tensor(y))
            loss.backward()
            seen.append(lib.nn.utils.clip_grad_norm_(m.parameters(), 0.5).item())
            opt.step()
        norms.append(seen)
    np.testing.assert_allclose(norms[0], norms[1], rtol=1e-9)
    for (k, a), b in zip(j.state_dict().items(), t.state_dict().values()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


# ---- Embedding ---------------------------------------------------------------------------------
_IDX = np.array([[0, 2, 4], [4, 2, 2]])


@pytest.mark.parametrize("kwargs", [{"max_norm": 1.0}, {"max_norm": 0.5, "norm_type": 1.0},
                                    {"max_norm": 0.7, "norm_type": math.inf},
                                    {"scale_grad_by_freq": True},
                                    {"scale_grad_by_freq": True, "padding_idx": 2, "max_norm": 1.5}])
def test_embedding_options_match_torch(kwargs):
    torch = _torch()
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((5, 3)) * 2
    out = []
    for lib in (jitgrad, torch):
        e = lib.nn.Embedding(5, 3, **kwargs).double()
        with lib.no_grad():
            e.weight.copy_(lib.tensor(w0))
        y = e(lib.tensor(_IDX))
        (y * lib.tensor(np.arange(18.0).reshape(2, 3, 3))).sum().backward()
        out.append((y.detach().numpy(), e.weight.grad.numpy(), e.weight.detach().numpy()))
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    if "max_norm" in kwargs:            # the looked-up rows were renormalised, row 1 (unused) not
        assert not np.array_equal(out[0][2], w0) and np.array_equal(out[0][2][1], w0[1])


def test_embedding_max_norm_known_values_and_version():
    e = nn.Embedding(3, 2, max_norm=1.0).double()
    with jitgrad.no_grad():
        e.weight.copy_(jitgrad.tensor([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]], dtype=jitgrad.float64))
    used = (e.weight * 1.0).sum()            # saves nothing of weight: still replayable
    y = e(jitgrad.tensor([0, 1]))
    np.testing.assert_allclose(y.detach().numpy(), [[0.6, 0.8], [0.3, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(e.weight.detach().numpy()[2], [6.0, 8.0])     # not looked up
    used.backward()
    # a graph that saved the weight refuses to replay after the renormalisation, as in PyTorch
    e.weight.grad = None
    x = jitgrad.randn(2, dtype=jitgrad.float64, requires_grad=True)
    z = (e.weight @ x).sum()
    e(jitgrad.tensor([2]))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


def test_embedding_padding_idx_and_from_pretrained():
    e = nn.Embedding(4, 2, padding_idx=-1)
    assert e.padding_idx == 3 and not e.weight.detach().numpy()[3].any()
    y = e(jitgrad.tensor([3, 1, 3]))
    y.sum().backward()
    assert e.weight.grad.numpy().tolist() == [[0, 0], [1, 1], [0, 0], [0, 0]]
    w = jitgrad.tensor([[1.0, 2.0], [3.0, 4.0]])
    frozen = nn.Embedding.from_pretrained(w)
    assert not frozen.weight.requires_grad and np.shares_memory(frozen.weight.numpy(), w.numpy())
    assert frozen(jitgrad.tensor([1])).tolist() == [[3.0, 4.0]]
    trainable = nn.Embedding.from_pretrained(w, freeze=False, padding_idx=0)
    assert trainable.weight.requires_grad and trainable.padding_idx == 0
    assert trainable.weight.tolist()[0] == [1.0, 2.0]       # from_pretrained keeps the row
    with pytest.raises(AssertionError, match="Embeddings parameter is expected to be 2-dimensional"):
        nn.Embedding.from_pretrained(jitgrad.ones(3))
    with pytest.raises(NotImplementedError, match="sparse"):
        nn.Embedding(3, 2, sparse=True)


# ---- Dropout -----------------------------------------------------------------------------------
def test_dropout_train_eval_and_inplace():
    jitgrad.manual_seed(0)
    x = jitgrad.ones(2000, dtype=jitgrad.float64)
    d = nn.Dropout(0.25)
    y = d(x).numpy()
    assert set(np.unique(y)) <= {0.0, 1 / 0.75} and 350 < (y == 0).sum() < 650
    d.eval()
    assert d(x) is x
    h = jitgrad.ones(1000, requires_grad=True) * 1.0
    out = nn.Dropout(0.5, inplace=True)(h)
    assert out is h and (h.detach().numpy() == 0).sum() > 300
    assert nn.Dropout(1.0)(jitgrad.ones(5)).tolist() == [0.0] * 5
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout2d(1.5)


@pytest.mark.parametrize("fn,shape,channel_shape", [
    ("dropout1d", (20, 30, 7), (20, 30, 1)), ("dropout1d", (50, 7), (50, 1)),
    ("dropout2d", (20, 30, 3, 4), (20, 30, 1, 1)), ("dropout3d", (10, 30, 2, 2, 2), (10, 30, 1, 1, 1)),
    ("dropout3d", (40, 2, 3, 2), (40, 1, 1, 1))])
def test_feature_dropout_zeroes_whole_channels(fn, shape, channel_shape):
    jitgrad.manual_seed(1)
    x = jitgrad.ones(*shape, dtype=jitgrad.float64, requires_grad=True)
    y = getattr(F, fn)(x, 0.4)
    a = y.detach().numpy()
    within = tuple(i for i, c in enumerate(channel_shape) if c == 1)
    assert (np.ptp(a, axis=within) == 0).all()              # one value per channel
    assert set(np.unique(a)) == {0.0, 1 / 0.6}
    frac = (a == 0).mean()
    assert 0.25 < frac < 0.55
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), a)                # the gradient is the mask
    assert getattr(F, fn)(x, 0.4, training=False) is x


def test_dropout_variant_errors_and_warnings_match_torch():
    torch = _torch()
    _same_error(lambda lib: lib.nn.functional.dropout1d(lib.randn(3)), torch)
    _same_error(lambda lib: lib.nn.Dropout1d()(lib.randn(2, 3, 4, 5)), torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same_error(lambda lib: lib.nn.functional.dropout2d(lib.randn(3)), torch)
        _same_error(lambda lib: lib.nn.functional.dropout3d(lib.randn(())), torch)
    for fn, shape in (("dropout2d", (2, 3)), ("dropout2d", (2, 3, 4)), ("dropout3d", (2, 3))):
        msgs = []
        for lib in (jitgrad, torch):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                getattr(lib.nn.functional, fn)(lib.randn(*shape), training=False)
            msgs.append([str(m.message) for m in w])
        assert msgs[0] == msgs[1] and msgs[0]


def test_alpha_dropout_keeps_mean_and_variance():
    jitgrad.manual_seed(2)
    x = jitgrad.randn(200000, dtype=jitgrad.float64, requires_grad=True)
    y = F.alpha_dropout(x, 0.2, training=True)
    a = y.detach().numpy()
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02
    # dropped units all land on one value, a * (-alpha') + b
    alpha = 1.7580993408473766
    coef = 1 / math.sqrt((alpha ** 2 * 0.2 + 1) * 0.8)
    dropped = np.isclose(a, -alpha * coef + alpha * coef * 0.2)
    assert 0.17 < dropped.mean() < 0.23
    y.sum().backward()
    g = x.grad.numpy()
    assert np.allclose(g[dropped], 0) and np.allclose(g[~dropped], coef)
    assert F.alpha_dropout(x, 0.2) is x                       # training=False by default
    assert nn.AlphaDropout(0.2).eval()(x) is x
    f = nn.FeatureAlphaDropout(0.5)(jitgrad.ones(8, 100, 3)).numpy()
    assert (np.ptp(f, axis=-1) == 0).all() and len(np.unique(f)) == 2     # per channel
    assert F.alpha_dropout(jitgrad.ones(3), 1.0, training=True).tolist() == [0.0] * 3


# ---- containers --------------------------------------------------------------------------------
def test_module_dict_api_matches_torch():
    torch = _torch()
    out = []
    for lib in (jitgrad, torch):
        n = lib.nn
        d = n.ModuleDict({"lin": n.Linear(2, 3), "act": n.ReLU()})
        d["out"] = n.Linear(3, 1)
        d.update([("norm", n.LayerNorm(3))])
        d.update(n.ModuleDict({"act": n.Tanh()}))
        popped = d.pop("norm")
        record = [list(d), list(d.keys()), [type(m).__name__ for m in d.values()],
                  [k for k, _ in d.items()], len(d), "lin" in d, "norm" in d,
                  type(popped).__name__, [k for k, _ in d.named_parameters()], list(d.state_dict()),
                  repr(d)]
        del d["act"]
        record += [list(d), len(list(d.parameters()))]
        d.clear()
        record += [len(d), repr(d)]
        out.append(record)
    assert out[0] == out[1]
    for bad in (3, [(1, 2, 3)], [3]):
        _same_error(lambda lib: lib.nn.ModuleDict().update(bad), torch)


def test_parameter_list_api_matches_torch():
    torch = _torch()
    out = []
    for lib in (jitgrad, torch):
        n = lib.nn
        pl = n.ParameterList([n.Parameter(lib.ones(2, 3)), lib.zeros(3)])
        pl.append(lib.ones(1))
        pl.extend([n.Parameter(lib.ones(())), "not a tensor"])
        pl += [lib.ones(2)]
        pl[1] = lib.full((3,), 2.0)
        record = [len(pl), [type(p).__name__ for p in pl], [k for k, _ in pl.named_parameters()],
                  list(pl.state_dict()), repr(pl).replace("torch.", "jitgrad."), len(pl[1:4]), type(pl[::2]).__name__,
                  pl[-1].shape == (2,), all(p.requires_grad for p in pl.parameters()),
                  pl[1].tolist()]
        out.append(record)
    assert out[0] == out[1]
    _same_error(lambda lib: lib.nn.ParameterList([lib.ones(1)])[3], torch)
    _same_error(lambda lib: lib.nn.ParameterList().extend(lib.ones(2)), torch)
    _same_error(lambda lib: lib.nn.ParameterList()(1), torch)


def test_parameter_dict_api_matches_torch():
    torch = _torch()
    out = []
    for lib in (jitgrad, torch):
        n = lib.nn
        pd = n.ParameterDict({"b": n.Parameter(lib.ones(2, 3)), "a": lib.zeros(3).double()})
        pd["c"] = 4
        pd.update([("d", lib.ones(1))])
        record = [list(pd), list(pd.keys()), [type(v).__name__ for v in pd.values()],
                  [k for k, _ in pd.items()], repr(pd).replace("torch.", "jitgrad."),
                  list(pd.state_dict()), "a" in pd,
                  pd.get("zz", 7), pd.setdefault("e", lib.ones(2)).shape == (2,)]
        k, v = pd.popitem()
        record += [k, type(v).__name__, type(pd.pop("c")).__name__, list(reversed(pd))]
        merged = pd | n.ParameterDict({"z": lib.ones(1)})
        record += [list(merged), list(pd.copy()), list(pd.fromkeys(["x", "y"]))]
        pd |= {"y": lib.ones(1)}
        pd.clear()
        record += [len(pd), repr(pd)]
        out.append(record)
    assert out[0] == out[1]
    _same_error(lambda lib: lib.nn.ParameterDict()[3], torch)
    _same_error(lambda lib: lib.nn.ParameterDict()(1), torch)


def test_sequential_multiplication_and_module_list_forward_match_torch():
    torch = _torch()
    for lib in (jitgrad, torch):
        s = lib.nn.Sequential(lib.nn.Linear(1, 1), lib.nn.ReLU())
        s2 = s * 2
        assert len(s2) == 4 and s2[2] is s[0] and len(3 * s) == 6
        s *= 3
        assert len(s) == 6 and s[4] is s[0]
    _same_error(lambda lib: lib.nn.Sequential(lib.nn.ReLU()) * 0, torch)
    _same_error(lambda lib: lib.nn.ModuleList()(1), torch)
    assert str(_err(lambda: nn.Sequential() * 1.5)[1]).startswith("unsupported operand type(s) for *")


# ---- nn.utils ----------------------------------------------------------------------------------
def _with_grads(lib, grads, dtype=None):
    dtype = dtype or lib.float64
    params = []
    for g in grads:
        p = lib.nn.Parameter(lib.zeros(g.shape, dtype=dtype))
        p.grad = lib.tensor(g, dtype=dtype)
        params.append(p)
    return params


_GRADS = [np.array([[3.0, -4.0], [0.0, 1.0]]), np.array([12.0, 0.5, -2.0]), np.array(0.25)]


@pytest.mark.parametrize("norm_type", [2, 1.0, math.inf, -math.inf, 0, 0.5, 3.0])
@pytest.mark.parametrize("max_norm", [1.0, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = _torch()
    out = []
    for lib, dt in ((jitgrad, jitgrad.float32), (torch, torch.float32)):
        params = _with_grads(lib, _GRADS, dt)
        total = lib.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
        out.append((total.numpy(), str(total.dtype).split(".")[1], total.shape,
                    [p.grad.numpy() for p in params]))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-6)
    assert out[0][1:3] == out[1][1:3]
    for a, b in zip(out[0][3], out[1][3]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_clip_grad_norm_known_values_without_torch():
    params = _with_grads(jitgrad, [np.array([3.0, 4.0]), np.array([0.0])], jitgrad.float64)
    params.append(nn.Parameter(jitgrad.ones(2)))             # no grad: skipped
    total = nn.utils.clip_grad_norm_(iter(params), max_norm=1.0)
    assert total.item() == 5.0 and total.dtype == jitgrad.float64
    np.testing.assert_allclose(params[0].grad.numpy(), [3 / (5 + 1e-6), 4 / (5 + 1e-6)])
    assert params[2].grad is None
    # under the limit, nothing changes (the coefficient is clamped to 1)
    p = _with_grads(jitgrad, [np.array([0.3, 0.4])])[0]
    assert abs(nn.utils.clip_grad_norm_(p, 10.0).item() - 0.5) < 1e-7
    np.testing.assert_allclose(p.grad.numpy(), [0.3, 0.4], rtol=1e-7)
    assert nn.utils.clip_grad_norm_([], 1.0).tolist() == 0.0
    with pytest.warns(UserWarning, match="`parameters` is an empty generator"):
        nn.utils.clip_grad_norm_((p for p in []), 1.0)
    with pytest.warns(FutureWarning, match="clip_grad_norm` is now deprecated"):
        nn.utils.clip_grad_norm(p, 1.0)


def test_clip_grad_norm_non_finite():
    torch = _torch()
    for bad in (np.inf, np.nan):
        grads = [np.array([1.0, bad])]
        _same_error(lambda lib: lib.nn.utils.clip_grad_norm_(
            _with_grads(lib, grads), 1.0, error_if_nonfinite=True), torch)
        out = []
        for lib in (jitgrad, torch):
            params = _with_grads(lib, grads)
            out.append((lib.nn.utils.clip_grad_norm_(params, 1.0).numpy(), params[0].grad.numpy()))
        np.testing.assert_array_equal(out[0][0], out[1][0])
        np.testing.assert_array_equal(out[0][1], out[1][1])


def test_get_total_norm_and_clip_grads_with_norm_match_torch():
    torch = _torch()
    out = []
    for lib in (jitgrad, torch):
        params = _with_grads(lib, _GRADS, lib.float64)
        total = lib.nn.utils.get_total_norm([p.grad for p in params], 3.0)
        lib.nn.utils.clip_grads_with_norm_(params, 2.0, total)
        out.append([total.numpy()] + [p.grad.numpy() for p in params])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_clip_grad_value():
    params = _with_grads(jitgrad, _GRADS, jitgrad.float64)
    assert nn.utils.clip_grad_value_(params, 1.5) is None
    assert params[0].grad.tolist() == [[1.5, -1.5], [0.0, 1.0]]
    assert params[1].grad.tolist() == [1.5, 0.5, -1.5] and params[2].grad.item() == 0.25
    p = _with_grads(jitgrad, [np.array([-3.0])])[0]
    nn.utils.clip_grad_value_(p, 2)
    assert p.grad.tolist() == [-2.0]


def test_parameters_to_vector_and_back_match_torch():
    torch = _torch()
    out = []
    for lib in (jitgrad, torch):
        lib.manual_seed(0)
        m = lib.nn.Sequential(lib.nn.Linear(3, 2), lib.nn.Linear(2, 1)).double()
        with lib.no_grad():
            for k, p in enumerate(m.parameters()):
                p.copy_(lib.arange(float(p.numel())).reshape(p.shape) + 10 * k)
        v = lib.nn.utils.parameters_to_vector(m.parameters())
        (v * v).sum().backward()                             # recorded: gradients reach params
        grads = [p.grad.numpy().copy() for p in m.parameters()]
        new = lib.arange(float(v.numel()), dtype=lib.float64) * -1
        lib.nn.utils.vector_to_parameters(new, m.parameters())
        shares = np.shares_memory(m[0].weight.detach().numpy(), new.numpy())
        out.append((v.detach().numpy(), grads, [p.detach().numpy() for p in m.parameters()], shares))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    for a, b in zip(out[0][1] + out[0][2], out[1][1] + out[1][2]):
        np.testing.assert_array_equal(a, b)
    assert out[0][3] and out[1][3]
    for bad in ([1, 2], np.ones(2)):
        _same_error(lambda lib: lib.nn.utils.vector_to_parameters(bad, []), torch)
    _same_error(lambda lib: lib.nn.utils.parameters_to_vector([]), torch)


def test_optimizer_follows_parameters_moved_by_vector_to_parameters():
    m = nn.Linear(2, 1, bias=False)
    opt = jitgrad.optim.SGD(m.parameters(), lr=1.0)
    m(jitgrad.ones(1, 2)).sum().backward()
    opt.step()
    vec = jitgrad.tensor([5.0, 6.0])
    nn.utils.vector_to_parameters(vec, m.parameters())
    m.zero_grad()
    m(jitgrad.ones(1, 2)).sum().backward()
    opt.step()
    assert m.weight.tolist() == [[4.0, 5.0]] and vec.tolist() == [4.0, 5.0]
