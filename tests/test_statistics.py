"""jitgrad/ops/statistics.py (issue 13): order statistics and nan-aware reductions.

Hand-computed values run without torch; the comparisons with PyTorch (values, indices, dtypes,
gradients in float64 and float32, errors and messages) skip without it, test by test."""
import math

import numpy as np
import pytest

import jitgrad
from jitgrad.autograd import gradcheck, gradgradcheck

NAN = math.nan


def _torch():
    return pytest.importorskip("torch")


# ---- hand-computed values ----------------------------------------------------------------------
def test_median_values_by_hand():
    x = jitgrad.tensor([[3.0, 1.0, 3.0, 1.0], [2.0, NAN, 2.0, NAN], [5.0, 5.0, 5.0, 1.0]])
    assert jitgrad.median(jitgrad.tensor([4.0, 1.0, 3.0, 2.0])).item() == 2.0      # the lower one
    assert math.isnan(jitgrad.median(x).item())
    assert jitgrad.nanmedian(x).item() == 2.0
    v, i = jitgrad.median(x, 1)
    np.testing.assert_array_equal(v.numpy(), [1.0, NAN, 5.0])
    assert i.tolist() == [3, 1, 0]        # ties: the stable order's; NaN: the first NaN
    v, i = x.nanmedian(dim=1, keepdim=True)
    assert v.shape == (3, 1) and v.flatten().tolist() == [1.0, 2.0, 5.0]
    assert i.flatten().tolist() == [3, 0, 0]
    assert math.isnan(jitgrad.median(jitgrad.tensor([])).item())
    r = jitgrad.median(jitgrad.tensor(2.0), 0)
    assert isinstance(r, jitgrad.return_types.median) and r.values.item() == 2.0 and r.indices.item() == 0


def test_median_gradient_is_shared_by_ties():
    x = jitgrad.tensor([3.0, 1.0, 2.0, 2.0, 1.0, 3.0], requires_grad=True)
    jitgrad.median(x).backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.5, 0.5, 0.0, 0.0]
    x = jitgrad.tensor([1.0, NAN, 2.0, NAN], requires_grad=True)
    jitgrad.median(x).backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.0, 0.5]
    x = jitgrad.tensor([0.1, 0.1, 0.1], dtype=jitgrad.float64, requires_grad=True)
    assert jitgrad.median(x).item() == 0.1       # exact: not a sum of the ties over their count
    x = jitgrad.tensor([[3.0, 1.0, 2.0], [2.0, 2.0, 2.0]], requires_grad=True)
    jitgrad.median(x, 1).values.sum().backward()
    assert x.grad.tolist() == [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]


def test_kthvalue_mode_aminmax_msort_by_hand():
    x = jitgrad.tensor([[1.0, 1.0, 1.0, 2.0], [3.0, 1.0, 3.0, 1.0]])
    v, i = x.kthvalue(2)
    assert v.tolist() == [1.0, 1.0] and i.tolist() == [0, 3]     # PyTorch's quickselect's choice
    v, i = jitgrad.mode(jitgrad.tensor([[1.0, 2.0, 2.0, 1.0, 3.0], [1.0, 3.0, 3.0, 2.0, 3.0]]))
    assert v.tolist() == [1.0, 3.0] and i.tolist() == [3, 4]
    assert isinstance(jitgrad.mode(x), jitgrad.return_types.mode)
    r = jitgrad.aminmax(jitgrad.tensor([[4, 2], [7, 5]]), dim=0)
    assert r.min.tolist() == [4, 2] and r.max.tolist() == [7, 5]
    assert jitgrad.aminmax(jitgrad.tensor([[4, 2], [7, 5]]), keepdim=True).max.shape == (1, 1)
    assert jitgrad.msort(jitgrad.tensor([[3, 1], [1, 2]])).tolist() == [[1, 1], [3, 2]]


def test_nan_reductions_and_count_by_hand():
    x = jitgrad.tensor([[1.0, NAN, 3.0], [NAN, NAN, NAN]])
    assert jitgrad.nansum(x).item() == 4.0
    assert x.nansum(1).tolist() == [4.0, 0.0]
    assert jitgrad.nanmean(x).item() == 2.0
    m = jitgrad.nanmean(x, 1)
    assert m[0].item() == 2.0 and math.isnan(m[1].item())
    assert jitgrad.nansum(jitgrad.tensor([1, 2])).dtype == jitgrad.int64
    assert jitgrad.nansum(x, dtype=jitgrad.float64).dtype == jitgrad.float64
    c = jitgrad.count_nonzero(jitgrad.tensor([[0, 1, 2], [0, 0, 3]]), dim=0)
    assert c.tolist() == [0, 1, 2] and c.dtype == jitgrad.int64
    assert jitgrad.tensor([[0.0, NAN], [1.0, 0.0]]).count_nonzero().item() == 2
    y = jitgrad.tensor([1.0, NAN, 3.0], requires_grad=True)
    jitgrad.nanmean(y).backward()
    assert y.grad.tolist() == [0.5, 0.0, 0.5]


