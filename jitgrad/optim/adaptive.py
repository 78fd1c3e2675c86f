"""Adagrad, Adamax, NAdam, RAdam, Adadelta, ASGD and Rprop, as torch.optim's.

These update each parameter with numpy, in place on the parameter's own storage (the slice the
base class would hand a compiled kernel), rather than with a compiled kernel per optimizer: they
are rarely the hot loop, and numpy's element-wise operations in PyTorch's order (``add(alpha)`` is
``p + alpha * x``, ``addcmul`` is ``p + value * a * b``, ``addcdiv`` is ``p + value * a / b``,
``lerp`` picks one of its two formulas by the weight) agree with PyTorch's single-tensor CPU code to
rounding in float64. Python float scalars stay weak under numpy, so float32 parameters update in
float32 as in PyTorch. Scalar state PyTorch keeps as tensors of its scalar dtype (``step``,
NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``) is float32 here too, rounded as there.
"""
import numpy as np

from .optimizer import Optimizer
from ..tensor import _wrap

__all__ = ["Adagrad", "Adamax", "NAdam", "RAdam", "Adadelta", "ASGD", "Rprop"]


def _check(ok, what, value):
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def _check_betas(betas):
    _check(0.0 <= betas[0] < 1.0, "beta parameter at index 0", betas[0])
    _check(0.0 <= betas[1] < 1.0, "beta parameter at index 1", betas[1])


def _lerp(start, end, weight):
    """torch.lerp's formula: exact at both ends."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def _scalar(value):
    """A float32 0-d state tensor (PyTorch's scalar dtype for state)."""
    return _wrap(np.array(value, np.float32))


class _NumpyOptimizer(Optimizer):
    """Subclasses define ``_param_step(p, grad, state, step, group, i, flat)``: update p (the
    parameter's array, written in place) from grad; ``state`` maps each name of
    ``_state_names(group)`` to the parameter's slice of that buffer (param-shaped, live)."""

    _extra = ()                  # 0-d state entries kept in optimizer.state[p] itself

    def _update(self, flat, g):
        names = self._state_names(g)
        for i in np.flatnonzero(flat.active):
            param = flat.params[i]
            p = flat.staged.get(i)
            if p is None:
                p = flat.arrays[i]
            grad = param._grad._a
            if grad.dtype != p.dtype:
                grad = grad.astype(p.dtype)
            if g["maximize"]:
                grad = -grad
            a, e = flat.off[i], flat.off[i + 1]
            state = {name: flat.buf(name)[a:e].reshape(p.shape) for name in names}
            if not flat.known[i]:
                self._init_state(state, g)
                self.state[param].setdefault("step", None)   # PyTorch's key order: step first
            flat.steps[i] += 1
            self._param_step(p, grad, state, float(flat.steps[i]), g, self.state[param])

    def _init_state(self, state, group):
        pass

    def _make_state(self, flat, group, only=None):
        super()._make_state(flat, group, only)
        for p in flat.params:            # entries loaded without the 0-d state start afresh
            st = self.state.get(p)
            if st:
                for name, value in self._extra:
                    st.setdefault(name, _scalar(value(group)))


class Adagrad(_NumpyOptimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check(0.0 <= lr, "learning rate", lr)
        _check(0.0 <= lr_decay, "lr_decay value", lr_decay)
        _check(0.0 <= weight_decay, "weight_decay value", weight_decay)
        _check(0.0 <= initial_accumulator_value, "initial_accumulator_value value",
               initial_accumulator_value)
        _check(0.0 <= eps, "epsilon value", eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))
        for group, flats in zip(self.param_groups, self._flats):   # PyTorch makes state at once
            for flat in flats:
                flat.buf("sum")[:] = group["initial_accumulator_value"]
                self._make_state(flat, group, only=range(len(flat.params)))

    def _state_names(self, group):
        return ("sum",)

    def _init_state(self, state, g):
        state["sum"][...] = g["initial_accumulator_value"]

    def _param_step(self, p, grad, s, step, g, st):
        if g["weight_decay"] != 0:
            grad = grad + g["weight_decay"] * p
        clr = g["lr"] / (1 + (step - 1) * g["lr_decay"])
        s["sum"][...] = s["sum"] + grad * grad
        p[...] = p + -clr * grad / (np.sqrt(s["sum"]) + g["eps"])


class Adamax(_NumpyOptimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None,
                 *, maximize=False, differentiable=False, capturable=False):
        _check(0.0 <= lr, "learning rate", lr)
        _check(0.0 <= eps, "epsilon value", eps)
        _check_betas(betas)
        _check(0.0 <= weight_decay, "weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, capturable=capturable))

    def _state_names(self, group):
        return ("exp_avg", "exp_inf")

    def _param_step(self, p, grad, s, step, g, st):
        b1, b2 = g["betas"]
        if g["weight_decay"] != 0:
            grad = grad + g["weight_decay"] * p
        m = s["exp_avg"]
        m[...] = _lerp(m, grad, 1 - b1)
        s["exp_inf"][...] = np.maximum(s["exp_inf"] * b2, np.abs(grad) + g["eps"])
        clr = g["lr"] / (1 - b1 ** step)
        p[...] = p + -clr * m / s["exp_inf"]


class NAdam(_NumpyOptimizer):
    _extra = (("mu_product", lambda g: 1.0),)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        _check(0.0 <= lr, "learning rate", lr)
        _check(0.0 <= eps, "epsilon value", eps)
        _check_betas(betas)
        _check(0.0 <= weight_decay, "weight_decay value", weight_decay)
        _check(0.0 <= momentum_decay, "momentum_decay value", momentum_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable))

    def _state_names(self, group):
        return ("exp_avg", "exp_avg_sq")

    def _param_step(self, p, grad, s, step, g, st):
        b1, b2 = g["betas"]
        lr, wd, md = g["lr"], g["weight_decay"], g["momentum_decay"]
        bc2 = 1 - b2 ** step
        if wd != 0:
            if g["decoupled_weight_decay"]:
                p[...] = p * (1 - lr * wd)
            else:
                grad = grad + wd * p
        mu = b1 * (1.0 - 0.5 * (0.96 ** (step * md)))
        mu_next = b1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * md)))
        prev = st.get("mu_product")
        mu_product = np.float32(1.0 if prev is None else prev._a) * np.float32(mu)
        st["mu_product"] = _scalar(mu_product)      # replaced, never written: it may be shared
        m, v = s["exp_avg"], s["exp_avg_sq"]
        m[...] = _lerp(m, grad, 1 - b1)
        v[...] = v * b2 + (1 - b2) * grad * grad
        denom = np.sqrt(v / bc2) + g["eps"]
        mu_product = float(mu_product)
        mu_product_next = mu_product * mu_next
        p[...] = p + (-lr * (1.0 - mu) / (1.0 - mu_product)) * grad / denom
        p[...] = p + ((-lr * mu_next) / (1.0 - mu_product_next)) * m / denom


