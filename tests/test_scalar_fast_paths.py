"""The 0-dim fast paths of the small ops (Python float arithmetic, item stores into the arena,
the compiled scalar tanh) give what numpy's general path gives, bit for bit, recorded or not."""
import warnings

import numpy as np
import pytest

import jitgrad

VALUES = [0.0, -0.0, 1.0, -2.5, 0.1, 3.0, 1e308, -1e308, 5e-324, 2.2250738585072014e-308,
          np.inf, -np.inf, np.nan, -np.nan]


def _bits(a):
    return np.asarray(a, np.float64).tobytes()


def _numpy(op, x, y):
    with np.errstate(all="ignore"):
        return {"add": np.add, "sub": np.subtract, "mul": np.multiply,
                "div": np.true_divide}[op](np.asarray(x), y)


def _t(v, rg=False):
    return jitgrad.tensor(np.asarray(v, np.float64), requires_grad=rg)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("rg", [False, True])
def test_binary_0dim_float64_bit_for_bit(op, rg):
    fn = getattr(jitgrad, op)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # the fast paths must not warn where numpy is quiet
        for x in VALUES:
            for y in VALUES:
                for other in (_t(y), float(y)):
                    out = fn(_t(x, rg), other)
                    assert out.dtype == jitgrad.float64 and out.shape == ()
                    assert type(out._a) is np.ndarray
                    assert _bits(out._a) == _bits(_numpy(op, x, np.asarray(y))), (op, x, y)
                    assert (out.grad_fn is not None) == rg


def test_neg_0dim_float64_bit_for_bit():
    for x in VALUES:
        out = -_t(x, True)
        assert _bits(out._a) == _bits(np.negative(np.asarray(x)))
        assert out.grad_fn.name() == "NegBackward0"


def test_tanh_0dim_float64_is_the_vectorised_kernel():
    xs = np.array([v for v in VALUES] + list(np.linspace(-25, 25, 201)), np.float64)
    whole = jitgrad.tensor(xs).tanh()._a       # the array path: the compiled kernel
    for i, v in enumerate(xs):
        out = _t(v, True).tanh()
        assert out.shape == () and out.dtype == jitgrad.float64
        assert _bits(out._a) == _bits(whole[i]), v


def test_0dim_gradients_and_saved_values():
    w, b = _t(0.9999, True), _t(1e-4, True)
    y = _t(1.0)
    for _ in range(50):
        y = (y * w + b) / w - b * 0.5
        y = y.tanh() * 2.0
    y.backward()
    w64, b64 = jitgrad.tensor(np.full(1, 0.9999), requires_grad=True), \
        jitgrad.tensor(np.full(1, 1e-4), requires_grad=True)
    y = jitgrad.tensor(np.ones(1))
    for _ in range(50):       # the same graph on 1-element vectors: numpy's path throughout
        y = (y * w64 + b64) / w64 - b64 * 0.5
        y = y.tanh() * 2.0
    y.sum().backward()
    assert w.grad.item() == w64.grad.item() and b.grad.item() == b64.grad.item()


def test_0dim_in_place_check_still_fires():
    w = _t(2.0, True)
    x = _t(3.0, True) * 1.0
    y = x * w                  # saves x (a non-leaf) and w
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


@pytest.mark.parametrize("name, v", [("exp", 1000.0), ("log", -1.0), ("log", 0.0), ("sqrt", -1.0),
                                     ("reciprocal", 0.0)])
@pytest.mark.parametrize("shape", [(), (2,)])
def test_unary_silent_when_numpy_would_warn_or_raise(name, v, shape):
    x = np.full(shape, v)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(x)
    for strict in ("warnings", "seterr"):
        with warnings.catch_warnings(), np.errstate(all="raise" if strict == "seterr" else "warn"):
            warnings.simplefilter("error")
            out = getattr(jitgrad.tensor(x, requires_grad=True), name)()
        assert np.array_equal(out._a, want, equal_nan=True) and out._a.shape == shape
