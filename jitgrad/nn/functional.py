"""jitgrad.nn.functional, mirroring torch.nn.functional."""
from ..ops import binary_cross_entropy_with_logits, relu, sigmoid, tanh  # noqa: F401
