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
