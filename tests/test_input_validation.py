"""Input validation, numerics at extreme values, and warnings (issue 9, ops slice).

Bad arguments: every case is one expression run on jitgrad and, when it is installed, on torch;
both must raise, with the same exception type and (for EXACT) the same message, ``torch.`` read as
``jitgrad.``. HARD_CODED keeps the most important messages checked without torch.
"""
import math
import warnings

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as JF

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is the oracle")


def _namespace(lib, F):
    def X(*shape, rg=True):
        """A float64 tensor of this shape (values 0.1 .. 0.9) requiring grad."""
        v = np.linspace(0.1, 0.9, int(np.prod(shape))).reshape(shape)
        return lib.tensor(v, requires_grad=rg)

    def I(*values):   # noqa: E743  (an integer, bool or float tensor of these values)
        return lib.tensor(list(values))
    return dict(t=lib, F=F, X=X, I=I, np=np)


def _raised(lib, F, expr):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            eval(expr, _namespace(lib, F))
        except Exception as e:       # noqa: BLE001  (the exception is the result under test)
            return e
    return None


def _message(e):
    return str(e).replace("torch.", "jitgrad.")


# the same exception type and message as torch
EXACT = [
    "t.ones(2.5)",
    "t.zeros(-1)",
    "t.ones(2, -3)",
    "t.empty(2.5)",
    "t.rand(2.5)",
    "t.randn(-1)",
    "t.full((2.5,), 1.0)",
    "t.full((-1,), 1.0)",
    "t.zeros((2, 3.0))",
    't.ones(2, device="cuda")',
    't.ones(2, device="cuda:0")',
    't.ones(2, device="foo")',
    "t.zeros(2, device=5)",
    't.tensor([1.], device="cuda")',
    't.tensor([1.], device="foo")',
    't.zeros(2).to("cuda")',
    't.zeros(2).to("foo")',
    't.zeros(2).to(device="cuda")',
    "t.arange(0, 10, 0)",
    "t.arange(10, 0, 1)",
    "t.arange(0, 10, -1)",
    't.arange(0, 3, device="cuda")',
    "t.linspace(0, 1, 5, dtype=t.bool)",
    "t.linspace(0, 1, -1)",
    "t.eye(-1)",
    "t.eye(2.5)",
    "t.eye(2, -1)",
    "t.randint(0, 10, (-1,))",
    "t.randperm(-1)",
    "t.randperm(2.5)",
    't.zeros_like(X(3), device="cuda")',
    't.ones("a")',
    "t.ones(None)",
    "t.full(2, 1.0)",
    't.tensor([1.0], dtype="float32")',
    't.zeros(2, dtype="float32")',
    "t.rand(2, dtype=t.int64)",
    "t.randn(2, dtype=t.int64)",
    't.div(X(3), X(3), rounding_mode="typo")',
    't.div(X(3), 2, rounding_mode="typo")',
    'X(3).div(X(3), rounding_mode="Floor")',
    "t.add(I(1, 2), I(1, 2), alpha=1.5)",
    "t.sub(I(1, 2), I(1, 2), alpha=1.5)",
    "t.add(X(3), X(4))",
    "t.pow(I(1, 2), -1)",
    "I(1, 2) ** -1",
    "X(3).clamp()",
    "t.clamp(X(3), min=X(4))",
    "t.where(X(3) > 0.5, X(3), X(4))",
    "t.masked_fill(X(3), X(3), 0.0)",
    "t.masked_fill(X(3), X(3) > 0.5, X(2))",
    "t.masked_fill(X(3), I(True, False), 0.0)",
    "t.lerp(X(3), X(4), 0.5)",
    "t.sum(X(2, 3), dim=(0, 0))",
    "t.sum(X(2, 3), dim=(0, -2))",
    "t.sum(X(2, 3), dim=(1, -1))",
    "t.mean(X(2, 3), dim=(0, 0))",
    "t.amax(X(2, 3), dim=(0, 0))",
    "t.amin(X(2, 3), dim=(1, 1))",
    "t.var(X(2, 3), dim=(0, 0))",
    "t.std(X(2, 3), dim=(0, 0))",
    "t.logsumexp(X(2, 3), dim=(0, 0))",
    "t.norm(X(2, 3), dim=(0, 0))",
    "t.norm(X(2, 3), p=1, dim=(0, 0))",
    "t.all(X(2, 3) > 0, dim=(0, 0))",
    "t.any(X(2, 3) > 0, dim=(0, 0))",
    "t.flip(X(2, 3), (0, 0))",
    "t.flip(X(2, 3), (0, -2))",
    "t.flip(X(2, 3), (2,))",
    "X(2, 3).permute(0, 0)",
    "X(2, 3).permute(0)",
    "X(2, 3).permute(0, 2)",
    "X(2, 3).permute(0, 1, 2)",
    "t.mean(I(1, 2))",
    "t.var(I(1, 2))",
    "t.std(I(1, 2))",
    "t.mean(I(1, 2), dim=0)",
    "t.sum(X(2, 3), dim=5)",
    "t.mean(X(2, 3), dim=-3)",
    "t.amax(X(2, 3), dim=2)",
    "t.var(X(2, 3), dim=2)",
    "t.logsumexp(X(2, 3), dim=2)",
    "t.prod(X(2, 3), dim=2)",
    "t.cumsum(X(2, 3), dim=2)",
    "t.norm(X(2, 3), dim=2)",
    't.norm(X(2, 3), p="abc")',
    "t.norm(I(1, 2))",
    "t.topk(X(3), 5)",
    "t.topk(X(3), -1)",
    "t.topk(X(3), 2, dim=1)",
    "t.sort(X(3), dim=1)",
    "t.argsort(X(3), dim=1)",
    "t.argmax(X(2, 3), dim=2)",
    "X(6).reshape(-1, -1)",
    "X(6).reshape(5)",
    "X(6).reshape(-2, 3)",
    "X(6).view(-1, -1)",
    "X(6).view(4)",
    "X(2, 3).t().view(6)",
    "X(2, 3).transpose(0, 1).view(-1)",
    "X(3).expand(-1, 3)",
    "X(3).expand(2)",
    "X(2, 3).expand(3)",
    "X(3).expand(2, -2)",
    "X(3).squeeze(2)",
    "X(3).unsqueeze(3)",
    "X(3).unsqueeze(-3)",
    "X(2, 3).transpose(0, 5)",
    "X(2, 3, 4).flatten(2, 1)",
    "X(2, 3, 4).flatten(0, 5)",
    "X(3, 4).narrow(0, 2, 2)",
    "X(3, 4).narrow(0, -5, 1)",
    "X(3, 4).narrow(0, 0, -1)",
    "X(3, 4).narrow(2, 0, 1)",
    "X(3, 4).select(0, 5)",
    "X(3, 4).select(2, 0)",
    "X(3, 4).split(0)",
    "X(3, 4).split([1, 1])",
    "X(3, 4).split(-1)",
    "X(3, 4).chunk(0)",
    "X(3, 4).chunk(-1)",
    "X(3, 4).unbind(2)",
    "X(3, 4).repeat(2)",
    "X(3, 4).repeat(2, -1)",
    "X(3).roll((1, 2))",
    "X(3).roll(1, (0, 0))",
    "X(3).roll((1, 2), 0)",
    "X(3).roll(1, 2)",
    "X(3).tril()",
    "X(3).triu()",
    "F.pad(X(3), (1,))",
    "F.pad(X(3), (1, 1, 1, 1))",
    "F.pad(X(3), (-5, 1))",
    "t.gather(X(3, 4), 1, t.tensor([[-1]]))",
    "t.gather(X(3, 4), 1, t.tensor([[0.]]))",
    "t.gather(X(3, 4), 1, t.tensor([[0]] * 5))",
    "t.gather(X(3, 4), 2, t.tensor([[0]]))",
    "t.index_select(X(3, 4), 0, t.tensor([-1]))",
    "t.index_select(X(3, 4), 0, t.tensor([0.]))",
    "t.index_select(X(3, 4), 2, t.tensor([0]))",
    "t.take(X(3, 4), t.tensor([0.]))",
    "X(3, 4).take([0])",
    "X(3, 4).put(t.tensor([0]), [1.0])",
    "X(3, 4).put(t.tensor([[0, 1]]), X(3))",
    "F.embedding(t.tensor([5]), X(3, 4))",
    "F.embedding(t.tensor([-1]), X(3, 4))",
    "F.embedding(t.tensor([0.]), X(3, 4))",
    "F.embedding(t.tensor([0]), X(3, 4), padding_idx=5)",
    "F.nll_loss(X(3, 4), I(0, 1, 5))",
    "F.nll_loss(X(3, 4), I(0, 1, -5))",
    "F.cross_entropy(X(3, 4), I(0, 1, 4))",
    "F.cross_entropy(X(3, 4), X(3, 5))",
    "F.one_hot(I(0, 5), 3)",
    "F.one_hot(I(0, -1), 3)",
    "F.one_hot(t.tensor([0.]), 3)",
    "t.dot(X(2, 2), X(2, 2))",
    "t.dot(X(2), X(3))",
    "t.dot(X(2), I(1, 2))",
    "t.mv(X(2, 3), X(2))",
    "t.mv(X(2, 3), X(2, 3))",
    "t.outer(X(2, 2), X(2))",
    "t.addmm(X(2, 2), X(2, 3), X(4, 2))",
    "t.addmm(X(5), X(2, 3), X(3, 2))",
    "t.mm(X(2, 3), I(1, 2, 3).reshape(3, 1))",
    't.einsum("ij,jk->ik", X(2, 3), X(4, 2))',
    't.einsum("ij->ik", X(2, 3))',
    't.einsum("ij,jk->ik", X(2, 3))',
    "t.cat([X(2, 3), X(2, 3)], dim=-3)",
    "t.cat(X(2, 3))",
    "t.stack([X(2), X(3)])",
    "t.stack([X(2)], dim=-3)",
    "t.hstack([])",
    "t.where(X(3) > 0.5, X(2), X(3))",
    "X(3).where(X(3), X(3))",
    "t.allclose(X(3), X(4))",
    "X(3).sum(dtype=t.int64)",
    "X(3).cumsum(0, dtype=t.int64)",
    "X(3).softmax(0, dtype=t.int64)",
    "X(3).to(t.int64).softmax(0)",
    "X(3).to(t.int64).log_softmax(0)",
    "X(3) @ X(4)",
    "X(3).item()",
    "X(3).size(2)",
    "t.cat([X(2, 3), X(2, 3)], dim=2)",
    "t.cat([X(2, 3), X(3, 3)], dim=1)",
    "t.cat((X(2), 5))",
    "t.stack([X(2), X(2)], dim=2)",
    "t.stack([X(2), X(2)], dim=-3)",
    "t.stack(X(2))",
    "t.where(I(1, 0, 1), X(3), X(3))",
    "X(3).squeeze(1)",
    "X(3).squeeze((0, 0))",
    "X(2, 1).squeeze((1, 1))",
    "X(3).unsqueeze(2)",
    "X(3).transpose(0, 1)",
    "X(2, 3, 4).t()",
    "X(6).view(2, 3.5)",
    "X(6).reshape((2, 3.5))",
    "X(3).expand(3.0)",
    "X(3).repeat(2.0)",
    "X(3)[1.5]",
    "X(3).flip(1)",
    "X(3).roll(1, 1)",
    "X(3).roll(1, (0, 1))",
    "t.sort(X(2, 3), dim=2)",
    "t.topk(X(2, 3), 4, dim=1)",
    "t.topk(X(2, 3), 1, dim=2)",
    "t.topk(X(2, 3), 1.5)",
    "X(3).cumsum(1)",
    "X(3).cumsum(-2)",
    "t.argmax(X(2, 3), dim=-3)",
    "t.argmin(X(2, 3), dim=2)",
    "t.min(X(2, 3), dim=2)",
    "t.max(X(2, 3), 2)",
    "t.amax(X(2, 3), dim=(0, 2))",
    "t.mean(X(2, 3), dim=(0, 3))",
    "t.logsumexp(X(2, 3), dim=(0, -1, 1))",
    "X(0, 3).amax()",
    "X(0, 3).amin(0)",
    "X(0, 3).argmin(0)",
    "X(0).max()",
    "X(0).min()",
    "X(3).softmax(1)",
    "X(3).log_softmax(-2)",
    "F.softmax(X(2, 3), dim=3)",
    'F.gelu(X(3), approximate="foo")',
    "F.hardtanh(X(3), 1.0, -1.0)",
    "F.dropout(X(3), -0.1)",
    'F.mse_loss(X(3), X(3), reduction="foo")',
    'F.l1_loss(X(3), X(3), reduction="foo")',
    "F.smooth_l1_loss(X(3), X(3), beta=-1.0)",
    "F.huber_loss(X(3), X(3), delta=0.0)",
    "F.huber_loss(X(3), X(3), delta=-1.0)",
    "F.binary_cross_entropy_with_logits(X(3), X(3), pos_weight=X(4))",
    "F.binary_cross_entropy_with_logits(X(3), X(3), weight=X(4))",
    'F.cross_entropy(X(3, 4), I(0, 1, 2), reduction="x")',
    "F.cross_entropy(X(3, 4), I(0, 1, 2).float())",
    "F.cross_entropy(X(3, 4), X(3))",
    "F.cross_entropy(X(3, 4, 2), I(0, 1, 2))",
    "F.cross_entropy(X(3, 4), I(0, 1, 2), weight=X(3))",
    'F.nll_loss(X(3, 4), I(0, 1, 2), reduction="x")',
    "F.nll_loss(X(2, 3, 4), t.zeros(2, 5, dtype=t.int64))",
    "F.nll_loss(X(3, 4), I(0, 1, 2, 3))",
    "F.nll_loss(X(4), I(0, 1))",
    "F.nll_loss(X(3, 4), t.tensor(0))",
    "F.one_hot(I(0, 1), 0)",
    "F.one_hot(I(0, 1), -2)",
    "F.one_hot(t.tensor([], dtype=t.int64))",
    "F.embedding(t.tensor([0]), X(3))",
    "F.embedding(t.tensor([0]), X(3, 4), padding_idx=-4)",
    "F.embedding(t.tensor([0]), X(3, 4), padding_idx=3)",
    "F.linear(X(3, 4), X(2, 4), X(3))",
    "F.linear(X(3, 4), X(2, 4), X(2, 2))",
    "F.layer_norm(X(3, 4), (5,))",
    "F.layer_norm(X(3, 4), (4,), weight=X(5))",
    "F.layer_norm(X(3, 4), 4)",
    "F.layer_norm(X(3, 4), (3, 3))",
    "F.softmin(X(3), dim=2)",
    "F.log_softmax(X(2, 3), 3)",
    "F.l1_loss(I(1, 2), I(1, 2))",
    "t.neg(t.tensor([True]))",
    "-t.tensor([True])",
    "t.abs(t.tensor([True]))",
    "t.sub(t.tensor([True]), t.tensor([False]))",
    "t.tensor([True]) - t.tensor([False])",
    "t.tensor([True]) - 1",
    "1 - t.tensor([True])",
    "t.add(X(3), X(3), alpha=X(3))",
    "t.add(I(1, 2), 1, alpha=2.5)",
    "X(3) / X(4)",
    "X(3) ** X(4)",
    "t.pow(2, X(4)) + X(3)",
    "X(2, 3) @ X(2)",
    "t.bmm(X(2, 3, 4), X(3, 4, 2))",
    "t.mv(X(2, 3), X(4))",
    "t.outer(X(2), X(2, 1))",
    "t.addmm(X(2, 2), X(3), X(3, 2))",
    't.einsum("ij,jk", X(2, 3), X(3, 3), X(3))',
    't.einsum("i->j", X(2))',
    't.einsum("ab", X(2))',
    't.einsum("a,a->", X(2), X(3))',
    "t.eq(X(3), X(4))",
    "X(3) == X(4)",
    "t.all(X(2, 3), dim=2)",
    "t.any(X(2, 3), dim=-3)",
    "t.addcmul(X(3), X(3), X(4))",
    "t.addcdiv(X(3), X(3), X(4))",
    "t.lerp(X(3), X(3), X(4))",
    "t.lerp(X(3), I(1, 2, 3), 0.5)",
    "t.bernoulli(X(3) * 3)",
    "t.bernoulli(X(3), p=1.5)",
    "t.normal(X(3), -1.0)",
    "t.normal(0.0, 1.0, size=(-1,))",
    "t.split(X(3, 4), [1, 2], dim=2)",
    "t.split(X(3, 4), 1.5)",
    "t.chunk(X(3, 4), 2, dim=2)",
    "t.narrow(X(3, 4), 0, 4, 0)",
    "t.narrow(X(3, 4), 0, -4, 1)",
    "t.narrow(X(3), 0, 0, 4)",
    "t.select(X(3, 4), 1, -5)",
    "t.unbind(X(3, 4), -3)",
    "t.index_select(X(3, 4), -3, t.tensor([0]))",
    "t.gather(X(3, 4), 0, t.tensor([[3]]))",
    "t.gather(X(3, 4), -3, t.tensor([[0]]))",
    "t.gather(X(3, 4), 1, t.tensor([[True]]))",
    "t.masked_fill(X(3), t.tensor([True, False, True]), X(3))",
    "t.masked_fill(X(2, 3), t.tensor([[True], [False], [True]]), 0.0)",
    "t.flatten(X(2, 3), 2)",
    "t.flatten(X(2, 3), 0, -3)",
    "t.squeeze(X(1, 3), 2)",
    "t.transpose(X(2, 3), -3, 0)",
    "t.permute(X(2, 3), (0, -3))",
    "t.permute(X(2, 3), (1,))",
    "t.reshape(X(2, 3), (4, -1))",
    "t.reshape(X(0, 3), (-1, 0))",
    "t.reshape(X(0, 3), (0, -1))",
    "X(2, 3)[:, :, None, 0]",
    "X(2, 3)[t.tensor([[0, 5]])]",
    "X(2, 3)[t.tensor([True, False, True])]",
    "X(2, 3)[t.tensor(1.0)]",
    "X(2, 3).to(t.int64).requires_grad_()",
    "t.as_tensor([1.0], dtype=t.int64).requires_grad_()",
    "F.linear(X(2, 3, 4), X(2, 4), X(3))",
    "F.linear(X(2, 3, 4), X(2, 4), X(6, 2))",
    "F.nll_loss(X(3, 4), t.zeros(3, 1, dtype=t.int64))",
    "F.cross_entropy(X(3, 4), t.zeros(3, 4, dtype=t.int64))",
    "F.cross_entropy(X(3, 4, 2), X(3, 4))",
    "F.layer_norm(X(3, 4), (4,), bias=X(5))",
    "X(2, 3).select(0, 1.0)",
    "X(2, 3).repeat(2, 1.5)",
    "X(2, 3).expand(2, 3.0)",
    "X(2, 3).view(3, 2.0)",
    "X(2, 3).tril(0.5)",
    "X(2, 3).triu(1.5)",
    "F.one_hot(I(0, 1), 2.5)",
    'F.dropout(X(3), "a")',
    "t.squeeze(X(1, 3), (0, 0))",
    "t.flip(X(2, 3), [0, 1, 0])",
    't.einsum("ij,jk->ik", X(2, 3), X(3))',
    't.einsum("ij,jk->ikk", X(2, 3), X(3, 2))',
    't.einsum("ij,jk->il", X(2, 3), X(3, 2))',
    't.einsum("i,i,i->", X(2), X(3), X(2))',
    "t.clamp(X(3), X(2))",
    't.einsum("ij,jk->kik", X(2, 3), X(3, 2))',
    "F.leaky_relu(I(1, 2))",
    "F.elu(I(1, 2))",
    "F.selu(I(1, 2))",
    "F.celu(I(1, 2))",
    "F.silu(I(1, 2))",
    "F.hardsigmoid(I(1, 2))",
    "F.hardswish(I(1, 2))",
    "F.mish(I(1, 2))",
    "F.gelu(I(1, 2))",
    "F.softplus(I(1, 2))",
    "F.logsigmoid(I(1, 2))",
    "F.mse_loss(I(1, 2), I(1, 2))",
    "F.smooth_l1_loss(I(1, 2), I(1, 2))",
    "F.huber_loss(I(1, 2), I(1, 2))",
    "F.binary_cross_entropy(I(1, 0), I(1, 0))",
    "F.binary_cross_entropy(X(2), I(1, 0))",
    "F.binary_cross_entropy(X(2).float(), X(2))",
    "F.binary_cross_entropy_with_logits(I(1, 0), I(1, 0))",
    "F.softmin(I(1, 2), 0)",
]

