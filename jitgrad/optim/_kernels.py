"""The compiled optimizer updates: one call updates every parameter of a group.

The parameters and their gradients stay in their own storage: a step receives their addresses
(``paddr[i]``, ``gaddr[i]``, contiguous, checked in Python) and updates each parameter in place, so
every alias of a parameter (its base, ``.data``, numpy views) sees the update, as in PyTorch.
Optimizer state (momentum, moments) lives in flat buffers; ``off[i]:off[i+1]`` is parameter i's
element range in them and ``active[i]`` says whether it has a gradient this step (PyTorch skips
parameters whose ``.grad`` is None, state included). ``like`` is an empty array of the parameters'
dtype. Hyperparameters arrive as a float64 array and are rounded once to the parameters' dtype,
as PyTorch rounds a Python scalar to the tensor's dtype; a bare float literal would turn float32
arithmetic into float64 under Numba.

The element-wise expressions follow PyTorch's single-tensor CPU code operation by operation
(``add(alpha)``, ``addcmul``, ``addcdiv``, ``lerp``) so float64 results agree to rounding.
Inner loops run over per-parameter slices with the constants in locals and the options decided
outside them, and error_model="numpy" (IEEE division, as torch) instead of Python's zero-division
check, so LLVM vectorises them. Everything Numba compiles for the optimizers lives in this file,
so its on-disk cache is exact.
"""
import ctypes
import sys

import numpy as np
from numba import carray, config, njit, types
from numba.extending import intrinsic

from ..engine.codegen import load_lightly
from ..engine.replay import P_K

if config.DISABLE_JIT:          # plain Python (NUMBA_DISABLE_JIT=1): the same memory via ctypes
    def _span(address, n, like):
        """The n elements of like's dtype at address, as a 1-d array over that memory."""
        return np.frombuffer((ctypes.c_char * int(n * like.itemsize)).from_address(int(address)),
                             like.dtype)
else:
    @intrinsic
    def _pointer(typingctx, address, like):
        """address (an int64) as a pointer to like's element type."""
        ptr = types.CPointer(like.dtype)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr))
        return ptr(address, like), codegen

    @njit(cache=True, error_model="numpy")
    def _span(address, n, like):
        """The n elements of like's dtype at address, as a 1-d array over that memory."""
        return carray(_pointer(address, like), n)


@njit(cache=True, error_model="numpy")
def address(a):
    """Where a's first element is (a is contiguous)."""
    return a.ctypes.data


@njit(cache=True, error_model="numpy")
def _typed(like, values):
    """values (float64) rounded to like's dtype."""
    c = np.empty(values.size, like.dtype)
    for k in range(values.size):
        c[k] = values[k]
    return c


@njit(cache=True, error_model="numpy")
def sgd_step(paddr, gaddr, buf, has_buf, off, active, hp, like):
    """hp: lr, momentum, dampening, weight_decay, nesterov, maximize."""
    c = _typed(like, np.array([-hp[0], hp[1], 1.0 - hp[2], hp[3], -1.0 if hp[5] != 0.0 else 1.0]))
    alpha, mom, damp1, wd, sgn = c[0], c[1], c[2], c[3], c[4]
    momentum = hp[1] != 0.0
    decay = hp[3] != 0.0
    nesterov = hp[4] != 0.0
    for i in range(active.size):
        if not active[i]:
            continue
        pp = _span(paddr[i], off[i + 1] - off[i], like)
        gg = _span(gaddr[i], off[i + 1] - off[i], like)
        if not momentum:
            if decay:
                for j in range(pp.size):
                    pp[j] = pp[j] + alpha * (gg[j] * sgn + wd * pp[j])
            else:
                for j in range(pp.size):
                    pp[j] = pp[j] + alpha * (gg[j] * sgn)
            continue
        bb = buf[off[i]: off[i + 1]]
        fresh = not has_buf[i]
        has_buf[i] = 1
        for j in range(pp.size):
            d = gg[j] * sgn
            if decay:
                d = d + wd * pp[j]
            b = d if fresh else bb[j] * mom + damp1 * d
            bb[j] = b
            d = d + mom * b if nesterov else b
            pp[j] = pp[j] + alpha * d


