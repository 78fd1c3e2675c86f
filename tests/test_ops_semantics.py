"""Op semantics the generated gradchecks do not cover: dtype promotion, in-place ops (the
optimizers' no-grad path), __setitem__, views sharing storage, random reproducibility."""
import numpy as np
import pytest

import jitgrad as torch
import jitgrad.nn.functional as F


# ---- dtypes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda x, y: x * 2.5, lambda x, y: x.exp(), lambda x, y: F.softmax(x, 0),
    lambda x, y: x.max(), lambda x, y: torch.cat([x, x]), lambda x, y: x[[0, 1]],
    lambda x, y: F.mse_loss(x, x.detach()), lambda x, y: torch.clamp(x, 0.1),
    lambda x, y: x.var(), lambda x, y: F.gelu(x)])
def test_float32_stays_float32(make):
    x = torch.ones(3, requires_grad=True)
    out = make(x, None)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert x.grad.dtype == torch.float32


def test_promotion_follows_pytorch():
    f32, f64 = torch.ones(3), torch.ones(3, dtype=torch.float64)
    assert (f32 * 2.0).dtype == torch.float32           # a Python float does not promote
    assert (f32 + f64).dtype == torch.float64
    assert (f32 + torch.tensor(2.0, dtype=torch.float64)).dtype == torch.float32   # 0-d tensor
    assert torch.maximum(f32, f64).dtype == torch.float64
    assert torch.cat([f32, f64]).dtype == torch.float64
    assert (torch.arange(3) * 2).dtype == torch.int64
    assert (torch.arange(3) / 2).dtype == torch.float32


def test_integer_tensors_have_no_gradient():
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require "
                                           "gradients"):
        torch.arange(3).requires_grad_()
    x = torch.ones(3, requires_grad=True)
    assert not (x > 0).requires_grad
    assert not x.argmax().requires_grad
    assert not x.max(0).indices.requires_grad


# ---- in-place -----------------------------------------------------------------------------------
def test_optimizer_style_updates_under_no_grad():
    p = torch.ones(3, requires_grad=True)
    g = torch.tensor([1.0, 2.0, 3.0])
    m = torch.zeros(3)
    v0 = p._version
    with torch.no_grad():
        p.add_(g, alpha=-0.5)
        m.mul_(0.9).add_(g, alpha=0.1)
        m.addcmul_(g, g, value=2.0)
        p.addcdiv_(g, m.sqrt().add_(1.0), value=-1.0)
        p.clamp_(-1.0, 1.0)
    expect = np.ones(3) - 0.5 * g.numpy()
    mm = 0.1 * g.numpy() + 2 * g.numpy() ** 2
    expect = np.clip(expect - g.numpy() / (np.sqrt(mm) + 1), -1, 1)
    np.testing.assert_allclose(p.detach().numpy(), expect, rtol=1e-6)
    assert p._version == v0 + 3 and p.requires_grad and p.is_leaf and p.dtype == torch.float32
    grad = torch.tensor([4.0, 9.0])
    assert torch.equal(grad.sqrt().mul(2.0), torch.tensor([4.0, 6.0]))


def test_clamp_in_place_is_clamp():
    # clamp_ writes what clamp returns: a tie with a bound keeps x (its zero's sign), nan stays
    # nan, min > max gives max (PyTorch's results)
    x = torch.tensor([-0.0, 0.5, float("nan"), 2.0, 0.0, -3.0])
    for lo, hi in ((0.0, 1.0), (0.0, None), (None, -0.0), (3.0, 2.0)):
        want = torch.clamp(x, lo, hi).numpy()
        got = x.clone().clamp_(lo, hi).numpy()
        np.testing.assert_array_equal(got, want)
        assert (np.signbit(got) == np.signbit(want)).all()
    np.testing.assert_array_equal(np.signbit(x.clone().clamp_(0.0, 1.0).numpy()),
                                  [True, False, False, False, False, False])


def test_inplace_on_leaf_requiring_grad_raises():
    p = torch.ones(3, requires_grad=True)
    for fn in (lambda: p.add_(1.0), lambda: p.mul_(2.0), lambda: p.clamp_(0.0, 1.0),
               lambda: p.normal_(), lambda: p.addcmul_(p, p)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used "
                                               "in an in-place operation."):
            fn()


def test_inplace_result_type_checks():
    i = torch.arange(3)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output "
                                           "type Long"):
        i.add_(1.5)
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        torch.ones(3).add_(torch.ones(2, 3))


def test_inplace_on_non_leaf_is_recorded():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.add_(x, alpha=3.0).mul_(x)
    assert type(y.grad_fn).__name__ == "MulBackward0"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 10 * x.detach().numpy())


# ---- setitem and views --------------------------------------------------------------------------
def test_setitem_on_leaf_requiring_grad_raises():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        w[0] = 2.0
    with torch.no_grad():
        w[0] = 2.0                      # allowed without recording
    assert w.tolist() == [2.0, 1.0, 1.0] and w._version == 1


def test_setitem_gradients_and_value_gradient():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    v = torch.tensor(10.0, requires_grad=True)
    y = x * 1
    y[0] = v                            # broadcast value: its gradient sums over the region
    y[:, 1] = y[:, 1] * 3
    assert type(y.grad_fn).__name__ == "CopySlices"
    (y * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0], [3, 12]])
    np.testing.assert_allclose(v.grad.numpy(), 1 + 2 * 3)


