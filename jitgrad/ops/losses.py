"""Softmax and log_softmax (the building blocks of the losses), with their stable rules."""
import numpy as np

from ..engine.registry import defop
from ..tensor import _check_dim
from ._samples import Given, samples
from ._core import _arr, quiet, record
from .shape import to


# ======================= softmax family ======================================================
def _softmax(go, ga, gb, sv, iv, do, da, db, row):
    # y = softmax(x) along a dim of size I0 whose elements are I1 apart; saved: y
    n = row[5]
    inner = row[6]
    if ga.size == 0:
        return
    for o in range(ga.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            s = 0.0
            for k in range(n):
                s += go[base + k * inner] * sv[base + k * inner]
            for k in range(n):
                j = base + k * inner
                ga[j] += sv[j] * (go[j] - s)


def _log_softmax(go, ga, gb, sv, iv, do, da, db, row):
    # y = log_softmax(x) along a dim of size I0 whose elements are I1 apart; saved: y
    n = row[5]
    inner = row[6]
    if ga.size == 0:
        return
    for o in range(ga.size // (n * inner)):
        for i in range(inner):
            base = o * n * inner + i
            s = 0.0
            for k in range(n):
                s += go[base + k * inner]
            for k in range(n):
                j = base + k * inner
                ga[j] += go[j] - np.exp(sv[j]) * s


SOFTMAX = defop("SoftmaxBackward0", _softmax)
LOG_SOFTMAX = defop("LogSoftmaxBackward0", _log_softmax)


def _softmax_core(x, dim, dtype, op, log):
    if dtype is not None:
        x = to(x, dtype)
    a = x._a
    if a.dtype.kind != "f":
        raise NotImplementedError(f'"{"log_" if log else ""}softmax_lastdim_kernel_impl" not '
                                  f"implemented for '{x.dtype.tensor_type[:-6]}'")
    d = _check_dim(dim, a.ndim)
    a1 = a.reshape(1) if a.ndim == 0 else a
    if a1.size == 0:
        out = a1.copy()
    else:
        with quiet():
            z = a1 - a1.max(axis=d, keepdims=True)
            if log:
                out = z - np.log(np.exp(z).sum(axis=d, keepdims=True))
            else:
                e = np.exp(z)
                out = e / e.sum(axis=d, keepdims=True)
    out = _arr(out.reshape(a.shape))
    inner = 1
    for k in a1.shape[d + 1:]:
        inner *= k
    return record(op, out, x, save_out=True, i0=a1.shape[d], i1=inner, broadcast=False)


def softmax(x, dim, dtype=None):
    """Numerically stable softmax along dim."""
    return _softmax_core(x, dim, dtype, SOFTMAX, False)


def log_softmax(x, dim, dtype=None):
    """Numerically stable log-softmax along dim."""
    return _softmax_core(x, dim, dtype, LOG_SOFTMAX, True)


for _f in (softmax, log_softmax):
    samples(_f, ((3,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 3), -1), ((), 0), ((2, 3, 2), 1),
            ((2, 3, 2), -1), ((1, 3), 0))
samples(log_softmax, (Given([[1e3, 0.0, -1e3], [-1e3, -1e3, 1e3]]), 1))
samples(softmax, (Given([[1e3, 0.0, -1e3], [-1e3, -1e3, 1e3]]), 1))
