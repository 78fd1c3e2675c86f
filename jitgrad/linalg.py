"""jitgrad.linalg: torch.linalg's names. The matrix functions and decompositions are op entries
(jitgrad/ops/decompositions.py, differentiable to any order); the norms are compositions of the
vector norm, svdvals and reductions, as torch's (so are their grad_fns)."""
import builtins
import math

import numpy as np

from . import ops
from .ops import LinAlgError
from .ops import (linalg_cholesky as cholesky, linalg_det as det, linalg_eigh as eigh,
                  linalg_eigvalsh as eigvalsh, linalg_inv as inv, linalg_lstsq as lstsq,
                  linalg_matrix_exp as matrix_exp,
                  linalg_pinv as pinv, linalg_qr as qr, linalg_slogdet as slogdet, linalg_solve as solve,
                  linalg_solve_triangular as solve_triangular, linalg_svd as svd, linalg_svdvals as svdvals)
from .ops.decompositions import _numpy_svd, _result_type
from .tensor import Tensor, _wrap

__all__ = ["LinAlgError", "cholesky", "det", "eigh", "eigvalsh", "inv", "lstsq", "pinv", "qr", "slogdet",
           "solve", "solve_triangular", "svd", "svdvals", "norm", "vector_norm", "matrix_norm", "matmul",
           "vecdot", "multi_dot", "matrix_power", "inv_ex", "cholesky_ex", "solve_ex", "matrix_rank", "cond",
           "cross", "diagonal", "vander", "tensorinv", "tensorsolve", "matrix_exp"]


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
    if ord == "fro" or (ord in (1, 2, math.inf) and 0 in (A.shape[d0], A.shape[d1])):
        return ops.norm(A, 2, [d0, d1], keepdim)      # (an empty matrix's largest norm is 0)
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


# ---- the *_ex variants: the result and LAPACK's info (0: success) instead of an error
inv_ex_result = _result_type("linalg_inv_ex", ("inverse", "info"))
cholesky_ex_result = _result_type("linalg_cholesky_ex", ("L", "info"))
solve_ex_result = _result_type("linalg_solve_ex", ("result", "info"))


def _info(A, failed_index):
    """info per matrix (int32, A's batch shape): the index LAPACK failed at, else 0."""
    a3 = A._a.reshape((-1,) + A._a.shape[-2:])
    return _wrap(np.array([failed_index(m) for m in a3], np.int32).reshape(A._a.shape[:-2]))


def _getrf_info(m):
    from scipy.linalg import lapack
    return lapack.get_lapack_funcs("getrf", (m,))(m)[-1] if m.size else 0


def _potrf_info(m):
    from scipy.linalg import lapack
    return lapack.get_lapack_funcs("potrf", (m,))(m, lower=1)[-1] if m.size else 0


def _ex(compute, A, failed_index, check_errors, fill):
    try:
        return compute(), _wrap(np.zeros(A._a.shape[:-2], np.int32))
    except LinAlgError:
        if check_errors:
            raise
    return fill(), _info(A, failed_index)


def inv_ex(A, *, check_errors=False):
    """On a singular matrix: info > 0 and a nan inverse (LAPACK's output there is unspecified)."""
    return inv_ex_result(*_ex(lambda: inv(A), A, _getrf_info, check_errors,
                              lambda: _wrap(np.full(A._a.shape, np.nan, A._a.dtype))))


def cholesky_ex(A, *, upper=False, check_errors=False):
    return cholesky_ex_result(*_ex(lambda: cholesky(A, upper=upper), A, _potrf_info, check_errors,
                                   lambda: _wrap(np.full(A._a.shape, np.nan, A._a.dtype))))


def solve_ex(A, B, *, left=True, check_errors=False):
    def fill():
        shape = np.broadcast_shapes(A._a.shape[:-2], B._a.shape[:-2] if B.dim() > 1 else ()) + B._a.shape[-2:]
        return _wrap(np.full(shape if B.dim() > 1 else B._a.shape, np.nan, A._a.dtype))
    return solve_ex_result(*_ex(lambda: solve(A, B, left=left), A, _getrf_info, check_errors, fill))