# the same exception type; torch's message is its argument parser's long list of signatures
TYPE_ONLY = [
    "t.linspace(0, 1, 2.5)",
    "t.randint(0, 10, (2.5,))",
    "t.tensor([[1, 2], [3]])",
    "t.cumsum(X(2, 3))",
    "t.max(X(2, 3), dim=(0, 1))",
    "t.prod(X(2, 3), dim=(0, 1))",
    'F.pad(X(3), (1, 1), mode="foo")',
    "t.matmul(X(2, 3), I(1, 2, 3))",
    "t.where(X(3) > 0.5, X(3))",
    "X(3).view(1.5)",
    "X(6).reshape(2.0, 3)",
    "t.cumsum(X(3), dim=(0,))",
    "t.sum(X(2, 3), dim=1.0)",
    "t.sum(X(2, 3), dim=(0, 1.0))",
    'F.elu(X(3), alpha="a")',
    't.mul(X(3), "a")',
    'X(3) + "a"',
    "X(3) + None",
    "t.bmm(X(2, 3, 4), I(1).reshape(1, 1, 1))",
    "t.addcdiv(I(1, 2), I(1, 2), I(1, 2))",
    "t.narrow(X(3, 4), 0, 1.5, 1)",
    "X(2, 3)[None, None, 5]",
    "X(2, 3)[t.tensor([0, 1]), t.tensor([0, 1, 2])]",
    "t.tensor([1, 2], requires_grad=True)",
    "t.ones(2, dtype=t.int64, requires_grad=True)",
    "t.zeros(2, dtype=t.int64, requires_grad=True)",
    "t.arange(3, requires_grad=True)",
    "t.full((2,), 1, requires_grad=True)",
    "t.eye(2, dtype=t.int64, requires_grad=True)",
    "t.randint(0, 3, (2,), requires_grad=True)",
    "t.randperm(3, requires_grad=True)",
    "t.linspace(0, 1, 3, dtype=t.int64, requires_grad=True)",
    "t.zeros_like(I(1, 2), requires_grad=True)",
    "t.empty(2, dtype=t.bool, requires_grad=True)",
    "X(2, 3).transpose(0.0, 1)",
    "X(2, 3).softmax(1.0)",
    "X(2, 3).sum(1.0)",
    "X(2, 3).cumsum(1.5)",
    "X(2, 3).flip(0.5)",
    "X(2, 3).roll(1.5, 0)",
    "X(2, 3).roll(1, 0.5)",
    "X(2, 3).unsqueeze(1.0)",
    "X(2, 3).squeeze(0.0)",
    "X(2, 3).narrow(0.0, 0, 1)",
    "X(2, 3).gather(1.0, t.tensor([[0]]))",
    "X(2, 3).index_select(0.0, t.tensor([0]))",
    "X(2, 3).max(1.0)",
    "X(2, 3).argmax(1.0)",
    "X(2, 3).topk(1, 1.0)",
    "X(2, 3).sort(1.0)",
    "X(2, 3).chunk(1.5)",
    "X(2, 3).split(1, 1.0)",
    "X(2, 3).unbind(0.5)",
    "X(2, 3).flatten(0.0)",
    "X(2, 3).permute(0.0, 1)",
    "X(2, 3).mean((0, 1.5))",
    "X(2, 3).var(1.0)",
    "X(2, 3).std(0.5)",
    "X(2, 3).prod(1.0)",
    "F.pad(X(2, 3), (1.5, 1))",
    "F.softmax(X(2, 3), 1.0)",
    "F.log_softmax(X(2, 3), dim=0.0)",
    "t.cat([X(2), X(2)], 0.0)",
    "t.stack([X(2), X(2)], 0.0)",
    "t.logsumexp(X(2, 3), 1.0)",
    "t.norm(X(2, 3), dim=1.0)",
    "t.amax(X(2, 3), 1.0)",
]


