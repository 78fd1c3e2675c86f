"""The engine's own math (engine/replay.py's tanh_value): accuracy against extended precision,
IEEE special values, and the eager forward equal to the compiled replay's bit for bit."""
import numpy as np
import pytest

import jitgrad


def _ulps(got, x, dtype):
    ref = np.tanh(x.astype(np.longdouble))
    spacing = np.spacing(np.abs(ref).astype(dtype)).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - ref) / spacing


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps,
                    reason="needs an extended-precision long double as the reference")
def test_tanh_is_within_two_ulp_everywhere():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(100_000) * s for s in (1e-9, 1e-3, 0.3, 0.62, 1, 4, 19)]
                       + [np.linspace(-25, 25, 20001), np.array([0.625, -0.625, 20.0, -20.0, 1e-310])])
    got = jitgrad.tanh(jitgrad.tensor(x)).numpy()
    assert _ulps(got, x, np.float64).max() <= 2.0


def test_tanh_special_values_and_sign_of_zero():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300, 5e-324, -5e-324])
    got = jitgrad.tanh(jitgrad.tensor(x)).numpy()
    np.testing.assert_array_equal(got, np.tanh(x))
    assert list(np.signbit(got[:2])) == [False, True]


@pytest.mark.parametrize("dtype", [jitgrad.float64, jitgrad.float32])
def test_tanh_replay_equals_eager(dtype):
    """float64: the same function, so the same bits; float32 eager is numpy's vectorised tanh,
    the replay rounds the float64 value: within one float32 ulp of each other."""
    x = jitgrad.randn(64, 33, dtype=dtype) * 3
    step = jitgrad.compile(lambda a: jitgrad.tanh(a) * 1.0, fullgraph=True)
    for _ in range(3):
        got = step(x).numpy()
    want = jitgrad.tanh(x).numpy()
    if dtype == jitgrad.float64:
        np.testing.assert_array_equal(got, want)
    else:
        assert (np.abs(got.astype(np.float64) - want) <= np.spacing(np.abs(want))).all()


def test_tanh_in_place_equals_tanh():
    """tanh_ (without grad, on a strided view too) computes what tanh computes."""
    x = jitgrad.randn(6, 8, dtype=jitgrad.float64) * 4
    want = jitgrad.tanh(x).numpy()
    y = x.clone()
    y.tanh_()
    np.testing.assert_array_equal(y.numpy(), want)
    z = x.clone()
    z[:, ::2].tanh_()
    np.testing.assert_array_equal(z.numpy()[:, ::2], want[:, ::2])
    np.testing.assert_array_equal(z.numpy()[:, 1::2], x.numpy()[:, 1::2])
