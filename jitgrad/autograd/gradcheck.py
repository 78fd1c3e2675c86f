"""Finite-difference gradient check in float64, the correctness oracle for every rule."""
import numpy as np

from ..tensor import Tensor, _wrap


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return (x,) if isinstance(x, Tensor) else tuple(x)


def numerical_jacobian(fn, inputs, eps=1e-6):
    """Central differences: one column block per input element."""
    from . import no_grad
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
    from . import grad
    outs = _as_tuple(fn(*inputs))
    diff = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    total = sum(o._a.size for o in outs)
    jac = [np.zeros((x._a.size, total)) for x in diff]
    col = 0
    for o in outs:
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
