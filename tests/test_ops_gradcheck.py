"""Generated from the op table: gradcheck every sample of every op in float64, compare values and
gradients with PyTorch when it is installed, and check that every registered op has samples."""
import numpy as np
import pytest

import jitgrad
from jitgrad import ops
from jitgrad.autograd import gradcheck
from jitgrad.engine import registry
from jitgrad.engine.tape import TAPE

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None

CASES = [(fn, i, case) for fn, cases in ops.SAMPLES.items() for i, case in enumerate(cases)]
IDS = [f"{fn.__name__}-{i}" for fn, i, _ in CASES]


def make_inputs(case, seed, transposed=False):
    """Materialise a sample case: returns (args, kwargs, tensor positions)."""
    rng = np.random.default_rng(seed)
    kwargs = case[-1] if case and isinstance(case[-1], dict) else {}
    args, where = [], []
    for k, a in enumerate(case[:len(case) - bool(kwargs)]):
        if isinstance(a, tuple):
            v = rng.standard_normal(a)
            if isinstance(a, ops.Pos):
                v = np.abs(v) + 0.5
            elif isinstance(a, ops.NonZero):
                v = np.sign(v + 1e-3) * (np.abs(v) + 0.5)
            if transposed and v.ndim == 2:
                v = np.ascontiguousarray(v.T).T      # same values, Fortran order (non-contiguous)
            args.append(v)
            where.append(k)
        else:
            args.append(a)
    return args, kwargs, where


def jg_call(fn, args, kwargs, where, values):
    full = list(args)
    for k, v in zip(where, values):
        full[k] = v
    return fn(*full, **kwargs)


@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_gradcheck(fn, i, case):
    args, kwargs, where = make_inputs(case, seed=i)
    inputs = [jitgrad.tensor(args[k], dtype=jitgrad.float64, requires_grad=True) for k in where]
    assert gradcheck(lambda *ts: jg_call(fn, args, kwargs, where, ts), inputs,
                     eps=ops.SAMPLE_EPS.get(fn, 1e-6), atol=1e-6, rtol=1e-5)


NON_CONTIGUOUS = [c for c in CASES if any(isinstance(a, tuple) and len(a) == 2 and min(a) > 1
                                           for a in c[2])]


@pytest.mark.parametrize("fn,i,case", NON_CONTIGUOUS,
                         ids=[f"{fn.__name__}-{i}" for fn, i, _ in NON_CONTIGUOUS])
def test_gradcheck_non_contiguous(fn, i, case):
    args, kwargs, where = make_inputs(case, seed=i, transposed=True)
    inputs = [jitgrad.tensor(args[k], dtype=jitgrad.float64, requires_grad=True) for k in where]
    assert not all(t._a.flags.c_contiguous for t in inputs)
    if fn is ops.view:
        with pytest.raises(RuntimeError, match="view size is not compatible"):
            jg_call(fn, args, kwargs, where, inputs)
        return
    assert gradcheck(lambda *ts: jg_call(fn, args, kwargs, where, ts), inputs,
                     eps=ops.SAMPLE_EPS.get(fn, 1e-6), atol=1e-6, rtol=1e-5)


TORCH_NAMES = {"T_": lambda x: x.T, "rsub": lambda x, y: y - x, "rdiv": lambda x, y: y / x,
               "_rpow_fn": lambda x, c: c ** x, "copy_into_copy": lambda x, y: (x * 1).copy_(y),
               "binary_cross_entropy_with_logits": "nn.functional.binary_cross_entropy_with_logits"}


def torch_fn(fn):
    name = TORCH_NAMES.get(fn.__name__, fn.__name__)
    if callable(name):
        return name
    if hasattr(torch.Tensor, name):      # methods take sizes and dims as varargs, as ours do
        return getattr(torch.Tensor, name)
    obj = torch
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def to_torch_arg(a):
    if isinstance(a, jitgrad.dtype):
        return getattr(torch, a.name)
    return a


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_matches_torch(fn, i, case):
    args, kwargs, where = make_inputs(case, seed=100 + i)
    jx = [jitgrad.tensor(args[k], dtype=jitgrad.float64, requires_grad=True) for k in where]
    tx = [torch.tensor(args[k], dtype=torch.float64, requires_grad=True) for k in where]
    jout = jg_call(fn, args, kwargs, where, jx)
    targs = [to_torch_arg(a) for a in args]
    tout = jg_call(torch_fn(fn), targs, kwargs, where, tx)
    assert tuple(jout.shape) == tuple(tout.shape)
    assert jout.dtype.name == str(tout.dtype).replace("torch.", "")
    np.testing.assert_allclose(jout.detach().numpy(), tout.detach().numpy(), rtol=1e-9, atol=1e-12)
    if tout.grad_fn is not None:
        assert type(jout.grad_fn).__name__ == type(tout.grad_fn).__name__
    seed = np.random.default_rng(i).standard_normal(tuple(tout.shape))
    jout.backward(jitgrad.tensor(seed, dtype=jout.dtype))
    tout.backward(torch.tensor(seed, dtype=tout.dtype))
    for a, b in zip(jx, tx):
        if b.grad is None:
            assert a.grad is None or not a.grad.numpy().any()
        else:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_every_registered_op_has_samples():
    """Run every sample and collect the op codes recorded; each op with a rule must appear."""
    seen = set()
    for fn, i, case in CASES:
        args, kwargs, where = make_inputs(case, seed=i)
        inputs = [jitgrad.tensor(args[k], dtype=jitgrad.float64, requires_grad=True) for k in where]
        out = jg_call(fn, args, kwargs, where, inputs)
        with TAPE.lock:
            if out._node >= 0:
                rows = np.frombuffer(TAPE.rows, np.int64).reshape(-1, 9)
                seen.update(rows[: out._node + 1, 0].tolist())
    missing = [op.grad_fn for op in registry.OPS
               if op.rule is not None and op.code not in seen and op.grad_fn is not None]
    assert not missing, f"ops without samples: {missing}"
