"""What is measured: each case is one workload run by one adapter builder on a list of systems.

Shared by the timing file (test_workloads.py), the report and the CI smoke test.
"""
from dataclasses import dataclass, field

from . import workloads as W

ALL = ("jitgrad", "torch", "jax", "autograd", "micrograd", "fused")
COMPILED = ("jitgrad-compiled", "torch-compiled")   # the whole step through jitgrad.compile / torch.compile
EAGER = ("jitgrad", "torch", "autograd")          # W4 measures an eager tape's per-op cost
LIKE_TORCH = ("jitgrad", "torch")                 # the same torch-style code
TENSOR = ("jitgrad", "torch", "jax", "autograd")  # systems with tensors (not micrograd, not fused)


@dataclass(frozen=True)
class Spec:
    builder: str          # adapter method that builds the Case
    workload: type        # class in workloads.py
    systems: tuple
    unit: str = None      # workload attribute counting ops or nodes, for per-op numbers
    kwargs: dict = field(default_factory=dict)

    def make(self, quick=False, **overrides):
        return self.workload(quick=quick, **{**self.kwargs, **overrides})


CASES = {
    "W1": Spec("w1", W.W1, ALL + COMPILED),
    "W2": Spec("w2", W.W2, ("jitgrad", "torch", "jax", "autograd", "fused") + COMPILED),
    "W3": Spec("w3", W.W3, ALL + COMPILED, "ops"),
    "W4-forward": Spec("w4_forward", W.W4, EAGER, "nodes"),
    "W4-forward-nograd": Spec("w4_forward_nograd", W.W4, LIKE_TORCH, "nodes"),
    "W4-backward": Spec("w4_backward", W.W4, EAGER, "nodes"),
    # forward + backward in one call: jitgrad.compile's trace of 10k ops vs eager (torch.compile
    # of a 10k-op Python loop and jax.jit are not run: their compilers take minutes on it)
    "W4-step": Spec("w4_step", W.W4, ("jitgrad", "jitgrad-compiled", "torch", "fused"), "nodes"),
    "W5": Spec("w5", W.W5, TENSOR),
    "W5-batched": Spec("w5_batched", W.W5, LIKE_TORCH),
    **{f"W6-T{t}": Spec("w6", W.W6, TENSOR, "ops", {"steps": t}) for t in W.W6.STEPS},
    "W7": Spec("w7", W.W7, LIKE_TORCH + ("jitgrad-compiled",)),
    "W8": Spec("w8", W.W8, LIKE_TORCH + ("jitgrad-compiled",)),
    "W8-forward": Spec("w8_forward", W.W8, LIKE_TORCH),
    "W8-backward": Spec("w8_backward", W.W8, LIKE_TORCH),
}
