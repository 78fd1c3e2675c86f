"""jitgrad.nn.functional, mirroring torch.nn.functional.

Functions that only exist here in PyTorch (most activations, dropout) are defined in this file,
each as one block like those of the ops package: registration, forward, samples (the losses and
embedding are ops, in ops/losses.py and ops/indexing.py, re-exported here). The activations' rows
save x (what their formulas read) and share the elementwise family's kernel, _activation.
"""
import builtins
import math
import warnings

import numpy as np

from .. import creation, ops
from ..engine import hook as _hook
from ..ops import Given, _arr, _wrap, kinks, quiet, samples, unary_op
from ..ops._core import _check_tensor, _constant_arg, _float_kernel, _store_
from ..ops.elementwise import unary_args
from ..ops import elementwise as _ew
from ..ops._samples import _IDX
from ..tensor import _check_dim

linear, pad, embedding = ops.linear, ops.pad, ops.embedding
# the losses are ops (ops/losses.py): their registration, forward and samples live there
mse_loss, l1_loss, smooth_l1_loss, huber_loss = ops.mse_loss, ops.l1_loss, ops.smooth_l1_loss, ops.huber_loss
binary_cross_entropy = ops.binary_cross_entropy
binary_cross_entropy_with_logits = ops.binary_cross_entropy_with_logits
nll_loss, cross_entropy = ops.nll_loss, ops.cross_entropy


def relu(input, inplace=False):
    return ops.relu_(input) if inplace else ops.relu(input)


def sigmoid(input):
    return ops.sigmoid(input)


def tanh(input):
    return ops.tanh(input)


# ======================= activations =============================================================
# Each is an elementwise op whose row saves x and its numeric arguments (unary_op with a rule:
# ops/elementwise.py's _activation computes the derivative from them); at kinks the derivative is
# the one PyTorch picks. The formulas are derivatives.yaml's (leaky_relu_backward,
# elu_backward...) written in ops, so their own derivatives are PyTorch's double backwards; the
# numeric arguments come from the row (unary_args).
def _log_sigmoid(a):
    return np.minimum(a, 0) - np.log1p(np.exp(-np.abs(a)))


def _sigmoid(a):
    return np.exp(_log_sigmoid(a))


def _inplace_or(fn, name, kernel=None):
    def f(input, *args, inplace=False):
        if kernel is not None:
            _float_kernel(input, kernel)
        if inplace:
            return ops._inplace(input, lambda: fn(input, *args))
        return fn(input, *args)
    f.__name__ = name
    return f


_leaky_relu = unary_op("LeakyReluBackward0", lambda a, slope: np.where(a > 0, a, a * slope), rule=_ew._activation,
                       x=lambda g, x, node: ops.where(x > 0, g, g * unary_args(node, 1)[0]))
# PyTorch tests x <= 0 (not x > 0) for the negative branch and the clipped regions, so nan takes
# the identity's gradient
_elu = unary_op("EluBackward0", lambda a, alpha, scale, iscale:
                np.where(a > 0, scale * a, scale * alpha * np.expm1(a * iscale)), rule=_ew._activation,
                x=lambda g, x, node: _elu_backward(g, x, *unary_args(node, 3)))
_celu = unary_op("CeluBackward0", lambda a, alpha: np.where(a > 0, a, alpha * np.expm1(a / alpha)),
                 rule=_ew._activation, x=lambda g, x, node: _celu_backward(g, x, *unary_args(node, 1)))
_hardtanh = unary_op("HardtanhBackward0", lambda a, lo, hi: np.clip(a, lo, hi), rule=_ew._activation,
                     x=lambda g, x, node: _hardtanh_backward(g, x, *unary_args(node, 2)))
_silu = unary_op("SiluBackward0", lambda a: a * _sigmoid(a), rule=_ew._activation,
                 x=lambda g, x: g * _silu_derivative(x))
_SIXTH32 = builtins.float(np.float32(1 / 6))         # PyTorch's backward uses 1.0f / 6.0f
_hardsigmoid = unary_op("HardsigmoidBackward0", lambda a: np.clip(a / 6 + 0.5, 0, 1), rule=_ew._activation,
                        x=lambda g, x: ops.where((x > -3) & (x < 3), g * _SIXTH32, 0))