def test_quantile_by_hand():
    x = jitgrad.tensor([1.0, 2.0, 3.0, 4.0])
    expected = {"linear": 1.75, "lower": 1.0, "higher": 2.0, "midpoint": 1.5, "nearest": 2.0}
    for mode, value in expected.items():
        assert jitgrad.quantile(x, 0.25, interpolation=mode).item() == value
    q = jitgrad.quantile(jitgrad.tensor([[1.0, 5.0], [3.0, 7.0]]), jitgrad.tensor([0.0, 0.5, 1.0]), dim=1,
                         keepdim=True)
    assert q.shape == (3, 2, 1) and q.flatten().tolist() == [1.0, 3.0, 3.0, 5.0, 5.0, 7.0]
    assert math.isnan(jitgrad.quantile(jitgrad.tensor([1.0, NAN]), 0.5).item())
    assert jitgrad.nanquantile(jitgrad.tensor([1.0, NAN, 3.0]), 0.5).item() == 2.0
    xg = jitgrad.tensor([1.0, 5.0, 2.0, 7.0], requires_grad=True)
    qg = jitgrad.tensor([0.3, 0.6], requires_grad=True)
    jitgrad.quantile(xg, qg).sum().backward()
    np.testing.assert_allclose(xg.grad.numpy(), [0.1, 0.8, 1.1, 0.0], atol=1e-6)
    np.testing.assert_allclose(qg.grad.numpy(), [3.0, 9.0], atol=1e-5)


def test_errors_by_hand():
    with pytest.raises(IndexError, match=r"median\(\): Expected reduction dim 0 to have non-zero size."):
        jitgrad.median(jitgrad.zeros(0, 3), 0)
    with pytest.raises(RuntimeError, match="selected number k out of range for dimension 1"):
        jitgrad.kthvalue(jitgrad.zeros(2, 3), 4)
    with pytest.raises(RuntimeError, match=r"q must be in the range \[0, 1\] but got 1.5"):
        jitgrad.quantile(jitgrad.zeros(3), 1.5)
    with pytest.raises(RuntimeError, match="interpolation must be one of linear"):
        jitgrad.quantile(jitgrad.zeros(3), 0.5, interpolation="cubic")
    with pytest.raises(NotImplementedError, match="median_cpu"):
        jitgrad.median(jitgrad.tensor([True]))


