"""The older top-level names torch keeps beside torch.linalg: torch.svd (V, not Vh), torch.qr
(some=), torch.cholesky, torch.cholesky_solve, torch.cholesky_inverse, torch.matrix_power, as
compositions of jitgrad.linalg (so their grad_fns are those of the parts)."""
import warnings

import numpy as np

from . import linalg
from .ops.decompositions import _result_type
from .tensor import _wrap

svd_result = _result_type("svd", ("U", "S", "V"))
qr_result = _result_type("qr", ("Q", "R"))


def svd(input, some=True, compute_uv=True):
    """U, S, V with A = U diag(S) V^T; without compute_uv, U and V are zeros (m x m, n x n)."""
    if not compute_uv:
        m, n = input.shape[-2:]
        zeros = lambda k: _wrap(np.zeros(tuple(input.shape[:-2]) + (k, k), input._a.dtype))  # noqa: E731
        return svd_result(zeros(m), linalg.svdvals(input), zeros(n))
    u, s, vh = linalg.svd(input, full_matrices=not some)
    return svd_result(u, s, vh.mT)


def qr(input, some=True):
    warnings.warn("torch.qr is deprecated in favor of torch.linalg.qr and will be removed in a future "
                  "PyTorch release.\nThe boolean parameter 'some' has been replaced with a string "
                  "parameter 'mode'.\nQ, R = torch.qr(A, some)\nshould be replaced with\nQ, R = "
                  "torch.linalg.qr(A, 'reduced' if some else 'complete')", UserWarning, stacklevel=2)
    return qr_result(*linalg.qr(input, "reduced" if some else "complete"))


def cholesky(input, upper=False):
    warnings.warn("torch.cholesky is deprecated in favor of torch.linalg.cholesky and will be removed in "
                  "a future PyTorch release.\nL = torch.cholesky(A)\nshould be replaced with\nL = "
                  "torch.linalg.cholesky(A)\nand\nU = torch.cholesky(A, upper=True)\nshould be replaced "
                  "with\nU = torch.linalg.cholesky(A).mH\nThis transform will produce equivalent results "
                  "for all valid (symmetric positive definite) inputs.", UserWarning, stacklevel=2)
    return linalg.cholesky(input, upper=upper)


def cholesky_solve(input, input2, upper=False):
    """X with A X = input, A = L L^T given L = input2 (U^T U given U when upper)."""
    lower = input2.mT if upper else input2
    y = linalg.solve_triangular(lower, input, upper=False)
    return linalg.solve_triangular(lower.mT, y, upper=True)


def cholesky_inverse(input, upper=False):
    """(L L^T)^-1 given L = input (U^T U given U when upper)."""
    from .creation import eye
    n = input.shape[-1]
    return cholesky_solve(eye(n, dtype=input.dtype).expand(input.shape), input, upper)


def matrix_power(input, n):
    return linalg.matrix_power(input, n)