_hardswish = unary_op("HardswishBackward0", lambda a: a * np.clip(a + 3, 0, 6) / 6, rule=_ew._activation,
                      x=lambda g, x: ops.where(x <= -3, 0, ops.where(x < 3, g * (x / 3 + 0.5), g)))
_mish = unary_op("MishBackward0", lambda a: a * np.tanh(np.logaddexp(0, a)), rule=_ew._activation,
                 x=lambda g, x: g * _mish_derivative(x))
# log_sigmoid_backward: its derivative is log_sigmoid_double_backward, g * (s - 1) * s
_logsigmoid = unary_op("LogSigmoidBackward0", _log_sigmoid, rule=_ew._activation,
                       x=lambda g, x: g * (-x).sigmoid())


def _hardtanh_backward(g, x, lo, hi):
    # hardtanh_backward: g inside (lo, hi), so a nan x passes its gradient
    return ops.where((x <= lo) | (x >= hi), 0, g)


def _elu_backward(g, x, alpha, scale, iscale):
    # elu_backward(is_result=false): tests x <= 0 as the kernel, so nan takes the linear branch.
    # Its double backward masks x < 0: the exponential reads x only there (exp(0) at 0, and no
    # nan from the other branch)
    negative = ops.where(x < 0, x, 0)
    return ops.where(x <= 0, g * (scale * alpha * iscale) * (negative * iscale).exp(), g * scale)


def _celu_backward(g, x, alpha):
    return _elu_backward(g, x, alpha, 1.0, 1 / alpha)


def _silu_derivative(x):
    # infinitely_differentiable_silu_backward
    s = x.sigmoid()
    return s * (1 + x * (1 - s))


def _mish_derivative(x):
    # infinitely_differentiable_mish_backward
    t = softplus(x).tanh()
    return t + x * x.sigmoid() * (1 - t * t)


def logsigmoid(input):
    _float_kernel(input, "log_sigmoid_cpu")
    return _logsigmoid(input)
_SQRT1_2 = math.sqrt(0.5)
_SQRT2_PI = math.sqrt(2 / math.pi)


def _gelu_exact(a):
    return a * (0.5 * (1 + ops._erf(a * _SQRT1_2)))


def _gelu_tanh(a):
    return 0.5 * a * (1 + np.tanh(_SQRT2_PI * (a + 0.044715 * a ** 3)))


def _gelu_exact_derivative(x):
    cdf = 0.5 * (1 + ops.erf(x * _SQRT1_2))
    return cdf + x * (-0.5 * x * x).exp() * (1 / math.sqrt(2 * math.pi))


def _gelu_tanh_derivative(x):
    th = (_SQRT2_PI * (x + 0.044715 * x ** 3)).tanh()
    return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * _SQRT2_PI * (1 + 3 * 0.044715 * x * x)


# one registration per approximation, so the row needs no mode
_gelu = {"none": unary_op("GeluBackward0", _gelu_exact, rule=_ew._erf_family,
                          x=lambda g, x: g * _gelu_exact_derivative(x)),
         "tanh": unary_op("GeluBackward0", _gelu_tanh, rule=_ew._activation,
                          x=lambda g, x: g * _gelu_tanh_derivative(x))}


def _softplus_fwd(a, beta, threshold):
    z = a * beta
    return np.where(z > threshold, a, np.logaddexp(0, z) / beta)


def _softplus_backward(g, x, beta, threshold):
    # softplus_backward selects z > threshold; its double backward masks z < threshold, so at
    # z == threshold the sigmoid branch is taken with a constant sigmoid (no second derivative)
    z = x * beta
    s = z.sigmoid()
    return ops.where(z > threshold, g, g * ops.where(z < threshold, s, s.detach()))


_softplus = unary_op("SoftplusBackward0", _softplus_fwd, rule=_ew._activation,
                     x=lambda g, x, node: _softplus_backward(g, x, *unary_args(node, 2)))
