"""Bad arguments raise PyTorch's exception types with PyTorch's messages, checked in Python before
anything is recorded (nothing may fail inside compiled code). Each case runs the same call on
jitgrad and, when it is installed, on torch: the exception types and messages must agree."""
import re

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as JF

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = TF = None


def X(lib, *shape, rg=True):
    """A float tensor of this shape (values 0.1 .. 0.9, valid probabilities) requiring grad."""
    v = np.linspace(0.1, 0.9, int(np.prod(shape))).reshape(shape)
    return lib.tensor(v, requires_grad=rg)


def L(lib, *values):
    return lib.tensor(list(values))


# (id, call(lib, F), exception type, message regex — checked on jitgrad even without torch)
CASES = [
    ("softmax-dim", lambda t, F: t.softmax(X(t, 2, 3), 2), IndexError, r"Dimension out of range"),
    ("log_softmax-dim", lambda t, F: F.log_softmax(X(t, 3), -2), IndexError, r"Dimension out of range"),
    ("sum-dim", lambda t, F: X(t, 2, 3).sum(2), IndexError, r"Dimension out of range"),
    ("max-dim", lambda t, F: X(t, 2, 3).max(3), IndexError, r"Dimension out of range"),
    ("argmax-dim", lambda t, F: X(t, 2, 3).argmax(-3), IndexError, r"Dimension out of range"),
    ("max-empty", lambda t, F: t.zeros(0).max(), RuntimeError, r"max\(\): Expected reduction dim"),
    ("max-empty-dim", lambda t, F: t.zeros(0, 3).max(0), IndexError, r"reduction dim 0 to have"),
    ("amax-empty-dim", lambda t, F: t.zeros(0, 3).amax(0), IndexError, r"amax\(\)"),
    ("argmax-empty", lambda t, F: t.zeros(0).argmax(), IndexError, r"argmax\(\)"),
    ("cat-empty", lambda t, F: t.cat([]), ValueError, r"expected a non-empty list"),
    ("cat-sizes", lambda t, F: t.cat([X(t, 3, 4), X(t, 3, 5)]), RuntimeError,
     r"Sizes of tensors must match except in dimension 0. Expected size 4 but got size 5 for "
     r"tensor number 1"),
    ("cat-ndim", lambda t, F: t.cat([X(t, 3, 4), X(t, 3)]), RuntimeError,
     r"Tensors must have same number of dimensions: got 2 and 1"),
    ("cat-dim", lambda t, F: t.cat([X(t, 3, 4)], dim=2), IndexError, r"Dimension out of range"),
    ("cat-scalar", lambda t, F: t.cat([X(t), X(t)]), RuntimeError, r"zero-dimensional tensor"),
    ("stack-sizes", lambda t, F: t.stack([X(t, 3, 4), X(t, 3, 5)]), RuntimeError,
     r"stack expects each tensor to be equal size, but got \[3, 4\] at entry 0 and \[3, 5\] at "
     r"entry 1"),
    ("stack-empty", lambda t, F: t.stack([]), RuntimeError, r"stack expects a non-empty TensorList"),
    ("stack-dim", lambda t, F: t.stack([X(t, 3)], 2), IndexError, r"Dimension out of range"),
    ("matmul-shapes", lambda t, F: t.matmul(X(t, 3, 4), X(t, 3, 2)), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(3x4 and 3x2\)"),
    ("matmul-batched", lambda t, F: t.matmul(X(t, 2, 3, 4), X(t, 2, 3, 2)), RuntimeError,
     r"Expected size for first two dimensions of batch2 tensor"),
    ("matmul-folded", lambda t, F: t.matmul(X(t, 2, 3, 4), X(t, 3, 2)), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(6x4 and 3x2\)"),
    ("matmul-0d", lambda t, F: t.matmul(X(t), X(t, 3)), RuntimeError, r"at least 1D"),
    ("matmul-dot", lambda t, F: t.matmul(X(t, 3), X(t, 4)), RuntimeError, r"inconsistent tensor size"),
    ("mm-vector", lambda t, F: t.mm(X(t, 3, 4), X(t, 4)), RuntimeError, r"mat2 must be a matrix"),
    ("bmm-2d", lambda t, F: t.bmm(X(t, 3, 4), X(t, 2, 4, 3)), RuntimeError, r"batch1 must be a 3D"),
    ("bmm-sizes", lambda t, F: t.bmm(X(t, 2, 3, 4), X(t, 2, 3, 4)), RuntimeError,
     r"Expected size for first two dimensions of batch2 tensor to be: \[2, 4\] but got: \[2, 3\]"),
    ("linear-shapes", lambda t, F: F.linear(X(t, 3, 4), X(t, 2, 3)), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(3x4 and 3x2\)"),
    ("index-int", lambda t, F: X(t, 3, 4)[5], IndexError,
     r"index 5 is out of bounds for dimension 0 with size 3"),
    ("index-int-dim1", lambda t, F: X(t, 3, 4)[:, -5], IndexError,
     r"index -5 is out of bounds for dimension 1 with size 4"),
    ("index-array", lambda t, F: X(t, 3, 4)[[0, 5]], IndexError,
     r"index 5 is out of bounds for dimension 0 with size 3"),
    ("index-tensor", lambda t, F: X(t, 3, 4)[:, L(t, 1, 4)], IndexError,
     r"index 4 is out of bounds for dimension 0 with size 4"),     # PyTorch counts from the array
    ("index-after-int", lambda t, F: X(t, 3, 4, 5)[0, :, 7], IndexError,
     r"index 7 is out of bounds for dimension 2 with size 5"),
    ("index-int-array", lambda t, F: X(t, 3, 4, 5)[0, :, [7]], IndexError,
     r"index 7 is out of bounds for dimension 0 with size 5"),
    ("index-arrays", lambda t, F: X(t, 3, 4, 5)[:, [1], [7]], IndexError,
     r"index 7 is out of bounds for dimension 1 with size 5"),
    ("index-float", lambda t, F: X(t, 3, 4)[L(t, 0.5)], IndexError,
     r"tensors used as indices must be long, int, byte or bool tensors"),
    ("index-mask", lambda t, F: X(t, 3, 4)[L(t, True, False)], IndexError,
     r"The shape of the mask \[2\] at index 0 does not match the shape of the indexed tensor "
     r"\[3, 4\] at index 0"),
    ("index-too-many", lambda t, F: X(t, 3, 4)[1, 2, 3], IndexError,
     r"too many indices for tensor of dimension 2"),
    ("index-python-float", lambda t, F: X(t, 3, 4)[0.5], IndexError, r"only integers, slices"),
    ("index-step", lambda t, F: X(t, 3, 4)[::-1], ValueError, r"step must be greater than zero"),
    ("gather-range", lambda t, F: X(t, 3, 4).gather(1, t.tensor([[5]])), RuntimeError,
     r"index 5 is out of bounds for dimension 1 with size 4"),
    ("gather-ndim", lambda t, F: X(t, 3, 4).gather(1, t.tensor([0])), RuntimeError,
     r"Index tensor must have the same number of dimensions as input tensor"),
    ("index_select-range", lambda t, F: X(t, 3, 4).index_select(0, t.tensor([3])), IndexError,
     r"index out of range in self"),
    ("index_select-2d", lambda t, F: X(t, 3, 4).index_select(0, t.tensor([[0]])), IndexError,
     r"Index is supposed to be a vector"),
    ("take-range", lambda t, F: X(t, 3, 4).take(t.tensor([12])), IndexError,
     r"out of range: tried to access index 12 on a tensor of 12 elements."),
    ("take-int32", lambda t, F: X(t, 3, 4).take(t.tensor([1], dtype=t.int32)), RuntimeError,
     r"take\(\): Expected a long tensor for index, but got Int"),
    ("put-range", lambda t, F: X(t, 3, 4).put(t.tensor([-13]), X(t, 1)), IndexError,
     r"out of range: tried to access index -13 on a tensor of 12 elements."),
    ("put-numel", lambda t, F: X(t, 3, 4).put(t.tensor([1, 2]), X(t, 1)), IndexError,
     r"put_\(\): Expected source and index to have the same number of elements"),
    ("put-dtype", lambda t, F: X(t, 3, 4).put(t.tensor([1]), X(t, 1).float()), RuntimeError,
     r"put_\(\): self and source expected to have the same dtype"),
    ("cross_entropy-target", lambda t, F: F.cross_entropy(X(t, 3, 4), L(t, 0, 1, 5)), IndexError,
     r"Target 5 is out of bounds."),
    ("cross_entropy-negative", lambda t, F: F.cross_entropy(X(t, 3, 4), L(t, 0, -2, 1)),
     IndexError, r"Target -2 is out of bounds."),
    ("cross_entropy-batch", lambda t, F: F.cross_entropy(X(t, 3, 4), L(t, 0, 1)), ValueError,
     r"Expected input batch_size \(3\) to match target batch_size \(2\)."),
    ("cross_entropy-smoothing", lambda t, F: F.cross_entropy(X(t, 3, 4), L(t, 0, 1, 2),
                                                             label_smoothing=1.5),
     RuntimeError, r"label_smoothing must be between 0.0 and 1.0"),
    ("nll_loss-target-dtype", lambda t, F: F.nll_loss(X(t, 3, 4), L(t, 0.0, 1.0, 2.0)),
     RuntimeError, r"expected target dtype to be Long or Byte, but got Float"),
    ("nll_loss-weight", lambda t, F: F.nll_loss(X(t, 3, 4), L(t, 0, 1, 2), weight=t.ones(3)),
     RuntimeError, r"weight tensor should be defined either for all 4 classes"),
    ("nll_loss-weight-grad", lambda t, F: F.nll_loss(X(t, 3, 4), L(t, 0, 1, 2),
                                                     weight=t.ones(4, requires_grad=True)),
     RuntimeError, r"not differentiable with respect to argument 'weight'"),
    ("nll_loss-weight-dtype", lambda t, F: F.nll_loss(X(t, 3, 4).float(), L(t, 0, 1, 2),
                                                      weight=t.ones(4, dtype=t.float64)),
     RuntimeError, r"expected scalar type Float but found Double"),
    ("reduction", lambda t, F: F.mse_loss(X(t, 3), X(t, 3), reduction="avg"), ValueError,
     r"avg is not a valid value for reduction"),
    ("mse-broadcast", lambda t, F: F.mse_loss(X(t, 3, 4), X(t, 2, 4)), RuntimeError,
     r"The size of tensor a \(3\) must match the size of tensor b \(2\) at non-singleton "
     r"dimension 0"),
    ("bce-range", lambda t, F: F.binary_cross_entropy(X(t, 3) * 2, X(t, 3)), RuntimeError,
     r"all elements of input should be between 0 and 1"),
    ("bce-size", lambda t, F: F.binary_cross_entropy(X(t, 3, 4), X(t, 4)), ValueError,
     r"Using a target size"),
    ("bce_logits-size", lambda t, F: F.binary_cross_entropy_with_logits(X(t, 3, 4), X(t, 4)),
     ValueError, r"must be the same as input size"),
    ("dropout-p", lambda t, F: F.dropout(X(t, 3), 1.5), ValueError,
     r"dropout probability has to be between 0 and 1, but got 1.5"),
    ("where-cond", lambda t, F: t.where(X(t, 3), X(t, 3), X(t, 3)), RuntimeError,
     r"where expected condition to be a boolean tensor"),
    ("maximum-shapes", lambda t, F: t.maximum(X(t, 3), X(t, 4)), RuntimeError,
     r"The size of tensor a \(3\) must match the size of tensor b \(4\)"),
]


def _message(e):
    return str(e).replace("torch.", "jitgrad.")


@pytest.mark.parametrize("name,call,exc,pattern", CASES, ids=[c[0] for c in CASES])
def test_error(name, call, exc, pattern):
    with pytest.raises(exc) as got:
        call(jitgrad, JF)
    assert re.search(pattern, str(got.value)), str(got.value)
    if torch is not None:
        with pytest.raises(Exception) as want:
            call(torch, TF)
        assert type(got.value) is type(want.value), (got.value, want.value)
        assert _message(got.value) == _message(want.value)
