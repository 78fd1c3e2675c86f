"""Binds the op table's functions to Tensor as methods and operators, and exports the
functional forms (jitgrad.exp, jitgrad.matmul, ...)."""
from . import _keywords, creation, dtypes, ops
from .tensor import Tensor

# ---- functions exported as jitgrad.<name>, and bound as Tensor.<name> unless marked otherwise
_FUNCTIONS = dict(
    # elementwise
    exp=ops.exp, log=ops.log, sqrt=ops.sqrt, tanh=ops.tanh, sigmoid=ops.sigmoid, relu=ops.relu,
    abs=ops.abs, neg=ops.neg, reciprocal=ops.reciprocal, pow=ops.pow, add=ops.add, sub=ops.sub,
    mul=ops.mul, div=ops.div, maximum=ops.maximum, minimum=ops.minimum, sin=ops.sin, cos=ops.cos,
    tan=ops.tan, sinh=ops.sinh, cosh=ops.cosh, asin=ops.asin, acos=ops.acos, atan=ops.atan,
    arcsin=ops.asin, arccos=ops.acos, arctan=ops.atan, log1p=ops.log1p, expm1=ops.expm1,
    exp2=ops.exp2, log2=ops.log2, log10=ops.log10, rsqrt=ops.rsqrt, square=ops.square,
    sign=ops.sign, floor=ops.floor, ceil=ops.ceil, trunc=ops.trunc, round=ops.round, erf=ops.erf,
    clamp=ops.clamp, clip=ops.clamp,
    negative=ops.neg, multiply=ops.mul, divide=ops.div, subtract=ops.sub, true_divide=ops.div,
    # reductions
    sum=ops.sum, mean=ops.mean, norm=ops.norm, max=ops.max, min=ops.min, amax=ops.amax,
    amin=ops.amin, argmax=ops.argmax, argmin=ops.argmin, prod=ops.prod, var=ops.var, std=ops.std,
    logsumexp=ops.logsumexp, cumsum=ops.cumsum,
    # shape and indexing
    reshape=ops.reshape, flatten=ops.flatten, squeeze=ops.squeeze, unsqueeze=ops.unsqueeze,
    permute=ops.permute, transpose=ops.transpose, t=ops.t, clone=ops.clone, gather=ops.gather,
    index_select=ops.index_select, split=ops.split, chunk=ops.chunk, unbind=ops.unbind,
    narrow=ops.narrow, select=ops.select, addcmul=ops.addcmul, addcdiv=ops.addcdiv,
    bernoulli=ops.bernoulli, lerp=ops.lerp, masked_fill=ops.masked_fill, flip=ops.flip,
    take=ops.take, put=ops.put, roll=ops.roll, sort=ops.sort, argsort=ops.argsort, topk=ops.topk, tril=ops.tril, triu=ops.triu,
    # softmax family
    softmax=ops.softmax, log_softmax=ops.log_softmax,
    # linear algebra
    matmul=ops.matmul, mm=ops.mm, bmm=ops.bmm, dot=ops.dot, mv=ops.mv, outer=ops.outer,
    addmm=ops.addmm,
    # comparisons and logic
    eq=ops.eq, ne=ops.ne, lt=ops.lt, le=ops.le, gt=ops.gt, ge=ops.ge, all=ops.all, any=ops.any,
    equal=ops.equal, allclose=ops.allclose, isclose=ops.isclose,
    greater=ops.gt, less=ops.lt, greater_equal=ops.ge, less_equal=ops.le, not_equal=ops.ne,
)
_FUNCTION_ONLY = dict(cat=ops.cat, concat=ops.cat, concatenate=ops.cat, stack=ops.stack,
                      where=ops.where, return_types=ops.return_types, normal=ops.normal,
                      einsum=ops.einsum, hstack=ops.hstack, vstack=ops.vstack)
# counting and searching (no gradients), and functions composed of other ops
_FUNCTIONS.update(histc=ops.histc, histogram=ops.histogram, bincount=ops.bincount,
                  unique=ops.unique, unique_consecutive=ops.unique_consecutive,
                  unflatten=ops.unflatten)
_FUNCTION_ONLY.update(searchsorted=ops.searchsorted, bucketize=ops.bucketize, cdist=ops.cdist,
                      std_mean=ops.std_mean, var_mean=ops.var_mean)