# their forward kernels for compiled replay (ops/elementwise.py)
for _f, _id in ((_leaky_relu, _ew.A_LEAKY_RELU), (_elu, _ew.A_ELU), (_celu, _ew.A_CELU),
                (_hardtanh, _ew.A_HARDTANH), (_silu, _ew.A_SILU), (_hardsigmoid, _ew.A_HARDSIGMOID),
                (_hardswish, _ew.A_HARDSWISH), (_mish, _ew.A_MISH), (_logsigmoid, _ew.A_LOGSIGMOID),
                (_gelu["tanh"], _ew.A_GELU_TANH), (_softplus, _ew.A_SOFTPLUS)):
    _ew.replay_with(_f, _ew.ACTIVATIONS, _id)
_ew.replay_with(_gelu["none"], _ew.ERF_FAMILY, _ew.E_GELU)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _inplace_or(_leaky_relu, "leaky_relu", "leaky_relu_cpu")(input, negative_slope, inplace=inplace)


def elu(input, alpha=1.0, inplace=False):
    return _inplace_or(_elu, "elu", "elu_cpu")(input, alpha, 1.0, 1.0, inplace=inplace)


def selu(input, inplace=False):
    return _inplace_or(_elu, "selu", "elu_cpu")(input, 1.6732632423543772848170429916717,
                                     1.0507009873554804934193349852946, 1.0, inplace=inplace)


