"""jitgrad: PyTorch's autograd semantics on a flat tape replayed by one Numba-compiled loop.

    import jitgrad as torch
"""
from . import _missing, dtypes
from .dtypes import (float32, float, float64, double, float16, half, int64, long, int32, int,
                     int16, short, int8, uint8, bool, dtype, get_default_dtype, set_default_dtype)
from ._device import device, get_default_device, set_default_device
from .tensor import Tensor, Size, is_tensor
from .engine.tape import is_grad_enabled
from .creation import (tensor, as_tensor, from_numpy, zeros, ones, empty, full, zeros_like,
                       ones_like, empty_like, full_like, rand, randn, rand_like, randn_like,
                       randint, randperm, arange, linspace, eye, manual_seed, FloatTensor,
                       DoubleTensor, LongTensor)
from .creation import randint_like
from . import ops as _ops
from ._methods import *  # noqa: F401,F403  (functional forms: exp, sum, matmul, ...)
from . import autograd
from . import func
from .autograd import no_grad, enable_grad, set_grad_enabled, inference_mode
from . import nn
from .nn.functional import cosine_similarity, pairwise_distance  # noqa: F401  (torch.* has them too)
from .serialization import save, load
from . import accelerator, backends, cuda
from .compiler import compile  # noqa: A004  (torch.compile's name)
from ._runtime import (are_deterministic_algorithms_enabled, get_float32_matmul_precision,
                       get_num_threads, is_deterministic_algorithms_warn_only_enabled,
                       set_float32_matmul_precision, set_num_threads, use_deterministic_algorithms)
# random generators (issue 13, item 4)
from . import random
from . import linalg
from .random import (Generator, default_generator, seed, initial_seed, get_rng_state,
                     set_rng_state, multinomial)
# autograd.Function, hooks, anomaly mode, profiler (issue 12)
from . import profiler
from .autograd.anomaly import is_anomaly_enabled, is_anomaly_check_nan_enabled, set_anomaly_enabled

__version__ = "0.1.0"


def __getattr__(name):
    # jitgrad.optim, .data and .utils load on first use: optim imports Numba for its kernels
    if name in ("optim", "data", "utils"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    if name in _missing.FUNCTIONS:
        raise _missing.missing(name, "jitgrad")
    raise AttributeError(f"module 'jitgrad' has no attribute '{name}'")


def set_default_tensor_type(t):
    """Deprecated in PyTorch (as it warns): sets the default dtype from a tensor type."""
    import warnings
    from .tensor import _type_dtype
    warnings.warn("jitgrad.set_default_tensor_type() is deprecated as of PyTorch 2.1, please use "
                  "jitgrad.set_default_dtype() and jitgrad.set_default_device() as alternatives.",
                  UserWarning, stacklevel=2)
    d = _type_dtype(t)
    if not d.is_floating_point:
        raise TypeError("only floating-point types are supported as the default type")
    set_default_dtype(d)


def set_printoptions(**_):
    pass


def typename(t):
    return t.type()
