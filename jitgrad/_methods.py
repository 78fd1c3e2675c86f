"""Binds the op table's functions to Tensor as methods and operators, and exports the
functional forms (jitgrad.exp, jitgrad.matmul, ...)."""
import numpy as np

from . import dtypes, ops
from .tensor import Tensor, _wrap

exp, log, sqrt, tanh, sigmoid, relu, abs, neg = (ops.exp, ops.log, ops.sqrt, ops.tanh, ops.sigmoid,
                                                ops.relu, ops.abs, ops.neg)
reciprocal, pow, add, sub, mul, div = ops.reciprocal, ops.pow, ops.add, ops.sub, ops.mul, ops.div
sum, mean, norm = ops.sum, ops.mean, ops.norm
reshape, flatten, squeeze, unsqueeze, permute, transpose, t = (ops.reshape, ops.flatten, ops.squeeze,
                                                               ops.unsqueeze, ops.permute,
                                                               ops.transpose, ops.t)
clone, matmul, mm = ops.clone, ops.matmul, ops.mm
eq, ne, lt, le, gt, ge = ops.eq, ops.ne, ops.lt, ops.le, ops.gt, ops.ge
all, any, equal, allclose, isclose = ops.all, ops.any, ops.equal, ops.allclose, ops.isclose
negative, multiply, divide, subtract, true_divide = neg, mul, div, sub, div
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne

__all__ = ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "neg", "reciprocal", "pow", "add",
           "sub", "mul", "div", "sum", "mean", "norm", "reshape", "flatten", "squeeze", "unsqueeze",
           "permute", "transpose", "t", "clone", "matmul", "mm", "eq", "ne", "lt", "le", "gt", "ge",
           "all", "any", "equal", "allclose", "isclose", "negative", "multiply", "divide", "subtract",
           "true_divide", "greater", "less", "greater_equal", "less_equal", "not_equal"]

_METHODS = dict(exp=exp, log=log, sqrt=sqrt, tanh=tanh, sigmoid=sigmoid, relu=relu, abs=abs, neg=neg,
                reciprocal=reciprocal, pow=pow, add=add, sub=sub, mul=mul, div=div, sum=sum,
                mean=mean, norm=norm, reshape=reshape, view=ops.view, flatten=flatten,
                squeeze=squeeze, unsqueeze=unsqueeze, permute=permute, transpose=transpose, t=t,
                expand=ops.expand, clone=clone, to=ops.to, matmul=matmul, mm=mm, eq=eq, ne=ne, lt=lt,
                le=le, gt=gt, ge=ge, all=all, any=any, equal=equal, allclose=allclose,
                isclose=isclose, negative=neg, multiply=mul, divide=div, subtract=sub,
                zero_=ops.zero_, fill_=ops.fill_, copy_=ops.copy_,
                __add__=add, __radd__=add, __sub__=sub, __rsub__=ops.rsub, __mul__=mul, __rmul__=mul,
                __truediv__=div, __rtruediv__=ops.rdiv, __pow__=pow, __rpow__=ops._rpow_fn,
                __neg__=neg, __matmul__=matmul, __rmatmul__=lambda x, y: matmul(y, x), __abs__=abs,
                __eq__=eq, __ne__=ne, __lt__=lt, __le__=le, __gt__=gt, __ge__=ge,
                expand_as=lambda x, other: ops.expand(x, other.shape),
                view_as=lambda x, other: ops.view(x, other.shape),
                reshape_as=lambda x, other: ops.reshape(x, other.shape),
                float=lambda x: ops.to(x, dtypes.float32), double=lambda x: ops.to(x, dtypes.float64),
                long=lambda x: ops.to(x, dtypes.int64), int=lambda x: ops.to(x, dtypes.int32),
                bool=lambda x: ops.to(x, dtypes.bool),
                __getitem__=lambda x, idx: _getitem(x, idx))
for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
Tensor.T = property(ops.T_)
Tensor.mT = property(lambda x: ops.transpose(x, -2, -1))

for _name, _fn in dict(add=add, sub=sub, mul=mul, div=div).items():
    _m = ops._inplace_method(_fn)
    setattr(Tensor, _name + "_", _m)
    setattr(Tensor, f"__i{'truediv' if _name == 'div' else _name}__", _m)
Tensor.pow_ = ops._inplace_method(pow)
Tensor.__ipow__ = Tensor.pow_


def _getitem(x, idx):
    if isinstance(idx, Tensor):
        idx = idx._a
    out = x._a[idx]
    if x._rg:
        raise NotImplementedError("indexing a tensor that requires grad is not differentiable in "
                                  "jitgrad yet; index its .detach() or use reshape/sum instead")
    return _wrap(np.asarray(out))
