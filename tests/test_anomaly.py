"""Anomaly mode: the nan check inside the compiled replay names the node and, from the forward's
recorded stack, the line that made it; against PyTorch where installed."""
import inspect
import warnings

import numpy as np
import pytest

import jitgrad as torch
from jitgrad.autograd import Function
from jitgrad.engine.tape import TAPE, Tape


@pytest.fixture(autouse=True)
def _anomaly_off():
    yield
    torch.autograd.set_detect_anomaly(False)


def _log_of_zero(lib):
    x = lib.tensor([0.0, 1.0], requires_grad=True)
    y = x * 1
    z = lib.log(y) * 0          # d/dy: 0 * (1 / 0) = nan in LogBackward0
    return x, z


def test_detect_anomaly_names_the_op_and_the_forward_line():
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    with pytest.warns(UserWarning, match="Anomaly Detection has been enabled"):
        mode = torch.autograd.detect_anomaly()
    with mode:
        assert torch.is_anomaly_enabled()
        y = x * 1
        line = inspect.currentframe().f_lineno + 1
        z = torch.log(y) * 0
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with pytest.raises(RuntimeError) as e:
                z.sum().backward()
    assert str(e.value) == "Function 'LogBackward0' returned nan values in its 0th output."
    msg = str(w[-1].message)
    assert msg.startswith("Error detected in LogBackward0. Traceback of forward call that caused "
                          "the error:\n")
    assert f'test_anomaly.py", line {line}, in test_detect_anomaly' in msg
    assert "z = torch.log(y) * 0" in msg
    assert w[-1].filename == __file__           # the warning points at the user's backward call
    assert not torch.is_anomaly_enabled()
    z2 = torch.log(x * 1) * 0                   # off: nan flows silently, as torch
    z2.sum().backward()
    assert np.isnan(x.grad.numpy()[0]) and x.grad.numpy()[1] == 0


def test_the_error_matches_torch():
    pt = pytest.importorskip("torch")
    msgs = []
    for lib in (torch, pt):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with lib.autograd.detect_anomaly():
                x, z = _log_of_zero(lib)
                with pytest.raises(RuntimeError) as e:
                    z.sum().backward()
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


def test_set_detect_anomaly_call_context_manager_and_check_nan():
    torch.autograd.set_detect_anomaly(True)
    assert torch.is_anomaly_enabled() and torch.is_anomaly_check_nan_enabled()
    with torch.autograd.set_detect_anomaly(False):
        assert not torch.is_anomaly_enabled()
    assert torch.is_anomaly_enabled()
    with torch.autograd.set_detect_anomaly(True, check_nan=False):
        x, z = _log_of_zero(torch)
        z.sum().backward()                  # traces kept, but no nan check
        assert np.isnan(x.grad.numpy()[0])
    torch.autograd.set_detect_anomaly(False)
    assert not torch.is_anomaly_enabled()


def test_off_it_costs_nothing():
    """The tape's own append runs (no wrapper) and the replay's mode has no check."""
    torch.autograd.set_detect_anomaly(True)
    assert "append" in TAPE.__dict__ and TAPE.check_nan
    torch.autograd.set_detect_anomaly(False)
    assert "append" not in TAPE.__dict__ and TAPE.append.__func__ is Tape.append
    assert not TAPE.check_nan


def test_a_function_returning_nan_and_the_decorator_form():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * float("nan")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        @torch.autograd.detect_anomaly()
        def run():
            x = torch.ones(2, requires_grad=True)
            (Bad.apply(x) * 3).sum().backward()

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match=r"^Function 'BadBackward' returned nan values in its "
                                               r"0th output\.$"):
            run()
    assert any("Error detected in BadBackward" in str(m.message) and "Bad.apply(x)" in str(m.message)
               for m in w)
    x = torch.ones(2, requires_grad=True)                # the engine is usable afterwards
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 3])


def test_nan_in_the_second_input_and_through_a_broadcast():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autograd.detect_anomaly():
            a = torch.tensor([1.0, 2.0], requires_grad=True)
            b = torch.tensor([0.0], requires_grad=True)
            z = (a / b) * 0                      # DivBackward0's gradient for b: -0 * a / 0 = nan
            with pytest.raises(RuntimeError, match="Function 'DivBackward0' returned nan values in "
                                                   "its 0th output."):
                z.sum().backward()


def test_create_graph_backward_is_checked_too():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autograd.detect_anomaly():
            x, z = _log_of_zero(torch)
            with pytest.raises(RuntimeError, match="Function 'LogBackward0' returned nan values in "
                                                   "its 0th output."):
                torch.autograd.grad(z.sum(), x, create_graph=True)
