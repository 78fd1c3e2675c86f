"""The five seed tutorials' examples, with the numbers they print."""
import numpy as np
import pytest

import jitgrad as torch
from jitgrad.autograd import Variable


def test_seed_mean_of_squares_gives_4_5():
    x = torch.ones(2, 2, requires_grad=True)
    assert repr(x) == "tensor([[1., 1.],\n        [1., 1.]], requires_grad=True)"
    y = x + 2
    assert repr(y) == "tensor([[3., 3.],\n        [3., 3.]], grad_fn=<AddBackward0>)"
    assert repr(y.grad_fn).startswith("<AddBackward0 object at 0x")
    z = y * y * 3
    out = z.mean()
    assert repr(z) == "tensor([[27., 27.],\n        [27., 27.]], grad_fn=<MulBackward0>)"
    assert repr(out) == "tensor(27., grad_fn=<MeanBackward0>)"
    out.backward()
    assert repr(x.grad) == "tensor([[4.5000, 4.5000],\n        [4.5000, 4.5000]])"


def test_seed_vector_jacobian_product():
    x = torch.tensor([0.3164, -1.1508, 1.5400], requires_grad=True)
    y = x * 2
    while y.data.norm() < 1000:
        y = y * 2
    assert repr(y.grad_fn).startswith("<MulBackward0")
    v = torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float)
    y.backward(v)
    assert repr(x.grad) == "tensor([1.0240e+02, 1.0240e+03, 1.0240e-01])"


def test_seed_no_grad_and_detach():
    x = torch.randn(3, requires_grad=True)
    assert x.requires_grad and (x ** 2).requires_grad
    with torch.no_grad():
        assert not (x ** 2).requires_grad
    y = x.detach()
    assert not y.requires_grad
    assert repr(x.eq(y).all()) == "tensor(True)"


def test_seed_requires_grad_():
    a = torch.randn(2, 2)
    a = ((a * 3) / (a - 1))
    assert a.requires_grad is False
    a.requires_grad_(True)
    assert a.requires_grad is True
    b = (a * a).sum()
    assert type(b.grad_fn).__name__ == "SumBackward0"


def test_seed_variable_graph_and_backward_twice():
    x_tensor = torch.Tensor(3, 4)
    assert repr(x_tensor) == ("tensor([[0., 0., 0., 0.],\n        [0., 0., 0., 0.],\n"
                              "        [0., 0., 0., 0.]])")
    x_variable = Variable(x_tensor)
    assert x_variable.grad is None and x_variable.requires_grad is False
    x_variable = Variable(x_tensor, requires_grad=True)
    assert x_variable.requires_grad
    x = Variable(torch.FloatTensor(3, 4), requires_grad=True)
    y = x ** 2 + 4 * x
    z = 2 * y + 3
    assert (x.requires_grad, y.requires_grad, z.requires_grad) == (True, True, True)
    loss = torch.rand(3, 4)
    z.backward(loss)
    # dz/dx = 2 * (2x + 4) = 8 at x = 0
    np.testing.assert_allclose(x.grad.numpy(), 8 * loss.numpy(), rtol=1e-6)
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert y.grad is None

    a = Variable(torch.ones(2, 2), requires_grad=True)
    assert repr(a) == "tensor([[1., 1.],\n        [1., 1.]], requires_grad=True)"
    assert a.grad is None and a.grad_fn is None
    b = a + 2
    c = b ** 2
    assert repr(c) == "tensor([[9., 9.],\n        [9., 9.]], grad_fn=<PowBackward0>)"
    out = c.sum()
    assert repr(out) == "tensor(36., grad_fn=<SumBackward0>)"
    out.backward()
    assert repr(a.grad) == "tensor([[6., 6.],\n        [6., 6.]])"
    assert a.grad_fn is None
    assert type(b.grad_fn).__name__ == "AddBackward0"
    assert type(c.grad_fn).__name__ == "PowBackward0"
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        out.backward(torch.Tensor([0.1, 1, 10]).sum())


def test_seed_bce_with_logits_graph():
    x = torch.ones(5)
    y = torch.zeros(3)
    w = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    z = torch.matmul(x, w) + b
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    assert repr(z.grad_fn).startswith("<AddBackward0 object")
    assert repr(loss.grad_fn).startswith("<BinaryCrossEntropyWithLogitsBackward0 object")
    loss.backward()
    # d loss / d b = sigmoid(z) / 3 ; every row of w.grad equals it (x is all ones)
    zz = (x.numpy() @ w.detach().numpy() + b.detach().numpy())
    expect = 1 / (1 + np.exp(-zz)) / 3
    np.testing.assert_allclose(b.grad.numpy(), expect, rtol=1e-5)
    np.testing.assert_allclose(w.grad.numpy(), np.tile(expect, (5, 1)), rtol=1e-5)
    assert z.requires_grad
    with torch.no_grad():
        z = torch.matmul(x, w) + b
    assert not z.requires_grad
    assert not (torch.matmul(x, w) + b).detach().requires_grad
