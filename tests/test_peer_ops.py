"""The ops a peer's op suite (tinygrad's test_ops.py) exercises beyond the op table's generated tests:
forward-only ops (bitwise, shifts, logic, tests of values, integer division), dtype and view
behaviour, index results, argument errors; hand-computed values always, PyTorch's values and
messages where it is installed; and the suite runner itself on a small synthetic suite."""
import textwrap

import numpy as np
import pytest

import jitgrad
from jitgrad.nn import functional as F

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
I32 = [[1, -8, 1], [32, 1, 6]]


def _both(fn, *arrays, dtype=None):
    """fn on jitgrad tensors (and on torch's, when installed, which must agree exactly)."""
    got = fn(jitgrad, *[jitgrad.tensor(a, dtype=getattr(jitgrad, dtype) if dtype else None) for a in arrays])
    if torch is not None:
        want = fn(torch, *[torch.tensor(a, dtype=getattr(torch, dtype) if dtype else None) for a in arrays])
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    return got.numpy()


def _same_error(fn, exc):
    """fn(lib) raises exc for jitgrad, with PyTorch's message when it is installed."""
    with pytest.raises(exc) as mine:
        fn(jitgrad)
    if torch is not None:
        with pytest.raises(exc) as theirs:
            fn(torch)
        assert str(mine.value) == str(theirs.value)
    return str(mine.value)


# ---- bitwise, shifts, logic ----------------------------------------------------------------------
def test_bitwise_ops_by_hand():
    a = np.array(I32, np.int32)
    np.testing.assert_array_equal(_both(lambda m, x: x & 0x1337, a, dtype="int32"), a & 0x1337)
    np.testing.assert_array_equal(_both(lambda m, x: 0x1337 | x, a, dtype="int32"), a | 0x1337)
    np.testing.assert_array_equal(_both(lambda m, x: x ^ x.flip(0), a, dtype="int32"), a ^ a[::-1])
    np.testing.assert_array_equal(_both(lambda m, x: ~x, a, dtype="int32"), ~a)
    np.testing.assert_array_equal(_both(lambda m, x: x.bitwise_not(), [True, False]), [False, True])
    np.testing.assert_array_equal(_both(lambda m, x, y: x & y, [True, True, False], [True, False, False]),
                                  [True, False, False])


def test_shifts_wrap_and_saturate_as_torch():
    a = np.array([[-1, -3, 1, 7], [0, -2 ** 31, 2 ** 31 - 1, -1]], np.int32)
    np.testing.assert_array_equal(_both(lambda m, x: x << 31, a, dtype="int32"), (a.astype(np.int64) << 31).astype(np.int32))
    np.testing.assert_array_equal(_both(lambda m, x: x >> 2, a, dtype="int32"), a >> 2)
    shifts = np.array([0, 2, 8, 31], np.int32)
    np.testing.assert_array_equal(_both(lambda m, x, s: x >> s, a, shifts, dtype="int32"), a >> shifts)
    np.testing.assert_array_equal(_both(lambda m, x: x.bitwise_left_shift(2), a, dtype="int32"), a << 2)


def test_logic_and_value_tests():
    v = [float("-inf"), 0.0, float("inf"), float("nan"), 1.1]
    np.testing.assert_array_equal(_both(lambda m, x: x.isinf(), v), [True, False, True, False, False])
    np.testing.assert_array_equal(_both(lambda m, x: m.isnan(x), v), [False, False, False, True, False])
    np.testing.assert_array_equal(_both(lambda m, x: x.isfinite(), v), [False, True, False, False, True])
    np.testing.assert_array_equal(_both(lambda m, x: m.isinf(x), [1, 2]), [False, False])
    np.testing.assert_array_equal(_both(lambda m, x: x.logical_not(), [0.0, 2.0]), [True, False])
    np.testing.assert_array_equal(_both(lambda m, x, y: m.logical_xor(x, y), [0, 1, 2], [0.0, 0.0, 1.0]),
                                  [False, True, False])
    np.testing.assert_array_equal(_both(lambda m, x: m.nan_to_num(x, nan=7.0), v),
                                  np.nan_to_num(np.array(v, np.float32), nan=7.0))