def test_setitem_makes_a_plain_tensor_require_grad():
    buf = torch.zeros(2, 2)
    w = torch.ones(2, requires_grad=True)
    buf[1] = w * 2
    assert buf.requires_grad and not buf.is_leaf
    buf.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2, 2])


def test_setitem_errors():
    y = torch.ones(2, 3) * 1
    with pytest.raises(RuntimeError, match=r"shape mismatch: value tensor of shape \[2\] cannot be "
                                           r"broadcast to indexing result of shape \[3\]"):
        y[0] = torch.ones(2)
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 2"):
        y[3] = 1.0


def test_basic_index_is_a_view_sharing_version():
    x = torch.zeros(3, 4)
    row = x[1]
    with torch.no_grad():
        row.add_(1.0)
    assert x[1].tolist() == [1.0] * 4
    assert x._version == row._version == 1
    assert not x[[1, 2]].numpy().base is x.numpy()          # advanced indexing copies


def test_split_chunk_unbind_are_views():
    x = torch.arange(12.0).reshape(3, 4)
    a, b = x.split([1, 3], 1)
    assert b.shape == (3, 3) and np.shares_memory(b.numpy(), x.numpy())
    assert [c.shape[0] for c in x.chunk(2)] == [2, 1]
    assert x.unbind(1)[2].tolist() == [2.0, 6.0, 10.0]


# ---- random -------------------------------------------------------------------------------------
def test_random_is_reproducible_under_manual_seed():
    def draw():
        torch.manual_seed(7)
        return [torch.rand(3), torch.randn(2, 2), torch.randint(0, 5, (4,)), torch.randint(5, (2,)),
                torch.randperm(5), torch.empty(3).normal_(1.0, 2.0), torch.empty(3).uniform_(-1, 1),
                torch.bernoulli(torch.full((4,), 0.5)), torch.ones(2).bernoulli_(0.3),
                F.dropout(torch.ones(6), 0.5), torch.normal(torch.zeros(3), 1.0)]
    first, second = draw(), draw()
    for a, b in zip(first, second):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert first[2].dtype == torch.int64 and first[4].dtype == torch.int64
    assert first[0].dtype == torch.float32


def test_dropout_scales_and_is_identity_when_not_training():
    torch.manual_seed(0)
    x = torch.ones(1000, requires_grad=True)
    y = F.dropout(x, 0.25)
    kept = y.detach().numpy() != 0
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.75, rtol=1e-6)
    assert 0.65 < kept.mean() < 0.85
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.75, rtol=1e-6)
    assert F.dropout(x, 0.5, training=False) is x


def test_random_fill_of_graph_tensor_has_zero_gradient():
    x = torch.ones(3, requires_grad=True)
    y = x * 2
    y.normal_()
    assert type(y.grad_fn).__name__ == "NormalBackward0"
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


# ---- empty tensors: every rule must handle zero sizes (nothing may fail in compiled code) ---------
@pytest.mark.parametrize("make", [
    lambda x: F.softmax(x, 1), lambda x: F.log_softmax(x, 0), lambda x: x.cumsum(1),
    lambda x: torch.cat([x, x], 0), lambda x: torch.stack([x, x], 1), lambda x: x[0:0],
    lambda x: x @ torch.ones(3, 2), lambda x: F.linear(x, torch.ones(2, 3), torch.ones(2)),
    lambda x: x.amax(1), lambda x: x.max(1).values, lambda x: x.sum(0), lambda x: x.var(1),
    lambda x: x.logsumexp(1), lambda x: x[torch.tensor([], dtype=torch.int64)],
    lambda x: x.repeat(2, 1), lambda x: x.split(1, 1)[0], lambda x: x.prod(1),
    lambda x: torch.einsum("ij,kj->ik", x, torch.ones(2, 3)), lambda x: x.clamp(0, 1),
    lambda x: F.cross_entropy(x, torch.zeros(0, dtype=torch.int64), reduction="sum")])
def test_empty_tensors(make):
    x = torch.ones(0, 3, requires_grad=True)
    out = make(x)
    (out.sum() if out.numel() else out.sum() * 1).backward()
    assert x.grad.shape == (0, 3)


def test_empty_integer_and_bool_tensors_print_their_dtype():
    """As torch: an empty int64 or bool tensor has no values to show its dtype, so the repr names
    it (a non-empty one does not)."""
    assert repr(torch.tensor([], dtype=torch.int64)) == "tensor([], dtype=jitgrad.int64)"
    assert repr(torch.zeros(0, 3, dtype=torch.bool)) == "tensor([], size=(0, 3), dtype=jitgrad.bool)"
    assert repr(torch.tensor([1, 2])) == "tensor([1, 2])"


def test_addmm_with_beta_zero_ignores_input():
    """beta = 0: input's nan and inf do not reach the result (PyTorch's rule), eager and replayed."""
    bias = torch.tensor([[float("nan"), float("inf")]])
    w = torch.ones(2, 2, requires_grad=True)

    def step(x):
        return torch.addmm(bias, x, w, beta=0)
    x = torch.ones(1, 2)
    assert step(x).tolist() == [[2.0, 2.0]]
    compiled = torch.compile(step)
    for _ in range(3):
        assert compiled(x).tolist() == [[2.0, 2.0]]
