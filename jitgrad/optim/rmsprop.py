"""RMSprop (alpha, eps, weight_decay, momentum, centered), as torch.optim.RMSprop."""
import numpy as np

from . import _kernels
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def _state_names(self, group):
        return (("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ())
                + (("grad_avg",) if group["centered"] else ()))

    def _update(self, flat, g):
        hp = np.array((g["lr"], g["alpha"], g["eps"], g["weight_decay"], g["momentum"],
                       g["centered"], g["maximize"]), np.float64)
        gavg = flat.buf("grad_avg") if g["centered"] else flat.like
        buf = flat.buf("momentum_buffer") if g["momentum"] > 0 else flat.like
        _kernels.rmsprop_step(flat.paddr, flat.gaddr, flat.buf("square_avg"), gavg, buf,
                              flat.steps, flat.off, flat.active, hp, flat.like)