class RAdam(_NumpyOptimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        _check(0.0 <= lr, "learning rate", lr)
        _check(0.0 <= eps, "epsilon value", eps)
        _check_betas(betas)
        _check(0.0 <= weight_decay, "weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      differentiable=differentiable))

    def _state_names(self, group):
        return ("exp_avg", "exp_avg_sq")

    def _param_step(self, p, grad, s, step, g, st):
        b1, b2 = g["betas"]
        lr, wd = g["lr"], g["weight_decay"]
        if wd != 0:
            if g["decoupled_weight_decay"]:
                p[...] = p * (1 - lr * wd)
            else:
                grad = grad + wd * p
        m, v = s["exp_avg"], s["exp_avg_sq"]
        m[...] = _lerp(m, grad, 1 - b1)
        v[...] = v * b2 + (1 - b2) * grad * grad
        bc1 = 1 - b1 ** step
        bc2 = 1 - b2 ** step
        corrected = m / bc1
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * (b2 ** step) / bc2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = (bc2 ** 0.5) / (np.sqrt(v) + g["eps"])
            p[...] = p - corrected * lr * adaptive * rect
        else:
            p[...] = p - corrected * lr


class Adadelta(_NumpyOptimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        _check(0.0 <= lr, "learning rate", lr)
        _check(0.0 <= rho <= 1.0, "rho value", rho)
        _check(0.0 <= eps, "epsilon value", eps)
        _check(0.0 <= weight_decay, "weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, capturable=capturable, foreach=foreach,
                                      differentiable=differentiable))

    def _state_names(self, group):
        return ("square_avg", "acc_delta")

    def _param_step(self, p, grad, s, step, g, st):
        rho, eps = g["rho"], g["eps"]
        if g["weight_decay"] != 0:
            grad = grad + g["weight_decay"] * p
        sq, acc = s["square_avg"], s["acc_delta"]
        sq[...] = sq * rho + (1 - rho) * grad * grad
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * grad
        acc[...] = acc * rho + (1 - rho) * delta * delta
        p[...] = p + -g["lr"] * delta


class ASGD(_NumpyOptimizer):
    _extra = (("eta", lambda g: g["lr"]), ("mu", lambda g: 1.0))

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0,
                 foreach=None, maximize=False, differentiable=False, capturable=False):
        _check(0.0 <= lr, "learning rate", lr)
        _check(0.0 <= weight_decay, "weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                                      weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, capturable=capturable))

    def _state_names(self, group):
        return ("ax",)

    def _param_step(self, p, grad, s, step, g, st):
        lr, lambd = g["lr"], g["lambd"]
        eta = float(st["eta"]._a) if "eta" in st else float(np.float32(lr))
        mu = float(st["mu"]._a) if "mu" in st else 1.0
        if g["weight_decay"] != 0:
            grad = grad + g["weight_decay"] * p
        p[...] = p * (1 - lambd * eta)
        p[...] = p + -eta * grad
        ax = s["ax"]
        if mu != 1:
            ax[...] = ax + (p - ax) * mu
        else:
            ax[...] = p
        st["eta"] = _scalar(lr / ((1 + lambd * lr * step) ** g["alpha"]))
        st["mu"] = _scalar(1 / max(1, step - g["t0"]))


class Rprop(_NumpyOptimizer):
    """Resilient backpropagation: a step size per element, grown by etas[1] while the gradient
    keeps its sign and shrunk by etas[0] (skipping that element's update) when it flips."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False,
                 foreach=None, maximize=False, differentiable=False):
        _check(0.0 <= lr, "learning rate", lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        super().__init__(params, dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def _state_names(self, group):
        return ("prev", "step_size")

    def _init_state(self, state, g):
        state["step_size"][...] = g["lr"]

    def _param_step(self, p, grad, s, step, g, st):
        etaminus, etaplus = g["etas"]
        lo, hi = g["step_sizes"]
        sign = np.sign(grad * s["prev"])
        factor = np.where(sign > 0, etaplus, np.where(sign < 0, etaminus, 1.0)).astype(p.dtype)
        s["step_size"][...] = np.clip(s["step_size"] * factor, lo, hi)
        grad = np.where(factor == etaminus, 0, grad).astype(p.dtype)
        p[...] = p + -1 * np.sign(grad) * s["step_size"]
        s["prev"][...] = grad
