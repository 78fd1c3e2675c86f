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


def _value(a, rng, transposed):
    if isinstance(a, ops.Given):
        return np.array(a.values, np.float64)
    v = rng.standard_normal(a)
    if isinstance(a, ops.Pos):
        v = np.abs(v) + 0.5
    elif isinstance(a, ops.NonZero):
        v = np.sign(v + 1e-3) * (np.abs(v) + 0.5)
    elif isinstance(a, ops.Unit):
        v = 0.1 + 0.8 * rng.random(a)
    if transposed and v.ndim == 2:
        v = np.ascontiguousarray(v.T).T      # same values, Fortran order (non-contiguous)
    return v


def make_inputs(case, seed, transposed=False):
    """Materialise a sample case: returns (args, kwargs, where).

    A tuple (or Given) becomes a float64 array; a Seq of them a list of arrays. where lists the
    positions (k, i) of the arrays that become tensors requiring grad: args[k], or args[k][i].
    """
    rng = np.random.default_rng(seed)
    kwargs = case[-1] if case and isinstance(case[-1], dict) else {}
    args, where = [], []
    for k, a in enumerate(case[:len(case) - bool(kwargs)]):
        if isinstance(a, (tuple, ops.Given)):
            args.append(_value(a, rng, transposed))
            where.append((k, None))
        elif isinstance(a, ops.Seq):
            args.append([_value(e, rng, transposed) for e in a])
            where.extend((k, i) for i in range(len(a)))
        else:
            args.append(a)
    return args, kwargs, where


def _pick(args, where):
    return [args[k] if i is None else args[k][i] for k, i in where]


def jg_call(fn, args, kwargs, where, values):
    full = [list(a) if isinstance(a, list) else a for a in args]
    for (k, i), v in zip(where, values):
        if i is None:
            full[k] = v
        else:
            full[k][i] = v
    return fn(*full, **kwargs)


def as_outputs(out):
    """An op's result as a tuple of tensors (ops like max(dim) and split return several)."""
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def differentiable(fn):
    """fn restricted to its outputs that carry a gradient, for gradcheck."""
    def f(*ts):
        outs = tuple(o for o in as_outputs(fn(*ts)) if o.dtype.is_floating_point)
        return outs if len(outs) != 1 else outs[0]
    return f


def jg_inputs(args, where):
    return [jitgrad.tensor(v, dtype=jitgrad.float64, requires_grad=True) for v in _pick(args, where)]


@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_gradcheck(fn, i, case):
    args, kwargs, where = make_inputs(case, seed=i)
    inputs = jg_inputs(args, where)
    if not any(o.dtype.is_floating_point for o in as_outputs(jg_call(fn, args, kwargs, where, inputs))):
        return                            # argmax and friends: nothing to differentiate
    assert gradcheck(differentiable(lambda *ts: jg_call(fn, args, kwargs, where, ts)), inputs,
                     eps=ops.SAMPLE_EPS.get(fn, 1e-6), atol=1e-6, rtol=1e-5)


def _has_matrix(a):
    if isinstance(a, ops.Seq):
        return any(_has_matrix(e) for e in a)
    return isinstance(a, tuple) and len(a) == 2 and min(a) > 1


def _has_row(a):
    if isinstance(a, ops.Seq):
        return any(_has_row(e) for e in a)
    return isinstance(a, tuple) and len(a) >= 1 and a[-1] > 1


def _sliced(v):
    """The same values as a strided view (every other element of a wider array)."""
    big = np.zeros(v.shape[:-1] + (2 * v.shape[-1],))
    big[..., ::2] = v
    return big[..., ::2]


NON_CONTIGUOUS = [(fn, i, case, layout) for fn, i, case in CASES
                  for layout, ok in (("transposed", _has_matrix), ("sliced", _has_row))
                  if any(ok(a) for a in case)]


