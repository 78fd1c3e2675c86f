"""jitgrad.nn.Parameter: a Tensor that a Module registers as one of its parameters."""
import numpy as np

from .. import _storage
from ..tensor import Tensor, _init


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and shares storage with ``data``."""
    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            a, ver = np.empty(0, np.float32), None
        elif isinstance(data, Tensor):
            a, ver = data._a, data._shared_version()
        else:
            raise TypeError(f"Parameter(): argument 'data' must be Tensor, not {type(data).__name__}")
        t = Tensor.__new__(cls)
        _init(t, a, False)
        t._ver = ver
        if requires_grad:
            t.requires_grad_(True)
        return t

    def __init__(self, data=None, requires_grad=True):   # everything happens in __new__
        pass

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__

    def __reduce__(self):
        args = Tensor.__reduce__(self)[1]       # its storage, shared with other pickled views
        return (_rebuild_parameter, args) if args[0] is self._a else (_rebuild_parameter_view, args)

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        t = _rebuild_parameter(self._a.copy(), self._rg)
        memo[id(self)] = t
        return t


def _rebuild_parameter(a, rg):
    t = Parameter.__new__(Parameter, None, False)
    t._a = a
    t._rg = rg
    return t


def _rebuild_parameter_view(root, offset, shape, strides, dtype, rg):
    return _rebuild_parameter(_storage.view_of(root, offset, shape, strides, dtype), rg)