def celu(input, alpha=1.0, inplace=False):
    return _inplace_or(_celu, "celu", "elu_cpu")(input, alpha, inplace=inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _inplace_or(_hardtanh, "hardtanh")(input, min_val, max_val, inplace=inplace)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def silu(input, inplace=False):
    return _inplace_or(_silu, "silu", "silu_cpu")(input, inplace=inplace)


def hardsigmoid(input, inplace=False):
    return _inplace_or(_hardsigmoid, "hardsigmoid", "hardsigmoid_cpu")(input, inplace=inplace)


def hardswish(input, inplace=False):
    return _inplace_or(_hardswish, "hardswish", "hardswish_cpu")(input, inplace=inplace)


def mish(input, inplace=False):
    return _inplace_or(_mish, "mish", "mish_cpu")(input, inplace=inplace)


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    _float_kernel(input, "GeluKernelImpl")
    return _gelu[approximate](input)


def softplus(input, beta=1.0, threshold=20.0):
    _float_kernel(input, "softplus_cpu")
    return _softplus(input, beta, threshold)


def softsign(input):
    return ops.div(input, ops.add(ops.abs(input), 1))


def tanhshrink(input):
    return ops.sub(input, ops.tanh(input))


_ACT = Given([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 30.0])
for _f in (leaky_relu, elu, selu, celu, hardtanh, relu6, silu, hardsigmoid, hardswish, mish,
           logsigmoid, gelu, softplus, softsign, tanhshrink):
    samples(_f, ((),), ((3,),), ((2, 3),))
    kinks(_f, (_ACT,))
samples(leaky_relu, ((2, 3), 0.2))
samples(elu, ((2, 3), 0.5))
samples(celu, ((2, 3), 2.0))
samples(hardtanh, ((2, 3), -0.5, 0.7))
samples(gelu, ((2, 3), {"approximate": "tanh"}))
samples(softplus, ((2, 3), 2.0, 1.0))
kinks(elu, (_ACT, 0.5))
kinks(hardtanh, (_ACT, -0.5, 0.5))
kinks(leaky_relu, (_ACT, 0.3))
kinks(gelu, (_ACT, {"approximate": "tanh"}))
kinks(softplus, (_ACT, 2.0, 1.0))


# ======================= softmax, dropout ========================================================
def _legacy_softmax_dim(name, ndim):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to "
                  "include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _legacy_softmax_dim("softmax", input.dim())
    return ops.softmax(input, dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _legacy_softmax_dim("log_softmax", input.dim())
    return ops.log_softmax(input, dim, dtype)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _legacy_softmax_dim("softmin", input.dim())
    return ops.softmax(ops.neg(input), dim, dtype)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (MulBackward0). The
    mask comes from jitgrad's generator, so manual_seed makes it reproducible."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    a = input._a
    scale = np.zeros((), a.dtype) if p == 1.0 else a.dtype.type(1.0 / (1.0 - p))
    (mask,) = creation.drawn(lambda: (((creation._rng.random(a.shape) >= p) * scale)
                                      .astype(a.dtype),))
    if inplace:
        return input.mul_(mask)
    return ops.mul(input, mask)


def one_hot(tensor, num_classes=-1):
    if not isinstance(num_classes, (builtins.int, np.integer)):
        raise TypeError(f"one_hot(): argument 'num_classes' (position 2) must be int, not "
                        f"{type(num_classes).__name__}")
    t = tensor._a
    if t.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        if not t.size:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = builtins.int(t.max()) + 1
    if t.size and t.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if t.size and t.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return _wrap(_arr((t[..., None] == np.arange(num_classes)).astype(np.int64)))


samples(softmax, ((2, 3), 1), ((2, 3), 0, 3, ops.dtypes.float64))
samples(one_hot, (_IDX, 6), (_IDX,))
samples(log_softmax, ((2, 3), 1), ((2, 3, 2), -1))
samples(softmin, ((2, 3), 1))


# ======================= normalization ===========================================================
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing normalized_shape dims.

    One NativeLayerNormBackward0 node for input, weight and bias, as PyTorch (ops/normalization.py)."""
    shape = creation.int_tuple((normalized_shape,), "layer_norm", "normalized_shape", seq_only=True,
                               pos=2)
    if len(shape) == 0 or tuple(input.shape[-len(shape):]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(str(d) for d in shape)}], but got input of size"
                           f"{list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got "
                               f"{name} of shape {list(t.shape)} and normalized_shape = {list(shape)}")
    return ops.native_layer_norm(input, shape, weight, bias, eps)


# ======================= layers' functionals, composed from the ops above ========================
# No new op: each records a few primitives, so its grad_fn is theirs (PyTorch records one fused
# node, e.g. PreluKernelBackward0, NativeBatchNormBackward0) and its gradients are the same.
def threshold(input, threshold, value, inplace=False):
    """value where input <= threshold, else input (NaN passes, as PyTorch's x <= t test)."""
    a = input._a
    if a.dtype.kind in "iu":
        value = builtins.int(value)
    if inplace:
        return ops._inplace(input, lambda: ops.where(~(a <= threshold), input, value))
    return ops.where(~(a <= threshold), input, value)


def hardshrink(input, lambd=0.5):
    _float_kernel(input, "hardshrink_cpu")
    a = input._a
    return ops.where(~((a >= -lambd) & (a <= lambd)), input, 0.0)


def softshrink(input, lambd=0.5):
    """input - clamp(input, -lambd, lambd): 0 inside [-lambd, lambd] with zero gradient there."""
    _float_kernel(input, "softshrink_check")
    if not 0 <= lambd <= np.finfo(input._a.dtype).max:
        raise RuntimeError(f"lambda must be in range [0, {np.finfo(input._a.dtype).max:g}] for input "
                           f"dtype {input.dtype.tensor_type[:-6]}, but found {lambd:g}")
    return ops.sub(input, ops.clamp(input, -lambd, lambd))


def glu(input, dim=-1):
    """a * sigmoid(b), a and b the two halves of input along dim."""
    if input._a.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = _check_dim(dim, input._a.ndim)
    _float_kernel(input, "glu_cpu")
    n = input._a.shape[d]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {n}")
    a, b = ops.chunk(input, 2, d)
    return ops.mul(a, ops.sigmoid(b))


def prelu(input, weight):
    """input where input > 0, else weight * input; weight has one slope, or one per channel (dim 1)."""
    _check_tensor(weight, "weight", 2, "prelu")
    _float_kernel(input, "prelu_cpu")
    if weight._a.dtype != input._a.dtype:
        raise RuntimeError(f"prelu: Type promoting not supported. Got "
                           f"{input.dtype.tensor_type[:-6]} and {weight.dtype.tensor_type[:-6]}")
    if weight._a.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = "
                           f"{weight._a.ndim}")
    a, n = input._a, weight._a.size
    if n == 1:
        slope = ops.reshape(weight, ())
    else:
        if a.ndim == 0:
            raise RuntimeError("Not allow zero-dim input tensor.")
        c = a.shape[1] if a.ndim >= 2 else 1
        if n != c:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {n} and channel size = {c}.")
        slope = ops.reshape(weight, (1, n) + (1,) * (a.ndim - 2))
    return ops.where(a > 0, input, ops.mul(slope, input))


def _verify_batch_size(size):
    if len(size) and size[0] * math.prod(size[2:]) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{size}")


def _check_batch_norm_args(input, params, training, eps):
    if training:
        _verify_batch_size(input.size())
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    a = input._a
    c = a.shape[1] if a.ndim > 1 else 0
    for name, t in params.items():
        if t is not None:
            if t._a.size != c:
                raise RuntimeError(f"{name} should contain {c} elements not {t._a.size}")
        elif not training and name.startswith("running"):
            raise RuntimeError(f"{name} must be defined in evaluation mode")
    if training and (params["running_mean"] is None) != (params["running_var"] is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    if a.ndim < 2:
        _check_dim(1, a.ndim)
    _float_kernel(input, "batch_norm")
    given = [t for t in params.values() if t is not None]
    if any(t._a.dtype != a.dtype for t in given):
        if any(t._a.dtype != np.float32 for t in given):
            raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float")
        if a.dtype != np.float16:
            raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")
        raise NotImplementedError("batch_norm: a float16 input with float32 parameters (PyTorch's "
                                  "mixed-dtype path) is not supported")
    for name in ("running_mean", "running_var"):
        _constant_arg("native_batch_norm", name, params[name])


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) as PyTorch's CPU kernel does: input * scale + shift with
    scale = weight / sqrt(var + eps) and shift = bias - mean * scale.

    Training uses the batch's mean and biased variance, and moves running_mean/running_var (when
    given) towards the batch mean and *unbiased* variance by momentum, in place and unrecorded;
    otherwise the running statistics normalise."""
    _check_batch_norm_args(input, {"running_mean": running_mean, "running_var": running_var,
                                   "weight": weight, "bias": bias}, training, eps)
    a = input._a
    if a.size == 0:                     # PyTorch: nothing to normalise, statistics untouched
        out = ops.mul(input, 1.0)
        view = (1, a.shape[1]) + (1,) * (a.ndim - 2)
        out = out if weight is None else ops.mul(out, ops.reshape(weight, view))
        return out if bias is None else ops.add(out, ops.reshape(bias, view))
    c = a.shape[1]
    view = (1, c) + (1,) * (a.ndim - 2)
    if training:
        dims = (0,) + tuple(range(2, a.ndim))
        mean = ops.mean(input, dims)
        var = ops.var(input, dims, correction=0)
        if running_mean is not None:
            n = a.size // c

            def update(mean, var):      # (in float64, as PyTorch's kernel)
                with quiet():
                    _store_(running_mean, momentum * mean.astype(np.float64)
                            + (1 - momentum) * running_mean._a.astype(np.float64))
                    _store_(running_var, momentum * var.astype(np.float64) * (n / (n - 1))
                            + (1 - momentum) * running_var._a.astype(np.float64))
            tracer = _hook.tracer     # (a compiled replay runs update after its call)
            if tracer is None or not tracer.later(update, (mean, var), (running_mean, running_var)):
                update(mean._a, var._a)
    else:
        mean, var = running_mean, running_var
    scale = ops.rsqrt(ops.add(var, eps))
    if weight is not None:
        scale = ops.mul(scale, weight)
    shift = ops.mul(mean, scale)
    shift = ops.neg(shift) if bias is None else ops.sub(bias, shift)
    return ops.add(ops.mul(input, ops.reshape(scale, view)), ops.reshape(shift, view))


# ---- dropout variants ---------------------------------------------------------------------------
_SELU_NEG = 1.7580993408473766      # -selu(-inf): where alpha dropout sends the dropped units


def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _feature_noise_shape(shape, unbatched):
    """(N, C, 1, ...): one draw per channel; an unbatched input is treated as a batch of one."""
    full = (1,) + shape if unbatched else shape
    if len(full) < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    noise = full[:2] + (1,) * (len(full) - 2)
    return noise[1:] if unbatched else noise


def _dropout_nd(input, p, training, inplace, feature=False, unbatched=False, alpha=False):
    """PyTorch's _dropout_impl: keep with probability 1 - p (one draw per channel for feature
    dropout) and scale by 1/(1-p); alpha dropout instead maps x to a*x*keep + b, keeping SELU's
    mean and variance. The mask comes from jitgrad's generator (manual_seed)."""
    a = input._a
    if p == 0 or not training or a.size == 0:
        return input
    if p == 1:
        return input.mul_(0.0) if inplace else ops.mul(input, 0.0)
    shape = _feature_noise_shape(a.shape, unbatched) if feature else a.shape
    if not alpha:
        (noise,) = creation.drawn(lambda: (((creation._rng.random(shape) >= p) * (1.0 / (1.0 - p)))
                                           .astype(a.dtype),))
        return input.mul_(noise) if inplace else ops.mul(input, noise)
    coef = 1.0 / math.sqrt((_SELU_NEG * _SELU_NEG * p + 1) * (1 - p))

    def noise_and_shift():
        keep = creation._rng.random(shape) >= p
        return ((keep * coef).astype(a.dtype),
                ((keep - 1.0) * (_SELU_NEG * coef) + _SELU_NEG * coef * p).astype(a.dtype))
    noise, shift = creation.drawn(noise_and_shift)
    if inplace:
        return input.mul_(noise).add_(shift)
    return ops.add(ops.mul(input, noise), shift)


