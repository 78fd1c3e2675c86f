"""The compiled optimizer updates: one call updates every parameter of a group.

Each optimizer keeps its parameters (and their state) in flat contiguous buffers; ``off[i]:off[i+1]``
is parameter i's slice and ``active[i]`` says whether it has a gradient this step (PyTorch skips
parameters whose ``.grad`` is None, state included). Hyperparameters arrive as a float64 array and
are rounded once to the parameters' dtype in ``c``, as PyTorch rounds a Python scalar to the
tensor's dtype; a bare float literal would turn float32 arithmetic into float64 under Numba.

The element-wise expressions follow PyTorch's single-tensor CPU code operation by operation
(``add(alpha)``, ``addcmul``, ``addcdiv``, ``lerp``) so float64 results agree to rounding.
Everything Numba compiles for the optimizers lives in this file, so its on-disk cache is exact.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _lerp(a, b, w, w1, small):
    # torch.lerp(a, b, w): a + w * (b - a) if |w| < 0.5 else b - (b - a) * (1 - w)
    if small:
        return a + w * (b - a)
    return b - (b - a) * w1


@njit(cache=True)
def sgd_step(p, g, buf, has_buf, off, active, hp):
    """hp: lr, momentum, dampening, weight_decay, nesterov, maximize."""
    c = np.empty(4, p.dtype)
    c[0] = -hp[0]            # alpha of param.add_(grad, alpha=-lr)
    c[1] = hp[1]             # momentum
    c[2] = 1.0 - hp[2]       # alpha of buf.add_(grad, alpha=1 - dampening)
    c[3] = hp[3]             # weight decay
    momentum = hp[1] != 0.0
    decay = hp[3] != 0.0
    nesterov = hp[4] != 0.0
    maximize = hp[5] != 0.0
    for i in range(active.size):
        if not active[i]:
            continue
        fresh = not has_buf[i]
        has_buf[i] = 1
        for j in range(off[i], off[i + 1]):
            d = -g[j] if maximize else g[j]
            if decay:
                d = d + c[3] * p[j]
            if momentum:
                b = d if fresh else buf[j] * c[1] + c[2] * d
                buf[j] = b
                d = d + c[1] * b if nesterov else b
            p[j] = p[j] + c[0] * d


@njit(cache=True)
def adam_step(p, g, m, v, vmax, steps, off, active, hp):
    """Adam and AdamW. hp: lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled."""
    c = np.empty(9, p.dtype)
    lr, b1, b2, wd = hp[0], hp[1], hp[2], hp[4]
    amsgrad = hp[5] != 0.0
    maximize = hp[6] != 0.0
    decoupled = hp[7] != 0.0
    decay = wd != 0.0
    c[0] = 1.0 - lr * wd     # param.mul_(1 - lr * weight_decay)         (AdamW)
    c[1] = wd                # grad.add(param, alpha=weight_decay)       (Adam)
    c[2] = 1.0 - b1          # exp_avg.lerp_(grad, 1 - beta1)
    c[3] = b1                # 1 - (1 - beta1), lerp's other branch
    c[4] = b2                # exp_avg_sq.mul_(beta2)
    c[5] = 1.0 - b2          # .addcmul_(grad, grad, value=1 - beta2)
    c[6] = hp[3]             # eps
    small = abs(1.0 - b1) < 0.5
    for i in range(active.size):
        if not active[i]:
            continue
        steps[i] += 1
        t = np.float64(steps[i])
        c[7] = (1.0 - b2 ** t) ** 0.5      # bias_correction2 ** 0.5
        c[8] = -(lr / (1.0 - b1 ** t))     # -step_size
        for j in range(off[i], off[i + 1]):
            d = -g[j] if maximize else g[j]
            if decay:
                if decoupled:
                    p[j] = p[j] * c[0]
                else:
                    d = d + c[1] * p[j]
            mj = _lerp(m[j], d, c[2], c[3], small)
            m[j] = mj
            vj = v[j] * c[4] + c[5] * d * d
            v[j] = vj
            if amsgrad:
                if vj > vmax[j] or vj != vj:
                    vmax[j] = vj
                vj = vmax[j]
            denom = np.sqrt(vj) / c[7] + c[6]
            p[j] = p[j] + c[8] * mj / denom


@njit(cache=True)
def rmsprop_step(p, g, sq, gavg, buf, steps, off, active, hp):
    """hp: lr, alpha, eps, weight_decay, momentum, centered, maximize."""
    c = np.empty(7, p.dtype)
    c[0] = hp[1]             # square_avg.mul_(alpha)
    c[1] = 1.0 - hp[1]       # .addcmul_(grad, grad, value=1 - alpha); grad_avg.lerp_(grad, 1 - alpha)
    c[2] = hp[2]             # eps
    c[3] = hp[3]             # weight decay
    c[4] = hp[4]             # momentum
    c[5] = -hp[0]            # -lr
    c[6] = hp[1]             # 1 - (1 - alpha), lerp's other branch
    small = abs(1.0 - hp[1]) < 0.5
    decay = hp[3] != 0.0
    momentum = hp[4] > 0.0
    centered = hp[5] != 0.0
    maximize = hp[6] != 0.0
    for i in range(active.size):
        if not active[i]:
            continue
        steps[i] += 1
        for j in range(off[i], off[i + 1]):
            d = -g[j] if maximize else g[j]
            if decay:
                d = d + c[3] * p[j]
            s = sq[j] * c[0] + c[1] * d * d
            sq[j] = s
            if centered:
                ga = _lerp(gavg[j], d, c[1], c[6], small)
                gavg[j] = ga
                avg = np.sqrt(s - ga * ga) + c[2]
            else:
                avg = np.sqrt(s) + c[2]
            if momentum:
                b = buf[j] * c[4] + d / avg
                buf[j] = b
                p[j] = p[j] + c[5] * b
            else:
                p[j] = p[j] + c[5] * d / avg