# ---- against PyTorch ---------------------------------------------------------------------------
def _data(shape, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "distinct":
        return rng.permutation(np.prod(shape, dtype=int)).reshape(shape) * 0.37 - 1.0
    a = rng.integers(0, 3, shape).astype(float)
    if kind == "nan":
        a[rng.random(shape) < 0.3] = NAN
    return a


SHAPES = [(), (1,), (5,), (4, 6), (3, 4, 5), (0,), (0, 3), (3, 0)]


def _calls(ndim):
    """(name, call(lib, x), kinds of data it is compared on, gradient compared)"""
    dims = range(-max(ndim, 1), max(ndim, 1))
    calls = []
    for f in ("median", "nanmedian", "nansum", "nanmean", "msort", "aminmax"):
        calls.append((f, lambda t, x, f=f: getattr(t, f)(x), ("distinct", "ties", "nan"), True))
    calls.append(("count_nonzero", lambda t, x: t.count_nonzero(x), ("ties", "nan"), False))
    for d in dims:
        for kd in (False, True):
            for f in ("median", "nanmedian", "mode"):
                calls.append((f"{f}-{d}-{kd}", lambda t, x, f=f, d=d, kd=kd: getattr(t, f)(x, d, kd),
                              ("distinct", "ties") if f == "mode" else ("distinct", "ties", "nan"), True))
            for k in (1, 2, 5):
                calls.append((f"kthvalue-{k}-{d}-{kd}", lambda t, x, k=k, d=d, kd=kd: t.kthvalue(x, k, d, kd),
                              ("distinct", "ties", "nan"), True))
            calls.append((f"aminmax-{d}-{kd}", lambda t, x, d=d, kd=kd: t.aminmax(x, dim=d, keepdim=kd),
                          ("distinct", "ties", "nan"), True))
            for f in ("nansum", "nanmean"):
                calls.append((f"{f}-{d}-{kd}", lambda t, x, f=f, d=d, kd=kd: getattr(t, f)(x, d, kd),
                              ("distinct", "ties", "nan"), True))
        calls.append((f"count_nonzero-{d}", lambda t, x, d=d: t.count_nonzero(x, d), ("ties", "nan"), False))
    for f in ("quantile", "nanquantile"):
        for q in (0.0, 0.3, 0.5, 1.0, [0.1, 0.5, 0.9]):
            for mode in ("linear", "lower", "higher", "midpoint", "nearest"):
                def qq(t, x, q=q):
                    return t.tensor(q, dtype=x.dtype) if isinstance(q, list) else q
                for d in (None, *dims):
                    calls.append((f"{f}-{q}-{mode}-{d}",
                                  lambda t, x, f=f, qq=qq, mode=mode, d=d: getattr(t, f)(
                                      x, qq(t, x), d, d == 0, interpolation=mode),
                                  ("distinct", "ties", "nan"), True))
    return calls


def _compare(torch, name, call, a, dtype, grad, seed):
    a = a.astype(dtype)
    xt = torch.tensor(a, requires_grad=grad)
    xj = jitgrad.tensor(a, requires_grad=grad)
    try:
        rt = call(torch, xt)
    except Exception as e:      # noqa: BLE001 (the error is the result compared)
        with pytest.raises(type(e)) as info:
            call(jitgrad, xj)
        assert str(info.value) == str(e), name
        return
    rj = call(jitgrad, xj)
    assert type(rj).__name__ == type(rt).__name__ or not isinstance(rt, tuple), name
    rts, rjs = (rt, rj) if isinstance(rt, tuple) else ((rt,), (rj,))
    for u, v in zip(rts, rjs):
        un, vn = u.detach().numpy(), v.detach().numpy()
        assert un.shape == vn.shape and un.dtype == vn.dtype, name
        tol = 1e-6 if dtype == np.float32 else 1e-12      # (PyTorch's lerp rounds its own way)
        np.testing.assert_allclose(vn, un, rtol=tol, atol=tol, err_msg=name)
    if grad and rts[0].requires_grad and rts[0].numel():
        w = np.random.default_rng(seed).standard_normal(rts[0].shape).astype(dtype)
        (rts[0] * torch.tensor(w)).sum().backward()
        (rjs[0] * jitgrad.tensor(w)).sum().backward()
        np.testing.assert_allclose(xj.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["distinct", "ties", "nan"])
def test_against_torch(shape, kind):
    torch = _torch()
    a = _data(shape, kind, seed=len(shape) * 7 + len(kind))
    for i, (name, call, kinds, grad) in enumerate(_calls(len(shape))):
        if kind not in kinds:
            continue
        # PyTorch's unstable sort of more than 16 elements picks its own among equal values:
        # the quantiles' values agree, the gradients may go to another tied element
        tie_grads = kind != "distinct" and "quantile" in name and a.size > 16
        # nanmean of an all-NaN row: PyTorch's gradient is NaN (inf * 0), jitgrad's where() 0
        all_nan = "nanmean" in name and kind == "nan"
        for dtype in (np.float64, np.float32):
            _compare(torch, name, call, a, dtype, grad and not tie_grads and not all_nan, i)


def test_mode_int_and_bool_against_torch():
    torch = _torch()
    for a in ([[1, 2, 2, 1, 3, 3, 3]], [[True, False, True]], [[5, 5, 1, 1]]):
        rt, rj = torch.mode(torch.tensor(a)), jitgrad.mode(jitgrad.tensor(a))
        assert rj.values.tolist() == rt.values.tolist() and rj.indices.tolist() == rt.indices.tolist()


ERRORS = [
    lambda t: t.median(t.zeros(0, 3), 0),
    lambda t: t.nanmedian(t.zeros(2, 0), -1),
    lambda t: t.median(t.zeros(2, 3), 2),
    lambda t: t.median(t.tensor([True, False])),
    lambda t: t.kthvalue(t.zeros(2, 3), 4),
    lambda t: t.kthvalue(t.zeros(2, 3), 0, 0),
    lambda t: t.kthvalue(t.tensor(3.0), 2),
    lambda t: t.kthvalue(t.zeros(0, 3), 1, 0),
    lambda t: t.kthvalue(t.tensor([True]), 1),
    lambda t: t.mode(t.zeros(0, 3), 0),
    lambda t: t.aminmax(t.zeros(0)),
    lambda t: t.aminmax(t.zeros(0, 3), dim=0),
    lambda t: t.nanmean(t.tensor([1, 2])),
    lambda t: t.count_nonzero(t.tensor([[1, 0]]), dim=(0, 0)),
    lambda t: t.quantile(t.zeros(0), 0.5),
    lambda t: t.nanquantile(t.zeros(0), 0.5),
    lambda t: t.quantile(t.zeros(3), 1.5),
    lambda t: t.nanquantile(t.zeros(3), -2.0),
    lambda t: t.quantile(t.zeros(3), t.tensor([0.5, 2.0])),
    lambda t: t.quantile(t.zeros(3), t.tensor([[0.5]])),
    lambda t: t.quantile(t.zeros(3, dtype=t.int64), 0.5),
    lambda t: t.quantile(t.zeros(3), t.tensor([0.5], dtype=t.float64)),
    lambda t: t.quantile(t.zeros(3), 0.5, interpolation="foo"),
    lambda t: t.quantile(t.zeros(3), 0.5, dim=1),
]


@pytest.mark.parametrize("call", ERRORS)
def test_errors_against_torch(call):
    torch = _torch()
    with pytest.raises(Exception) as expected:
        call(torch)
    with pytest.raises(type(expected.value)) as got:
        call(jitgrad)
    assert str(got.value) == str(expected.value)


def test_methods_and_keywords_against_torch():
    torch = _torch()
    a = _data((3, 4), "distinct", 3)
    for call in (lambda x: x.median(dim=0, keepdim=True), lambda x: x.nanmedian(), lambda x: x.kthvalue(k=2, dim=0),
                 lambda x: x.mode(dim=1), lambda x: x.aminmax(dim=1), lambda x: x.msort(),
                 lambda x: x.nansum(dim=1), lambda x: x.nanmean(dim=(0, 1)), lambda x: x.count_nonzero(dim=1),
                 lambda x: x.quantile(q=0.4, dim=1, interpolation="nearest"), lambda x: x.nanquantile(0.4),
                 lambda x: jitgrad.median(input=x, dim=1) if isinstance(x, jitgrad.Tensor)
                 else torch.median(input=x, dim=1)):
        rt, rj = call(torch.tensor(a)), call(jitgrad.tensor(a))
        rts, rjs = (rt, rj) if isinstance(rt, tuple) else ((rt,), (rj,))
        for u, v in zip(rts, rjs):
            np.testing.assert_allclose(v.numpy(), u.numpy())


# ---- gradcheck ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda x: jitgrad.median(x),
    lambda x: jitgrad.median(x, 1).values,
    lambda x: jitgrad.nanmedian(x, 0, True).values,
    lambda x: jitgrad.kthvalue(x, 2, 1).values,
    lambda x: jitgrad.quantile(x, jitgrad.tensor([0.2, 0.7], dtype=jitgrad.float64), 1),
    lambda x: jitgrad.nanquantile(x, 0.4, interpolation="midpoint"),
    lambda x: jitgrad.nanmean(x, 1),
    lambda x: jitgrad.aminmax(x, dim=0).max,
])
def test_gradcheck(fn):
    x = jitgrad.tensor(_data((3, 4), "distinct", 5), dtype=jitgrad.float64, requires_grad=True)
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


