"""jitgrad: PyTorch's autograd semantics on a flat tape replayed by one Numba-compiled loop.

    import jitgrad as torch
"""
from . import dtypes
from .dtypes import (float32, float, float64, double, float16, half, int64, long, int32, int,
                     int16, short, int8, uint8, bool, dtype)
from .tensor import Tensor, Size, is_tensor
from .engine.tape import is_grad_enabled
from .creation import (tensor, as_tensor, from_numpy, zeros, ones, empty, full, zeros_like,
                       ones_like, empty_like, full_like, rand, randn, rand_like, randn_like,
                       randint, randperm, arange, linspace, eye, manual_seed, FloatTensor,
                       DoubleTensor, LongTensor)
from . import ops as _ops
from ._methods import *  # noqa: F401,F403  (functional forms: exp, sum, matmul, ...)
from . import autograd
from .autograd import no_grad, enable_grad, set_grad_enabled, inference_mode
from . import nn
from .serialization import save, load
# random generators (issue 13, item 4)
from . import random
from .random import (Generator, default_generator, seed, initial_seed, get_rng_state,
                     set_rng_state, multinomial)

__version__ = "0.1.0"


def __getattr__(name):
    # jitgrad.optim, .data and .utils load on first use: optim imports Numba for its kernels
    if name in ("optim", "data", "utils"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'jitgrad' has no attribute '{name}'")


def get_default_dtype():
    return float32


def set_printoptions(**_):
    pass


def typename(t):
    return t.type()
