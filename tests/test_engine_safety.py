"""Engine reliability (issue 9): IEEE semantics in compiled code, exception-safe backward, shape
changes behind the tape, atomic rows, fork safety, detach_ under compaction, per-dtype storage,
a bounded shape table, and backward's argument checks."""
import gc
import os
import sys
import threading

import numpy as np
import pytest

import jitgrad as t
from jitgrad.engine.tape import TAPE

inf, nan = np.inf, np.nan


def _grad_of(fn, data, dtype=None):
    x = t.tensor(data, requires_grad=True, dtype=dtype)
    fn(x).backward()
    return x.grad.numpy()


# ---- 1. IEEE semantics: inf/nan in compiled backward, never an exception -------------------
IEEE_CASES = {      # name: (loss, input, torch's gradient)
    "sqrt_at_0": (lambda m, x: x.sqrt().sum(), [0., 4.], [inf, 0.25]),
    "log_at_0": (lambda m, x: x.log().sum(), [0., 2.], [inf, 0.5]),
    "div_by_0": (lambda m, x: (x / 0).sum(), [1., -1.], [inf, inf]),
    "reciprocal_at_0": (lambda m, x: (1 / x).sum(), [0., 2.], [-inf, -0.25]),
    "pow_half_at_0": (lambda m, x: (x ** 0.5).sum(), [0., 4.], [inf, 0.25]),
    "mean_of_empty": (lambda m, x: x[:0].mean(), [1., 2.], [0., 0.]),
    "masked_mean_of_nothing": (lambda m, x: x[x > 10].mean(), [1., 2., 3.], [0., 0., 0.]),
    "where_sqrt": (lambda m, x: m.where(x > 0, x.sqrt(), 0).sum(), [-1., 0., 4.], [nan, nan, 0.25]),
    "softmax_underflow_log": (lambda m, x: m.nn.functional.softmax(x, 0).log().sum(),
                              [0., 1000., -1000.], [nan, nan, nan]),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(IEEE_CASES))
def test_ieee_semantics_in_backward(name):
    fn, data, expected = IEEE_CASES[name]
    got = _grad_of(lambda x: fn(t, x), data)
    np.testing.assert_array_equal(got, np.array(expected))
    # the engine is still fine afterwards
    assert _grad_of(lambda x: (x * 3).sum(), [1., 2.]).tolist() == [3., 3.]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(IEEE_CASES))
def test_ieee_semantics_match_torch(name):
    torch = pytest.importorskip("torch")
    fn, data, _ = IEEE_CASES[name]
    for dtype in (np.float32, np.float64):
        x = torch.tensor(np.array(data, dtype), requires_grad=True)
        fn(torch, x).backward()
        got = _grad_of(lambda v: fn(t, v), np.array(data, dtype))
        np.testing.assert_array_equal(got, x.grad.numpy())