@pytest.mark.parametrize("fn,i,case,layout", NON_CONTIGUOUS,
                         ids=[f"{fn.__name__}-{i}-{lay}" for fn, i, _, lay in NON_CONTIGUOUS])
def test_gradcheck_non_contiguous(fn, i, case, layout):
    """Inputs whose storage is not C-ordered: transposed (Fortran order) or sliced with a step."""
    args, kwargs, where = make_inputs(case, seed=i, transposed=layout == "transposed")
    if layout == "transposed":
        inputs = jg_inputs(args, where)      # tensor() keeps the Fortran order of the values
    else:
        inputs = [jitgrad.from_numpy(_sliced(v) if np.ndim(v) and v.shape[-1] > 1 else np.array(v))
                  .requires_grad_() for v in _pick(args, where)]
    assert not all(t._a.flags.c_contiguous for t in inputs)
    if fn is ops.view:
        with pytest.raises(RuntimeError, match="view size is not compatible"):
            jg_call(fn, args, kwargs, where, inputs)
        return
    if not any(o.dtype.is_floating_point for o in as_outputs(jg_call(fn, args, kwargs, where, inputs))):
        return
    assert gradcheck(differentiable(lambda *ts: jg_call(fn, args, kwargs, where, ts)), inputs,
                     eps=ops.SAMPLE_EPS.get(fn, 1e-6), atol=1e-6, rtol=1e-5)


TORCH_NAMES = {"T_": lambda x: x.T, "rsub": lambda x, y: y - x, "rdiv": lambda x, y: y / x,
               "_rpow_fn": lambda x, c: c ** x, "copy_into_copy": lambda x, y: (x * 1).copy_(y),
               "_idx": lambda x, *key: x[key[0] if len(key) == 1 else key],
               "where": lambda *a: torch.where(*a), "einsum": lambda *a: torch.einsum(*a),
               "pad": "nn.functional.pad", "embedding": "nn.functional.embedding",
               "hstack": lambda ts: torch.hstack(ts), "vstack": lambda ts: torch.vstack(ts),
               "xlogy": lambda x, y: torch.xlogy(x, y)}


def _torch_set_case(x, *key_and_value):
    y = x * 1.0
    y[key_and_value[0] if len(key_and_value) == 2 else key_and_value[:-1]] = key_and_value[-1]
    return y


TORCH_NAMES["_set_case"] = _torch_set_case
TORCH_NAMES.update({f.__name__: f for f in ops.SAME_IN_TORCH})


def torch_fn(fn):
    """The PyTorch function an op mirrors: a mapped name, else the Tensor method (sizes and dims as
    varargs, as ours), torch.<name> or torch.nn.functional.<name> by where ours is defined (the
    losses of ops/losses.py are torch.nn.functional's)."""
    name = TORCH_NAMES.get(fn.__name__, fn.__name__)
    if callable(name):
        return name
    if name.startswith("_on_copy_"):      # an in-place method applied to a non-leaf copy
        method = getattr(torch.Tensor, name[len("_on_copy_"):])
        return lambda x, *args, **kwargs: method(x * 1.0, *args, **kwargs)
    if name.startswith("linalg_"):        # torch.linalg.X is torch._C._linalg.linalg_X
        return getattr(torch.linalg, name[len("linalg_"):])
    if fn.__module__.endswith(("functional", "losses")):
        return getattr(torch.nn.functional, name)
    if hasattr(torch.Tensor, name):
        return getattr(torch.Tensor, name)
    obj = torch
    for part in name.split("."):
        obj = getattr(obj, part, None) or getattr(torch.nn.functional, part)
    return obj


def to_torch_arg(a):
    if isinstance(a, jitgrad.dtype):
        return getattr(torch, a.name)
    if isinstance(a, jitgrad.Tensor):
        return torch.from_numpy(a._a.copy())
    if isinstance(a, list):
        return [to_torch_arg(e) for e in a]
    if isinstance(a, dict):
        return {k: to_torch_arg(v) for k, v in a.items()}
    return a