@pytest.fixture
def torch_own_einsum_checks():
    """torch's einsum with opt_einsum installed (JAX brings it) validates through opt_einsum
    first, which raises its own ValueErrors; jitgrad follows torch's checks."""
    backend = getattr(getattr(torch, "backends", None), "opt_einsum", None)
    was = getattr(backend, "enabled", None)
    if backend is not None:
        backend.enabled = False
    yield
    if backend is not None:
        backend.enabled = was


@needs_torch
@pytest.mark.parametrize("expr", EXACT)
def test_same_error_as_torch(expr, torch_own_einsum_checks):
    want = _raised(torch, TF, expr)
    assert want is not None, "torch accepts this: the case is wrong"
    got = _raised(jitgrad, JF, expr)
    assert got is not None, f"jitgrad returned a value; torch raised {type(want).__name__}: {want}"
    assert type(got) is type(want), (got, want)
    assert _message(got) == _message(want)


@needs_torch
@pytest.mark.parametrize("expr", TYPE_ONLY)
def test_same_error_type_as_torch(expr):
    want = _raised(torch, TF, expr)
    assert want is not None, "torch accepts this: the case is wrong"
    got = _raised(jitgrad, JF, expr)
    assert type(got) is type(want), (got, want)


_OTHER_DEVICES = ("cpu, cuda, ipu, xpu, mkldnn, opengl, opencl, ideep, hip, ve, fpga, maia, xla, "
                  "lazy, vulkan, mps, meta, hpu, mtia, privateuseone")
