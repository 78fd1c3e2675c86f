"""What compaction hands back besides the rows: each surviving tensor's row, the rows' kept
output arrays (create_graph's values) and their element count (the held limit).

Tape.compact renumbers the survivors from the rows loop.compact kept, in their order; it visits
only the outputs alive when it scanned, and gathers the kept values by position. These tests pin
down that the result is what a row-by-row walk would give, for a tape mixing shapes, dtypes,
leaf rows (no output), dead and live outputs, kept constants and a retained gradient.
"""
import numpy as np

import jitgrad as torch
from jitgrad.engine.tape import TAPE


def _check_bookkeeping(live):
    for t in live:
        assert t._node >= 0
        assert TAPE.outs[t._node]() is t
        assert TAPE.values[t._node] is t._a
    assert len(TAPE.values) == len(TAPE.outs) == len(TAPE.rows) // 9
    held = sum(v.size for v in TAPE.values if v is not None)
    counted = {id(v): v.size for c in TAPE.consts.values() for v, _ in c.values()}
    assert TAPE.held == held + sum(counted.values())
    for r in TAPE.outs:
        assert r is None or r() is None or TAPE.values[r()._node] is r()._a


def test_compact_keeps_rows_values_and_held_in_step():
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    v = torch.tensor(rng.standard_normal(4), dtype=torch.float64, requires_grad=True)
    s = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(rng.standard_normal((3, 4)))           # a constant input (kept values)
    keep = []
    y = s
    for i in range(300):
        a = (w * c).sum()                     # float32, a constant kept for create_graph
        b = (v * v).sum() * s                 # float64
        y = y * s + b.detach() * 0.0 + 1e-3   # a chain of 0-dim float64 rows (record_pair's)
        if i % 37 == 0:
            keep += [a, b]
    r = (w * 2.0).sum(0)
    r.retain_grad()
    keep += [y, r]
    TAPE.compact()
    _check_bookkeeping(keep)
    (y + sum(k.sum() for k in keep[:-2]) + r.sum()).backward()
    # the gradients, against the same graph recorded again after the compaction
    gw, gv, gs, gr = w.grad.clone(), v.grad.clone(), s.grad.clone(), r.grad.clone()
    for t in (w, v, s):
        t.grad = None
    y2 = s
    keep2 = []
    for i in range(300):
        a = (w * c).sum()
        b = (v * v).sum() * s
        y2 = y2 * s + b.detach() * 0.0 + 1e-3
        if i % 37 == 0:
            keep2 += [a, b]
    r2 = (w * 2.0).sum(0)
    r2.retain_grad()
    (y2 + sum(k.sum() for k in keep2) + r2.sum()).backward()
    np.testing.assert_array_equal(w.grad.numpy(), gw.numpy())
    np.testing.assert_array_equal(v.grad.numpy(), gv.numpy())
    np.testing.assert_array_equal(s.grad.numpy(), gs.numpy())
    np.testing.assert_array_equal(r2.grad.numpy(), gr.numpy())


def test_compact_then_record_and_compact_again():
    # a second compaction reads what the first wrote (outs, values, held)
    w = torch.tensor(0.9999, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(1e-4, dtype=torch.float64, requires_grad=True)
    ys = []
    for _ in range(3):
        y = torch.tensor(1.0, dtype=torch.float64)
        for _ in range(500):
            y = y * w + b
        ys.append(y)
        TAPE.compact()
        _check_bookkeeping(ys)
    ys[0].backward()
    ys[2].backward()
    # y_n = w * y_{n-1} + b from y_0 = 1: dy/db = sum of w^k for k < 500, per graph
    expect = sum(0.9999 ** k for k in range(500)) * 2
    assert abs(b.grad.item() - expect) < 1e-9 * expect


def test_compact_survives_a_tensor_dying_during_compaction():
    # an output alive at the scan but dead before its row is renumbered is simply not renumbered
    x = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    keep = [x * 3.0 for _ in range(10)]
    TAPE.compact()
    _check_bookkeeping(keep)
    del keep[3:]
    TAPE.compact()
    _check_bookkeeping(keep)
    sum(keep).backward()
    assert x.grad.item() == 9.0
