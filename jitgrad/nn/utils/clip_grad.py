"""Gradient clipping, as torch.nn.utils: by the total norm of all gradients or by value, in place.

The ``foreach`` argument is accepted and ignored (one CPU code path)."""
import types
import warnings

import numpy as np

from ... import creation, ops
from ...autograd.grad_mode import no_grad
from ...dtypes import from_numpy_dtype
from ...engine import hook
from ...ops._core import c_order
from ...ops.reductions import norm_values
from ...tensor import Tensor, _wrap

__all__ = ["clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_",
           "get_total_norm"]


def _as_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _norm(a, p):
    """ops.norm(a, p) of an array (all its elements), with its errors."""
    return norm_values(np.abs(c_order(a)), p, tuple(range(a.ndim))).reshape(()).astype(a.dtype)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm_type-norm of all tensors' elements together (the norm of their norms), as a 0-d
    tensor of their (promoted) dtype. Ops, so a compiled step replays it."""
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return creation.tensor(0.0)
    dtype = np.result_type(*[t._a.dtype for t in tensors])
    if hook.tracer is None:     # (ops.norm's arithmetic on the arrays: ~2x faster than the ops)
        with np.errstate(all="ignore"):
            norms = np.array([_norm(t._a, norm_type) for t in tensors], dtype)
            total = _wrap(_norm(norms, norm_type))
    else:
        with no_grad(), ops.quiet():
            norms = [ops.norm(t, norm_type) for t in tensors]
            dt = from_numpy_dtype(dtype)
            total = ops.norm(ops.stack([n if n.dtype == dt else n.to(dt) for n in norms]), norm_type)
    if error_if_nonfinite and not np.isfinite(float(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                           "non-finite, so it cannot be clipped. To disable this error and scale "
                           "the gradients by the non-finite norm anyway, set "
                           "`error_if_nonfinite=False`")
    return total


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Multiply every .grad by min(1, max_norm / (total_norm + 1e-6)), in place."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    max_norm = float(max_norm)
    if not grads:
        return
    with no_grad(), ops.quiet():        # a non-finite norm scales to nan silently, as PyTorch
        coef = ops.clamp(max_norm / (total_norm + 1e-6), max=1.0)
        if hook.tracer is None:         # (its value as a Python float, exactly: the same products,
            coef = coef.item()          # without a broadcast per .grad)
        for g in grads:
            g.mul_(coef)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients so that their total norm is at most max_norm; returns the total norm
    (before clipping) as a 0-d tensor."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)       # a generator is read once, used twice
        if is_generator and not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                          stacklevel=3)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Deprecated alias of clip_grad_norm_ (warns, as PyTorch)."""
    warnings.warn("`jitgrad.nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`jitgrad.nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every .grad to [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    with no_grad():
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)