def dropout1d(input, p=0.5, training=True, inplace=False):
    _check_p(p)
    nd = input.dim()
    if nd not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {nd}D input. Note "
                           "that dropout1d exists to provide channel-wise dropout on inputs with 1 "
                           "spatial dimension, a channel dimension, and an optional batch dimension "
                           "(i.e. 2D or 3D inputs).")
    return _dropout_nd(input, p, training, inplace, feature=True, unbatched=nd == 2)


def dropout2d(input, p=0.5, training=True, inplace=False):
    _check_p(p)
    nd = input.dim()
    if nd not in (3, 4):
        warnings.warn(f"dropout2d: Received a {nd}-D input to dropout2d, which is deprecated and "
                      "will result in an error in a future release. To retain the behavior and "
                      "silence this warning, please use dropout instead. Note that dropout2d exists "
                      "to provide channel-wise dropout on inputs with 2 spatial dimensions, a "
                      "channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs).",
                      stacklevel=2)
    if nd == 3:     # PyTorch's historical reading: (N, C, L), not an unbatched (C, H, W)
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                      "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                      "where C is the channel dim. This behavior will change in a future release "
                      "to interpret the input as one without a batch dimension, i.e. shape (C, H, "
                      "W). To maintain the 1D channel-wise dropout behavior, please switch to "
                      "using dropout1d instead.", stacklevel=2)
    return _dropout_nd(input, p, training, inplace, feature=True)


