"""Dropout modules, as torch.nn: active in training mode only; each forward is one functional."""
from .. import functional as F
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]


class _DropoutNd(Module):
    _fn = None

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return getattr(F, self._fn)(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability p, scale the rest by 1/(1-p)."""
    _fn = "dropout"


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) or (C, L) inputs."""
    _fn = "dropout1d"


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) inputs (a 3-d input is read as (N, C, L))."""
    _fn = "dropout2d"


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs."""
    _fn = "dropout3d"


class AlphaDropout(_DropoutNd):
    """Dropout for SELU networks: keeps the input's mean and variance. Never in place (PyTorch)."""
    _fn = "alpha_dropout"

    def forward(self, input):
        return getattr(F, self._fn)(input, self.p, self.training)


class FeatureAlphaDropout(AlphaDropout):
    """Alpha dropout of whole channels."""
    _fn = "feature_alpha_dropout"
