"""Finite-difference gradient checks in float64, the correctness oracle for every rule:
gradcheck (first derivatives) and gradgradcheck (second, through create_graph=True)."""
import numpy as np

from ..tensor import Tensor, _wrap
from .differentiate import grad
from .grad_mode import enable_grad, no_grad


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return (x,) if isinstance(x, Tensor) else tuple(x)


def numerical_jacobian(fn, inputs, eps=1e-6):
    """Central differences: one column block per input element."""
    out0 = _as_tuple(fn(*inputs))
    jac = []
    for x in inputs:
        if not (isinstance(x, Tensor) and x.requires_grad):
            jac.append(None)
            continue
        cols = np.zeros((x._a.size, sum(o._a.size for o in out0)))
        for j in range(x._a.size):
            at = np.unravel_index(j, x._a.shape)     # perturb in place (any memory layout)
            orig = x._a[at]
            with no_grad():
                x._a[at] = orig + eps
                plus = np.concatenate([o._a.reshape(-1) for o in _as_tuple(fn(*inputs))])
                x._a[at] = orig - eps
                minus = np.concatenate([o._a.reshape(-1) for o in _as_tuple(fn(*inputs))])
            x._a[at] = orig
            cols[j] = (plus - minus) / (2 * eps)
        jac.append(cols)
    return jac


def analytical_jacobian(fn, inputs):
    outs = _as_tuple(fn(*inputs))
    diff = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    total = sum(o._a.size for o in outs)
    jac = [np.zeros((x._a.size, total)) for x in diff]
    col = 0
    for o in outs:
        if not o.requires_grad:     # as PyTorch's: its Jacobian is zero (the numerical must be too)
            col += o._a.size
            continue
        for k in range(o._a.size):
            seed = np.zeros(o._a.size, o._a.dtype)
            seed[k] = 1
            gs = grad([o], diff, [_wrap(seed.reshape(o._a.shape))], retain_graph=True, allow_unused=True)
            for j, gx in enumerate(gs):
                if gx is not None:
                    jac[j][:, col] = gx._a.reshape(-1)
            col += 1
    return jac


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **_ignored):
    """Compare analytical and central-difference Jacobians of fn at inputs (float64 expected).

    Returns True, or raises GradcheckError naming the input and the worst element.
    """
    inputs = _as_tuple(inputs)
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad and x.dtype.name != "float64":
            import warnings
            warnings.warn("Input #0 requires gradient and is not a double precision floating point. "
                          "gradcheck is only reliable in float64.", UserWarning)
    numeric = [j for j in numerical_jacobian(fn, inputs, eps) if j is not None]
    analytic = analytical_jacobian(fn, inputs)
    for i, (n, a) in enumerate(zip(numeric, analytic)):
        bad = ~np.isclose(a, n, rtol=rtol, atol=atol)
        if bad.any():
            k = np.unravel_index(np.argmax(np.abs(a - n) * bad), a.shape)
            msg = (f"Jacobian mismatch for output 0 with respect to input {i},\n"
                   f"worst element (input element {k[0]}, output element {k[1]}): "
                   f"analytical {a[k]:.10g} vs numerical {n[k]:.10g}\n"
                   f"numerical:{n}\nanalytical:{a}\n")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, **_ignored):
    """Check the second derivatives of func at inputs: gradcheck of the function that maps
    (inputs, grad_outputs) to the gradients of func's outputs, taken with create_graph=True.

    grad_outputs default to random float64 tensors requiring grad, as torch's."""
    inputs = _as_tuple(inputs)
    outputs = _as_tuple(func(*inputs))
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(_wrap(rng.standard_normal(o._a.shape).astype(o._a.dtype), True)
                             for o in outputs if o.requires_grad)
    else:
        grad_outputs = _as_tuple(grad_outputs)
    n = len(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]

    def first_derivatives(*args):
        xs, gs = args[:n], args[n:]
        with enable_grad():      # numerical_jacobian calls it under no_grad
            outs = [o for o in _as_tuple(func(*xs)) if o.requires_grad]
            got = grad(outs, [xs[i] for i in diff], gs, create_graph=True, allow_unused=True)
        return tuple(g for g in got if g is not None)

    return gradcheck(first_derivatives, inputs + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, raise_exception=raise_exception)