def dropout3d(input, p=0.5, training=True, inplace=False):
    _check_p(p)
    nd = input.dim()
    if nd not in (4, 5):
        warnings.warn(f"dropout3d: Received a {nd}-D input to dropout3d, which is deprecated and "
                      "will result in an error in a future release. To retain the behavior and "
                      "silence this warning, please use dropout instead. Note that dropout3d exists "
                      "to provide channel-wise dropout on inputs with 3 spatial dimensions, a "
                      "channel dimension, and an optional batch dimension (i.e. 4D or 5D inputs).",
                      stacklevel=2)
    return _dropout_nd(input, p, training, inplace, feature=True, unbatched=nd != 5)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    _check_p(p)
    return _dropout_nd(input, p, training, inplace, alpha=True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    _check_p(p)
    return _dropout_nd(input, p, training, inplace, feature=True, alpha=True)


# ---- distances: compositions of norm, clamp and division (their gradients are those ops')
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input divided by its p-norm along dim, the norm clamped below at eps."""
    result = input / ops.clamp(ops.norm(input, p, dim, keepdim=True), min=eps)
    if out is not None:
        out.copy_(result)
        return out
    return result


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """The cosine of the angle between x1 and x2 along dim, broadcast. As PyTorch, each input is
    divided by its norm clamped at eps, the clamp out of the graph (its gradient is the norm's)."""
    n1 = ops.norm(x1, 2, dim, keepdim=True)
    n2 = ops.norm(x2, 2, dim, keepdim=True)
    n1 = n1 + (ops.clamp(n1.detach(), min=eps) - n1.detach())
    n2 = n2 + (ops.clamp(n2.detach(), min=eps) - n2.detach())
    return ops.sum((x1 / n1) * (x2 / n2), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The p-norm of x1 - x2 + eps along the last dimension."""
    return ops.norm(x1 - x2 + eps, p, builtins.max(x1.dim(), x2.dim()) - 1, keepdim)


samples(normalize, ((2, 3),), ((2, 3), 1.0, 0), ((3,), 2.0, 0))
samples(cosine_similarity, ((2, 3), (2, 3)), ((2, 3), (3,), -1))


# ---- attention (issue 14): PyTorch's math formulation, in recorded ops
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False):
    """softmax(q k^T * scale + bias) v. A bool attn_mask says where attention is allowed (True),
    a float one is added; is_causal allows the lower triangle. A query row that may attend to
    nothing gives zeros (and a zero gradient), as PyTorch's CPU kernel does."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_tensor(t, name, 0, "scaled_dot_product_attention")
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when "
                           "is_causal=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    L, S, E = query.shape[-2], key.shape[-2], query.shape[-1]
    if enable_gqa and query.dim() >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hk == 0 or hq % hk or value.shape[-3] != hk:
            raise RuntimeError("Number of heads in key and value must divide the number of heads in ")
        key = key.repeat_interleave(hq // hk, -3)
        value = value.repeat_interleave(hq // hk, -3)
    scale = 1.0 / math.sqrt(E) if scale is None else scale
    scores = ops.matmul(query, ops.transpose(key, -2, -1)) * scale
    allowed = None
    if is_causal:
        allowed = np.tril(np.ones((L, S), np.bool_))
    elif attn_mask is not None and attn_mask.dtype.name == "bool":
        allowed = attn_mask._a
    elif attn_mask is not None:
        scores = scores + attn_mask
    if allowed is None:
        return ops.matmul(dropout(ops.softmax(scores, -1), dropout_p), value)
    allowed = np.broadcast_to(allowed, np.broadcast_shapes(allowed.shape, tuple(scores.shape)))
    blind = ~allowed.any(-1, keepdims=True)             # rows that may attend to nothing
    bias = np.where(allowed | blind, 0.0, -np.inf).astype(scores.dtype.np)
    weights = ops.softmax(scores + _wrap(bias), -1)
    if blind.any():
        weights = ops.where(_wrap(np.broadcast_to(blind, weights.shape)), 0.0, weights)
    return ops.matmul(dropout(weights, dropout_p), value)


def _float_mask(mask, dtype):
    """An attention mask as an additive float mask: a bool mask's True (not allowed) is -inf."""
    if mask is None or mask.dtype.name != "bool":
        return mask
    return _wrap(np.where(mask._a, -np.inf, 0.0).astype(dtype.np))


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight,
                                 in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight,
                                 out_proj_bias, training=True, key_padding_mask=None, need_weights=True,
                                 attn_mask=None, use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None, static_v=None,
                                 average_attn_weights=True, is_causal=False):
    """nn.MultiheadAttention's forward on (L, N, E) inputs (or unbatched (L, E)), as PyTorch's:
    in-projections, masks (bool: True is not allowed; key_padding_mask per key), heads, softmax
    attention with dropout, out-projection; the weights averaged over heads unless asked not to."""
    if static_k is not None or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: static_k and static_v are not supported by jitgrad")
    batched = query.dim() == 3
    if query.dim() not in (2, 3):
        raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {query.dim()}-D "
                             "query tensor")
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer "
                           "module method `generate_square_subsequent_mask` to create this mask.")
    tgt_len, bsz, embed_dim = query.shape
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
    else:
        w_q, w_k, w_v = ops.chunk(in_proj_weight, 3)
    b_q, b_k, b_v = ops.chunk(in_proj_bias, 3) if in_proj_bias is not None else (None, None, None)
    q, k, v = linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)
    attn_mask = _float_mask(attn_mask, q.dtype)
    if attn_mask is not None:
        want = (tgt_len, key.shape[0]) if attn_mask.dim() == 2 else (bsz * num_heads, tgt_len, key.shape[0])
        if tuple(attn_mask.shape) != want:
            raise RuntimeError(f"The shape of the {attn_mask.dim()}D attn_mask is {tuple(attn_mask.shape)}, "
                               f"but should be {want}.")
        if attn_mask.dim() == 2:
            attn_mask = attn_mask.unsqueeze(0)
    key_padding_mask = _float_mask(key_padding_mask, q.dtype)
    if bias_k is not None and bias_v is not None:
        k = ops.cat([k, bias_k.repeat(1, bsz, 1)])
        v = ops.cat([v, bias_v.repeat(1, bsz, 1)])
        attn_mask = pad(attn_mask, (0, 1)) if attn_mask is not None else None
        key_padding_mask = pad(key_padding_mask, (0, 1)) if key_padding_mask is not None else None
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    v = v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    if add_zero_attn:
        k = ops.cat([k, creation.zeros(bsz * num_heads, 1, head_dim, dtype=k.dtype)], 1)
        v = ops.cat([v, creation.zeros(bsz * num_heads, 1, head_dim, dtype=v.dtype)], 1)
        attn_mask = pad(attn_mask, (0, 1)) if attn_mask is not None else None
        key_padding_mask = pad(key_padding_mask, (0, 1)) if key_padding_mask is not None else None
    src_len = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                                 f"{tuple(key_padding_mask.shape)}")
        per_head = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len)
        per_head = per_head.reshape(bsz * num_heads, 1, src_len)
        attn_mask = per_head if attn_mask is None else attn_mask + per_head
    if not training:
        dropout_p = 0.0
    if need_weights:
        scores = ops.bmm(q * math.sqrt(1.0 / head_dim), k.transpose(-2, -1))
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = dropout(ops.softmax(scores, -1), dropout_p)
        out = ops.bmm(weights, v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            out, weights = out.squeeze(1), weights.squeeze(0)
        return out, weights
    if attn_mask is not None:
        attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else \
            attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, False)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
    return (out if batched else out.squeeze(1)), None

