"""Random number generators: ``jitgrad.Generator`` and the default generator's functions, as
torch.Generator and torch.random.

A Generator wraps a numpy PCG64 generator (so the streams are not torch's mt19937 streams, but each
seed gives one stream, every Generator is independent of the others and of the default one, and a
saved state replays the stream). Like torch's, a new Generator and the default generator start
from the seed 67280421310721, so a script is reproducible even before it seeds. The default
generator's numpy generator is ``creation._rng`` for the whole session (seeding changes its state
in place), so code that draws from it directly stays on the default stream.
"""
import contextlib
import os

import numpy as np

from . import _device
from .engine import hook
from .tensor import _CUDA_INIT, Tensor, _wrap

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "fork_rng", "multinomial"]

_DEFAULT_SEED = 67280421310721          # torch's default_rng_seed_val
_STATE_SIZE = 48                        # PCG64 state and increment, its uint32 cache, the seed


# PyTorch's CPU build's errors for a generator on another device
_NO_GENERATOR = {
    "cuda": "Cannot get CUDA generator without ATen_cuda library." + _CUDA_INIT[len(
        "Cannot initialize CUDA without ATen_cuda library."):],
    "mps": "Cannot execute getNewGenerator() without MPS backend.",
    "meta": "META device type not an accelerator."}


def _check_seed(seed):
    """seed as torch's manual_seed takes it: an int in [-2**63, 2**64), negative ones wrapped."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        name = "Tensor" if isinstance(seed, Tensor) else type(seed).__name__
        raise RuntimeError(f"manual_seed expected a long, but got {name}")
    seed = int(seed)
    if not -2 ** 63 <= seed < 2 ** 64:
        raise ValueError("Overflow when unpacking long long")
    return seed % 2 ** 64


class Generator:
    """A random stream: ``manual_seed``, ``seed``, ``initial_seed``, ``get_state``/``set_state``;
    pass it as ``generator=`` to the random functions."""

    def __init__(self, device="cpu"):
        if device != "cpu":
            kind = _device.device(device).type if isinstance(device, str) else \
                getattr(device, "type", None)
            if kind in _NO_GENERATOR:
                raise RuntimeError(_NO_GENERATOR[kind])
            _device.as_device(device, True)
        self._np = np.random.Generator(np.random.PCG64(_DEFAULT_SEED))
        self._seed = _DEFAULT_SEED

    @property
    def device(self):
        return _device.device("cpu")

    def manual_seed(self, seed):
        seed = _check_seed(seed)
        _reseeding()
        self._np.bit_generator.state = np.random.PCG64(seed).state
        self._seed = seed
        return self

    def seed(self):
        """Seed from the operating system's entropy; returns the seed."""
        _reseeding()
        s = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(s)
        return s

    def initial_seed(self):
        return self._seed

    def get_state(self):
        """The state as a uint8 tensor (torch's ByteTensor), for set_state."""
        st = self._np.bit_generator.state
        raw = b"".join((st["state"]["state"].to_bytes(16, "little"),
                        st["state"]["inc"].to_bytes(16, "little"),
                        int(st["has_uint32"]).to_bytes(4, "little"),
                        int(st["uinteger"]).to_bytes(4, "little"),
                        self._seed.to_bytes(8, "little")))
        return _wrap(np.frombuffer(raw, np.uint8).copy())

    def set_state(self, new_state):
        if not isinstance(new_state, Tensor):
            raise TypeError(f"expected a torch.ByteTensor, but got {type(new_state).__name__}")
        _reseeding()
        a = new_state._a
        if a.dtype != np.uint8:
            raise TypeError("RNG state must be a torch.ByteTensor")
        if a.size != _STATE_SIZE:
            raise RuntimeError(f"Expected a CPUGeneratorImplState of size {_STATE_SIZE} but found "
                               f"the input RNG state size to be {a.size}")
        raw = a.reshape(-1).tobytes()
        self._np.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(raw[0:16], "little"),
                      "inc": int.from_bytes(raw[16:32], "little")},
            "has_uint32": int.from_bytes(raw[32:36], "little") & 1,
            "uinteger": int.from_bytes(raw[36:40], "little")}
        self._seed = int.from_bytes(raw[40:48], "little")
        return self

    def __repr__(self):
        return f"<jitgrad.Generator object at {hex(id(self))}>"


default_generator = Generator()


def _reseeding():
    """A compiled step replays its random draws from the generator's running state: one that
    reseeds inside the function cannot be replayed."""
    if hook.tracer is not None:
        hook.tracer.unsupported("reseeding a generator inside the function")


def _numpy_rng(generator, fn):
    """The numpy generator behind generator= (None: the default one)."""
    if generator is None:
        return default_generator._np
    if isinstance(generator, Generator):
        return generator._np
    raise TypeError(f"{fn}(): argument 'generator' must be torch.Generator, not "
                    f"{type(generator).__name__}")


def manual_seed(seed):
    """Seed the default generator; returns it (torch.manual_seed)."""
    return default_generator.manual_seed(int(seed))


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state):
    if not (isinstance(new_state, Tensor) and new_state._a.dtype == np.uint8):
        raise TypeError("RNG state must be a torch.ByteTensor")
    default_generator.set_state(new_state)


@contextlib.contextmanager
def fork_rng(devices=None, enabled=True, **_):
    """The default generator's state is restored on exit (torch.random.fork_rng, CPU only)."""
    if not enabled:
        yield
        return
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):
    """Indices drawn from the categories weighted by input's last dimension (int64, no gradient).

    Without replacement, PyTorch's method: the num_samples largest of weight / Exp(1) draws (so a
    category of weight 0 comes only after all the others); with it, inverse-CDF draws."""
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    rng = _numpy_rng(generator, "multinomial")
    a = input._a
    if a.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if a.dtype.kind != "f":
        raise RuntimeError("multinomial only supports floating-point dtypes for input, got: "
                           + input.dtype.tensor_type.replace("Tensor", ""))
    n_categories = a.shape[-1]
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if not replacement and num_samples > n_categories:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    w = a.reshape(-1, n_categories).astype(np.float64)
    if w.size and (~np.isfinite(w) | (w < 0)).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if not w.shape[0]:
        return _wrap(np.zeros((0, num_samples), np.int64))
    total = w.sum(axis=1)
    if (total <= 0).any():
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if replacement:
        cdf = np.cumsum(w, axis=1)
        u = rng.random((w.shape[0], num_samples)) * cdf[:, -1:]
        # side="right" never lands on a category of weight 0 (its cdf equals the previous one);
        # a draw rounded up to the total goes to the last category with weight
        last = n_categories - 1 - np.argmax(w[:, ::-1] > 0, axis=1)
        idx = np.stack([np.minimum(np.searchsorted(c, r, side="right"), k)
                        for c, r, k in zip(cdf, u, last)])
    else:
        keys = w / rng.exponential(1.0, w.shape)
        idx = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    result = _wrap(idx.astype(np.int64).reshape(a.shape[:-1] + (num_samples,)))
    if out is not None:
        out.copy_(result)
        return out
    return result


Tensor.multinomial = multinomial