# checked without torch: the issue's examples, with torch 2.13's types and messages
HARD_CODED = [
    ('t.div(X(3), X(3), rounding_mode="typo")', RuntimeError,
     "div expected rounding_mode to be one of None, 'trunc', or 'floor' but found 'typo'"),
    ("t.sum(X(2, 3), dim=(0, -2))", RuntimeError, "dim 0 appears multiple times in the list of dims"),
    ("t.flip(X(2, 3), (1, 1))", RuntimeError, "dim 1 appears multiple times in the list of dims"),
    ("X(2, 3).permute(1, 1)", RuntimeError, "permute(): duplicate dims are not allowed."),
    ("X(3).roll((1, 2))", RuntimeError, "shifts and dimensions must align. shifts: 2, dims:0"),
    ("t.linspace(0, 1, 5, dtype=t.bool)", NotImplementedError,
     "\"linspace_cpu\" not implemented for 'Bool'"),
    ("t.gather(X(3, 4), 1, t.tensor([[-1]]))", RuntimeError,
     "index -1 is out of bounds for dimension 1 with size 4"),
    ("X(3).expand(-1, 3)", RuntimeError,
     "The expanded size of the tensor (-1) isn't allowed in a leading, non-existing dimension 0"),
    ("t.ones(2.5)", TypeError, "ones(): argument 'size' (position 1) must be tuple of ints, not float"),
    ("t.zeros(2, -3)", RuntimeError, "zeros: Dimension size must be non-negative."),
    ("t.ones(2, -3)", RuntimeError, "Trying to create tensor with negative dimension -3: [2, -3]"),
    ('t.ones(2, device="cuda")', AssertionError, "Torch not compiled with CUDA enabled"),
    ('t.zeros(2).to("cuda:0")', AssertionError, "Torch not compiled with CUDA enabled"),
    ('t.ones(2, device="foo")', RuntimeError,
     f"Expected one of {_OTHER_DEVICES} device type at start of device string: foo"),
    ('t.tensor([1.0], device="cpu:x")', RuntimeError, "Invalid device string: 'cpu:x'"),
    ("t.arange(0, 10, 0)", RuntimeError, "step must be nonzero"),
    ("X(6).reshape(-1, -1)", RuntimeError, "only one dimension can be inferred"),
    ("I(1, 2) ** -1", RuntimeError, "Integers to negative integer powers are not allowed."),
    ("X(3).tril()", RuntimeError, "tril: input tensor must have at least 2 dimensions"),
    ("t.add(I(1, 2), I(1, 2), alpha=1.5)", RuntimeError,
     "For integral input tensors, argument alpha must not be a floating point number."),
    ("X(3).sum(dtype=t.int64)", RuntimeError, "Autograd not support dtype: Long"),
    ("t.topk(X(3), 4)", RuntimeError, "selected index k out of range"),
]