def test_bitwise_errors_match_torch():
    assert _same_error(lambda m: m.tensor([1.0]) << 2, RuntimeError) == '"lshift_cpu" not implemented for \'Float\''
    _same_error(lambda m: m.tensor(I32, dtype=m.int32) << 1.0, RuntimeError)
    _same_error(lambda m: m.tensor([1.0]) & m.tensor([2.0]), RuntimeError)
    _same_error(lambda m: ~m.tensor([1.0]), TypeError)


# ---- integer and floor division, remainder, fmod --------------------------------------------------
def test_division_family_by_hand():
    a, b = [-4, 7, 5, 4, -7, 8, -9], [2, -3, 8, -2, 3, 5, -5]
    np.testing.assert_array_equal(_both(lambda m, x, y: x // y, a, b), np.floor_divide(a, b))
    np.testing.assert_array_equal(_both(lambda m, x, y: x % y, a, b), np.remainder(a, b))
    np.testing.assert_array_equal(_both(lambda m, x, y: x.fmod(y), a, b), np.fmod(a, b))
    fa = np.array(a, np.float32)
    np.testing.assert_array_equal(_both(lambda m, x: x % 3.5, a), np.remainder(fa, np.float32(3.5)))
    np.testing.assert_array_equal(_both(lambda m, x: 100 % x, a), np.remainder(100, a))
    np.testing.assert_allclose(_both(lambda m, x: 100.5 % x, a), np.remainder(100.5, fa), rtol=1e-6)
    np.testing.assert_array_equal(_both(lambda m, x: x // 2, [3.0, -3.0]), [1.0, -2.0])
    _same_error(lambda m: m.tensor([1, 2]) // m.tensor([1, 0]), RuntimeError)


def test_copysign_and_logaddexp_values():
    np.testing.assert_array_equal(_both(lambda m, x, y: m.copysign(x, y), [1.0, -2.0, 0.0], [-1.0, 3.0, -0.0]),
                                  np.copysign([1.0, -2.0, 0.0], [-1.0, 3.0, -0.0]).astype(np.float32))
    x = jitgrad.tensor([0.0, 100.0], requires_grad=True)
    y = jitgrad.logaddexp(x, jitgrad.tensor([0.0, 0.0]))
    np.testing.assert_allclose(y.detach().numpy(), [np.log(2.0), 100.0], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 1.0], rtol=1e-6)


# ---- scans -----------------------------------------------------------------------------------------
def test_cummax_cummin_indices_take_the_last_tie_and_nan():
    v = [1.0, 3.0, 3.0, 2.0, float("nan"), 5.0]
    values, indices = jitgrad.tensor(v).cummax(0)
    np.testing.assert_array_equal(indices.numpy(), [0, 1, 2, 2, 4, 4])
    np.testing.assert_array_equal(values.numpy(), np.array([1, 3, 3, 3, np.nan, np.nan], np.float32))
    values, indices = jitgrad.cummin(jitgrad.tensor([[2.0, 1.0, 1.0, 3.0]]), 1)
    np.testing.assert_array_equal(indices.numpy(), [[0, 1, 2, 2]])
    if torch is not None:
        t = torch.tensor(v).cummax(0)
        np.testing.assert_array_equal(indices.numpy(), torch.cummin(torch.tensor([[2.0, 1.0, 1.0, 3.0]]), 1).indices)
        np.testing.assert_array_equal(jitgrad.tensor(v).cummax(0).indices.numpy(), t.indices.numpy())


def test_cumprod_gradient_with_zeros_by_hand():
    x = jitgrad.tensor([2.0, 0.0, 3.0, 4.0], dtype=jitgrad.float64, requires_grad=True)
    jitgrad.cumprod(x, 0).sum().backward()
    # out = [2, 0, 0, 0]: d/dx0 = 1; d/dx1 = 2 + 2*3 + 2*3*4; d/dx2 = d/dx3 = 0 (a zero before them)
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 32.0, 0.0, 0.0])


def test_scans_backward_in_linear_memory_on_long_lines():
    rng = np.random.default_rng(0)
    v = 1 + 1e-5 * rng.standard_normal(200_000)
    x = jitgrad.tensor(v, requires_grad=True)
    jitgrad.cumprod(x, 0).sum().backward()
    out = np.cumprod(v)
    np.testing.assert_allclose(x.grad.numpy(), np.cumsum(out[::-1])[::-1] / v, rtol=1e-9)
    y = jitgrad.tensor(v, requires_grad=True)
    jitgrad.logcumsumexp(y, 0).sum().backward()
    lse = np.logaddexp.accumulate(v)
    np.testing.assert_allclose(y.grad.numpy(), np.exp(v) * np.cumsum(np.exp(-lse)[::-1])[::-1], rtol=1e-9)


def test_logcumsumexp_is_stable():
    out = jitgrad.tensor([0.0, 100.0, -100.0], dtype=jitgrad.float64).logcumsumexp(0).numpy()
    np.testing.assert_allclose(out, [0.0, 100.0 + np.log1p(np.exp(-100.0)), 100.0 + np.log1p(np.exp(-100.0))])


# ---- scatter family ---------------------------------------------------------------------------------
def test_scatter_forward_cases_by_hand():
    x = np.zeros((3, 4))
    idx = np.array([[0, 1, 2, 0]])
    src = np.arange(10.0).reshape(2, 5)           # larger than index: its leading block is read
    got = jitgrad.tensor(x).scatter(0, jitgrad.tensor(idx), jitgrad.tensor(src)).numpy()
    want = x.copy()
    want[[0, 1, 2, 0], [0, 1, 2, 3]] = [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(got, want)
    added = jitgrad.tensor(np.ones((3, 4))).scatter(1, jitgrad.tensor([[0, 0], [1, 1], [3, 2]]), 2.0, reduce="add")
    np.testing.assert_array_equal(added.numpy(), [[5, 1, 1, 1], [1, 5, 1, 1], [1, 1, 3, 3]])
    mean = jitgrad.tensor([1, 2, 3, 4]).scatter_reduce(0, jitgrad.tensor([0, 0, 1, 1]), jitgrad.tensor([5, 6, 7, -9]),
                                                       "mean", include_self=False)
    np.testing.assert_array_equal(mean.numpy(), [5, -1, 3, 4])          # integer mean floors
    y = jitgrad.zeros(3)
    y.scatter_add_(0, jitgrad.tensor([0, 0, 2]), jitgrad.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(y.numpy(), [3.0, 0.0, 3.0])


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_scatter_errors_match_torch():
    def x(m):
        return m.zeros(3, 4)
    _same_error(lambda m: x(m).scatter(0, m.tensor([[5, 0, 0, 0]]), 1.0), RuntimeError)
    _same_error(lambda m: x(m).scatter(0, m.tensor([0]), 1.0), RuntimeError)
    _same_error(lambda m: x(m).scatter(1, m.zeros(4, 4, dtype=m.long), m.ones(4, 4)), RuntimeError)
    _same_error(lambda m: x(m).scatter(0, m.tensor([[0]]), m.ones(1, 1, dtype=m.float64)), RuntimeError)
    _same_error(lambda m: x(m).scatter_reduce(0, m.tensor([[0]]), m.ones(1, 1), "bad"), RuntimeError)
    _same_error(lambda m: x(m).scatter(0, m.tensor([[0]]), m.ones(1, 1), reduce="bad"), RuntimeError)


# ---- views and index results -----------------------------------------------------------------------
def test_diagonal_and_unfold_are_views():
    base = jitgrad.zeros(3, 3)
    base.diagonal().fill_(1.0)
    np.testing.assert_array_equal(base.numpy(), np.eye(3))
    t = jitgrad.arange(6.0)
    windows = t.unfold(0, 3, 2)
    np.testing.assert_array_equal(windows.numpy(), [[0, 1, 2], [2, 3, 4]])
    t[2] = 10.0
    assert windows.numpy()[0, 2] == 10.0 and windows.numpy()[1, 0] == 10.0
    x = jitgrad.arange(12.0).reshape(3, 4).t()              # a non-contiguous base
    np.testing.assert_array_equal(x.diagonal(1).numpy(), np.arange(12.0).reshape(3, 4).T.diagonal(1))
    _same_error(lambda m: m.ones(3, 3).diagonal(0, 0, 0), RuntimeError)
    _same_error(lambda m: m.ones(8).unfold(0, 9, 3), RuntimeError)
    _same_error(lambda m: m.ones(8).unfold(0, 1, -1), RuntimeError)
    _same_error(lambda m: m.ones(2, 2, 2).diag(), RuntimeError)


def test_unfold_gradient_accumulates_overlaps():
    x = jitgrad.arange(5.0, requires_grad=True)
    x.unfold(0, 3, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 2, 3, 2, 1])


def test_masked_select_nonzero_repeat_interleave():
    x = jitgrad.tensor([[1.0, -2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(x.masked_select(x > 0).numpy(), [1.0, 3.0])
    np.testing.assert_array_equal(x.masked_select(jitgrad.tensor(True)).numpy(), [1, -2, 3, -4])
    _same_error(lambda m: m.ones(3).masked_select(m.tensor([1, 0, 1])), RuntimeError)
    np.testing.assert_array_equal((x > 0).nonzero().numpy(), [[0, 0], [1, 0]])
    assert tuple(jitgrad.tensor(2.5).nonzero().shape) == (1, 0) and tuple(jitgrad.tensor(0).nonzero().shape) == (0, 0)
    np.testing.assert_array_equal(jitgrad.repeat_interleave(jitgrad.tensor([2, 0, 1])).numpy(), [0, 0, 2])
    np.testing.assert_array_equal(x.repeat_interleave(jitgrad.tensor([1, 2]), dim=0).numpy(),
                                  [[1, -2], [3, -4], [3, -4]])
    np.testing.assert_array_equal(jitgrad.tensor([1, 2]).repeat_interleave(2).numpy(), [1, 1, 2, 2])


def test_pad_modes_by_hand_and_errors():
    a = jitgrad.arange(4.0).reshape(1, 1, 4)
    np.testing.assert_array_equal(F.pad(a, (2, 1), mode="reflect").numpy().ravel(), [2, 1, 0, 1, 2, 3, 2])
    np.testing.assert_array_equal(F.pad(a, (2, 1), mode="replicate").numpy().ravel(), [0, 0, 0, 1, 2, 3, 3])
    np.testing.assert_array_equal(F.pad(a, (2, 1), mode="circular").numpy().ravel(), [2, 3, 0, 1, 2, 3, 0])
    np.testing.assert_array_equal(F.pad(a, (1, -2), mode="circular").numpy().ravel(), [1, 0, 1])
    _same_error(lambda m: m.nn.functional.pad(m.ones(1, 1, 5, 5), (3, 5, 0, 0), mode="reflect"), RuntimeError)
    _same_error(lambda m: m.nn.functional.pad(m.ones(1, 1, 5, 5), (3, 6, 0, 0), mode="circular"), RuntimeError)
    _same_error(lambda m: m.nn.functional.pad(m.ones(5), (1, 1), mode="replicate"), NotImplementedError)
    _same_error(lambda m: m.nn.functional.pad(m.ones(3, 3, 3), (3, 0), mode="typo"), NotImplementedError)


def test_view_dtype_and_half():
    x = jitgrad.tensor([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(x.view(jitgrad.int32).numpy(), np.array([1.0, -2.0, 0.5], np.float32).view(np.int32))
    assert tuple(jitgrad.zeros(2, 4).view(jitgrad.float64).shape) == (2, 2)
    h = x.half()
    assert h.dtype == jitgrad.float16
    np.testing.assert_array_equal(h.numpy(), np.array([1.0, -2.0, 0.5], np.float16))
    _same_error(lambda m: m.zeros(2, 3).view(m.float64), RuntimeError)


def test_einsum_ellipsis_and_diagonals_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((5, 2, 4))
    np.testing.assert_allclose(jitgrad.einsum("i...j,ji...->...", jitgrad.tensor(a), jitgrad.tensor(b)).numpy(),
                               np.einsum("i...j,ji...->...", a, b), rtol=1e-12)
    m = rng.standard_normal((3, 4, 4))
    np.testing.assert_allclose(jitgrad.einsum("...ii->...i", jitgrad.tensor(m)).numpy(),
                               np.einsum("...ii->...i", m), rtol=1e-12)
    np.testing.assert_allclose(jitgrad.einsum("bii", jitgrad.tensor(m)).numpy(), np.einsum("bii", m), rtol=1e-12)
    with pytest.raises(RuntimeError, match="subscript i is repeated for operand 0 but the sizes don't match"):
        jitgrad.einsum("ii->i", jitgrad.ones(2, 3))


def test_meshgrid_against_numpy():
    x, y = np.arange(3.0), np.arange(4.0) + 10
    with pytest.warns(UserWarning, match="required to pass the indexing argument"):
        default = jitgrad.meshgrid(jitgrad.tensor(x), jitgrad.tensor(y))
    np.testing.assert_array_equal(default[0].numpy(), np.meshgrid(x, y, indexing="ij")[0])
    for indexing in ("ij", "xy"):
        got = jitgrad.meshgrid(jitgrad.tensor(x), jitgrad.tensor(y), indexing=indexing)
        for g, w in zip(got, np.meshgrid(x, y, indexing=indexing)):
            np.testing.assert_array_equal(g.numpy(), w)


def test_invalid_inputs_the_suite_probes_raise_torchs_errors():
    _same_error(lambda m: m.tensor([5.0]).div(m.tensor([2.0]), rounding_mode="typo"), RuntimeError)
    _same_error(lambda m: m.ones(2, 2).flip(0, 0), RuntimeError)
    _same_error(lambda m: m.linspace(0, 1, 5, dtype=m.bool), RuntimeError)
    _same_error(lambda m: m.ones(2, 2).roll((1, 2)), RuntimeError)


# ---- the suite runner ------------------------------------------------------------------------------
SYNTHETIC_SUITE = '''
import unittest
import numpy as np
import torch
from tinygrad import Tensor, dtypes

def helper_test_op(*args, **kwargs):
    raise AssertionError("replaced by the runner")

class TestOps(unittest.TestCase):
    def helper_test_exception(self, *args, **kwargs):
        raise AssertionError("replaced by the runner")

    def test_passes(self):
        helper_test_op([(3, 4)], lambda x: x.exp() * x.cumprod(1))

    def test_missing_op(self):
        helper_test_op([(3, 4)], lambda x: x.cumsum(1))

    def test_error_matches(self):
        self.helper_test_exception([(3,)], lambda x: x.div(x, rounding_mode="typo"), expected=RuntimeError)

    def test_tinygrad_only(self):
        Tensor.ones(3).numpy()

    @unittest.skip("not here")
    def test_skipped(self):
        pass
'''


@needs_torch
def test_runner_counts_and_reasons(tmp_path, monkeypatch):
    from benchmarks.peer_ops import run_tinygrad_suite as runner
    monkeypatch.delattr(jitgrad.Tensor, "cumsum")        # an op jitgrad lacks, for this run
    path = tmp_path / "test_ops.py"
    path.write_text(textwrap.dedent(SYNTHETIC_SUITE))
    results = runner.run(str(path))
    assert results["TestOps.test_passes"][0] == "pass"
    assert results["TestOps.test_error_matches"][0] == "pass"
    assert results["TestOps.test_missing_op"][:2] == ("fail", "missing op")
    assert runner.classify(TypeError("sum() got an unexpected keyword argument 'axis'")) == ("missing keyword", "axis")
    assert runner.classify(runner.Mismatch("wrong gradient", "x"))[0] == "wrong gradient"
    assert results["TestOps.test_tinygrad_only"][0] == "n/a"
    assert results["TestOps.test_skipped"][:2] == ("n/a", "skipped")
