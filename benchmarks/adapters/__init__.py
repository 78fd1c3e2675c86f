"""One adapter per system. Each turns a workload (benchmarks/workloads.py) into a Case.

An adapter module exposes ``load()`` which imports the system (raising ImportError when it is not
installed) and returns an object with one builder per workload it supports: ``w1(wl)``,
``w2(wl)``, ``w3(wl)``, ``w4_forward(wl)``, ``w4_backward(wl)``, ``w5(wl)``, ``w5_batched(wl)``,
``w6(wl)``, ``w7(wl)``, ``w4_step(wl)``, ``w8(wl)``, ``w8_forward(wl)``, ``w8_backward(wl)``. A missing
builder means "not measured for this system".
"""
import gc
import importlib
from dataclasses import dataclass, field
from typing import Callable, Optional

# name -> (module, what it is, as shown in the report)
SYSTEMS = {
    "jitgrad": ("torchlike", "jitgrad eager"),
    "jitgrad-compiled": ("torchlike", "jitgrad.compile of the whole step"),
    "torch": ("torchlike", "PyTorch eager, CPU, 1 thread"),
    "torch-compiled": ("torchlike", "torch.compile of the whole step (inductor), CPU, 1 thread"),
    "jax": ("jax_adapter", "jax.jit of the whole step"),
    "autograd": ("autograd_adapter", "HIPS autograd"),
    "micrograd": ("micrograd_adapter", "micrograd (scalar Values)"),
    "fused": ("fused", "hand-fused @njit forward+backward(+SGD)"),
}


@dataclass
class Case:
    """What one system runs for one workload.

    run(arg) is the timed call; when setup is given, each timed call gets a fresh setup() result
    (built outside the timing) as its argument, else None. grads() returns the gradients (numpy
    arrays) computed by the last run, in the workload's parameter order.
    """
    run: Callable
    grads: Callable
    setup: Optional[Callable] = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def once(self):
        return self.run(self.setup() if self.setup else None)


class Unavailable(Exception):
    pass


_loaded = {}


def load(system):
    """The adapter for system, or Unavailable(reason) when its package is not installed."""
    if system not in _loaded:
        module, _ = SYSTEMS[system]
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
            _loaded[system] = mod.load(system)
        except ImportError as e:
            _loaded[system] = Unavailable(f"{system} is not installed ({e})")
    a = _loaded[system]
    if isinstance(a, Unavailable):
        raise a
    return a


def build(system, builder, workload):
    """Case for (system, builder name, workload), or None if the system does not run it.
    Garbage from earlier cases is collected first, and an adapter may reset its state (fresh)."""
    adapter = load(system)
    fn = getattr(adapter, builder, None)
    if fn is None:
        return None
    gc.collect()
    if hasattr(adapter, "fresh"):
        adapter.fresh()
    return fn(workload)