@pytest.mark.parametrize("expr,exc,message", HARD_CODED, ids=[c[0] for c in HARD_CODED])
def test_error_without_torch(expr, exc, message):
    got = _raised(jitgrad, JF, expr)
    assert type(got) is exc, got
    assert str(got) == message


def test_cpu_devices_are_accepted():
    t = jitgrad
    for device in (None, "cpu", "cpu:0", "cpu:1"):
        assert t.ones(2, device=device).shape == (2,)
        assert t.zeros(2).to(device).dtype is t.float32
    assert t.zeros(2).to("cpu", t.float64).dtype is t.float64
    assert t.tensor([1.0], device="cpu").item() == 1.0
    assert t.ones(np.int64(2)).shape == (2,) and t.ones(t.tensor(3)).shape == (3,)
    assert t.full([2], 1.5).shape == (2,)


def test_roll_tuple_shifts_without_dims_is_not_a_sum():
    x = jitgrad.arange(4)
    with pytest.raises(RuntimeError, match="shifts and dimensions must align"):
        x.roll((1, 2))
    assert x.roll((1,)).tolist() == [3, 0, 1, 2]      # one shift: the flattened roll


def test_gather_negative_index_is_an_error_not_a_wrap():
    x = jitgrad.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    with pytest.raises(RuntimeError, match="index -1 is out of bounds"):
        x.gather(1, jitgrad.tensor([[-1]]))
    y = x.gather(1, jitgrad.tensor([[2, 0]], dtype=jitgrad.int32))      # int32 indices: allowed
    y.sum().backward()
    assert y.tolist() == [[3.0, 1.0]] and x.grad.tolist() == [[1.0, 0.0, 1.0]]