# ---- compositions
def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, tol=None):
    """The number of singular values above max(atol, rtol * largest); rtol defaults to
    eps * max(m, n) when atol is unset or zero. Not differentiable (int64), as torch's."""
    a = A._a
    if a.ndim < 2:
        raise RuntimeError("linalg.matrix_rank: The input tensor input must have at least 2 dimensions.")
    if tol is not None:
        atol, rtol = tol, 0.0
    m, n = a.shape[-2:]
    if rtol is None:
        rtol = np.finfo(a.dtype).eps * max(m, n) if not atol else 0.0
    with np.errstate(all="ignore"):
        s = np.abs(np.linalg.eigvalsh(a)) if hermitian else _numpy_svd(a, compute_uv=False)
        if s.shape[-1] == 0:
            return _wrap(np.zeros(a.shape[:-2], np.int64))
        cut = np.maximum(0.0 if atol is None else atol, rtol * s.max(-1, keepdims=True))
    return _wrap((s > cut).sum(-1).astype(np.int64))


def cond(A, p=None):
    """The condition number: s_max / s_min for p None or 2 (s_min / s_max for -2), else
    norm(A, p) norm(A^-1, p)."""
    if A.dim() < 2:
        raise RuntimeError("linalg.cond: The input tensor A must have at least 2 dimensions.")
    if p in (None, 2, -2):
        s = svdvals(A)
        big, small = s.narrow(-1, 0, 1), s.narrow(-1, s.shape[-1] - 1, 1)
        return (big / small if p != -2 else small / big).squeeze(-1)
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


def cross(input, other, *, dim=-1):
    """The cross product of 3-vectors along dim (broadcast)."""
    return ops.cross(input, other, dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """The diagonal at offset of the matrices in dims dim1, dim2, as the last dim."""
    nd = A.dim()
    d1, d2 = dim1 % nd, dim2 % nd
    rest = [d for d in range(nd) if d not in (d1, d2)]
    m = A.permute(*rest, d1, d2)
    rows, cols = m.shape[-2], m.shape[-1]
    r0, c0 = (0, offset) if offset >= 0 else (-offset, 0)
    k = max(0, min(rows - r0, cols - c0))
    idx = np.arange(k)
    return m[(Ellipsis, _wrap(idx + r0), _wrap(idx + c0))]


def vander(x, *, N=None):
    """Columns x^0, x^1, ..., x^(N-1) (N = len(x))."""
    n = x.shape[-1] if N is None else N
    if n < 1:
        raise RuntimeError("N must be greater than 1.")
    return ops.cat([x.unsqueeze(-1) ** k for k in range(n)], -1)


def tensorinv(A, ind=2):
    """The inverse of A read as a matrix from its first ind dims to the rest, shaped back."""
    if ind <= 0:
        raise RuntimeError(f"Expected a strictly positive integer for 'ind', but got {ind}")
    rows, cols = math.prod(A.shape[:ind]), math.prod(A.shape[ind:])
    if rows != cols:
        raise RuntimeError("Expected self to satisfy the requirement prod(self.shape[ind:]) == "
                           f"prod(self.shape[:ind]), but got {cols} != {rows}")
    try:
        out = inv(A.reshape(rows, cols))
    except LinAlgError as e:            # torch words it as inv's, not linalg.inv's
        raise LinAlgError(str(e).replace("linalg.inv:", "inv:", 1)) from None
    return out.reshape(tuple(A.shape[ind:]) + tuple(A.shape[:ind]))


def tensorsolve(A, B, dims=None):
    """X with tensordot(A, X, X.ndim) = B: A read as a matrix from B's dims to the rest."""
    if dims is not None:
        nd = A.dim()
        moved = [d % nd for d in dims]
        A = A.permute(*[d for d in range(nd) if d not in moved], *moved)
    result = tuple(A.shape[B.dim():])
    rows, cols = math.prod(A.shape[:B.dim()]), math.prod(result)
    if rows != cols:
        raise RuntimeError("Expected self to satisfy the requirement prod(self.shape[other.ndim:]) == "
                           f"prod(self.shape[:other.ndim]), but got {cols} != {rows}")
    return solve(A.reshape(rows, cols), B.reshape(rows)).reshape(result)


class _Missing(NotImplementedError, AttributeError):
    """A torch.linalg name jitgrad lacks: NotImplementedError saying so (an AttributeError too,
    so hasattr stays False)."""


_NOT_IMPLEMENTED = ("eig", "eigvals", "lu", "lu_factor", "lu_factor_ex", "lu_solve", "ldl_factor",
                    "ldl_factor_ex", "ldl_solve", "householder_product")


def __getattr__(name):
    if name in _NOT_IMPLEMENTED:
        raise _Missing(f"jitgrad.linalg.{name} is not implemented yet (torch.linalg.{name})")
    raise AttributeError(f"module 'jitgrad.linalg' has no attribute '{name}'")