def compare_with_torch(fn, case, seed):
    args, kwargs, where = make_inputs(case, seed=seed)
    jx = jg_inputs(args, where)
    tx = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in _pick(args, where)]
    jouts = as_outputs(jg_call(fn, args, kwargs, where, jx))
    touts = as_outputs(jg_call(torch_fn(fn), to_torch_arg(args), to_torch_arg(kwargs), where, tx))
    assert len(jouts) == len(touts)
    jd, td, seeds = [], [], []
    rng = np.random.default_rng(seed)
    for jo, to in zip(jouts, touts):
        assert tuple(jo.shape) == tuple(to.shape)
        assert jo.dtype.name == str(to.dtype).replace("torch.", "")
        np.testing.assert_allclose(jo.detach().numpy(), to.detach().numpy(), rtol=1e-9, atol=1e-12)
        assert jo.requires_grad == to.requires_grad
        if to.grad_fn is not None:
            assert type(jo.grad_fn).__name__ == type(to.grad_fn).__name__
            seed_values = rng.standard_normal(tuple(to.shape))
            jd.append(jo)
            td.append(to)
            seeds.append(seed_values)
    if not td:
        return
    jitgrad.autograd.backward(jd, [jitgrad.tensor(v, dtype=o.dtype) for v, o in zip(seeds, jd)])
    torch.autograd.backward(td, [torch.tensor(v, dtype=o.dtype) for v, o in zip(seeds, td)])
    for a, b in zip(jx, tx):
        if b.grad is None:
            assert a.grad is None or not a.grad.numpy().any()
        else:
            assert a.grad is not None
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_matches_torch(fn, i, case):
    compare_with_torch(fn, case, 100 + i)


KINK_CASES = [(fn, i, case) for fn, cases in ops.KINKS.items() for i, case in enumerate(cases)]


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("fn,i,case", KINK_CASES, ids=[f"{fn.__name__}-{i}" for fn, i, _ in KINK_CASES])
def test_kinks_match_torch(fn, i, case):
    """At kinks and ties finite differences are meaningless; PyTorch's choice is the oracle."""
    compare_with_torch(fn, case, 100 + i)


def test_every_registered_op_has_samples():
    """Run every sample and collect the op codes recorded; each op with a rule must appear."""
    seen = set()
    for fn, i, case in CASES:
        args, kwargs, where = make_inputs(case, seed=i)
        for out in as_outputs(jg_call(fn, args, kwargs, where, jg_inputs(args, where))):
            with TAPE.lock:
                if out._node >= 0:
                    rows = np.frombuffer(TAPE.rows, np.int64).reshape(-1, 9)
                    seen.update(rows[: out._node + 1, 0].tolist())
    missing = [op.grad_fn for op in registry.OPS
               if op.rule is not None and op.code not in seen and op.grad_fn is not None]
    assert not missing, f"ops without samples: {missing}"