def test_sum_with_a_repeated_dim_is_an_error_not_a_single_sum():
    x = jitgrad.ones(2, 3, requires_grad=True)
    for fn in (jitgrad.sum, jitgrad.mean, jitgrad.amax, jitgrad.amin, jitgrad.var, jitgrad.std,
               jitgrad.logsumexp, jitgrad.norm):
        with pytest.raises(RuntimeError, match="dim 1 appears multiple times"):
            fn(x, dim=(1, -1))


def test_masked_fill_broadcasts_to_a_larger_mask():
    x = jitgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = jitgrad.tensor([[True, False, False], [False, False, True]])
    y = x.masked_fill(mask, 0.0)
    y.sum().backward()
    assert y.tolist() == [[0.0, 2.0, 3.0], [1.0, 2.0, 0.0]]
    assert x.grad.tolist() == [1.0, 2.0, 1.0]
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast"):
        x.detach().clone().masked_fill_(mask, 0.0)


def test_unbatched_nll_loss_takes_a_one_element_target():
    x = jitgrad.tensor([0.1, 0.5, 0.9], requires_grad=True)
    for target in (jitgrad.tensor(2), jitgrad.tensor([2])):
        loss = JF.nll_loss(x, target, reduction="none")
        assert loss.shape == () and math.isclose(loss.item(), -0.9, rel_tol=1e-6)
    with pytest.raises(ValueError, match="For 1D input, 1D target must have size 1"):
        JF.nll_loss(x, jitgrad.tensor([0, 1]))


@needs_torch
def test_linear_with_a_2d_bias_on_3d_input_broadcasts_as_torch():
    x = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    w = np.linspace(-1, 1, 8).reshape(2, 4)
    b = np.linspace(0, 1, 6).reshape(3, 2)
    outs = []
    for lib, F in ((jitgrad, JF), (torch, TF)):
        xs = [lib.tensor(v, requires_grad=True) for v in (x, w, b)]
        y = F.linear(*xs)
        (y * y).sum().backward()
        outs.append([y.detach().numpy()] + [v.grad.numpy() for v in xs])
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# ---- numerics at extreme values: forward values and gradients as torch's, and no numpy warnings
EXTREMES = [0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38, math.inf, -math.inf, math.nan, 1.5, -0.7]

ELEMENTWISE = {
    "exp": lambda t, F, x: t.exp(x), "log": lambda t, F, x: t.log(x),
    "sqrt": lambda t, F, x: t.sqrt(x), "tanh": lambda t, F, x: t.tanh(x),
    "sigmoid": lambda t, F, x: t.sigmoid(x), "relu": lambda t, F, x: t.relu(x),
    "abs": lambda t, F, x: t.abs(x), "neg": lambda t, F, x: -x,
    "reciprocal": lambda t, F, x: t.reciprocal(x), "sin": lambda t, F, x: t.sin(x),
    "cos": lambda t, F, x: t.cos(x), "tan": lambda t, F, x: t.tan(x),
    "sinh": lambda t, F, x: t.sinh(x), "cosh": lambda t, F, x: t.cosh(x),
    "asin": lambda t, F, x: t.asin(x), "acos": lambda t, F, x: t.acos(x),
    "atan": lambda t, F, x: t.atan(x), "expm1": lambda t, F, x: t.expm1(x),
    "exp2": lambda t, F, x: t.exp2(x), "log2": lambda t, F, x: t.log2(x),
    "log10": lambda t, F, x: t.log10(x), "rsqrt": lambda t, F, x: t.rsqrt(x),
    "square": lambda t, F, x: t.square(x), "sign": lambda t, F, x: t.sign(x),
    "floor": lambda t, F, x: t.floor(x), "round": lambda t, F, x: t.round(x),
    "erf": lambda t, F, x: t.erf(x), "clamp(min=0)": lambda t, F, x: t.clamp(x, min=0),
    "clamp(-1, 1)": lambda t, F, x: t.clamp(x, -1, 1),
    "clamp(min=tensor)": lambda t, F, x: t.clamp(x, min=t.zeros_like(x)),
    "x ** 2": lambda t, F, x: x ** 2, "x ** -1": lambda t, F, x: x ** -1,
    "x ** 0.5": lambda t, F, x: x ** 0.5, "x ** -0.5": lambda t, F, x: x ** -0.5,
    "x ** 3": lambda t, F, x: x ** 3, "x ** 0": lambda t, F, x: x ** 0,
    "x ** -2": lambda t, F, x: x ** -2, "x ** 1.5": lambda t, F, x: x ** 1.5,
    "2 ** x": lambda t, F, x: 2 ** x, "0 ** x": lambda t, F, x: 0 ** x,
    "clamp(min=0) ** -1": lambda t, F, x: t.clamp(x, min=0) ** -1,
    "relu(x) ** -1": lambda t, F, x: t.relu(x) ** -1,
    "clamp(min=0).sqrt()": lambda t, F, x: t.clamp(x, min=0).sqrt(),
    "relu(x).log()": lambda t, F, x: t.relu(x).log(),
    "where(x > 0, x, 1).sqrt()": lambda t, F, x: t.where(x > 0, x, t.ones_like(x)).sqrt(),
    "masked_fill(x <= 0, 1).log()": lambda t, F, x: x.masked_fill(x <= 0, 1.0).log(),
    # + 0.0 makes -0. +0. (torch's maximum keeps the sign of x's zero in float32, not in float64)
    "(maximum(x, 0) + 0) ** -1": lambda t, F, x: (t.maximum(x, t.zeros_like(x)) + 0.0) ** -1,
    "leaky_relu": lambda t, F, x: F.leaky_relu(x), "elu": lambda t, F, x: F.elu(x),
    "selu": lambda t, F, x: F.selu(x), "celu": lambda t, F, x: F.celu(x),
    "hardtanh": lambda t, F, x: F.hardtanh(x), "relu6": lambda t, F, x: F.relu6(x),
    "silu": lambda t, F, x: F.silu(x), "hardsigmoid": lambda t, F, x: F.hardsigmoid(x),
    "hardswish": lambda t, F, x: F.hardswish(x), "mish": lambda t, F, x: F.mish(x),
    "gelu(tanh)": lambda t, F, x: F.gelu(x, approximate="tanh"),
    "softplus": lambda t, F, x: F.softplus(x), "softsign": lambda t, F, x: F.softsign(x),
    "tanhshrink": lambda t, F, x: F.tanhshrink(x), "logsigmoid": lambda t, F, x: F.logsigmoid(x),
    "x * x": lambda t, F, x: x * x, "x / x": lambda t, F, x: x / x,
    "x * 2": lambda t, F, x: x * 2.0, "2 / x": lambda t, F, x: 2.0 / x,
    "x + 1": lambda t, F, x: x + 1.0, "1 - x": lambda t, F, x: 1.0 - x,
}
# torch's own quirks, left: log1p and gelu flush float32 subnormals and overflow early
TORCH_QUIRKS = ("log1p", "gelu(none)")

