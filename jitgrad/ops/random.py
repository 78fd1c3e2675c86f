"""Random ops: normal_, uniform_, exponential_, bernoulli_ and their out-of-place forms. Values
come from generator= or the default generator (jitgrad/random.py), so manual_seed makes them
reproducible; filling a tensor in the graph records a node without a rule (a zero gradient).
"""
import numpy as np

from .. import _device, dtypes
from ..engine.registry import defop
from ..tensor import Tensor, _wrap
from ..creation import _shape as _new_shape
from ..random import _numpy_rng
from ._core import _arr, record
from .elementwise import _float_input
from .inplace import _inplace, _recording, _set_values


# ======================= random ==================================================================
# Values come from generator= or the default generator (jitgrad/random.py), so manual_seed makes
# them reproducible.
# Filling a tensor in the graph records a node without a rule: its input gets a zero gradient.
NORMAL = defop("NormalBackward0", None)
UNIFORM = defop("UniformBackward0", None)
BERNOULLI = defop("BernoulliBackward0", None)
BERNOULLI_P = defop("BernoulliBackward2", None)
EXPONENTIAL = defop("ExponentialBackward0", None)


def _rng(generator, fn):
    return _numpy_rng(generator, fn)


def _random_fill(x, op, values):
    """x filled in place with values (an array of x's shape)."""
    if not _recording(x):
        return _set_values(x, lambda: np.copyto(x._a, values, casting="unsafe"))
    return _inplace(x, lambda: record(op, values.astype(x._a.dtype), x, broadcast=False))


def normal_(x, mean=0.0, std=1.0, *, generator=None):
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _random_fill(x, NORMAL, _rng(generator, "normal_").normal(mean, std, x._a.shape))


def uniform_(x, from_=0.0, to=1.0, *, generator=None, **kwargs):
    from_ = kwargs.pop("from", from_)
    if from_ > to:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={from_} > "
                           f"to={to}")
    return _random_fill(x, UNIFORM, _rng(generator, "uniform_").uniform(from_, to, x._a.shape))


def exponential_(x, lambd=1.0, *, generator=None):
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    values = _rng(generator, "exponential_").exponential(1.0 / lambd, x._a.shape)
    return _random_fill(x, EXPONENTIAL, values)


def bernoulli_(x, p=0.5, *, generator=None):
    pa = p._a if isinstance(p, Tensor) else p
    if np.any((np.asarray(pa) < 0) | (np.asarray(pa) > 1)):
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    return _random_fill(x, BERNOULLI_P, _rng(generator, "bernoulli_").random(x._a.shape) < pa)


def bernoulli(input, p=None, *, generator=None):
    """0/1 draws with the probabilities in input (or p), in input's dtype."""
    a = _float_input(input)
    if p is not None and not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    probs = a if p is None else np.full(a.shape, p)
    if probs.size and ((probs < 0) | (probs > 1) | np.isnan(probs)).any():
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.  (Could this "
                           "error message be improved?  If so, please report an enhancement "
                           "request to PyTorch.)")
    out = _arr((_rng(generator, "bernoulli").random(a.shape) < probs).astype(a.dtype))
    return record(BERNOULLI, out, input, broadcast=False)


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad=False):
    """torch.normal: tensor or float mean/std (broadcast), or floats with a size."""
    if device is not None:
        _device.as_device(device, factory=True)
    if not isinstance(mean, Tensor) and not isinstance(std, Tensor):
        if size is None:
            raise TypeError("normal() received an invalid combination of arguments - got (float, "
                            "float), but expected one of: (float mean, float std, tuple of ints "
                            "size)")
        if std < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
        shape = _new_shape((size,), "normal")
        a = _rng(generator, "normal").normal(mean, std, shape)
        a = a.astype(dtypes.to_numpy_dtype(dtype or dtypes.default_float))
        t = _wrap(a)
        return t.requires_grad_(True) if requires_grad else t
    m = mean._a if isinstance(mean, Tensor) else mean
    s = std._a if isinstance(std, Tensor) else std
    if np.any(np.asarray(s) < 0):
        raise RuntimeError("normal expects all elements of std >= 0.0" if isinstance(std, Tensor)
                           else f"normal expects std >= 0.0, but found std {std:g}")
    d = (mean if isinstance(mean, Tensor) else std)._a.dtype
    z = _rng(generator, "normal").standard_normal(np.broadcast(m, s).shape)
    return _wrap(_arr((m + s * z).astype(d)))