@njit(cache=True, error_model="numpy")
def adam_step(paddr, gaddr, m, v, vmax, steps, off, active, hp, like):
    """Adam and AdamW. hp: lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled."""
    lr, b1, b2, wd = hp[0], hp[1], hp[2], hp[4]
    amsgrad = hp[5] != 0.0
    decoupled = hp[7] != 0.0
    decay = wd != 0.0 and not decoupled
    shrink = wd != 0.0 and decoupled
    small = abs(1.0 - b1) < 0.5            # which of lerp's two formulas torch uses
    c = _typed(like, np.array([1.0 - lr * wd, wd, 1.0 - b1, 1.0, b2, 1.0 - b2, hp[3],
                            -1.0 if hp[6] != 0.0 else 1.0]))
    dec, wdt, w, one, b2t, b2c, eps, sgn = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    w1 = one - w                           # lerp's 1 - weight, in the parameters' dtype
    s = np.empty(2, like.dtype)
    for i in range(active.size):
        if not active[i]:
            continue
        steps[i] += 1
        t = np.float64(steps[i])
        s[0] = (1.0 - b2 ** t) ** 0.5      # bias_correction2 ** 0.5
        s[1] = -(lr / (1.0 - b1 ** t))     # -step_size
        bc2, nss = s[0], s[1]
        a, e = off[i], off[i + 1]
        pp, gg = _span(paddr[i], e - a, like), _span(gaddr[i], e - a, like)
        mm, vv = m[a:e], v[a:e]
        if shrink:                          # AdamW: param.mul_(1 - lr * weight_decay) first
            for j in range(pp.size):
                pp[j] = pp[j] * dec
        if amsgrad:
            vm = vmax[a:e]
            for j in range(pp.size):
                d = gg[j] * sgn
                if decay:
                    d = d + wdt * pp[j]
                mj = mm[j] + w * (d - mm[j]) if small else d - (d - mm[j]) * w1
                mm[j] = mj
                vj = vv[j] * b2t + b2c * d * d
                vv[j] = vj
                if vj > vm[j] or vj != vj:
                    vm[j] = vj
                pp[j] = pp[j] + nss * mj / (np.sqrt(vm[j]) / bc2 + eps)
        elif decay or not small:
            for j in range(pp.size):
                d = gg[j] * sgn
                if decay:
                    d = d + wdt * pp[j]
                mj = mm[j] + w * (d - mm[j]) if small else d - (d - mm[j]) * w1
                mm[j] = mj
                vj = vv[j] * b2t + b2c * d * d
                vv[j] = vj
                pp[j] = pp[j] + nss * mj / (np.sqrt(vj) / bc2 + eps)
        else:                               # the default configuration, branch-free
            for j in range(pp.size):
                d = gg[j] * sgn
                mj = mm[j] + w * (d - mm[j])
                mm[j] = mj
                vj = vv[j] * b2t + b2c * d * d
                vv[j] = vj
                pp[j] = pp[j] + nss * mj / (np.sqrt(vj) / bc2 + eps)


@njit(cache=True, error_model="numpy")
def rmsprop_step(paddr, gaddr, sq, gavg, buf, steps, off, active, hp, like):
    """hp: lr, alpha, eps, weight_decay, momentum, centered, maximize."""
    c = _typed(like, np.array([hp[1], 1.0 - hp[1], hp[2], hp[3], hp[4], -hp[0],
                            -1.0 if hp[6] != 0.0 else 1.0, 1.0]))
    al, al1, eps, wd, mom, nlr, sgn, one = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    w1 = one - al1                         # lerp's 1 - weight for grad_avg, in the params' dtype
    small = abs(1.0 - hp[1]) < 0.5
    decay = hp[3] != 0.0
    momentum = hp[4] > 0.0
    centered = hp[5] != 0.0
    for i in range(active.size):
        if not active[i]:
            continue
        steps[i] += 1
        a, e = off[i], off[i + 1]
        pp, gg = _span(paddr[i], e - a, like), _span(gaddr[i], e - a, like)
        ss = sq[a:e]
        if not (decay or momentum or centered):     # the default configuration
            for j in range(pp.size):
                d = gg[j] * sgn
                sj = ss[j] * al + al1 * d * d
                ss[j] = sj
                pp[j] = pp[j] + nlr * d / (np.sqrt(sj) + eps)
            continue
        ga = gavg[a:e] if centered else gavg
        bb = buf[a:e] if momentum else buf
        for j in range(pp.size):
            d = gg[j] * sgn
            if decay:
                d = d + wd * pp[j]
            sj = ss[j] * al + al1 * d * d
            ss[j] = sj
            if centered:
                gj = ga[j] + al1 * (d - ga[j]) if small else d - (d - ga[j]) * w1
                ga[j] = gj
                avg = np.sqrt(sj - gj * gj) + eps
            else:
                avg = np.sqrt(sj) + eps
            if momentum:
                bj = bb[j] * mom + d / avg
                bb[j] = bj
                pp[j] = pp[j] + nlr * bj
            else:
                pp[j] = pp[j] + nlr * d / avg


# ---- the steps as instructions of a compiled replay --------------------------------------------
# jitgrad.compile runs ``optimizer.step()`` inside the compiled call that computed the gradients
# when it can (see Optimizer._replay_step): one instruction per group and dtype, calling these
# through the replay's forward-kernel signature (engine/replay.py). The instruction's int data,
# pints[prog[j, P_K]:], is the (address, size) of each argument of the step: paddr, gaddr, off,
# active, hp, then the optimizer's state arrays.

@njit(cache=True, error_model="numpy")
def _arg(d, k, like):
    """Argument k of a step instruction's int data d, as an array of like's dtype."""
    return _span(d[2 * k], d[2 * k + 1], like)


@njit(cache=True, error_model="numpy")
def sgd_in_replay(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    """sgd_step; state: the momentum buffer, has_buf."""
    d = pints[prog[j, P_K]:]
    i64, u8, like = np.empty(0, np.int64), np.empty(0, np.uint8), v[:0]
    sgd_step(_arg(d, 0, i64), _arg(d, 1, i64), _arg(d, 5, like), _arg(d, 6, u8), _arg(d, 2, i64),
             _arg(d, 3, u8), _arg(d, 4, np.empty(0, np.float64)), like)


@njit(cache=True, error_model="numpy")
def adam_in_replay(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    """adam_step; state: exp_avg, exp_avg_sq, max_exp_avg_sq, steps."""
    d = pints[prog[j, P_K]:]
    i64, u8, like = np.empty(0, np.int64), np.empty(0, np.uint8), v[:0]
    adam_step(_arg(d, 0, i64), _arg(d, 1, i64), _arg(d, 5, like), _arg(d, 6, like), _arg(d, 7, like),
              _arg(d, 8, np.empty(0, np.float32)), _arg(d, 2, i64), _arg(d, 3, u8),
              _arg(d, 4, np.empty(0, np.float64)), like)


load_lightly(sys.modules[__name__])