PAIRWISE = {   # x is a column of the extremes, y a row: every pair at once
    "mul": lambda t, F, x, y: x * y, "div": lambda t, F, x, y: x / y,
    "add": lambda t, F, x, y: x + y, "sub": lambda t, F, x, y: x - y,
    "maximum": lambda t, F, x, y: t.maximum(x, y), "minimum": lambda t, F, x, y: t.minimum(x, y),
    "pow": lambda t, F, x, y: x ** y, "where": lambda t, F, x, y: t.where(x > y, x, y),
    "clamp": lambda t, F, x, y: t.clamp(x, min=y),
    "mse_loss": lambda t, F, x, y: F.mse_loss(x.expand(11, 11), y.expand(11, 11), reduction="none"),
    "l1_loss": lambda t, F, x, y: F.l1_loss(x.expand(11, 11), y.expand(11, 11), reduction="none"),
    "smooth_l1_loss": lambda t, F, x, y: F.smooth_l1_loss(x.expand(11, 11), y.expand(11, 11),
                                                          reduction="none"),
    "lerp": lambda t, F, x, y: t.lerp(x.expand(11, 11), y.expand(11, 11), 0.5),
    "lerp(0.25)": lambda t, F, x, y: t.lerp(x.expand(11, 11), y.expand(11, 11), 0.25),
    "addcdiv": lambda t, F, x, y: t.addcdiv(x, x, y),
}

REDUCTIONS = {
    "sum": lambda t, F, x: x.sum(), "mean": lambda t, F, x: x.mean(),
    "prod": lambda t, F, x: x.prod(), "prod(0)": lambda t, F, x: x.prod(0),
    "norm": lambda t, F, x: x.norm(), "norm(1)": lambda t, F, x: x.norm(p=1),
    "norm(3)": lambda t, F, x: x.norm(p=3), "norm(inf)": lambda t, F, x: x.norm(p=math.inf),
    "norm(0.5)": lambda t, F, x: x.norm(p=0.5),
    "logsumexp": lambda t, F, x: t.logsumexp(x, 0), "log_softmax": lambda t, F, x: t.log_softmax(x, 0),
    "softmax * c": lambda t, F, x: (t.softmax(x, 0) * t.arange(x.shape[0], dtype=x.dtype)).sum(),
    "var": lambda t, F, x: x.var(), "std": lambda t, F, x: x.std(),
    "amax": lambda t, F, x: x.amax(), "amin": lambda t, F, x: x.amin(),
    "max": lambda t, F, x: x.max(), "min": lambda t, F, x: x.min(),
    "max(0)": lambda t, F, x: x.max(0)[0], "min(0)": lambda t, F, x: x.min(0)[0],
    "max(0) index": lambda t, F, x: x.max(0)[1], "argmax": lambda t, F, x: x.argmax(),
    "argmin": lambda t, F, x: x.argmin(),
    "cumsum": lambda t, F, x: x.cumsum(0), "sort": lambda t, F, x: x.sort()[0],
    "sort(descending)": lambda t, F, x: x.sort(descending=True)[0],
    "sort indices": lambda t, F, x: x.sort()[1], "argsort(descending)":
        lambda t, F, x: x.argsort(descending=True),
    "topk": lambda t, F, x: x.topk(2)[0], "topk indices": lambda t, F, x: x.topk(2)[1],
    "topk(smallest)": lambda t, F, x: x.topk(2, largest=False)[0],
    "mse_loss": lambda t, F, x: F.mse_loss(x, t.zeros_like(x)),
    "l1_loss": lambda t, F, x: F.l1_loss(x, t.zeros_like(x)),
    "huber_loss": lambda t, F, x: F.huber_loss(x, t.zeros_like(x)),
    "bce_with_logits": lambda t, F, x: F.binary_cross_entropy_with_logits(x, t.ones_like(x) / 2),
    "cross_entropy": lambda t, F, x: F.cross_entropy(x.reshape(1, -1), t.tensor([0])),
}
# each reduction sees every extreme next to ordinary values, twice (ties), and all together
REDUCTION_INPUTS = [[v, 1.0, -2.0] for v in EXTREMES] + [[v, v] for v in EXTREMES] + [EXTREMES]


