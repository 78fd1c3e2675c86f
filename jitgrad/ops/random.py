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
from ._core import _arr, record, torch_names
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


@torch_names(methods=("normal_",))
def normal_(x, mean=0.0, std=1.0, *, generator=None):
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _random_fill(x, NORMAL, _rng(generator, "normal_").normal(mean, std, x._a.shape))


@torch_names(methods=("uniform_",))
def uniform_(x, from_=0.0, to=1.0, *, generator=None, **kwargs):
    from_ = kwargs.pop("from", from_)
    if kwargs:
        raise TypeError(f"uniform_() got an unexpected keyword argument '{next(iter(kwargs))}'")
    if from_ > to:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={from_} > "
                           f"to={to}")
    return _random_fill(x, UNIFORM, _rng(generator, "uniform_").uniform(from_, to, x._a.shape))


uniform_.torch_keywords = {"from": "from_"}     # (it takes torch's "from" itself)


@torch_names(methods=("exponential_",))
def exponential_(x, lambd=1.0, *, generator=None):
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    values = _rng(generator, "exponential_").exponential(1.0 / lambd, x._a.shape)
    return _random_fill(x, EXPONENTIAL, values)


@torch_names(methods=("bernoulli_",))
def bernoulli_(x, p=0.5, *, generator=None):
    pa = p._a if isinstance(p, Tensor) else p
    if np.any((np.asarray(pa) < 0) | (np.asarray(pa) > 1)):
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    return _random_fill(x, BERNOULLI_P, _rng(generator, "bernoulli_").random(x._a.shape) < pa)


@torch_names("bernoulli")
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


@torch_names(functions=("normal",))
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


RANDOM = defop("RandomBackward0", None)

_C_TYPE_NAMES = {"int8": "signed char", "uint8": "unsigned char", "int16": "short", "int32": "int",
                 "int64": "long", "float32": "float", "float64": "double", "float16": "c10::Half",
                 "bool": "bool"}
_RANDOM_OVERLOADS = (" * (*, jitgrad.Generator generator = None)\n"
                     " * (int from, int to, *, jitgrad.Generator generator = None)\n"
                     " * (int to, *, jitgrad.Generator generator = None)\n")


def _random_bounds(np_dtype):
    """[lowest, highest] of the values random_ may draw for a dtype: a float's are the integers
    it holds exactly, as PyTorch's."""
    if np_dtype.kind == "b":
        return 0, 1
    if np_dtype.kind == "f":
        top = 2 ** (np.finfo(np_dtype).nmant + 1)
        return -top, top
    info = np.iinfo(np_dtype)
    return int(info.min), int(info.max)


@torch_names(methods=("random_",))
def random_(x, *args, generator=None, **kwargs):
    """x filled with integers drawn uniformly from [from, to) (random_(to): [0, to); random_():
    [0, the largest value x's dtype holds exactly])."""
    if "from" in kwargs or "to" in kwargs:
        args = (kwargs.pop("from", 0), kwargs.pop("to", None)) + args if "from" in kwargs else \
            args + (kwargs.pop("to"),)
    if kwargs:
        raise TypeError(f"random_() got an unexpected keyword argument '{next(iter(kwargs))}'")
    if len(args) > 2 or any(not (isinstance(v, (int, np.integer)) and not isinstance(v, bool))
                            for v in args if v is not None) or (len(args) == 1 and args[0] is None):
        got = ", ".join(type(v).__name__ for v in args)
        raise TypeError(f"random_() received an invalid combination of arguments - got ({got}), "
                        f"but expected one of:\n{_RANDOM_OVERLOADS}")
    dt = x._a.dtype
    lowest, highest = _random_bounds(dt)
    if not args:
        low, high = 0, highest + 1
    elif len(args) == 1:
        low, high = 0, int(args[0])
    else:
        low = int(args[0])
        high = highest + 1 if args[1] is None else int(args[1])
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                           f"to={high}")
    name = _C_TYPE_NAMES.get(dt.name, dt.name)
    if not lowest <= low <= highest:
        raise RuntimeError(f"from is out of bounds for {name}")
    if not lowest <= high - 1 <= highest:
        raise RuntimeError(f"to - 1 is out of bounds for {name}")
    values = _rng(generator, "random_").integers(low, high, x._a.shape, dtype=np.int64)
    return _random_fill(x, RANDOM, values)


random_.torch_keywords = {"from": "args", "to": "args"}     # (it takes them itself)
