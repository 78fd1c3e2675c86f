"""jitgrad.nn: modules, parameters, initialisers and the functional API, as torch.nn."""
from . import functional
from . import init
from .parameter import Parameter
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all

__all__ = ["functional", "init", "Parameter"] + _modules_all
