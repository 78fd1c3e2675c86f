"""jitgrad.utils: the PyTorch path ``torch.utils.data`` for scripts that ``import jitgrad as torch``."""
from . import data  # noqa: F401
