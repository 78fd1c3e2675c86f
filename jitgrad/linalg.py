"""jitgrad.linalg: torch.linalg's names. The matrix functions and decompositions are op entries
(jitgrad/ops/decompositions.py, differentiable to any order); the norms are compositions of the
vector norm, svdvals and reductions, as torch's (so are their grad_fns)."""
import builtins
import math

from . import ops
from .ops import LinAlgError
from .ops import (linalg_cholesky as cholesky, linalg_det as det, linalg_eigh as eigh,
                  linalg_eigvalsh as eigvalsh, linalg_inv as inv, linalg_lstsq as lstsq,
                  linalg_pinv as pinv, linalg_qr as qr, linalg_slogdet as slogdet, linalg_solve as solve,
                  linalg_svd as svd, linalg_svdvals as svdvals)
from .tensor import Tensor

__all__ = ["LinAlgError", "cholesky", "det", "eigh", "eigvalsh", "inv", "lstsq", "pinv", "qr", "slogdet",
           "solve", "svd", "svdvals", "norm", "vector_norm", "matrix_norm", "matmul", "vecdot",
           "multi_dot", "matrix_power"]


def _cast(x, dtype):
    return x if dtype is None else x.to(dtype)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    if isinstance(ord, str):
        raise TypeError(f"linalg_vector_norm(): argument 'ord' must be Number, not {type(ord).__name__}")
    return ops.norm(_cast(x, dtype), ord, dim, keepdim)


def _matrix_dims(A, dim):
    d0, d1 = (d % A.dim() if A.dim() else d for d in dim)
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, {dim[1]})")
    return d0, d1


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    A = _cast(A, dtype)
    if A.dim() < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    d0, d1 = _matrix_dims(A, dim)
    if ord == "fro":
        return ops.norm(A, 2, [d0, d1], keepdim)
    if ord == "nuc" or ord in (2, -2):
        if ord != "nuc" and not A.is_floating_point():
            raise RuntimeError("linalg.matrix_norm: Expected a floating point or complex tensor as input. "
                               f"Got {A.dtype.tensor_type[:-6]}")
        perm = [d for d in range(A.dim()) if d not in (d0, d1)] + [d0, d1]
        s = svdvals(A.permute(*perm))
        r = (s.sum if ord == "nuc" else s.amax if ord == 2 else s.amin)(-1, keepdim=keepdim)
        if not keepdim:
            return r
        back = [0] * len(perm)
        for i, d in enumerate(perm):
            back[d] = i
        return r.unsqueeze(-1).permute(*back)
    if ord in (1, -1, math.inf, -math.inf):     # the largest (smallest) column or row 1-norm
        summed, reduced = (d0, d1) if ord in (1, -1) else (d1, d0)
        r = ops.norm(A, 1, summed, keepdim)
        if not keepdim and summed < reduced:
            reduced -= 1
        return (r.amax if ord > 0 else r.amin)(reduced, keepdim=keepdim)
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None and len(dim) not in (1, 2):
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {list(dim)}")
    if ord is None:
        return vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if dim is None:
        if A.dim() not in (1, 2):
            raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or "
                               f"2D. Got {A.dim()}D.")
        dim = tuple(range(A.dim()))
    if len(dim) == 2:
        return matrix_norm(A, ord, dim, keepdim, dtype=dtype)
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: Expected ord to be a number, got {ord}")
    return vector_norm(A, ord, dim, keepdim, dtype=dtype)


def matmul(input, other):
    return ops.matmul(input, other)


def vecdot(x, y, *, dim=-1):
    return (x * y).sum(dim)


def multi_dot(tensors):
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    out = tensors[0]
    for t in tensors[1:]:
        out = ops.matmul(out, t)
    return out


def matrix_power(A, n):
    if not isinstance(A, Tensor) or A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError("linalg.matrix_power: A must be batches of square matrices, but they are "
                           f"{A.shape[-2]} by {A.shape[-1]} matrices" if isinstance(A, Tensor) and A.dim() >= 2
                           else "linalg.matrix_power: The input tensor A must have at least 2 dimensions.")
    if n == 0:
        from .creation import eye
        return eye(A.shape[-1], dtype=A.dtype).expand(A.shape).clone()
    base = inv(A) if n < 0 else A
    out = base
    for _ in range(builtins.abs(n) - 1):
        out = ops.matmul(out, base)
    return out
