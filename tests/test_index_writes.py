"""index_add, index_copy, index_fill, index_put, masked_scatter (and their in-place forms, and
put_): values by hand, PyTorch's errors and messages, gradients through the in-place forms. The
op table's generated tests add gradcheck, second derivatives and torch's gradients on the samples."""
import numpy as np
import pytest

import jitgrad

try:
    import torch
except ImportError:
    torch = None

Z = np.zeros((3, 4), np.float32)


def _i(*v, dtype="int64"):
    return np.array(v, dtype)


def test_index_add_sums_repeats_and_scales_by_alpha():
    out = jitgrad.index_add(jitgrad.tensor(Z), 0, jitgrad.tensor(_i(0, 2, 0)), jitgrad.ones(3, 4), alpha=2)
    np.testing.assert_array_equal(out.numpy(), [[4] * 4, [0] * 4, [2] * 4])
    assert out.dtype == jitgrad.float32


def test_index_copy_fill_put_and_masked_scatter_values():
    x = jitgrad.tensor(Z)
    got = jitgrad.index_copy(x, 1, jitgrad.tensor(_i(3, 0)), jitgrad.tensor([[1.0, 2.0]] * 3))
    np.testing.assert_array_equal(got.numpy(), [[2, 0, 0, 1]] * 3)
    got = jitgrad.index_fill(x, 1, jitgrad.tensor(_i(-1, 1)), -1.5)       # negative: from the end
    np.testing.assert_array_equal(got.numpy(), [[0, -1.5, 0, -1.5]] * 3)
    got = jitgrad.index_put(x, (jitgrad.tensor(_i(0, 2)), jitgrad.tensor(_i(1, 3))), jitgrad.tensor([5.0, 6.0]))
    assert got.numpy()[0, 1] == 5 and got.numpy()[2, 3] == 6 and got.numpy().sum() == 11
    got = jitgrad.index_put(x, (jitgrad.tensor(_i(0, 0)),), jitgrad.ones(4), accumulate=True)
    np.testing.assert_array_equal(got.numpy()[0], [2] * 4)
    got = jitgrad.masked_scatter(x, jitgrad.tensor([True, False, True, False]), jitgrad.arange(20.0))
    np.testing.assert_array_equal(got.numpy(), [[0, 0, 1, 0], [2, 0, 3, 0], [4, 0, 5, 0]])
    assert x.numpy().sum() == 0                      # the out-of-place forms leave input alone


def test_gradients_by_hand():
    x = jitgrad.zeros(3, 4, dtype=jitgrad.float64, requires_grad=True)
    s = jitgrad.ones(2, 4, dtype=jitgrad.float64, requires_grad=True)
    g = jitgrad.arange(12.0, dtype=jitgrad.float64).reshape(3, 4)
    jitgrad.index_copy(x, 0, jitgrad.tensor(_i(2, 0)), s).backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), [[0] * 4, [4, 5, 6, 7], [0] * 4])
    np.testing.assert_array_equal(s.grad.numpy(), [[8, 9, 10, 11], [0, 1, 2, 3]])
    v = jitgrad.tensor(2.0, dtype=jitgrad.float64, requires_grad=True)
    y = jitgrad.index_fill(x, 1, jitgrad.tensor(_i(1, 1)), v)
    assert y.grad_fn.name() == "IndexFillBackward1"
    y.sum().backward()
    assert v.grad.item() == 3.0                     # each filled element once, as PyTorch


def test_in_place_forms_write_into_the_tensor_and_record():
    w = jitgrad.ones(3, 2, requires_grad=True)
    h = w * 1.0
    out = h.index_add_(0, jitgrad.tensor(_i(1)), jitgrad.full((1, 2), 2.0))
    assert out is h and h.grad_fn.name() == "IndexAddBackward0"
    np.testing.assert_array_equal(h.detach().numpy(), [[1, 1], [3, 3], [1, 1]])
    (h * h).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[2, 2], [6, 6], [2, 2]])
    t = jitgrad.zeros(5)
    t.index_fill_(0, jitgrad.tensor(_i(4)), 7.0).index_put_((jitgrad.tensor(_i(0)),), jitgrad.tensor(1.0))
    t.masked_scatter_(t == 0, jitgrad.tensor([9.0, 8.0, 6.0])).put_(jitgrad.tensor(_i(1)), jitgrad.tensor([5.0]))
    np.testing.assert_array_equal(t.numpy(), [1, 5, 8, 6, 7])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        w.index_fill_(0, jitgrad.tensor(_i(0)), 0.0)


