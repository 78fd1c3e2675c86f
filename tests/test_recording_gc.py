"""What a recorded forward leaves for the garbage collector.

Every row holds a weakref to its output tensor (GC-tracked); a graph's intermediates mostly die
within an op or two, and their weakrefs used to stay until the tape compacted: one tracked
object per op, each walked by every collection and promoted to the old generation, whose full
collections then came every few W4 runs (~0.1 s each in a process with torch loaded). The tape
sweeps them as it records; these tests pin that down, and that nothing a sweep frees was needed.
"""
import gc

import numpy as np
import pytest

import jitgrad as torch
from jitgrad.engine import tape as tape_mod
from jitgrad.engine.tape import TAPE


def _alive_per_op(forward, n):
    """Tracked objects left alive per recorded op by forward(n) (its result included), the
    collector on (sweeps serve it: with it off there are none)."""
    forward(n)                     # warm: first-use compiles and caches
    gc.collect()
    before = len(gc.get_objects())
    y = forward(n)
    gc.collect()
    after = len(gc.get_objects())
    del y
    return (after - before) / (2 * n)


def _w4(n):
    # benchmarks' W4: 0-dim float64 tensors, record_pair's rows
    x0 = torch.tensor(1.0, dtype=torch.float64)
    w = torch.tensor(0.9999, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(1e-4, dtype=torch.float64, requires_grad=True)
    y = x0
    for _ in range(n):
        y = y * w
        y = y + b
    return y, w, b


def _vector(n):
    # the same chain on (3,) float32 tensors: record()'s rows
    w = torch.full((3,), 0.9999, requires_grad=True)
    b = torch.full((3,), 1e-4, requires_grad=True)
    y = torch.ones(3)
    for _ in range(n):
        y = y * w
        y = y + b
    return y, w, b


@pytest.mark.parametrize("forward", [_w4, _vector])
def test_a_recorded_chain_leaves_almost_no_tracked_objects_per_op(forward):
    # (a weakref per op before the sweeps: 1.0; torch leaves 0.5 on W4)
    assert _alive_per_op(forward, 3000) < 0.05


def test_live_tensors_keep_their_rows_through_sweeps_and_a_compaction():
    w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(1.0, dtype=torch.float64)
    kept = []
    for i in range(3 * tape_mod._SWEEP):
        y = y * w
        y = y + b
        if i % 97 == 0:
            kept.append(y)           # live intermediates among dead ones in every sweep
    assert TAPE.swept > 0
    TAPE.compact()                   # renumbers the rows
    assert all(TAPE.outs[t._node]() is t for t in kept)
    # each live entry names its tensor's row (one may be dead already: a tensor can die during
    # the compaction, with a Python node it drops; the next sweep clears it)
    assert all(r is None or r() is None or r()._node == i for i, r in enumerate(TAPE.outs))
    # kept[1] = ((... (1*w + b) ...)) after 98 rounds: its gradient, by the recurrence
    kept[1].backward()
    gw = gb = 0.0
    v = 1.0
    for _ in range(98):
        gw, gb, v = gw * 0.5 + v, gb * 0.5 + 1.0, v * 0.5 + 0.25
    assert w.grad.item() == pytest.approx(gw, rel=1e-12)
    assert b.grad.item() == pytest.approx(gb, rel=1e-12)
    assert kept[1].item() == pytest.approx(v, rel=1e-12)
    assert type(kept[-1].grad_fn).__name__ == "AddBackward0"


def test_an_inplace_write_to_a_saved_tensor_is_caught_after_sweeps():
    w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(1.0, dtype=torch.float64, requires_grad=True) * 1.0
    saved = y
    z = saved * w                      # saves saved (and w), as torch (same message)
    for _ in range(2 * tape_mod._SWEEP):
        z = z * w                      # sweeps run; saved's value stays in z's graph
    assert TAPE.swept > 0
    with torch.no_grad():
        saved.add_(1.0)
    with pytest.raises(RuntimeError, match=r"one of the variables needed for gradient computation "
                       r"has been modified by an inplace operation: \[jitgrad.DoubleTensor \[\]\], "
                       r"which is output 0 of Mul, is at version 1; expected version 0 "
                       r"instead"):
        z.backward()


def test_a_detached_row_stays_unlinked_through_a_sweep():
    w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    y = w * w
    row = y._node
    y.detach_()
    for _ in range(2 * tape_mod._SWEEP):
        w * w
    assert TAPE.outs[row] is None and y._node == -1 and y.grad_fn is None


def test_no_sweep_while_the_collector_is_off_and_one_after():
    gc.disable()
    try:
        TAPE.sweep()
        swept = TAPE.swept
        y, w, b = _w4(2 * tape_mod._SWEEP)
        assert TAPE.swept == swept
        del y, w, b
    finally:
        gc.enable()
    y, w, b = _w4(tape_mod._SWEEP)
    assert TAPE.swept > swept
    assert sum(r is not None and r() is None for r in TAPE.outs[swept: TAPE.swept]) == 0


def test_vector_ops_sweep_too():
    y, w, b = _vector(2 * tape_mod._SWEEP)
    y.sum().backward()
    assert np.all(np.isfinite(w.grad.numpy())) and TAPE.swept > 0


@pytest.mark.parametrize("write", ["add_", "mul_", "zero_"])
def test_an_in_place_write_moves_a_tensor_to_its_new_row(write):
    """A non-leaf written in place is its new row's output only: a compaction finds it there
    (its old row kept it too, and every live entry naming its tensor's row broke)."""
    x = torch.randn(3, requires_grad=True)
    z = x * 3
    y = z * 2
    old = y._node
    getattr(y, write)(2.0) if write != "zero_" else y.zero_()
    assert TAPE.outs[old] is None or TAPE.outs[old]() is not y
    TAPE.compact()
    assert TAPE.outs[y._node]() is y
    assert all(r is None or r() is None or r()._node == i for i, r in enumerate(TAPE.outs))
    (y * z).sum().backward()
    a = x.detach().numpy()
    want = {"add_": 36 * a + 6, "mul_": 72 * a, "zero_": 0 * a}[write]   # d/dx of y * 3x
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-5, atol=1e-6)
