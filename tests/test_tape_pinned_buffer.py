"""A stale numpy view of the tape's buffers must not break recording.

Numba's first (cold) compile of the interpreter keeps the arguments of that call in a reference
cycle until the garbage collector runs; the next recorded op used to raise BufferError.
"""
import numpy as np

import jitgrad as torch
from jitgrad.engine.tape import TAPE


def test_recording_survives_a_stale_view_of_rows_and_shapes():
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    y = x * 2.0
    pins = [np.frombuffer(TAPE.rows, np.int64), np.frombuffer(TAPE.shapes, np.int64)]
    z = (y + 1.0).reshape(1, 3, 1) * 3.0     # a new row and a new shape while both are pinned
    z.sum().backward()
    assert x.grad.tolist() == [6.0, 6.0, 6.0]
    del pins