# torch's keyword names (input=, other=, axis=, keepdims=, ...) on every function and method
_FUNCTIONS = {name: _keywords.accept(name, fn) for name, fn in _FUNCTIONS.items()}
_FUNCTION_ONLY = {name: _keywords.accept(name, fn) for name, fn in _FUNCTION_ONLY.items()}
globals().update(_FUNCTIONS)
globals().update(_FUNCTION_ONLY)
__all__ = list(_FUNCTIONS) + list(_FUNCTION_ONLY)

_METHODS = dict(_FUNCTIONS)
_METHODS.update(
    view=ops.view, expand=ops.expand, to=ops.to, zero_=ops.zero_, fill_=ops.fill_, copy_=ops.copy_,
    where=lambda x, condition, y: ops.where(condition, x, y),
    __getitem__=ops.getitem, __setitem__=ops.setitem, contiguous=ops.contiguous,
    repeat=ops.repeat,
    __add__=ops.add, __radd__=ops.add, __sub__=ops.sub, __rsub__=ops.rsub, __mul__=ops.mul,
    __rmul__=ops.mul, __truediv__=ops.div, __rtruediv__=ops.rdiv, __pow__=ops.pow,
    __rpow__=ops._rpow_fn, __neg__=ops.neg, __matmul__=ops.matmul,
    __rmatmul__=lambda x, y: ops.matmul(y, x) if isinstance(y, Tensor) else NotImplemented,
    __abs__=ops.abs,
    __eq__=ops.eq, __ne__=ops.ne, __lt__=ops.lt, __le__=ops.le, __gt__=ops.gt, __ge__=ops.ge,
    expand_as=lambda x, other: ops.expand(x, other.shape),
    view_as=lambda x, other: ops.view(x, other.shape),
    reshape_as=lambda x, other: ops.reshape(x, other.shape),
    float=lambda x: ops.to(x, dtypes.float32), double=lambda x: ops.to(x, dtypes.float64),
    long=lambda x: ops.to(x, dtypes.int64), int=lambda x: ops.to(x, dtypes.int32),
    bool=lambda x: ops.to(x, dtypes.bool),
    new_tensor=creation.new_tensor, new_zeros=creation.new_zeros, new_ones=creation.new_ones,
    new_empty=creation.new_empty, new_full=creation.new_full,
)
for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn if _name.startswith("__") else _keywords.accept(_name, _fn))
Tensor.T = property(ops.T_)
Tensor.mT = property(lambda x: ops.transpose(x, -2, -1))

# ---- in-place variants (numpy in place when nothing is recorded: the optimizers' path)
_INPLACE = dict(masked_fill_=ops.masked_fill_, normal_=ops.normal_, uniform_=ops.uniform_, exponential_=ops.exponential_,
                bernoulli_=ops.bernoulli_, add_=ops.add_, sub_=ops.sub_, mul_=ops.mul_, div_=ops.div_, addcmul_=ops.addcmul_,
                addcdiv_=ops.addcdiv_, clamp_=ops.clamp_, clip_=ops.clamp_, sqrt_=ops.sqrt_,
                exp_=ops.exp_, log_=ops.log_, neg_=ops.neg_, abs_=ops.abs_, tanh_=ops.tanh_,
                sigmoid_=ops.sigmoid_, relu_=ops.relu_, reciprocal_=ops.reciprocal_,
                __iadd__=ops.add_, __isub__=ops.sub_, __imul__=ops.mul_, __itruediv__=ops.div_)
for _name, _fn in _INPLACE.items():
    setattr(Tensor, _name, _fn)
Tensor.random_ = ops.random_
Tensor.pow_ = ops._inplace_method(ops.pow)
Tensor.__ipow__ = Tensor.pow_

