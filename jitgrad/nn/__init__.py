"""jitgrad.nn: functional API (modules arrive with the training layer)."""
from . import functional
