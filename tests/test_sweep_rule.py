"""Tape.sweep rewrites the range of outs since the last sweep in one slice store: the result must
be the row-by-row rule (a dead output's weakref becomes None; None and live weakrefs stay, the
same objects), rows without an output (leaves: None) included, and nothing a sweep cleared may be
needed by a later compaction or backward."""
import gc

import numpy as np

import jitgrad as torch
from jitgrad.engine.tape import TAPE


def _sweep_and_check():
    assert gc.isenabled()
    with TAPE.lock:
        before = list(TAPE.outs)
        lo = TAPE.swept
        want = before[:lo] + [None if r is None or r() is None else r for r in before[lo:]]
        TAPE.sweep()
        after = list(TAPE.outs)
    assert len(after) == len(want)
    assert all(got is exp for got, exp in zip(after, want))
    return before[lo:]


def test_sweep_follows_the_row_by_row_rule():
    w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(1.0, dtype=torch.float64) * w
    with TAPE.lock:
        TAPE.sweep()
    keep = []
    for i in range(100):
        if i % 30 == 0:              # a new leaf: its row holds no output (None)
            leaf = torch.tensor(float(i), dtype=torch.float64, requires_grad=True)
            y = y + leaf
            keep.append(leaf)
        y = y * w
        if i % 7 == 0:
            keep.append(y)
    swept = _sweep_and_check()
    assert None in swept and any(r is not None and r() is None for r in swept)
    for t in keep:
        if t._node >= 0:
            assert TAPE.outs[t._node]() is t
    _sweep_and_check()              # again: nothing more to clear
    y.backward()
    assert w.grad is not None


def test_sweeps_then_compact_then_backward():
    rng = np.random.default_rng(1)
    a = torch.tensor(rng.standard_normal(5), requires_grad=True)
    s = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    y = s
    for _ in range(700):             # several sweeps (every 256 rows)
        y = y * s + 0.01
    z = (a * a).sum()
    TAPE.compact()
    (y + z.double()).backward()
    ref, dref = 0.3, 1.0
    for _ in range(700):             # y_k+1 = y_k * s + 0.01 and its derivative, by hand
        dref = dref * 0.3 + ref
        ref = ref * 0.3 + 0.01
    assert abs(y.item() - ref) < 1e-12
    assert abs(s.grad.item() - dref) < 1e-9 * abs(dref)
    np.testing.assert_allclose(a.grad.numpy(), 2 * a.detach().numpy(), rtol=1e-6)