# ---- convolution, pooling, interpolation (jitgrad/ops/conv.py, pooling.py) ---------------------
# re-exported: their public home is here, as in torch.nn.functional
from ..ops.conv import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,  # noqa: E402, F401
                        conv_transpose3d)
from ..ops.pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,  # noqa: E402, F401
                           adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d, avg_pool1d,
                           avg_pool2d, avg_pool3d, fold, interpolate, lp_pool1d, lp_pool2d, max_pool1d,
                           max_pool2d, max_pool3d, max_unpool1d, max_unpool2d, max_unpool3d, pixel_shuffle,
                           pixel_unshuffle, unfold, upsample)
from ..ops.sampling import affine_grid, grid_sample  # noqa: E402, F401


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each sample's channel groups over (channels in the group, spatial dims), then a
    per-channel affine map. Composed from primitives (PyTorch records NativeGroupNormBackward0)."""
    shape = tuple(input.shape)
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.dim()}")
    c = shape[1]
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got "
                           f"input of shape {list(shape)} and num_groups={num_groups}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.dim() != 1 or t.numel() != c):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of channels in "
                               f"input, but got {name} of shape {list(t.shape)} and input of shape {list(shape)}")
    g = ops.reshape(input, shape[0], num_groups, -1)
    centred = ops.sub(g, ops.mean(g, -1, keepdim=True))
    var = ops.mean(ops.mul(centred, centred), -1, keepdim=True)
    out = ops.reshape(ops.mul(centred, ops.rsqrt(ops.add(var, eps))), shape)
    view = (1, c) + (1,) * (len(shape) - 2)
    if weight is not None:
        out = ops.mul(out, ops.reshape(weight, view))
    if bias is not None:
        out = ops.add(out, ops.reshape(bias, view))
    return out


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """batch_norm over (1, N * C, *spatial), as PyTorch: each sample's channel normalised alone;
    running statistics (when given) move by the mean over the batch of the per-sample ones."""
    shape = tuple(input.shape)
    if input.dim() < 3:
        raise ValueError(f"Expected 3D or higher input to instance_norm (got {input.dim()}D input)")
    n, c = shape[0], shape[1]
    folded = ops.reshape(input, (1, n * c) + shape[2:])
    rep = lambda t: None if t is None else ops.repeat(t, n)     # noqa: E731
    rm, rv = rep(running_mean), rep(running_var)
    if rm is not None:
        rm, rv = rm.detach(), rv.detach()
    out = batch_norm(folded, rm, rv, rep(weight), rep(bias), use_input_stats, momentum, eps)
    if running_mean is not None and use_input_stats:
        _store_(running_mean, rm._a.reshape(n, c).mean(0))
        _store_(running_var, rv._a.reshape(n, c).mean(0))
    return ops.reshape(out, shape)