# ---- covariance and products --------------------------------------------------------------------
def test_cov_corrcoef_by_hand():
    x = jitgrad.tensor([[1.0, 2.0, 4.0], [3.0, 1.0, 2.0]])
    np.testing.assert_allclose(jitgrad.cov(x).numpy(), [[7 / 3, -0.5], [-0.5, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(jitgrad.cov(x, correction=0).numpy(), [[14 / 9, -1 / 3], [-1 / 3, 2 / 3]],
                               rtol=1e-6)
    fw = jitgrad.cov(x, fweights=jitgrad.tensor([1, 2, 1]))    # the same as repeating column 1
    np.testing.assert_allclose(fw.numpy(), jitgrad.cov(x[:, [0, 1, 1, 2]]).numpy(), rtol=1e-6)
    assert jitgrad.cov(jitgrad.tensor([1.0, 2.0, 4.0])).shape == ()
    r = jitgrad.corrcoef(x)
    np.testing.assert_allclose(r.numpy(), [[1.0, -0.5 / math.sqrt(7 / 3)], [-0.5 / math.sqrt(7 / 3), 1.0]],
                               rtol=1e-6)
    with pytest.warns(UserWarning, match="degrees of freedom is <= 0"):
        assert math.isnan(jitgrad.cov(jitgrad.tensor([[1.0], [2.0]]))[0, 0].item())


def test_products_by_hand():
    a, b = jitgrad.tensor([[1.0, 2.0], [3.0, 4.0]]), jitgrad.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert jitgrad.kron(a, b).tolist() == [[0, 1, 0, 2], [1, 0, 2, 0], [0, 3, 0, 4], [3, 0, 4, 0]]
    assert jitgrad.inner(a, b).tolist() == [[2.0, 1.0], [4.0, 3.0]]
    assert jitgrad.vdot(jitgrad.tensor([1.0, 2.0]), jitgrad.tensor([3.0, 4.0])).item() == 11.0
    assert jitgrad.dist(jitgrad.tensor([1.0, 2.0]), jitgrad.tensor([4.0, 6.0])).item() == 5.0
    assert jitgrad.dist(jitgrad.tensor([1.0, 2.0]), jitgrad.tensor([4.0, 6.0]), 1).item() == 7.0
    v = jitgrad.tensor([1.0, 1.0])
    assert jitgrad.addmv(v, a, v, beta=2, alpha=0.5).tolist() == [3.5, 5.5]
    assert jitgrad.addmv(jitgrad.tensor([NAN, NAN]), a, v, beta=0).tolist() == [3.0, 7.0]
    assert jitgrad.addr(a, v, jitgrad.tensor([1.0, 2.0])).tolist() == [[2.0, 4.0], [4.0, 6.0]]
    bb = jitgrad.stack([a, b])
    assert jitgrad.baddbmm(jitgrad.zeros(2, 2), bb, bb, alpha=2).shape == (2, 2, 2)
    np.testing.assert_allclose(jitgrad.addbmm(jitgrad.ones(2, 2), bb, bb).numpy(),
                               (a @ a + b @ b + 1).numpy())
    with pytest.warns(UserWarning, match="chain_matmul is deprecated"):
        jitgrad.ops.statistics._WARNED_ONCE.clear()
        assert jitgrad.chain_matmul(a, b, a).tolist() == (a @ b @ a).tolist()
    assert jitgrad.take_along_dim(a, jitgrad.tensor([[1], [0]]), 1).tolist() == [[2.0], [3.0]]
    assert jitgrad.take_along_dim(a, jitgrad.tensor([3, 0])).tolist() == [4.0, 1.0]


PRODUCTS = [   # (name, call(lib, *tensors), shapes of its float inputs)
    ("cov", lambda t, x: t.cov(x), [(3, 5)]),
    ("cov1", lambda t, x: t.cov(x), [(5,)]),
    ("cov-c0", lambda t, x: t.cov(x, correction=0), [(2, 4)]),
    ("cov-w", lambda t, x, w: t.cov(x, fweights=t.tensor([1, 2, 0, 3]), aweights=w.abs()), [(3, 4), (4,)]),
    ("cov-w-c2", lambda t, x, w: t.cov(x, correction=2, aweights=w.abs() + 0.5), [(3, 4), (4,)]),
    ("corrcoef", lambda t, x: t.corrcoef(x), [(3, 5)]),
    ("corrcoef1", lambda t, x: t.corrcoef(x), [(5,)]),
    ("dist", lambda t, x, y: t.dist(x, y), [(3, 4), (4,)]),
    ("dist-1", lambda t, x, y: t.dist(x, y, 1), [(3, 4), (3, 1)]),
    ("dist-inf", lambda t, x, y: t.dist(x, y, float("inf")), [(2, 3), (2, 3)]),
    ("dist-3", lambda t, x, y: t.dist(x, y, 3.5), [(5,), (5,)]),
    ("dist-0d", lambda t, x, y: t.dist(x, y), [(), ()]),
    ("inner", lambda t, x, y: t.inner(x, y), [(2, 3), (4, 3)]),
    ("inner3", lambda t, x, y: t.inner(x, y), [(2, 1, 3), (3,)]),
    ("inner0", lambda t, x, y: t.inner(x, y), [(2, 3), ()]),
    ("inner-empty", lambda t, x, y: t.inner(x, y), [(0, 3), (2, 3)]),
    ("vdot", lambda t, x, y: t.vdot(x, y), [(4,), (4,)]),
    ("kron", lambda t, x, y: t.kron(x, y), [(2, 3), (3, 2)]),
    ("kron-mixed", lambda t, x, y: t.kron(x, y), [(2,), (2, 3, 1)]),
    ("kron-0d", lambda t, x, y: t.kron(x, y), [(), (2,)]),
    ("addmv", lambda t, i, m, v: t.addmv(i, m, v), [(2,), (2, 3), (3,)]),
    ("addmv-ba", lambda t, i, m, v: t.addmv(i, m, v, beta=0.5, alpha=-2), [(), (2, 3), (3,)]),
    ("addmv-b0", lambda t, i, m, v: t.addmv(i, m, v, beta=0), [(1,), (2, 3), (3,)]),
    ("addr", lambda t, i, x, y: t.addr(i, x, y, beta=2, alpha=0.5), [(3, 1), (3,), (2,)]),
    ("baddbmm", lambda t, i, x, y: t.baddbmm(i, x, y, beta=0.5, alpha=2), [(3, 4), (2, 3, 5), (2, 5, 4)]),
    ("addbmm", lambda t, i, x, y: t.addbmm(i, x, y, beta=1.5, alpha=0.5), [(3, 4), (2, 3, 5), (2, 5, 4)]),
    ("chain_matmul", lambda t, a, b, c, d: t.chain_matmul(a, b, c, d), [(2, 5), (5, 1), (1, 4), (4, 3)]),
    ("take_along_dim", lambda t, x: t.take_along_dim(x, t.tensor([[[2], [0], [1]]]), 2), [(2, 3, 4)]),
    ("take_along_dim-flat", lambda t, x: t.take_along_dim(x, t.tensor([5, 0, 5])), [(2, 3)]),
]


@pytest.mark.filterwarnings("ignore:torch.chain_matmul is deprecated")
@pytest.mark.parametrize("name,call,shapes", PRODUCTS, ids=[p[0] for p in PRODUCTS])
def test_products_against_torch(name, call, shapes):
    torch = _torch()
    rng = np.random.default_rng(len(name))
    arrays = [rng.standard_normal(s) for s in shapes]
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 2e-5)):
        ts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        js = [jitgrad.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        rt, rj = call(torch, *ts), call(jitgrad, *js)
        assert rj.shape == tuple(rt.shape) and str(rj.dtype) == str(rt.dtype).replace("torch", "jitgrad")
        np.testing.assert_allclose(rj.detach().numpy(), rt.detach().numpy(), rtol=tol, atol=tol, err_msg=name)
        w = rng.standard_normal(rt.shape).astype(dtype)
        (rt * torch.tensor(w)).sum().backward()
        (rj * jitgrad.tensor(w)).sum().backward()
        for xt, xj in zip(ts, js):
            gt = xt.grad.numpy() if xt.grad is not None else np.zeros(xt.shape, dtype)
            gj = xj.grad.numpy() if xj.grad is not None else np.zeros(xj.shape, dtype)
            np.testing.assert_allclose(gj, gt, rtol=10 * tol, atol=10 * tol, err_msg=name)


PRODUCT_ERRORS = [
    lambda t: t.cov(t.zeros(2, 2, 2)),
    lambda t: t.cov(t.tensor([True])),
    lambda t: t.cov(t.zeros(2, 3), fweights=t.tensor([[1]])),
    lambda t: t.cov(t.zeros(2, 3), fweights=t.tensor([1.0, 2, 3])),
    lambda t: t.cov(t.zeros(2, 3), fweights=t.tensor([1, 2])),
    lambda t: t.cov(t.zeros(2, 3), fweights=t.tensor([1, -2, 3])),
    lambda t: t.cov(t.zeros(2, 3), aweights=t.tensor([1, 2, 3])),
    lambda t: t.cov(t.zeros(2, 3), aweights=t.tensor([1.0, 2])),
    lambda t: t.cov(t.zeros(2, 3), aweights=t.tensor([1.0, -2, 3])),
    lambda t: t.cov(t.zeros(2, 3), aweights=t.tensor([0.0, 0, 0])),
    lambda t: t.corrcoef(t.zeros(2, 2, 2)),
    lambda t: t.dist(t.zeros(2, 3), t.zeros(2)),
    lambda t: t.dist(t.tensor([1, 2]), t.tensor([1, 3])),
    lambda t: t.inner(t.zeros(2, 3), t.zeros(4)),
    lambda t: t.inner(t.zeros(2, 3), t.zeros(3, dtype=t.float64)),
    lambda t: t.vdot(t.zeros(2, 3), t.zeros(4)),
    lambda t: t.vdot(t.zeros(3), t.zeros(4)),
    lambda t: t.vdot(t.zeros(3), t.zeros(3, dtype=t.float64)),
    lambda t: t.addmv(t.zeros(2), t.zeros(2, 3), t.zeros(4)),
    lambda t: t.addmv(t.zeros(3), t.zeros(2, 3), t.zeros(3)),
    lambda t: t.addmv(t.zeros(2), t.zeros(2, 3, 1), t.zeros(3)),
    lambda t: t.addmv(t.zeros(2), t.zeros(2, 2), t.zeros(2, dtype=t.float64)),
    lambda t: t.addr(t.zeros(2, 3), t.zeros(2), t.zeros(4)),
    lambda t: t.addr(t.zeros(2, 3), t.zeros(2, 1), t.zeros(3)),
    lambda t: t.addr(t.tensor([[True]]), t.tensor([True]), t.tensor([True]), beta=0.5),
    lambda t: t.addr(t.ones(2, 2, dtype=t.int64), t.ones(2, dtype=t.int64), t.ones(2, dtype=t.int64), alpha=1.5),
    lambda t: t.baddbmm(t.zeros(2, 3, 4), t.zeros(2, 3, 5), t.zeros(2, 6, 4)),
    lambda t: t.baddbmm(t.zeros(5, 4), t.zeros(2, 3, 5), t.zeros(2, 5, 4)),
    lambda t: t.baddbmm(t.zeros(3, 4), t.zeros(3, 5), t.zeros(2, 5, 4)),
    lambda t: t.baddbmm(t.ones(2, 2, 2), t.ones(2, 2, 2), t.ones(2, 2, 2, dtype=t.float64)),
    lambda t: t.addbmm(t.zeros(3, 4), t.zeros(2, 3, 5), t.zeros(1, 5, 4)),
    lambda t: t.addbmm(t.zeros(3, 4), t.zeros(2, 3, 5), t.zeros(2, 6, 4)),
    lambda t: t.addbmm(t.zeros(3, 3), t.zeros(2, 3, 5), t.zeros(2, 5, 4)),
    lambda t: t.addbmm(t.zeros(4), t.zeros(3, 5), t.zeros(2, 5, 4)),
    lambda t: t.chain_matmul(),
    lambda t: t.chain_matmul(t.zeros(2, 3), t.zeros(3)),
    lambda t: t.chain_matmul(t.zeros(2, 3), t.zeros(4, 2)),
    lambda t: t.take_along_dim(t.zeros(2, 3), t.tensor([0, 1]), 1),
    lambda t: t.take_along_dim(t.zeros(2, 3), t.tensor([[0, 1]], dtype=t.int32), 1),
    lambda t: t.take_along_dim(t.zeros(2, 3), t.tensor([[0], [1], [1]]), 1),
    lambda t: t.take_along_dim(t.zeros(2, 3), t.tensor([[7]])),
]


@pytest.mark.filterwarnings("ignore:torch.chain_matmul is deprecated")
@pytest.mark.parametrize("call", PRODUCT_ERRORS)
def test_product_errors_against_torch(call):
    test_errors_against_torch(call)


def test_integer_scaling_against_torch():
    """PyTorch truncates a float beta or alpha for integer tensors (addr refuses it)."""
    torch = _torch()
    for lib_call in (lambda t, i: t.addmv(t.ones(2, dtype=i), t.ones(2, 2, dtype=i), t.ones(2, dtype=i), alpha=1.5),
                     lambda t, i: t.baddbmm(t.ones(2, 2, 2, dtype=i), t.ones(2, 2, 2, dtype=i),
                                            t.ones(2, 2, 2, dtype=i), beta=0.5),
                     lambda t, i: t.addbmm(t.ones(2, 2, dtype=i), t.ones(2, 2, 2, dtype=i),
                                           t.ones(2, 2, 2, dtype=i), beta=2.5, alpha=1.5),
                     lambda t, i: t.addr(t.ones(2, 2, dtype=t.bool), t.ones(2, dtype=t.bool),
                                         t.zeros(2, dtype=t.bool), beta=2),
                     lambda t, i: t.cov(t.tensor([[1, 2, 4], [3, 1, 2]])),
                     lambda t, i: t.kron(t.tensor([1, 2]), t.tensor([1.0, 3.0]))):
        rt, rj = lib_call(torch, torch.int64), lib_call(jitgrad, jitgrad.int64)
        np.testing.assert_allclose(rj.numpy(), rt.numpy(), rtol=1e-6)
        assert str(rj.dtype)[8:] == str(rt.dtype)[6:]


@pytest.mark.parametrize("fn,shapes", [
    (lambda x: jitgrad.cov(x, aweights=jitgrad.tensor([0.5, 1.0, 2.0, 1.0], dtype=jitgrad.float64)), [(3, 4)]),
    (lambda x: jitgrad.corrcoef(x), [(3, 4)]),
    (lambda x, y: jitgrad.dist(x, y, 3), [(3, 4), (4,)]),
    (lambda x, y: jitgrad.kron(x, y), [(2, 3), (2,)]),
    (lambda i, x, y: jitgrad.addbmm(i, x, y, beta=0.5, alpha=2), [(3, 4), (2, 3, 5), (2, 5, 4)]),
])
def test_products_gradcheck(fn, shapes):
    rng = np.random.default_rng(7)
    xs = [jitgrad.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    assert gradcheck(fn, xs)
    assert gradgradcheck(fn, xs)


def test_product_methods_against_torch():
    torch = _torch()
    rng = np.random.default_rng(11)
    a, b, v = rng.standard_normal((3, 3)), rng.standard_normal((2, 3, 3)), rng.standard_normal(3)
    calls = [lambda t, x, bb, vv: x.cov(correction=0), lambda t, x, bb, vv: x.corrcoef(),
             lambda t, x, bb, vv: x.dist(vv, p=1), lambda t, x, bb, vv: x.inner(other=x),
             lambda t, x, bb, vv: vv.vdot(vv), lambda t, x, bb, vv: x.kron(vv),
             lambda t, x, bb, vv: vv.addmv(x, vv, beta=2), lambda t, x, bb, vv: x.addr(vv, vv, alpha=3),
             lambda t, x, bb, vv: x.baddbmm(bb, bb), lambda t, x, bb, vv: x.addbmm(bb, bb),
             lambda t, x, bb, vv: vv.clone().addmv_(x, vv).sum() + x.clone().addr_(vv, vv) + x.clone().addbmm_(bb, bb),
             lambda t, x, bb, vv: bb.clone().baddbmm_(bb, bb, alpha=0.5),
             lambda t, x, bb, vv: x.take_along_dim(t.tensor([[0], [2], [1]]), dim=1)]
    for call in calls:
        rt = call(torch, torch.tensor(a), torch.tensor(b), torch.tensor(v))
        rj = call(jitgrad, jitgrad.tensor(a), jitgrad.tensor(b), jitgrad.tensor(v))
        np.testing.assert_allclose(rj.numpy(), rt.numpy(), rtol=1e-10, atol=1e-12)


# ---- indices, combinations, integration -----------------------------------------------------------
def test_indices_and_integration_by_hand():
    assert jitgrad.isin(jitgrad.tensor([1, 2, 3]), jitgrad.tensor([2, 5])).tolist() == [False, True, False]
    assert jitgrad.isin(2, jitgrad.tensor([1, 2])).shape == ()
    assert jitgrad.argwhere(jitgrad.tensor([[1, 0], [0, 2]])).tolist() == [[0, 0], [1, 1]]
    rows, cols = jitgrad.unravel_index(jitgrad.tensor([5, 1, -1]), (2, 3))
    assert rows.tolist() == [1, 0, 1] and cols.tolist() == [2, 1, 2]
    assert jitgrad.tril_indices(3, 3).tolist() == [[0, 1, 1, 2, 2, 2], [0, 0, 1, 0, 1, 2]]
    assert jitgrad.triu_indices(2, 3, 1).tolist() == [[0, 0, 1], [1, 2, 2]]
    assert jitgrad.cartesian_prod(jitgrad.tensor([1, 2]), jitgrad.tensor([3, 4])).tolist() == \
        [[1, 3], [1, 4], [2, 3], [2, 4]]
    assert jitgrad.combinations(jitgrad.tensor([1, 2, 3])).tolist() == [[1, 2], [1, 3], [2, 3]]
    assert jitgrad.combinations(jitgrad.tensor([1, 2]), 2, with_replacement=True).tolist() == \
        [[1, 1], [1, 2], [2, 2]]
    assert jitgrad.block_diag(jitgrad.tensor([[1, 2]]), jitgrad.tensor(3), jitgrad.tensor([4, 5])).tolist() == \
        [[1, 2, 0, 0, 0], [0, 0, 3, 0, 0], [0, 0, 0, 4, 5]]
    y = jitgrad.tensor([1.0, 2.0, 4.0])
    assert jitgrad.trapezoid(y).item() == 4.5 and jitgrad.trapz(y, dx=2).item() == 9.0
    assert jitgrad.trapezoid(y, jitgrad.tensor([0.0, 1.0, 3.0])).item() == 7.5
    assert jitgrad.cumulative_trapezoid(y).tolist() == [1.5, 4.5]
    np.testing.assert_allclose(jitgrad.logspace(0, 2, 3).numpy(), [1.0, 10.0, 100.0], rtol=1e-6)
    assert jitgrad.logspace(0, 2, 5, base=2, dtype=jitgrad.int64).tolist() == [1, 1, 2, 2, 4]


INDEX_CALLS = [
    lambda t: t.isin(t.tensor([1, 2, 3]), t.tensor([2.0, 5.0]), invert=True),
    lambda t: t.isin(t.tensor([[1.0, float("nan")]]), t.tensor([float("nan"), 1.0])),
    lambda t: t.isin(t.tensor([1.0, 2, 3]), 2),
    lambda t: t.isin(2, 3),
    lambda t: t.argwhere(t.tensor(3.0)),
    lambda t: t.argwhere(t.tensor(0.0)),
    lambda t: t.argwhere(t.tensor([[[1, 0], [0, 1]]])),
    lambda t: t.unravel_index(t.tensor(4), (2, 3)),
    lambda t: t.unravel_index(t.tensor([[6, 7]], dtype=t.int32), (2, 3, 1)),
    lambda t: t.unravel_index(t.tensor([1]), 6),
    lambda t: t.unravel_index(t.tensor([1.0]), (2, 3)),
    lambda t: t.unravel_index(t.tensor([1]), (2, -3)),
    lambda t: t.tril_indices(3, 4, 1),
    lambda t: t.triu_indices(4, 3, -1),
    lambda t: t.tril_indices(3, 3, dtype=t.int32),
    lambda t: t.triu_indices(0, 3),
    lambda t: t.tril_indices(-1, 3),
    lambda t: t.tril_indices(3, -3),
    lambda t: t.tril_indices(3, 3, dtype=t.float32),
    lambda t: t.cartesian_prod(t.tensor([1, 2]), t.tensor([3.0, 4, 5])),
    lambda t: t.cartesian_prod(t.tensor([1, 2])),
    lambda t: t.cartesian_prod(t.tensor([[1, 2]]), t.tensor([1])),
    lambda t: t.combinations(t.tensor([1.0, 2, 3]), 0),
    lambda t: t.combinations(t.tensor([1.0, 2, 3]), 4),
    lambda t: t.combinations(t.tensor([[1.0, 2, 3]]), 2),
    lambda t: t.combinations(t.tensor([1.0, 2, 3]), -1),
    lambda t: t.block_diag(),
    lambda t: t.block_diag(t.tensor([[[1]]])),
    lambda t: t.block_diag(t.zeros(0, 2), t.tensor([[1]]), t.tensor([2.0], dtype=t.float64)),
    lambda t: t.trapezoid(t.tensor([1, 2, 4])),
    lambda t: t.trapezoid(t.tensor([True])),
    lambda t: t.trapezoid(t.zeros(2, 0)),
    lambda t: t.trapezoid(t.tensor([1.0, 2, 4]), t.tensor([0.0, 1])),
    lambda t: t.trapezoid(t.tensor([1.0, 2, 4]), t.tensor([0.0, 1, 3]), dx=2),
    lambda t: t.cumulative_trapezoid(t.zeros(2, 0)),
    lambda t: t.cumulative_trapezoid(t.tensor([1, 2, 4]), dx=0.5),
    lambda t: t.logspace(0, 2, 5),
    lambda t: t.logspace(2.7, -1.5, 6, base=3, dtype=t.int64),
    lambda t: t.logspace(0.1, 2.3, 7, dtype=t.float64),
    lambda t: t.logspace(-3.3, 4.1, 11, base=1.7, dtype=t.float32),
    lambda t: t.logspace(0.5, 1, 1),
    lambda t: t.logspace(0, 1, 0),
    lambda t: t.logspace(0, 1, -1),
    lambda t: t.logspace(0, 1, 3, dtype=t.bool),
]


@pytest.mark.parametrize("call", INDEX_CALLS)
def test_indices_against_torch(call):
    torch = _torch()
    try:
        rt = call(torch)
    except Exception as e:     # noqa: BLE001 (the error is the result compared)
        with pytest.raises(type(e)) as got:
            call(jitgrad)
        assert str(got.value).replace("jitgrad.", "torch.") == str(e)
        return
    rj = call(jitgrad)
    rts, rjs = (rt, rj) if isinstance(rt, tuple) else ((rt,), (rj,))
    assert len(rts) == len(rjs)
    for u, v in zip(rts, rjs):
        assert v.shape == tuple(u.shape) and str(v.dtype)[8:] == str(u.dtype)[6:]
        if v.dtype == jitgrad.float32:    # logspace: PyTorch's float32 pow rounds its own way
            np.testing.assert_array_max_ulp(v.numpy(), u.numpy(), 1)
        else:
            np.testing.assert_array_equal(v.numpy(), u.numpy())


COMPOSED = [
    ("cartesian_prod", lambda t, x, y, z: t.cartesian_prod(x, y, z), [(2,), (3,), (1,)]),
    ("combinations", lambda t, x: t.combinations(x, 3), [(5,)]),
    ("combinations-r", lambda t, x: t.combinations(x, 2, with_replacement=True), [(3,)]),
    ("block_diag", lambda t, x, y, z: t.block_diag(x, y, z), [(2, 3), (), (4,)]),
    ("trapezoid", lambda t, y: t.trapezoid(y, dim=0), [(4, 3)]),
    ("trapezoid-dx", lambda t, y: t.trapezoid(y, dx=0.3), [(4, 3)]),
    ("trapezoid-x", lambda t, y, x: t.trapezoid(y, x, dim=0), [(4, 3), (4,)]),
    ("trapezoid-x2", lambda t, y, x: t.trapezoid(y, x), [(2, 4, 3), (4, 3)]),
    ("trapz", lambda t, y, x: t.trapz(y, x), [(2, 5), (5,)]),
    ("cumulative_trapezoid", lambda t, y: t.cumulative_trapezoid(y, dx=2.5), [(3, 4)]),
    ("cumulative_trapezoid-x", lambda t, y, x: t.cumulative_trapezoid(y, x, dim=0), [(4, 3), (4, 3)]),
]


@pytest.mark.parametrize("name,call,shapes", COMPOSED, ids=[c[0] for c in COMPOSED])
def test_composed_against_torch(name, call, shapes):
    test_products_against_torch(name, call, shapes)


def test_composed_gradcheck():
    rng = np.random.default_rng(3)
    y, x = (jitgrad.tensor(rng.standard_normal(s), requires_grad=True) for s in ((4, 3), (4,)))
    assert gradcheck(lambda y, x: jitgrad.trapezoid(y, x, dim=0), (y, x))
    assert gradcheck(lambda y, x: jitgrad.cumulative_trapezoid(y, x, dim=0), (y, x))
    assert gradcheck(lambda x: jitgrad.combinations(x, 2), (x,))
    assert gradcheck(lambda y, x: jitgrad.block_diag(y, x), (y, x))