def _run(lib, F, fn, values, dtype, strict_warnings, as_dtype=None):
    """(forward values, gradients) of fn on tensors of these values, gradient of ones. The
    forward must not warn (numpy's RuntimeWarnings) when strict_warnings."""
    xs = [lib.tensor(np.array(v, dtype=dtype).astype(as_dtype or dtype), requires_grad=True)
          for v in values]
    with warnings.catch_warnings():
        warnings.simplefilter("error" if strict_warnings else "ignore")
        y = fn(lib, F, *xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = y.detach().numpy().astype(dtype)
        if not y.requires_grad:
            return out, None
        y.backward(lib.ones_like(y))
        return out, [np.zeros_like(out) if x.grad is None else x.grad.numpy().astype(dtype)
                     for x in xs]


def _assert_same(got, want, dtype, what, exact=None):
    """got as want; exact (torch in float64) may stand for want where torch's float32 arithmetic
    overflowed on the way (std of 3e38: torch's float32 gradient is 0) and jitgrad's did not."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    if exact is not None:
        exact = np.asarray(exact, np.float64)
        with np.errstate(all="ignore"):
            take = np.isfinite(exact) & np.isclose(got, exact, rtol=1e-5) & \
                ~np.isclose(want, exact, rtol=1e-5)
        want = np.where(take, exact, want)
    atol = 1e-7 if dtype == np.float32 else 1e-15     # softmax-like sums of 1 - sum(p): roundoff
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-10, atol=atol,
                               equal_nan=True, err_msg=what)
    finite = np.isinf(want)
    assert (np.sign(got[finite]) == np.sign(want[finite])).all(), what


def _compare(fn, values, dtype, name):
    got = _run(jitgrad, JF, fn, values, dtype, True)     # no numpy RuntimeWarning either
    want = _run(torch, TF, fn, values, dtype, False)
    exact = _run(torch, TF, fn, values, dtype, False, np.float64) if dtype == np.float32 \
        else (None, None)
    _assert_same(got[0], want[0], dtype, f"{name}{values}: forward", exact[0])
    assert (got[1] is None) == (want[1] is None), name
    for k, (g, w) in enumerate(zip(got[1] or (), want[1] or ())):
        _assert_same(g, w, dtype, f"{name}{values}: gradient of input {k}",
                     None if exact[1] is None else exact[1][k])


DTYPES = [np.float32, np.float64]


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_at_extremes_matches_torch(name, dtype):
    _compare(ELEMENTWISE[name], [EXTREMES], dtype, name)


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(PAIRWISE))
def test_binary_at_extreme_pairs_matches_torch(name, dtype):
    column = [[v] for v in EXTREMES]
    _compare(PAIRWISE[name], [column, [EXTREMES]], dtype, name)


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction_at_extremes_matches_torch(name, dtype):
    for values in REDUCTION_INPUTS:
        _compare(REDUCTIONS[name], [values], dtype, name)


# ---- the same, checked without torch
def test_float32_cumsum_of_a_million_tenths_is_100000():
    x = jitgrad.full((1_000_000,), 0.1, requires_grad=True)
    y = x.cumsum(0)
    assert y[-1].item() == 100000.0          # float32 accumulation gave 100958
    y.backward(jitgrad.full((1_000_000,), 0.1))
    assert x.grad[0].item() == 100000.0      # the backward is a reversed cumsum


def test_gradient_through_a_zero_mask_is_zero_not_nan():
    x = jitgrad.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    zeros = jitgrad.zeros(3)
    at_zero = -math.inf        # clamp passes the gradient on its bound; maximum halves a tie
    for y, boundary in ((jitgrad.clamp(x, min=0) ** -1, at_zero),
                        (jitgrad.clamp(x, min=zeros) ** -1, at_zero),
                        ((jitgrad.maximum(x, zeros) + 0.0) ** -1, at_zero),
                        (jitgrad.where(x > 0, x, zeros) ** -1, 0.0),
                        (JF.hardtanh(x, 0.0, 3.0) ** -1, 0.0)):
        x.grad = None
        y.sum().backward()
        assert x.grad.tolist() == [0.0, boundary, -0.25]      # 0 * inf would be nan


def test_nan_is_largest_for_sort_and_topk_and_max_propagates_it():
    x = jitgrad.tensor([1.0, math.nan, 3.0, -1.0], requires_grad=True)
    assert x.sort().indices.tolist() == [3, 0, 2, 1]
    assert x.sort(descending=True).indices.tolist() == [1, 2, 0, 3]
    assert x.argsort(descending=True).tolist() == [1, 2, 0, 3]
    assert x.topk(2).indices.tolist() == [1, 2]
    assert x.topk(2, largest=False).indices.tolist() == [3, 0]
    assert math.isnan(x.max().item()) and math.isnan(x.amax().item())
    assert x.argmax().item() == 1 and x.max(0).indices.item() == 1
    small = jitgrad.tensor([1, 0, 255], dtype=jitgrad.uint8)     # negating would wrap 255
    assert small.sort(descending=True).indices.tolist() == [2, 0, 1]


def test_gradients_at_3e38_do_not_overflow():
    x = jitgrad.tensor([3e38, -3e38], requires_grad=True)
    for y, want in (((x / x).sum(), [0.0, 0.0]), (JF.mse_loss(x, jitgrad.zeros(2)), [3e38, -3e38]),
                    (x.abs().sum(), [1.0, -1.0]), (x.tanh().sum(), [0.0, 0.0])):
        x.grad = None
        y.backward()
        np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6)
    y = jitgrad.tensor([3e38, 1.0, -2.0], requires_grad=True)
    y.var().backward()
    assert np.isfinite(y.grad.numpy()).all()


@pytest.mark.parametrize("dtype", [jitgrad.float32, jitgrad.float64], ids=["float32", "float64"])
def test_forwards_at_extremes_print_no_numpy_warnings(dtype):
    x = jitgrad.tensor(EXTREMES, dtype=dtype, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, fn in ELEMENTWISE.items():
            fn(jitgrad, JF, x)
        for name, fn in REDUCTIONS.items():
            fn(jitgrad, JF, x)
        column = x.reshape(-1, 1)
        for name, fn in PAIRWISE.items():
            fn(jitgrad, JF, column, x.reshape(1, -1))


def test_norm_minus_inf_and_empty_inf_norms_as_torch():
    x = jitgrad.tensor([3., -1., 2.], requires_grad=True)
    n = x.norm(p=float("-inf"))
    n.backward()
    assert n.item() == 1.0 and x.grad.tolist() == [0.0, -1.0, 0.0]
    with pytest.raises(RuntimeError, match="cannot compute the inf norm on an empty tensor"):
        jitgrad.tensor([]).norm(p=float("inf"))
    with pytest.raises(RuntimeError, match="cannot compute the -inf norm on the dimension 0because"):
        jitgrad.zeros(0, 3).norm(p=float("-inf"), dim=0)
    assert jitgrad.zeros(0, 3).norm(p=float("inf"), dim=1).shape == (0,)