ERRORS = {
    "index_add oob": lambda t, z: t.index_add(z, 0, t.tensor([0, 5]), t.ones(2, 4)),
    "index_add negative": lambda t, z: t.index_add(z, 0, t.tensor([-1]), t.ones(1, 4)),
    "index_add float index": lambda t, z: t.index_add(z, 0, t.tensor([0.0]), t.ones(1, 4)),
    "index_add 2-d index": lambda t, z: t.index_add(z, 0, t.tensor([[0]]), t.ones(1, 4)),
    "index_add source shape": lambda t, z: t.index_add(z, 0, t.tensor([0]), t.ones(1, 3)),
    "index_add source length": lambda t, z: t.index_add(z, 0, t.tensor([0]), t.ones(2, 4)),
    "index_add dtype": lambda t, z: t.index_add(z, 0, t.tensor([0]), t.ones(1, 4, dtype=t.float64)),
    "index_add dim": lambda t, z: t.index_add(z, 2, t.tensor([0]), t.ones(1, 4)),
    "index_copy oob": lambda t, z: t.index_copy(z, 1, t.tensor([4]), t.ones(3, 1)),
    "index_copy negative": lambda t, z: t.index_copy(z, 1, t.tensor([-1]), t.ones(3, 1)),
    "index_copy length": lambda t, z: t.index_copy(z, 1, t.tensor([1]), t.ones(3, 2)),
    "index_copy int32": lambda t, z: t.index_copy(z, 1, t.tensor([1], dtype=t.int32), t.ones(3, 1)),
    "index_copy dtype": lambda t, z: t.index_copy(z, 1, t.tensor([1]), t.ones(3, 1, dtype=t.float64)),
    "index_copy slices": lambda t, z: t.index_copy(z, 1, t.tensor([1]), t.ones(2, 1)),
    "index_copy dims": lambda t, z: t.index_copy(z, 1, t.tensor([1]), t.ones(3, 1, 1)),
    "index_copy 2-d index": lambda t, z: t.index_copy(z, 1, t.tensor([[1]]), t.ones(3, 1)),
    "index_fill int32": lambda t, z: t.index_fill(z, 1, t.tensor([1], dtype=t.int32), 1.0),
    "index_fill 2-d index": lambda t, z: t.index_fill(z, 1, t.tensor([[1]]), 1.0),
    "index_fill oob": lambda t, z: t.index_fill(z, 1, t.tensor([9]), 1.0),
    "index_fill 1-d value": lambda t, z: t.index_fill(z, 1, t.tensor([1]), t.tensor([1.0])),
    "index_put oob": lambda t, z: t.index_put(z, (t.tensor([5]),), t.tensor(3.0)),
    "index_put values shape": lambda t, z: t.index_put(z, (t.tensor([0, 1]),), t.ones(3)),
    "index_put dtype": lambda t, z: t.index_put(z, (t.tensor([0, 1]),), t.ones(4, dtype=t.float64)),
    "index_put not a tuple": lambda t, z: t.index_put(z, t.tensor([0]), t.ones(4)),
    "index_put None": lambda t, z: t.index_put(z, (None, t.tensor([1])), t.tensor(3.0)),
    "index_put float index": lambda t, z: t.index_put(z, (t.tensor([1.0]),), t.tensor(3.0)),
    "index_put too many": lambda t, z: t.index_put(z, (t.tensor([1]),) * 3, t.tensor(3.0)),
    "masked_scatter short source": lambda t, z: t.masked_scatter(z, t.ones(3, 4, dtype=t.bool), t.ones(5)),
    "masked_scatter float mask": lambda t, z: t.masked_scatter(z, t.ones(3, 4), t.ones(12)),
    "masked_scatter dtype": lambda t, z: t.masked_scatter(z, t.ones(3, 4, dtype=t.bool), t.ones(12, dtype=t.float64)),
    "masked_scatter mask shape": lambda t, z: t.masked_scatter(z, t.ones(2, dtype=t.bool), t.ones(12)),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_as_torch(case):
    fn = ERRORS[case]
    with pytest.raises(Exception) as mine:
        fn(jitgrad, jitgrad.zeros(3, 4))
    if torch is None:
        assert str(mine.value)
        return
    with pytest.raises(Exception) as theirs:
        fn(torch, torch.zeros(3, 4))
    assert type(mine.value).__name__ == type(theirs.value).__name__
    assert str(mine.value) == str(theirs.value).splitlines()[0]


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_and_gradients_match_torch(dtype):
    rng = np.random.default_rng(0)
    x0, s0 = rng.standard_normal((4, 5)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)
    mask = rng.random((4, 5)) > 0.5
    calls = [lambda t, x, s: t.index_add(x, 0, t.tensor([3, 0, 3]), s, alpha=0.5),
             lambda t, x, s: x.index_copy(0, t.tensor([2, 0, 1]), s),
             lambda t, x, s: t.index_fill(x, 1, t.tensor([4, 0]), 1.25) * s.sum(),
             lambda t, x, s: t.index_put(x, (t.tensor([0, 3]), t.tensor([1, 4])), s[0, :2], accumulate=True),
             lambda t, x, s: x.masked_scatter(t.tensor(mask), s)]
    for call in calls:
        results = []
        for lib in (jitgrad, torch):
            x = lib.tensor(x0, requires_grad=True)
            s = lib.tensor(s0, requires_grad=True)
            y = call(lib, x, s)
            (y * lib.arange(20, dtype=y.dtype).reshape(4, 5)).sum().backward()
            results.append((y.detach().numpy(), x.grad.numpy(), None if s.grad is None else s.grad.numpy(),
                            y.grad_fn.name()))
        (ya, xa, sa, na), (yb, xb, sb, nb) = results
        np.testing.assert_allclose(ya, yb, rtol=1e-6)
        np.testing.assert_allclose(xa, xb, rtol=1e-6)
        assert (sa is None) == (sb is None)
        if sa is not None:
            np.testing.assert_allclose(sa, sb, rtol=1e-5)
        assert na == nb


def test_narrow_start_at_the_end():
    """Found by a differential fuzz: start == size wrapped to 0, so narrow(x, 0, 1, 1) of one
    element succeeded where PyTorch raises; an empty slice at the end stays allowed."""
    with pytest.raises(RuntimeError, match=r"start \(1\) \+ length \(1\) exceeds dimension size \(1\)\."):
        jitgrad.ones(1).narrow(0, 1, 1)
    assert jitgrad.ones(3).narrow(0, 3, 0).shape == (0,)
    assert jitgrad.ones(3).narrow(0, -3, 3).shape == (3,)