# ---- issue 14: the peer suite's missing ops (functions and methods, then operators)
_PEER_FUNCTIONS = dict(
    acosh=ops.acosh, asinh=ops.asinh, atanh=ops.atanh, arccosh=ops.acosh, arcsinh=ops.asinh,
    arctanh=ops.atanh, nan_to_num=ops.nan_to_num, logaddexp=ops.logaddexp, copysign=ops.copysign,
    remainder=ops.remainder, fmod=ops.fmod, floor_divide=ops.floor_divide,
    isnan=ops.isnan, isinf=ops.isinf, isfinite=ops.isfinite, logical_and=ops.logical_and,
    logical_or=ops.logical_or, logical_xor=ops.logical_xor, logical_not=ops.logical_not,
    bitwise_and=ops.bitwise_and, bitwise_or=ops.bitwise_or, bitwise_xor=ops.bitwise_xor,
    bitwise_not=ops.bitwise_not, bitwise_left_shift=ops.bitwise_left_shift,
    bitwise_right_shift=ops.bitwise_right_shift,
    cumprod=ops.cumprod, logcumsumexp=ops.logcumsumexp, cummax=ops.cummax, cummin=ops.cummin,
    scatter=ops.scatter, scatter_add=ops.scatter_add, scatter_reduce=ops.scatter_reduce,
    diagonal=ops.diagonal, diag=ops.diag, masked_select=ops.masked_select, nonzero=ops.nonzero,
    repeat_interleave=ops.repeat_interleave, unflatten=ops.unflatten,
)
globals().update(_PEER_FUNCTIONS)
__all__ += list(_PEER_FUNCTIONS)
for _name, _fn in _PEER_FUNCTIONS.items():
    setattr(Tensor, _name, _fn)
_PEER_OPERATORS = dict(
    __and__=ops.bitwise_and, __rand__=ops.rbitwise_and, __or__=ops.bitwise_or, __ror__=ops.rbitwise_or,
    __xor__=ops.bitwise_xor, __rxor__=ops.rbitwise_xor, __invert__=ops.invert,
    __lshift__=ops.bitwise_left_shift, __rlshift__=ops.rbitwise_left_shift,
    __rshift__=ops.bitwise_right_shift, __rrshift__=ops.rbitwise_right_shift,
    __floordiv__=ops.floor_divide, __rfloordiv__=ops.rfloor_divide, __mod__=ops.remainder,
    __rmod__=ops.rremainder,
)
for _name, _fn in _PEER_OPERATORS.items():
    setattr(Tensor, _name, _fn)
for _name in ("__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__", "__ifloordiv__", "__imod__"):
    setattr(Tensor, _name, ops._inplace_method(_PEER_OPERATORS[_name.replace("__i", "__", 1)]))
Tensor.unfold = ops.unfold
Tensor.half = lambda x: ops.to(x, dtypes.float16)
meshgrid = ops.meshgrid
__all__.append("meshgrid")
for _name in ("scatter", "scatter_add", "scatter_reduce"):
    setattr(Tensor, _name + "_", ops._inplace_method(_PEER_FUNCTIONS[_name]))
for _name in ("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift",
              "remainder", "fmod", "floor_divide", "copysign", "logical_and", "logical_or", "logical_xor",
              "logaddexp"):
    setattr(Tensor, _name + "_", ops._inplace_method(_PEER_FUNCTIONS[_name]))
# ---- torch.linalg's matrix functions under their top-level and Tensor names (issue 13, item 8)
_LINALG = dict(det=ops.linalg_det, inverse=ops.linalg_inv, logdet=ops.logdet, slogdet=ops.linalg_slogdet,
               pinverse=lambda input, rcond=1e-15: ops.linalg_pinv(input, rtol=rcond))
globals().update(_LINALG)
__all__ += list(_LINALG)
for _name, _fn in _LINALG.items():
    setattr(Tensor, _name, _fn)

from . import _legacy_linalg  # noqa: E402  (compositions over jitgrad.linalg)
_LEGACY_LINALG = dict(svd=_legacy_linalg.svd, qr=_legacy_linalg.qr, cholesky=_legacy_linalg.cholesky,
                      cholesky_solve=_legacy_linalg.cholesky_solve,
                      cholesky_inverse=_legacy_linalg.cholesky_inverse,
                      matrix_power=_legacy_linalg.matrix_power, matrix_exp=ops.linalg_matrix_exp)
globals().update(_LEGACY_LINALG)
__all__ += list(_LEGACY_LINALG)
for _name, _fn in _LEGACY_LINALG.items():
    setattr(Tensor, _name, _fn)
