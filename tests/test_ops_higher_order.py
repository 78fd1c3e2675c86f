"""Generated from the op table, as test_ops_gradcheck.py: for every sample of every op, the
differentiable formulas (create_graph=True) agree with the compiled VJP kernels, second derivatives
pass gradgradcheck in float64, and match PyTorch's (kinks and ties included) when it is installed."""

import numpy as np
import pytest

import jitgrad
from jitgrad import ops
from jitgrad.autograd import gradgradcheck
from jitgrad.engine import registry

from test_ops_gradcheck import (CASES, IDS, KINK_CASES, make_inputs, jg_inputs, jg_call, as_outputs,
                                differentiable, torch_fn, to_torch_arg, _pick, torch)


def _grad_outputs(outs, rng, make):
    return [make(rng.standard_normal(tuple(o.shape)), o) for o in outs]


def _same(a, b, rtol=1e-9, atol=1e-12):
    a = None if a is None else a.detach().numpy()
    b = None if b is None else b.detach().numpy(force=True)      # force: torch's ZeroTensors too
    if a is None or b is None:
        assert not (a if a is not None else b if b is not None else np.zeros(0)).any()
    else:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_formulas_match_kernels(fn, i, case):
    """The first derivatives the formulas record equal the compiled kernels' (and are
    differentiable: they require grad wherever they depend on an input)."""
    args, kwargs, where = make_inputs(case, seed=i)
    xs = jg_inputs(args, where)
    outs = [o for o in as_outputs(jg_call(fn, args, kwargs, where, xs)) if o.requires_grad]
    if not outs:
        return
    rng = np.random.default_rng(i)
    seeds = _grad_outputs(outs, rng, lambda v, o: jitgrad.tensor(v, dtype=o.dtype))
    kernel = jitgrad.autograd.grad(outs, xs, seeds, retain_graph=True, allow_unused=True)
    formula = jitgrad.autograd.grad(outs, xs, seeds, create_graph=True, allow_unused=True)
    for k, f in zip(kernel, formula):
        _same(f, k)


@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_gradgradcheck(fn, i, case):
    args, kwargs, where = make_inputs(case, seed=i)
    inputs = jg_inputs(args, where)
    if not any(o.requires_grad for o in as_outputs(jg_call(fn, args, kwargs, where, inputs))):
        return
    assert gradgradcheck(differentiable(lambda *ts: jg_call(fn, args, kwargs, where, ts)), inputs,
                         eps=ops.SAMPLE_EPS.get(fn, 1e-6), atol=1e-5, rtol=1e-4)


def second_derivatives_match_torch(fn, case, seed):
    """d/dx <grad(out, x, v, create_graph=True), w> in jitgrad and in PyTorch."""
    args, kwargs, where = make_inputs(case, seed=seed)
    jx = jg_inputs(args, where)
    tx = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in _pick(args, where)]
    jouts = [o for o in as_outputs(jg_call(fn, args, kwargs, where, jx)) if o.requires_grad]
    touts = [o for o in as_outputs(jg_call(torch_fn(fn), to_torch_arg(args), to_torch_arg(kwargs),
                                           where, tx)) if o.requires_grad]
    assert len(jouts) == len(touts)
    if not touts:
        return
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(tuple(o.shape)) for o in touts]
    jg = jitgrad.autograd.grad(jouts, jx, [jitgrad.tensor(v) for v in vs], create_graph=True,
                               allow_unused=True)
    tg = torch.autograd.grad(touts, tx, [torch.tensor(v) for v in vs], create_graph=True,
                             allow_unused=True)
    for a, b in zip(jg, tg):
        _same(a, b)
    ws = [rng.standard_normal(tuple(x.shape)) for x in tx]
    jl = [(g * jitgrad.tensor(w)).sum() for g, w in zip(jg, ws) if g is not None and g.requires_grad]
    tl = [(g * torch.tensor(w)).sum() for g, w in zip(tg, ws) if g is not None and g.requires_grad]
    if not tl:
        assert not jl
        return
    # no jitgrad loss: no gradient depends on an input, so torch's must be zero
    j2 = jitgrad.autograd.grad(sum(jl), jx, allow_unused=True) if jl else [None] * len(jx)
    try:
        t2 = torch.autograd.grad(sum(tl), tx, allow_unused=True)
    except RuntimeError as e:       # e.g. hardsigmoid_backward: gradgradcheck is the spec
        if "is not implemented" not in str(e):
            raise
        pytest.skip(f"PyTorch has no second derivative here: {e}")
    for a, b in zip(j2, t2):
        _same(a, b)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("fn,i,case", CASES, ids=IDS)
def test_second_derivatives_match_torch(fn, i, case):
    second_derivatives_match_torch(fn, case, 300 + i)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("fn,i,case", KINK_CASES, ids=[f"{fn.__name__}-{i}" for fn, i, _ in KINK_CASES])
def test_second_derivatives_at_kinks_match_torch(fn, i, case):
    """At kinks and ties PyTorch's subgradients are the spec, for second derivatives too."""
    second_derivatives_match_torch(fn, case, 300 + i)


def test_every_op_has_its_formulas():
    """An op through which a gradient flows has a differentiable formula (create_graph=True)."""
    missing = [op.grad_fn or f"hidden op {op.code}" for op in registry.OPS
               if op.rule is not None and not op.formulas]
    assert not missing, f"ops without differentiable formulas: {missing}"
