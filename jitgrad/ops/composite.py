"""Functions written as compositions of other ops: std_mean, var_mean, cdist. Their
gradients, and gradients of any order, are those of the ops they run (so their grad_fn names are
those ops', not PyTorch's fused nodes' such as StdMeanBackward0 or CdistBackward0).
"""

from ..tensor import Tensor
from .elementwise import clamp, sqrt, sub
from .linalg import matmul
from .reductions import mean, norm, std, sum, var
from .shape import transpose, unsqueeze
from ._core import torch_names


def _spread_args(dim, unbiased):
    """std_mean(x, True): a bool first argument is `unbiased`, as in torch's overloads."""
    if isinstance(dim, bool):
        return None, dim
    return dim, unbiased


@torch_names(functions=("std_mean",))
def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) over dim, as torch.std_mean."""
    dim, unbiased = _spread_args(dim, unbiased)
    return (std(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


@torch_names(functions=("var_mean",))
def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) over dim, as torch.var_mean."""
    dim, unbiased = _spread_args(dim, unbiased)
    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


@torch_names(functions=("cdist",))
def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """The p-norm distance between each row of x1 (..., P, M) and each row of x2 (..., R, M):
    (..., P, R), batch dimensions broadcast.

    Like PyTorch, the Euclidean distance of more than 25 rows (or with compute_mode
    "use_mm_for_euclid_dist") goes through matmul (|a|^2 - 2 a.b + |b|^2, clamped at 1e-30),
    which needs no (P, R, M) intermediate."""
    for name, x in (("X1", x1), ("X2", x2)):
        if not isinstance(x, Tensor):
            raise TypeError(f"cdist(): argument '{name.lower()}' must be Tensor, not "
                            f"{type(x).__name__}")
        if x.dim() < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: {x.dim()}D")
        if not x.is_floating_point():
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: "
                               f"{x.dtype.tensor_type[:-6]}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} "
                           f"X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    modes = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
             "donot_use_mm_for_euclid_dist")
    if compute_mode not in modes:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    use_mm = p == 2 and (compute_mode == "use_mm_for_euclid_dist" or (
        compute_mode == modes[0] and (x1.shape[-2] > 25 or x2.shape[-2] > 25)))
    if use_mm:
        squared = (sum(x1 * x1, -1, keepdim=True) - 2 * matmul(x1, transpose(x2, -1, -2))
                   + transpose(sum(x2 * x2, -1, keepdim=True), -1, -2))
        return sqrt(clamp(squared, min=1e-30))
    return norm(sub(unsqueeze(x1, -2), unsqueeze(x2, -3)), p, -1)