def test_saved_values_are_what_the_formulas_read():
    """An op declared saves_reads saves exactly the values its formulas read (registry.Op.saved),
    for each subset of inputs needing a gradient: the values the kernel reads are the formulas'.
    A condition (where, masked_fill) is the call's bool tensor, 0/1 at the output's shape."""
    from jitgrad.autograd.graph import _Reads
    from jitgrad.engine.loop import A, B, F_F64, FLAGS, OP, SAVED_AT
    from jitgrad.ops.linalg import PRODUCTS
    own_shapes = PRODUCTS | {ops.SCATTER_REDUCE}    # (x, src and out: each at its own shape)
    planned = {op.code for op in registry.OPS if op.plan is not None}
    checked = set()
    for fn, i, case in CASES:
        if fn.__module__ == "jitgrad.ops.inplace":    # (rows whose inputs are written later)
            continue
        args, kwargs, where = make_inputs(case, seed=i)
        for subset in ([True] * len(where), [True, False], [False, True])[:3 if len(where) == 2 else 1]:
            inputs = [jitgrad.tensor(v, dtype=jitgrad.float64, requires_grad=r)
                      for v, r in zip(_pick(args, where), subset)]
            with TAPE.lock:
                start = len(TAPE.outs)
            outs = as_outputs(jg_call(fn, args, kwargs, where, inputs))
            with TAPE.lock:
                rows = np.frombuffer(TAPE.rows, np.int64).reshape(-1, 9)[start:].copy()
                a32, _, a64, _ = TAPE._by_dtype()
                for k, row in enumerate(rows):
                    op = registry.OPS[row[OP]]
                    if op.plan is None:
                        continue
                    reads = _Reads(TAPE, start + k, None)
                    reads.ins = (row[A], row[B])
                    names = op.saved((row[A] >= 0) | (row[B] >= 0) << 1)
                    if not names:           # (remainder's x: its formula reads only g)
                        assert row[SAVED_AT] < 0, f"{op.grad_fn} saves what no formula reads"
                        continue
                    out = reads.value("out")._a
                    if "cond" in names:     # (a formula reads it from the saves: check the call's)
                        conds = [a for a in args if isinstance(a, jitgrad.Tensor) and a.dtype == jitgrad.bool]
                        if not conds:       # a composite's own (logdet's): nothing to compare with
                            continue
                        assert len(conds) == 1, f"{op.grad_fn} ({fn.__name__}-{i}): which condition?"
                        cond = np.broadcast_to(conds[0].numpy(), out.shape)
                    values = {n: cond if n == "cond" else reads.value(n)._a for n in names}
                    operands = [v.shape for n, v in values.items() if n != "out"]
                    try:        # an elementwise op saves its operands at the output's shape
                        shape = np.broadcast_shapes(out.shape, *operands)
                    except ValueError:
                        shape = None
                    if row[OP] in own_shapes:   # a product, scatter_reduce: each at its own shape
                        shape = None
                    elif shape != out.shape:    # a reduction: at their own (broadcast) shape
                        shape = np.broadcast_shapes(*operands)
                    want = np.concatenate([(v if n == "out" or shape is None else np.broadcast_to(v, shape))
                                           .reshape(-1) for n, v in values.items()])
                    arena = a64 if row[FLAGS] & F_F64 else a32
                    got = arena[row[SAVED_AT]: row[SAVED_AT] + want.size]
                    np.testing.assert_array_equal(got, want, err_msg=f"{op.grad_fn} ({fn.__name__}-{i})")
                    checked.add(op.code)
            del outs
    assert checked == planned, [registry.OPS[c].grad_fn for c in planned - checked]


@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_float32(fn, i, case):
    """The float32 forward and backward (a separately compiled interpreter) agree with float64,
    and keep float32."""
    args, kwargs, where = make_inputs(case, seed=200 + i)
    results = []
    for dt in (jitgrad.float32, jitgrad.float64):
        args = [a.to(dt) if isinstance(a, jitgrad.Tensor) and a.is_floating_point() else a
                for a in args]
        kwargs = {k: a.to(dt) if isinstance(a, jitgrad.Tensor) and a.is_floating_point() else a
                  for k, a in kwargs.items()}
        xs = [jitgrad.tensor(v, dtype=dt, requires_grad=True) for v in _pick(args, where)]
        outs = [o for o in as_outputs(jg_call(fn, args, kwargs, where, xs)) if o.requires_grad]
        if outs:
            jitgrad.autograd.backward(outs, [jitgrad.ones_like(o) for o in outs])
        results.append((outs, xs))
    (o32, x32), (o64, x64) = results
    for a, b in zip(o32, o64):
        assert a.dtype == jitgrad.float32 or a.dtype == b.dtype     # unless a dtype was asked for
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(x32, x64):
        if b.grad is not None:
            assert a.grad.dtype == jitgrad.float32
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-3, atol=1e-3)
