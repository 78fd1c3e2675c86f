"""Binds the ops' PyTorch names (declared next to each op with ``torch_names``, see
ops/_core.py) as jitgrad.<name> functions, Tensor methods and operators, with torch's keyword
names (_keywords.accept); then the Tensor conveniences that are not ops of their own."""
import builtins

from . import _keywords, _missing, creation, dtypes, ops
from .tensor import Tensor

FUNCTIONS = {}     # jitgrad.<name> -> its function (taking torch's keyword names)
METHODS = {}       # Tensor.<name> -> the function it calls (before torch's keyword names)
INPLACE = {}       # Tensor.<name>_ -> the in-place method made from an op
for _fn, _as_functions, _as_methods, _as_inplace in ops.NAMES:
    for _name in _as_functions:
        FUNCTIONS[_name] = _keywords.accept(_name, _fn)
    for _name in _as_methods:
        METHODS[_name] = _fn
    for _name in _as_inplace:
        INPLACE[_name] = ops._inplace_method(_fn)
globals().update(FUNCTIONS)
__all__ = list(FUNCTIONS) + ["return_types"]
return_types = ops.return_types

# ---- methods composed of ops, and conversions
_CONVENIENCES = dict(
    where=lambda x, condition, y: ops.where(condition, x, y),
    __rmatmul__=lambda x, y: ops.matmul(y, x) if isinstance(y, Tensor) else NotImplemented,
    expand_as=lambda x, other: ops.expand(x, other.shape),
    view_as=lambda x, other: ops.view(x, other.shape),
    reshape_as=lambda x, other: ops.reshape(x, other.shape),
    float=lambda x: ops.to(x, dtypes.float32), double=lambda x: ops.to(x, dtypes.float64),
    long=lambda x: ops.to(x, dtypes.int64), int=lambda x: ops.to(x, dtypes.int32),
    bool=lambda x: ops.to(x, dtypes.bool), half=lambda x: ops.to(x, dtypes.float16),
    new_tensor=creation.new_tensor, new_zeros=creation.new_zeros, new_ones=creation.new_ones,
    new_empty=creation.new_empty, new_full=creation.new_full,
)
METHODS.update(_CONVENIENCES)
for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn if _name.startswith("__") else _keywords.accept(_name, _fn))
for _name, _fn in INPLACE.items():
    setattr(Tensor, _name, _fn)
Tensor.T = property(ops.T_)
Tensor.mT = property(lambda x: ops.transpose(x, -2, -1))

# ---- torch.linalg's matrix functions under their legacy names (issue 13, item 8)
pinverse = lambda input, rcond=1e-15: ops.linalg_pinv(input, rtol=rcond)  # noqa: E731
Tensor.pinverse = pinverse
__all__.append("pinverse")

from . import _legacy_linalg  # noqa: E402  (compositions over jitgrad.linalg)
_LEGACY_LINALG = dict(svd=_legacy_linalg.svd, qr=_legacy_linalg.qr, cholesky=_legacy_linalg.cholesky,
                      cholesky_solve=_legacy_linalg.cholesky_solve,
                      cholesky_inverse=_legacy_linalg.cholesky_inverse,
                      matrix_power=_legacy_linalg.matrix_power)
globals().update(_LEGACY_LINALG)
__all__ += list(_LEGACY_LINALG)
for _name, _fn in _LEGACY_LINALG.items():
    setattr(Tensor, _name, _fn)

# torch's Tensor methods jitgrad lacks: reading one raises the error naming it
for _name in _missing.METHODS:
    if not builtins.any(_name in vars(c) for c in Tensor.__mro__):
        setattr(Tensor, _name, _missing.Missing(_name))
