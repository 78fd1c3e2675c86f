"""jitgrad.nn: modules, parameters, initialisers, the functional API and utils, as torch.nn."""
from . import functional
from . import init
from . import utils
from .parameter import Parameter
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all

__all__ = ["functional", "init", "utils", "Parameter"] + _modules_all
