"""SGD with momentum, dampening, Nesterov and weight decay, as torch.optim.SGD."""
import numpy as np

from . import _kernels
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    _has_step = False

    def _state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    _replay_kernel = staticmethod(_kernels.sgd_in_replay)

    def _hyper(self, g):
        return (g["lr"], g["momentum"], g["dampening"], g["weight_decay"], g["nesterov"],
                g["maximize"])

    def _state_arrays(self, flat, g):
        return (flat.buf("momentum_buffer") if g["momentum"] != 0 else flat.like, flat.has_buf)

    def _update(self, flat, g):
        _kernels.sgd_step(flat.paddr, flat.gaddr, *self._state_arrays(flat, g), flat.off,
                          flat.active, np.array(self._hyper(g), np.float64), flat.like)
