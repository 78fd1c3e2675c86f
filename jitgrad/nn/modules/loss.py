"""Losses as modules, as torch.nn: each forward calls jitgrad.nn.functional."""
import warnings

from .. import functional as F
from .module import Module

__all__ = ["MSELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss", "L1Loss", "BCELoss",
           "SmoothL1Loss", "HuberLoss"]


def _legacy_reduction(size_average, reduce):
    """The reduction the deprecated size_average/reduce name, with PyTorch's warning."""
    if size_average is None:
        size_average = True
    if reduce is None:
        reduce = True
    reduction = "mean" if size_average and reduce else ("sum" if reduce else "none")
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", UserWarning)
    return reduction


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


def _given(**kwargs):
    """Keyword arguments that differ from PyTorch's defaults (None, -100, 0.0)."""
    defaults = {"ignore_index": -100, "label_smoothing": 0.0}     # weight, pos_weight: None
    return {k: v for k, v in kwargs.items()
            if (v is not None if k not in defaults else v != defaults[k])}


class MSELoss(_Loss):
    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(
            input, target, reduction=self.reduction,
            **_given(weight=self.weight, pos_weight=self.pos_weight))


class CrossEntropyLoss(_WeightedLoss):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, reduction=self.reduction,
                               **_given(weight=self.weight, ignore_index=self.ignore_index,
                                        label_smoothing=self.label_smoothing))


class NLLLoss(_WeightedLoss):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, reduction=self.reduction,
                          **_given(weight=self.weight, ignore_index=self.ignore_index))


class L1Loss(_Loss):
    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, reduction=self.reduction,
                                      **_given(weight=self.weight))


class SmoothL1Loss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)
